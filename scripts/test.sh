#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that need root, real Open
# vSwitch and network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --locked
