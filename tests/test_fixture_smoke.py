from tests.support.consul_agent import ConsulAgent


def test_consul_agent_registers_and_lists_services(consul: ConsulAgent) -> None:
    consul.register_ttl("web", "web-1", 8080)
    assert "web-1" in consul.services()
    health = consul.api("GET", "/v1/health/service/web")
    assert [e["Service"]["ID"] for e in health] == ["web-1"]
