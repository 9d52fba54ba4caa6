# Reads nix/sources.json (niv's format) and checks each pin, with builtins only, so CI can evaluate it
# offline: `NIX_REMOTE=dummy:// nix-instantiate --eval --strict --json nix/lib/pins.nix`.
# Returns, per pin, the arguments for builtins.fetchTarball; nix/sources.nix does the fetching.
#
# Where the nixpkgs pin comes from (nothing here can download nixpkgs to hash it, so the pair is copied,
# never computed or invented): rev 3ceaaa8bc963ced4d830e06ea2d0863b6490ff03 of branch nixos-25.11 and its
# narHash sha256-sJERJIYTKPFXkoz/gBaBtRKke82h4DkX3BBSsKbfbvI= (lastModified 1768940263, 2026-01-20), as
# locked together by Nix in the public flake.lock of github.com/sglre6355/nixos-config (file flake.lock,
# commit 6718494aea2d246e642e98a675b0543a73c6d6a7, node "nixpkgs", original ref "nixos-25.11").
# A github flake input's narHash is the NAR hash of the unpacked archive, which is exactly what
# builtins.fetchTarball's sha256 checks (Nix >= 2.4 accepts the SRI form as it is).
# To move the pin: `niv update nixpkgs -b nixos-25.11` (or edit rev/url and set sha256 from
# `nix-prefetch-url --unpack <url>`), on a machine with network.
{
  sourcesFile ? ../sources.json,
}:
let
  sources = builtins.fromJSON (builtins.readFile sourcesFile);

  check =
    name: spec:
    let
      fail = msg: throw "nix/sources.json: pin '${name}' ${msg}";
      isRev = builtins.match "[0-9a-f]{40}" (spec.rev or "") != null;
      isBase32 = builtins.match "[0-9a-df-np-sv-z]{52}" (spec.sha256 or "") != null;
      isSri = builtins.match "sha256-[A-Za-z0-9+/]{43}=" (spec.sha256 or "") != null;
    in
    if (spec.type or "") != "tarball" then
      fail "has type '${spec.type or ""}'; only tarball pins are supported"
    else if !isRev then
      fail "needs a full 40-character commit as rev"
    else if !(isBase32 || isSri) then
      fail "needs a sha256 (nix base32 or SRI sha256-...)"
    else if builtins.match ".*${spec.rev}.*" (spec.url or "") == null then
      fail "has a url that does not name its rev"
    else
      {
        name = "${name}-src";
        inherit (spec) url sha256;
      };
in
builtins.mapAttrs check sources
