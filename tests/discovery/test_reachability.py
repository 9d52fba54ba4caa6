"""Per-datacenter reachability: which failures mean "Consul away", and how an outage is reported."""

from __future__ import annotations

import aiohttp
import consul

from discovery.client import agent_silent
from discovery.reachability import Outage, blames_agent
from plumbing.errors import ConsulUnavailable


def _error(cause: BaseException) -> ConsulUnavailable:
    try:
        raise ConsulUnavailable("Consul could not answer the health of service 'prime'.") from cause
    except ConsulUnavailable as exc:
        return exc


def test_a_local_failure_is_the_agent_away_whatever_it_was() -> None:
    assert blames_agent("", agent_silent=False)
    assert blames_agent("", agent_silent=True)


def test_a_remote_datacenter_answering_an_error_is_only_that_datacenter_away() -> None:
    assert not blames_agent("dc2", agent_silent=False)
    assert blames_agent("dc2", agent_silent=True)  # the agent gave no answer at all


def test_an_http_error_is_an_answer_and_a_refused_connection_is_not() -> None:
    assert not agent_silent(_error(consul.ConsulException("500 rpc error getting client")))
    assert agent_silent(_error(aiohttp.ClientConnectionError("refused")))
    assert agent_silent(_error(TimeoutError()))


def test_an_outage_names_the_datacenter_since_when_and_why() -> None:
    outage = Outage("dc2", since=0.0, started=0.0, error="Consul could not answer the list of services: 500.")
    assert outage.sentence() == (
        "Datacenter dc2 has been unreachable since 1970-01-01T00:00:00Z (Consul could not answer the list "
        "of services: 500); its upstreams keep their last good instances."
    )
    assert outage.as_dict() == {"since": "1970-01-01T00:00:00Z", "error": outage.error}
