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
# The interop tests run an independent Nostr relay (PyPI's nostr-relay) from a venv.
relay_venv="$repo/build/nostr-relay-venv"
relay_requirements="$repo/scripts/nostr-relay-requirements.txt"
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends python3 python3-venv >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends python3 python3-venv >&2; } || true
fi
if ! cmp -s "$relay_requirements" "$relay_venv/requirements.txt"; then
  rm -rf "$relay_venv"
  if ! python3 -m venv "$relay_venv" >&2; then
    echo "test.sh: FAILED: python3 -m venv does not work (Debian packages python3 and python3-venv); the interop tests need it for the nostr-relay package" >&2
    exit 1
  fi
  if ! "$relay_venv/bin/pip" install --disable-pip-version-check -q -r "$relay_requirements" >&2; then
    echo "test.sh: FAILED: pip could not install $relay_requirements (nostr-relay 1.14 from PyPI) into $relay_venv; the interop tests need it" >&2
    exit 1
  fi
  cp "$relay_requirements" "$relay_venv/requirements.txt"
fi
if ! "$relay_venv/bin/nostr-relay" --help >/dev/null 2>&1; then
  echo "test.sh: FAILED: $relay_venv/bin/nostr-relay does not run; remove $relay_venv and run again" >&2
  exit 1
fi
export ARCHY_TEST_NOSTR_RELAY="$relay_venv/bin/nostr-relay"
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
