"""A real nginx loading the Lua module with the snippet (harness/lua.py), 'primes' hooked over b1 and b2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lua import LuaNginx

__all__ = ["LuaNginx"]


@pytest.fixture
def lua_nginx(tmp_path: Path) -> Iterator[LuaNginx]:
    """nginx with two workers, 'primes' hooked over b1 and b2 in the file, nothing in runtime state."""
    nginx = LuaNginx(tmp_path / "nginx")
    nginx.write_upstream(["b1", "b2"])
    nginx.server.start()
    yield nginx
    nginx.server.stop()
