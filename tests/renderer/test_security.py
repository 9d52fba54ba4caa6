"""Security with real parts: ACL tokens (deny by default) and Consul over TLS and mutual TLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.renderer.conftest import register_backend
from tests.support.acl import token_with
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess, write_config
from tests.support.waiting import wait_until


def with_token_file(config: Path, token: str) -> None:
    (config.parent / "token").write_text(token + "\n")
    config.write_text(config.read_text().replace("[consul]\n", '[consul]\ntoken_file = "token"\n', 1))


def test_a_token_that_cannot_read_services_is_reported_instead_of_rendering_empty_upstreams(
    tmp_path: Path, acl_consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(acl_consul, nginx, "b1")
    secret = token_with(acl_consul, "kv-only", 'key_prefix "" { policy = "read" }')
    config = write_config(tmp_path, acl_consul, nginx)
    with_token_file(config, secret)
    dest = nginx.conf_d / "upstreams.conf"
    before = dest.read_bytes()
    sidecar = start_sidecar(config)
    wait_until(lambda: "can read no service at all" in sidecar.output(), what="the token problem reported")
    assert dest.read_bytes() == before
    assert secret not in sidecar.output()
    assert secret not in Path(f"/proc/{sidecar.proc.pid}/cmdline").read_text()


def test_an_unknown_token_is_reported_and_nothing_is_rendered(
    tmp_path: Path, acl_consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(acl_consul, nginx, "b1")
    secret = "0b5e7c9a-1111-4222-8333-444455556666"
    config = write_config(tmp_path, acl_consul, nginx)
    with_token_file(config, secret)
    sidecar = start_sidecar(config)
    wait_until(
        lambda: "does not accept the configured ACL token" in sidecar.output(), what="the bad token reported"
    )
    assert secret not in sidecar.output()
    assert "server 127.0.0.1:1 down;" in (nginx.conf_d / "upstreams.conf").read_text()


def test_a_token_with_service_and_node_read_renders(
    tmp_path: Path, acl_consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(acl_consul, nginx, "b1")
    secret = token_with(
        acl_consul, "reader", 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }'
    )
    config = write_config(tmp_path, acl_consul, nginx)
    with_token_file(config, secret)
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving with a reading token")
    assert secret not in sidecar.output()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_consul(tmp_path: Path, ca: trustme.CA) -> Iterator[ConsulAgent]:
    folder = tmp_path / "consul"
    folder.mkdir()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost", "server.dc1.consul")
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    hcl = f"""ca_file = "{folder}/ca.pem"
cert_file = "{folder}/server.pem"
key_file = "{folder}/server.key"
verify_incoming_https = true
"""
    agent = ConsulAgent(folder, extra_hcl=hcl, https=True)
    agent.start()
    yield agent
    agent.stop()


def client_files(folder: Path, ca: trustme.CA) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    cert = ca.issue_cert("client.dc1.consul")
    files = {"ca": folder / "ca.pem", "cert": folder / "client.pem", "key": folder / "client.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


def https_config(config: Path, consul: ConsulAgent, keys: str) -> None:
    text = config.read_text().replace(
        f'address = "{consul.address}"', f'address = "https://127.0.0.1:{consul.https_port}"{keys}'
    )
    config.write_text(text)


@pytest.mark.parametrize("given_by", ["config-keys", "environment"])
def test_mutual_tls(
    tmp_path: Path,
    given_by: str,
    tls_consul: ConsulAgent,
    nginx: NginxServer,
    ca: trustme.CA,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    register_backend(tls_consul, nginx, "b1")
    files = client_files(tmp_path / "tls", ca)
    config = write_config(tmp_path, tls_consul, nginx)
    env: dict[str, str] = {}
    if given_by == "config-keys":
        keys = f'\nca_file = "{files["ca"]}"\ncert_file = "{files["cert"]}"\nkey_file = "{files["key"]}"'
        https_config(config, tls_consul, keys)
    else:  # consul's own environment variables, as the Consul CLI reads them
        config.write_text(config.read_text().replace(f'address = "{tls_consul.address}"\n', ""))
        env = {
            "CONSUL_HTTP_ADDR": f"https://127.0.0.1:{tls_consul.https_port}",
            "CONSUL_CACERT": str(files["ca"]),
            "CONSUL_CLIENT_CERT": str(files["cert"]),
            "CONSUL_CLIENT_KEY": str(files["key"]),
        }
    start_sidecar(config, env=env)
    wait_until(lambda: nginx.answers() == {"b1"}, what=f"rendered over mutual TLS ({given_by})")


def test_a_wrong_ca_is_a_clear_error_and_nothing_is_rendered(
    tmp_path: Path,
    tls_consul: ConsulAgent,
    nginx: NginxServer,
    ca: trustme.CA,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    register_backend(tls_consul, nginx, "b1")
    other = trustme.CA()
    (tmp_path / "other-ca.pem").write_bytes(other.cert_pem.bytes())
    config = write_config(tmp_path, tls_consul, nginx)
    https_config(config, tls_consul, f'\nca_file = "{tmp_path / "other-ca.pem"}"')
    sidecar = start_sidecar(config)
    wait_until(lambda: "certificate verify failed" in sidecar.output(), what="the wrong CA named")
    assert "Consul is unreachable" in sidecar.output()
    assert "server 127.0.0.1:1 down;" in (nginx.conf_d / "upstreams.conf").read_text()
