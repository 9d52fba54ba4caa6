# A small TOML writer that uses builtins only, so it evaluates without nixpkgs (and is tested offline by
# tests/test_nix.py). It writes what our config files need: strings, integers, booleans, floats, lists
# of scalars, tables and arrays of tables. A null value leaves its key out.
#
#   (import ./toml.nix).render { consul.address = "http://127.0.0.1:8500"; template = [ { source = "a"; } ]; }
let
  inherit (builtins)
    all attrNames concatStringsSep filter isAttrs isBool isFloat isInt isList isString match toJSON
    typeOf
    ;

  isTable = v: isAttrs v;
  isTableArray = v: isList v && v != [ ] && all isAttrs v;

  key = k: if match "[A-Za-z0-9_-]+" k != null then k else toJSON k;

  # toJSON escapes quotes, backslashes and control characters the way a TOML basic string wants them.
  scalar =
    where: v:
    if isString v then
      toJSON v
    else if isBool v then
      (if v then "true" else "false")
    else if isInt v then
      toString v
    else if isFloat v then
      toJSON v
    else if isList v then
      "[" + concatStringsSep ", " (map (scalar where) v) + "]"
    else
      throw "toml.nix: ${where} is a ${typeOf v}, which cannot be written as a TOML value";

  keysWhere = pred: attrs: filter (k: attrs.${k} != null && pred attrs.${k}) (attrNames attrs);

  # One table's body: its plain keys, then its sub-tables, then its arrays of tables.
  body =
    path: attrs:
    let
      plain = keysWhere (v: !(isTable v) && !(isTableArray v)) attrs;
      tables = keysWhere isTable attrs;
      arrays = keysWhere isTableArray attrs;
      name = k: concatStringsSep "." (map key (path ++ [ k ]));
      line = k: "${key k} = ${scalar (name k) attrs.${k}}\n";
      table = k: "\n[${name k}]\n" + body (path ++ [ k ]) attrs.${k};
      array = k: concatStringsSep "" (map (t: "\n[[${name k}]]\n" + body (path ++ [ k ]) t) attrs.${k});
    in
    concatStringsSep "" (map line plain ++ map table tables ++ map array arrays);

  # Drop the blank line a document would start with when it has no top-level plain keys.
  trimStart = s: if builtins.substring 0 1 s == "\n" then builtins.substring 1 (-1) s else s;
in
{
  render = attrs: trimStart (body [ ] attrs);
}
