#!/usr/bin/env bash
# The Tabby demo: builds Tabby, installs what it needs, then runs a
# top-of-rack BIRD 2 and three Tabby nodes in network namespaces and shows
# routes reaching every kernel and pods pinging across nodes. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
echo "== building tabbyd, tabbyctl and the demo"
# --bins too: a target filter such as --example otherwise builds only that target.
cargo build --release -p tabbyd -p tabbyctl --bins
cargo build --release -p interop-tests --example demo
TABBYD_BIN="$PWD/target/release/tabbyd" exec target/release/examples/demo
