#!/usr/bin/env bash
# The lab demo: build Palisade, bring up the single-host lab, steer web1->web2 traffic through
# the firewall appliance fw1 (Type 1 access), and show that it crosses the appliance.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked
P=target/release/palisade
say() { printf '\n== %s\n' "$*"; }
say "palisade lab up"
$P lab up
say "direct path before any policy (TTL 64)"
$P lab exec pal-alpha-web1 -- busybox ping -c 2 198.18.1.20
say "palisade diff -f examples/redirect.yaml"
$P diff -f examples/redirect.yaml
say "palisade apply -f examples/redirect.yaml"
$P apply -f examples/redirect.yaml
say "redirected path (TTL 63: one hop through fw1)"
$P lab exec pal-alpha-web1 -- busybox ping -c 2 198.18.1.20
say "fw1's firewall counters"
$P lab counters fw1
say "tenant beta, same addresses, untouched (TTL 64)"
$P lab exec pal-beta-web1 -- busybox ping -c 2 198.18.1.20
say "compiled flows"
$P flows
echo
echo "The lab stays up. Try: $P get vm; $P audit; $P lab down"
