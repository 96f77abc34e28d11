//! Hijacked calls against a simulated vCPU behind a fake gdb stub: the "kernel function"
//! returns `rdi + 2 * rsi` and clobbers caller-saved registers; foreign hits of the return
//! trap and calls that never return can be injected.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use super::*;
use crate::gdb::packet::{checksum, decode, hex, parse_hex_u64, unhex};

const NAMES: [&str; 33] = [
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
    "eflags",
    "cs",
    "ss",
    "ds",
    "es",
    "fs",
    "gs",
    "fs_base",
    "gs_base",
    "k_gs_base",
    "cr0",
    "cr2",
    "cr3",
    "cr4",
    "cr8",
    "efer",
];
const START: u64 = 0xffff_ffff_8100_1000;
const SAFE: u64 = 0xffff_ffff_8120_0000;
const FUNC: u64 = 0xffff_ffff_8130_0000;
/// The interrupted task's stack pointer at the safe point (a function entry: 8 mod 16).
const TASK_RSP: u64 = 0xffff_c900_0001_3f58;
const FOREIGN_RSP: u64 = 0xffff_c900_0002_3e18;

fn reg(name: &str) -> usize {
    NAMES.iter().position(|n| *n == name).unwrap()
}

fn xml() -> String {
    let regs: String = NAMES
        .iter()
        .map(|n| {
            let bits = if *n == "eflags" || n.len() == 2 && n.ends_with('s') { 32 } else { 64 };
            format!("<reg name=\"{n}\" bitsize=\"{bits}\"/>")
        })
        .collect();
    format!("<target><feature name=\"core\">{regs}</feature></target>")
}

#[derive(Default)]
struct Sim {
    regs: Vec<u64>,
    mem: HashMap<u64, u8>,
    bps: HashSet<u64>,
    foreign_hits: usize,
    never_return: bool,
    /// The function resumes on another vCPU: different per-CPU registers on return.
    migrate: bool,
    ours: Option<Vec<u64>>,
    /// (rsp, return address) seen at the function's entry.
    entry: Option<(u64, u64)>,
    log: Vec<String>,
}

impl Sim {
    fn read_u64(&self, a: u64) -> u64 {
        let b: Vec<u8> = (0..8).map(|i| *self.mem.get(&(a + i)).unwrap_or(&0)).collect();
        u64::from_le_bytes(b.try_into().unwrap())
    }

    fn stop_if_bp(&self) -> Option<Vec<u8>> {
        self.bps.contains(&self.regs[reg("rip")]).then(|| b"T05thread:01;".to_vec())
    }

    fn ret(&mut self) -> Option<Vec<u8>> {
        let rsp = self.regs[reg("rsp")];
        self.regs[reg("rip")] = self.read_u64(rsp);
        self.regs[reg("rsp")] = rsp + 8;
        self.stop_if_bp()
    }

    /// Runs until something stops; `None`: keeps running (no reply).
    fn cont(&mut self) -> Option<Vec<u8>> {
        let rip = self.regs[reg("rip")];
        if rip == START {
            self.regs[reg("rip")] = SAFE;
            self.regs[reg("rsp")] = TASK_RSP;
            return self.stop_if_bp();
        }
        if rip == SAFE + 1 {
            // The foreign task went on; later our function returns.
            self.regs = self.ours.take()?;
            return self.ret();
        }
        if rip == FUNC {
            let rsp = self.regs[reg("rsp")];
            self.entry = Some((rsp, self.read_u64(rsp)));
            if self.never_return {
                return None;
            }
            self.regs[reg("rax")] = self.regs[reg("rdi")] + 2 * self.regs[reg("rsi")];
            if self.migrate {
                self.regs[reg("gs_base")] = 0xffff_8880_1f20_0000;
                self.regs[reg("cr2")] = 0x7f00_0000_1000;
            }
            for (r, v) in [("rcx", 0xdead), ("r11", 0xbeef), ("rdi", 0), ("eflags", 0x2)] {
                self.regs[reg(r)] = v;
            }
            if self.foreign_hits > 0 {
                self.foreign_hits -= 1;
                self.ours = Some(self.regs.clone());
                self.regs[reg("rip")] = SAFE;
                self.regs[reg("rsp")] = FOREIGN_RSP;
                self.regs[reg("rax")] = 7;
                return self.stop_if_bp();
            }
            return self.ret();
        }
        None
    }

