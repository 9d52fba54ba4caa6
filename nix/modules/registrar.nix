# services.upstreams-registrar: the companion that registers containers, and services declared here, in
# Consul with their health checks.
#
#   imports = [ ./nix/modules/registrar.nix ];
#   services.upstreams-registrar = {
#     enable = true;
#     engine.type = "podman";
#     advertiseAddress = "192.168.1.10";
#     services.web = {
#       port = 8080;
#       checks = [ { http = "http://127.0.0.1:8080/health"; interval = "5s"; timeout = "2s"; } ];
#     };
#   };
#
# Declared services become JSON files in /etc/upstreams-registrar/services.d (the companion's
# services_dir); they are checked when the system is evaluated (nix/lib/service-files.nix).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.upstreams-registrar;
  inherit (lib) mkEnableOption mkIf mkOption types;

  unit = "upstreams-registrar.service";
  credentialsDir = "/run/credentials/${unit}";
  servicesDirName = "upstreams-registrar/services.d";

  engines = {
    podman = {
      socket = "/run/podman/podman.sock";
      group = "podman";
      units = [ "podman.socket" ];
    };
    docker = {
      socket = "/run/docker.sock";
      group = "docker";
      units = [
        "docker.socket"
        "docker.service"
      ];
    };
  };
  engine = if cfg.engine.type == null then null else engines.${cfg.engine.type};

  # Options left unset are null; the generator leaves null keys out.
  serviceFiles = import ../lib/service-files.nix cfg.services;

  registrarConfig = import ../lib/registrar-config.nix {
    consul = {
      inherit (cfg.consul) address;
      tokenFile = if cfg.consul.tokenFile == null then null else "${credentialsDir}/consul-token";
    };
    engine = if engine == null then null else "unix://${cfg.engine.socket}";
    inherit (cfg)
      hostname
      advertiseAddress
      internal
      explicit
      resync
      deregisterOnStop
      extraSettings
      ;
    servicesDir = if cfg.services == { } then null else "/etc/${servicesDirName}";
  };
  configFile = pkgs.writeText "upstreams-registrar.toml" registrarConfig.text;

  checkType = types.submodule {
    freeformType = types.attrsOf (types.oneOf [ types.str (types.listOf types.str) ]);
    options = {
      http = mkOption { type = types.nullOr types.str; default = null; description = "URL the Consul agent polls."; };
      tcp = mkOption { type = types.nullOr types.str; default = null; description = "host:port the Consul agent connects to."; };
      ttl = mkOption { type = types.nullOr types.str; default = null; description = "A TTL the application heartbeats."; };
      script = mkOption { type = types.nullOr (types.listOf types.str); default = null; description = "argv the companion runs on the host."; };
      shell = mkOption { type = types.nullOr types.str; default = null; description = "A shell command line the companion runs on the host."; };
      interval = mkOption { type = types.nullOr types.str; default = null; example = "10s"; description = "How often the check runs."; };
      timeout = mkOption { type = types.nullOr types.str; default = null; example = "2s"; description = "How long one run may take."; };
    };
  };

  serviceType = types.submodule (
    { name, ... }:
    {
      options = {
        name = mkOption { type = types.str; default = name; description = "The Consul service name."; };
        id = mkOption { type = types.nullOr types.str; default = null; description = "The service ID (default: host:file:<attribute name>)."; };
        port = mkOption { type = types.port; description = "The service's port."; };
        address = mkOption { type = types.nullOr types.str; default = null; description = "Address to register (default: advertiseAddress)."; };
        tags = mkOption { type = types.listOf types.str; default = [ ]; description = "Consul tags."; };
        weight = mkOption { type = types.nullOr (types.ints.between 1 65535); default = null; description = "Weight while passing."; };
        meta = mkOption { type = types.attrsOf types.str; default = { }; description = "Consul service meta."; };
        checks = mkOption { type = types.listOf checkType; default = [ ]; description = "Health checks."; };
      };
    }
  );

  # A companion setting left out of the TOML (so the companion's default applies) unless given.
  optionalSetting =
    type: args:
    mkOption (
      {
        type = types.nullOr type;
        default = null;
      }
      // args
    );
