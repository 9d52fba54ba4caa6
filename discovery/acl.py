"""Checking the ACL token up front, so a token that cannot read services is reported, not rendered empty.

With ACLs on and ``default_policy = deny``, Consul answers a read it does not allow with ``200 []``:
an empty upstream that looks like "no instances". Consul 1.8 does not say results were filtered, so we
ask ``/v1/acl/token/self`` (is the token valid?) and look at what the catalog shows to this token.
"""

from __future__ import annotations

import consul

from plumbing.errors import ConsulDenied

from .client import ConsulClient, consul_errors

__all__ = ["token_problem"]


async def token_problem(client: ConsulClient) -> str | None:
    """None when the token may read services; otherwise a sentence naming the problem.

    Raises ConsulUnavailable when Consul cannot be asked (the caller retries).
    """
    try:
        async with consul_errors("the ACL token check"):
            try:
                await client.acl.token.read_self()
            except consul.ACLDisabled:
                return None  # no ACLs: every read is allowed
    except ConsulDenied as exc:
        return f"Consul does not accept the configured ACL token ({_reason(exc)}); fix token_file or CONSUL_HTTP_TOKEN."
    async with consul_errors("the list of services"):
        _, services = await client.catalog.services()
    if not services:
        # Every cluster has the 'consul' service; seeing none means the token reads no service at all.
        return (
            "ACLs are on and the Consul token can read no service at all; give it service:read and node:read "
            "for the services the templates use."
        )
    return None


def _reason(exc: ConsulDenied) -> str:
    text = str(exc)
    return text.split(": ", 1)[-1].rstrip(".") if ": " in text else text
