"""Faults with real parts for the companion: Consul restarted, and a burst of 50 containers.

(The engine's socket service restarted is in test_engine_e2e.py.) Each test records its figures for the
suite's summary: faults injected, registrations expected ("requests") and those missing ("failed").
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.healthchecks.conftest import Companion, owned
from tests.healthchecks.engines import EngineDaemon
from tests.support.consul_agent import ConsulAgent
from tests.support.figures import record
from tests.support.ports import distinct_free_ports
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

RESTARTS = 3
BURST = 50


def test_a_restarted_consul_agent_gets_every_owned_registration_back(
    tmp_path: Path, engine: EngineDaemon, private_consul: ConsulAgent
) -> None:
    """A -dev agent forgets every registration when it restarts; the companion notices and registers again."""
    (tmp_path / "companion").mkdir()
    companion = Companion(tmp_path / "companion", private_consul, engine)
    labels = {"SERVICE_NAME": "kept", "SERVICE_CHECK_SCRIPT": "true", "SERVICE_CHECK_INTERVAL": "1s"}
    for i in range(3):
        engine.run(f"kept{i}", labels=labels, ports={"8080/tcp": None})
    expected = sorted(f"{companion.hostname}:kept{i}:8080" for i in range(3))
    private_consul.register_ttl("foreign", "foreign-1", 9000)
    missing = 0
    try:
        companion.start()
        wait_until(
            lambda: sorted(owned(private_consul, companion.hostname)) == expected, 20, what="3 registered"
        )
        slowest = 0.0
        for _ in range(RESTARTS):
            private_consul.kill()
            private_consul.start()
            back = time.monotonic()
            try:
                wait_until(
                    lambda: sorted(owned(private_consul, companion.hostname)) == expected,
                    15,
                    what="registrations restored",
                )
            except AssertionError:
                missing += len(set(expected) - set(owned(private_consul, companion.hostname)))
            slowest = max(slowest, time.monotonic() - back)
        assert missing == 0, companion.output()[-3000:]
        # Registered again each time (the agent forgot them), not merely kept.
        assert companion.output().count(f"Registered {expected[0]} ") >= RESTARTS + 1
        print(f"Consul restarted {RESTARTS}x: registrations back within {slowest:.1f}s of its return")
        # The script checks run by the companion reach the new agent's TTL checks too.
        check = f"{expected[0]}:script"
        wait_until(
            lambda: private_consul.api("GET", "/v1/agent/checks").get(check, {}).get("Status") == "passing",
            10,
            what="the script check passing on the restarted agent",
        )
        assert "foreign-1" not in private_consul.services()  # only what it owns comes back
        assert companion.alive()
    finally:
        companion.kill()
        record(
            f"companion: Consul restarted ({engine.kind})",
            faults=RESTARTS,
            requests=RESTARTS * len(expected),
            failed=missing,
        )


@pytest.mark.parametrize("engine_daemon", ["podman"], indirect=True)
def test_fifty_containers_at_once_are_registered_then_deregistered(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    host = companion.hostname
    names = [f"burst{i:02d}" for i in range(BURST)]
    labels = {"SERVICE_NAME": "burst"}

    # Distinct host ports chosen up front: Podman 4.3 picking "any" port for 50 containers at once can
    # hand the same one to two of them ("address already in use").
    ports = dict(zip(names, distinct_free_ports(BURST), strict=True))

    def start(name: str) -> object:
        return engine.run(name, labels=labels, ports={"8080/tcp": ports[name]}, command=["sleep", "600"])

    failed = 0
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(BURST) as pool:
            containers = list(pool.map(start, names))
        try:
            wait_until(lambda: len(owned(consul, host)) == BURST, 60, what=f"{BURST} services")
        except AssertionError:
            failed += BURST - len(owned(consul, host))
        registered = time.monotonic() - started
        assert sorted(owned(consul, host)) == sorted(f"{host}:{n}:8080" for n in names)
        started = time.monotonic()
        with ThreadPoolExecutor(BURST) as pool:
            list(pool.map(lambda c: c.remove(force=True), containers))  # type: ignore[attr-defined]
        try:
            wait_until(lambda: owned(consul, host) == {}, 60, what="every burst service deregistered")
        except AssertionError:
            failed += len(owned(consul, host))
        deregistered = time.monotonic() - started
        assert failed == 0
        assert companion.alive()
        print(f"{BURST} containers: registered in {registered:.1f}s, deregistered in {deregistered:.1f}s")
    finally:
        record(
            f"companion: {BURST} containers at once",
            faults=2,  # the start burst and the removal burst
            requests=2 * BURST,
            failed=failed,
        )
