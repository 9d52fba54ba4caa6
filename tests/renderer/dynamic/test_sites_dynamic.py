"""nginx.sites() in dynamic mode: its upstreams carry the balancer hook like every macro upstream, a
health flip of a site's instance is a push (no reload), and a real nginx routes a host name by it."""

from __future__ import annotations

import http.client
from collections import Counter
from pathlib import Path

from discovery.model import CatalogQuery, Instance, ServiceQuery, ServiceSummary, Snapshot
from discovery.sites import HOST_META, PATH_META
from harness.lua import HOOK, LuaNginx
from harness.ports import free_port
from renderer.dynamic.plan import plan
from renderer.dynamic.texts import parse
from renderer.template import TemplateSet

DEST = Path("/etc/nginx/conf.d/sites.conf")


def app(name: str, sid: str, port: int, status: str = "passing", path: str = "/") -> Instance:
    meta = ((HOST_META, f"{name}.test"), (PATH_META, path))
    return Instance("n1", sid, name, "127.0.0.1", port, status=status, meta=meta)  # type: ignore[arg-type]


def snapshot(*instances: Instance) -> Snapshot:
    names = sorted({i.name for i in instances})
    services = {ServiceQuery(n): tuple(i for i in instances if i.name == n) for n in names}
    return Snapshot.build(services, {CatalogQuery(): tuple(ServiceSummary(n) for n in names)}, {})


def renderer(tmp_path: Path, listen: str, dynamic: bool) -> tuple[TemplateSet, Path]:
    source = tmp_path / f"sites-{dynamic}.j2"
    source.write_text(f'{{% import "nginx.j2" as nginx %}}\n{{{{ nginx.sites("{listen}", keepalive=4) }}}}\n')
    templates = TemplateSet([source], dynamic=dynamic)
    assert templates.load() == []
    return templates, source


def test_every_site_upstream_carries_the_hook_and_nothing_else_changes(tmp_path: Path) -> None:
    snap = snapshot(app("app", "a1", 81), app("api", "p1", 83, path="/api"))
    on, on_source = renderer(tmp_path, "127.0.0.1:8080", True)
    off, off_source = renderer(tmp_path, "127.0.0.1:8080", False)
    hooked, plain = on.render(on_source, snap).text, off.render(off_source, snap).text
    for name in ("site_app", "site_api"):
        assert f"upstream {name} {{\n    server 127.0.0.1:8" in hooked
        assert HOOK.format(name=name) + "    keepalive 4;\n}" in hooked  # after the servers, before keepalive
    assert "balancer_by_lua" not in plain
    assert hooked.replace(HOOK.format(name="site_app"), "").replace(HOOK.format(name="site_api"), "") == plain


def test_a_health_flip_of_a_site_instance_is_a_push_of_that_upstream_only(tmp_path: Path) -> None:
    templates, source = renderer(tmp_path, "127.0.0.1:8080", True)
    before = snapshot(app("app", "a1", 81), app("app", "a2", 82), app("api", "p1", 83, path="/api"))
    after = snapshot(
        app("app", "a1", 81), app("app", "a2", 82, "critical"), app("api", "p1", 83, path="/api")
    )
    old, new = templates.render(source, before).text, templates.render(source, after).text
    found = plan({DEST: parse(old)}, {DEST: parse(new)}, hooked_only=True)
    assert found is not None, "a server-only change of a site upstream must not need a reload"
    assert {name: [p.port for p in peers] for name, peers in found.changed.items()} == {"site_app": [81]}
    assert {name: [p.port for p in peers] for name, peers in found.state.items()} == {
        "site_app": [81],
        "site_api": [83],
    }


def get(port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def test_a_site_is_routed_by_host_name_through_the_lua_balancer(tmp_path: Path) -> None:
    # The front server proxies to site_app too: the harness needs an upstream of its name to exist.
    nginx = LuaNginx(tmp_path / "nginx", upstream="site_app")
    ports, listen = nginx.backends, free_port()
    templates, source = renderer(tmp_path, f"127.0.0.1:{listen}", True)
    snap = snapshot(app("app", "a1", ports["b1"]), app("app", "a2", ports["b2"]))
    (nginx.server.conf_d / "sites.conf").write_text(templates.render(source, snap).text)
    nginx.start()
    try:
        seen = Counter(get(listen, "app.test")[1] for _ in range(6))
        assert set(seen) == {"b1", "b2"}  # nothing pushed yet: the file's servers
        assert get(listen, "other.test")[0] == 404  # the default server
        reloads = nginx.server.reloads()
        assert nginx.push({"site_app": [nginx.peer("b4")]})[0] == 200
        assert Counter(get(listen, "app.test")[1] for _ in range(4)) == {"b4": 4}
        assert nginx.server.reloads() == reloads
    finally:
        nginx.stop()
