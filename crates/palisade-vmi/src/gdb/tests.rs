//! The client against a fake stub: a thread speaking the protocol over a socket pair, with
//! QEMU's habits (unsolicited T02, acks, `p` empty before target.xml) and injectable faults.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::packet::{checksum, hex, parse_hex_u64, unhex};
use super::*;
use crate::Gva;

const TARGET_XML: &str = r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">
<target><architecture>i386:x86-64</architecture><xi:include href="i386-64bit.xml"/></target>"#;
const CORE_XML: &str = r#"<?xml version="1.0"?>
<!-- <reg name="commented" bitsize="64"/> -->
<feature name="org.gnu.gdb.i386.core">
<reg name="rax" bitsize="64"/><reg name="rbx" bitsize="64"/>
<!-- a comment
     <reg name="orig_rax" bitsize="64"/>
-->
<reg name="rip" bitsize="64" type="code_ptr"/><reg name="eflags" bitsize="32"/>
<reg name="st0" bitsize="80"/><reg name="cr3" bitsize="64" regnum="30"/>
<reg name="cr4" bitsize="64"/>
</feature>"#;

#[derive(Default)]
struct Faults {
    unsolicited_t02: bool,
    /// Nak this many of the client's packets before accepting.
    nak_first: usize,
    /// Send this many replies with a wrong checksum first.
    corrupt_replies: usize,
}

struct Stub {
    log: Arc<Mutex<Vec<String>>>,
    handle: JoinHandle<()>,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = vec![b'$'];
    f.extend_from_slice(body);
    f.extend_from_slice(format!("#{:02x}", checksum(body)).as_bytes());
    f
}

fn start(faults: Faults) -> (UnixStream, Stub) {
    let (client, s) = UnixStream::pair().unwrap();
    (client, serve(s, faults))
}

