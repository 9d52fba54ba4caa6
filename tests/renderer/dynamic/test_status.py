"""`upstreams status` shows the mode in dynamic mode, and nothing new in classic mode."""

from __future__ import annotations

from renderer.status import format_status

BASE = {"healthy": True, "consul": "http://127.0.0.1:8500", "reloads": 3, "services": {}}


def test_dynamic_mode_is_one_line_with_the_generation_and_the_last_push() -> None:
    dynamic = {
        "mode": "dynamic",
        "endpoint": "127.0.0.1:9180",
        "generation": 1796123348308,
        "last_push": "2026-12-01T11:09:08+00:00",
        "last_error": None,
    }
    text = format_status({**BASE, "dynamic": dynamic})
    assert (
        "mode:    dynamic (127.0.0.1:9180)    generation: 1796123348308    last push: 2026-12-01T11:09:08"
        in text
    )
    assert "failed" not in text
    failing = format_status(
        {**BASE, "dynamic": {**dynamic, "last_error": "nginx's update endpoint did not answer."}}
    )
    assert "last push failed: nginx's update endpoint did not answer." in failing


def test_classic_mode_prints_what_it_always_did() -> None:
    assert format_status({**BASE, "dynamic": {"mode": "classic"}}) == format_status(BASE)
    assert "mode:" not in format_status(BASE)
