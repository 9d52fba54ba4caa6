"""Many sidecars against one real cluster: what each Consul server sees, at idle and under churn.

``python -m bench.sidecars`` starts 3 servers and 2 client agents (harness/cluster.py), a catalog of
``--sizes`` services (two instances each, one per client agent, with TTL checks), then ``--sidecars``
real ``upstreams watch`` processes (half on each client agent), each watching the same 5 services. For
each catalog size and read mode (default: the leader answers; ``max_stale``: any server answers) it
measures, per server, the RPC requests and blocking queries per second (Consul's own counters,
``consul_rpc_request`` and ``consul_rpc_query``) and the established RPC connections, first at idle,
then while checks flip across the whole catalog. Nothing here judges the figures; they go to
``bench/results.json`` under ``sidecars`` and are quoted in docs/operations.md. ``python -m bench
--scenario sidecars`` runs the same measure (its options ``--sidecars``, ``--sidecar-sizes``,
``--sidecar-seconds``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from harness.cluster import TELEMETRY, Cluster, ClusterAgent
from harness.sidecar import SidecarProcess

from .progress import Steps
from .rig import register_many, wait_until, workdir

ROOT = Path(__file__).resolve().parent.parent
WATCHED = 5
TEMPLATE = '{% import "nginx.j2" as nginx %}\n' + "".join(
    f'{{{{ nginx.upstream("s{i}", service("svc{i}")) }}}}\n' for i in range(WATCHED)
)


def counters(server: ClusterAgent) -> dict[str, float]:
    """The server's cumulative RPC counters (Prometheus text from /v1/agent/metrics)."""
    with urllib.request.urlopen(server.address + "/v1/agent/metrics?format=prometheus", timeout=10) as r:
        text = r.read().decode()
    out = {"request": 0.0, "query": 0.0}
    for line in text.splitlines():
        for key in out:
            if line.startswith(f"consul_rpc_{key} "):
                out[key] = float(line.split()[1])
    return out


def rpc_connections(server: ClusterAgent) -> int:
    """Established TCP connections to the server's RPC port (other servers' and client agents')."""
    local = "".join(f"{int(part):02X}" for part in reversed(server.ip.split("."))) + f":{server.rpc_port:04X}"
    with open("/proc/net/tcp") as f:
        return sum(1 for line in f if line.split()[1:2] == [local] and line.split()[3] == "01")


def sidecar(folder: Path, agent: ClusterAgent, max_stale: str) -> SidecarProcess:
    """A real sidecar with no nginx: the check and reload commands are ``true``."""
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "up.conf.j2").write_text(TEMPLATE)
    config = folder / "sidecar.toml"
    stale = f'max_stale = "{max_stale}"\n' if max_stale else ""
    config.write_text(
        f'[consul]\naddress = "{agent.address}"\n{stale}\n[status]\nlisten = ""\n\n'
        '[nginx]\ncheck_command = ["true"]\nreload_command = ["true"]\n\n'
        f'[[template]]\nsource = "templates/up.conf.j2"\ndestination = "{folder / "up.conf"}"\n'
    )
    return SidecarProcess(config)


def phase(cluster: Cluster, seconds: float, flip: Any = None, rate: float = 0.0) -> dict[str, Any]:
    """Per server: RPC requests/s, blocking queries/s and RPC connections over ``seconds``."""
    before = {s.name: counters(s) for s in cluster.servers}
    start = time.monotonic()
    flips = 0
    while (elapsed := time.monotonic() - start) < seconds:
        if flip is None:
            time.sleep(0.2)
            continue
        flip(flips)
        flips += 1
        time.sleep(max(0.0, start + flips / rate - time.monotonic()))
    elapsed = time.monotonic() - start
    leader = cluster.leader().name
    servers = {}
    for s in cluster.servers:
        after = counters(s)
        servers[s.name] = {
            "leader": s.name == leader,
            "requests_per_s": (after["request"] - before[s.name]["request"]) / elapsed,
            "queries_per_s": (after["query"] - before[s.name]["query"]) / elapsed,
            "connections": rpc_connections(s),
        }
    return {"seconds": elapsed, "flips": flips, "servers": servers}


