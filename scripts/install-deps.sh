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
  # the BFD link-loss test drops a link's packets with nftables (no netem in the lab kernel)
  [nft]=nftables
  # the BMP station the BMP export is tested against
  [pmbmpd]=pmacct
  [curl]=curl
  # `tabbyctl graph -o svg` and its tests draw with Graphviz
  [dot]=graphviz
  # the `tabbyctl top` test drives it in a real terminal
  [tmux]=tmux
  [openssl]=openssl
  # the container image (scripts/build-image.sh): podman, a static libc, setcap
  [podman]=podman
  [musl-gcc]=musl-tools
  [setcap]=libcap2-bin
)
# the GoBGP .proto files (read for field numbers by the compatibility API)
missing=()
for bin in "${!want[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "$bin" ]; then
    missing+=("${want[$bin]}")
  fi
done
[ -d /usr/share/gocode/src/github.com/osrg/gobgp ] || missing+=(golang-github-osrg-gobgp-dev)
# `bird` must be BIRD 2 (the Debian package `bird` is 1.6 and conflicts with it).
if command -v bird >/dev/null 2>&1 && ! bird --version 2>&1 | grep -q 'version 2\.'; then
  missing+=(bird2)
fi

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
  # The packaged services are not wanted: tests start their own instances in
  # namespaces. Stop only what the install itself may have started, through the
  # service manager (never by process name: other labs may be running).
  for svc in bird frr gobgpd etcd exabgp; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" >/dev/null 2>&1 || true
      systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

# BIRD 1.6 (Calico's line) conflicts with bird2: unpack it beside, never install.
bird1_dir="$root/target/lab/bird1"
if [ ! -x "$bird1_dir/usr/sbin/bird" ] || [ ! -x "$bird1_dir/usr/sbin/bird6" ]; then
  echo "install-deps: unpacking BIRD 1.6 into $bird1_dir"
  mkdir -p "$bird1_dir"
  tmp=$(mktemp -d)
  chmod 755 "$tmp" # apt's sandbox user must be able to write the download
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download bird >/dev/null 2>&1); then
    apt_update
    (cd "$tmp" && apt-get download bird >/dev/null)
  fi
  dpkg -x "$tmp"/bird_*.deb "$bird1_dir"
fi

# A real Kubernetes API server, kubectl and etcd for the Kubernetes datastore
# tests, built from Go modules at pinned releases (skipped when built).
bash "$root/scripts/lab-k8s.sh"

# GoBGP 4 (BFD, the v4 API) from its Go module at a pinned release.
bash "$root/scripts/lab-gobgp.sh"

# The static target of the container image.
if command -v rustup >/dev/null 2>&1 \
  && ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi

echo "install-deps: ok"
