"""examples/nomad/upstreams.nomad.hcl, read as Nomad would (it cannot run here).

The job file is parsed with python-hcl2 and checked against the rules of Nomad's job specification that
matter for it: every template has a destination and a source or non-empty data; tasks have a driver and
a command; lifecycle hooks are Nomad's; the order is real (a prestart task renders, nginx is the main
task, the watching sidecar is poststart). Then its files are materialised as Nomad's template stage
would write them, and checked by the real tools: `upstreams check` on the sidecar config and `nginx -t`
on nginx's config, with the include the first render writes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import hcl2

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "examples" / "nomad" / "upstreams.nomad.hcl"
UPSTREAMS = Path(sys.executable).parent / "upstreams"
HOOKS = {"prestart", "poststart", "poststop"}


def _value(raw: Any) -> Any:
    """python-hcl2's output as plain values: quotes and heredoc markers removed, its own keys dropped."""
    if isinstance(raw, dict):
        return {_value(k): _value(v) for k, v in raw.items() if not str(k).startswith("__")}
    if isinstance(raw, list):
        return [_value(item) for item in raw]
    if isinstance(raw, str) and len(raw) >= 2 and raw[0] == raw[-1] == '"':
        text = raw[1:-1]
        for marker, indented in (("<<-EOT\n", True), ("<<EOT\n", False)):
            if text.startswith(marker):
                body = text[len(marker) :].rsplit("\n", 1)[0] + "\n"
                return textwrap.dedent(body) if indented else body
        return text
    return raw


def _job() -> dict[str, Any]:
    with JOB.open() as handle:
        data = _value(hcl2.load(handle))
    assert isinstance(data, dict)
    return data


def _tasks() -> dict[str, dict[str, Any]]:
    (job,) = _job()["job"]
    (group,) = job["edge"]["group"]
    return {name: body for task in group["lb"]["task"] for name, body in task.items()}


def _hook(task: dict[str, Any]) -> tuple[str | None, bool]:
    lifecycle = task.get("lifecycle") or [{}]
    return lifecycle[0].get("hook"), bool(lifecycle[0].get("sidecar", False))


def test_every_task_and_template_has_what_nomad_requires() -> None:
    tasks = _tasks()
    assert set(tasks) == {"render", "nginx", "upstreams"}
    for name, task in tasks.items():
        assert task["driver"] == "exec", name
        (config,) = task["config"]
        assert config["command"].startswith("/upstreams/bin/"), name
        hook, _ = _hook(task)
        assert hook is None or hook in HOOKS, name
        for artifact in task.get("artifact", []):
            assert artifact["source"] and artifact["options"][0]["checksum"].startswith("sha256:")
        for template in task.get("template", []):
            # "Must specify a source path or have an embedded template": empty data is neither.
            assert template.get("destination"), name
            assert template.get("source") or (template.get("data") or "").strip(), template


def test_the_first_render_happens_before_nginx_starts() -> None:
    tasks = _tasks()
    assert _hook(tasks["render"]) == ("prestart", False)  # runs to completion before main tasks
    assert _hook(tasks["nginx"]) == (None, False)  # the main task
    assert _hook(tasks["upstreams"]) == ("poststart", True)  # once nginx runs, for the alloc's life
    assert tasks["render"]["config"][0]["args"][0] == "render"
    assert tasks["upstreams"]["config"][0]["args"][0] == "watch"
    # Both share one pid file, so both see host pids.
    assert tasks["nginx"]["config"][0]["pid_mode"] == tasks["upstreams"]["config"][0]["pid_mode"] == "host"


def _materialise(alloc: Path) -> None:
    """Write the render task's templates as Nomad would, with this machine's nginx and free ports."""
    default = next(v["consul_addr"]["default"] for v in _job()["variable"] if "consul_addr" in v)
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    assert nginx is not None, "nginx is installed by .ci/setup"
    values = {
        '{{ env "NOMAD_ALLOC_DIR" }}': str(alloc),
        '{{ env "NOMAD_PORT_http" }}': f"127.0.0.1:{free_port()}",
        '{{ env "NOMAD_PORT_status" }}': str(free_port()),
        "${var.consul_addr}": default,
        "/upstreams/bin/nginx": nginx,
    }
    for template in _tasks()["render"]["template"]:
        text = template["data"]
        for old, new in values.items():
            text = text.replace(old, new)
        assert "{{ env" not in text and "${" not in text, text
        target = alloc / template["destination"].removeprefix("alloc/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def test_the_rendered_files_pass_the_real_tools(tmp_path: Path) -> None:
    alloc = tmp_path / "alloc"
    _materialise(alloc)
    tasks = _tasks()
    config = tasks["render"]["config"][0]["args"][-1].replace("${NOMAD_ALLOC_DIR}", str(alloc))
    assert config == str(alloc / "upstreams" / "upstreams.toml")
    assert tasks["upstreams"]["config"][0]["args"][-1] == tasks["render"]["config"][0]["args"][-1]
    checked = subprocess.run(
        [str(UPSTREAMS), "check", "--config", config], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr
    # What the first render writes (the template's empty case), where nginx's config includes it.
    (alloc / "nginx" / "web.conf").write_text("upstream web {\n    server 127.0.0.1:1 down;\n}\n")
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    assert nginx is not None
    tested = subprocess.run(
        [nginx, "-t", "-q", "-e", "stderr", "-c", str(alloc / "nginx" / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert tested.returncode == 0, tested.stderr


def test_the_docs_describe_this_job_file() -> None:
    for doc in ("docs/nix.md", "examples/nomad/README.md"):
        text = (ROOT / doc).read_text()
        assert "prestart" in text and "poststart" in text, doc
    assert "upstreams.nomad.hcl" in (ROOT / "docs" / "nix.md").read_text()
