# The companion's (upstreams-registrar's) TOML config from the NixOS module's option values (builtins only).
#
# Keys: [consul] address, token_file; [registrar] engine, advertise_address, internal, explicit, resync,
# services_dir, deregister_on_stop.
{
  consul ? { },
  engine ? null,
  advertiseAddress ? null,
  internal ? null,
  explicit ? null,
  resync ? null,
  servicesDir ? null,
  deregisterOnStop ? null,
  extraSettings ? { },
}:
let
  inherit (import ./attrs.nix) recursiveUpdate withoutNulls;
  settings = recursiveUpdate {
    consul = withoutNulls {
      address = consul.address or null;
      token_file = consul.tokenFile or null;
    };
    registrar = withoutNulls {
      inherit engine internal explicit resync;
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