/// Runs the fake stub on `s` in a thread.
fn serve<S: Read + Write + Send + 'static>(mut s: S, mut faults: Faults) -> Stub {
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let handle = std::thread::spawn(move || {
        let mut regs: HashMap<u32, Vec<u8>> = HashMap::new();
        regs.insert(0, 0x1111u64.to_le_bytes().to_vec());
        regs.insert(2, 0xffff_ffff_8100_0000u64.to_le_bytes().to_vec());
        regs.insert(3, 0x246u32.to_le_bytes().to_vec());
        regs.insert(30, 0x10_0000u64.to_le_bytes().to_vec());
        regs.insert(31, 0x1000u64.to_le_bytes().to_vec());
        let mut mem: HashMap<u64, u8> = HashMap::new();
        let mut xml_read = false;
        if faults.unsolicited_t02 {
            s.write_all(&frame(b"T02thread:01;")).unwrap();
        }
        let mut buf = Vec::new();
        let mut last_reply: Vec<u8> = Vec::new();
        loop {
            let mut b = [0u8; 4096];
            let n = match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&b[..n]);
            loop {
                match buf.first() {
                    None => break,
                    Some(b'+') => {
                        buf.remove(0);
                    }
                    Some(b'-') => {
                        buf.remove(0);
                        s.write_all(&last_reply).unwrap();
                    }
                    Some(0x03) => {
                        buf.remove(0);
                        last_reply = frame(b"T02thread:01;");
                        s.write_all(&last_reply).unwrap();
                    }
                    Some(b'$') => {
                        let Some(h) = buf.iter().position(|&c| c == b'#') else { break };
                        if buf.len() < h + 3 {
                            break;
                        }
                        let f: Vec<u8> = buf.drain(..h + 3).collect();
                        let body = &f[1..h];
                        assert_eq!(parse_hex_u64(&f[h + 1..]).unwrap() as u8, checksum(body));
                        if faults.nak_first > 0 {
                            faults.nak_first -= 1;
                            s.write_all(b"-").unwrap();
                            continue;
                        }
                        s.write_all(b"+").unwrap();
                        let cmd = String::from_utf8(super::packet::decode(body).unwrap()).unwrap();
                        log2.lock().unwrap().push(cmd.clone());
                        let reply: Option<Vec<u8>> = match cmd.as_str() {
                            c if c.starts_with("qSupported") => Some(b"PacketSize=1000;qXfer:features:read+".to_vec()),
                            c if c.starts_with("qXfer:features:read:") => {
                                let rest = &c["qXfer:features:read:".len()..];
                                let (annex, range) = rest.split_once(':').unwrap();
                                let (off, _len) = range.split_once(',').unwrap();
                                let off = parse_hex_u64(off.as_bytes()).unwrap() as usize;
                                let doc = match annex {
                                    "target.xml" => TARGET_XML,
                                    "i386-64bit.xml" => CORE_XML,
                                    _ => "",
                                };
                                if annex == "i386-64bit.xml" {
                                    xml_read = true;
                                }
                                // Small slices, so the client must follow `m` replies.
                                let end = (off + 100).min(doc.len());
                                let kind = if end == doc.len() { b'l' } else { b'm' };
                                let mut r = vec![kind];
                                r.extend_from_slice(&doc.as_bytes()[off..end]);
                                Some(r)
                            }
                            c if c.starts_with('p') => {
                                let n = parse_hex_u64(&c.as_bytes()[1..]).unwrap() as u32;
                                match (xml_read, regs.get(&n)) {
                                    (true, Some(v)) => Some(hex(v).into_bytes()),
                                    (true, None) => Some(b"E14".to_vec()),
                                    (false, _) => Some(Vec::new()),
                                }
                            }
                            "g" if xml_read => {
                                // rax, rbx, rip, eflags, st0: the registers numbered 0..=4.
                                let mut g = Vec::new();
                                for (n, width) in [(0u32, 8usize), (1, 8), (2, 8), (3, 4), (4, 10)] {
                                    let mut v = regs.get(&n).cloned().unwrap_or_default();
                                    v.resize(width, 0);
                                    g.extend_from_slice(&v);
                                }
                                Some(hex(&g).into_bytes())
                            }
                            c if c.starts_with('P') => {
                                let (n, v) = c[1..].split_once('=').unwrap();
                                let n = parse_hex_u64(n.as_bytes()).unwrap() as u32;
                                regs.insert(n, unhex(v.as_bytes()).unwrap());
                                Some(b"OK".to_vec())
                            }
                            c if c.starts_with('m') => {
                                let (a, l) = c[1..].split_once(',').unwrap();
                                let a = parse_hex_u64(a.as_bytes()).unwrap();
                                let l = parse_hex_u64(l.as_bytes()).unwrap();
                                if a == 0xdead_0000 {
                                    Some(b"E14".to_vec())
                                } else if a == 0x5000 {
                                    // Runs: "00*\"" = 6 zero digits, escaped '}'-free payload.
                                    Some(b"0*\"ff".to_vec())
                                } else {
                                    let bytes: Vec<u8> =
                                        (a..a + l).map(|x| *mem.get(&x).unwrap_or(&(x as u8))).collect();
                                    Some(hex(&bytes).into_bytes())
                                }
                            }
                            c if c.starts_with('M') => {
                                let (head, data) = c[1..].split_once(':').unwrap();
                                let (a, _) = head.split_once(',').unwrap();
                                let a = parse_hex_u64(a.as_bytes()).unwrap();
                                for (i, b) in unhex(data.as_bytes()).unwrap().into_iter().enumerate() {
                                    mem.insert(a + i as u64, b);
                                }
                                Some(b"OK".to_vec())
                            }
                            "qfThreadInfo" => Some(b"m01,02".to_vec()),
                            "qsThreadInfo" => Some(b"l".to_vec()),
                            "qEscaped" => Some(b"a}\x03b}]".to_vec()), // "a#b}"
                            c if c.starts_with('Z') || c.starts_with('z') || c.starts_with("Hg") => {
                                Some(b"OK".to_vec())
                            }
                            "c" => None,
                            "s" => Some(b"T05thread:01;".to_vec()),
                            "D" => Some(b"OK".to_vec()),
                            _ => Some(Vec::new()),
                        };
                        if let Some(r) = reply {
                            last_reply = frame(&r);
                            if faults.corrupt_replies > 0 {
                                faults.corrupt_replies -= 1;
                                let mut bad = last_reply.clone();
                                let n = bad.len();
                                bad[n - 1] = if bad[n - 1] == b'0' { b'1' } else { b'0' };
                                s.write_all(&bad).unwrap();
                            } else {
                                s.write_all(&last_reply).unwrap();
                            }
                        }
                        if cmd == "c" {
                            // The guest "runs" into a watchpoint.
                            last_reply = frame(b"T05thread:02;watch:ffff888000001000;");
                            s.write_all(&last_reply).unwrap();
                        }
                    }
                    Some(_) => {
                        buf.remove(0);
                    }
                }
            }
        }
    });
    Stub { log, handle }
}

fn client(faults: Faults) -> (GdbClient<UnixStream>, Stub) {
    let (io, stub) = start(faults);
    let mut c = GdbClient::new(io).unwrap();
    c.set_timeout(Duration::from_secs(2));
    (c, stub)
}

#[test]
fn connect_drains_unsolicited_t02_and_reads_included_xml() {
    let (c, _stub) = client(Faults { unsolicited_t02: true, ..Faults::default() });
    assert_eq!(c.initial_stop().and_then(StopReply::thread), Some(ThreadId { pid: None, tid: 1 }));
    let names: Vec<_> = c.target().registers.iter().map(|r| (r.name.as_str(), r.regnum)).collect();
    assert_eq!(names, [("rax", 0), ("rbx", 1), ("rip", 2), ("eflags", 3), ("st0", 4), ("cr3", 30), ("cr4", 31)]);
}

