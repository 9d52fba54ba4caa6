# OCI images (run as nobody, 65534:65534), streamed: load with
#   $(nix-build nix/image.nix -A sidecar) | docker load        (or | podman load)
#   $(nix-build nix/image.nix -A registrar) | docker load
# The sidecar image carries nginx too, for its check command (`nginx -t` on the shared config).
{
  pkgs ? import ./default.nix { },
  lib ? pkgs.lib,
  dockerTools ? pkgs.dockerTools,
  upstreams ? pkgs.upstreams,
  nginx ? pkgs.nginx,
}:
let
  image =
    {
      name,
      program,
      cmd,
      extraContents ? [ ],
    }:
    dockerTools.streamLayeredImage {
      inherit name;
      tag = upstreams.version;
      contents = [
        dockerTools.caCertificates
        dockerTools.fakeNss # /etc/passwd and /etc/group with root and nobody
      ] ++ extraContents;
      # A writable /tmp for nginx -t and temporary files.
      extraCommands = ''
        mkdir -p -m 1777 tmp
      '';
      config = {
        User = "65534:65534";
        Entrypoint = [ (lib.getExe' upstreams program) ];
        Cmd = cmd;
        Env = [ "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt" ];
      };
    };
in
{
  sidecar = image {
    name = "upstreams";
    program = "upstreams";
    cmd = [ "watch" "--config" "/etc/upstreams/upstreams.toml" ];
    extraContents = [ nginx ];
  };
  registrar = image {
    name = "upstreams-registrar";
    program = "upstreams-registrar";
    cmd = [ "run" "--config" "/etc/upstreams/registrar.toml" ];
  };
}
