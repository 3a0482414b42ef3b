#!/bin/sh
# The node stand-in's entrypoint, behaving as docker-node's docker-entrypoint.sh does: a first
# argument that is an option (starts with "-"), is not a command on PATH, or is a file that is not
# executable is run by node; anything else is exec'd as given.
set -e
case "$1" in
  -*) set -- node "$@" ;;
  *)
    if ! command -v "$1" >/dev/null 2>&1 || { [ -f "$1" ] && ! [ -x "$1" ]; }; then
      set -- node "$@"
    fi
    ;;
esac
exec "$@"
