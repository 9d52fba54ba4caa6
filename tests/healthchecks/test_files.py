"""Service files (TOML and JSON) -> specs; strict, with errors naming the file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from healthchecks.files import ServiceFiles, load_service_file
from plumbing.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_toml_and_json_give_the_same_spec(tmp_path: Path) -> None:
    toml = write(
        tmp_path / "db.toml",
        'name = "db"\nport = 5432\ntags = ["a", "a", "b"]\n[meta]\nv = "1"\n'
        '[[checks]]\nshell = "pg_isready"\ninterval = "5s"\n',
    )
    data = {
        "name": "db",
        "port": 5432,
        "tags": ["a", "b"],
        "meta": {"v": "1"},
        "checks": [{"shell": "pg_isready", "interval": "5s"}],
    }
    js = write(tmp_path / "db2.json", json.dumps(data))
    a = load_service_file(toml, "h1", "10.0.0.1")
    b = load_service_file(js, "h1", "10.0.0.1")
    assert a.id == "h1:file:db" and b.id == "h1:file:db2"
    assert (a.name, a.address, a.port, a.tags, a.meta) == ("db", "10.0.0.1", 5432, ("a", "b"), (("v", "1"),))
    assert a.checks[0].argv == ("/bin/sh", "-c", "pg_isready") and a.checks[0].container_id is None
    assert a.checks == tuple(
        c.__class__(**{**c.__dict__, "check_id": c.check_id.replace("db2", "db")}) for c in b.checks
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nprot = 1\n', "unknown key 'prot'"),
        ('name = "a/b"\n', "key 'name' must be"),
        ('name = "x"\nport = 70000\n', "key 'port' must be between"),
        ('name = "x"\n[meta]\n"consul-x" = "y"\n', "key 'meta' has key 'consul-x'"),
        ('name = "x"\n[[checks]]\nhttp = "a"\ntcp = "b"\n', "exactly one of"),
        (
            'name = "x"\n[[checks]]\nttl = "30s"\ninitial_status = "green"\n',
            "key 'initial_status' must be one of",
        ),
        ('name = "x"\n[[checks]]\nttl = "30s"\nderegister_after = "5s"\n', "at least 1m"),
        ('name = "x"\n[[checks]]\nhttp = "ftp://x"\n', "key 'http' must be an http"),
    ],
)
def test_bad_files_are_config_errors_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "svc.toml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_service_file(path, "h1", "127.0.0.1")
    assert "svc.toml" in str(info.value)


def test_a_file_that_turns_bad_keeps_its_last_good_version(tmp_path: Path) -> None:
    files = ServiceFiles(tmp_path, "h1", "127.0.0.1")
    write(tmp_path / "a.toml", 'name = "a"\nport = 1\n')
    write(tmp_path / ".hidden.toml", 'name = "hidden"\n')
    write(tmp_path / "notes.txt", "ignored")
    (first,) = files.load()
    write(tmp_path / "a.toml", "name = ")
    assert files.load() == (first,)
    assert len(files.check_all()) == 1
    (tmp_path / "a.toml").unlink()
    assert files.load() == ()
