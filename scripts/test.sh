#!/usr/bin/env bash
# Runs every test on a fresh Debian machine of this kind (as root): installs and starts
# rootless Podman for user archy-podman, builds the app images, then the whole workspace.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export DEBIAN_FRONTEND=noninteractive
# The dashboard's browser tests drive Debian's chromium through chromedriver (WebDriver).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get install -y --no-install-recommends chromium chromium-driver >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends chromium chromium-driver >&2; } || true
fi
for tool in chromium chromedriver; do
  if ! command -v "$tool" >/dev/null; then
    echo "test.sh: FAILED: $tool is missing (Debian packages chromium and chromium-driver); the dashboard's browser tests need it" >&2
    exit 1
  fi
done
eval "$(scripts/setup-podman.sh)"
export ARCHY_PODMAN_URL
apps/build.sh build/artifacts
export ARCHY_TEST_ARTIFACTS="$repo/build/artifacts"
# The offline signer must not be able to talk to a network: no networking crate in its tree.
if cargo tree -p archy-sign -e normal --prefix none | grep -E '^(tokio|hyper|reqwest|iroh|rustls|mio|axum|noq|quinn|nostr|socket2|h2) '; then
  echo "test.sh: FAILED: archy-sign depends on a networking crate (listed above)" >&2
  exit 1
fi
# The crash tests kill a real `archy` process, and the fleet tests (tests/e2e/fleet.rs,
# scripts/fleet.sh: network namespaces, so root with ip, iptables and tc) run archy and
# archy-sign: build the binaries first.
cargo build --bins
cargo test --workspace --no-fail-fast
