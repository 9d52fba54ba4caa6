"""Large answers are decoded in a thread, item by item, to the same value json.loads gives."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

import discovery.decoding
from discovery.client import ConsulClient, consul_errors
from discovery.decoding import LARGE, decode, loads_yielding
from discovery.settings import ConsulSettings
from plumbing.errors import ConsulUnavailable
from tests.support.consul_agent import ConsulAgent

SAMPLES = [
    "[]",
    " [ ] ",
    "{}",
    '{"a": [1, {"b": [2, 3]}], "c": null, "a": "last wins"}',
    '[{"Node": "n1", "Checks": [{"Status": "critical"}]}, 2, "three", [4, [5]], true, null]',
    '"text"',
    "42",
    '\n{"nested": {"deep": {"deeper": [1, 2, {"x": "\\u00e9"}]}}}\t',
    '{"k": {}}',
    "[[], {}, [[]]]",
]
BROKEN = ["", "[", "[1,]", "[1 2]", '{"a" 1}', '{"a": 1,}', "{1: 2}", "[1] x", '{"a": [1, 2}', "nul"]


@pytest.mark.parametrize("text", SAMPLES)
def test_item_by_item_decoding_gives_what_json_loads_gives(text: str) -> None:
    assert loads_yielding(text) == json.loads(text)


@pytest.mark.parametrize("text", BROKEN)
def test_item_by_item_decoding_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        loads_yielding(text)


def big_answer() -> str:
    checks = [
        {"Node": f"n{i % 4}", "CheckID": f"c{i}", "ServiceName": f"s{i}", "Status": "critical"}
        for i in range(3000)
    ]
    text = json.dumps(checks)
    assert len(text) >= LARGE
    return text


def test_a_large_body_is_decoded_in_another_thread_and_a_small_one_inline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []

    def recorded(text: str, *hook: Any) -> Any:
        threads.append(threading.get_ident())
        return loads_yielding(text, *hook)

    monkeypatch.setattr(discovery.decoding, "loads_yielding", recorded)

    async def both() -> tuple[Any, Any, int]:
        return await decode(big_answer()), await decode('[{"small": 1}]'), threading.get_ident()

    large, small, loop_thread = asyncio.run(both())
    assert large == json.loads(big_answer())
    assert small == [{"small": 1}]
    assert len(threads) == 1  # only the large body went through the thread
    assert threads[0] != loop_thread


def client_of(consul: ConsulAgent) -> ConsulClient:
    return ConsulClient(ConsulSettings(host="127.0.0.1", port=consul.http_port))


def test_a_large_answer_from_real_consul_reads_as_json_loads_reads_it_in_a_thread(
    consul: ConsulAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_threads: list[str] = []
    to_thread = asyncio.to_thread

    async def recorded(func: Any, /, *args: Any) -> Any:
        in_threads.append(getattr(func, "__qualname__", "?"))
        return await to_thread(func, *args)

    monkeypatch.setattr(asyncio, "to_thread", recorded)
    for i in range(300):
        consul.register(f"big-{i:03d}", f"big-{i:03d}-1", 9000, Tags=[f"tag-{i}-{'x' * 200}"])

    async def read() -> tuple[Any, Any]:
        client = client_of(consul)
        try:
            _, ours = await client.catalog_services()
            _, theirs = await client.catalog.services()  # py-consul's callback: in a thread too
            return ours, theirs
        finally:
            await client.close()

    ours, theirs = asyncio.run(read())
    raw = consul.api("GET", "/v1/catalog/services")
    assert len(json.dumps(raw)) >= LARGE
    assert ours == theirs == raw
    # Ours item by item; py-consul's own callback (json.loads inside) at least off the loop.
    assert in_threads == ["loads_yielding", "CB.json.<locals>.cb"]


def test_the_filtered_health_read_keeps_py_consuls_error_mapping(consul: ConsulAgent) -> None:
    async def read(expression: str) -> Any:
        client = client_of(consul)
        try:
            async with consul_errors("the checks"):
                return await client.health_state(filter=expression)
        finally:
            await client.close()

    consul.register_ttl("api", "api-1", 9000, status="critical")
    consul.register_ttl("web", "web-1", 9001)
    _, checks = asyncio.run(read('Status != "passing"'))
    assert [c["ServiceID"] for c in checks] == ["api-1"]
    with pytest.raises(ConsulUnavailable, match=r"^Consul could not answer the checks: 500 Failed"):
        asyncio.run(read("Status =="))  # Consul 1.8 answers 500 to a filter it cannot parse


def test_an_item_hook_replaces_or_drops_second_level_items_as_they_are_decoded() -> None:
    text = '{"Node": {"Node": "n1", "Meta": {"Service": "x"}}, "Services": {"a": {"Service": "api", "Proxy": {}}, "b": {"Service": "db"}}, "n": 3}'
    seen: list[Any] = []

    def item(path: Any, value: Any) -> Any:
        seen.append(path)
        if path[0] != "Services":
            return value
        return {"kept": value["Service"]} if value["Service"] == "api" else discovery.decoding.DROP

    got = loads_yielding(text, item)
    assert got == {
        "Node": {"Node": "n1", "Meta": {"Service": "x"}},
        "Services": {"a": {"kept": "api"}},
        "n": 3,
    }
    assert seen == [("Node", "Node"), ("Node", "Meta"), ("Services", "a"), ("Services", "b")]
    assert asyncio.run(decode("[[1, 2], [3]]", lambda path, v: v * 10)) == [[10, 20], [30]]


@pytest.mark.parametrize(
    ("settings", "plain"),
    [
        (ConsulSettings(host="127.0.0.1"), True),
        (ConsulSettings(host="127.0.0.9"), True),
        (ConsulSettings(host="::1"), True),
        (ConsulSettings(host="localhost"), True),
        (ConsulSettings(host="consul.example"), False),
        (ConsulSettings(host="10.0.0.5"), False),
    ],
)
def test_answers_over_loopback_are_asked_for_uncompressed(settings: ConsulSettings, plain: bool) -> None:
    async def headers() -> Any:
        client = ConsulClient(settings)
        try:
            return client.http._session.headers.get("Accept-Encoding")
        finally:
            await client.close()

    assert asyncio.run(headers()) == ("identity" if plain else None)
