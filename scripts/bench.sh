#!/usr/bin/env bash
# Builds every benchmark of the workspace in ONE cargo invocation, then runs them.
#
# Why one invocation: `cargo bench -p X` resolves features for X alone, so running the
# packages one at a time rebuilds iroh, sqlx and friends with other features each time.
# `--workspace` resolves them once; the runs below select benches by name with the same
# `--workspace`, so they reuse that build.
#
# Benches that drive Podman (install, install_big, store, catalog_scale) run under the shared Podman
# lock (/tmp/archy-podman.lock, as the e2e tests do) and need ARCHY_PODMAN_URL and the
# built images (ARCHY_TEST_ARTIFACTS or build/artifacts). Host ports are taken from
# ARCHY_BENCH_PORT (install_big: that port and the next; default 18096).
#
# Usage: scripts/bench.sh [BENCH…]   (default: all; e.g. scripts/bench.sh fetch install_big)
# Env:   ARCHY_BENCH_TARGET_DIR  cargo --target-dir (default: cargo's)
#        ARCHY_BENCH_MIB         blob/layer size of fetch and install_big (MiB)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=()
[ -n "${ARCHY_BENCH_TARGET_DIR:-}" ] && target=(--target-dir "$ARCHY_BENCH_TARGET_DIR")

# name: needs Podman?
all=(catalog:no market:no fetch:no offload:no install:yes install_big:yes store:yes catalog_scale:yes)
if [ $# -gt 0 ]; then
  chosen=()
  for want in "$@"; do
    found=""
    for b in "${all[@]}"; do [ "${b%%:*}" = "$want" ] && found="$b"; done
    [ -n "$found" ] || { echo "bench.sh: no bench named $want (have: ${all[*]%%:*})" >&2; exit 2; }
    chosen+=("$found")
  done
else
  chosen=("${all[@]}")
fi

echo "bench.sh: building every bench (one invocation)" >&2
cargo bench --workspace "${target[@]}" --no-run
# The benches that start `archy node run` as a process want the release binary beside
# them; same profile and `--workspace`, so this reuses the build above.
cargo build --release --workspace "${target[@]}" --bins

for b in "${chosen[@]}"; do
  name="${b%%:*}"
  echo "=== bench $name ($(date -u +%FT%TZ), $(nproc) cores)"
  if [ "${b##*:}" = yes ]; then
    : "${ARCHY_PODMAN_URL:?bench $name needs ARCHY_PODMAN_URL (a rootless Podman service)}"
    flock -o /tmp/archy-podman.lock cargo bench --workspace "${target[@]}" --bench "$name"
  else
    cargo bench --workspace "${target[@]}" --bench "$name"
  fi
done
