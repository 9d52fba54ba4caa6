# Our additions to nixpkgs: the package (both console scripts) and its OCI images.
final: prev: {
  upstreams = final.callPackage ./package.nix { };
  upstreams-images = final.callPackage ./image.nix { };
}
