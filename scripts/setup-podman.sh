#!/usr/bin/env bash
# Prepare a rootless podman API service for Archipelago and print its URL.
#
# Runs as root, non-interactive, idempotent (safe to run many times).
# Only stdout output is one line, meant for `eval`:
#   ARCHY_PODMAN_URL=unix:///run/user/<uid>/podman.sock
# Everything else goes to stderr.
set -euo pipefail

PODMAN_USER="${ARCHY_PODMAN_USER:-archy-podman}"
# netavark drives the host firewall through iptables: without it `podman start` fails with
# "netavark: No such file or directory" on a fresh Debian machine.
# catatonit: Podman builds its pause image (the netns keeper pod below) from it.
PACKAGES=(podman uidmap slirp4netns runc netavark aardvark-dns iptables busybox-static curl catatonit)
# What each of those must leave on the machine, checked after installing (name: path).
BINARIES=(podman:podman newuidmap:newuidmap newgidmap:newgidmap slirp4netns:slirp4netns runc:runc
  netavark:/usr/lib/podman/netavark aardvark-dns:/usr/lib/podman/aardvark-dns iptables:iptables
  busybox:busybox curl:curl catatonit:catatonit)

log() { echo "setup-podman: $*" >&2; }
die() { echo "setup-podman: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# 1. Packages: only touch apt when something is actually missing.
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2 || die "apt-get update failed"
  apt-get install -y --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
fi

# Every binary Podman's stack runs must be there now; name what is missing.
absent=()
for entry in "${BINARIES[@]}"; do
  name="${entry%%:*}"; path="${entry#*:}"
  if [[ "$path" == /* ]]; then [ -x "$path" ] || absent+=("$name ($path)")
  else command -v "$path" >/dev/null 2>&1 || absent+=("$name"); fi
done
[ "${#absent[@]}" -eq 0 ] || die "missing after installing ${PACKAGES[*]}: ${absent[*]}"

# 2. Dedicated unprivileged user; containers never run as root on the host.
if ! id "$PODMAN_USER" >/dev/null 2>&1; then
  log "creating user $PODMAN_USER"
  useradd -m -s /usr/sbin/nologin "$PODMAN_USER" >&2 || die "useradd $PODMAN_USER failed"
fi
uid="$(id -u "$PODMAN_USER")"
home="$(getent passwd "$PODMAN_USER" | cut -d: -f6)"

# Rootless podman needs a subordinate id range for the user namespace.
# useradd normally adds these; add one if it did not (e.g. pre-existing user).
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  if ! grep -q "^${PODMAN_USER}:" "$f"; then
    # Pick a range above every existing one (ranges must not overlap).
    start="$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$f")"
    echo "${PODMAN_USER}:${start}:65536" >>"$f"
    log "added ${PODMAN_USER}:${start}:65536 to $f"
  fi
done

# 3. Per-user podman config.
# Hybrid cgroups + no systemd user session: crun refuses to start containers,
# so use runc + cgroupfs, and log events to a file instead of journald.
conf_dir="$home/.config/containers"
install -d -o "$PODMAN_USER" -g "$PODMAN_USER" "$home/.config" "$conf_dir"
cat >"$conf_dir/containers.conf" <<'EOF'
# Written by scripts/setup-podman.sh
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
EOF
# Kernel overlayfs works rootless on kernels >= 5.13 without fuse-overlayfs
# (and /dev/fuse is root-only here). Fall back to vfs on older kernels.
driver=overlay
kver="$(uname -r)"; kmaj="${kver%%.*}"; kmin="${kver#*.}"; kmin="${kmin%%.*}"
if [ "$kmaj" -lt 5 ] || { [ "$kmaj" -eq 5 ] && [ "$kmin" -lt 13 ]; }; then driver=vfs; fi
driver="${ARCHY_PODMAN_STORAGE_DRIVER:-$driver}"
storage_conf="$conf_dir/storage.conf"
# Changing the driver of an existing store breaks podman, so keep what exists.
if [ ! -f "$storage_conf" ]; then
  cat >"$storage_conf" <<EOF
# Written by scripts/setup-podman.sh
[storage]
driver = "$driver"
EOF
fi
chown "$PODMAN_USER:$PODMAN_USER" "$conf_dir/containers.conf" "$storage_conf"

# 4. slirp4netns (rootless networking) opens /dev/net/tun as the user.
if [ ! -c /dev/net/tun ]; then
  mkdir -p /dev/net
  mknod /dev/net/tun c 10 200 || die "cannot create /dev/net/tun"
fi
chmod 666 /dev/net/tun

# 5. Runtime dir normally created by systemd-logind; there is none here.
run_dir="/run/user/$uid"
install -d -m 0700 -o "$PODMAN_USER" -g "$PODMAN_USER" "$run_dir"
sock="$run_dir/podman.sock"
url="unix://$sock"

# Command prefix to run as the podman user with a clean environment.
# setpriv execs (unlike runuser/su, which stay behind as a root parent process).
as_user=(setpriv --reuid="$PODMAN_USER" --regid="$PODMAN_USER" --init-groups
  env -i HOME="$home" USER="$PODMAN_USER" LOGNAME="$PODMAN_USER"
  XDG_RUNTIME_DIR="$run_dir" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin)
answers() { podman --remote --url "$url" info --format '{{.Host.Security.Rootless}}' 2>/dev/null; }

# 6. Start the API service unless one is already answering on the socket.
if answers >/dev/null; then
  log "podman service already answering on $sock"
else
  log "starting podman system service on $sock"
  rm -f "$sock"   # stale socket from a dead service
  # After a reboot or a killed session, Podman's runtime dir can outlive the rootless pause
  # process that holds its user namespace; every podman command (the service too) then exits
  # at once with "invalid internal status ... podman system migrate". That command is the
  # documented reset: it forgets the dead pause process and marks the containers it
  # recorded as running (dead with it) as stopped. Only run it on that exact failure, so a
  # living namespace and its containers are never touched.
  if ! probe="$(cd / && "${as_user[@]}" podman info --format '{{.Host.Security.Rootless}}' 2>&1)"; then
    if grep -q 'podman system migrate' <<<"$probe"; then
      log "resetting a dead rootless pause process (podman system migrate)"
      (cd / && "${as_user[@]}" podman system migrate >&2) || die "podman system migrate failed"
    else
      die "podman info as $PODMAN_USER failed: $probe"
    fi
  fi
  service_log="$run_dir/podman-service.log"
  touch "$service_log" && chown "$PODMAN_USER:$PODMAN_USER" "$service_log"
  # setsid+nohup: detach from our session so it outlives this script.
  # exec: no leftover root bash subshell. --time=0: never exit on idle.
  # cd /: conmon inherits the service's working directory, and a deleted one (a removed
  # checkout this script ran from) makes every container start fail.
  # Close every inherited descriptor above stderr: the service lives on, and whatever it
  # inherits it holds for good (a caller's `flock` lock was held forever that way).
  (cd / && for fd in /proc/"$BASHPID"/fd/*; do
     n="${fd##*/}"; [ "$n" -gt 2 ] && eval "exec $n>&-"
   done
   exec "${as_user[@]}" setsid nohup podman system service --time=0 "$url" \
    </dev/null >>"$service_log" 2>&1) &
  for _ in $(seq 60); do
    answers >/dev/null && break
    sleep 0.5
  done
  answers >/dev/null || die "podman service did not answer on $sock within 30s; see $run_dir/podman-service.log"
fi

# 7. Sanity: the service must be rootless (never hand out a root engine).
rootless="$(answers)" || die "podman info via $url failed"
[ "$rootless" = "true" ] || die "podman service on $sock is not rootless (Host.Security.Rootless=$rootless)"

# 8. Keep the rootless network namespace up. Containers on a bridge network (every app's
# own network) share one namespace whose slirp4netns Podman 4.3 starts as a child of the
# API service; when the last such container stops, Podman kills that slirp4netns and never
# waits for it, so each teardown leaves a zombie under the (living) service, which no init
# or subreaper can reap (measured: 95 after a day of test runs). A pod whose infra
# container sits on the default bridge network keeps the namespace, and its one
# slirp4netns, alive: no teardown, no zombie (measured: 5 install/remove cycles, +0).
# Labelled archy.infra, never archy.app: the orchestrator never touches it.
keeper=archy-netns-keeper
pm() { podman --remote --url "$url" "$@"; }
create_keeper() {
  log "creating pod $keeper (keeps the rootless network namespace up)"
  pm pod create --name "$keeper" --label archy.infra=netns --network podman >/dev/null \
    || die "podman pod create $keeper failed"
}
pm pod exists "$keeper" || create_keeper
if ! pm pod start "$keeper" >/dev/null; then
  # The keeper holds no data: one whose processes were killed under it (a reboot, a killed
  # session) can be stuck "stopping" for good, so replace it rather than fail.
  log "pod $keeper does not start; replacing it"
  pm pod rm --force "$keeper" >/dev/null || die "podman pod rm $keeper failed"
  create_keeper
  pm pod start "$keeper" >/dev/null || die "podman pod start $keeper failed"
fi

echo "ARCHY_PODMAN_URL=$url"
