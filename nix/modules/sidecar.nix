# services.upstreams: the sidecar that renders nginx upstream files from Consul and has nginx reloaded.
#
#   imports = [ ./nix/modules/sidecar.nix ];
#   services.upstreams = {
#     enable = true;
#     consul.tokenFile = "/run/secrets/consul-token";
#     templates."web.conf".source = ./web.conf.j2;    # rendered to /run/upstreams/web.conf
#   };
#   services.nginx.appendHttpConfig = "include /run/upstreams/web.conf;";
#
# What it does that nixpkgs' services.consul-template does not (docs/nix.md says more):
# - ordering: after (and wants) consul.service; before nginx.service, and the unit only counts as
#   started once every template has been rendered, so nginx never starts without its includes;
# - the token through LoadCredential (never in the store, never readable by the service's user id);
# - DynamicUser with systemd hardening; rendered files in a RuntimeDirectory preserved across restarts;
# - nginx checked with `nginx -t` on every render and reloaded (never restarted) by a root oneshot that a
#   path unit starts, so the sidecar holds no privilege at all;
# - Restart=on-failure.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.upstreams;
  nginxCfg = config.services.nginx;
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    types
    ;

  unit = "upstreams.service";
  runtimeDir = "/run/upstreams";
  credentialsDir = "/run/credentials/${unit}"; # $CREDENTIALS_DIRECTORY of a system service
  reloadRequest = "${runtimeDir}/reload.request";

  requestReload = pkgs.writeShellScript "upstreams-request-reload" ''
    # Any write here makes upstreams-nginx-reload.path start the root oneshot that reloads nginx.
    ${pkgs.coreutils}/bin/date -u +%FT%T.%NZ > ${reloadRequest}
  '';

  nginxCheck = pkgs.writeShellApplication {
    name = "upstreams-nginx-check";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.gnugrep
      pkgs.gnused
    ];
    text = builtins.readFile ../scripts/nginx-check.sh;
  };

  templateModule =
    { name, config, ... }:
    {
      options = {
        source = mkOption {
          type = types.path;
          description = "The Jinja2 template (copied to the store).";
        };
        destination = mkOption {
          type = types.str;
          default = "${runtimeDir}/${name}";
          defaultText = lib.literalExpression ''"/run/upstreams/''${name}"'';
          description = ''
            Where the rendered file goes; it must be in ${runtimeDir}, the only place the sidecar may write.
            Include it from nginx's config by this path.
          '';
        };
        perms = mkOption {
          type = types.nullOr (types.strMatching "0?[0-7]{3,4}");
          default = "0644";
          description = "Mode of the rendered file (nginx must be able to read it).";
        };
        backup = mkOption {
          type = types.bool;
          default = false;
          description = "Keep the previous rendering next to the file as `<destination>.bak`.";
        };
      };
    };

  sidecarConfig = import ../lib/sidecar-config.nix {
    consul = {
      inherit (cfg.consul) address;
      tokenFile = if cfg.consul.tokenFile == null then null else "${credentialsDir}/consul-token";
    };
    inherit (cfg) wait;
    nginx = {
      inherit (cfg.nginx) checkCommand reloadCommand pidFile dynamic;
    };
    templates = map (t: {
      source = "${t.source}";
      inherit (t) destination perms backup;
    }) (lib.attrValues cfg.templates);
    inherit (cfg) extraSettings;
  };

  configFile = pkgs.writeText "upstreams.toml" sidecarConfig.text;
  destinations = map (t: t.destination) (lib.attrValues cfg.templates);
