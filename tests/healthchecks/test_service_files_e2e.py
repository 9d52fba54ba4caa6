"""Declarative service files, watched with watchdog, against a real Consul agent (no engine)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.healthchecks.conftest import checks_of, owned
from tests.support.consul_agent import ConsulAgent
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

HOST = "test-host-files"

DB = """\
name = "db"
port = 5432
tags = ["primary"]

[meta]
version = "15"

[[checks]]
script = ["sh", "-c", "test -f {flag} || exit 2"]
interval = "500ms"
timeout = "2s"
"""


def test_service_files_are_registered_updated_and_deregistered(
    tmp_path: Path, consul: ConsulAgent, companion_factory
) -> None:
    services = tmp_path / "services.d"
    services.mkdir()
    flag = tmp_path / "healthy"
    flag.touch()
    (services / "db.toml").write_text(DB.format(flag=flag))
    companion = companion_factory(None, services_dir=str(services)).start()
    sid = f"{HOST}:file:db"
    wait_until(lambda: checks_of(consul, sid).get(f"{sid}:check1") == "passing", 15, what="db passing")
    assert owned(consul, HOST)[sid]["Meta"]["version"] == "15"

    # The host script check follows the host's state.
    flag.unlink()
    wait_until(lambda: checks_of(consul, sid).get(f"{sid}:check1") == "critical", 10, what="db critical")

    # Added: a JSON file with an HTTP check run by the agent.
    started = time.monotonic()
    (services / "api.json").write_text(
        json.dumps({"name": "api", "port": 8081, "checks": [{"tcp": "127.0.0.1:1", "interval": "10s"}]})
    )
    wait_until(lambda: f"{HOST}:file:api" in owned(consul, HOST), 5, what="api registered")
    added = time.monotonic() - started

    # Edited: new port and tags.
    (services / "db.toml").write_text(
        DB.format(flag=flag).replace("5432", "5433").replace("primary", "replica")
    )
    wait_until(lambda: owned(consul, HOST)[sid]["Port"] == 5433, 5, what="db port updated")
    assert owned(consul, HOST)[sid]["Tags"] == ["replica"]

    # A broken edit keeps the last good version and is reported.
    (services / "db.toml").write_text("name = [broken")
    wait_until(lambda: "is not valid TOML" in companion.output(), 5, what="error logged")
    assert owned(consul, HOST)[sid]["Port"] == 5433

    # Removed.
    started = time.monotonic()
    (services / "db.toml").unlink()
    wait_until(lambda: sid not in owned(consul, HOST), 5, what="db deregistered")
    removed = time.monotonic() - started
    assert sorted(owned(consul, HOST)) == [f"{HOST}:file:api"]
    assert added < 1.0 and removed < 1.0, (added, removed)
    assert companion.stop() == 0
    assert owned(consul, HOST) == {}
