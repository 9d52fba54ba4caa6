# Service files for the companion's services_dir: one JSON file per NixOS-declared service (builtins only).
#
#   import ./service-files.nix {
#     web = { port = 8080; tags = [ "http" ]; checks = [ { http = "http://127.0.0.1:8080/health"; interval = "5s"; } ]; };
#   }
#   => { "web.json" = "{\"checks\":[...],\"name\":\"web\",\"port\":8080,\"tags\":[\"http\"]}"; }
#
# The format is healthchecks/files.py's (docs/registrar.md): name (defaults to the attribute name), id,
# port, address, tags, weight, meta, and checks, each with exactly one of http, tcp, ttl, script (argv
# list) or shell (string), plus interval, timeout, deregister_after, initial_status. Mistakes are
# reported here, at evaluation time, rather than by the companion at run time.
services:
let
  inherit (import ./attrs.nix) withoutNulls;
  kinds = [
    "http"
    "tcp"
    "ttl"
    "script"
    "shell"
  ];
  checkKeys = kinds ++ [
    "interval"
    "timeout"
    "deregister_after"
    "initial_status"
  ];
  serviceKeys = [
    "name"
    "id"
    "port"
    "address"
    "tags"
    "weight"
    "meta"
    "checks"
  ];
  unknown = allowed: attrs: builtins.filter (k: !(builtins.elem k allowed)) (builtins.attrNames attrs);
  join = builtins.concatStringsSep ", ";

  check =
    where: c:
    let
      given = builtins.filter (k: (c.${k} or null) != null) kinds;
      extra = unknown checkKeys c;
    in
    if extra != [ ] then
      throw "${where}: unknown key ${join extra}"
    else if builtins.length given != 1 then
      throw "${where}: give exactly one of ${join kinds} (got ${if given == [ ] then "none" else join given})"
    else if (c.script or null) != null && !(builtins.isList c.script && c.script != [ ]) then
      throw "${where}: script is an argv list; use shell for a shell command line"
    else if (c.http or null) != null && builtins.match "https?://.*" c.http == null then
      throw "${where}: http must be an http:// or https:// URL"
    else
      withoutNulls (builtins.listToAttrs (map (k: { name = k; value = c.${k} or null; }) checkKeys));

  file =
    attrName: s:
    let
      where = "services.upstreams-registrar.services.${attrName}";
      name = s.name or attrName;
      extra = unknown serviceKeys s;
      cs = s.checks or [ ];
    in
    if builtins.match "[A-Za-z0-9_.-]+" attrName == null then
      throw "${where}: the attribute name is the file name; use letters, digits, '_', '.', '-'"
    else if extra != [ ] then
      throw "${where}: unknown key ${join extra}"
    else if builtins.match "[A-Za-z0-9][A-Za-z0-9_.-]{0,62}" name == null then
      throw "${where}: '${name}' is not a service name (letters, digits, '_', '.', '-', at most 63)"
    else if !(builtins.isInt (s.port or 0)) || (s.port or 0) < 0 || (s.port or 0) > 65535 then
      throw "${where}: port must be a whole number from 0 to 65535"
    else
      builtins.toJSON (withoutNulls {
        inherit name;
        id = s.id or null;
        port = s.port or null;
        address = s.address or null;
        tags = s.tags or null;
        weight = s.weight or null;
        meta = s.meta or null;
        checks = builtins.genList (i: check "${where}.checks.${toString i}" (builtins.elemAt cs i)) (
          builtins.length cs
        );
      });
in
builtins.listToAttrs (
  map (n: {
    name = "${n}.json";
    value = file n services.${n};
  }) (builtins.attrNames services)
)
