"""The packages' import directions: the demo on top, the harness beneath the demo, tests and benchmarks,
and neither tests nor benchmarks importing the other (no import cycle between top-level packages); and the
house's size rules outside tests: no module over 300 lines, no function over 40."""

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


MODULE_LINES, FUNCTION_LINES = 300, 40


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


def test_every_top_level_package_has_its_place() -> None:
    # A new package must say what it may import, or nothing here would check it. (The Nix build's
    # source leaves bench/ out, so a package in the table may be absent.)
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert sorted(packages - set(FORBIDDEN)) == []


@pytest.mark.parametrize("package", sorted(set(FORBIDDEN) - {"tests"}))
def test_modules_and_functions_stay_small(package: str) -> None:
    too_big = []
    for path in sorted((ROOT / package).rglob("*.py")):
        source = path.read_text()
        name, count = path.relative_to(ROOT), source.count("\n")
        if count > MODULE_LINES:
            too_big.append(f"{name}: {count} lines")
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > FUNCTION_LINES:
                    too_big.append(f"{name}:{node.lineno} {node.name}: {lines} lines")
    assert too_big == []
