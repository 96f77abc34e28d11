#!/usr/bin/env bash
# Type 1 benchmarks, each beside its baseline in the same run (results: docs/benchmarks.md).
#  1. Ping RTT: tenant alpha web1->web2 redirected through fw1 vs tenant beta web1->web2 direct
#     (same topology, same addresses), pings interleaved so both see the same machine load.
#  2. Policy change -> enforced in the datapath, p50/p99, with 1, 100 and 1000 policies installed
#     (palisade-bench policy-latency: probes from web1, sniffer in fw1's namespace).
#  3. Controller restart (SIGKILL, then SIGTERM) with 10,000 flows installed during a ping flood,
#     beside the same flood without a restart (palisade-bench restart).
#  4. Flow programming rate: Palisade's bundle path (`ovs-ofctl bundle`, flow add lines with
#     cookies) vs plain `ovs-ofctl --bundle add-flows`, N flows each, on a scratch bridge.
# Needs root; builds release binaries; brings the lab up and down.
set -euo pipefail
cd "$(dirname "$0")/.."
N_PING=${N_PING:-200}
N_FLOWS=${N_FLOWS:-20000}
N_CHANGES=${N_CHANGES:-100}
N_RESTART_FLOWS=${N_RESTART_FLOWS:-10000}
./scripts/setup.sh
cargo build --release --locked -q -p palisade -p palisade-bench
P=target/release/palisade
export PALISADE_LAB_DIR=$(mktemp -d)/lab
$P lab down >/dev/null 2>&1 || true
$P lab up >/dev/null 2>&1
$P apply -f examples/redirect.yaml >/dev/null

rtts() { # netns count -> one RTT (ms) per line
  for _ in $(seq "$2"); do
    ip netns exec "$1" busybox ping -c 1 -W 1 198.18.1.20 | sed -n 's/.*time=\([0-9.]*\) ms/\1/p'
  done
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
p99() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if(i<1)i=1; printf "%.3f", a[i]}'; }
ttl() { ip netns exec "$1" busybox ping -c 1 -W 1 198.18.1.20 | sed -n 's/.*ttl=\([0-9]*\).*/\1/p'; }
[ "$(ttl pal-alpha-web1)" = 63 ] || { echo "alpha traffic is not redirected" >&2; exit 1; }
[ "$(ttl pal-beta-web1)" = 64 ] || { echo "beta traffic is not direct" >&2; exit 1; }
rtt_pair() { # label -> one line: medians, p99s and the ratio, pings interleaved
  local red dir rm_ dm
  red=$(mktemp); dir=$(mktemp)
  for _ in $(seq $((N_PING / 10))); do rtts pal-alpha-web1 10 >>"$red"; rtts pal-beta-web1 10 >>"$dir"; done
  rm_=$(median <"$red"); dm=$(median <"$dir")
  echo "ping RTT, $1 (ms, $N_PING each): direct median $dm p99 $(p99 <"$dir") | redirected median $rm_ p99 $(p99 <"$red") | ratio $(awk -v a="$rm_" -v b="$dm" 'BEGIN{printf "%.2f", a/b}')"
  rm -f "$red" "$dir"
}
rtt_pair "ports type=system (AF_PACKET, the lab's default)"
# The same lab with every port an AF_XDP port polled by a PMD thread (one core busy-polls),
# as an operator who dedicates a core to the datapath would run it.
$P lab up --port-type afxdp >/dev/null 2>&1
sleep 2
if [ "$(ttl pal-alpha-web1)" = 63 ] && [ "$(ttl pal-beta-web1)" = 64 ]; then
  rtt_pair "ports type=afxdp (PMD polling)"
else
  echo "afxdp ports do not forward here (see ovs-vswitchd.log); no afxdp row" >&2
fi
$P lab up --port-type system >/dev/null 2>&1
sleep 2

token() { sed -n 's/.*"admin": *"\([0-9a-f]*\)".*/\1/p' "$PALISADE_LAB_DIR/tokens.json"; }
$P delete policy alpha/web1-to-web2-via-fw >/dev/null
echo "policy change -> enforced ($N_CHANGES changes per size; times from the API call to the probe's first/last sighting at fw1):"
PALISADE_TOKEN=$(token) target/release/palisade-bench policy-latency --iterations "$N_CHANGES"
$P lab down >/dev/null 2>&1
$P lab up >/dev/null 2>&1
echo "controller restart under a ping flood:"
PALISADE_TOKEN=$(token) target/release/palisade-bench restart --flows "$N_RESTART_FLOWS"
$P lab down >/dev/null 2>&1

# Flow programming rate on a scratch bridge.
br=plbench0
ovs-vsctl --may-exist add-br $br -- set bridge $br datapath_type=netdev fail_mode=secure protocols=OpenFlow13,OpenFlow14
f1=$(mktemp); f2=$(mktemp)
awk -v n="$N_FLOWS" 'BEGIN{for(i=0;i<n;i++) printf "flow add cookie=0x5a15030000000001,priority=1100,in_port=1,ip,nw_src=10.%d.%d.%d,actions=drop\n", int(i/65536)%256, int(i/256)%256, i%256}' >"$f1"
sed 's/^flow add //; s/cookie=0x5a15030000000001/cookie=0x1/' "$f1" >"$f2"
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN{printf "%.3f", e-s}'; }
tb=$(t ovs-ofctl -O OpenFlow14 --bundle add-flows $br "$f2")
ovs-ofctl -O OpenFlow14 del-flows $br
tp=$(t ovs-ofctl -O OpenFlow14 bundle $br "$f1")
cnt=$(ovs-ofctl -O OpenFlow14 dump-flows $br | grep -c cookie=0x5a15 || true)
ovs-vsctl del-br $br
[ "$cnt" = "$N_FLOWS" ] || { echo "only $cnt of $N_FLOWS flows installed" >&2; exit 1; }
echo "flow programming ($N_FLOWS flows, one bundle): baseline ovs-ofctl --bundle add-flows ${tb}s = $(awk -v n="$N_FLOWS" -v t="$tb" 'BEGIN{printf "%.0f", n/t}') flows/s | palisade bundle path ${tp}s = $(awk -v n="$N_FLOWS" -v t="$tp" 'BEGIN{printf "%.0f", n/t}') flows/s"
rm -f "$f1" "$f2"
