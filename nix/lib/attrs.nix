# Builtins-only attribute-set helpers shared by the config generators (no nixpkgs needed).
rec {
  # Like lib.recursiveUpdate: values of `right` win; nested attribute sets are merged.
  recursiveUpdate =
    left: right:
    left
    // builtins.mapAttrs (
      k: v:
      if builtins.isAttrs v && builtins.isAttrs (left.${k} or null) then recursiveUpdate left.${k} v else v
    ) right;

  # Drop keys whose value is null, at the top level only.
  withoutNulls = attrs: builtins.removeAttrs attrs (builtins.filter (k: attrs.${k} == null) (builtins.attrNames attrs));

  # The [consul] table both daemons read: address and token_file, each left out when not given.
  consulTable =
    consul:
    withoutNulls {
      address = consul.address or null;
      token_file = consul.tokenFile or null;
    };
}
