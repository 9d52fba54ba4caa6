"""The sidecar's config file: every mistake is an error at start-up naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbing.errors import ConfigError
from renderer.config import load_config


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "t.j2").write_text("x")
    path = tmp_path / "sidecar.toml"
    path.write_text(body)
    return path


TEMPLATE = '[[template]]\nsource = "t.j2"\ndestination = "out.conf"\n'


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TEMPLATE), {})
    assert config.wait.min == 0 and config.wait.max == 0
    assert config.nginx.check_command == ("nginx", "-t", "-q")
    assert config.nginx.pid_file == Path("/run/nginx.pid")
    assert config.nginx.check == "structural"
    (t,) = config.templates
    assert t.source == tmp_path / "t.j2" and t.destination == tmp_path / "out.conf"
    assert t.perms is None and t.backup is False


def test_full_config(tmp_path: Path) -> None:
    body = """[consul]
address = "http://10.0.0.2:8500"
[wait]
min = "100ms"
max = "1s"
[nginx]
reload_command = ["nginx", "-s", "reload"]
check_command = ["nginx", "-t"]
[[template]]
source = "t.j2"
destination = "out.conf"
perms = "0640"
backup = true
"""
    config = load_config(write(tmp_path, body), {})
    assert (config.wait.min, config.wait.max) == (0.1, 1.0)
    assert config.nginx.reload_command == ("nginx", "-s", "reload") and config.nginx.pid_file is None
    assert config.templates[0].perms == 0o640 and config.templates[0].backup


def test_check_always_is_accepted(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, '[nginx]\ncheck = "always"\n' + TEMPLATE), {}).nginx.check == "always"


def test_only_min_means_max_is_four_times_min(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[wait]\nmin = "2s"\n' + TEMPLATE), {})
    assert config.wait.max == 8.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[wait]\nmin = "2s"\nmax = "1s"\n' + TEMPLATE,
            r"\[wait\]: key 'max' \(1s\) must not be less than 'min'",
        ),
        ("[wait]\nmin = 5\n" + TEMPLATE, "key 'min' must be a duration string"),
        ("[wiat]\n" + TEMPLATE, "unknown key 'wiat'"),
        ('[nginx]\npid_file = "/p"\nreload_command = ["x"]\n' + TEMPLATE, "cannot be given together"),
        ("[nginx]\ncheck_command = []\n" + TEMPLATE, "must name a command"),
        (
            '[nginx]\ncheck = "never"\n' + TEMPLATE,
            "key 'check' must be \"structural\" or \"always\", not 'never'",
        ),
        ("", r"no \[\[template\]\] is configured"),
        (
            '[[template]]\nsource = "missing.j2"\ndestination = "o"\n',
            "names .*missing.j2, which is not a readable file",
        ),
        ('[[template]]\nsource = "t.j2"\ndestination = "/no/such/dir/o"\n', "which is not a directory"),
        ('[[template]]\ndestination = "o"\n', "key 'source' is required"),
        (TEMPLATE + 'perms = "rw"\n', "key 'perms' must be an octal mode"),
        (TEMPLATE + 'colour = "red"\n', r"\[\[template\]\] #1: unknown key 'colour'"),
        (TEMPLATE + TEMPLATE, "is also the destination of"),
        ("[consul\n", "is not valid TOML"),
    ],
)
def test_mistakes_are_errors_naming_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, {})
    assert str(path) in str(info.value)


def test_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read config file"):
        load_config(tmp_path / "nope.toml", {})
