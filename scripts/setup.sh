#!/usr/bin/env bash
# Installs what Palisade needs on a fresh Debian 12 machine (as root) and starts Open vSwitch.
# gcc and binutils build and check the monitor payload (crates/palisade-monitor/build.rs); nmap is
# the vuln-scan engine (issue #7); hping3 and masscan make the lab dataset's attacks (issue #6);
# mmdebstrap, e2fsprogs, dosfstools, mtools, fdisk, qemu-utils and openssh-client build bootable
# disk images and ovmf boots them (palisade-guest's disk module, issue #15); libvirt (with dnsmasq
# for its isolated test networks) runs the VMs Palisade attaches to (issue #15).
set -euo pipefail
need=()
for pkg in openvswitch-switch nftables busybox iproute2 ethtool tcpdump procps iputils-ping qemu-system-x86 libpcap-dev gcc binutils nmap hping3 masscan \
  mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-utils openssh-client ovmf libvirt-daemon-system libvirt-clients dnsmasq-base; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# Guest kernels are fetched with `apt-get download` by the tests and the lab: it needs lists.
if [ ${#need[@]} -eq 0 ] && ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  apt-get update -qq
fi
fresh_libvirt=no
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  [[ " ${need[*]} " == *" libvirt-daemon-system "* ]] && fresh_libvirt=yes
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
  echo "starting libvirt"
  if [ -d /run/systemd/system ]; then
    systemctl start virtlogd libvirtd
  else
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
  fi
  for _ in $(seq 1 50); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
  virsh -c qemu:///system version >/dev/null
fi
# The package defines a NAT network `default`; Palisade's guests only use isolated networks it
# defines itself, so on a machine where setup.sh just installed libvirt it never starts.
if [ "$fresh_libvirt" = yes ]; then
  virsh -c qemu:///system net-autostart default --disable >/dev/null 2>&1 || true
fi
if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  echo "starting Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=10 show >/dev/null
fi
