#!/usr/bin/env bash
# Installs what Palisade needs on a fresh Debian 12 machine (as root) and starts Open vSwitch.
# gcc and binutils build and check the monitor payload (crates/palisade-monitor/build.rs); nmap is
# the vuln-scan engine (issue #7); hping3 and masscan make the lab dataset's attacks (issue #6);
# mmdebstrap, e2fsprogs, dosfstools, mtools, fdisk, qemu-utils and openssh-client build bootable
# disk images and ovmf boots them (palisade-guest's disk module, issue #15).
set -euo pipefail
need=()
for pkg in openvswitch-switch nftables busybox iproute2 ethtool tcpdump procps iputils-ping qemu-system-x86 libpcap-dev gcc binutils nmap hping3 masscan \
  mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-utils openssh-client ovmf; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# Guest kernels are fetched with `apt-get download` by the tests and the lab: it needs lists.
if [ ${#need[@]} -eq 0 ] && ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  echo "starting Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=10 show >/dev/null
fi
