#!/usr/bin/env bash
# Installs what Palisade needs on a fresh Debian 12 machine (as root) and starts Open vSwitch.
set -euo pipefail
need=()
for pkg in openvswitch-switch nftables busybox iproute2 ethtool tcpdump procps iputils-ping qemu-system-x86; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  echo "starting Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=10 show >/dev/null
fi
