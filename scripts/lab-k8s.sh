#!/usr/bin/env bash
# Builds a real Kubernetes API server, its CLI and the etcd it stores in, for
# the lab, from Go modules at pinned releases:
#
#   target/lab/k8s/bin/kube-apiserver   k8s.io/kubernetes/cmd/kube-apiserver
#   target/lab/k8s/bin/kubectl          k8s.io/kubernetes/cmd/kubectl
#   target/lab/k8s/bin/etcd             go.etcd.io/etcd/server/v3
#
# Both releases' go.mod files point some of their requirements at directories
# of their own repositories (k8s.io/kubernetes requires its staging modules,
# k8s.io/api, k8s.io/client-go, ..., at v0.0.0 and replaces them with
# ./staging/...; etcd's server module replaces its sibling modules with
# ../...). Those replace lines only apply inside the repository, so each build
# is a throwaway module in target/lab/k8s-build/ that requires the release and
# pins every one of those modules to the matching release.
#
# etcd: Debian's etcd 3.4 serves this kube-apiserver for plain reads, writes
# and watches, but lacks RequestWatchProgress, so the server refuses
# streaming lists (watch with sendInitialEvents=true) and never serves
# consistent lists from its cache. Kubernetes v1.37 pairs with etcd 3.7.
#
# Idempotent: a component whose binaries exist and whose stamp file records
# the same pinned release is skipped. A first build on a 2-core machine with
# an empty Go build cache takes about ten minutes; later ones reuse the cache.
#
# Environment: LAB_K8S_FORCE=1 rebuilds even when the stamps match.
set -euo pipefail

# The pinned releases. The Kubernetes staging modules follow the release:
# v1.X.Y -> v0.X.Y; etcd's sibling modules carry the same version.
K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/target/lab/k8s"
bin="$out/bin"
work="$root/target/lab/k8s-build"

die() {
  echo "lab-k8s: $*" >&2
  exit 1
}

# up_to_date NAME STAMP BINARY...: true when every binary exists and the
# stamp file out/NAME.version says STAMP.
up_to_date() {
  local name=$1 stamp=$2 b
  shift 2
  [ "${LAB_K8S_FORCE:-0}" != 1 ] || return 1
  for b in "$@"; do
    [ -x "$bin/$b" ] || return 1
  done
  [ -f "$out/$name.version" ] && [ "$(cat "$out/$name.version")" = "$stamp" ]
}

# throwaway_module DIR MODULE VERSION PIN: a fresh module in DIR that requires
# MODULE@VERSION and pins each module that MODULE's own go.mod replaces with
# a directory of its repository to PIN.
throwaway_module() {
  local dir=$1 mod=$2 ver=$3 pin=$4 json gomod m
  rm -rf "$dir"
  mkdir -p "$dir"
  json=$(cd "$dir" && go mod download -json "$mod@$ver" 2>"$dir/download.log") \
    || die "cannot download $mod@$ver from the Go module proxy (see $dir/download.log)"
  gomod=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || die "go mod download gave no go.mod for $mod@$ver"
  # `M => ./dir` or `M => ../dir`, inside a replace block or on a replace line.
  local -a pinned
  mapfile -t pinned < <(sed -n \
    's|^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\([^[:space:]()]\{1,\}\)[[:space:]]\{1,\}=>[[:space:]]\{1,\}\.\{1,2\}/.*|\2|p' \
    "$gomod")
  [ ${#pinned[@]} -gt 0 ] || die "found no repository-local replace lines in the go.mod of $mod@$ver"
  {
    echo "module tabby.lab/build"
    echo
    echo "go 1.26.0"
    echo
    echo "require $mod $ver"
    echo
    echo "replace ("
    for m in "${pinned[@]}"; do
      echo "	$m => $m $pin"
    done
    echo ")"
  } >"$dir/go.mod"
  (cd "$dir" && go get "$mod@$ver") >"$dir/get.log" 2>&1 \
    || die "go get $mod@$ver failed (see $dir/get.log)"
  echo "lab-k8s: $mod $ver with ${#pinned[@]} modules pinned to $pin"
}

# build DIR PACKAGE OUTPUT LDFLAGS: go build of PACKAGE in module DIR to bin/OUTPUT.
build() {
  local dir=$1 pkg=$2 name=$3 ldflags=$4 t0
  t0=$(date +%s)
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg") \
    >"$dir/build-$name.log" 2>&1 || {
    tail -n 20 "$dir/build-$name.log" >&2
    die "go build $pkg failed (see $dir/build-$name.log)"
  }
  mv -f "$bin/$name.tmp" "$bin/$name"
  echo "lab-k8s: built $name in $(($(date +%s) - t0)) s"
}

k8s_stamp="k8s.io/kubernetes $K8S_VERSION"
etcd_stamp="go.etcd.io/etcd/server/v3 $ETCD_VERSION"
if up_to_date kubernetes "$k8s_stamp" kube-apiserver kubectl \
  && up_to_date etcd "$etcd_stamp" etcd; then
  echo "lab-k8s: kube-apiserver, kubectl $K8S_VERSION and etcd $ETCD_VERSION already built in $bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "the go command is missing (Go 1.26 builds kube-apiserver and etcd)"

# Never prompt; use this machine's Go; no workspace or module around us counts.
export GOFLAGS="-buildvcs=false -mod=mod"
export GOWORK=off
export GO111MODULE=on
export GOTOOLCHAIN=local

start=$(date +%s)
mkdir -p "$bin"

if ! up_to_date kubernetes "$k8s_stamp" kube-apiserver kubectl; then
  echo "lab-k8s: building kube-apiserver and kubectl $K8S_VERSION into $bin (first build: about ten minutes)"
  throwaway_module "$work/kubernetes" k8s.io/kubernetes "$K8S_VERSION" "v0.${K8S_VERSION#v1.}"
  # The version the binaries report (`kubectl version`, /version), as the
  # release's own build would set it.
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  rm -f "$out/kubernetes.version"
  for cmd in kube-apiserver kubectl; do
    build "$work/kubernetes" "k8s.io/kubernetes/cmd/$cmd" "$cmd" "$ldflags"
  done
  v=$("$bin/kube-apiserver" --version 2>&1) || true
  [ "$v" = "Kubernetes $K8S_VERSION" ] || die "the built kube-apiserver reports ${v:-nothing}, not $K8S_VERSION"
  printf '%s\n' "$k8s_stamp" >"$out/kubernetes.version"
fi

if ! up_to_date etcd "$etcd_stamp" etcd; then
  echo "lab-k8s: building etcd $ETCD_VERSION into $bin"
  throwaway_module "$work/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION"
  rm -f "$out/etcd.version"
  build "$work/etcd" go.etcd.io/etcd/server/v3 etcd "-s -w"
  v=$("$bin/etcd" --version 2>&1 | head -n 1) || true
  [ "$v" = "etcd Version: ${ETCD_VERSION#v}" ] || die "the built etcd reports ${v:-nothing}, not ${ETCD_VERSION#v}"
  printf '%s\n' "$etcd_stamp" >"$out/etcd.version"
fi

echo "lab-k8s: ok (kubernetes $K8S_VERSION, etcd $ETCD_VERSION; $(($(date +%s) - start)) s)"
