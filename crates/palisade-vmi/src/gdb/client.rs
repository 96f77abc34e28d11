//! The gdb remote protocol client: acked packet exchange over any [`Transport`], register
//! access by name through the target description, memory, breakpoints and run control.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::packet::{self, le_u64, PacketError};
use super::stop::{StopReply, ThreadId};
use super::target::{RegisterInfo, TargetDescription, XmlError};
use crate::Gva;

/// A byte stream to a gdb stub that can bound how long a read blocks.
pub trait Transport: Read + Write {
    /// Makes reads give up after `timeout` (`None`: block).
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Transport for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

/// Errors talking to a gdb stub.
#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    /// Reading from or writing to the stub failed.
    #[error("gdb stub connection failed")]
    Io(#[source] io::Error),
    /// The stub closed the connection.
    #[error("gdb stub closed the connection")]
    Closed,
    /// Nothing arrived in time.
    #[error("no answer from the gdb stub within {0:?}")]
    Timeout(Duration),
    /// The stub rejected a packet too many times.
    #[error("gdb stub rejected packet `{0}` repeatedly")]
    Rejected(String),
    /// A reply is malformed.
    #[error("malformed reply to `{command}`")]
    Malformed {
        /// The request.
        command: String,
        /// What is wrong.
        #[source]
        source: PacketError,
    },
    /// The stub answered with an error code.
    #[error("gdb stub answered `{command}` with error {code:#04x}")]
    Remote {
        /// The request.
        command: String,
        /// The `Exx` code.
        code: u8,
    },
    /// The stub does not implement the request (empty reply).
    #[error("gdb stub does not support `{0}`")]
    Unsupported(String),
    /// The target description does not name this register.
    #[error("the target has no register `{0}`")]
    UnknownRegister(String),
    /// The register is wider than 64 bits.
    #[error("register `{0}` is wider than 64 bits")]
    WideRegister(String),
    /// The target description is malformed.
    #[error("malformed target description")]
    TargetXml(#[source] XmlError),
}

impl From<XmlError> for GdbError {
    fn from(e: XmlError) -> GdbError {
        GdbError::TargetXml(e)
    }
}

/// Breakpoint and watchpoint kinds (`Z0`..`Z4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakpoint {
    /// Software breakpoint.
    Software,
    /// Hardware breakpoint.
    Hardware,
    /// Write watchpoint.
    Write,
    /// Read watchpoint.
    Read,
    /// Access watchpoint.
    Access,
}

impl Breakpoint {
    fn code(self) -> u8 {
        match self {
            Breakpoint::Software => 0,
            Breakpoint::Hardware => 1,
            Breakpoint::Write => 2,
            Breakpoint::Read => 3,
            Breakpoint::Access => 4,
        }
    }
}

/// Register values by name, in target-description order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registers(pub Vec<(String, u64)>);

impl Registers {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

enum Event {
    Ack,
    Nak,
    Packet(Vec<u8>),
}

const RETRIES: usize = 5;
/// Reads and writes move at most this many bytes per packet (QEMU's buffer is 4 KiB of hex).
const MAX_CHUNK: usize = 1024;

/// A client of one gdb stub. The target must be stopped for every request except
/// [`GdbClient::interrupt`] and [`GdbClient::wait_stop`].
#[derive(Debug)]
pub struct GdbClient<T: Transport> {
    io: T,
    rbuf: Vec<u8>,
    queued: VecDeque<Vec<u8>>,
    target: TargetDescription,
    initial_stop: Option<StopReply>,
    timeout: Duration,
    chunk: usize,
}

impl GdbClient<UnixStream> {
    /// Connects to a stub on a unix socket (`-chardev socket,path=...,server=on -gdb chardev:..`).
    pub fn connect_unix(path: &Path) -> Result<Self, GdbError> {
        GdbClient::new(UnixStream::connect(path).map_err(GdbError::Io)?)
    }
}

impl GdbClient<TcpStream> {
    /// Connects to a stub over TCP, with Nagle off (else every packet waits ~40 ms).
    pub fn connect_tcp(addr: impl ToSocketAddrs) -> Result<Self, GdbError> {
        let s = TcpStream::connect(addr).map_err(GdbError::Io)?;
        s.set_nodelay(true).map_err(GdbError::Io)?;
        GdbClient::new(s)
    }
}

impl<T: Transport> GdbClient<T> {
    /// Handshakes over `io`: drains the stop reply QEMU sends on connect, negotiates
    /// `qSupported` and reads the target description (QEMU answers `p`/`P` only after that).
    pub fn new(io: T) -> Result<Self, GdbError> {
        let mut c = GdbClient {
            io,
            rbuf: Vec::new(),
            queued: VecDeque::new(),
            target: TargetDescription::default(),
            initial_stop: None,
            timeout: Duration::from_secs(5),
            chunk: MAX_CHUNK,
        };
        let cmd = "qSupported:multiprocess-;swbreak+;hwbreak+;xmlRegisters=i386";
        c.send(cmd.as_bytes())?;
        let features = loop {
            let reply = c.read_packet(c.timeout)?;
            // QEMU's unsolicited stop reply on connect can arrive before the answer.
            match StopReply::parse(&reply) {
                Ok(stop) => c.initial_stop = Some(stop),
                Err(_) => break reply,
            }
        };
        let features = String::from_utf8_lossy(&features).into_owned();
        for f in features.split(';') {
            if let Some(size) = f.strip_prefix("PacketSize=") {
                let size = packet::parse_hex_u64(size.as_bytes()).unwrap_or(0) as usize;
                c.chunk = MAX_CHUNK.min(size.saturating_sub(64) / 2).max(16);
            }
        }
        if features.split(';').any(|f| f == "qXfer:features:read+") {
            let root = c.read_feature("target.xml")?;
            let mut fetch = |annex: &str| c.read_feature(annex);
            let target = TargetDescription::load(&root, &mut fetch)?;
            c.target = target;
        }
        Ok(c)
    }