#[test]
fn registers_by_name_read_and_write() {
    let (mut c, stub) = client(Faults::default());
    assert_eq!(c.read_register("rip").unwrap(), 0xffff_ffff_8100_0000);
    assert_eq!(c.read_register("eflags").unwrap(), 0x246);
    assert_eq!(c.read_register("cr3").unwrap(), 0x10_0000);
    c.write_register("rbx", 0x42).unwrap();
    assert_eq!(c.read_register("rbx").unwrap(), 0x42);
    c.write_register("eflags", 0x202).unwrap();
    assert!(stub.log.lock().unwrap().contains(&"P3=02020000".to_string()));
    assert!(matches!(c.read_register("orig_rax"), Err(GdbError::UnknownRegister(_))));
    assert!(matches!(c.read_register("st0"), Err(GdbError::WideRegister(_))));
    let all = c.read_registers().unwrap();
    assert_eq!(all.get("cr4"), Some(0x1000));
    assert_eq!(all.get("rbx"), Some(0x42));
    assert_eq!(all.0.len(), 6);
    // rax..eflags came from one `g`; cr3 and cr4 (numbers 30, 31, after a gap) from `p`.
    let log = stub.log.lock().unwrap();
    let after_g: Vec<_> = log.iter().skip_while(|c| *c != "g").collect();
    assert_eq!(after_g, ["g", "p1e", "p1f"]);
}

#[test]
fn naks_make_the_client_retransmit() {
    let (mut c, stub) = client(Faults { nak_first: 2, ..Faults::default() });
    assert_eq!(c.read_register("rax").unwrap(), 0x1111);
    assert!(stub.log.lock().unwrap()[0].starts_with("qSupported"));
}

#[test]
fn corrupt_replies_are_nakked_and_resent() {
    let (mut c, _stub) = client(Faults { corrupt_replies: 3, ..Faults::default() });
    assert_eq!(c.read_register("rax").unwrap(), 0x1111);
}

#[test]
fn run_length_and_escaped_replies_decode() {
    let (mut c, _stub) = client(Faults::default());
    assert_eq!(c.read_memory(Gva(0x5000), 4).unwrap(), vec![0, 0, 0, 0xff]);
    assert_eq!(c.request("qEscaped").unwrap(), b"a#b}");
}

#[test]
fn memory_reads_and_writes_in_chunks() {
    let (mut c, stub) = client(Faults::default());
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    c.write_memory(Gva(0x10_0000), &data).unwrap();
    assert_eq!(c.read_memory(Gva(0x10_0000), 3000).unwrap(), data);
    let log = stub.log.lock().unwrap();
    assert!(log.iter().filter(|l| l.starts_with('M')).count() >= 3);
    drop(log);
    let err = c.read_memory(Gva(0xdead_0000), 8).unwrap_err();
    assert!(matches!(err, GdbError::Remote { code: 0x14, .. }), "{err}");
}

#[test]
fn breakpoints_threads_and_run_control() {
    let (mut c, stub) = client(Faults::default());
    c.insert_breakpoint(Breakpoint::Software, Gva(0xffff_ffff_8100_0000), 1).unwrap();
    c.insert_breakpoint(Breakpoint::Hardware, Gva(0x1000), 1).unwrap();
    c.insert_breakpoint(Breakpoint::Write, Gva(0x2000), 8).unwrap();
    c.remove_breakpoint(Breakpoint::Access, Gva(0x2000), 8).unwrap();
    let threads = c.threads().unwrap();
    assert_eq!(threads.len(), 2);
    c.set_thread(threads[1]).unwrap();
    assert_eq!(c.step().unwrap().thread(), Some(threads[0]));
    c.cont().unwrap();
    let stop = c.wait_stop(Duration::from_secs(2)).unwrap();
    let StopReply::Stopped { reason: Some(StopReason::Watch { kind, addr }), .. } = stop else { panic!("{stop:?}") };
    assert_eq!((kind, addr), (WatchKind::Write, Gva(0xffff_8880_0000_1000)));
    c.interrupt().unwrap();
    assert!(matches!(c.wait_stop(Duration::from_secs(2)).unwrap(), StopReply::Stopped { signal: 2, .. }));
    c.detach().unwrap();
    let log = stub.log.lock().unwrap().clone();
    for want in ["Z0,ffffffff81000000,1", "Z1,1000,1", "Z2,2000,8", "z4,2000,8", "Hg2", "D"] {
        assert!(log.iter().any(|l| l == want), "{want} not in {log:?}");
    }
    stub.handle.join().unwrap();
}

#[test]
fn wait_stop_times_out_without_a_stop() {
    let (mut c, _stub) = client(Faults::default());
    let err = c.wait_stop(Duration::from_millis(50)).unwrap_err();
    assert!(matches!(err, GdbError::Timeout(_)), "{err}");
}

#[test]
fn raw_requests_and_unknown_commands() {
    let (io, _stub) = start(Faults::default());
    let mut c = GdbClient::new(io).unwrap();
    // The handshake read the XML, so a raw `p` works now...
    assert_eq!(c.request("p0").unwrap(), b"1111000000000000");
    // ...and an unknown command answers empty.
    assert_eq!(c.request("qNothing").unwrap(), b"");
}

#[test]
fn tcp_transport_works_with_nagle_off() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        serve(s, Faults { unsolicited_t02: true, ..Faults::default() })
    });
    let mut c = GdbClient::connect_tcp(addr).unwrap();
    let _stub = server.join().unwrap();
    assert!(c.initial_stop().is_some());
    assert_eq!(c.read_register("rax").unwrap(), 0x1111);
}
