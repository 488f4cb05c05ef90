#!/usr/bin/env bash
# Builds GoBGP 4 (the daemon and its CLI) for the lab from its Go module at a
# pinned release:
#
#   target/lab/gobgp4/bin/gobgpd   github.com/osrg/gobgp/v4/cmd/gobgpd
#   target/lab/gobgp4/bin/gobgp    github.com/osrg/gobgp/v4/cmd/gobgp
#
# Debian's gobgpd is 3.x; GoBGP 4 is the line with BFD (since v4.5.0) and the
# v4 gRPC API. Its go.mod replaces nothing with local directories, so
# `go install MODULE/cmd/...@VERSION` builds it outside any module.
#
# Idempotent: skipped when both binaries exist and the stamp file records the
# same release. About a minute on a 2-core machine with a cold Go cache.
#
# Environment: LAB_GOBGP_FORCE=1 rebuilds even when the stamp matches.
set -euo pipefail

GOBGP_VERSION=v4.8.0

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/target/lab/gobgp4"
bin="$out/bin"
stamp="github.com/osrg/gobgp/v4 $GOBGP_VERSION"

die() {
  echo "lab-gobgp: $*" >&2
  exit 1
}

if [ "${LAB_GOBGP_FORCE:-0}" != 1 ] && [ -x "$bin/gobgpd" ] && [ -x "$bin/gobgp" ] \
  && [ -f "$out/gobgp.version" ] && [ "$(cat "$out/gobgp.version")" = "$stamp" ]; then
  echo "lab-gobgp: gobgpd and gobgp $GOBGP_VERSION already built in $bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "the go command is missing (Go 1.26 builds GoBGP 4)"

export GOFLAGS="-buildvcs=false"
export GOWORK=off
export GO111MODULE=on
export GOTOOLCHAIN=local

start=$(date +%s)
mkdir -p "$out"
tmp="$out/bin.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
echo "lab-gobgp: building gobgpd and gobgp $GOBGP_VERSION into $bin"
(cd "$out" && GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
  "github.com/osrg/gobgp/v4/cmd/gobgpd@$GOBGP_VERSION" \
  "github.com/osrg/gobgp/v4/cmd/gobgp@$GOBGP_VERSION") >"$out/build.log" 2>&1 || {
  tail -n 20 "$out/build.log" >&2
  die "go install of GoBGP $GOBGP_VERSION failed (see $out/build.log)"
}
rm -rf "$bin"
mv "$tmp" "$bin"
echo "$stamp" >"$out/gobgp.version"
echo "lab-gobgp: ok (GoBGP $GOBGP_VERSION; $(($(date +%s) - start)) s)"
