"""The companion end to end, on each real engine (Podman and Docker), with a real Consul agent."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.healthchecks.conftest import checks_of, owned
from tests.healthchecks.engines import EngineDaemon
from tests.support.consul_agent import ConsulAgent
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

WEB = {
    "SERVICE_NAME": "web",
    "SERVICE_TAGS": "a,b",
    "SERVICE_CHECK_HTTP": "/",
    "SERVICE_CHECK_INTERVAL": "1s",
    "SERVICE_CHECK_SCRIPT": "cat /www/index.html",
}


def passing(consul: ConsulAgent, name: str) -> list[str]:
    return sorted(e["Service"]["ID"] for e in consul.api("GET", f"/v1/health/service/{name}?passing"))


def start_web(engine: EngineDaemon, name: str, **labels: str) -> object:
    return engine.run(name, labels={**WEB, **labels}, ports={"8080/tcp": free_port()})


def test_three_labelled_containers_become_three_passing_services(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    for i in range(3):
        start_web(engine, f"web{i}")
    host = companion.hostname
    expected = [f"{host}:web{i}:8080" for i in range(3)]
    wait_until(lambda: passing(consul, "web") == expected, 20, what="3 passing web services")
    service = owned(consul, host)[expected[0]]
    assert service["Service"] == "web"
    assert service["Tags"] == ["a", "b"]
    assert service["Address"] == "127.0.0.1"
    assert set(checks_of(consul, expected[0])) == {f"{expected[0]}:http", f"{expected[0]}:script"}
    assert companion.alive()


def test_failing_script_check_turns_critical_and_back(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion_factory(engine).start()
    # Exit 1 would be "warning" (Consul's mapping); any other failure is "critical".
    script = 'sh -c "cat /www/index.html || exit 2"'
    container = start_web(engine, "flaky", SERVICE_CHECK_HTTP="", SERVICE_CHECK_SCRIPT=script)
    sid = f"test-host-{engine.kind}:flaky:8080"
    wait_until(
        lambda: checks_of(consul, sid).get(f"{sid}:script") == "passing", 20, what="script check passing"
    )
    container.exec_run(["rm", "/www/index.html"])  # type: ignore[attr-defined]
    wait_until(
        lambda: checks_of(consul, sid).get(f"{sid}:script") == "critical", 10, what="script check critical"
    )
    output = consul.api("GET", "/v1/agent/checks")[f"{sid}:script"]["Output"]
    assert "index.html" in output  # cat's own error message, reported as the check's output
    container.exec_run(["sh", "-c", "echo back > /www/index.html"])  # type: ignore[attr-defined]
    wait_until(
        lambda: checks_of(consul, sid).get(f"{sid}:script") == "passing",
        10,
        what="script check passing again",
    )


def test_stopped_killed_and_removed_containers_are_deregistered(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    containers = {name: start_web(engine, name) for name in ("stopped", "killed", "removed", "kept")}
    host = companion.hostname
    wait_until(lambda: len(owned(consul, host)) == 4, 20, what="4 services")
    actions = [
        lambda: containers["stopped"].stop(timeout=1),  # type: ignore[attr-defined]
        lambda: containers["killed"].kill(),  # type: ignore[attr-defined]
        lambda: containers["removed"].remove(force=True),  # type: ignore[attr-defined]
    ]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda action: action(), actions))
    wait_until(
        lambda: sorted(owned(consul, host)) == [f"{host}:kept:8080"], 20, what="only 'kept' registered"
    )


def test_restarted_companion_converges_to_the_containers_changed_while_it_was_down(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    first = companion_factory(engine, deregister_on_stop=False).start()
    host = first.hostname
    a = start_web(engine, "aa")
    start_web(engine, "bb")
    wait_until(lambda: len(owned(consul, host)) == 2, 20, what="a and b registered")
    assert first.stop() == 0
    assert len(owned(consul, host)) == 2  # deregister_on_stop = false keeps them
    a.remove(force=True)  # type: ignore[attr-defined]
    start_web(engine, "cc")
    companion_factory(engine).start()
    wait_until(
        lambda: sorted(owned(consul, host)) == [f"{host}:bb:8080", f"{host}:cc:8080"],
        20,
        what="bb and cc only",
    )


def test_foreign_services_on_the_same_agent_are_never_touched(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    host = f"test-host-{engine.kind}"
    consul.register_ttl("foreign", "foreign-1", 9000)
    consul.register_ttl("foreign", "other-host-1", 9001, Meta={"upstreams-registrar": "another-host"})
    # Same ID as the container below will want: someone else's, so it is left alone.
    consul.register_ttl("squatter", f"{host}:clash:8080", 9002)
    companion = companion_factory(engine).start()
    start_web(engine, "clash")
    start_web(engine, "mine")
    wait_until(lambda: f"{host}:mine:8080" in owned(consul, host), 20, what="own service registered")
    wait_until(
        lambda: "already registered on the agent by someone else" in companion.output(),
        10,
        what="clash warning",
    )
    assert companion.stop() == 0
    services = consul.services()
    assert {"foreign-1", "other-host-1", f"{host}:clash:8080"} <= set(services)
    assert services[f"{host}:clash:8080"]["Service"] == "squatter"
    assert f"{host}:mine:8080" not in services


def test_engine_service_restart_reconnects_and_reconciles(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    host = companion.hostname
    start_web(engine, "before")
    gone = start_web(engine, "gone")
    wait_until(lambda: len(owned(consul, host)) == 2, 20, what="2 services")
    engine.stop_service()
    if engine.kind == "podman":
        engine.cli("rm", "-f", "-t", "0", "gone")  # changed while the API service is away
    else:
        gone_id = gone.id  # type: ignore[attr-defined]
    engine.start()
    assert companion.alive()
    if engine.kind == "docker":
        engine.client.containers.get(gone_id).remove(force=True)
    start_web(engine, "after")
    wait_until(
        lambda: sorted(owned(consul, host)) == [f"{host}:after:8080", f"{host}:before:8080"],
        30,
        what="registrations matching the engine after its restart",
    )
    # The reconcile may list the new container before the event stream's backoff ends: the stream
    # says it reconnected when it does, a moment later.
    wait_until(
        lambda: "Reconnected to the container engine" in companion.output(), 20, what="the stream back"
    )


def test_hostile_labels_are_skipped_per_key_with_warnings(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    host = companion.hostname
    labels = {
        "SERVICE_NAME": "hostile",
        "SERVICE_BAD.KEY": "x",
        "SERVICE_CONSUL-OWNED": "x",
        "SERVICE_UPSTREAMS-REGISTRAR": "spoofed-owner",
        "SERVICE_HUGE": "x" * 10_000,
        "SERVICE_GOOD": "kept",
        "SERVICE_TAGS": "ok," + "t" * 1000,
        "SERVICE_CHECK_INTERVAL": "1s",
        "SERVICE_CHECK_SCRIPT": "echo $(touch /tmp/pwned) ; touch /tmp/pwned2 && `id`",
    }
    container = engine.run("hostile", labels=labels, ports={"8080/tcp": free_port()})
    engine.run("badname", labels={"SERVICE_NAME": "web; rm -rf / #"}, ports={"8080/tcp": free_port()})
    sid = f"{host}:hostile:8080"
    wait_until(
        lambda: checks_of(consul, sid).get(f"{sid}:script") == "passing", 20, what="hostile service passing"
    )
    service = owned(consul, host)[sid]
    assert service["Tags"] == ["ok"]
    assert service["Meta"]["good"] == "kept"
    assert service["Meta"]["upstreams-registrar"] == host
    assert not {"bad.key", "consul-owned", "huge"} & set(service["Meta"])
    assert list(owned(consul, host)) == [sid]  # the bad name is skipped, not registered
    # No shell ran: echo printed its arguments literally and nothing was touched.
    output = consul.api("GET", "/v1/agent/checks")[f"{sid}:script"]["Output"]
    assert "$(touch /tmp/pwned) ; touch /tmp/pwned2 && `id`" in output
    assert container.exec_run(["ls", "/tmp"]).output == b""  # type: ignore[attr-defined]
    log = companion.output()
    assert "container badname: service name 'web; rm -rf / #'" in log
    assert "Meta key 'bad.key'" in log
    assert "Meta value of 'huge'" in log
    assert companion.alive()


def test_sigterm_deregisters_owned_services_and_exits_zero(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    consul.register_ttl("foreign", "foreign-1", 9000)
    companion = companion_factory(engine).start()
    start_web(engine, "w1")
    start_web(engine, "w2")
    wait_until(lambda: len(owned(consul, companion.hostname)) == 2, 20, what="2 services")
    assert companion.stop(timeout=10) == 0
    assert owned(consul, companion.hostname) == {}
    assert "foreign-1" in consul.services()
    assert "Deregistered 2 services on stop" in companion.output()


def test_a_hanging_script_check_is_killed_at_its_timeout_and_critical(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    # A shell with a child: the child must die too, or it would hold the output pipe open.
    script = 'sh -c "sleep 30; echo never"'
    labels = {"SERVICE_CHECK_SCRIPT": script, "SERVICE_CHECK_TIMEOUT": "300ms", "SERVICE_CHECK_HTTP": ""}
    container = start_web(engine, "hangs", **labels)
    companion = companion_factory(engine).start()
    sid = f"{companion.hostname}:hangs:8080"

    def script_check() -> dict[str, str]:
        return consul.api("GET", "/v1/agent/checks").get(f"{sid}:script", {})  # type: ignore[no-any-return]

    wait_until(
        lambda: "Timed out after 0.3s" in script_check().get("Output", ""), 20, what="timed-out output"
    )
    assert script_check()["Status"] == "critical"
    assert companion.stop() == 0

    def sleepers() -> int:
        return container.exec_run(["ps"]).output.decode().count("sleep 30")  # type: ignore[attr-defined,no-any-return]

    wait_until(lambda: sleepers() == 0, 5, what="no check process left in the container")


def test_container_healthcheck_status_is_mirrored(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    healthcheck = {
        "test": ["CMD", "cat", "/www/index.html"],
        "interval": 300_000_000,
        "timeout": 1_000_000_000,
        "retries": 1,
    }
    container = engine.run(
        "doctor", labels={"SERVICE_NAME": "doctor"}, ports={"8080/tcp": free_port()}, healthcheck=healthcheck
    )
    companion = companion_factory(engine).start()
    sid = f"{companion.hostname}:doctor:8080"

    def health_now() -> None:
        if (
            engine.kind == "podman"
        ):  # Podman runs health checks from systemd timers; none here: run it ourselves
            subprocess.run(["podman", "healthcheck", "run", "doctor"], env=engine.env, capture_output=True)

    def status() -> str | None:
        health_now()
        return checks_of(consul, sid).get(f"{sid}:health")

    wait_until(lambda: status() == "passing", 20, what="health mirrored as passing")
    container.exec_run(["rm", "/www/index.html"])  # type: ignore[attr-defined]
    wait_until(lambda: status() == "critical", 20, what="health mirrored as critical")
    assert "unhealthy" in consul.api("GET", "/v1/agent/checks")[f"{sid}:health"]["Output"]


def test_paused_containers_are_deregistered_until_unpaused(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    container = start_web(engine, "sleepy", SERVICE_CHECK_SCRIPT="")
    sid = f"{companion.hostname}:sleepy:8080"
    wait_until(lambda: sid in owned(consul, companion.hostname), 20, what="registered")
    container.pause()  # type: ignore[attr-defined]
    wait_until(lambda: sid not in owned(consul, companion.hostname), 10, what="deregistered while paused")
    container.unpause()  # type: ignore[attr-defined]
    wait_until(lambda: sid in owned(consul, companion.hostname), 10, what="registered again")
