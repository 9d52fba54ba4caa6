# nixpkgs at our pin (nix/sources.json) with our overlay; Consul (BSL, unfree) is allowed, nothing else.
#   nix-build nix -A upstreams            the package
#   nix-build nix -A upstreams-images.sidecar   see ./image.nix
{
  system ? builtins.currentSystem,
  sources ? import ./sources.nix { },
  nixpkgs ? sources.nixpkgs,
  config ? { },
  overlays ? [ ],
}:
let
  unfree = import ./lib/unfree.nix;
in
import nixpkgs {
  inherit system;
  overlays = [ (import ./overlay.nix) ] ++ overlays;
  config = {
    allowUnfreePredicate = pkg: builtins.elem (pkg.pname or (builtins.parseDrvName pkg.name).name) unfree;
  } // config;
}
