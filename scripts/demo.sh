#!/usr/bin/env bash
# The lab demo: build Palisade, bring up the single-host lab, steer web1->web2 traffic through
# the firewall appliance fw1 (Type 1 access), show that it crosses the appliance, then boot a
# real QEMU guest from a policy file and list its kernel symbols recovered from its memory.
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
say "palisade apply -f examples/guest.yaml (a real QEMU guest in tenant alpha)"
$P apply -f examples/guest.yaml
for _ in $(seq 1 300); do
  state=$($P vmi guests -o json | sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' | head -1)
  [ "$state" != starting ] && break
  sleep 1
done
$P vmi guests
say "its kernel's symbols, recovered from guest memory alone (no agent in the guest)"
$P vmi symbols --vm guest1 --grep '^(_text|module_alloc|__x64_sys_(read|write|openat))$'
say "alpha/web1 reaches the guest on its VLAN"
$P lab exec pal-alpha-web1 -- busybox ping -c 2 198.18.1.30
echo
echo "The lab stays up. Try: $P get vm; $P audit; $P vmi symbols --vm guest1 | wc -l; $P lab down"
