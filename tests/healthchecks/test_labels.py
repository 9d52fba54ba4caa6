"""Labels and environment -> service specs (pure), following registrator's conventions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from healthchecks.engine import ContainerInfo, PortBinding
from healthchecks.labels import HostSettings, services_for
from healthchecks.spec import MAX_META, registration_body, valid_meta_key

HOST = HostSettings(hostname="h1", advertise_address="10.0.0.5")


def container(
    labels: dict[str, str] | None = None, env: dict[str, str] | None = None, **kw: object
) -> ContainerInfo:
    defaults: dict[str, object] = {
        "id": "abc123" * 10,
        "name": "web-1",
        "image": "registry.example:5000/team/nginx:1.25",
        "labels": tuple(sorted((labels or {}).items())),
        "env": tuple(sorted((env or {}).items())),
        "ports": (PortBinding(80, "tcp", "0.0.0.0", 32768),),
        "ip": "172.17.0.2",
    }
    defaults.update(kw)
    return ContainerInfo(**defaults)  # type: ignore[arg-type]


def test_published_port_registers_with_image_basename_and_registrator_id() -> None:
    (spec,), warnings = services_for(container(), HOST)
    assert (spec.id, spec.name, spec.address, spec.port) == ("h1:web-1:80", "nginx", "10.0.0.5", 32768)
    assert warnings == ()


def test_unpublished_ports_are_not_registered_unless_internal() -> None:
    info = container(ports=(PortBinding(80, "tcp"),))
    assert services_for(info, HOST) == ((), ())
    internal = HostSettings(hostname="h1", internal=True)
    (spec,), _ = services_for(info, internal)
    assert (spec.address, spec.port) == ("172.17.0.2", 80)


def test_host_network_registers_exposed_ports_on_the_advertised_address() -> None:
    (spec,), _ = services_for(container(ports=(PortBinding(9000, "tcp"),), network_mode="host"), HOST)
    assert (spec.address, spec.port) == ("10.0.0.5", 9000)


def test_labels_win_over_env_and_port_specific_keys_win_over_general_ones() -> None:
    info = container(
        labels={"SERVICE_NAME": "from-label", "SERVICE_443_NAME": "secure"},
        env={"SERVICE_NAME": "from-env", "SERVICE_TAGS": "x"},
        ports=(PortBinding(80, "tcp", "", 1080), PortBinding(443, "tcp", "", 1443)),
    )
    specs, _ = services_for(info, HOST)
    assert [(s.id, s.name, s.tags) for s in specs] == [
        ("h1:web-1:80", "from-label-80", ("x",)),
        ("h1:web-1:443", "secure", ("x",)),
    ]


def test_udp_ports_get_a_suffix_and_ignore_skips() -> None:
    info = container(ports=(PortBinding(53, "udp", "", 1053),))
    (spec,), _ = services_for(info, HOST)
    assert spec.id == "h1:web-1:53:udp"
    assert services_for(container(labels={"SERVICE_IGNORE": "true"}), HOST) == ((), ())
    assert services_for(container(labels={"SERVICE_80_IGNORE": "1"}), HOST) == ((), ())


def test_explicit_mode_needs_a_name() -> None:
    explicit = HostSettings(hostname="h1", explicit=True)
    assert services_for(container(), explicit) == ((), ())
    assert len(services_for(container(labels={"SERVICE_NAME": "x"}), explicit)[0]) == 1


def test_service_id_label_is_used_and_made_unique_across_ports() -> None:
    info = container(
        labels={"SERVICE_ID": "custom"}, ports=(PortBinding(80, "tcp", "", 1), PortBinding(81, "tcp", "", 2))
    )
    specs, warnings = services_for(info, HOST)
    assert [s.id for s in specs] == ["custom:1", "custom:2"]
    assert len(warnings) == 2


def test_check_ids_follow_a_service_id_made_unique() -> None:
    info = container(
        labels={"SERVICE_ID": "custom", "SERVICE_CHECK_TCP": "true"},
        ports=(PortBinding(80, "tcp", "", 1), PortBinding(81, "tcp", "", 2)),
    )
    specs, _ = services_for(info, HOST)
    assert [[c.check_id for c in s.checks] for s in specs] == [["custom:1:tcp"], ["custom:2:tcp"]]


def test_meta_keys_are_validated_one_by_one() -> None:
    labels = {
        "SERVICE_VERSION": "1.2",
        "SERVICE_BAD KEY": "x",
        "SERVICE_CONSUL-X": "x",
        "SERVICE_UPSTREAMS-REGISTRAR": "spoof",
        "SERVICE_BIG": "v" * 513,
    }
    (spec,), warnings = services_for(container(labels=labels), HOST)
    assert spec.meta == (("version", "1.2"),)
    assert len(warnings) == 4
    assert all("container web-1" in w for w in warnings)


def test_meta_is_capped_below_consuls_limit() -> None:
    labels = {f"SERVICE_K{i:03}": "v" for i in range(100)}
    (spec,), warnings = services_for(container(labels=labels), HOST)
    assert len(registration_body(spec, "h1")["Meta"]) == MAX_META
    assert any("more than" in w for w in warnings)


def test_checks_from_labels() -> None:
    labels = {
        "SERVICE_CHECK_HTTP": "/health",
        "SERVICE_CHECK_TCP": "true",
        "SERVICE_CHECK_TTL": "30s",
        "SERVICE_CHECK_SCRIPT": "check --port $SERVICE_PORT 'a b'",
        "SERVICE_CHECK_INTERVAL": "2s",
        "SERVICE_CHECK_TIMEOUT": "1s",
        "SERVICE_CHECK_INITIAL_STATUS": "passing",
        "SERVICE_CHECK_DEREGISTER_AFTER": "10s",
    }
    (spec,), warnings = services_for(container(labels=labels), HOST)
    kinds = {c.kind: c for c in spec.checks}
    assert kinds["http"].target == "http://10.0.0.5:32768/health"
    assert kinds["tcp"].target == "10.0.0.5:32768"
    assert kinds["ttl"].ttl == 30
    assert kinds["script"].argv == ("check", "--port", "32768", "a b")
    assert kinds["script"].container_id == "abc123" * 10
    assert kinds["http"].interval == 2 and kinds["http"].timeout == 1
    assert kinds["http"].initial_status == "passing"
    assert kinds["http"].deregister_after == 60  # raised to Consul's minimum, with a warning
    assert len(warnings) == 1


def test_scripts_run_without_a_shell_unless_asked() -> None:
    (spec,), _ = services_for(container(labels={"SERVICE_CHECK_SCRIPT": "a; b | c"}), HOST)
    assert spec.checks[0].argv == ("a;", "b", "|", "c")
    labels = {"SERVICE_CHECK_SCRIPT": "a; b | c", "SERVICE_CHECK_SHELL": "true"}
    (spec,), _ = services_for(container(labels=labels), HOST)
    assert spec.checks[0].argv == ("/bin/sh", "-c", "a; b | c")


def test_bad_check_values_fall_back_with_warnings() -> None:
    labels = {
        "SERVICE_CHECK_HTTP": "no-slash",
        "SERVICE_CHECK_INTERVAL": "often",
        "SERVICE_CHECK_INITIAL_STATUS": "green",
        "SERVICE_CHECK_SCRIPT": "unbalanced 'quote",
        "SERVICE_WEIGHT": "-3",
    }
    (spec,), warnings = services_for(container(labels=labels), HOST)
    assert spec.checks == () and spec.weight is None
    assert len(warnings) == 5


def test_a_container_health_status_becomes_a_health_check() -> None:
    (spec,), _ = services_for(container(health="starting"), HOST)
    assert [c.kind for c in spec.checks] == ["health"]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=30).map(lambda s: "SERVICE_" + s),
        st.text(max_size=600),
        max_size=20,
    )
)
def test_any_labels_give_valid_bodies_or_warnings(labels: dict[str, str]) -> None:
    """Hostile input never raises, and every body it yields obeys Consul's Meta and name rules."""
    specs, _ = services_for(container(labels=labels), HOST)
    for spec in specs:
        body = registration_body(spec, "h1")
        meta = body["Meta"]
        assert len(meta) <= MAX_META
        assert all(valid_meta_key(k) for k in meta if not k.startswith("upstreams-registrar"))
        assert all(len(v) <= 512 for v in meta.values())
        assert "/" not in body["ID"]