    fn handle(&mut self, cmd: &str) -> Option<Vec<u8>> {
        self.log.push(cmd.to_owned());
        let ok = Some(b"OK".to_vec());
        let hex_arg = |s: &str| parse_hex_u64(s.as_bytes()).unwrap();
        match cmd {
            c if c.starts_with("qSupported") => Some(b"PacketSize=1000;qXfer:features:read+".to_vec()),
            c if c.starts_with("qXfer:features:read:target.xml:") => Some(format!("l{}", xml()).into_bytes()),
            c if c.starts_with('p') => {
                let n = hex_arg(&c[1..]) as usize;
                let width = if NAMES[n] == "eflags" || (18..24).contains(&n) { 4 } else { 8 };
                Some(hex(&self.regs[n].to_le_bytes()[..width]).into_bytes())
            }
            "g" => {
                let mut g = Vec::new();
                for (n, v) in self.regs.iter().enumerate() {
                    let width = if NAMES[n] == "eflags" || (18..24).contains(&n) { 4 } else { 8 };
                    g.extend_from_slice(&v.to_le_bytes()[..width]);
                }
                Some(hex(&g).into_bytes())
            }
            c if c.starts_with('P') => {
                let (n, v) = c[1..].split_once('=').unwrap();
                let mut b = unhex(v.as_bytes()).unwrap();
                b.resize(8, 0);
                self.regs[hex_arg(n) as usize] = u64::from_le_bytes(b.try_into().unwrap());
                ok
            }
            c if c.starts_with('M') => {
                let (head, data) = c[1..].split_once(':').unwrap();
                let a = hex_arg(head.split_once(',').unwrap().0);
                for (i, b) in unhex(data.as_bytes()).unwrap().into_iter().enumerate() {
                    self.mem.insert(a + i as u64, b);
                }
                ok
            }
            c if c.starts_with("Z0,") => {
                self.bps.insert(hex_arg(c[3..].split_once(',').unwrap().0));
                ok
            }
            c if c.starts_with("z0,") => {
                self.bps.remove(&hex_arg(c[3..].split_once(',').unwrap().0));
                ok
            }
            c if c.starts_with("Hg") => ok,
            "s" => {
                self.regs[reg("rip")] += 1;
                Some(b"T05thread:01;".to_vec())
            }
            "c" => self.cont(),
            _ => Some(Vec::new()),
        }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = vec![b'$'];
    f.extend_from_slice(body);
    f.extend_from_slice(format!("#{:02x}", checksum(body)).as_bytes());
    f
}

fn start(sim: Sim) -> (GdbClient<UnixStream>, Arc<Mutex<Sim>>) {
    let (client, mut s) = UnixStream::pair().unwrap();
    let sim = Arc::new(Mutex::new(sim));
    let shared = sim.clone();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        loop {
            let mut b = [0u8; 4096];
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&b[..n]),
            }
            while let Some(&first) = buf.first() {
                if first == 0x03 {
                    buf.remove(0);
                    s.write_all(&frame(b"T02thread:01;")).unwrap();
                    continue;
                }
                if first != b'$' {
                    buf.remove(0);
                    continue;
                }
                let Some(h) = buf.iter().position(|&c| c == b'#') else { break };
                if buf.len() < h + 3 {
                    break;
                }
                let f: Vec<u8> = buf.drain(..h + 3).collect();
                s.write_all(b"+").unwrap();
                let cmd = String::from_utf8(decode(&f[1..h]).unwrap()).unwrap();
                let reply = shared.lock().unwrap().handle(&cmd);
                if let Some(r) = reply {
                    s.write_all(&frame(&r)).unwrap();
                }
            }
        }
    });
    let mut c = GdbClient::new(client).unwrap();
    c.set_timeout(Duration::from_secs(2));
    (c, sim)
}

fn sim() -> Sim {
    let mut regs: Vec<u64> = (0..NAMES.len() as u64).map(|i| 0x1000 + i).collect();
    regs[reg("rip")] = START;
    regs[reg("eflags")] = 0x246;
    Sim { regs, ..Sim::default() }
}