    /// The stop reply received on connect, if any.
    pub fn initial_stop(&self) -> Option<&StopReply> {
        self.initial_stop.as_ref()
    }

    /// The registers the target describes.
    pub fn target(&self) -> &TargetDescription {
        &self.target
    }

    /// How long requests wait for an answer (default 5 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn read_feature(&mut self, annex: &str) -> Result<String, GdbError> {
        let mut doc = Vec::new();
        loop {
            let cmd = format!("qXfer:features:read:{annex}:{:x},{:x}", doc.len(), self.chunk);
            let reply = self.request(&cmd)?;
            let (&more, data) = reply.split_first().ok_or(GdbError::Unsupported(cmd.clone()))?;
            doc.extend_from_slice(data);
            match more {
                b'l' => break,
                b'm' if !data.is_empty() && doc.len() < (1 << 20) => {}
                _ => return Err(malformed(&cmd, &reply)),
            }
        }
        String::from_utf8(doc).map_err(|e| GdbError::Malformed {
            command: format!("qXfer:features:read:{annex}"),
            source: PacketError::Unexpected(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        })
    }

    // ---- packet exchange --------------------------------------------------------------

    fn fill(&mut self, deadline: Instant, timeout: Duration) -> Result<(), GdbError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(GdbError::Timeout(timeout));
        }
        self.io.set_read_timeout(Some(left)).map_err(GdbError::Io)?;
        let mut buf = [0u8; 8192];
        match self.io.read(&mut buf) {
            Ok(0) => Err(GdbError::Closed),
            Ok(n) => {
                self.rbuf.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(GdbError::Timeout(timeout))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(GdbError::Io(e)),
        }
    }

