# Unfree packages our pkgs may build: Consul is under the BSL since 1.17.
[ "consul" ]
