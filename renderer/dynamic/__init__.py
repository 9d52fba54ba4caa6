"""``[nginx] dynamic = true``: server-only changes pushed to nginx's Lua balancer at runtime, no reload.

The contract between the two sides is in the issue and docs/operations.md: the nginx side is the Lua
code in renderer/lua/upstreams/ and the http{}-level text ``snippet`` builds; the sidecar side parses
the rendered files into peers, pushes them to the endpoint and falls back to a reload.
"""
