#!/usr/bin/env bash
# Installs what Tabby's build, tests and demo need on a Debian machine that
# has only the Rust toolchain. Idempotent: skips what is already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (it installs Debian packages and the tests use network namespaces)" >&2
  exit 1
fi

# binary → Debian package
declare -A want=(
  [protoc]=protobuf-compiler
  [ip]=iproute2
  [bird]=bird2
  [gobgpd]=gobgpd
  [/usr/lib/frr/bgpd]=frr
  [exabgp]=exabgp
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [tcpdump]=tcpdump
  [ping]=iputils-ping
)
# the GoBGP .proto files (read for field numbers by the compatibility API)
missing=()
for bin in "${!want[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "$bin" ]; then
    missing+=("${want[$bin]}")
  fi
done
[ -d /usr/share/gocode/src/github.com/osrg/gobgp ] || missing+=(golang-github-osrg-gobgp-dev)

apt_update() {
  for i in 1 2 3 4 5; do
    if apt-get update -qq; then return 0; fi
    echo "install-deps: apt-get update failed (try $i), retrying" >&2
    sleep $((i * 3))
  done
  return 1
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# BIRD 1.6 (Calico's line) conflicts with bird2: unpack it beside, never install.
bird1_dir="$root/target/lab/bird1"
if [ ! -x "$bird1_dir/usr/sbin/bird" ]; then
  echo "install-deps: unpacking BIRD 1.6 into $bird1_dir"
  mkdir -p "$bird1_dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download bird >/dev/null 2>&1); then
    apt_update
    (cd "$tmp" && apt-get download bird >/dev/null)
  fi
  dpkg -x "$tmp"/bird_*.deb "$bird1_dir"
fi

# The daemons' own packaged services are not wanted: tests start their own
# instances in namespaces.
for svc in bird frr gobgpd etcd exabgp; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  pkill -x "$svc" >/dev/null 2>&1 || true
done
echo "install-deps: ok"
