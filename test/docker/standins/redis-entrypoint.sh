#!/bin/sh
# The redis stand-in's entrypoint, behaving as the official image's docker-entrypoint.sh does:
# options or a *.conf first argument run redis-server; redis-server started as root owns its data
# directory (/data) and drops to the redis user. The official image builds Redis with protected
# mode off, so other containers may connect without a password; Debian's build keeps it on, so
# this entrypoint turns it off on the command line instead.
set -e
case "$1" in
  -* | *.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
  shift
  set -- redis-server "$@" --protected-mode no
  # As the official entrypoint: files Redis creates are private to it unless the umask says so.
  [ "$(umask)" = 0022 ] && umask 0077
fi
exec "$@"