#[test]
fn call_returns_rax_and_restores_every_register() {
    let (mut gdb, sim) = start(sim());
    let r = hijack_call(&mut gdb, Gva(SAFE), Gva(FUNC), &[40, 1], Duration::from_secs(2)).unwrap();
    assert_eq!(r, 42);
    let s = sim.lock().unwrap();
    let mut expected: Vec<u64> = (0..NAMES.len() as u64).map(|i| 0x1000 + i).collect();
    expected[reg("rip")] = SAFE;
    expected[reg("rsp")] = TASK_RSP;
    expected[reg("eflags")] = 0x246;
    assert_eq!(s.regs, expected, "registers as at the safe point");
    assert!(s.bps.is_empty(), "breakpoints left: {:?}", s.bps);
    // The frame: 16-byte aligned before the pushed return address, below the live stack.
    let (entry_rsp, ret) = s.entry.unwrap();
    assert_eq!(entry_rsp % 16, 8);
    assert!(entry_rsp < TASK_RSP - 256);
    assert_eq!(ret, SAFE);
}

#[test]
fn second_call_starts_at_the_safe_point_without_waiting() {
    let (mut gdb, sim) = start(sim());
    hijack_call(&mut gdb, Gva(SAFE), Gva(FUNC), &[1, 1], Duration::from_secs(2)).unwrap();
    let before = sim.lock().unwrap().log.iter().filter(|c| *c == "c").count();
    let r = hijack_call(&mut gdb, Gva(SAFE), Gva(FUNC), &[2, 3], Duration::from_secs(2)).unwrap();
    assert_eq!(r, 8);
    // One `c` for the call itself, none to reach the safe point.
    assert_eq!(sim.lock().unwrap().log.iter().filter(|c| *c == "c").count(), before + 1);
}

#[test]
fn foreign_hits_of_the_return_trap_are_stepped_over() {
    let (mut gdb, sim) = start(Sim { foreign_hits: 1, ..sim() });
    let r = hijack_call(&mut gdb, Gva(SAFE), Gva(FUNC), &[5, 5], Duration::from_secs(2)).unwrap();
    assert_eq!(r, 15, "the foreign task's rax must not be taken");
    let s = sim.lock().unwrap();
    assert_eq!(s.log.iter().filter(|c| *c == "s").count(), 1);
    assert_eq!(s.regs[reg("rsp")], TASK_RSP);
    assert!(s.bps.is_empty());
}

#[test]
fn a_call_that_never_returns_times_out_with_the_guest_stopped() {
    let (mut gdb, sim) = start(Sim { never_return: true, ..sim() });
    let err = hijack_call(&mut gdb, Gva(SAFE), Gva(FUNC), &[1], Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, HijackError::NoReturn(Gva(FUNC), _)), "{err}");
    assert!(sim.lock().unwrap().bps.is_empty());
}

#[test]
fn more_than_six_arguments_are_refused() {
    let (mut gdb, sim) = start(sim());
    let err = hijack_call(&mut gdb, Gva(SAFE), Gva(FUNC), &[0; 7], Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, HijackError::TooManyArgs(7)));
    assert!(!sim.lock().unwrap().log.iter().any(|c| c.starts_with('Z')));
}

#[test]
fn per_cpu_registers_are_left_alone_when_the_task_resumes_on_another_vcpu() {
    let (mut gdb, sim) = start(Sim { migrate: true, ..sim() });
    let r = hijack_call(&mut gdb, Gva(SAFE), Gva(FUNC), &[1, 2], Duration::from_secs(2)).unwrap();
    assert_eq!(r, 5);
    let s = sim.lock().unwrap();
    assert_eq!(s.regs[reg("gs_base")], 0xffff_8880_1f20_0000, "the new vCPU's per-CPU base");
    assert_eq!(s.regs[reg("rsp")], TASK_RSP);
    assert_eq!(s.regs[reg("rdi")], 0x1000 + reg("rdi") as u64);
    let written: Vec<&String> = s.log.iter().filter(|c| c.starts_with('P')).collect();
    let gs_base = format!("P{:x}=", reg("gs_base"));
    let cr2 = format!("P{:x}=", reg("cr2"));
    assert!(!written.iter().any(|c| c.starts_with(&gs_base) || c.starts_with(&cr2)), "{written:?}");
}
