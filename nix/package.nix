# The Python application from pyproject.toml: `upstreams` (the sidecar) and `upstreams-registrar` (the
# companion). The check phase runs the test suite except what needs services the build sandbox lacks:
# tests marked `slow`, tests using a service fixture (see ./pytest_offline.py), and the few listed in
# disabledTestPaths and disabledTests below.
{
  lib,
  python3Packages,
}:
let
  project = (lib.importTOML ../pyproject.toml).project;
  root = ../.;
in
python3Packages.buildPythonApplication {
  pname = project.name;
  inherit (project) version;
  pyproject = true;

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      (lib.fileset.maybeMissing ../README.md)
      (lib.fileset.maybeMissing ../LICENSE)
      ../plumbing
      ../discovery
      ../renderer
      ../healthchecks
      ../demo # upstreams demo
      ../harness # the real parts the demo and the tests start
      ../tests
      ../examples # tests/renderer/test_examples.py loads the example configs
      ./pytest_offline.py
    ];
  };

  build-system = [ python3Packages.setuptools ];

  # pyproject asks for py-consul[asyncio]; nixpkgs' `consul` attribute is py-consul (no `py-consul`
  # attribute exists), and the asyncio extra is aiohttp.
  dependencies = with python3Packages; [
    consul
    aiohttp
    jinja2
    watchdog
    tenacity
    prometheus-client
    docker
    rich # the demo extra: upstreams demo ships in the package
    python-hcl2 # upstreams convert reads consul-template's HCL
  ];
  # The pin may ship an older py-consul (or python-hcl2) than pyproject's bounds; the API we use is the
  # same (the converter reads both python-hcl2's quoted and unquoted string forms).
  pythonRelaxDeps = [ "py-consul" "python-hcl2" ];

  nativeCheckInputs = with python3Packages; [
    pytestCheckHook
    pytest-timeout
    hypothesis
    trustme
  ];
  # PYTEST_ADDOPTS works with every version of pytestCheckHook.
  preCheck = ''
    export PYTHONPATH="$PWD/nix''${PYTHONPATH:+:$PYTHONPATH}"
    export PYTEST_ADDOPTS="-p pytest_offline -m 'not slow'"
    export HOME="$TMPDIR"
  '';
  disabledTestPaths = [
    # Needs nix-instantiate.
    "tests/test_nix.py"
    # Imports bench/ (not in src; it needs matplotlib) and is all `slow` anyway.
    "tests/test_bench_smoke.py"
    # Needs python-hcl2 (a test extra) and runs /usr/sbin/nginx itself.
    "tests/test_nomad_example.py"
  ];
  # Runs /usr/sbin/nginx itself, through no fixture ./pytest_offline.py could see.
  disabledTests = [ "test_example_renders_and_passes_nginx_check" ];

  pythonImportsCheck = [
    "plumbing"
    "discovery"
    "renderer"
    "healthchecks"
    "demo"
    "harness"
  ];

  meta = {
    inherit (project) description;
    license = lib.licenses.mpl20;
    mainProgram = "upstreams";
    platforms = lib.platforms.linux;
  };
}
