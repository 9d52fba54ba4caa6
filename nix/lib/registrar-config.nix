# The companion's (upstreams-registrar's) TOML config from the NixOS module's option values (builtins only).
#
# Keys follow healthchecks/config.py: [consul] address, token_file; [registrar] engine (unix:///... or
# tcp://...; null with containers = false), containers, hostname, advertise_address, internal, explicit,
# resync, services_dir, deregister_on_stop.
{
  consul ? { },
  engine ? null,
  hostname ? null,
  advertiseAddress ? null,
  internal ? null,
  explicit ? null,
  resync ? null,
  servicesDir ? null,
  deregisterOnStop ? null,
  extraSettings ? { },
}:
let
  inherit (import ./attrs.nix) consulTable recursiveUpdate withoutNulls;
  settings =
    if engine == null && servicesDir == null then
      throw "services.upstreams-registrar: with no container engine (engine.type = null), declare at least one service in services"
    else if engine != null && builtins.match "(unix|tcp|https?)://.+" engine == null then
      throw "services.upstreams-registrar: the engine address '${engine}' (from engine.socket) is not unix:///path or tcp://host:port"
    else
      recursiveUpdate {
        consul = consulTable consul;
        registrar = withoutNulls {
          inherit
            engine
            hostname
            internal
            explicit
            resync
            ;
          containers = engine != null;
          advertise_address = advertiseAddress;
          services_dir = servicesDir;
          deregister_on_stop = deregisterOnStop;
        };
      } extraSettings;
in
{
  inherit settings;
  text = (import ./toml.nix).render settings;
}
