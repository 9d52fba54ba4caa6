# The development shell: Python with every runtime and test dependency, Consul, nginx, ruff and mypy.
#   nix-shell          (or `direnv allow`: .envrc says `use nix`)
# Then: pytest, ruff check ., mypy. Tests needing a container engine want Podman or Docker from the host.
{
  pkgs ? import ./nix/default.nix { },
}:
let
  python = pkgs.python3.withPackages (
    ps: with ps; [
      consul # py-consul
      aiohttp
      jinja2
      watchdog
      tenacity
      prometheus-client
      docker
      rich
      python-hcl2 # upstreams convert
      setuptools
      pytest
      pytest-timeout
      hypothesis
      trustme
      matplotlib # tests/test_bench_smoke.py draws the benchmark chart
      mypy
    ]
  );
in
pkgs.mkShell {
  packages = [
    python
    pkgs.consul
    pkgs.nginx
    pkgs.ruff
    pkgs.nix
  ];
  shellHook = ''
    # Run the code from the checkout, as `pip install -e .` would.
    export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
    export CONSUL_BIN=${pkgs.consul}/bin/consul
  '';
}
