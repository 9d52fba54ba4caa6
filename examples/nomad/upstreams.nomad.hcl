# nginx and the upstreams sidecar in one Nomad group, both with the exec driver, both from one
# Nix-built artifact (nix/artifact.nix: the closure of the sidecar and nginx as a tarball).
#
#   nix-build nix/artifact.nix                    # -> result (upstreams-nomad.tar.gz)
#   sha256sum result                              # -> artifact_sha256 below
#   upload result somewhere the clients can fetch it, then:
#   nomad job run -var artifact_url=https://.../upstreams-nomad.tar.gz -var artifact_sha256=... \
#     examples/nomad/upstreams.nomad.hcl
#
# The artifact is unpacked into each task directory, which the exec driver makes the task's root, so the
# store paths land at /nix/store and the programs at /upstreams/bin. If your clients already put the
# host's /nix into chroot_env, unpack elsewhere (or use the host's store and skip the artifact).
#
# The sidecar reloads nginx by SIGHUP through nginx's pid file in the shared alloc directory; both tasks
# run as the same user and use pid_mode = "host" so that the pid in the file means the same process.

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

    # nginx: runs the config the sidecar task renders into the shared alloc dir.
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

      # nginx refuses an undefined upstream: start only after the sidecar's first render.
      lifecycle {
        hook    = "poststart"
        sidecar = true
      }

      resources {
        cpu    = 200
        memory = 64
      }
    }

    # The sidecar is the main task; nginx (poststart) starts once it runs. The first render happens
    # before nginx exists, so there is no pid file to signal yet; nginx then starts with the rendered file.
    task "upstreams" {
      driver = "exec"
      user   = "nobody"

      artifact {
        source      = var.artifact_url
        destination = "."
        options {
          checksum = "sha256:${var.artifact_sha256}"
        }
      }

      # nginx's config, in the shared alloc dir: rendered here so that it exists for the sidecar's first
      # `nginx -t`, before the nginx task starts.
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
            client_body_temp_path {{ env "NOMAD_TASK_DIR" }}/client_body;
            proxy_temp_path {{ env "NOMAD_TASK_DIR" }}/proxy;
            fastcgi_temp_path {{ env "NOMAD_TASK_DIR" }}/fastcgi;
            uwsgi_temp_path {{ env "NOMAD_TASK_DIR" }}/uwsgi;
            scgi_temp_path {{ env "NOMAD_TASK_DIR" }}/scgi;
            include {{ env "NOMAD_ALLOC_DIR" }}/upstreams/web.conf;
            server {
              listen {{ env "NOMAD_PORT_http" }};
              location / { proxy_pass http://web; }
            }
          }
        EOT
      }

      # The rendered upstream file's directory must exist before the sidecar starts.
      template {
        destination = "alloc/upstreams/.keep"
        data        = ""
      }

      template {
        destination     = "local/web.conf.j2"
        left_delimiter  = "[["
        right_delimiter = "]]"
        data            = <<-EOT
          {% import "nginx.j2" as nginx %}
          {{ nginx.upstream("web", service("web")) }}
        EOT
      }

      template {
        destination = "local/upstreams.toml"
        data        = <<-EOT
          [consul]
          address = "${var.consul_addr}"

          [wait]
          min = "2s"
          max = "10s"

          [nginx]
          pid_file = "{{ env "NOMAD_ALLOC_DIR" }}/nginx/nginx.pid"
          check_command = ["/upstreams/bin/nginx", "-t", "-q", "-e", "stderr", "-c", "{{ env "NOMAD_ALLOC_DIR" }}/nginx/nginx.conf"]

          [[template]]
          source = "{{ env "NOMAD_TASK_DIR" }}/web.conf.j2"
          destination = "{{ env "NOMAD_ALLOC_DIR" }}/upstreams/web.conf"
          perms = "0644"
        EOT
      }

      config {
        command  = "/upstreams/bin/upstreams"
        args     = ["watch", "--config", "${NOMAD_TASK_DIR}/upstreams.toml"]
        pid_mode = "host"
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
