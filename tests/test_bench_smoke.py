"""A tiny run of the benchmark harness (python -m bench), so it cannot rot: seconds, not minutes.

The figures themselves are not judged here (the machine is shared and noisy); what is checked is that
each scenario's harness measures something plausible end to end against real Consul and nginx, that
the prober notices an instance that never leaves, and that the page is generated from the results.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from bench import checkcost, churn, convergence, direct, report, scale
from bench.probe import Prober
from bench.progress import Bars
from bench.rig import front_nginx
from bench.stats import pct, summary
from tests.support.consul_agent import ConsulAgent
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def test_stats_interpolate_and_count_timeouts() -> None:
    assert pct([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    s = summary([0.010, None, 0.030])
    assert (s["n"], s["timeouts"], s["median"], s["max"]) == (3, 1, 20.0, 30.0)
    assert math.isnan(summary([None])["median"])


def test_churn_schedule_has_exactly_the_flips_and_never_two_instances_down() -> None:
    plan = churn.schedule(services=5, flips=40)
    assert len(plan) == 40
    down: dict[int, str] = {}
    for service, backend, status in plan:
        if status == "critical":
            assert service not in down
            down[service] = backend
        else:
            assert down.pop(service) == backend
    assert down == {}


def test_prober_reports_an_instance_that_never_leaves_as_timed_out(tmp_path: Path) -> None:
    with front_nginx(tmp_path / "n", upstream="s_$http_x_svc", initial="") as nginx:
        (nginx.conf_d / "upstreams.conf").write_text(
            f"upstream s_prime {{ server 127.0.0.1:{nginx.backends['b1']}; }}\n"
        )
        os.kill(int(nginx.pid_file.read_text()), signal.SIGHUP)
        with Prober(nginx.port, ("prime",), max_seconds=5) as prober:
            wait_until(lambda: "b1" in prober.labels(0), what="b1 answering after the reload")
            time.sleep(0.3)  # the old worker (no such upstream: 502) still accepts for 100 ms
            t0 = time.monotonic()
            assert prober.wait_gone("b1", t0, settle=0.2, timeout=0.6) is None
            assert prober.wait_back("b2", t0, timeout=0.3) is None
            assert prober.wait_back("b1", t0, timeout=2) is not None
        assert prober.failures(since=t0) == []


def test_convergence_and_scale_harness_measure_ours_and_the_floor(
    tmp_path: Path, consul: ConsulAgent
) -> None:
    with Bars(quiet=True) as bars:
        conv = convergence.run(
            tmp_path / "conv",
            consul,
            rounds=1,
            default_rounds=1,
            systems=("floor", "ours"),
            steps=bars.scenario("convergence", 2),
        )
        consul.clear()
        tiny = scale.Plan(flips=1, idle_seconds=0.3, churn_rate=10, churn_seconds=0.3)
        size = scale.run_size(
            tmp_path / "scale", consul, 3, systems=("ours",), steps=bars.scenario("scale", 9), plan=tiny
        )
    for system in ("floor", "ours"):
        data = conv["systems"][system]
        for kind in ("remove", "recover"):
            (sample,) = data[kind]
            assert sample is not None and 0 <= sample < 10, (system, kind, sample)
    parts = conv["systems"]["floor"]["parts"]
    assert parts["consul_wake"] and all(0 < w < 5 for w in parts["consul_wake"])
    ours = size["systems"]["ours"]
    assert ours["remove"][0] is not None and ours["recover"][0] is not None
    assert 1 <= ours["peak_connections"] <= 8
    assert 10 < ours["peak_rss_mb"] < 1000
    assert size["floor"]["nginx_check"] and size["floor"]["reload_add"][0] is not None

    page = report.render({"convergence": conv, "scale": {"3": size}}, tmp_path)
    assert "## 1. Convergence" in page and "### 3 services" in page
    assert "| upstreams (this project, wait.min = 0) | 1 |" in page
    assert "| recovered instance routed, median < 50 ms |" in page


def test_chart_is_written_as_png(tmp_path: Path) -> None:
    conv = {"systems": {"floor": {"remove": [0.11, 0.12], "recover": [0.01, None]}}, "labels": {}}
    report.chart(conv, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkcost_harness_counts_engine_cpu_per_check_on_both_paths(
    tmp_path: Path, consul: ConsulAgent
) -> None:
    short = Path(tempfile.mkdtemp(prefix="upc-", dir="/tmp"))  # unix socket paths: at most 108 bytes
    try:
        with Bars(quiet=True) as bars:
            data = checkcost.run(
                short,
                consul,
                count=1,
                seconds=1.0,
                steps=bars.scenario("checkcost", 4),
                env=os.environ,
                engines=("podman",),
                interval=0.3,
            )
    finally:
        shutil.rmtree(short, ignore_errors=True)
    podman = data["podman"]
    api, ns = podman["engine_api"], podman["nsenter"]
    assert api["checks"] >= 1 and api["engine_cpu_s"] > 0 and api["companion_cpu_s"] > 0
    assert ns["checks"] >= 1 and ns["failed"] == 0 and ns["command_cpu_s"] > 0
    seen = podman["seen"]
    assert seen["nsenter_cgroup"] == seen["container_cgroup"] == seen["engine_api_cgroup"]
    assert "Seccomp: 2" in seen["engine_api"] and "Seccomp: 0" in seen["nsenter"]
    assert seen["runc"] == seen["engine_api"] and seen["runc_cgroup"] == seen["container_cgroup"]
    assert podman["runc"]["checks"] >= 1 and podman["runc"]["failed"] == 0
    by_runc = podman["companion_runc"]  # the companion's own runc path: runc is its child, not the engine's
    assert by_runc["checks"] >= 1 and by_runc["command_cpu_s"] > 0 and api["command_cpu_s"] == 0
    page = report.render({"checkcost": {**data, "load": ["0", "0"]}}, tmp_path)
    assert "## 5. The cost of a script check" in page and "| Podman | companion, engine exec API" in page


def test_cgroup_procs_maps_each_hierarchy_to_its_mount() -> None:
    mountinfo = (
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    cgroups = "9:name=systemd:/c1\n1:cpu:/c1\n0::/c1\n4:memory:/c1\n"
    assert direct.cgroup_procs(cgroups, mountinfo) == (
        Path("/sys/fs/cgroup/systemd/c1/cgroup.procs"),
        Path("/sys/fs/cgroup/cpu/c1/cgroup.procs"),
        Path("/sys/fs/cgroup/unified/c1/cgroup.procs"),
    )
