# Our additions to nixpkgs: the package (both console scripts), its OCI images and the Nomad artifact.
final: prev: {
  upstreams = final.callPackage ./package.nix { };
  upstreams-images = final.callPackage ./image.nix { };
  upstreams-nomad-artifact = final.callPackage ./artifact.nix { };
}
