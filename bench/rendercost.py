"""What a change costs the renderer itself, without Consul or nginx: ``python -m bench.rendercost``.

Rendering: N services of 4 instances each through ``nginx.upstreams`` (the scale scenario's template),
rendered in full (a new TemplateSet, as at start-up or after SIGHUP; and after ``load()``, as after a
template edit) and again after one instance's check flipped (the incremental path: the template is
rendered, every block but the flipped service's is reused); then a flip through to the file (render,
compare bytes, write with an fsync of the data, keep the ``.bak``), and a flip of the same blocks from
a loop written in the template (Jinja runs it; the block cache serves each macro call). Snapshots are
built as the watcher builds them: unchanged services keep their tuples.

Writing: the file of 2,000 services written with ``write_atomic`` as the sidecar writes a change (the
destination, then its ``.bak`` copy), with and without an fsync of the data, of the folder and of the
backup. Medians and 90th percentiles of wall time; the render also in CPU time of this process, which
other work on the machine disturbs less.

Options: ``--sizes 1000,2000,5000``, ``--repeat N`` (flips per size, writes per variant).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from discovery.model import CatalogQuery, Instance, ServiceQuery, ServiceSummary, Snapshot
from renderer.files import read_bytes, write_atomic
from renderer.template import TemplateSet

__all__ = ["main", "render_costs", "write_costs"]

TEMPLATE = '{% import "nginx.j2" as nginx %}\n{{ nginx.upstreams(tag="scale", prefix="s_") }}\n'
# The same blocks from a loop written in the template: Jinja runs it, the block cache serves the macro.
HANDWRITTEN = (
    '{% import "nginx.j2" as nginx %}\n'
    '{% for s in services(tag="scale") %}{{ nginx.upstream("s_" ~ s.name, service(s.name)) }}\n{% endfor %}\n'
)
INSTANCES = 4


def _instance(i: int, k: int, status: str = "passing") -> Instance:
    name = f"svc{i:05d}"
    return Instance(f"bench-{k}", f"{name}-{k}", name, "127.0.0.1", 20000 + i, ("scale",), status=status)  # type: ignore[arg-type]


class _Catalog:
    """N services; ``flip`` changes one instance's status and returns the next snapshot."""

    def __init__(self, n: int) -> None:
        self.services = {
            ServiceQuery(f"svc{i:05d}"): tuple(_instance(i, k) for k in range(1, INSTANCES + 1))
            for i in range(n)
        }
        self.catalog = {CatalogQuery(): tuple(ServiceSummary(f"svc{i:05d}", ("scale",)) for i in range(n))}
        self.n = n

    def snapshot(self) -> Snapshot:
        return Snapshot.build(self.services, self.catalog, {})

    def flip(self, round_: int) -> Snapshot:
        i = (round_ * 7919) % self.n
        query = ServiceQuery(f"svc{i:05d}")
        first = self.services[query][0]
        status = "critical" if first.status == "passing" else "passing"
        self.services[query] = (dataclasses.replace(first, status=status), *self.services[query][1:])
        return self.snapshot()


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{statistics.median(ordered) * 1e3:7.1f} ms (p90 {p90 * 1e3:6.1f})"


