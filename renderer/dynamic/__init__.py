"""``[nginx] dynamic = true``: server-only changes pushed to nginx's Lua balancer at runtime, no reload.

The contract between the two sides is in the issue and docs/operations.md: the nginx side is the Lua
code in renderer/lua/upstreams/ and the http{}-level text ``snippet`` builds; the sidecar side parses
the rendered files into peers, pushes them to the endpoint and falls back to a reload.

Modules, from the pure core to the edges:

* ``peers``    one ``upstream`` block read back: its server lines and the peers they name (pure)
* ``texts``    rendered texts read into their blocks, incrementally, and the runtime state they say (pure)
* ``plan``     whether a change is server-only, and which upstreams it changes (pure)
* ``route``    which way a changed render goes: pushed, reloaded without a check, or checked (pure)
* ``document`` the peer document pushed, answered and kept in the state file; validated (pure)
* ``snippet``  the http{}-level directives ``upstreams nginx-snippet`` prints
* ``client``   the HTTP client to nginx's update endpoint
* ``pusher``   generations, pushes, the re-sync after a reload and drift repair
"""
