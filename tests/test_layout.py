"""The packages' import directions: the demo on top, the harness beneath the demo, tests and benchmarks,
and neither tests nor benchmarks importing the other (no import cycle between top-level packages)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Which top-level packages each may not import. The tests of the benchmarks (tests/**/test_bench*.py:
# the smoke test, the cluster benchmark's) import them; nothing else in tests/ does.
FORBIDDEN = {
    "plumbing": {"discovery", "renderer", "healthchecks", "demo", "harness", "tests", "bench"},
    "discovery": {"renderer", "healthchecks", "demo", "harness", "tests", "bench"},
    # The two daemons share only plumbing and discovery: neither imports the other.
    "renderer": {"healthchecks", "demo", "harness", "tests", "bench"},
    "healthchecks": {"renderer", "demo", "harness", "tests", "bench"},
    "harness": {"demo", "tests", "bench"},
    "demo": {"tests", "bench"},
    "bench": {"tests", "demo"},
    "tests": {"bench"},
}


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downward(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if not (package == "tests" and path.name.startswith("test_bench"))
        for name in sorted(_imported_packages(path) & FORBIDDEN[package])
    ]
    assert wrong == []


def test_the_allowed_directions_admit_no_cycle() -> None:
    # What the table leaves allowed must be a one-way graph, or a cycle could be written without a failure.
    allowed = {p: set(FORBIDDEN) - FORBIDDEN[p] - {p} for p in FORBIDDEN}
    order: list[str] = []
    while len(order) < len(allowed):
        ready = sorted(p for p in allowed if p not in order and allowed[p] <= set(order))
        assert ready, f"a cycle among {sorted(set(allowed) - set(order))}"
        order += ready
    assert order[0] == "plumbing" and order[-1] == "tests"


def test_the_sidecar_loads_without_the_demo() -> None:
    code = "import sys, renderer.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'demo'))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_demo_without_rich_names_the_extra() -> None:
    # None in sys.modules makes `import rich` fail as it does where the demo extra is not installed.
    code = (
        "import sys; sys.modules['rich'] = None; from renderer.cli import main; "
        "sys.exit(main(['demo', '--plain', '--duration', '1']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "upstreams: upstreams demo needs rich, which the demo extra installs: "
        "pip install 'upstreams[demo]' (bash .ci/setup does)."
    ]
    assert "Consul" not in result.stdout  # nothing was started
