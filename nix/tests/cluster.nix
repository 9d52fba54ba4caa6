# VM test of a real cluster's shape: three Consul servers, a load balancer (Consul client, nginx, the
# sidecar reading with max_stale) and two backends (Consul client, the companion, a small HTTP service).
# The leader is crashed while traffic flows: nginx keeps answering and the sidecar follows the next change
# under the new leader. Then a backend machine is crashed: Consul marks its node failed (serfHealth), its
# instance leaves nginx with no help from its companion; when it boots again, the companion registers it.
#
#   nix-build nix/tests/cluster.nix                      (needs KVM for speed; see docs/nix.md)
#   $(nix-build nix/tests/cluster.nix -A driverInteractive)/bin/nixos-test-driver   (interactive)
{
  pkgs ? import ../default.nix { },
}:
let
  serverNames = [
    "server1"
    "server2"
    "server3"
  ];

  # Every node joins the servers by address; the servers wait for all three before electing a leader.
  consulOn =
    extra:
    { config, nodes, ... }:
    {
      services.consul = {
        enable = true;
        extraConfig = {
          bind_addr = config.networking.primaryIPAddress;
          client_addr = "127.0.0.1";
          retry_join = map (n: nodes.${n}.networking.primaryIPAddress) serverNames;
          retry_interval = "2s";
          performance.raft_multiplier = 1;
        } // extra;
      };
    };

  server = consulOn {
    server = true;
    bootstrap_expect = 3;
  };

  backend =
    text:
    { config, pkgs, ... }:
    {
      imports = [ (consulOn { server = false; }) ];
      systemd.services.web = {
        description = "A small HTTP service";
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          DynamicUser = true;
          ExecStart = "${pkgs.python3}/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory ${pkgs.writeTextDir "index.html" text}";
        };
      };
      services.upstreams-registrar = {
        enable = true;
        engine.type = null; # no containers here: only the declared service
        advertiseAddress = config.networking.primaryIPAddress;
        resync = "5s";
        services.web = {
          port = 8080;
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
  name = "upstreams-cluster";

  defaults = {
    imports = [
      ../modules/sidecar.nix
      ../modules/registrar.nix
    ];
    networking.firewall.enable = false;
  };

  nodes = {
    server1 = server;
    server2 = server;
    server3 = server;

    lb =
      { pkgs, ... }:
      {
        imports = [ (consulOn { server = false; }) ];
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
          # Followers answer while a new leader is elected (docs/operations.md, "Stale reads").
          extraSettings.consul.max_stale = "10s";
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
      serverIPs = map (n: "'${nodes.${n}.networking.primaryIPAddress}'") serverNames;
    in
    ''
      servers = {ip: m for ip, m in zip([${builtins.concatStringsSep ", " serverIPs}], [server1, server2, server3])}

      def leader():
          lb.wait_until_succeeds("curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q ':'", timeout=120)
          address = lb.succeed("curl -sf http://127.0.0.1:8500/v1/status/leader").strip().strip('"')
          return servers[address.rsplit(":", 1)[0]]

      def start_traffic():
          # A loop inside the VM (the driver's shell is not for concurrent use): one status code a line.
          lb.succeed("rm -f /tmp/codes /tmp/stop")
          lb.succeed(
              "systemd-run --unit traffic sh -c 'while [ ! -e /tmp/stop ]; do "
              "curl -s -o /dev/null -w \"%{http_code}\\n\" http://localhost/ >> /tmp/codes; sleep 0.05; done'"
          )

      def stop_traffic():
          lb.succeed("touch /tmp/stop")
          lb.wait_until_fails("systemctl is-active traffic.service", timeout=30)
          sent = int(lb.succeed("wc -l < /tmp/codes").strip())
          failed = int(lb.succeed("grep -vc '^200$' /tmp/codes || true").strip() or 0)
          return sent, failed

      start_all()
      for m in (server1, server2, server3, lb, backend1, backend2):
          m.wait_for_unit("consul.service")
      for b in (backend1, backend2):
          b.wait_for_unit("web.service")
          b.wait_for_unit("upstreams-registrar.service")
      lb.wait_for_unit("upstreams.service")
      lb.wait_for_unit("nginx.service")

      with subtest("nginx answers from both backends, through a three-server cluster"):
          lb.wait_until_succeeds("grep -q '${ip1}:8080' /run/upstreams/web.conf", timeout=180)
          lb.wait_until_succeeds("grep -q '${ip2}:8080' /run/upstreams/web.conf", timeout=180)
          lb.wait_until_succeeds("curl -sf http://localhost/ | grep -q 'backend one'", timeout=60)
          lb.wait_until_succeeds("curl -sf http://localhost/ | grep -q 'backend two'", timeout=60)

      with subtest("the leader crashes under traffic: no failed request, the next change still arrives"):
          start_traffic()
          old = leader()
          old.crash()
          new = leader()
          assert new is not old, "no new leader was elected"
          backend2.succeed("systemctl stop web.service")
          lb.wait_until_succeeds("! grep -q '${ip2}:8080' /run/upstreams/web.conf", timeout=60)
          backend2.succeed("systemctl start web.service")
          lb.wait_until_succeeds("grep -q '${ip2}:8080' /run/upstreams/web.conf", timeout=60)
          sent, failed = stop_traffic()
          assert sent > 10 and failed == 0, f"{failed} of {sent} requests failed"
          old.start()
          old.wait_for_unit("consul.service")

      with subtest("a backend machine dies: its instance leaves nginx without its companion's help"):
          backend1.crash()
          lb.wait_until_succeeds("! grep -q '${ip1}:8080' /run/upstreams/web.conf", timeout=120)
          for _ in range(10):
              lb.succeed("curl -sf http://localhost/ | grep -q 'backend two'")

      with subtest("it boots again and its companion registers it"):
          backend1.start()
          backend1.wait_for_unit("upstreams-registrar.service")
          lb.wait_until_succeeds("grep -q '${ip1}:8080' /run/upstreams/web.conf", timeout=120)
          lb.wait_until_succeeds("curl -sf http://localhost/ | grep -q 'backend one'", timeout=60)
    '';
}
