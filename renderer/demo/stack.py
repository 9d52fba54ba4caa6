"""``upstreams demo``: start every part, play the story (or follow keys), and remove everything after.

Parts start in dependency order, each registered on one AsyncExitStack as soon as it exists, so whatever
ends the demo (its duration, q, Ctrl-C, SIGTERM, or a part failing) stops them in reverse order: replicas,
the companion (which deregisters what it owns), Podman (which removes its containers), the sidecar, nginx,
Consul, and finally the temporary folder.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from discovery.errors import unwrap_group

from .actions import Actions
from .board import Board
from .consul import start_consul, wait_for_leader
from .daemons import start_companion, start_sidecar
from .engine import Podman, engine_missing
from .health import watch_health
from .keys import HELP, read_keys, terminal_keys
from .nginx import first_render, follow_reloads, nginx_paths, start_nginx
from .options import DemoOptions
from .ports import free_port, reserve_check
from .process import Child, PartFailed
from .replicas import ContainerReplicas, ProcessReplicas, ReplicaSet
from .story import Story
from .traffic import Traffic
from .view import show
from .workdir import make_workdir, remove_workdir

__all__ = ["run_demo"]

CLIENTS = 2


def run_demo(options: DemoOptions, env: Mapping[str, str]) -> int:
    """Run the demo; return the exit code (raises UpstreamsError naming the part that failed)."""
    return asyncio.run(_main(options, env))


async def _main(options: DemoOptions, env: Mapping[str, str]) -> int:
    loop = asyncio.get_running_loop()
    demo = asyncio.create_task(_demo(options, env))

    def stop() -> None:
        # Only the first signal cancels: a second Ctrl-C must not interrupt the cleanup it started.
        if not demo.cancelling():
            demo.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        return await demo
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _demo(options: DemoOptions, env: Mapping[str, str]) -> int:
    board = Board()
    workdir = make_workdir(env)
    async with AsyncExitStack() as stack:
        stack.callback(_goodbye, workdir)
        stack.callback(remove_workdir, workdir)
        help_text = HELP if options.interactive else "Ctrl-C stops the demo and removes everything it started"
        stack.enter_context(show(board, plain=options.plain, help_text=help_text))
        if options.interactive:
            stack.enter_context(terminal_keys())
        try:
            return await _run(options, env, board, workdir, stack)
        except asyncio.CancelledError:
            # Ctrl-C or SIGTERM: a normal way to end the demo; the stack still removes everything.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            board.say("stopping (signal received)")
            _summary(board)
            return 0
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None
    raise AssertionError("unreachable")  # pragma: no cover - AsyncExitStack does not swallow returns


async def _run(
    options: DemoOptions, env: Mapping[str, str], board: Board, workdir: Path, stack: AsyncExitStack
) -> int:
    port = options.port or free_port()
    reserve_check("nginx", port)  # before anything starts: the likeliest mistake fails fast
    children: list[Child] = []
    consul = await _consul(options, workdir, env, stack, children, board)
    paths = nginx_paths(workdir, env)
    children.append(await start_nginx(paths, port, env, stack))
    board.nginx_url = f"http://127.0.0.1:{port}/"
    board.say(f"nginx: listening on {board.nginx_url} (prefix {paths.prefix})")
    status_port = free_port()
    sidecar = await start_sidecar(workdir, consul, paths, status_port, env)
    stack.push_async_callback(sidecar.stop)
    children.append(sidecar)
    services_dir = workdir / "services"
    services_dir.mkdir()
    replicas, engine_url = await _replicas(options, workdir, services_dir, env, stack)
    board.say(f"replicas: {replicas.kind}")
    companion = await start_companion(workdir, consul, engine_url, services_dir, env)
    stack.push_async_callback(companion.stop)
    children.append(companion)
    board.say("companion: upstreams-registrar registers each replica with its health check")
    await first_render(paths, sidecar)  # started above, so both daemons start up at the same time
    board.say(
        "sidecar: upstreams watch rendered the 'primes' upstream from Consul (wait.min = 0s); "
        f"its status: http://127.0.0.1:{status_port}/status"
    )
    stack.push_async_callback(replicas.close)
    actions = Actions(board, replicas)
    for _ in range(options.replicas):
        await actions.start()
    story = Story(board, actions, options.replicas)
    traffic = await stack.enter_async_context(Traffic(board.nginx_url, board))
    background: list[Coroutine[Any, Any, None]] = [
        watch_health(consul, env.get("CONSUL_HTTP_TOKEN"), board),
        follow_reloads(paths, board),
        _tick(board),
        _supervise(children),
        *(traffic.run() for _ in range(CLIENTS)),
    ]
    try:
        async with asyncio.timeout(_remaining(options.duration, board)), asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(c) for c in background]
            if options.interactive:
                tasks.append(tg.create_task(_count_when_all_serve(board)))
                await read_keys(actions)
            else:
                await story.run()
                await asyncio.Event().wait()  # keep serving until the duration ends or a signal
            for task in tasks:
                task.cancel()
    except TimeoutError:
        board.say(f"duration of {options.duration:g}s is over")
    _summary(board)
    return 1 if story.failed else 0


async def _consul(
    options: DemoOptions,
    workdir: Path,
    env: Mapping[str, str],
    stack: AsyncExitStack,
    children: list[Child],
    board: Board,
) -> str:
    if options.consul_address:
        address = options.consul_address  # already a URL: see options.consul_address
        await wait_for_leader(address)
        board.say(f"Consul: using {address} (given with --consul-address)")
        return address
    child, address = await start_consul(workdir, env, stack)
    children.append(child)
    board.say(f"Consul: dev agent started at {address}")
    return address


async def _replicas(
    options: DemoOptions, workdir: Path, services_dir: Path, env: Mapping[str, str], stack: AsyncExitStack
) -> tuple[ReplicaSet, str | None]:
    """Podman containers when possible (or demanded), else local processes; and the engine's URL."""
    why = "--engine processes was given" if options.engine == "processes" else engine_missing(env)
    if why is None:
        folder = workdir / "engine"
        folder.mkdir()
        podman = Podman(folder, env)
        stack.push_async_callback(podman.stop)
        try:
            await podman.start()
            return ContainerReplicas(podman), podman.url
        except PartFailed as exc:
            if options.engine == "podman":
                raise
            await podman.stop()
            why = f"Podman did not start: {exc}"
    elif options.engine == "podman":
        raise PartFailed(f"Podman cannot be used: {why}.")
    return ProcessReplicas(workdir, services_dir, env, why), None


