"""The README's "Five minutes with a real config", run as written against real Consul, nginx and Podman.

The steps are read from the README's fenced blocks, so the README cannot drift from what works: each
```sh block's lines run in one bash script, in order; a block right after a line "`/path`:" is written
to that path; a line ending in ``# → text`` is retried (for up to 20 s) until its output holds
``text``, as a reader would look again.

The walkthrough uses the machine's real paths and default ports (8500, 8080, /etc/upstreams, /run/nginx.pid,
/run/podman/podman.sock). So that it can do that on a shared machine, the script runs in namespaces of
its own: a network namespace (its own loopback, every port free), a mount namespace (fresh tmpfs on /run,
/tmp, /var/lib/containers and /var/log/nginx, and a throw-away overlay on /etc) and a PID namespace, so
that everything it started (Consul, nginx, both daemons, Podman and its containers) ends with it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from renderer import cli

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Five minutes with a real config"
EXPECT = re.compile(r"\s+# → (?P<want>.+?)\s*$")
FILE_LINE = re.compile(r"^`(?P<path>/[^`]+)`:$")
TIMEOUT = 120.0

# Test-only set-up, before the README's first step: the namespaces' fresh state (see the docstring).
PRELUDE = """\
set -euo pipefail
ip link set lo up
# The checkout may itself live under /tmp or /run (CI clones anywhere): keep it visible where it is.
mount -t tmpfs tmpfs /mnt && mkdir /mnt/checkout && mount --bind "$CHECKOUT" /mnt/checkout
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p "$CHECKOUT" && mount --bind /mnt/checkout "$CHECKOUT" && cd "$CHECKOUT"
mkdir -p /var/lib/containers /var/log/nginx  # the packages' own folders, there after .ci/setup
mount -t tmpfs tmpfs /var/lib/containers
mount -t tmpfs tmpfs /var/log/nginx
mkdir -p /run/.etc/upper /run/.etc/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/.etc/upper,workdir=/run/.etc/work /etc
expect() {
  { local want=$1 cmd=$2 out="" traced=0; [[ $- == *x* ]] && traced=1; set +x; } 2>/dev/null
  echo "+ $cmd"
  for _ in $(seq 1 100); do
    if out=$(eval "$cmd" 2>&1) && [[ $out == *"$want"* ]]; then
      printf '%s\\n' "$out"
      if ((traced)); then set -x; fi
      return 0
    fi
    sleep 0.2
  done
  printf 'README STEP FAILED: %s\\nwanted: %s\\ngot: %s\\n' "$cmd" "$want" "$out"
  for log in /tmp/*.log; do echo "== $log"; tail -n 20 "$log"; done
  return 1
}
"""


@dataclass(frozen=True)
class Step:
    """One README step: a command line (``want``: what its output must hold) or a file to write."""

    command: str = ""
    want: str | None = None
    path: str = ""
    content: str = ""


def readme_steps(text: str) -> list[Step]:
    """The steps of the README's "Five minutes" section, in order."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    fence: str | None = None
    block: list[str] = []
    target = ""
    last = ""
    for line in section.splitlines():
        if fence is None:
            if line.startswith("```"):
                fence, block = line[3:].strip(), []
                found = FILE_LINE.match(last)
                target = found["path"] if found else ""
            elif line.strip():
                last = line.strip()
            continue
        if line.startswith("```"):
            steps.extend(_block_steps(fence, block, target))
            fence = None
        else:
            block.append(line)
    return steps


def _block_steps(fence: str, block: list[str], target: str) -> list[Step]:
    if target:
        return [Step(path=target, content="\n".join(block) + "\n")]
    if fence != "sh":
        return []  # an illustration, not a step
    steps = []
    for command in _logical(block):
        found = EXPECT.search(command)
        if found:
            steps.append(Step(command=command[: found.start()], want=found["want"]))
        else:
            steps.append(Step(command=command))
    return steps


def _logical(block: list[str]) -> list[str]:
    """Lines joined where one ends with a backslash, as the shell would."""
    lines: list[str] = []
    pending = ""
    for line in block:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            lines.append(pending + line)
            pending = ""
    return [line for line in lines if line.strip()]


def script(steps: list[Step]) -> str:
    """The bash script running the steps, after the namespaces' prelude."""
    out = [f"CHECKOUT={shlex.quote(str(ROOT))}", PRELUDE, "set -x"]
    for step in steps:
        if step.path:
            out.append(f"cat > {shlex.quote(step.path)} <<'README_FILE'\n{step.content}README_FILE")
        elif step.want is not None:
            out.append(f"expect {shlex.quote(step.want)} {shlex.quote(step.command)}")
        else:
            out.append(step.command)
    out.append("set +x")
    # Test-only epilogue: the daemons' logs, which the walkthrough sent to files in its own /tmp.
    out.append('for log in sidecar registrar; do echo "==LOG $log"; cat /tmp/$log.log; done')
    out.append("echo README-WALKTHROUGH-DONE")
    return "\n".join(out) + "\n"


def test_readme_steps_are_found() -> None:
    """The parser sees the walkthrough: files, commands and expectations (a guard for the test below)."""
    steps = readme_steps((ROOT / "README.md").read_text())
    paths = [s.path for s in steps if s.path]
    assert paths == [
        "/etc/upstreams/upstreams.conf.j2",
        "/etc/upstreams/sidecar.toml",
        "/etc/nginx/conf.d/primes-site.conf",
        "/etc/upstreams/registrar.toml",
    ]
    commands = [s.command for s in steps if s.command]
    assert any(c.startswith("podman run -d --name prime-2 ") and "localhost/prime" in c for c in commands)
    assert sum(s.want is not None for s in steps) >= 8


@pytest.mark.slow
def test_readme_five_minutes_walkthrough_works_as_written(tmp_path: Path) -> None:
    steps = readme_steps((ROOT / "README.md").read_text())
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONSUL_", "DOCKER_", "CONTAINERS_", "VIRTUAL_ENV", "PYTEST"))
    }
    log = tmp_path / "walkthrough.log"
    argv = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
    argv += ["--propagation", "private", "bash", "-c", script(steps)]
    with log.open("wb") as out:
        try:
            # --kill-child: if unshare is killed (the timeout), everything in the namespaces goes with it.
            result = subprocess.run(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the walkthrough did not end within {TIMEOUT:g}s:\n{log.read_text()[-6000:]}")
    text = log.read_text(errors="replace")
    failed = text.find("README STEP FAILED")
    shown = text[failed : failed + 6000] if failed >= 0 else text[-6000:]
    assert result.returncode == 0 and "README-WALKTHROUGH-DONE" in text, shown
    # In the README's order (render, nginx, sidecar; Podman's socket, companion) nothing is alarming.
    logs = text.split("==LOG sidecar", 1)[1]
    assert "WARNING" not in logs and "ERROR" not in logs, logs


def subcommands() -> set[str]:
    """The ``upstreams`` subcommands, as the CLI's own parser has them."""
    parser = cli._parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return set(sub.choices)  # type: ignore[arg-type]


def test_every_command_of_the_cli_is_in_the_command_line_reference() -> None:
    """docs/configuration.md's "Command line" block lists every subcommand (nginx-snippet, convert, ...)."""
    doc = (ROOT / "docs" / "configuration.md").read_text().split("## Command line", 1)[1]
    block = doc.split("```", 2)[1]
    listed = set(re.findall(r"^  ([a-z][a-z-]+)", block, re.MULTILINE))
    assert listed == subcommands()


def test_every_upstreams_command_the_readme_runs_is_one_the_cli_has() -> None:
    """Its fenced blocks and inline code name only commands that exist."""
    text = (ROOT / "README.md").read_text()
    code = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    code += re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL))
    commands = re.sub(r"(?:^|\s)#.*$", "", "\n".join(code), flags=re.MULTILINE)  # not the comments
    used = set(re.findall(r"(?:^|[\s/;&|(])upstreams ([a-z][a-z-]+)", commands, re.MULTILINE))
    assert {"check", "render", "watch", "status", "nginx-snippet", "convert", "demo"} <= used
    assert used <= subcommands(), used - subcommands()