in
{
  options.services.upstreams-registrar = {
    enable = mkEnableOption "upstreams-registrar, which registers containers and declared services in Consul";

    package = mkOption {
      type = types.package;
      default = pkgs.upstreams or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.upstreams (from nix/overlay.nix), else nix/package.nix";
      description = "The upstreams package (it holds both console scripts).";
    };

    consul = {
      address = mkOption {
        type = types.str;
        default = "http://127.0.0.1:8500";
        description = "The local Consul agent's HTTP address.";
      };
      tokenFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "A file holding the Consul ACL token, handed over with LoadCredential.";
      };
    };

    engine = {
      type = mkOption {
        type = types.nullOr (types.enum [ "podman" "docker" ]);
        default =
          if config.virtualisation.podman.enable then "podman"
          else if config.virtualisation.docker.enable then "docker"
          else null;
        defaultText = lib.literalMD "`podman` or `docker` when that engine is enabled, else null (declared services only)";
        description = "The container engine whose containers are registered; null registers only `services`.";
      };
      socket = mkOption {
        type = types.str;
        default = if engine == null then "" else engine.socket;
        defaultText = lib.literalMD "the engine's system socket";
        description = "The engine's API socket.";
      };
      group = mkOption {
        type = types.nullOr types.str;
        default = if engine == null then null else engine.group;
        defaultText = lib.literalMD "`podman` or `docker`";
        description = ''
          A group that may use the engine socket, given to the service as a supplementary group.
          Access to an engine socket is as strong as root on most hosts: keep this service's config tight.
        '';
      };
    };

    hostname = optionalSetting types.str {
      description = "The owner mark on this host's registrations (default: the host name).";
    };
    advertiseAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "192.168.1.10";
      description = "The address registered for services that name none (reachable from the load balancer).";
    };
    internal = optionalSetting types.bool {
      description = "Register containers' internal addresses and ports instead of published ones.";
    };
    explicit = optionalSetting types.bool {
      description = "Register only containers that name their service (SERVICE_NAME label or env).";
    };
    resync = optionalSetting types.str {
      example = "30s";
      description = "How often everything is compared with the agent again.";
    };
    deregisterOnStop = optionalSetting types.bool {
      description = "Deregister this host's services when the companion stops.";
    };

    services = mkOption {
      type = types.attrsOf serviceType;
      default = { };
      description = "Services registered with their checks, written to /etc/${servicesDirName}.";
    };

    extraSettings = mkOption {
      type = types.attrs;
      default = { };
      description = "Further settings merged into the generated TOML (see docs/registrar.md).";
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      description = "The generated config file.";
    };
  };

  config = mkIf cfg.enable {
    environment.etc = lib.mapAttrs' (
      file: text: lib.nameValuePair "${servicesDirName}/${file}" { inherit text; }
    ) serviceFiles;

    systemd.services.upstreams-registrar = {
      description = "Register containers and declared services in Consul";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ lib.optional config.services.consul.enable "consul.service";
      after = [
        "network-online.target"
        "consul.service"
      ] ++ lib.optionals (engine != null) engine.units;
      requires = lib.optional (cfg.engine.type == "podman") "podman.socket";
      restartTriggers = [ configFile ] ++ lib.attrValues serviceFiles;

      serviceConfig = import ../lib/hardening.nix // {
        ExecStart = "${lib.getExe' cfg.package "upstreams-registrar"} run --config ${configFile}";
        Restart = "on-failure";
        RestartSec = "2s";

        LoadCredential = lib.optional (cfg.consul.tokenFile != null) "consul-token:${cfg.consul.tokenFile}";

        DynamicUser = true;
        SupplementaryGroups = lib.optional (cfg.engine.group != null) cfg.engine.group;
      };
    };
  };
}
