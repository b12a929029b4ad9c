#!/usr/bin/env bash
# The walking skeleton on loopback, end to end:
#   ceremony keys -> signed root + catalog -> origin -> a node auto-pulls and verifies
#   -> installs the hello app over iroh into rootless Podman -> the app answers HTTP.
# Runs as root on a fresh Debian machine with Rust installed; installs what it needs.
# Pass --keep to leave the origin, node and app running afterwards.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
keep=false; [ "${1:-}" = "--keep" ] && keep=true
work="$repo/build/demo"
origin_http="127.0.0.1:7780"
api="http://127.0.0.1:7878"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Rootless Podman (user archy-podman) and system packages"
eval "$(scripts/setup-podman.sh)"

step "Building archy and archy-sign"
cargo build --quiet --bins
archy="$repo/target/debug/archy"
sign="$repo/target/debug/archy-sign"

step "Building the hello app image offline (OCI archive)"
apps/build.sh build/artifacts

rm -rf "$work"; mkdir -p "$work/keys"; chmod 700 "$work/keys"
pids=()
cleanup() {
  if ! $keep; then
    ARCHY_API="$api" "$archy" app uninstall hello --purge >/dev/null 2>&1 || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  fi
}
trap cleanup EXIT

step "Signing ceremony: one keyholder's mnemonic, root and catalog keys derived by SLIP-0010"
"$sign" mnemonic new --out "$work/keys/keyholder.mnemonic"
root_key="$("$sign" pubkey --role root --mnemonic-file "$work/keys/keyholder.mnemonic" 2>/dev/null)"
catalog_key="$("$sign" pubkey --role catalog --mnemonic-file "$work/keys/keyholder.mnemonic" 2>/dev/null)"
echo "root key:    $root_key"
echo "catalog key: $catalog_key"
"$sign" root init --root-key "$root_key" --root-threshold 1 --catalog-key "$catalog_key" \
  --catalog-threshold 1 --expires-in-days 365 --out "$work/root.json"
"$sign" sign "$work/root.json" --role root --mnemonic-file "$work/keys/keyholder.mnemonic"
"$sign" verify "$work/root.json"

step "Catalog: hash artifacts with BLAKE3, embed manifests, sign offline"
origin_id="$("$archy" origin id --data-dir "$work/origin")"
"$archy" catalog build --apps apps --artifacts build/artifacts --origin-http "http://$origin_http" \
  --origin-iroh "$origin_id" --version 1 --expires-in-days 30 --out "$work/catalog.json"
"$sign" sign "$work/catalog.json" --role catalog --mnemonic-file "$work/keys/keyholder.mnemonic"
"$sign" verify "$work/catalog.json" --root "$work/root.json"

step "Origin: catalog over HTTP, blobs over iroh-blobs (endpoint $origin_id)"
"$archy" origin run --data-dir "$work/origin" --catalog "$work/catalog.json" \
  --artifacts build/artifacts --listen "$origin_http" > "$work/origin.log" 2>&1 &
pids+=($!)

step "Node: pinned root, pulls and verifies the catalog, HTTP API on $api"
cat > "$work/node.toml" <<TOML
data_dir = "node"
origin = "http://$origin_http"
pinned_root = "root.json"
podman_url = "$ARCHY_PODMAN_URL"
publish_address = "127.0.0.1"
pull_interval_seconds = 10
TOML
"$archy" node run --config "$work/node.toml" > "$work/node.log" 2>&1 &
pids+=($!)
export ARCHY_API="$api"
# The CLI authenticates with the token the node keeps in its data dir (0600).
export ARCHY_DATA_DIR="$work/node"
for _ in $(seq 1 60); do
  if "$archy" status --json 2>/dev/null | grep -q '"version": 1'; then break; fi
  sleep 0.5
done
"$archy" status || { cat "$work/node.log"; exit 1; }
"$archy" catalog list

step "Installing hello: fetched over iroh, BLAKE3-verified, loaded into rootless Podman"
"$archy" app install hello
"$archy" swarm status
url="$("$archy" app status hello --json | sed -n 's/.*"url": "\(.*\)".*/\1/p')"

step "The app answers at $url"
curl --fail --silent --show-error "$url"
echo
echo "Demo complete: hello is served from a rootless container whose image came over iroh."

step "The dashboard: $api/"
echo "Set its admin password, then log in there (run with --keep to leave the node up):"
echo "  ARCHY_DATA_DIR=$work/node $archy admin password"
echo "or, while no password is set, open $api/ from this machine for the first-run page."
if $keep; then
  echo "Left running (--keep). Logs: $work/node.log $work/origin.log; try: ARCHY_API=$api ARCHY_DATA_DIR=$work/node $archy app list"
fi
