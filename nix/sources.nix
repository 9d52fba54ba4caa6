# Our own small reader of niv's nix/sources.json: every pin as a fetched store path, for example
# `(import ./sources.nix).nixpkgs`. The checks live in ./lib/pins.nix (evaluable offline); fetching is lazy,
# so `builtins.attrNames (import ./sources.nix)` needs no network.
{
  sourcesFile ? ./sources.json,
}:
builtins.mapAttrs (_: builtins.fetchTarball) (import ./lib/pins.nix { inherit sourcesFile; })
