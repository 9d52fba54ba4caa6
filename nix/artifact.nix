# A Nomad artifact for the exec driver: a tarball of the closure of the sidecar and nginx, laid out so
# that unpacking it into the task directory (the exec driver's chroot) gives /nix/store/... and
# /upstreams/bin/{upstreams,nginx}. See examples/nomad/.
#   nix-build nix/artifact.nix      -> result is upstreams-nomad.tar.gz
{
  pkgs ? import ./default.nix { },
  upstreams ? pkgs.upstreams,
  nginx ? pkgs.nginx,
}:
let
  env = pkgs.buildEnv {
    name = "upstreams-nomad-env";
    paths = [
      upstreams
      nginx
      pkgs.coreutils
    ];
  };
  closure = pkgs.closureInfo { rootPaths = [ env ]; };
in
pkgs.runCommand "upstreams-nomad.tar.gz" { nativeBuildInputs = [ pkgs.gnutar pkgs.gzip ]; } ''
  mkdir root
  ln -s ${env} root/upstreams
  sed 's#^/##' ${closure}/store-paths > paths
  tar --create --gzip --file "$out" --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner \
    -C root upstreams -C / --files-from=paths
''
