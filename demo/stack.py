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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.nginx import NginxServer
from harness.podman import Podman, engine_missing
from harness.ports import free_port
from harness.process import Child, PartFailed
from plumbing.errors import unwrap_group

from .actions import Actions
from .board import Board
from .consul import start_consul, wait_for_leader
from .daemons import start_companion, start_sidecar
from .health import watch_health
from .keys import HELP, read_keys, terminal_keys
from .nginx import first_render, follow_reloads, nginx_paths, reserve_check, start_nginx
from .options import DemoOptions
from .replicas import ContainerReplicas, ProcessReplicas, ReplicaSet
from .story import Story
from .traffic import Traffic
from .view import show
from .workdir import make_workdir, remove_workdir

__all__ = ["run_demo"]

CLIENTS = 2


@dataclass(frozen=True)
class _Context:
    """What every start-up step needs: the options and environment, the folder for files, the board, the
    exit stack that stops each part in reverse order, and the processes to supervise."""

    options: DemoOptions
    env: Mapping[str, str]
    board: Board
    workdir: Path
    stack: AsyncExitStack
    children: list[Child] = field(default_factory=list)


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
            return await _run(_Context(options, env, board, workdir, stack))
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


async def _run(ctx: _Context) -> int:
    port = ctx.options.port or free_port()
    reserve_check("nginx", port)  # before anything starts: the likeliest mistake fails fast
    consul = await _consul(ctx)
    nginx = await _nginx(ctx, port)
    replicas = await _daemons(ctx, consul, nginx)
    actions = Actions(ctx.board, replicas)
    for _ in range(ctx.options.replicas):
        await actions.start()
    story = Story(ctx.board, actions, ctx.options.replicas)
    traffic = await ctx.stack.enter_async_context(Traffic(ctx.board.nginx_url, ctx.board))
    background: list[Coroutine[Any, Any, None]] = [
        watch_health(consul, ctx.env.get("CONSUL_HTTP_TOKEN"), ctx.board),
        follow_reloads(nginx, ctx.board),
        _tick(ctx.board),
        _supervise(ctx.children),
        *(traffic.run() for _ in range(CLIENTS)),
    ]
    await _play(ctx, actions, story, background)
    _summary(ctx.board)
    return 1 if story.failed else 0


async def _play(
    ctx: _Context, actions: Actions, story: Story, background: list[Coroutine[Any, Any, None]]
) -> None:
    """Run the story (or follow keys) beside the background tasks, until the duration ends."""
    try:
        async with asyncio.timeout(_remaining(ctx.options.duration, ctx.board)), asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(c) for c in background]
            if ctx.options.interactive:
                tasks.append(tg.create_task(_count_when_all_serve(ctx.board)))
                await read_keys(actions)
            else:
                await story.run()
                await asyncio.Event().wait()  # keep serving until the duration ends or a signal
            for task in tasks:
                task.cancel()
    except TimeoutError:
        ctx.board.say(f"duration of {ctx.options.duration:g}s is over")


async def _consul(ctx: _Context) -> str:
    if ctx.options.consul_address:
        address = ctx.options.consul_address  # already a URL: see options.consul_address
        await wait_for_leader(address)
        ctx.board.say(f"Consul: using {address} (given with --consul-address)")
        return address
    child, address = await start_consul(ctx.workdir, ctx.env, ctx.stack)
    ctx.children.append(child)
    ctx.board.say(f"Consul: dev agent started at {address}")
    return address


async def _nginx(ctx: _Context, port: int) -> NginxServer:
    nginx = nginx_paths(ctx.workdir, port, ctx.env)
    ctx.children.append(await start_nginx(nginx, ctx.stack))
    ctx.board.nginx_url = f"http://127.0.0.1:{port}/"
    ctx.board.say(f"nginx: listening on {ctx.board.nginx_url} (prefix {nginx.dir})")
    return nginx


async def _daemons(ctx: _Context, consul: str, nginx: NginxServer) -> ReplicaSet:
    """Start the sidecar, the replicas' engine and the companion; return the replicas once the sidecar
    has rendered."""
    status_port = free_port()
    sidecar = await start_sidecar(ctx.workdir, consul, nginx, status_port, ctx.env)
    ctx.stack.push_async_callback(sidecar.stop)
    ctx.children.append(sidecar)
    services_dir = ctx.workdir / "services"
    services_dir.mkdir()
    replicas, engine_url = await _replicas(ctx, services_dir)
    ctx.board.say(f"replicas: {replicas.kind}")
    companion = await start_companion(ctx.workdir, consul, engine_url, services_dir, ctx.env)
    ctx.stack.push_async_callback(companion.stop)
    ctx.children.append(companion)
    ctx.board.say("companion: upstreams-registrar registers each replica with its health check")
    await first_render(nginx, sidecar)  # started above, so both daemons start up at the same time
    ctx.board.say(
        "sidecar: upstreams watch rendered the 'primes' upstream from Consul (wait.min = 0s); "
        f"its status: http://127.0.0.1:{status_port}/status"
    )
    ctx.stack.push_async_callback(replicas.close)
    return replicas


async def _replicas(ctx: _Context, services_dir: Path) -> tuple[ReplicaSet, str | None]:
    """Podman containers when possible (or demanded), else local processes; and the engine's URL."""
    options = ctx.options
    why = "--engine processes was given" if options.engine == "processes" else engine_missing(ctx.env)
    if why is None:
        folder = ctx.workdir / "engine"
        folder.mkdir()
        podman = Podman(folder, ctx.env)
        ctx.stack.push_async_callback(podman.stop)
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
    return ProcessReplicas(ctx.workdir, services_dir, ctx.env, why), None


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