def run_size(root: Path, cluster: Cluster, size: int, sidecars: int, seconds: float) -> dict[str, Any]:
    """One catalog size: registrations, then each read mode with its own sidecars."""
    bodies = {
        c.name: [
            {"ID": f"svc{i}-{n}", "Name": f"svc{i}", "Port": 10000 + i, "Address": "127.0.0.1",
             "Check": {"CheckID": f"ttl:svc{i}-{n}", "TTL": "30m", "Status": "passing"}}
            for i in range(size)
        ]
        for n, c in enumerate(cluster.clients)
    }  # fmt: skip
    took = sum(register_many(c, bodies[c.name], "/v1/agent/service/register") for c in cluster.clients)
    result: dict[str, Any] = {"register_s": took}
    baseline = phase(cluster, seconds)  # the cluster's own traffic, without any sidecar
    result["baseline"] = baseline
    for mode in ("", "10s"):
        procs = [
            sidecar(root / f"{size}-{mode or 'default'}-{i}", cluster.clients[i % 2], mode)
            for i in range(sidecars)
        ]
        try:
            wait_until(partial(_all_rendered, procs), timeout=120)
            idle = phase(cluster, seconds)

            def flip(k: int) -> None:
                agent = cluster.clients[k % 2]
                i = random.randrange(size)
                status = "fail" if k % 4 < 2 else "pass"
                agent.api("PUT", f"/v1/agent/check/{status}/ttl:svc{i}-{k % 2}")

            churn = phase(cluster, seconds, flip, rate=20.0)
        finally:
            for p in procs:
                p.stop()
        result["max_stale" if mode else "default"] = {"idle": idle, "churn": churn}
    for c in cluster.clients:
        c.clear()
    return result


def _all_rendered(procs: list[SidecarProcess]) -> bool:
    return all((Path(x.log).parent / "up.conf").exists() for x in procs)


def summary(size: int, result: dict[str, Any], sidecars: int) -> list[str]:
    """One line per mode and phase: blocking queries/s per server (leader first), requests/s per sidecar."""
    lines = []
    base = sum(s["requests_per_s"] for s in result["baseline"]["servers"].values())
    for mode in ("default", "max_stale"):
        for name in ("idle", "churn"):
            servers = sorted(result[mode][name]["servers"].values(), key=lambda s: not s["leader"])
            queries = " / ".join(f"{s['queries_per_s']:.1f}" for s in servers)
            per = (sum(s["requests_per_s"] for s in servers) - base) / sidecars
            conns = " / ".join(str(s["connections"]) for s in servers)
            lines.append(
                f"{size:>5} services  {mode:<9} {name:<5}  queries/s (leader first) {queries:<20} "
                f"RPC requests/s per sidecar {per:5.2f}  connections {conns}"
            )
    return lines


def measure(
    folder: Path,
    *,
    count: int,
    sizes: Sequence[int],
    seconds: float,
    log: Callable[[str], None],
    steps: Steps | None = None,
) -> dict[str, Any]:
    """The ``sidecars`` section of the results, on a cluster of its own started in ``folder``."""
    cluster = Cluster(folder / "cluster")
    for agent in cluster.agents:
        agent.extra_hcl = TELEMETRY
    cluster.start()
    try:
        section = measure_on(cluster, folder, count=count, sizes=sizes, seconds=seconds, log=log, steps=steps)
    finally:
        cluster.stop()
    section["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return section


def measure_on(
    cluster: Cluster,
    folder: Path,
    *,
    count: int,
    sizes: Sequence[int],
    seconds: float,
    log: Callable[[str], None],
    steps: Steps | None = None,
) -> dict[str, Any]:
    """Every size on a started ``cluster`` (its servers' telemetry on), ``count`` sidecars each."""
    section: dict[str, Any] = {"sidecars": count, "watched_services": WATCHED, "sizes": {}}
    for size in sizes:
        if steps is not None:
            steps.note(f"{size} services, {count} sidecars")
        section["sizes"][str(size)] = run_size(folder, cluster, size, count, seconds)
        log("\n".join(summary(size, section["sizes"][str(size)], count)))
        if steps is not None:
            steps.advance()
    return section


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sidecars", description=__doc__.split("\n\n")[0])
    p.add_argument("--sidecars", type=int, default=20)
    p.add_argument("--sizes", default="50,500", help="catalog sizes (services), comma-separated")
    p.add_argument("--seconds", type=float, default=15.0, help="length of each idle and churn phase")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with workdir(keep=False) as folder:
        section = measure(folder, count=args.sidecars, sizes=sizes, seconds=args.seconds, log=_print)
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    results["sidecars"] = section
    args.results.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


def _print(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
