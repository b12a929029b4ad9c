#!/usr/bin/env bash
# Runs every test on a fresh Debian machine of this kind (as root): installs and starts
# rootless Podman for user archy-podman, builds the app images, then the whole workspace.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
eval "$(scripts/setup-podman.sh)"
export ARCHY_PODMAN_URL
apps/build.sh build/artifacts
export ARCHY_TEST_ARTIFACTS="$repo/build/artifacts"
# The crash tests kill a real `archy` process: build the binaries first.
cargo build --bins
cargo test --workspace --no-fail-fast
