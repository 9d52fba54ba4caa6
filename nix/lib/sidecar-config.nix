# The sidecar's TOML config from the NixOS module's option values (builtins only, tested offline).
#
#   import ./sidecar-config.nix {
#     consul = { address = "http://127.0.0.1:8500"; tokenFile = "/run/credentials/upstreams.service/consul-token"; };
#     wait = { min = "2s"; max = "10s"; };
#     nginx = { reloadCommand = [ "/nix/store/...-request-reload" ]; checkCommand = [ "/nix/store/...-check" ];
#               dynamic = { enable = true; endpoint = "127.0.0.1:9180"; stateFile = "/run/upstreams/dynamic.json"; }; };
#     templates = [ { source = "/nix/store/...-web.conf.j2"; destination = "/run/upstreams/web.conf"; } ];
#   }
#   => { settings = { consul = ...; }; text = "[consul]\naddress = ..."; }
#
# Keys follow renderer/config.py: [consul] address, token_file; [wait] min, max; [nginx] pid_file or
# reload_command, check_command, check, dynamic, dynamic_endpoint, dynamic_state; [[template]] source,
# destination, perms, backup.
{
  consul ? { },
  wait ? { },
  nginx ? { },
  templates ? [ ],
  extraSettings ? { },
}:
let
  inherit (import ./attrs.nix) consulTable recursiveUpdate withoutNulls;
  toml = import ./toml.nix;

  fail = msg: throw "services.upstreams: ${msg}";

  destinations = map (t: t.destination) templates;
  duplicates = builtins.filter (d: builtins.length (builtins.filter (x: x == d) destinations) > 1) destinations;

  template =
    t:
    withoutNulls {
      source = toString t.source;
      destination = t.destination;
      perms = t.perms or null;
      backup = t.backup or false;
    };

  nginxTable =
    let
      reload = nginx.reloadCommand or null;
      pid = nginx.pidFile or null;
      dynamic = nginx.dynamic or { };
    in
    if reload != null && pid != null then
      fail "give either nginx.reloadCommand or nginx.pidFile, not both"
    else if reload == [ ] then
      fail "nginx.reloadCommand must name a command"
    else if (nginx.checkCommand or null) == [ ] then
      fail "nginx.checkCommand must name a command (nginx must check every render)"
    else
      withoutNulls {
        reload_command = reload;
        pid_file = pid;
        check_command = nginx.checkCommand or null;
        check = nginx.check or null;
        dynamic = if dynamic.enable or false then true else null;
        dynamic_endpoint = dynamic.endpoint or null;
        dynamic_state = dynamic.stateFile or null;
      };

  settings =
    if templates == [ ] then
      fail "templates is empty, so there is nothing to render"
    else if duplicates != [ ] then
      fail "two templates have the same destination, ${builtins.head duplicates}"
    else
      recursiveUpdate {
        consul = consulTable consul;
        wait = withoutNulls {
          min = wait.min or null;
          max = wait.max or null;
        };
        nginx = nginxTable;
        template = map template templates;
      } extraSettings;
in
{
  inherit settings;
  text = toml.render settings;
}
