#!/usr/bin/env bash
# A fleet of archy nodes behind home NATs, in network namespaces on this one machine (root).
#
#   public segment (bridge, 198.18.0.0/24, RFC 2544 benchmarking space):
#     origin 198.18.0.2 (catalog + tracker over HTTP :7780, blobs over iroh :7790)
#     relay  198.18.0.3 (`archy relay run --http-only`, :3340)
#     home router i: WAN 198.18.0.(10+i), iptables MASQUERADE, LAN 10.0.i.1/24,
#       tc tbf: uplink --up-mbit (WAN egress), downlink --down-mbit (LAN egress)
#   node i: 10.0.i.2 behind router i, `archy node run` with relay_mode = [the relay]
#
# Nothing touches the host's own interfaces, routes or firewall: every interface, address,
# iptables rule and qdisc lives in a namespace this script creates (named afl<id>-*), and
# all of them and every process it started go when it exits, however it exits.
#
# Usage: scripts/fleet.sh [--case CASE] [--nodes N] [--size-mib M] [--up-mbit U] [--down-mbit D]
#                        [--detour-budget S] (the nodes' detour_budget_seconds, default 10)
#                        [--upload-limit-pct P] (the nodes' upload_limit_bytes_per_sec, as P%
#                        of --up-mbit; default 0: none)
#                        [--min-peer-rate-kib K] (the nodes' min_peer_rate_bytes_per_sec in
#                        KiB/s, default 1024)
#   CASE: pair      two nodes behind different NATs; the second fetches from the first
#                   (says whether the bytes came directly/hole-punched or through the relay)
#         relay     the first node's NAT lets no UDP out but to the origin: the second
#                   reaches it only through the relay
#         leave     the first node is killed while the second fetches from it: the fetch
#                   completes, the origin takes over
#         herd      N nodes start fetching at the same instant
#         bench     one node alone (baseline), then a herd of N: a table of origin egress,
#                   completion p50/p99 against the baseline, bytes direct vs relayed
#         seeded    one node fetches first, then the other N-1 at the same instant
#         all       pair, relay, leave and herd (what CI runs)
#   --relay tls (default): the relay serves HTTPS with a certificate from a CA the harness
#     makes (nodes trust it through `iroh_relay_ca_file`) and QUIC address discovery, so each node
#     learns its public address and iroh can punch holes; --relay http: `--http-only`, no
#     address discovery (nodes then talk through the relay).
# Results: lines `FLEET-RESULT case=… key=value …` on stdout; exit status 0 only if every
# case's checks held. Needs: ip, iptables, tc (installed with apt when missing), jq, curl,
# and target/debug/archy (ARCHY_BIN overrides; built with `cargo build -p archy-node`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
given_args="$*"
case_name=all
nodes=4
size_mib=8
up_mbit=20
down_mbit=100
relay_kind=tls
detour_budget=10
upload_limit_pct=0
min_peer_rate_kib=1024
while [ $# -gt 0 ]; do
  case "$1" in
    --case) case_name="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    --size-mib) size_mib="$2"; shift 2 ;;
    --up-mbit) up_mbit="$2"; shift 2 ;;
    --down-mbit) down_mbit="$2"; shift 2 ;;
    --relay) relay_kind="$2"; shift 2 ;;
    --detour-budget) detour_budget="$2"; shift 2 ;;
    --upload-limit-pct) upload_limit_pct="$2"; shift 2 ;;
    --min-peer-rate-kib) min_peer_rate_kib="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "fleet.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in nodes size_mib up_mbit down_mbit detour_budget min_peer_rate_kib; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
    echo "fleet.sh: --${v//_/-} must be a positive whole number, not ${!v}" >&2; exit 2
  fi
done
case "$relay_kind" in tls|http) ;; *) echo "fleet.sh: --relay is tls or http, not $relay_kind" >&2; exit 2 ;; esac
if [ "$nodes" -gt 60 ]; then echo "fleet.sh: at most 60 nodes" >&2; exit 2; fi
if ! [[ "$upload_limit_pct" =~ ^[0-9]+$ ]] || [ "$upload_limit_pct" -gt 100 ]; then
  echo "fleet.sh: --upload-limit-pct must be a whole number from 0 to 100, not $upload_limit_pct" >&2; exit 2
