#!/usr/bin/env bash
# Prints what identifies the default lab (the one ./scripts/demo.sh leaves up) at this moment:
# its controller's pid, its guest's QEMU pid, its namespaces and ports, and its flows without
# their counters. Two prints are equal exactly when nothing of that lab was replaced or removed.
# With --flow-age, prints instead the age in whole seconds of the youngest Palisade flow on its
# bridge (a flow deleted and added again is young).
set -euo pipefail
lab=${PALISADE_LAB_DIR:-/var/lib/palisade/lab}
bridge=$(sed -n 's/.*"bridge": *"\([^"]*\)".*/\1/p' "$lab/lab.json" 2>/dev/null || true)
bridge=${bridge:-palisade0}
if [ "${1:-}" = --flow-age ]; then
  ovs-ofctl -O OpenFlow14 dump-flows "$bridge" 'cookie=0x5a15000000000000/0xffff000000000000' |
    sed -n 's/.*duration=\([0-9]*\)\..*/\1/p' | sort -n | head -1
  exit 0
fi
echo "bridge $bridge"
echo "palisaded $(cat "$lab/palisaded.pid")"
for pid in $(pgrep -f "mem-path=/dev/shm/palisade/palisade-$bridge-" || true); do
  echo "qemu $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" | grep -o "palisade-$bridge-[a-z0-9_-]*\.ram")"
done
ip netns list | awk '{print $1}' | grep -E '^pal-(alpha|beta|fw)' | sort | sed 's/^/netns /'
ovs-vsctl list-ports "$bridge" | sort | sed 's/^/port /'
ovs-ofctl -O OpenFlow14 --no-stats dump-flows "$bridge" | grep -v '^OFPST_FLOW' | sort | sed 's/^/flow /'
