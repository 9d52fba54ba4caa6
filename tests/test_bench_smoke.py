"""A tiny run of the benchmark harness (python -m bench), so it cannot rot: seconds, not minutes.

The figures themselves are not judged here (the machine is shared and noisy); what is checked is that
each scenario's harness measures something plausible end to end against real Consul and nginx, in both
modes (classic, and ``[nginx] dynamic = true`` against nginx with the Lua module) and on both floors
(reload, push), that the prober notices an instance that never leaves, and that the page, issue 11's
targets table included, is generated from the results.
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

from bench import checkcost, churn, convergence, direct, report, scale, targets_report
from bench.dynamic_rig import hooked, lua_module, peers_of
from bench.filewatch import FileChange
from bench.probe import Prober, Record
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


needs_lua = pytest.mark.skipif(
    not lua_module(), reason="nginx's Lua module is not installed (bash .ci/setup)"
)


@needs_lua
def test_dynamic_mode_and_the_push_floor_converge(tmp_path: Path, consul: ConsulAgent) -> None:
    with Bars(quiet=True) as bars:
        conv = convergence.run(
            tmp_path / "conv",
            consul,
            rounds=1,
            default_rounds=1,
            systems=("floor-push", "dynamic"),
            steps=bars.scenario("convergence", 2),
        )
    for system in ("floor-push", "dynamic"):
        for kind in ("remove", "recover"):
            (sample,) = conv["systems"][system][kind]
            assert sample is not None and 0 <= sample < 10, (system, kind, sample)
    parts = conv["systems"]["floor-push"]["parts"]
    assert parts["consul_wake"] and parts["reload_add"]
    assert conv["systems"]["dynamic"]["reloads"] == 0 and conv["systems"]["floor-push"]["reloads"] == 0
    page = report.render({"convergence": conv}, tmp_path)
    assert "| Push floor (minimal sidecar: blocking query, POST to the Lua endpoint) | 1 |" in page
    assert "Floor (push), split" in page


@needs_lua
def test_scale_measures_both_modes_the_push_floor_and_flip_to_file(
    tmp_path: Path, consul: ConsulAgent
) -> None:
    tiny = scale.Plan(flips=1, idle_seconds=0.3, churn_rate=10, churn_seconds=0.3)
    with Bars(quiet=True) as bars:
        size = scale.run_size(
            tmp_path / "scale",
            consul,
            3,
            systems=("ours", "dynamic"),
            steps=bars.scenario("scale", 9),
            plan=tiny,
        )
    for system in ("ours", "dynamic"):
        data = size["systems"][system]
        assert data["remove"][0] is not None and data["recover"][0] is not None, system
        assert data["remove_file"][0] is not None and data["recover_file"][0] is not None, system
        assert isinstance(data["flip_reloads"], int) and data["flip_count"] == 2
        assert data["first_render_s"] > 0 and data["churn_flips"] == 3
    # The wiring, not the speed: the dynamic sidecar really pushed (no reload), the classic one reloaded.
    assert size["systems"]["dynamic"]["flip_reloads"] == 0 and size["systems"]["ours"]["flip_reloads"] >= 1
    push = size["push_floor"]
    assert push["upstreams"] == 3 and push["push_add"][0] is not None and len(push["full_push"]) == 5
    page = report.render({"scale": {"3": size}}, tmp_path)
    assert "| upstreams, dynamic |" in page and "| push floor parts (ms) |" in page
    assert "| flip -> file (remove), median (ms) |" in page


@needs_lua
def test_churn_plays_the_schedule_in_dynamic_mode_and_on_the_push_floor(
    tmp_path: Path, consul: ConsulAgent
) -> None:
    with Bars(quiet=True) as bars:
        data = churn.run(
            tmp_path / "churn",
            consul,
            services=3,
            flips=6,
            seconds=1.5,
            systems=("floor-push", "dynamic"),
            steps=bars.scenario("churn", 12),
        )
    push, dynamic = data["systems"]["floor-push"], data["systems"]["dynamic"]
    assert push["reloads"] == 0  # the push floor never reloads: it only pushes
    assert dynamic["reloads"] == 0 and dynamic["requests"] > 0 and push["requests"] > 0
    page = report.render({"churn": data}, tmp_path)
    assert "| push floor (one push per flip) | 0 |" in page and "Dynamic mode:" in page


def test_file_change_times_a_rename_and_sees_nothing_when_untouched(tmp_path: Path) -> None:
    path = tmp_path / "up.conf"
    path.write_text("a")
    with FileChange(path) as still:
        time.sleep(0.05)
    assert still.after(0.0) is None
    with FileChange(path) as change:
        t0 = time.monotonic()
        (tmp_path / "new").write_text("a")
        os.replace(tmp_path / "new", path)  # same bytes, another inode: the sidecar's atomic write
        wait_until(lambda: change.changed is not None, what="the rename seen")
    moved = change.after(t0)
    assert moved is not None and moved >= 0


def test_peers_are_read_back_from_a_hooked_file_without_down_servers() -> None:
    conf = hooked("s_a", "    server 127.0.0.1:81;\n    server 127.0.0.1:82 weight=3 backup;\n")
    conf += hooked("s_empty", "    server 127.0.0.1:1 down;\n")
    assert peers_of(conf) == {
        "s_a": [
            {"address": "127.0.0.1", "port": 81, "weight": 1, "backup": False},
            {"address": "127.0.0.1", "port": 82, "weight": 3, "backup": True},
        ],
        "s_empty": [],
    }


def test_issue_targets_say_met_missed_or_not_measured() -> None:
    def sized(remove: float, render: float) -> dict[str, object]:
        mode = {"remove": [remove], "recover": [0.010], "first_render_s": render, "peak_rss_mb": 90.0}
        return {"systems": {"ours": mode, "dynamic": {**mode, "flip_reloads": 0, "flip_count": 2}}}

    results = {
        "scale": {"100": sized(0.010, 1.0), "1000": sized(0.020, 1.0), "5000": sized(0.030, 2.0)},
        "churn": {"flips": 200, "systems": {"ours": {"failed": 0, "requests": 10}}},
    }
    rows = {line.split(" | ")[0].lstrip("| "): line for line in targets_report.rows(results)}
    assert rows[
        "flip -> routed, dynamic mode, at 100 / 1,000 / 5,000 services (remove and recover)"
    ].endswith("| **MISSED** |")  # 30 ms at 5,000
    assert rows["first complete render at 5,000 services"].endswith("| met |")
    assert rows["peak RSS at 5,000 services"].endswith("| met |")
    assert rows["reloads during pure health flips, dynamic mode"].endswith("| met |")
    assert rows["flip -> file at 2,000 services (worse of remove / recover)"].endswith("| not measured |")
    assert rows["failed requests during 200 flips, both modes"].endswith("| not measured |")  # one mode only
    assert targets_report.rows({}) == []


def test_a_probers_records_since_a_time_are_the_tail_whose_answers_came_at_or_after_it() -> None:
    prober = Prober(1)
    prober.records.extend(Record(float(i), float(i) + 0.5, f"b{i}") for i in range(10))
    assert [r.label for r in prober.since(6.5)] == ["b6", "b7", "b8", "b9"]
    assert [r.label for r in prober.since(6.6)] == ["b7", "b8", "b9"]
    assert prober.since(100.0) == [] and len(prober.since(0.0)) == 10
    tail = prober.since(8.0)
    prober.records.append(Record(11.0, 11.5, "b11"))
    assert [r.label for r in tail] == ["b8", "b9"]  # a copy: later answers are not in it
