"""Runtime peer updates ([nginx] dynamic): a real nginx loading Debian's Lua module."""
