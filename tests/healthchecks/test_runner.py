"""Checks the companion runs on the host: timeouts kill, output is bounded, exit codes map like Consul's."""

from __future__ import annotations

import asyncio
import time

from healthchecks.runner import run_host_script, status_for_exit


def test_exit_codes_map_like_consul() -> None:
    assert [status_for_exit(c) for c in (0, 1, 2, 127, -9)] == [
        "passing",
        "warning",
        "critical",
        "critical",
        "critical",
    ]


def test_a_hanging_script_is_killed_at_its_timeout_with_its_children() -> None:
    started = time.monotonic()
    _code, output, timed_out = asyncio.run(
        run_host_script(("sh", "-c", "echo before; sleep 30 & wait"), 0.3, 1000)
    )
    assert timed_out and output == "before\n"
    assert time.monotonic() - started < 2


def test_output_is_bounded() -> None:
    code, output, timed_out = asyncio.run(
        run_host_script(("sh", "-c", "yes | head -c 100000; exit 3"), 5, 100)
    )
    assert (code, len(output), timed_out) == (3, 100, False)


def test_a_missing_program_is_reported() -> None:
    code, output, _ = asyncio.run(run_host_script(("/nonexistent/check",), 1, 100))
    assert code == 127 and "/nonexistent/check" in output
