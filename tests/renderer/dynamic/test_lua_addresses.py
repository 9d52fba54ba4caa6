"""The Lua side takes exactly the address literals Python's ipaddress takes (IPv4 strict, IPv6 without zone)."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.lua import LuaNginx

CHUNKS = st.sampled_from(
    ["0", "1", "ff", "FFFF", "10000", "01", "255", "256", ".", ":", "::", "127.0.0.1", "a"]
)


def python_accepts(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text  # a zone cannot be pushed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(CHUNKS, min_size=1, max_size=12).map("".join))
@example("::ffff:127.0.0.1")
@example("1:2:3:4:5:6:7::")
@example("1:2:3:4:5:6:7:8::")
@example("::1:2:3:4:5:6:7:8")
@example("1:2:3:4:5:6:127.0.0.1")
@example("0.0.0.0")
@example(":::1")
@example("1:")
def test_an_address_is_accepted_exactly_when_python_parses_it(lua_nginx: LuaNginx, address: str) -> None:
    # Nothing connects: the upstream is not one nginx routes to.
    status, body = lua_nginx.push({"unrouted": [{"address": address, "port": 80}]})
    assert status == (200 if python_accepts(address) else 400), (address, body)
