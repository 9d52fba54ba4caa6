# VM test: a load balancer (Consul server, nginx, the sidecar) and two backends (Consul client, a small
# HTTP service declared to the companion). nginx must answer from both backends; when one backend's
# service stops, its instance must leave the upstream and nginx must have been reloaded, not restarted.
#
#   nix-build nix/tests/sidecar.nix                      (needs KVM for speed; see docs/nix.md)
#   $(nix-build nix/tests/sidecar.nix -A driverInteractive)/bin/nixos-test-driver   (interactive)
{
  pkgs ? import ../default.nix { },
}:
let
  web =
    text:
    { pkgs, ... }:
    {
      systemd.services.web = {
        description = "A small HTTP service";
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          DynamicUser = true;
          ExecStart = "${pkgs.python3}/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory ${pkgs.writeTextDir "index.html" text}";
        };
      };
    };

  backend =
    text:
    {
      config,
      nodes,
      ...
    }:
    {
      imports = [ (web text) ];
      services.consul = {
        enable = true;
        extraConfig = {
          server = false;
          retry_join = [ nodes.lb.networking.primaryIPAddress ];
          bind_addr = config.networking.primaryIPAddress;
          client_addr = "127.0.0.1";
        };
      };
      services.upstreams-registrar = {
        enable = true;
        engine.type = null; # no containers here: only the declared service
        advertiseAddress = config.networking.primaryIPAddress;
        resync = "5s";
        services.web = {
          port = 8080;
          tags = [ "http" ];
          checks = [
            {
              http = "http://127.0.0.1:8080/";
              interval = "1s";
              timeout = "1s";
            }
          ];
        };
      };
    };
in
pkgs.testers.runNixOSTest {
  name = "upstreams-sidecar";

  defaults = {
    imports = [
      ../modules/sidecar.nix
      ../modules/registrar.nix
    ];
    networking.firewall.enable = false;
  };

  nodes = {
    lb =
      { config, pkgs, ... }:
      {
        services.consul = {
          enable = true;
          extraConfig = {
            server = true;
            bootstrap_expect = 1;
            bind_addr = config.networking.primaryIPAddress;
            client_addr = "127.0.0.1";
          };
        };

        services.nginx = {
          enable = true;
          appendHttpConfig = ''
            include /run/upstreams/web.conf;
          '';
          virtualHosts.default = {
            default = true;
            locations."/".proxyPass = "http://web";
          };
        };

        services.upstreams = {
          enable = true;
          wait = {
            min = "200ms";
            max = "1s";
          };
          templates."web.conf".source = pkgs.writeText "web.conf.j2" ''
            {% import "nginx.j2" as nginx %}
            {{ nginx.upstream("web", service("web")) }}
          '';
        };

        environment.systemPackages = [ pkgs.curl ];
      };

    backend1 = backend "backend one";
    backend2 = backend "backend two";
  };

  testScript =
    { nodes, ... }:
    let
      ip1 = nodes.backend1.networking.primaryIPAddress;
      ip2 = nodes.backend2.networking.primaryIPAddress;
    in
    ''
      def reloads():
          out = lb.succeed("journalctl -u nginx.service -o cat | grep -c '^Reloaded' || true")
          return int(out.strip() or 0)

      def main_pid():
          return lb.succeed("systemctl show -p MainPID --value nginx.service").strip()

      start_all()
      lb.wait_for_unit("consul.service")
      for b in (backend1, backend2):
          b.wait_for_unit("consul.service")
          b.wait_for_unit("web.service")
          b.wait_for_unit("upstreams-registrar.service")

      with subtest("the sidecar renders before nginx starts, as an unprivileged user"):
          lb.wait_for_unit("upstreams.service")
          lb.wait_for_unit("nginx.service")
          lb.succeed("test -s /run/upstreams/web.conf")
          lb.succeed("test $(systemctl show -p DynamicUser --value upstreams.service) = yes")
          pid = lb.succeed("systemctl show -p MainPID --value upstreams.service").strip()
          lb.succeed(f"test $(stat -c %u /proc/{pid}) -ne 0")

      with subtest("nginx answers from both backends"):
          lb.wait_until_succeeds("grep -q '${ip1}:8080' /run/upstreams/web.conf", timeout=120)
          lb.wait_until_succeeds("grep -q '${ip2}:8080' /run/upstreams/web.conf", timeout=120)
          lb.wait_until_succeeds("curl -sf http://localhost/ | grep -q 'backend one'", timeout=60)
          lb.wait_until_succeeds("curl -sf http://localhost/ | grep -q 'backend two'", timeout=60)

      pid_before = main_pid()
      reloads_before = reloads()

      with subtest("a stopped backend leaves the upstream"):
          backend2.succeed("systemctl stop web.service")
          lb.wait_until_succeeds("! grep -q '${ip2}:8080' /run/upstreams/web.conf", timeout=60)
          lb.succeed("grep -q '${ip1}:8080' /run/upstreams/web.conf")
          lb.wait_until_succeeds(f"test $(journalctl -u nginx.service -o cat | grep -c '^Reloaded') -gt {reloads_before}", timeout=60)
          for _ in range(10):
              lb.succeed("curl -sf http://localhost/ | grep -q 'backend one'")

      with subtest("nginx was reloaded, not restarted"):
          assert main_pid() == pid_before, "nginx's main process changed: it was restarted"
          lb.succeed("test $(systemctl show -p NRestarts --value nginx.service) = 0")
          lb.succeed("journalctl -u upstreams-nginx-reload.service -o cat | grep -q .")

      with subtest("the backend comes back"):
          backend2.succeed("systemctl start web.service")
          lb.wait_until_succeeds("grep -q '${ip2}:8080' /run/upstreams/web.conf", timeout=60)
          lb.wait_until_succeeds("curl -sf http://localhost/ | grep -q 'backend two'", timeout=60)
          assert main_pid() == pid_before
    '';
}
