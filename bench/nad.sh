#!/usr/bin/env bash
# NAD feature extraction benchmarks (issue #4), each beside its baseline in the same run
# (results: docs/benchmarks.md):
#  1. Agreement first: on a small generated capture, `palisade nad features` and the baseline
#     tool chain (tshark field export + bench/nad_reference.py, written from the spec) must give
#     the same rows (floats to 1e-9), or the run stops.
#     tshark resets its session every 100,000 packets (-M): it keeps ~2.7 KB per packet otherwise.
#  2. Throughput on one core (taskset -c $CORE) from a warm page cache, N packets (default 10 M,
#     seeded generator, TCP/UDP/ICMP + ignored traffic, 4 VMs, 1,000 peers per VM): packets/s and
#     file bytes/s, best of 3 for palisade, one run of the baseline, same file.
#  3. Peak memory (GNU time, max RSS) with 10 and 10,000 peers per VM per window.
#  4. Linearity: time for N/2 and N packets.
# Needs root for apt (tshark, time) only if they are missing. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000000}
N_CHECK=${N_CHECK:-200000}
CORE=${CORE:-1}
DIR=${NAD_BENCH_DIR:-/tmp/nad-bench}
mkdir -p "$DIR"

need=()
command -v tshark >/dev/null || need+=(tshark)
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked -q -p palisade --bin palisade
P=$PWD/target/release/palisade
VMS="--vm 10.0.0.1 --vm 10.0.0.2 --vm 10.0.0.3 --vm 10.0.0.4"
FIELDS=$(python3 bench/nad_reference.py --vm x --window 1 --print-fields)

gen() { # file packets peers
  [ -s "$1" ] || "$P" nad generate --out "$1" --packets "$2" --peers "$3" --seed 7 2>/dev/null
}
warm() { cat "$1" >/dev/null; }
# One timed run pinned to $CORE: prints "seconds max_rss_kb cpu_seconds" (cpu = user + sys, which
# is what to read when something else shares the core).
timed() {
  /usr/bin/time -f "%e %M %U %S" -o "$DIR/time.out" taskset -c "$CORE" "$@" >"$DIR/out.csv" 2>/dev/null
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$DIR/time.out"
}
best_of_3() {
  local best="" line
  for _ in 1 2 3; do
    line=$(timed "$@")
    if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then best=$line; fi
  done
  echo "$best"
}
baseline() { # file -> rows on stdout; both stages pinned to the same core
  taskset -c "$CORE" tshark -r "$1" -n -M 100000 -o ip.defragment:FALSE -T fields -E separator=, -E occurrence=f $FIELDS 2>/dev/null |
    taskset -c "$CORE" python3 bench/nad_reference.py $VMS --window 1
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# 1. Agreement.
gen "$DIR/check.pcap" "$N_CHECK" 1000
"$P" nad features --pcap "$DIR/check.pcap" $VMS --window 1 >"$DIR/check.palisade.csv"
baseline "$DIR/check.pcap" >"$DIR/check.baseline.csv"
echo -n "agreement on $N_CHECK packets: " >&2
python3 bench/nad_compare.py "$DIR/check.palisade.csv" "$DIR/check.baseline.csv" >&2

# 2. Throughput, palisade and baseline on the same file.
gen "$DIR/n.pcap" "$N" 1000
SIZE=$(stat -c %s "$DIR/n.pcap")
warm "$DIR/n.pcap"
read -r T_P RSS_P CPU_P < <(best_of_3 "$P" nad features --pcap "$DIR/n.pcap" $VMS --window 1)
warm "$DIR/n.pcap"
T0=$(date +%s.%N)
baseline "$DIR/n.pcap" >"$DIR/n.baseline.csv"
T_B=$(echo "$(date +%s.%N) - $T0" | bc -l)
"$P" nad features --pcap "$DIR/n.pcap" $VMS --window 1 >"$DIR/n.palisade.csv"
SAME=$(python3 bench/nad_compare.py "$DIR/n.palisade.csv" "$DIR/n.baseline.csv" || echo "DIFFER: see $DIR")

# 3. Peak memory by peers per window.
gen "$DIR/p10.pcap" "$N" 10
gen "$DIR/p10k.pcap" "$N" 10000
warm "$DIR/p10.pcap"
read -r T_10 RSS_10 _ < <(timed "$P" nad features --pcap "$DIR/p10.pcap" $VMS --window 1)
warm "$DIR/p10k.pcap"
read -r T_10K RSS_10K _ < <(timed "$P" nad features --pcap "$DIR/p10k.pcap" $VMS --window 1)

# 4. Linearity: N/2 (the generator is sequential, so it is the first half of the same traffic).
gen "$DIR/half.pcap" $((N / 2)) 1000
warm "$DIR/half.pcap"
read -r T_H _ CPU_H < <(best_of_3 "$P" nad features --pcap "$DIR/half.pcap" $VMS --window 1)
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

rate() { printf "%.3f" "$(echo "$1 / $2 / 1000000" | bc -l)"; }
T_B=$(printf "%.2f" "$T_B")
cat <<EOF
| measure ($N packets, $((SIZE / 1000000)) MB, warm cache, one core) | baseline: tshark fields + Python (same run) | palisade nad features | ratio |
|---|---|---|---|
| time (wall) | ${T_B} s | ${T_P} s (CPU ${CPU_P} s) | $(echo "scale=1; $T_B / $T_P" | bc -l)x |
| packets/s | $(rate "$N" "$T_B") M | $(rate "$N" "$T_P") M | |
| bytes/s (file) | $(rate "$SIZE" "$T_B") MB/s | $(rate "$SIZE" "$T_P") MB/s | |
| rows | $(($(wc -l <"$DIR/n.baseline.csv") - 1)) | $(($(wc -l <"$DIR/n.palisade.csv") - 1)) ($SAME) | |

| peak memory (max RSS) | 10 peers per VM per window | 10,000 peers per VM per window |
|---|---|---|
| palisade, $N packets | $((RSS_10 / 1024)) MiB (${T_10} s) | $((RSS_10K / 1024)) MiB (${T_10K} s) |

| linearity | $((N / 2)) packets | $N packets | ratio |
|---|---|---|---|
| palisade time (wall; CPU) | ${T_H} s; ${CPU_H} s | ${T_P} s; ${CPU_P} s | $(echo "scale=2; $T_P / $T_H" | bc -l); $(echo "scale=2; $CPU_P / $CPU_H" | bc -l) |
EOF
