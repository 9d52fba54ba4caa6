"""``upstreams demo --interactive``: keys work however fast they are typed, Enter does not quit, and failed
requests are counted as the story counts them (from the moment every replica serves)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

import pytest

from demo.keys import parse_keys
from tests.demo.test_demo import UPSTREAMS, demo_env


def test_a_burst_of_keys_is_every_key_and_enter_does_nothing() -> None:
    assert parse_keys("", "f2") == ([("f", "2")], "", False)
    assert parse_keys("", "f") == ([], "f", False)
    assert parse_keys("f", "2\n") == ([("f", "2")], "", False)
    assert parse_keys("", "\n\r ") == ([], "", False)
    assert parse_keys("", "sK3r1") == ([("s", ""), ("k", "3"), ("r", "1")], "", False)
    assert parse_keys("", "f2q r1") == ([("f", "2")], "", True)


class Terminal:
    """The demo on a pseudo-terminal, as a person runs it."""

    def __init__(self, engine: str) -> None:
        self.master, slave = pty.openpty()
        argv = [UPSTREAMS, "demo", "--interactive", "--plain", "--engine", engine, "--duration", "90"]
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=demo_env())
        os.close(slave)
        self.out = ""

    def read(self, wait: float) -> bool:
        """Append what the demo printed within ``wait`` seconds; False once it closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], wait)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every copy of the terminal is closed
                return False
            self.out += chunk.decode(errors="replace")
        return True

    def wait_for(self, pattern: str, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            left = deadline - time.monotonic()
            assert left > 0 and self.proc.poll() is None, f"no {pattern!r} in:\n{self.out}"
            assert self.read(min(left, 0.5)), f"the demo ended before {pattern!r}:\n{self.out}"

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> int:
        try:
            deadline = time.monotonic() + 30
            while self.read(0.2) and time.monotonic() < deadline:
                if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                    break
            return self.proc.wait(5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", ["podman", "processes"])
def test_fail_and_recover_typed_fast_count_no_failed_request(engine: str) -> None:
    term = Terminal(engine)
    try:
        term.wait_for(r"failed requests are counted from now")
        term.type(b"f2")  # one burst, as people type
        term.wait_for(r"prime-2 left rotation")
        term.type(b"\n")  # Enter alone must not end the demo
        term.type(b"r2")
        term.wait_for(r"prime-2 joined rotation")
        assert term.proc.poll() is None
        term.type(b"q")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert "a request through nginx failed" not in term.out, term.out
    assert re.search(r"failed requests since all replicas served: 0\b", term.out), term.out
