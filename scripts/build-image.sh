#!/usr/bin/env bash
# Builds the tabbyd container image (deploy/Containerfile) with podman, as
# root, without a Docker engine:
#
#   1. static binaries: cargo build --release --target x86_64-unknown-linux-musl
#      (into target/image/, apart from the workspace's usual target dir);
#   2. a context directory with tabbyd (file capabilities set with setcap) and
#      tabbyctl;
#   3. podman build FROM scratch (nothing is pulled), vfs storage, chroot
#      isolation, so it works in a container or VM with no overlay or cgroup
#      support for nested containers;
#   4. reads the image back and fails unless tabbyd still carries its file
#      capabilities and the image's user is 65532.
#
# Usage: bash scripts/build-image.sh [IMAGE]   (default ghcr.io/tabby-routing/tabbyd:<version>)
#        TABBY_IMAGE_ARCHIVE=path.tar also writes the image as an OCI archive
#        (to load elsewhere: podman load -i path.tar, or ctr images import).
#
# Installs what it needs from Debian (podman, musl-tools, libcap2-bin, binutils) and the
# musl target with rustup when missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
image=${1:-ghcr.io/tabby-routing/tabbyd:${version:-0.1.0}}
target=x86_64-unknown-linux-musl
target_dir="$root/target/image"
context="$target_dir/context"
caps=cap_net_admin,cap_net_raw,cap_net_bind_service
# vfs: works on any filesystem, needs no kernel overlay support.
podman=(podman --storage-driver vfs)

die() {
  echo "build-image: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (setcap and podman's vfs storage need it)"

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v setcap >/dev/null 2>&1 || missing+=(libcap2-bin)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-image: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed (run apt-get update first?)"
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  rustup target add "$target" || die "rustup target add $target failed"
fi

echo "build-image: cargo build --release --target $target (tabbyd, tabbyctl)"
cargo build --manifest-path "$root/Cargo.toml" --release --locked \
  --target "$target" --target-dir "$target_dir" -p tabbyd -p tabbyctl

rm -rf "$context"
mkdir -p "$context"
for b in tabbyd tabbyctl; do
  bin="$target_dir/$target/release/$b"
  [ -x "$bin" ] || die "cargo made no $bin"
  # Static: no loader, no libc in the image.
  if command -v file >/dev/null 2>&1 && file "$bin" | grep -q 'dynamically linked'; then
    die "$bin is dynamically linked"
  fi
  install -m 0755 "$bin" "$context/$b"
  # The release profile keeps line tables for profiling; the image needs
  # none of it (some 80 MiB of tabbyd's 100).
  strip --strip-debug "$context/$b"
done
setcap "$caps+ep" "$context/tabbyd"

echo "build-image: podman build $image"
"${podman[@]}" build --isolation chroot --build-arg "VERSION=$version" \
  -f "$root/deploy/Containerfile" -t "$image" "$context"

# Read it back: the capabilities must have survived COPY.
mnt=$("${podman[@]}" image mount "$image")
got=$(getcap "$mnt/usr/local/bin/tabbyd" || true)
"${podman[@]}" image unmount "$image" >/dev/null
case "$got" in
  *cap_net_bind_service,cap_net_admin,cap_net_raw=ep*) ;;
  *) die "tabbyd in $image lost its file capabilities (getcap: '${got:-nothing}')" ;;
esac
user=$("${podman[@]}" image inspect --format '{{.Config.User}}' "$image")
[ "$user" = 65532:65532 ] || die "image user is '$user', not 65532:65532"

if [ -n "${TABBY_IMAGE_ARCHIVE:-}" ]; then
  rm -f "$TABBY_IMAGE_ARCHIVE"
  "${podman[@]}" save --format oci-archive -o "$TABBY_IMAGE_ARCHIVE" "$image"
  echo "build-image: wrote $TABBY_IMAGE_ARCHIVE"
fi

size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "build-image: ok: $image ($((size / 1024 / 1024)) MiB; tabbyd: ${got#*tabbyd })"