    /// The next ack, nak or checked packet (acked here; a corrupt one is nak'ed and skipped).
    fn next_event(&mut self, timeout: Duration) -> Result<Event, GdbError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Drop noise before a frame start.
            let start = self.rbuf.iter().position(|&c| matches!(c, b'+' | b'-' | b'$'));
            match start {
                None => self.rbuf.clear(),
                Some(i) => {
                    self.rbuf.drain(..i);
                    match self.rbuf[0] {
                        b'+' => {
                            self.rbuf.remove(0);
                            return Ok(Event::Ack);
                        }
                        b'-' => {
                            self.rbuf.remove(0);
                            return Ok(Event::Nak);
                        }
                        _ => {
                            if let Some(hash) = self.rbuf.iter().position(|&c| c == b'#') {
                                if self.rbuf.len() >= hash + 3 {
                                    let frame: Vec<u8> = self.rbuf.drain(..hash + 3).collect();
                                    let body = &frame[1..hash];
                                    let cs = packet::parse_checksum([frame[hash + 1], frame[hash + 2]]);
                                    if cs == Some(packet::checksum(body)) {
                                        self.io.write_all(b"+").map_err(GdbError::Io)?;
                                        let data = packet::decode(body).map_err(|source| GdbError::Malformed {
                                            command: "(received packet)".into(),
                                            source,
                                        })?;
                                        return Ok(Event::Packet(data));
                                    }
                                    tracing::debug!("gdb: bad checksum, asking for retransmission");
                                    self.io.write_all(b"-").map_err(GdbError::Io)?;
                                    continue;
                                }
                            }
                        }
                    }
                }
            }
            self.fill(deadline, timeout)?;
        }
    }

    fn read_packet(&mut self, timeout: Duration) -> Result<Vec<u8>, GdbError> {
        if let Some(p) = self.queued.pop_front() {
            return Ok(p);
        }
        loop {
            match self.next_event(timeout)? {
                Event::Packet(p) => return Ok(p),
                // A late ack or nak for something already settled.
                Event::Ack | Event::Nak => {}
            }
        }
    }

    /// Sends `payload` and waits for its ack, retransmitting on nak.
    fn send(&mut self, payload: &[u8]) -> Result<(), GdbError> {
        let frame = packet::encode(payload);
        for _ in 0..RETRIES {
            self.io.write_all(&frame).map_err(GdbError::Io)?;
            loop {
                match self.next_event(self.timeout)? {
                    Event::Ack => return Ok(()),
                    Event::Nak => break,
                    // A packet before the ack (e.g. an unsolicited stop reply): keep it.
                    Event::Packet(p) => self.queued.push_back(p),
                }
            }
        }
        Err(GdbError::Rejected(String::from_utf8_lossy(payload).into_owned()))
    }

    /// Sends `cmd` and returns the reply; `Exx` becomes [`GdbError::Remote`].
    pub fn request(&mut self, cmd: &str) -> Result<Vec<u8>, GdbError> {
        self.request_bytes(cmd, cmd.as_bytes())
    }

    fn request_bytes(&mut self, cmd: &str, payload: &[u8]) -> Result<Vec<u8>, GdbError> {
        self.send(payload)?;
        let reply = self.read_packet(self.timeout)?;
        if reply.len() == 3 && reply[0] == b'E' {
            if let Ok(code) = packet::parse_hex_u64(&reply[1..]) {
                return Err(GdbError::Remote { command: cmd.to_owned(), code: code as u8 });
            }
        }
        Ok(reply)
    }

    fn expect_ok(&mut self, cmd: &str) -> Result<(), GdbError> {
        let reply = self.request(cmd)?;
        match &reply[..] {
            b"OK" => Ok(()),
            b"" => Err(GdbError::Unsupported(cmd.to_owned())),
            _ => Err(malformed(cmd, &reply)),
        }
    }

    // ---- registers -------------------------------------------------------------------

    fn register_info(&self, name: &str) -> Result<RegisterInfo, GdbError> {
        let r = self.target.register(name).ok_or_else(|| GdbError::UnknownRegister(name.into()))?;
        if r.bitsize > 64 {
            return Err(GdbError::WideRegister(name.into()));
        }
        Ok(r.clone())
    }

    /// Reads register `name` of the current thread.
    pub fn read_register(&mut self, name: &str) -> Result<u64, GdbError> {
        let r = self.register_info(name)?;
        self.read_regnum(&r)
    }

    fn read_regnum(&mut self, r: &RegisterInfo) -> Result<u64, GdbError> {
        let cmd = format!("p{:x}", r.regnum);
        let reply = self.request(&cmd)?;
        if reply.is_empty() {
            return Err(GdbError::Unsupported(cmd));
        }
        let bytes = packet::unhex(&reply).map_err(|source| GdbError::Malformed { command: cmd.clone(), source })?;
        if bytes.len() * 8 != r.bitsize as usize {
            return Err(malformed(&cmd, &reply));
        }
        le_u64(&bytes).ok_or_else(|| malformed(&cmd, &reply))
    }

    /// Writes register `name` of the current thread.
    pub fn write_register(&mut self, name: &str, value: u64) -> Result<(), GdbError> {
        let r = self.register_info(name)?;
        let bytes = value.to_le_bytes();
        let width = (r.bitsize as usize).div_ceil(8);
        self.expect_ok(&format!("P{:x}={}", r.regnum, packet::hex(&bytes[..width])))
    }

    /// Every register of at most 64 bits the target describes — general registers, rip,
    /// eflags, segments, and on QEMU x86-64 fs_base, gs_base, k_gs_base, cr0/2/3/4/8, efer —
    /// in target-description order. One `g` packet covers the registers numbered 0, 1, 2, ...
    /// up to the first gap (on QEMU x86-64: all of them); the rest are read with `p`.
    pub fn read_registers(&mut self) -> Result<Registers, GdbError> {
        let reply = self.request("g")?;
        if reply.is_empty() {
            return Err(GdbError::Unsupported("g".into()));
        }
        let bytes = packet::unhex(&reply).map_err(|source| GdbError::Malformed { command: "g".into(), source })?;
        let mut by_number: Vec<&RegisterInfo> = self.target.registers.iter().collect();
        by_number.sort_by_key(|r| r.regnum);
        let mut in_g = std::collections::HashMap::new();
        let mut offset = 0usize;
        for (expected, r) in (0u32..).zip(&by_number) {
            let n = r.bitsize as usize / 8;
            if r.regnum != expected || r.bitsize % 8 != 0 || offset + n > bytes.len() {
                break;
            }
            if let Some(v) = le_u64(&bytes[offset..offset + n]) {
                in_g.insert(r.regnum, v);
            }
            offset += n;
        }
        let regs: Vec<RegisterInfo> = self.target.registers.iter().filter(|r| r.bitsize <= 64).cloned().collect();
        let mut out = Vec::with_capacity(regs.len());
        for r in regs {
            let v = match in_g.get(&r.regnum) {
                Some(&v) => v,
                None => self.read_regnum(&r)?,
            };
            out.push((r.name, v));
        }
        Ok(Registers(out))
    }

    // ---- memory ----------------------------------------------------------------------

    /// Reads `len` bytes of guest virtual memory (through the current vCPU's page tables).
    pub fn read_memory(&mut self, addr: Gva, len: usize) -> Result<Vec<u8>, GdbError> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = (len - out.len()).min(self.chunk);
            let at = addr.0.wrapping_add(out.len() as u64);
            let cmd = format!("m{at:x},{n:x}");
            let reply = self.request(&cmd)?;
            let bytes = packet::unhex(&reply).map_err(|source| GdbError::Malformed { command: cmd.clone(), source })?;
            if bytes.is_empty() || bytes.len() > n {
                return Err(malformed(&cmd, &reply));
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Writes guest virtual memory (code patches go this way: TCG then drops stale
    /// translations).
    pub fn write_memory(&mut self, addr: Gva, data: &[u8]) -> Result<(), GdbError> {
        for (i, chunk) in data.chunks(self.chunk).enumerate() {
            let at = addr.0.wrapping_add((i * self.chunk) as u64);
            self.expect_ok(&format!("M{at:x},{:x}:{}", chunk.len(), packet::hex(chunk)))?;
        }
        Ok(())
    }

    // ---- breakpoints and run control ----------------------------------------------------

    /// Inserts a breakpoint or watchpoint at `addr`; `len` is the watched length (use 1 for
    /// x86 breakpoints).
    pub fn insert_breakpoint(&mut self, kind: Breakpoint, addr: Gva, len: u64) -> Result<(), GdbError> {
        self.expect_ok(&format!("Z{},{:x},{len:x}", kind.code(), addr.0))
    }

    /// Removes what [`GdbClient::insert_breakpoint`] inserted.
    pub fn remove_breakpoint(&mut self, kind: Breakpoint, addr: Gva, len: u64) -> Result<(), GdbError> {
        self.expect_ok(&format!("z{},{:x},{len:x}", kind.code(), addr.0))
    }

    /// The threads (vCPUs) of the target.
    pub fn threads(&mut self) -> Result<Vec<ThreadId>, GdbError> {
        let mut out = Vec::new();
        let mut cmd = "qfThreadInfo";
        loop {
            let reply = self.request(cmd)?;
            match reply.split_first() {
                Some((b'l', _)) => return Ok(out),
                Some((b'm', ids)) if out.len() < 4096 => {
                    for id in ids.split(|&c| c == b',') {
                        out.push(
                            ThreadId::parse(id)
                                .map_err(|source| GdbError::Malformed { command: cmd.into(), source })?,
                        );
                    }
                }
                _ => return Err(malformed(cmd, &reply)),
            }
            cmd = "qsThreadInfo";
        }
    }

    /// Selects the thread that register and memory requests apply to (`Hg`).
    pub fn set_thread(&mut self, thread: ThreadId) -> Result<(), GdbError> {
        self.expect_ok(&format!("Hg{thread}"))
    }

    /// Resumes the target; a later [`GdbClient::wait_stop`] collects the stop.
    pub fn cont(&mut self) -> Result<(), GdbError> {
        self.send(b"c")
    }

    /// Single-steps the current thread and returns its stop reply.
    pub fn step(&mut self) -> Result<StopReply, GdbError> {
        self.send(b"s")?;
        self.wait_stop(self.timeout)
    }

    /// Waits up to `timeout` for the target to stop.
    pub fn wait_stop(&mut self, timeout: Duration) -> Result<StopReply, GdbError> {
        let reply = self.read_packet(timeout)?;
        StopReply::parse(&reply).map_err(|source| GdbError::Malformed { command: "stop".into(), source })
    }

    /// Asks a running target to stop (a raw 0x03); collect the stop with `wait_stop`.
    pub fn interrupt(&mut self) -> Result<(), GdbError> {
        self.io.write_all(&[0x03]).map_err(GdbError::Io)
    }

    /// Detaches: the stub removes breakpoints and lets the target run.
    pub fn detach(mut self) -> Result<(), GdbError> {
        self.expect_ok("D")
    }
}

fn malformed(cmd: &str, reply: &[u8]) -> GdbError {
    GdbError::Malformed {
        command: cmd.to_owned(),
        source: PacketError::Unexpected(String::from_utf8_lossy(reply).into_owned()),
    }
}
