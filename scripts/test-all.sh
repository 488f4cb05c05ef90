#!/usr/bin/env bash
# Runs every test of Tabby: installs what is needed, then formatting, lints,
# unit, conformance and interop tests (the interop tests need root and build
# their own network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
# This run is also the MSRV check (rust-version = "1.89" in Cargo.toml; no
# 1.89 toolchain is installed): clippy's incompatible_msrv lint, denied in
# [workspace.lints.clippy], reads each crate's rust-version and fails on any
# standard-library API stabilised later. It does not see newer language
# features, nor std APIs used only in test code (it skips #[cfg(test)] and
# tests/), and nothing here checks the dependencies' own rust-version:
# review Cargo.lock updates for that (`cargo metadata` lists each one).
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the daemons the interop tests start)"
cargo build --workspace --bins --examples --locked
echo "== cargo test"
# The interop tests share the machine's two cores with daemons they start;
# run test binaries one at a time so timers are not starved.
cargo test --workspace --locked -- --test-threads=2
echo "== container image (deploy/Containerfile, podman)"
bash scripts/build-image.sh
