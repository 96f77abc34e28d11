#!/usr/bin/env bash
# The paper's Table 2 (issue #7): host CPU and memory with 1, 3, 5, 10 and 20 tenants scanned at
# once, Palisade's multitask method (task spaces, one engine) beside one scanner VM per tenant
# (QEMU guests carrying the same scanner), in one run, on a private bridge `pbt0`.
# Needs root, Open vSwitch and qemu-system-x86. Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked -q -p palisade-bench
cargo build --release --locked -q -p palisade-scan --example guest_portscan
target/release/palisade-bench table2 --tenants "${TENANTS:-1,3,5,10,20}" --seconds "${SECONDS_PER_RUN:-20}"
