"""A Consul agent with ACLs on and deny by default, and tokens made from policy rules."""

from __future__ import annotations

from .consul_agent import ConsulAgent

MANAGEMENT = "8f1c2d4e-0000-4000-8000-000000000001"
ACL_HCL = f"""acl {{
  enabled = true
  default_policy = "deny"
  tokens {{
    master = "{MANAGEMENT}"
    agent = "{MANAGEMENT}"
  }}
}}
"""


def token_with(consul: ConsulAgent, name: str, rules: str) -> str:
    """A new token whose only policy has these rules; returns its secret."""
    policy = consul.api("PUT", "/v1/acl/policy", {"Name": name, "Rules": rules})
    token = consul.api("PUT", "/v1/acl/token", {"Policies": [{"ID": policy["ID"]}]})
    return str(token["SecretID"])
