"""glibc's malloc arenas capped for the daemons, measured by glibc's own count of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from plumbing.malloc import limit_arenas

# Eight threads allocating (each would get an arena of its own), then glibc's malloc_stats() on stderr.
THREADS = """
import ctypes, sys, threading
from plumbing.malloc import limit_arenas
capped = limit_arenas({}) if sys.argv[1] == "cap" else None
def work():
    for _ in range(200):
        data = [bytearray(4096) for _ in range(50)]
        del data
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(capped)
sys.stdout.flush()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def arenas(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", THREADS, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), sum(1 for line in out.stderr.splitlines() if line.startswith("Arena "))


def test_the_cap_holds_however_many_threads_allocate() -> None:
    printed, count = arenas("cap")
    assert printed == "True"
    assert 1 <= count <= 2


def test_without_the_cap_each_thread_would_take_an_arena() -> None:
    # What the cap is for (and proof that the count above can fail).
    _, count = arenas("none")
    assert count > 2


@pytest.mark.parametrize("value", ["1", "8"])
def test_an_operators_own_setting_wins(value: str) -> None:
    assert limit_arenas({"MALLOC_ARENA_MAX": value}) is False
