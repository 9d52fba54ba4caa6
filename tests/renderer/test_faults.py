"""Fault injection with real parts: Consul restarted under load, misbehaving Consul, full or read-only
disks, signals at bad moments. Each test records its figures for the suite's summary."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.fault_proxy import ERROR_500, HANG, PASS, FaultProxy
from tests.support.figures import record
from tests.support.load import Load
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess, write_config
from tests.support.waiting import wait_until


@pytest.fixture
def persistent_consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    folder = tmp_path / "consul"
    folder.mkdir()
    agent = ConsulAgent(folder, persistent=True)
    agent.start()
    yield agent
    agent.stop()


def test_consul_restarted_ten_times_under_load_fails_no_request(
    tmp_path: Path,
    persistent_consul: ConsulAgent,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    consul = persistent_consul

    def add(name: str) -> None:
        # No TTL check: Consul brings TTL checks back critical after a restart, which would be its own
        # (correct) verdict, not the sidecar's doing.
        consul.register("prime", name, nginx.backends[name])

    for name in ("b1", "b2", "b3"):
        add(name)
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, what="three backends serving")
    with Load(nginx) as load:
        for round_ in range(10):
            reloads = nginx.reloads()
            consul.kill()
            time.sleep(0.3)
            assert nginx.reloads() == reloads  # no render while Consul is away
            consul.start()  # persistent: the catalog survives; it answers 500 until it is leader again
            consul.wait_leader()
            if round_ % 2 == 0:
                consul.deregister("b2")
                expected = {"b1", "b3"}
            else:
                add("b2")
                expected = {"b1", "b2", "b3"}
            wait_until(lambda e=expected: nginx.answers(8) == e, timeout=30, what=f"round {round_} applied")
    record("Consul restarts under load", faults=10, requests=load.sent, failed=load.failed)
    assert load.sent > 100
    assert load.failed == 0, load.failures[:5]
    assert sidecar.proc.poll() is None


@pytest.fixture
def proxy(consul: ConsulAgent) -> Iterator[FaultProxy]:
    p = FaultProxy(consul.http_port).start()
    yield p
    p.stop()


def test_consul_answering_500_or_never_answering_keeps_the_last_good_config(
    tmp_path: Path,
    consul: ConsulAgent,
    proxy: FaultProxy,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    for name in ("b1", "b2"):
        register_backend(consul, nginx, name)
    config = write_config(tmp_path, consul, nginx)
    config.write_text(
        config.read_text().replace(
            f'address = "{consul.address}"',
            f'address = "http://127.0.0.1:{proxy.port}"\nblock_query_wait = "1s"\ntimeout = "1s"',
        )
    )
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="two backends serving")
    dest = nginx.conf_d / "upstreams.conf"
    good, reloads = dest.read_bytes(), nginx.reloads()

    proxy.set_mode(ERROR_500)
    wait_until(lambda: "No cluster leader" in sidecar.output(), what="the 500 answers logged")
    proxy.set_mode(HANG)
    wait_until(
        lambda: "TimeoutError" in sidecar.output() or "timeout" in sidecar.output().lower(),
        what="the hanging Consul timed out",
    )
    time.sleep(1.5)
    assert dest.read_bytes() == good and nginx.reloads() == reloads
    assert nginx.answers() == {"b1", "b2"}

    proxy.set_mode(PASS)
    consul.set_ttl("b1", "critical")
    wait_until(lambda: nginx.answers() == {"b2"}, timeout=20, what="the change made meanwhile applied")
    record("Consul 500 / hanging", faults=2, requests=0, failed=0)


def test_two_hundred_flips_in_ten_seconds_give_bounded_reloads_and_the_right_end_state(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    for name in ("b1", "b2"):
        register_backend(consul, nginx, name)
    start_sidecar(write_config(tmp_path, consul, nginx, wait=("100ms", "1s")))
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="both serving")
    reloads = nginx.reloads()
    started = time.monotonic()
    with Load(nginx, limit=30) as load:
        for i in range(200):
            consul.set_ttl("b2", "critical" if i % 2 == 0 else "passing")
            time.sleep(max(0.0, started + (i + 1) * 0.05 - time.monotonic()))
        consul.set_ttl("b2", "critical")
        wait_until(lambda: nginx.answers() == {"b1"}, what="the final state")
    elapsed = time.monotonic() - started
    done = nginx.reloads() - reloads
    record("200 flips in 10 s", faults=200, requests=load.sent, failed=load.failed)
    # wait.max = 1s: at most about one reload per second of flipping, plus the last one.
    assert done <= elapsed + 2, (done, elapsed)
    assert load.failed == 0, load.failures[:5]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("fault", ["disk-full", "read-only"])
def test_unwritable_destination_logs_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path,
    fault: str,
    small_disk: Path,
    consul: ConsulAgent,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    register_backend(consul, nginx, "b1")
    dest = small_disk / "upstreams.conf"
    nginx_include = nginx.conf_d / "upstreams.conf"
    nginx_include.write_text(f"include {dest};\n")
    dest.write_text("upstream primes { server 127.0.0.1:1 down; }\n")
    config = write_config(tmp_path, consul, nginx)
    config.write_text(
        config.read_text().replace(f'destination = "{nginx_include}"', f'destination = "{dest}"')
    )
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving")
    good = dest.read_bytes()
    if fault == "disk-full":
        # Fill the 64 KiB filesystem to the last byte (dd stops with "No space left on device").
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={small_disk}/filler", "bs=1k", "count=128"], capture_output=True
        )
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    # A big change (many tags rendered as comments would not fit); here: a new instance.
    for i in range(30):
        consul.register_ttl("prime", f"extra-{i}", 20000 + i, Tags=["t" * 200])
    wait_until(lambda: "Kept the last good files" in sidecar.output(), what="the write failure logged")
    assert dest.read_bytes() == good
    assert not [p for p in small_disk.iterdir() if p.name.endswith(".tmp")]
    assert nginx.answers() == {"b1"}
    assert sidecar.proc.poll() is None
    record(f"destination {fault}", faults=1, requests=0, failed=0)


SLOW_CHECK = 'check_command = ["sh", "-c", "sleep 3; exec {check}"]'


def test_sigterm_during_a_check_restores_the_files_and_exits_within_five_seconds(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    config = write_config(tmp_path, consul, nginx)
    check = " ".join(nginx.check_command)
    text = config.read_text()
    start = text.index("check_command")
    end = text.index("\n", start)
    config.write_text(text[:start] + SLOW_CHECK.format(check=check) + text[end:])
    dest = nginx.conf_d / "upstreams.conf"
    before = dest.read_bytes()
    sidecar = start_sidecar(config)
    wait_until(lambda: dest.read_bytes() != before, what="the render written, the slow check running")
    started = time.monotonic()
    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(5) == 0, sidecar.output()
    assert time.monotonic() - started < 5
    assert dest.read_bytes() == before  # the unchecked render did not stay
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".tmp")]
    assert nginx.reloads() == 0
    record("SIGTERM during a check", faults=1, requests=0, failed=0)


def test_sigterm_during_a_reload_storm_leaves_only_complete_files(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    for name in ("b1", "b2"):
        register_backend(consul, nginx, name)
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="both serving")
    for i in range(40):
        consul.set_ttl("b2", "critical" if i % 2 == 0 else "passing")
    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(5) == 0
    dest = nginx.conf_d / "upstreams.conf"
    text = dest.read_text()
    assert text.startswith("upstream primes {") and text.rstrip().endswith("}")
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".tmp")]
    record("SIGTERM during reloads", faults=1, requests=0, failed=0)
