"""The engine edge's translation of inspect answers (shapes recorded from Docker 20.10 and Podman 4.3)."""

from __future__ import annotations

from healthchecks.engine import PortBinding, container_from_inspect

DOCKER = {
    "Id": "4834f57013f6" + "0" * 52,
    "Name": "/web1",
    "Config": {
        "Hostname": "4834f57013f6",
        "Image": "localhost/bb:1",
        "Env": ["PATH=/bin", "SERVICE_TAGS=a,b", "NOEQUALS"],
        "Labels": {"SERVICE_NAME": "web"},
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
    },
    "HostConfig": {"NetworkMode": "default"},
    "State": {"Status": "running", "Health": {"Status": "healthy", "Log": [{"Output": "ok\n"}]}},
    "NetworkSettings": {
        "IPAddress": "172.17.0.2",
        "Ports": {
            "8080/tcp": [{"HostIp": "::", "HostPort": "18081"}, {"HostIp": "127.0.0.1", "HostPort": "18081"}],
            "53/udp": None,
        },
    },
}

PODMAN = {
    "Id": "2ffa6e879b3e" + "0" * 52,
    "Name": "t1",
    "ImageName": "localhost/bb:1",
    "Config": {"Labels": None, "Env": None, "Image": "localhost/bb:1"},
    "HostConfig": {"NetworkMode": "bridge"},
    "State": {"Status": "running", "Healthcheck": {"Status": ""}},
    "NetworkSettings": {
        "IPAddress": "",
        "Networks": {"podman": {"IPAddress": "10.88.0.2"}},
        "Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "bad/tcp": []},
    },
}


def test_docker_inspect_translates_to_neutral_values() -> None:
    info = container_from_inspect(DOCKER)
    assert info.name == "web1" and info.short_id == "4834f57013f6"
    assert info.labels == (("SERVICE_NAME", "web"),)
    assert dict(info.env) == {"PATH": "/bin", "SERVICE_TAGS": "a,b"}
    assert info.ports == (PortBinding(53, "udp"), PortBinding(8080, "tcp", "127.0.0.1", 18081))
    assert (info.ip, info.network_mode, info.health, info.health_output) == (
        "172.17.0.2",
        "default",
        "healthy",
        "ok\n",
    )


def test_podman_inspect_translates_to_neutral_values() -> None:
    info = container_from_inspect(PODMAN)
    assert info.name == "t1" and info.image == "localhost/bb:1"
    assert info.labels == () and info.env == ()
    assert info.ports == (PortBinding(8080, "tcp", "127.0.0.1", 18080),)
    assert info.ip == "10.88.0.2" and info.health is None


def test_equal_inspects_give_equal_values() -> None:
    assert container_from_inspect(DOCKER) == container_from_inspect(dict(DOCKER))
