//! A guest with a virtio-net NIC on a host tap: the init loads the modules, configures eth0 from
//! `palisade.ip=`, and guest and host reach each other. The tap is made beforehand, as the lab
//! does before adding it to OVS; addresses come from TEST-NET-2 (RFC 5737).

mod common;

use std::process::Command;
use std::time::Duration;

use palisade_guest::initramfs::{NET_UP_MARKER, WORKLOAD_DONE_MARKER};
use palisade_guest::{Guest, NicConfig};

/// Deletes the tap when the test ends, however it ends.
struct Tap(String);

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn guest_nic_on_a_tap_gets_its_address_and_reaches_the_host() {
    common::init_tracing();
    common::require_qemu();
    let subnet = 4 * (std::process::id() % 60);
    let (host_ip, guest_ip) = (format!("198.51.100.{}", subnet + 1), format!("198.51.100.{}", subnet + 2));
    let tap = Tap(format!("pgt{}", std::process::id() % 1_000_000));
    ip(&["tuntap", "add", "dev", &tap.0, "mode", "tap"]);
    ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &tap.0]);
    ip(&["link", "set", &tap.0, "up"]);
    let workload = vec![
        "for i in $(seq 1 30); do".to_string(),
        format!("  if ping -c 1 -W 1 {host_ip} > /dev/null; then echo PALISADE-PING-OK; break; fi"),
        "done".to_string(),
        "sleep 5".to_string(), // time for the host to ping back
    ];
    let initrd = common::initramfs("nic-test.cpio", workload);
    let mut config = common::config("nic", &initrd);
    config.nic = Some(NicConfig {
        tap: tap.0.clone(),
        mac: "52:54:00:5a:15:01".into(),
        ip: Some(format!("{guest_ip}/30").parse().unwrap()),
    });

    let mut guest = Guest::start(&config).unwrap_or_else(|e| panic!("start: {e:#?}"));
    let up = guest.wait_for_console(NET_UP_MARKER, common::BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e:#?}"));
    let ping_ok = guest.wait_for_console("PALISADE-PING-OK", Duration::from_secs(60));
    let host_ping = Command::new("ping").args(["-c", "1", "-W", "5", &guest_ip]).output().expect("run ping");
    guest.wait_for_console(WORKLOAD_DONE_MARKER, Duration::from_secs(60)).unwrap();
    let console = guest.console_text().unwrap();
    guest.stop().unwrap();

    assert_eq!(up, format!("{NET_UP_MARKER} {guest_ip}/30"));
    assert!(ping_ok.is_ok(), "guest could not ping the host: {ping_ok:?}\n{console}");
    assert!(
        host_ping.status.success(),
        "host could not ping the guest: {}",
        String::from_utf8_lossy(&host_ping.stdout)
    );
    assert!(!console.contains("PALISADE-INSMOD-FAILED"), "{console}");
}