fi

fail() { echo "fleet.sh: FAILED: $*" >&2; exit 1; }
log() { echo "fleet.sh: $*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (network namespaces, iptables and tc need it); run: sudo $0 $given_args"
missing=()
for tool in ip iptables tc jq curl openssl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing missing tools: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Only the packages of the missing tools: installing a present one would upgrade it.
  pkgs=()
  for tool in "${missing[@]}"; do
    case "$tool" in ip|tc) pkgs+=(iproute2) ;; *) pkgs+=("$tool") ;; esac
  done
  apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; } || true
  still=()
  for tool in "${missing[@]}"; do command -v "$tool" >/dev/null || still+=("$tool"); done
  [ ${#still[@]} -eq 0 ] || fail "missing tools: ${still[*]} (Debian packages iproute2, iptables, jq, curl, openssl)"
fi
archy="${ARCHY_BIN:-$repo/target/debug/archy}"
sign="${ARCHY_SIGN_BIN:-$(dirname "$archy")/archy-sign}"
[ -x "$archy" ] || fail "no archy binary at $archy (cargo build -p archy-node)"
[ -x "$sign" ] || fail "no archy-sign binary at $sign (cargo build -p archy-sign)"

id="$(printf '%04x' $((RANDOM % 65536)))"
P="afl$id"
work="$(mktemp -d "/tmp/archy-fleet.$id.XXXX")"
namespaces=()
pids=()
origin_ip=198.18.0.2
relay_ip=198.18.0.3
origin_http="http://$origin_ip:7780"
if [ "$relay_kind" = tls ]; then relay_url="https://$relay_ip"; else relay_url="http://$relay_ip:3340"; fi

# Stops what this script started: its own children, and whatever still runs in its
# namespaces (`ip netns pids`), TERM first, KILL after 5 s.
stop_all() {
  local all=("${pids[@]}") ns
  for ns in "${namespaces[@]}"; do all+=($(ip netns pids "$ns" 2>/dev/null)); done
  [ ${#all[@]} -gt 0 ] || return 0
  kill "${all[@]}" 2>/dev/null || true
  for pid in "${all[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  # The namespaces hold every veth, the bridge, the iptables rules and the qdiscs.
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ "${FLEET_KEEP_WORK:-}" = 1 ] || [ $status -ne 0 ]; then
    log "logs kept in $work"
  else
    rm -rf "$work"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ns_add() { ip netns add "$1"; namespaces+=("$1"); ip -n "$1" link set lo up; }
in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

# The public segment: a bridge inside its own namespace, one veth per host on it.
pub="$P-pub"
attach() { # attach NS IFNAME IP: a veth from NS (as IFNAME) to the bridge
  local ns="$1" ifname="$2" addr="$3" port="p${#namespaces[@]}"
  ip -n "$pub" link add "$port" type veth peer name "$ifname" netns "$ns"
  ip -n "$pub" link set "$port" master br0 up
  ip -n "$ns" addr add "$addr/24" dev "$ifname"
  ip -n "$ns" link set "$ifname" up
}

# Node i's home: router h<i> (NAT, shaping) and the node's own namespace n<i>.
# mode: nat (a home NAT) | udp-blocked (no UDP out but to the origin: relay only)
home() {
  local i="$1" mode="$2" h="$P-h$1" n="$P-n$1"
  ns_add "$h"; ns_add "$n"
  attach "$h" wan "198.18.0.$((10 + i))"
  ip -n "$h" link add lan type veth peer name eth0 netns "$n"
  ip -n "$h" addr add "10.0.$i.1/24" dev lan; ip -n "$h" link set lan up
  ip -n "$n" addr add "10.0.$i.2/24" dev eth0; ip -n "$n" link set eth0 up
  ip -n "$n" route add default via "10.0.$i.1"
  in_ns "$h" sysctl -qw net.ipv4.ip_forward=1
  in_ns "$h" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
  # A home router: what the LAN started may come back; nothing else gets in.
  in_ns "$h" iptables -A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  in_ns "$h" iptables -A FORWARD -i wan -j DROP
  # and nothing unsolicited reaches the router itself: dropped before conntrack confirms
  # it, so a peer's early punch does not leave an entry that makes MASQUERADE remap our
  # port (the usual firewall of a home router; without it no hole is ever punched here).
  in_ns "$h" iptables -A INPUT -i wan -m conntrack --ctstate NEW -j DROP
  if [ "$mode" = udp-blocked ]; then
    in_ns "$h" iptables -A FORWARD -o wan -p udp ! -d "$origin_ip" -j DROP
  fi
  # tbf: the uplink on the WAN side, the downlink on the LAN side.
  tc -n "$h" qdisc add dev wan root tbf rate "${up_mbit}mbit" burst 64kb latency 200ms
  tc -n "$h" qdisc add dev lan root tbf rate "${down_mbit}mbit" burst 256kb latency 200ms
}

tx_bytes() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/tx_bytes"; }

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.25 s, at most SECONDS.
wait_for() {
  local secs="$1" what="$2"; shift 2
  local tries=$((secs * 4))
  for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  fail "$what: not within ${secs}s"
}

node_cli() { local i="$1"; shift; in_ns "$P-n$i" env ARCHY_DATA_DIR="$work/n$i/data" "$archy" --api http://127.0.0.1:7878 "$@"; }

# The signed root and catalog (one keyholder), the artifact, the origin and the relay.
setup_world() {
  mkdir -p "$work/keys" "$work/apps/blob" "$work/artifacts/blob"; chmod 700 "$work/keys"
  "$sign" mnemonic new --out "$work/keys/k.mnemonic" >/dev/null 2>&1
  local rk ck
  rk="$("$sign" pubkey --role root --mnemonic-file "$work/keys/k.mnemonic" 2>/dev/null)"
  ck="$("$sign" pubkey --role catalog --mnemonic-file "$work/keys/k.mnemonic" 2>/dev/null)"
  "$sign" root init --root-key "$rk" --root-threshold 1 --catalog-key "$ck" --catalog-threshold 1 \
    --expires-in-days 30 --out "$work/root.json" >/dev/null
  "$sign" sign "$work/root.json" --role root --mnemonic-file "$work/keys/k.mnemonic" >/dev/null 2>&1
  cat > "$work/apps/blob/manifest.yml" <<'YML'
id: blob
name: Blob
version: 1.0.0
description: The fleet harness's artifact (random bytes, never installed).
artifacts:
  - name: image
    media_type: application/vnd.oci.image.layout.v1.tar
containers:
  - name: main
    image: { artifact: image }
YML
  head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/artifacts/blob/image.tar"
  local oid
  oid="$("$archy" origin id --data-dir "$work/origin")"
  "$archy" catalog build --apps "$work/apps" --artifacts "$work/artifacts" --origin-http "$origin_http" \
    --origin-iroh "$oid" --version 1 --expires-in-days 7 --out "$work/catalog.json" >/dev/null
  "$sign" sign "$work/catalog.json" --role catalog --mnemonic-file "$work/keys/k.mnemonic" >/dev/null 2>&1
  hash="$(jq -r '.payload' "$work/catalog.json" | base64 -d | jq -r '.apps[0].artifacts[0].blake3')"
  [ ${#hash} -eq 64 ] || fail "could not read the artifact's hash from the signed catalog"
  size=$((size_mib * 1024 * 1024))

  ns_add "$pub"
  ip -n "$pub" link add br0 type bridge; ip -n "$pub" link set br0 up
  ns_add "$P-o"; attach "$P-o" eth0 "$origin_ip"
  ns_add "$P-r"; attach "$P-r" eth0 "$relay_ip"
  ip netns exec "$P-o" "$archy" origin run --data-dir "$work/origin" --catalog "$work/catalog.json" \
    --artifacts "$work/artifacts" --listen "$origin_ip:7780" --iroh-bind "$origin_ip:7790" \
    > "$work/origin.log" 2>&1 &
  pids+=($!)
  if [ "$relay_kind" = tls ]; then
    # A CA of the harness's own, and the relay's certificate for its IP address.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -keyout "$work/keys/ca.key" -out "$work/ca.pem" -subj /CN=archy-fleet-ca \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$work/keys/relay.key" -out "$work/keys/relay.csr" -subj "/CN=$relay_ip" 2>/dev/null
    printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$relay_ip" > "$work/keys/relay.ext"
    openssl x509 -req -in "$work/keys/relay.csr" -CA "$work/ca.pem" -CAkey "$work/keys/ca.key" \
      -CAcreateserial -days 2 -extfile "$work/keys/relay.ext" -out "$work/keys/relay.pem" 2>/dev/null
    ip netns exec "$P-r" "$archy" relay run --bind "$relay_ip:80" --tls-cert "$work/keys/relay.pem" \
      --tls-key "$work/keys/relay.key" --https-bind "$relay_ip:443" --quic-bind "$relay_ip:7842" \
      > "$work/relay.log" 2>&1 &
  else
    ip netns exec "$P-r" "$archy" relay run --http-only --bind "$relay_ip:3340" > "$work/relay.log" 2>&1 &
  fi
  pids+=($!)
  wait_for 30 "the origin answering on $origin_http" in_ns "$P-o" curl -sf "$origin_http/v1/swarm/addr"
  local cacert=(); [ "$relay_kind" = tls ] && cacert=(--cacert "$work/ca.pem")
  wait_for 30 "the relay answering on $relay_url" in_ns "$P-r" curl -s "${cacert[@]}" -o /dev/null "$relay_url/"
}

# start_node I MODE: the home, then `archy node run` in it (`ip netns exec` and `env` exec
# in place, so $! is the node's own pid).
start_node() {
  local i="$1" mode="$2"
  home "$i" "$mode"
  mkdir -p "$work/n$i"
  cat > "$work/n$i/node.toml" <<TOML
data_dir = "data"
api_listen = "127.0.0.1:7878"
origin = "$origin_http"
pinned_root = "../root.json"
iroh_bind = "0.0.0.0:7900"
relay_mode = ["$relay_url"]
$( if [ "$relay_kind" = tls ]; then echo 'iroh_relay_ca_file = "../ca.pem"'; fi )
pull_interval_seconds = 3600
fetch_only = true
detour_budget_seconds = $detour_budget
$( if [ "$min_peer_rate_kib" -ne 1024 ]; then echo "min_peer_rate_bytes_per_sec = $(( min_peer_rate_kib * 1024 ))"; fi )
$( if [ "$upload_limit_pct" -gt 0 ]; then echo "upload_limit_bytes_per_sec = $(( up_mbit * 1000000 / 8 * upload_limit_pct / 100 ))"; fi )
TOML
  ip netns exec "$P-n$i" env ARCHY_LOG="${ARCHY_LOG:-info,iroh=warn,iroh_blobs=warn,noq=warn}" \
    "$archy" node run --config "$work/n$i/node.toml" > "$work/n$i/node.log" 2>&1 &
  pids+=($!)
  node_pid[$i]=$!
}

node_ready() { node_cli "$1" status --json | jq -e '.catalog.version == 1' && node_cli "$1" swarm status --json | jq -e '.relay_url != null'; }

wait_nodes() {
  for i in "$@"; do
    wait_for 60 "node $i verifying the catalog and reaching its home relay (log: $work/n$i/node.log)" node_ready "$i"
  done
}

# fetch I: `archy swarm fetch` on node I; its JSON answer in $work/n<i>/fetch.json.
fetch() {
  local i="$1" t0 t1
  t0=$(date +%s%N)
  if ! node_cli "$i" --json swarm fetch "$hash" > "$work/n$i/fetch.json" 2> "$work/n$i/fetch.err"; then
    cat "$work/n$i/fetch.err" >&2
    return 1
  fi
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 )) > "$work/n$i/fetch.ms"
}

field() { jq -r "$2" "$work/n$1/fetch.json"; }
direct_of() { field "$1" '[.peer_paths[].direct_bytes] | add // 0'; }
relayed_of() { field "$1" '[.peer_paths[].relayed_bytes] | add // 0'; }
path_kind() {
  local d r; d=$(direct_of "$1"); r=$(relayed_of "$1")
  if [ "$d" -gt 0 ] && [ "$r" -gt 0 ]; then echo relayed-then-direct
  elif [ "$d" -gt 0 ]; then echo direct
  elif [ "$r" -gt 0 ]; then echo relayed
  else echo none; fi
}

listed() { in_ns "$P-o" curl -sf "$origin_http/v1/swarm/providers/$hash" | jq -e "length >= $1"; }

result() { echo "FLEET-RESULT case=$*"; }

check() { # check DESCRIPTION EXPRESSION: EXPRESSION is evaluated by the shell ([ … ] && [ … ])
  local what="$1"
  if eval "$2"; then log "ok: $what"; else checks_failed+=("$case_now: $what"); log "NOT OK: $what"; fi
}
checks_failed=()
declare -A node_pid

fresh_fleet() { # fresh_fleet COUNT [MODE-OF-NODE-1]
  setup_world
  start_node 1 "${2:-nat}"
  for i in $(seq 2 "$1"); do start_node "$i" nat; done
  wait_nodes $(seq 1 "$1")
}

teardown_fleet() {
  stop_all
  pids=()
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  namespaces=()
  local keep="$work"; work="$(mktemp -d "/tmp/archy-fleet.$id.XXXX")"
  if [ "${FLEET_KEEP_WORK:-}" = 1 ] || [ ${#checks_failed[@]} -gt 0 ]; then log "logs of that fleet kept in $keep"; else rm -rf "$keep"; fi
}

case_pair() {
  case_now=pair
  fresh_fleet 2
  fetch 1 || fail "pair: node 1 could not fetch from the origin"
  wait_for 20 "node 1 listed by the tracker" listed 1
  fetch 2 || fail "pair: node 2 could not fetch"
  local peers kind
  peers=$(field 2 .bytes_from_peers); kind=$(path_kind 2)
  result "pair from_peers=$peers from_origin=$(( $(field 2 .bytes_from_origin_iroh) + $(field 2 .bytes_from_origin_http) )) path=$kind direct_bytes=$(direct_of 2) relayed_bytes=$(relayed_of 2) ms=$(cat "$work/n2/fetch.ms")"
  check "node 2 fetched from node 1 across two NATs ($peers B, $kind)" '[ "$peers" -gt 0 ]'
  teardown_fleet
}

case_relay() {
  case_now=relay
  fresh_fleet 2 udp-blocked
  fetch 1 || fail "relay: node 1 could not fetch from the origin"
  wait_for 20 "node 1 listed by the tracker" listed 1
  fetch 2 || fail "relay: node 2 could not fetch"
  local peers d r
  peers=$(field 2 .bytes_from_peers); d=$(direct_of 2); r=$(relayed_of 2)
  result "relay from_peers=$peers path=$(path_kind 2) direct_bytes=$d relayed_bytes=$r relay_tx=$(tx_bytes "$P-r" eth0) ms=$(cat "$work/n2/fetch.ms")"
  check "node 2 fetched from node 1 through the relay only ($peers B; $r B relayed, $d B direct)" \
    '[ "$peers" -gt 0 ] && [ "$r" -gt 0 ] && [ "$d" -eq 0 ]'
  teardown_fleet
}

case_leave() {
  case_now=leave
  fresh_fleet 2
  fetch 1 || fail "leave: node 1 could not fetch from the origin"
  wait_for 20 "node 1 listed by the tracker" listed 1
  local wan0; wan0=$(tx_bytes "$P-h1" wan)
  fetch 2 &
  local fetcher=$!
  # Node 1 leaves once it has sent a quarter of the blob (its router's uplink counter),
  # or after 30 s whatever happened.
  for _ in $(seq 1 300); do
    [ $(( $(tx_bytes "$P-h1" wan) - wan0 )) -gt $((size / 4)) ] && break
    sleep 0.1
  done
  local sent=$(( $(tx_bytes "$P-h1" wan) - wan0 ))
  kill -9 "${node_pid[1]}" 2>/dev/null || true
  log "node 1 killed after its uplink sent $sent B"
  wait "$fetcher" || fail "leave: node 2's fetch failed after node 1 left (log: $work/n2/node.log)"
  local peers origin
  peers=$(field 2 .bytes_from_peers)
  origin=$(( $(field 2 .bytes_from_origin_iroh) + $(field 2 .bytes_from_origin_http) ))
  result "leave sent_before_kill=$sent from_peers=$peers from_origin=$origin fallbacks=$(field 2 '[.fallbacks[].reason] | join(",")') ms=$(cat "$work/n2/fetch.ms")"
  check "node 2's fetch completed after node 1 left mid-transfer ($peers B from it, $origin B from the origin)" \
    '[ "$(( peers + origin ))" -ge "$size" ] && [ "$origin" -gt 0 ]'
  teardown_fleet
}

# herd LAST [FIRST]: nodes FIRST (1)..LAST fetch at the same instant; sets herd_* for the table.
herd() {
  local count="$1" first="${2:-1}"
  local o0 r0; o0=$(tx_bytes "$P-o" eth0); r0=$(tx_bytes "$P-r" eth0)
  local fetchers=()
  for i in $(seq "$first" "$count"); do fetch "$i" & fetchers+=($!); done
  local failed=0
  for f in "${fetchers[@]}"; do wait "$f" || failed=$((failed + 1)); done
  herd_failed=$failed
  herd_origin=$(( $(tx_bytes "$P-o" eth0) - o0 ))
  herd_relay=$(( $(tx_bytes "$P-r" eth0) - r0 ))
  herd_times=(); herd_peers=0; herd_direct=0; herd_relayed=0
  for i in $(seq "$first" "$count"); do
    [ -f "$work/n$i/fetch.ms" ] || continue
    herd_times+=("$(cat "$work/n$i/fetch.ms")")
    herd_peers=$((herd_peers + $(field "$i" .bytes_from_peers)))
    herd_direct=$((herd_direct + $(direct_of "$i")))
    herd_relayed=$((herd_relayed + $(relayed_of "$i")))
  done
}

percentile() { # percentile P VALUES...: nearest rank
  local p="$1"; shift
  printf '%s\n' "$@" | sort -n | awk -v p="$p" '{v[NR]=$1} END {r=int((p*NR+99)/100); if (r<1) r=1; print v[r]}'
}

case_herd() {
  case_now=herd
  fresh_fleet "$nodes"
  herd "$nodes"
  result "herd nodes=$nodes min_peer_rate_kib=$min_peer_rate_kib failed=$herd_failed origin_egress=$herd_origin blob=$size from_peers=$herd_peers direct_bytes=$herd_direct relayed_bytes=$herd_relayed relay_tx=$herd_relay p50_ms=$(percentile 50 "${herd_times[@]}") p99_ms=$(percentile 99 "${herd_times[@]}")"
  check "all $nodes nodes completed their fetch at the same instant" '[ "$herd_failed" -eq 0 ]'
  teardown_fleet
}

case_bench() {
  case_now=bench
  fresh_fleet 1
  herd 1
  [ "$herd_failed" -eq 0 ] || fail "bench: the lone node's fetch failed"
  local alone="${herd_times[0]}"
  teardown_fleet
  fresh_fleet "$nodes"
  herd "$nodes"
  local p50 p99
  p50=$(percentile 50 "${herd_times[@]}"); p99=$(percentile 99 "${herd_times[@]}")
  result "bench nodes=$nodes size_mib=$size_mib up_mbit=$up_mbit down_mbit=$down_mbit detour_budget=$detour_budget upload_limit_pct=$upload_limit_pct min_peer_rate_kib=$min_peer_rate_kib failed=$herd_failed alone_ms=$alone p50_ms=$p50 p99_ms=$p99 origin_egress=$herd_origin from_peers=$herd_peers direct_bytes=$herd_direct relayed_bytes=$herd_relayed relay_tx=$herd_relay"
  awk -v n="$nodes" -v m="$size_mib" -v eg="$herd_origin" -v sz="$size" -v a="$alone" -v p50="$p50" -v p99="$p99" \
      -v d="$herd_direct" -v r="$herd_relayed" -v pe="$herd_peers" 'BEGIN {
    printf "| N | blob | origin egress (x blob) | alone | p50 (x alone) | p99 (x alone) | from peers | peer UDP direct | peer UDP relayed |\n"
    printf "|---|---|---|---|---|---|---|---|---|\n"
    printf "| %d | %d MiB | %.2f | %.1f s | %.1f s (%.2f) | %.1f s (%.2f) | %.1f MiB | %.1f MiB | %.1f MiB |\n",
      n, m, eg / sz, a / 1000, p50 / 1000, p50 / a, p99 / 1000, p99 / a, pe / 1048576, d / 1048576, r / 1048576 }'
  check "all $nodes nodes completed" '[ "$herd_failed" -eq 0 ]'
  teardown_fleet
}

# One node fetches first (a seed), then the other N-1 at the same instant.
case_seeded() {
  case_now=seeded
  [ "$nodes" -ge 2 ] || fail "seeded needs --nodes 2 or more"
  fresh_fleet "$nodes"
  local o0; o0=$(tx_bytes "$P-o" eth0)
  fetch 1 || fail "seeded: node 1 could not fetch from the origin"
  local seed_ms; seed_ms=$(cat "$work/n1/fetch.ms")
  wait_for 20 "node 1 listed by the tracker" listed 1
  herd "$nodes" 2
  local egress=$(( $(tx_bytes "$P-o" eth0) - o0 ))
  local p50 p99
  p50=$(percentile 50 "${herd_times[@]}"); p99=$(percentile 99 "${herd_times[@]}")
  result "seeded nodes=$nodes size_mib=$size_mib failed=$herd_failed seed_ms=$seed_ms p50_ms=$p50 p99_ms=$p99 origin_egress=$egress from_peers=$herd_peers direct_bytes=$herd_direct relayed_bytes=$herd_relayed relay_tx=$herd_relay"
  awk -v n="$nodes" -v m="$size_mib" -v eg="$egress" -v sz="$size" -v a="$seed_ms" -v p50="$p50" -v p99="$p99" \
      -v d="$herd_direct" -v r="$herd_relayed" -v pe="$herd_peers" 'BEGIN {
    printf "| %d (1 seed, then %d together) | %d MiB | %.2f | %.1f s | %.1f s (%.2f) | %.1f s (%.2f) | %.1f MiB | %.1f MiB | %.1f MiB |\n",
      n, n - 1, m, eg / sz, a / 1000, p50 / 1000, p50 / a, p99 / 1000, p99 / a, pe / 1048576, d / 1048576, r / 1048576 }'
  check "all $((nodes - 1)) nodes completed after the seed" '[ "$herd_failed" -eq 0 ]'
  teardown_fleet
}

case "$case_name" in
  pair) case_pair ;;
  seeded) case_seeded ;;
  relay) case_relay ;;
  leave) case_leave ;;
  herd) case_herd ;;
  bench) case_bench ;;
  all) case_pair; case_relay; case_leave; case_herd ;;
  *) fail "unknown case $case_name (pair, relay, leave, herd, bench, seeded, all)" ;;
esac

if [ ${#checks_failed[@]} -gt 0 ]; then
  printf 'fleet.sh: check failed: %s\n' "${checks_failed[@]}" >&2
  exit 1
fi
log "all checks held"
