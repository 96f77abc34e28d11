#!/usr/bin/env bash
# Agentless monitoring benchmarks (issue #5) on a real QEMU guest, each beside its baseline in
# the same run: fio 4k randrw 70:30 and a system-call loop before injection, with record
# policies, and after unhooking; the host cost of the monitor beside QEMU's; per-event cost vs
# a gdb breakpoint per call; boot to monitoring active. Needs root, qemu-system-x86 and fio
# (installed here: Debian's fio, copied into the guest with its libraries).
# Results: docs/benchmarks.md. Run it on an otherwise idle machine: under TCG the guest's
# timings follow whatever else the host's cores are doing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
command -v fio >/dev/null || { apt-get install -y --no-install-recommends fio >/dev/null; }
cargo build --release --locked -q -p palisade-bench
target/release/palisade-bench monitor --boots "${BOOTS:-3}" --runs "${RUNS:-3}" \
  --fio-seconds "${FIO_SECONDS:-10}" --loop-count "${LOOP_COUNT:-100000}"
