# nginx and the upstreams sidecar in one Nomad group, with the exec driver, from one Nix-built artifact
# (nix/artifact.nix: the closure of the sidecar and nginx as a self-contained tarball).
#
#   nix-build nix/artifact.nix                    # -> result (upstreams-nomad.tar.gz)
#   sha256sum result                              # -> artifact_sha256 below
#   upload result somewhere the clients can fetch it, then:
#   nomad job run -var artifact_url=https://.../upstreams-nomad.tar.gz -var artifact_sha256=... \
#     examples/nomad/upstreams.nomad.hcl
#
# Order, as Nomad's lifecycle hooks make it: the prestart task "render" writes nginx's config, the
# sidecar's config and its template into the shared alloc directory, runs `upstreams render` once and
# exits 0 (nginx refuses an undefined upstream, so the rendered file must exist first); then the main
# task "nginx" starts; then, once nginx runs, the poststart sidecar task "upstreams" keeps the file in
# step and reloads nginx by SIGHUP through the pid file nginx writes in the alloc directory.
#
# The artifact is unpacked into each task directory, which the exec driver makes the task's root, so the
# store paths land at /nix/store and the programs at /upstreams/bin. Both tasks that share the pid file
# run as the same user with pid_mode = "host", so the pid in the file means the same process.

variable "artifact_url" {
  type = string
}

variable "artifact_sha256" {
  type = string
}

variable "consul_addr" {
  type    = string
  default = "http://127.0.0.1:8500"
}

job "edge" {
  type = "service"

  group "lb" {
    count = 1

    network {
      port "http" {}
      port "status" {} # the sidecar's /health, /metrics and /status (the default 9119 may be taken)
    }

    service {
      name     = "edge"
      port     = "http"
      provider = "consul"
      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    # First, to completion: every file nginx and the sidecar read, and the first render.
    task "render" {
      driver = "exec"
      user   = "nobody"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      artifact {
        source      = var.artifact_url
        destination = "."
        options {
          checksum = "sha256:${var.artifact_sha256}"
        }
      }

      # nginx's config, in the shared alloc dir (Nomad creates alloc/nginx/ for it).
      template {
        destination = "alloc/nginx/nginx.conf"
        change_mode = "noop" # the sidecar reloads nginx (after nginx -t)
        data        = <<-EOT
          daemon off;
          pid {{ env "NOMAD_ALLOC_DIR" }}/nginx/nginx.pid;
          error_log stderr;
          events {}
          http {
            access_log off;
            client_body_temp_path {{ env "NOMAD_ALLOC_DIR" }}/nginx/client_body;
            proxy_temp_path {{ env "NOMAD_ALLOC_DIR" }}/nginx/proxy;
            fastcgi_temp_path {{ env "NOMAD_ALLOC_DIR" }}/nginx/fastcgi;
            uwsgi_temp_path {{ env "NOMAD_ALLOC_DIR" }}/nginx/uwsgi;
            scgi_temp_path {{ env "NOMAD_ALLOC_DIR" }}/nginx/scgi;
            include {{ env "NOMAD_ALLOC_DIR" }}/nginx/web.conf;
            server {
              listen {{ env "NOMAD_PORT_http" }};
              location / { proxy_pass http://web; }
            }
          }
        EOT
      }

      # The sidecar's Jinja2 template: [[ ]] delimiters, so Nomad leaves its {{ }} alone.
      template {
        destination     = "alloc/upstreams/web.conf.j2"
        left_delimiter  = "[["
        right_delimiter = "]]"
        data            = <<-EOT
          {% import "nginx.j2" as nginx %}
          {{ nginx.upstream("web", service("web")) }}
        EOT
      }

      template {
        destination = "alloc/upstreams/upstreams.toml"
        change_mode = "noop"
        data        = <<-EOT
          [consul]
          address = "${var.consul_addr}"

          [wait]
          min = "2s"
          max = "10s"

          [status]
          listen = "127.0.0.1:{{ env "NOMAD_PORT_status" }}"

          [nginx]
          pid_file = "{{ env "NOMAD_ALLOC_DIR" }}/nginx/nginx.pid"
          check_command = ["/upstreams/bin/nginx", "-t", "-q", "-e", "stderr", "-c", "{{ env "NOMAD_ALLOC_DIR" }}/nginx/nginx.conf"]

          [[template]]
          source = "{{ env "NOMAD_ALLOC_DIR" }}/upstreams/web.conf.j2"
          destination = "{{ env "NOMAD_ALLOC_DIR" }}/nginx/web.conf"
          perms = "0644"
        EOT
      }

      # Renders once and exits 0; nginx is not running yet, so there is nothing to reload.
      config {
        command = "/upstreams/bin/upstreams"
        args    = ["render", "--timeout", "60", "--config", "${NOMAD_ALLOC_DIR}/upstreams/upstreams.toml"]
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }

    # The main task: starts only after "render" exited 0, so its include exists.
    task "nginx" {
      driver = "exec"
      user   = "nobody"

      artifact {
        source      = var.artifact_url
        destination = "."
        options {
          checksum = "sha256:${var.artifact_sha256}"
        }
      }

      config {
        command  = "/upstreams/bin/nginx"
        args     = ["-e", "stderr", "-c", "${NOMAD_ALLOC_DIR}/nginx/nginx.conf"]
        pid_mode = "host"
      }

      resources {
        cpu    = 200
        memory = 64
      }
    }

    # Once nginx runs: keep the upstream file in step with Consul and reload nginx on every change.
    task "upstreams" {
      driver = "exec"
      user   = "nobody"

      lifecycle {
        hook    = "poststart"
        sidecar = true
      }

      artifact {
        source      = var.artifact_url
        destination = "."
        options {
          checksum = "sha256:${var.artifact_sha256}"
        }
      }

      config {
        command  = "/upstreams/bin/upstreams"
        args     = ["watch", "--config", "${NOMAD_ALLOC_DIR}/upstreams/upstreams.toml"]
        pid_mode = "host"
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
