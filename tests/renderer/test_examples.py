"""Every example template renders and passes a real `nginx -t`, with data and with none."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from discovery.model import CatalogQuery, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from renderer.config import load_config
from renderer.template import TemplateSet
from tests.support.nginx import NGINX

EXAMPLES = Path(__file__).parents[2] / "examples"
SOURCES = sorted(p for p in EXAMPLES.glob("*/*.j2"))


def full_snapshot(deps: frozenset[object]) -> Snapshot:
    def instances(name: str) -> tuple[Instance, ...]:
        return (
            Instance(
                node="n1", id=f"{name}-1", name=name, address="10.0.0.1", port=8080, tags=("public", "canary")
            ),
            Instance(node="n2", id=f"{name}-2", name=name, address="10.0.0.2", port=8080, weight=3),
            Instance(node="n3", id=f"{name}-3", name=name, address="fd00::3", port=8080, status="warning"),
        )

    services = {d: instances(d.name) for d in deps if isinstance(d, ServiceQuery)}
    catalogs = {
        d: (ServiceSummary("prime", ("public",)), ServiceSummary("api", ("public",)))
        for d in deps
        if isinstance(d, CatalogQuery)
    }
    keys = {d: None for d in deps if isinstance(d, KeyQuery)}
    return Snapshot.build(services, catalogs, keys)


def empty_snapshot(deps: frozenset[object]) -> Snapshot:
    return Snapshot.build(
        {d: () for d in deps if isinstance(d, ServiceQuery)},
        {d: () for d in deps if isinstance(d, CatalogQuery)},
        {d: None for d in deps if isinstance(d, KeyQuery)},
    )


def render_complete(source: Path, make: object) -> str:
    ts = TemplateSet([source])
    assert ts.load() == []
    snapshot = Snapshot()
    for _ in range(5):  # as the daemon does: render, learn what is read, fetch, render again
        rendered = ts.render(source, snapshot)
        if not rendered.missing:
            return rendered.text
        snapshot = make(rendered.dependencies)  # type: ignore[operator]
    raise AssertionError("the template never had all its data")


def nginx_accepts(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rendered.conf").write_text(text)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/rendered.conf; }}\n"
    )
    return subprocess.run(
        [NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True
    )


def test_there_are_examples() -> None:
    assert len(SOURCES) >= 3


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("data", [full_snapshot, empty_snapshot], ids=["with-data", "empty"])
def test_example_renders_and_passes_nginx_check(tmp_path: Path, source: Path, data: object) -> None:
    text = render_complete(source, data)
    result = nginx_accepts(tmp_path, text)
    assert result.returncode == 0, result.stderr + text


@pytest.mark.parametrize("config", sorted(EXAMPLES.glob("*/sidecar.toml")), ids=lambda p: p.parent.name)
def test_example_configs_are_valid(config: Path, tmp_path: Path) -> None:
    # A copy of the example folder, with /etc/nginx/conf.d and the token file swapped for temporary ones.
    shutil.copytree(config.parent, tmp_path, dirs_exist_ok=True)
    (tmp_path / "token").write_text("secret")
    text = (
        config.read_text()
        .replace("/etc/nginx/conf.d", str(tmp_path))
        .replace("/run/secrets/consul-token", "token")
    )
    (tmp_path / "sidecar.toml").write_text(text)
    assert load_config(tmp_path / "sidecar.toml", {}).templates
