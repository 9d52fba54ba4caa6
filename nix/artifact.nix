# A Nomad artifact for the exec driver: a self-contained tarball of the closure of the sidecar and nginx,
# laid out so that unpacking it into the task directory (the exec driver's chroot) gives /nix/store/...
# and /upstreams/bin/{upstreams,nginx}. See examples/nomad/ and docs/nix.md.
#   nix-build nix/artifact.nix      -> result is upstreams-nomad.tar.gz
#
# Every symlink in the tarball is relative and stays inside it: Nomad (1.10.5 and later, and the
# releases its security fixes were backported to) inspects unpacked artifacts and refuses any symlink that
# resolves outside the allocation's sandbox, which an absolute /nix/store/... link does (the store
# copies of buildEnv are nothing but such links). Store paths inside files (RPATHs, shebangs) stay
# absolute: in the task's chroot, /nix/store is the unpacked copy.
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
pkgs.runCommand "upstreams-nomad.tar.gz" { nativeBuildInputs = [ pkgs.gnutar pkgs.gzip pkgs.coreutils pkgs.findutils ]; } ''
  mkdir -p root/nix/store
  while read -r path; do
    cp -a "$path" root/nix/store/
  done < ${closure}/store-paths
  chmod -R u+w root
  ln -s nix/store/${builtins.baseNameOf env} root/upstreams
  # Absolute links into the store become relative ones (the same target once unpacked anywhere).
  find root -type l | while read -r link; do
    target=$(readlink "$link")
    case "$target" in
      /nix/store/*)
        ln -sfn "$(realpath -m -s --relative-to="$(dirname "$link")" "root$target")" "$link" ;;
      /*)
        echo "artifact: $link points outside the closure ($target)" >&2; exit 1 ;;
    esac
  done
  tar --create --gzip --file "$out" --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner \
    -C root upstreams nix
''
