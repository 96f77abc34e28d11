#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that need root, real Open
# vSwitch and network namespaces. The one place the test command lives (.ci/run calls this).
# --no-fail-fast: a failing test binary does not stop the others, so one run shows every failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --locked --no-fail-fast
