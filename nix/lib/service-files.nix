# Service files for the companion's services_dir, one JSON file per NixOS-declared service (builtins only).
#
#   import ./service-files.nix {
#     web = { port = 8080; tags = [ "http" ]; checks = [ { http = "http://127.0.0.1:8080/health"; interval = "5s"; } ]; };
#   }
#   => { "web.json" = "{\"address\":null,...}"; }
#
# Each service: name (defaults to the attribute name), id, port, address, tags, meta, checks; each check
# has exactly one of http, tcp, ttl, script (a string or an argv list), plus interval and timeout.
services:
let
  inherit (import ./attrs.nix) withoutNulls;
  kinds = [
    "http"
    "tcp"
    "ttl"
    "script"
  ];

  check =
    service: i: c:
    let
      given = builtins.filter (k: (c.${k} or null) != null) kinds;
      where = "services.upstreams-registrar.services.${service}.checks.${toString i}";
    in
    if builtins.length given != 1 then
      throw "${where}: give exactly one of http, tcp, ttl, script (got ${
        if given == [ ] then "none" else builtins.concatStringsSep ", " given
      })"
    else
      withoutNulls (
        builtins.listToAttrs (map (k: { name = k; value = c.${k}; }) given)
        // {
          interval = c.interval or null;
          timeout = c.timeout or null;
        }
      );

  # Number the checks so an error message can say which one is wrong.
  checks =
    service: cs:
    builtins.genList (i: check service i (builtins.elemAt cs i)) (builtins.length cs);

  file =
    attrName: s:
    let
      name = s.name or attrName;
    in
    if builtins.match "[A-Za-z0-9][A-Za-z0-9_.-]{0,62}" name == null then
      throw "services.upstreams-registrar.services.${attrName}: '${name}' is not a valid service name"
    else if !(builtins.isInt (s.port or null)) || s.port < 1 || s.port > 65535 then
      throw "services.upstreams-registrar.services.${attrName}: port must be an integer from 1 to 65535"
    else
      builtins.toJSON (withoutNulls {
        inherit name;
        id = s.id or null;
        port = s.port;
        address = s.address or null;
        tags = s.tags or [ ];
        meta = s.meta or { };
        checks = checks attrName (s.checks or [ ]);
      });
in
builtins.listToAttrs (
  map (n: {
    name = "${n}.json";
    value = file n services.${n};
  }) (builtins.attrNames services)
)