in
{
  options.services.upstreams = {
    enable = mkEnableOption "the upstreams sidecar (nginx upstreams rendered from Consul)";
    package = mkOption {
      type = types.package;
      default = pkgs.upstreams or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.upstreams (from nix/overlay.nix), else nix/package.nix";
      description = "The upstreams package.";
    };

    consul = {
      address = mkOption {
        type = types.str;
        default = "http://127.0.0.1:8500";
        description = "Consul's HTTP address (`http://`, `https://` or `unix://`).";
      };
      tokenFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/run/secrets/consul-token";
        description = ''
          A file holding the Consul ACL token. systemd reads it as root and hands it to the service with
          LoadCredential; it is never copied to the store.
        '';
      };
    };

    wait = {
      min = mkOption {
        type = types.str;
        default = "2s";
        description = "Render once Consul has been quiet this long (a duration such as `500ms`).";
      };
      max = mkOption {
        type = types.nullOr types.str;
        default = "10s";
        description = "Render at the latest this long after the first change of a burst.";
      };
    };

    templates = mkOption {
      type = types.attrsOf (types.submodule templateModule);
      default = { };
      example = lib.literalExpression ''{ "web.conf".source = ./web.conf.j2; }'';
      description = "Templates to render, keyed by the rendered file's name.";
    };

    nginx = {
      enable = mkOption {
        type = types.bool;
        default = nginxCfg.enable;
        defaultText = lib.literalExpression "config.services.nginx.enable";
        description = ''
          Integrate with services.nginx: render before nginx starts, check every render with
          `nginx -t` against the live config, and reload nginx through a root oneshot.
        '';
      };
      configFile = mkOption {
        type = types.str;
        default = "/etc/nginx/nginx.conf";
        description = ''
          nginx's main config, checked with the rendered files. The default exists when
          services.nginx.enableReload is on, which this module turns on by default.
        '';
      };
      checkCommand = mkOption {
        type = types.listOf types.str;
        default = [
          (lib.getExe nginxCheck)
          (lib.getExe' nginxCfg.package "nginx")
          cfg.nginx.configFile
        ];
        defaultText = lib.literalMD "a copy of `nginx.configFile` checked with `nginx -t` (see nix/scripts/nginx-check.sh)";
        description = "The command that checks nginx's config after each render (argv).";
      };
      reloadCommand = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = [ "${requestReload}" ];
        defaultText = lib.literalMD "a script writing `/run/upstreams/reload.request`";
        description = ''
          The command that gets nginx reloaded (argv). The default only writes a request file; a path unit
          then starts upstreams-nginx-reload.service, which runs `systemctl reload nginx` as root.
        '';
      };
      pidFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Signal this pid file's process with SIGHUP instead of running reloadCommand.";
      };
      dynamic = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Push server-only changes to nginx's Lua balancer at runtime, without a reload (`[nginx] dynamic`).
            nginx needs the Lua module and the text `upstreams nginx-snippet --config ''${configFile}` prints
            (docs/operations.md, "Server updates without a reload").
          '';
        };
        endpoint = mkOption {
          type = types.str;
          default = "127.0.0.1:9180";
          description = "Where nginx serves the update endpoint: a loopback host:port or unix:/path.";
        };
        stateFile = mkOption {
          type = types.str;
          default = "${runtimeDir}/upstreams-dynamic.json";
          defaultText = lib.literalExpression ''"/run/upstreams/upstreams-dynamic.json"'';
          description = "The peer state nginx's workers load when they start (written with the rendered files).";
        };
      };
    };

    extraSettings = mkOption {
      type = types.attrs;
      default = { };
      example = {
        consul.ca_file = "/etc/ssl/consul-ca.pem";
      };
      description = "Further settings merged into the generated TOML (see docs/ for every key).";
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      defaultText = lib.literalMD "generated from the options above";
      description = "The generated config file.";
    };
  };

  config = mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions =
          lib.mapAttrsToList (name: t: {
            assertion = lib.hasPrefix "${runtimeDir}/" t.destination && !(lib.hasInfix "/../" t.destination);
            message = "services.upstreams.templates.\"${name}\".destination (${t.destination}) must be inside ${runtimeDir}/.";
          }) cfg.templates
          ++ [
            {
              assertion = cfg.templates != { };
              message = "services.upstreams.templates is empty, so there is nothing to render.";
            }
            {
              assertion = !cfg.nginx.enable || nginxCfg.enable;
              message = "services.upstreams.nginx.enable needs services.nginx.enable.";
            }
            {
              assertion =
                !cfg.nginx.enable || cfg.nginx.configFile != "/etc/nginx/nginx.conf" || nginxCfg.enableReload;
              message = "services.upstreams.nginx.configFile is /etc/nginx/nginx.conf, which exists only with services.nginx.enableReload = true.";
            }
          ];

        systemd.services.upstreams = {
          description = "Render nginx upstreams from Consul";
          wantedBy = [ "multi-user.target" ];
          wants = [ "network-online.target" ] ++ lib.optional config.services.consul.enable "consul.service";
          after = [
            "network-online.target"
            "consul.service"
          ];
          before = lib.optional cfg.nginx.enable "nginx.service";
          restartTriggers = [ configFile ];

          serviceConfig = import ../lib/hardening.nix // {
            Type = "exec";
            ExecStart = "${lib.getExe' cfg.package "upstreams"} watch --config ${configFile}";
            # The unit is "started" once every template has been rendered (consul-template's -once is
            # not needed): nginx, ordered after us, never starts without its includes.
            ExecStartPost = pkgs.writeShellScript "upstreams-wait-first-render" ''
              for f in ${lib.escapeShellArgs destinations}; do
                until [ -e "$f" ]; do ${pkgs.coreutils}/bin/sleep 0.2; done
              done
            '';
            TimeoutStartSec = "120s";
            Restart = "on-failure";
            RestartSec = "2s";

            LoadCredential = lib.optional (cfg.consul.tokenFile != null) "consul-token:${cfg.consul.tokenFile}";

            DynamicUser = true;
            # Read access to what nginx -t must read (certificates, group-readable includes).
            SupplementaryGroups = lib.optional cfg.nginx.enable nginxCfg.group;
            RuntimeDirectory = "upstreams";
            RuntimeDirectoryMode = "0755";
            RuntimeDirectoryPreserve = true; # nginx keeps its includes while the sidecar restarts
            UMask = "0022";

            ProcSubset = "pid"; # on top of ../lib/hardening.nix, which both modules share
          };
        };
      }

      (mkIf cfg.nginx.enable {
        services.nginx.enableReload = lib.mkDefault true;

        systemd.services.nginx = {
          wants = [ unit ];
          after = [ unit ];
        };

        # The sidecar asks for a reload by writing reload.request; this root oneshot does it. A reload
        # (SIGHUP after nginx's own `nginx -t`) keeps connections; nothing here ever restarts nginx.
        systemd.paths.upstreams-nginx-reload = {
          description = "Watch for the upstreams sidecar's nginx reload requests";
          wantedBy = [ "multi-user.target" ];
          pathConfig = {
            PathChanged = reloadRequest;
            Unit = "upstreams-nginx-reload.service";
          };
        };
        systemd.services.upstreams-nginx-reload = {
          description = "Reload nginx for the upstreams sidecar";
          serviceConfig = {
            Type = "oneshot";
            # Before nginx first starts there is nothing to reload: skip, do not fail.
            ExecCondition = "${config.systemd.package}/bin/systemctl is-active --quiet nginx.service";
            ExecStart = "${config.systemd.package}/bin/systemctl reload nginx.service";
          };
        };
      })
    ]
  );
}
