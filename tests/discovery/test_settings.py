"""Consul settings: config keys, consul's environment conventions, strict validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.settings import ConsulSettings
from plumbing.errors import ConfigError
from plumbing.table import Table


def settings(
    table: dict[str, object], env: dict[str, str] | None = None, base: Path = Path("/")
) -> ConsulSettings:
    return ConsulSettings.from_table(Table(table, "x.toml [consul]"), env or {}, base)


def test_defaults_to_local_agent() -> None:
    s = settings({})
    assert (s.scheme, s.host, s.port, s.token) == ("http", "127.0.0.1", 8500, None)


def test_environment_fills_what_the_file_leaves_out() -> None:
    s = settings({}, {"CONSUL_HTTP_ADDR": "consul.service:8600", "CONSUL_HTTP_TOKEN": "t0k"})
    assert (s.host, s.port, s.token) == ("consul.service", 8600, "t0k")
    assert settings({"address": "http://10.0.0.1:1"}, {"CONSUL_HTTP_ADDR": "x:2"}).host == "10.0.0.1"


def test_https_from_scheme_or_consul_http_ssl() -> None:
    assert settings({"address": "https://c:8501"}).scheme == "https"
    assert settings({}, {"CONSUL_HTTP_ADDR": "c:8501", "CONSUL_HTTP_SSL": "true"}).scheme == "https"


def test_unix_socket_address() -> None:
    s = settings({"address": "unix:///run/consul.sock"})
    assert s.unix_socket == "/run/consul.sock"


def test_token_file_wins_over_env_token_and_is_never_printed(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("secret-from-file\n")
    (tmp_path / "envtok").write_text("secret-from-env-file")
    s = settings({"token_file": "tok"}, {"CONSUL_HTTP_TOKEN": "plain"}, tmp_path)
    assert s.token == "secret-from-file"
    s2 = settings({}, {"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "envtok"), "CONSUL_HTTP_TOKEN": "plain"})
    assert s2.token == "secret-from-env-file"
    assert "secret" not in repr(s) and "secret" not in repr(s2)


def test_unreadable_or_empty_token_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read the Consul token file"):
        settings({"token_file": "missing"}, base=tmp_path)
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        settings({"token_file": "empty"}, base=tmp_path)


@pytest.mark.parametrize("address", ["ftp://x:1", "http://x:99999", "http://x:1/path", "://"])
def test_bad_addresses_are_rejected(address: str) -> None:
    with pytest.raises(ConfigError, match="is not host:port"):
        settings({"address": address})


def test_unknown_keys_and_wrong_types_are_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown key 'adress'"):
        settings({"adress": "x"})
    with pytest.raises(ConfigError, match="key 'verify' must be true or false"):
        settings({"verify": "yes"})


def test_missing_tls_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ca_file' names .* which does not exist"):
        settings({"ca_file": "nope.pem"}, base=tmp_path)


def test_max_stale_defaults_to_reads_the_leader_answers_and_takes_a_duration() -> None:
    assert settings({}).max_stale == 0.0
    assert settings({"max_stale": "10s"}).max_stale == 10.0
    with pytest.raises(ConfigError, match="max_stale"):
        settings({"max_stale": "forever"})