def render_costs(n: int, repeat: int, folder: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each way to render N services, ``repeat`` times each."""
    source = folder / "scale.j2"
    source.write_text(TEMPLATE)
    catalog = _Catalog(n)
    out: dict[str, tuple[list[float], list[float]]] = {
        "full, new TemplateSet": ([], []),
        "full, after load()": ([], []),
        "after one flip": ([], []),
        "flip -> file": ([], []),
    }

    def record(name: str, sample: tuple[float, float]) -> None:
        out[name][0].append(sample[0])
        out[name][1].append(sample[1])

    for r in range(max(1, repeat // 3)):
        snap = catalog.flip(r)
        ts = TemplateSet([source])
        record("full, new TemplateSet", _timed(lambda ts=ts, snap=snap: (ts.load(), ts.render(source, snap))))
        record("full, after load()", _timed(lambda ts=ts, snap=snap: (ts.load(), ts.render(source, snap))))
    ts = TemplateSet([source])
    ts.load()
    ts.render(source, catalog.snapshot())
    for r in range(repeat):
        snap = catalog.flip(r)
        record("after one flip", _timed(lambda snap=snap: ts.render(source, snap)))
    dest = folder / "upstreams.conf"
    dest.write_text(ts.render(source, catalog.snapshot()).text)
    for r in range(repeat):
        snap = catalog.flip(repeat + r)
        record("flip -> file", _timed(lambda snap=snap: _to_file(ts.render(source, snap).text, dest)))
    out["flip, hand-written loop"] = _handwritten_flips(catalog, repeat, folder)
    return out


def _handwritten_flips(catalog: _Catalog, repeat: int, folder: Path) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of a flip rendered from a loop written in the template, ``repeat`` times."""
    handwritten = folder / "handwritten.j2"
    handwritten.write_text(HANDWRITTEN)
    ts = TemplateSet([handwritten])
    ts.load()
    ts.render(handwritten, catalog.snapshot())
    samples: list[tuple[float, float]] = []
    for r in range(repeat):
        snap = catalog.flip(r)
        samples.append(_timed(lambda snap=snap: ts.render(handwritten, snap)))
    return [wall for wall, _ in samples], [cpu for _, cpu in samples]


def _to_file(text: str, dest: Path) -> None:
    """What the sidecar does with a render before ``nginx -t``: compare bytes, write, keep the ``.bak``."""
    new, old = text.encode(), read_bytes(dest)
    if new != old:
        write_atomic(dest, new)
        if old is not None:
            write_atomic(Path(f"{dest}.bak"), old, durable=False)


def write_costs(data: bytes, repeat: int, folder: Path) -> dict[str, list[float]]:
    """Wall seconds of writing one change (destination, then ``.bak``) in each durability variant."""
    dest, bak = folder / "upstreams.conf", folder / "upstreams.conf.bak"
    variants: dict[str, Callable[[bytes, bytes], None]] = {
        "no fsync at all": lambda new, old: (
            write_atomic(dest, new, durable=False),
            write_atomic(bak, old, durable=False),
        ),
        "fsync data; .bak not synced (now)": lambda new, old: (
            write_atomic(dest, new),
            write_atomic(bak, old, durable=False),
        ),
        "fsync data + folder; .bak not synced (before)": lambda new, old: (
            write_atomic(dest, new, sync_folder=True),
            write_atomic(bak, old, durable=False),
        ),
        "fsync data + folder; .bak data + folder": lambda new, old: (
            write_atomic(dest, new, sync_folder=True),
            write_atomic(bak, old, sync_folder=True),
        ),
        "destination alone: fsync data": lambda new, old: write_atomic(dest, new),
        "destination alone: fsync data + folder": lambda new, old: write_atomic(dest, new, sync_folder=True),
    }
    out: dict[str, list[float]] = {name: [] for name in variants}
    versions = [data, data.replace(b"server", b"server ", 1)]
    for r in range(repeat):
        for name, write in variants.items():  # interleaved, so a busy disk spreads over every variant
            new, old = versions[r % 2], versions[(r + 1) % 2]
            out[name].append(_timed(lambda write=write, new=new, old=old: write(new, old))[0])
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the render and write costs."""
    parser = argparse.ArgumentParser(prog="python -m bench.rendercost", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,2000,5000")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rendercost.") as tmp:
        folder = Path(tmp)
        print("render (wall median / p90; cpu median)")
        for n in (int(s) for s in args.sizes.split(",")):
            for name, (wall, cpu) in render_costs(n, args.repeat, folder).items():
                print(
                    f"  {n:5d} services  {name:23s} {_summary(wall)}  cpu {statistics.median(cpu) * 1e3:6.1f} ms"
                )
        ts = TemplateSet([folder / "scale.j2"])
        ts.load()
        data = ts.render(folder / "scale.j2", _Catalog(2000).snapshot()).text.encode()
        print(f"write one change of the 2,000-service file ({len(data) // 1024} KiB), {folder}")
        for name, wall in write_costs(data, args.repeat * 2, folder).items():
            print(f"  {name:48s} {_summary(wall)}")


if __name__ == "__main__":
    main()
