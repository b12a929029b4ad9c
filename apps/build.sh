#!/usr/bin/env bash
# Build every first-party app image (apps/*/Containerfile) offline and save it
# as an OCI archive: OUT_DIR/<app>/image.tar  (default OUT_DIR=build/artifacts).
#
# Builds go through the rootless podman service of the archy-podman user
# (ARCHY_PODMAN_URL; obtained from scripts/setup-podman.sh when unset), so
# nothing is ever built or stored by a root podman.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-build/artifacts}"
case "$out_dir" in /*) ;; *) out_dir="$repo/$out_dir" ;; esac

die() { echo "build.sh: ERROR: $*" >&2; exit 1; }

if [ -z "${ARCHY_PODMAN_URL:-}" ]; then
  eval "$("$repo/scripts/setup-podman.sh")"
fi
[ -n "${ARCHY_PODMAN_URL:-}" ] || die "ARCHY_PODMAN_URL not set"
pm() { podman --remote --url "$ARCHY_PODMAN_URL" "$@"; }

[ -x /bin/busybox ] || die "/bin/busybox missing (apt-get install busybox-static)"
# Only a static busybox works in a FROM scratch image (no libc there).
if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is dynamically linked; need busybox-static"; fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

shopt -s nullglob
built=0
for containerfile in "$repo"/apps/*/Containerfile; do
  app_dir="$(dirname "$containerfile")"
  app="$(basename "$app_dir")"
  manifest="$app_dir/manifest.yml"
  [ -f "$manifest" ] || die "$manifest missing"
  # Top-level `version:` line; strip quotes and trailing comments.
  version="$(sed -n 's/^version:[[:space:]]*//p' "$manifest" | head -n1 \
    | sed 's/[[:space:]]#.*//; s/[[:space:]]*$//; s/^["'\'']//; s/["'\'']$//')"
  [ -n "$version" ] || die "no top-level version: in $manifest"
  tag="localhost/archy/$app:$version"

  # Fresh build context: app files + busybox, with normalised modes and mtimes
  # (the client tars the context; this keeps the image bits reproducible).
  rm -rf "$ctx/$app"
  cp -r "$app_dir" "$ctx/$app"
  rm -f "$ctx/$app/manifest.yml"
  cp /bin/busybox "$ctx/$app/busybox"
  chmod -R u=rwX,go=rX "$ctx/$app"
  chmod 0755 "$ctx/$app/busybox"
  find "$ctx/$app" -exec touch -h -d @0 {} +

  echo "build.sh: building $tag" >&2
  had_tag=false; pm image exists "$tag" && had_tag=true
  # --pull=never: no registry is reachable, and scratch needs none.
  # --timestamp 0: fixed created time and file mtimes -> reproducible image.
  # --layers=false: no intermediate images left behind in the store.
  pm build --pull=never --network=none --timestamp 0 --layers=false \
    -f "$ctx/$app/Containerfile" -t "$tag" "$ctx/$app" >&2

  mkdir -p "$out_dir/$app"
  rm -f "$out_dir/$app/image.tar"
  pm save --format oci-archive -o "$ctx/$app.tar" "$tag" >&2
  # The image content is already reproducible, but podman's tar headers carry
  # the save time; repack with fixed order/mtime/owner so the archive bytes are too.
  mkdir "$ctx/$app.oci"
  tar -xf "$ctx/$app.tar" -C "$ctx/$app.oci"
  tar -C "$ctx/$app.oci" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --mode=u+rw,go+r,go-w --format=gnu -cf "$out_dir/$app/image.tar" blobs index.json oci-layout
  # The artifact is the source of truth: drop the image from the store again,
  # unless the tag was already there (e.g. loaded by a running node).
  if ! $had_tag; then pm rmi "$tag" >/dev/null; fi
  echo "build.sh: wrote $out_dir/$app/image.tar ($(sha256sum "$out_dir/$app/image.tar" | cut -c1-64))" >&2
  built=$((built + 1))
done
[ "$built" -gt 0 ] || die "no apps/*/Containerfile found"