def _remaining(duration: float | None, board: Board) -> float | None:
    """What is left of ``--duration``, which counts from the demo's start (start-up included)."""
    return None if duration is None else max(0.0, duration - (time.monotonic() - board.started))


async def _tick(board: Board) -> None:
    while True:
        board.tick(time.monotonic())
        await asyncio.sleep(0.05)


async def _count_when_all_serve(board: Board) -> None:
    """Interactive mode counts failed requests from the same point as the story: all replicas serve."""
    while not board.all_serve():  # noqa: ASYNC110 - the board is plain state, polled as the view does
        await asyncio.sleep(0.05)
    board.start_counting()
    board.say(f"all {len(board.rows)} replicas serve; failed requests are counted from now")


async def _supervise(children: list[Child]) -> None:
    """Fail the demo, naming the part, when one of its processes exits on its own."""
    while True:
        for child in children:
            if not child.running:
                raise child.failure("exited unexpectedly")
        await asyncio.sleep(0.2)


def _summary(board: Board) -> None:
    served = ", ".join(f"{r.replica.name} {r.served}" for r in board.rows.values())
    board.say(f"summary: requests answered through nginx: {served}")
    for kind in ("join", "leave"):
        values = [m.latency * 1000 for m in board.measurements if m.kind == kind and m.latency is not None]
        if values:
            board.say(
                f"summary: {kind} latency (Consul -> nginx) over {len(values)} changes: median "
                f"{statistics.median(values):.0f} ms, max {max(values):.0f} ms"
            )
    # Not counting means not every replica ever served: a 0 would claim more than was seen.
    errors = board.errors if board.counting else "not counted (not every replica served)"
    board.say(
        f"summary: nginx reloads: {board.reloads}; {board.errors_label}: {errors}; "
        f"answers cut short by a killed replica: {board.cut_short}"
    )
    board.say("stopping: replicas, companion, Podman, sidecar, nginx, Consul; removing temporary files")


def _goodbye(workdir: Path) -> None:
    gone = "removed" if not workdir.exists() else "could NOT be removed completely"
    print(f"upstreams demo: stopped everything it started; {workdir} {gone}.", flush=True)
