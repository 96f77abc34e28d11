//! What a running guest exposes to introspection really is wired up: the RAM file holds memory
//! the guest writes at run time, and the gdbstub socket speaks the gdb remote protocol.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use palisade_guest::Guest;

#[test]
fn ram_file_holds_what_the_guest_writes_and_gdb_socket_answers() {
    common::init_tracing();
    common::require_qemu();
    // The guest computes the marker at run time, so its bytes exist nowhere in the images; the
    // file on the initramfs (ramfs) keeps them in a page-cache page.
    let tag = std::process::id();
    let workload =
        vec![format!("echo \"PALISADE-LIVE-$((40+2))-{tag}\" > /tmp/live"), "cat /tmp/live".into(), "sleep 600".into()];
    let initrd = common::initramfs("sockets-test.cpio", workload);
    let mut guest = Guest::start(&common::config("sockets", &initrd)).unwrap_or_else(|e| panic!("start: {e:#?}"));
    let marker = format!("PALISADE-LIVE-42-{tag}");
    guest.wait_for_console(&marker, common::BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e:#?}"));

    let ram = std::fs::read(guest.ram_path()).unwrap();
    let in_ram = ram.windows(marker.len()).any(|w| w == marker.as_bytes());
    let mut gdb = UnixStream::connect(guest.gdb_path()).unwrap();
    gdb.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    gdb.write_all(b"$?#3f").unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.windows(1).any(|w| w == b"#") {
        let n = gdb.read(&mut buf).unwrap();
        assert!(n > 0, "gdbstub closed the connection");
        reply.extend_from_slice(&buf[..n]);
    }
    drop(gdb); // leaves the guest paused; stop must still clean up
    let status = guest.qmp().unwrap().query_status().unwrap();
    let (pid, ram_path) = (guest.pid(), guest.ram_path().to_path_buf());
    guest.stop().unwrap();

    assert!(in_ram, "the RAM file does not contain what the guest wrote");
    let reply = String::from_utf8_lossy(&reply);
    // QEMU's stub sends an unsolicited `$T02...` stop reply on connect, then acks and answers.
    assert!(reply.starts_with("$T") || reply.starts_with("+$T"), "gdbstub replied {reply:?}");
    assert!(!status.running, "a gdb connection stops the guest: {status:?}");
    assert!(!common::process_alive(pid) && !ram_path.exists());
}
