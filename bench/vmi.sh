#!/usr/bin/env bash
# Introspection benchmarks (issue #3) on a real QEMU guest, each beside its baseline in the same
# run: boot to introspection-ready vs boot to the guest's init; symbol recovery vs one read of
# all guest RAM; virtual vs physical vs gdb reads; hijacked module_alloc vs a gdb round trip.
# Needs root and qemu-system-x86 (scripts/setup.sh installs it). Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked -q -p palisade-bench
target/release/palisade-bench vmi --memory-mb "${MEMORY_MB:-512}" --boots "${BOOTS:-5}" --runs "${RUNS:-20}"