def test_host_network_without_exposed_port_takes_service_ports() -> None:
    """Podman drops --expose on the host network: SERVICE_PORTS declares the port on every engine."""
    info = container(
        {"SERVICE_NAME": "hostnet", "SERVICE_PORTS": "8081, 5353/udp"}, ports=(), network_mode="host"
    )
    specs, warnings = services_for(info, HOST)
    assert [(s.name, s.address, s.port, s.id) for s in specs] == [
        ("hostnet-5353", "10.0.0.5", 5353, "h1:web-1:5353:udp"),
        ("hostnet-8081", "10.0.0.5", 8081, "h1:web-1:8081"),
    ]
    assert warnings == ()
    assert all("ports" not in dict(s.meta) for s in specs)  # a key of ours, not Meta


def test_a_container_asking_for_a_service_without_a_port_gets_one_warning_saying_why() -> None:
    hostnet = container({"SERVICE_NAME": "hostnet"}, ports=(), network_mode="host")
    assert services_for(hostnet, HOST) == (
        (),
        (
            "container web-1 asks for a service but has no port to register: it is on the host network and "
            "declares no port (Podman drops --expose there); declare it with the label SERVICE_PORTS=PORT",
        ),
    )
    unpublished = container({"SERVICE_CHECK_TCP": "true"}, ports=(PortBinding(80, "tcp"),))
    (warning,) = services_for(unpublished, HOST)[1]
    assert warning.endswith(
        "none of its exposed ports is published; publish one with -p 127.0.0.1:HOSTPORT:PORT"
    )
    # No SERVICE_* key at all: registrator's rule, nothing asked, nothing said.
    assert services_for(container(ports=()), HOST) == ((), ())


def test_bad_service_ports_items_are_skipped_one_by_one() -> None:
    info = container({"SERVICE_PORTS": "80x,9000,70000/tcp,53/sctp"}, ports=(), network_mode="host")
    specs, warnings = services_for(info, HOST)
    assert [s.port for s in specs] == [9000]
    assert len(warnings) == 3 and all("SERVICE_PORTS item" in w for w in warnings)
