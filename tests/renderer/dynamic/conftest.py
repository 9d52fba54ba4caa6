"""A real nginx loading the Lua module with the snippet (harness/lua.py), 'primes' hooked over b1 and b2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lua import LuaNginx

__all__ = ["LuaNginx", "assert_no_lua_errors"]


@pytest.fixture
def lua_nginx(tmp_path: Path) -> Iterator[LuaNginx]:
    """nginx with two workers, 'primes' hooked over b1 and b2 in the file, nothing in runtime state."""
    nginx = LuaNginx(tmp_path / "nginx")
    nginx.write_upstream(["b1", "b2"])
    nginx.start()
    yield nginx
    nginx.stop()
    assert_no_lua_errors(nginx)


def assert_no_lua_errors(nginx: LuaNginx) -> None:
    """A Lua exception is logged and answered 500; a test's answers alone might not show it."""
    log = nginx.server.error_log.read_text()
    for marker in ("runtime error", "lua entry thread aborted", "failed to run balancer_by_lua", "[alert]"):
        assert marker not in log, f"nginx logged {marker!r}:\n{log[-2000:]}"
