"""Pure parts of leaving out rejected instances: nginx's words, the line, the instances it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.model import Instance, ServiceQuery, Snapshot
from renderer.exclusion import (
    CheckProblem,
    Exclusion,
    culprits,
    find_exclusions,
    line_of,
    parse_check_error,
    server_argument,
    still_registered,
    without,
)
from renderer.nginx import _one_line


def inst(sid: str, address: str, port: int = 80, name: str = "api", status: str = "passing") -> Instance:
    return Instance(node="n1", id=sid, name=name, address=address, port=port, status=status)  # type: ignore[arg-type]


QUIET = (
    '2026/12/01 07:58:33 [emerg] 7450#7450: host not found in upstream "no-such-host.invalid:80" '
    "in /etc/nginx/conf.d/upstreams.conf:3\nnginx: configuration file /etc/nginx/nginx.conf test failed\n"
)
LOUD = (
    'nginx: [emerg] invalid port in upstream "127.0.0.1:0" in /x/up.conf:12\n'
    "nginx: configuration file /x/nginx.conf test failed\n"
)


def test_check_output_in_both_of_nginxs_formats_names_file_line_and_reason() -> None:
    assert parse_check_error(QUIET) == CheckProblem(
        Path("/etc/nginx/conf.d/upstreams.conf"), 3, 'host not found in upstream "no-such-host.invalid:80"'
    )
    assert parse_check_error(LOUD) == CheckProblem(
        Path("/x/up.conf"), 12, 'invalid port in upstream "127.0.0.1:0"'
    )


def test_the_sidecars_one_line_error_message_still_parses() -> None:
    message = f"nginx rejected the new config (nginx -t -q exited 1): {_one_line(QUIET)}"
    problem = parse_check_error(message)
    assert problem is not None
    assert (problem.file, problem.line) == (Path("/etc/nginx/conf.d/upstreams.conf"), 3)


def test_a_reason_containing_in_ends_at_the_last_file_and_line() -> None:
    problem = parse_check_error('nginx: [emerg] unknown "x" variable in map in /a/b.conf:7')
    assert problem == CheckProblem(Path("/a/b.conf"), 7, 'unknown "x" variable in map')


@pytest.mark.parametrize(
    "output",
    [
        'nginx: [emerg] no "events" section in configuration\n',
        'nginx: [warn] the "user" directive makes sense only if ... in /x.conf:1\n',
        "cannot run nginx: No such file or directory",
        "",
    ],
)
def test_output_naming_no_error_line_gives_none(output: str) -> None:
    assert parse_check_error(output) is None


def test_line_numbers_count_newlines_from_one() -> None:
    text = "a\nb\n\nd"
    assert [line_of(text, n) for n in (1, 2, 3, 4)] == ["a", "b", "", "d"]
    assert line_of(text, 0) is None
    assert line_of(text, 5) is None


@pytest.mark.parametrize(
    ("line", "argument"),
    [
        ("    server no-such-host.invalid:80;", "no-such-host.invalid:80"),
        ("server 10.0.0.1:80 weight=3 max_fails=2;", "10.0.0.1:80"),
        ("    server [::1]:8080 backup;", "[::1]:8080"),
        ('    server "a b:80";', "a b:80"),
        ('    server "q\\"uote\\\\:80";', 'q"uote\\:80'),
        ("    server {", None),
        ("    server_name example.org;", None),
        ("    listen 80;", None),
        ("# server x:80;", None),
    ],
)
def test_server_argument_is_the_unquoted_address_of_a_server_directive(
    line: str, argument: str | None
) -> None:
    assert server_argument(line) == argument


def test_the_line_maps_to_the_instance_with_that_address_and_port() -> None:
    bad, good, same_host = (
        inst("bad", "no-such-host.invalid"),
        inst("ok", "127.0.0.2"),
        inst("other-port", "no-such-host.invalid", port=81),
    )
    found = culprits("    server no-such-host.invalid:80 weight=2;", [bad, good, same_host])
    assert found == {bad}


def test_instances_writing_the_same_line_cannot_be_told_apart_and_all_are_returned() -> None:
    a, b = inst("a", "bad.invalid"), inst("b", "bad.invalid", name="web")
    assert culprits("server bad.invalid:80;", [a, b, inst("c", "127.0.0.1")]) == {a, b}


def test_an_address_written_without_its_port_maps_to_every_instance_of_that_host() -> None:
    a, b = inst("a", "bad.invalid", 80), inst("b", "bad.invalid", 81)
    assert culprits("server bad.invalid;", [a, b, inst("c", "bad.invalid.example")]) == {a, b}
    v6 = inst("v6", "::1", 9)
    assert culprits("server [::1]:9;", [v6]) == {v6}


def test_a_line_not_written_from_an_instance_maps_to_none() -> None:
    pool = [inst("a", "127.0.0.1", 1)]
    assert culprits("    server 127.0.0.1:1 down;", []) == frozenset()
    assert culprits("this_is_not_an_nginx_directive on;", pool) == frozenset()
    assert culprits("    server 127.0.0.9:1;", pool) == frozenset()


def snapshot(*instances: Instance) -> Snapshot:
    by_name: dict[ServiceQuery, tuple[Instance, ...]] = {}
    for i in instances:
        by_name[ServiceQuery(i.name)] = (*by_name.get(ServiceQuery(i.name), ()), i)
    return Snapshot.build(by_name, {}, {})


def test_find_exclusions_looks_only_at_services_the_template_read() -> None:
    api, web = inst("a", "bad.invalid"), inst("w", "bad.invalid", name="web")
    problem = CheckProblem(Path("/x/up.conf"), 2, "host not found")
    text = "upstream api {\n    server bad.invalid:80;\n}\n"
    found = find_exclusions(problem, text, {ServiceQuery("api")}, snapshot(api, web))
    assert found == (Exclusion(api, "host not found", Path("/x/up.conf"), 2),)
    assert (
        find_exclusions(CheckProblem(Path("/x"), 99, "r"), text, {ServiceQuery("api")}, snapshot(api)) == ()
    )


def test_without_leaves_the_registration_out_whatever_its_health() -> None:
    bad, good = inst("bad", "bad.invalid"), inst("ok", "127.0.0.1")
    critical = inst("bad", "bad.invalid", status="critical")
    assert without(snapshot(critical, good), [bad]) == snapshot(good)
    assert without(snapshot(bad, good), []) == snapshot(bad, good)


def test_an_exclusion_lasts_until_the_registration_changes_or_leaves() -> None:
    bad = inst("bad", "bad.invalid")
    e = Exclusion(bad, "host not found", Path("/x"), 1)
    assert still_registered([e], snapshot(inst("bad", "bad.invalid", status="warning"))) == (e,)
    assert still_registered([e], snapshot(inst("bad", "fixed.example"))) == ()
    assert still_registered([e], snapshot(inst("bad", "bad.invalid", port=81))) == ()
    assert still_registered([e], snapshot()) == ()


def test_the_status_entry_names_service_instance_and_reason() -> None:
    e = Exclusion(inst("bad", "bad.invalid"), 'host not found in upstream "bad.invalid:80"', Path("/x"), 3)
    assert e.describe() == {
        "service": "api",
        "id": "bad",
        "node": "n1",
        "address": "bad.invalid",
        "port": 80,
        "reason": 'host not found in upstream "bad.invalid:80"',
        "file": "/x",
        "line": 3,
    }
