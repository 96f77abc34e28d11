//! Stop replies (`S`, `T`, `W`, `X`) and thread ids, parsed without trusting the stub.

use std::fmt;

use super::packet::{parse_hex_u64, unhex, PacketError};
use crate::Gva;

/// A thread (for QEMU: a vCPU; thread `n` is vCPU `n - 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThreadId {
    /// The process, when the stub uses the multiprocess `pP.T` form.
    pub pid: Option<u64>,
    /// The thread.
    pub tid: u64,
}

impl ThreadId {
    /// Parses `T` or `pP.T` (hex).
    pub fn parse(text: &[u8]) -> Result<ThreadId, PacketError> {
        match text.strip_prefix(b"p") {
            Some(rest) => {
                let dot = rest.iter().position(|&c| c == b'.');
                let (p, t) = match dot {
                    Some(d) => (&rest[..d], &rest[d + 1..]),
                    None => (rest, &b"-1"[..]),
                };
                let tid = if t == b"-1" { u64::MAX } else { parse_hex_u64(t)? };
                Ok(ThreadId { pid: Some(parse_hex_u64(p)?), tid })
            }
            None => Ok(ThreadId { pid: None, tid: parse_hex_u64(text)? }),
        }
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(p) => write!(f, "p{p:x}.{:x}", self.tid),
            None => write!(f, "{:x}", self.tid),
        }
    }
}

/// Which accesses a watchpoint traps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    /// Writes (`Z2`).
    Write,
    /// Reads (`Z3`).
    Read,
    /// Reads and writes (`Z4`).
    Access,
}

/// Why a thread stopped, when the stub says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A watchpoint triggered on `addr`.
    Watch {
        /// Which kind.
        kind: WatchKind,
        /// The data address.
        addr: Gva,
    },
    /// A hardware breakpoint.
    HwBreak,
    /// A software breakpoint.
    SwBreak,
}

/// A parsed stop reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReply {
    /// The target stopped with `signal` (`S` or `T`).
    Stopped {
        /// The signal number (5 = SIGTRAP for breakpoints and steps, 2 = SIGINT).
        signal: u8,
        /// The thread that stopped, if named.
        thread: Option<ThreadId>,
        /// Why, if said.
        reason: Option<StopReason>,
        /// Register values sent with the reply: (number, target-order bytes).
        registers: Vec<(u32, Vec<u8>)>,
    },
    /// The process exited with `status` (`W`).
    Exited {
        /// Exit status.
        status: u8,
    },
    /// The process was killed by `signal` (`X`).
    Terminated {
        /// The signal.
        signal: u8,
    },
}

fn byte(text: &[u8]) -> Result<u8, PacketError> {
    let v = parse_hex_u64(text)?;
    u8::try_from(v).map_err(|_| PacketError::BadHex(String::from_utf8_lossy(text).into_owned()))
}

impl StopReply {
    /// Parses a stop reply; anything else is an error.
    pub fn parse(reply: &[u8]) -> Result<StopReply, PacketError> {
        let unexpected = || PacketError::Unexpected(String::from_utf8_lossy(reply).into_owned());
        let (&kind, rest) = reply.split_first().ok_or_else(unexpected)?;
        let head = rest.get(..2).ok_or_else(unexpected)?;
        let tail = &rest[2..];
        match kind {
            b'S' if tail.is_empty() => {
                Ok(StopReply::Stopped { signal: byte(head)?, thread: None, reason: None, registers: Vec::new() })
            }
            // `W`/`X` may carry `;process:pid`.
            b'W' if tail.is_empty() || tail.starts_with(b";") => Ok(StopReply::Exited { status: byte(head)? }),
            b'X' if tail.is_empty() || tail.starts_with(b";") => Ok(StopReply::Terminated { signal: byte(head)? }),
            b'T' => {
                let signal = byte(head)?;
                let (mut thread, mut reason, mut registers) = (None, None, Vec::new());
                for pair in tail.split(|&c| c == b';').filter(|p| !p.is_empty()) {
                    let colon = pair.iter().position(|&c| c == b':').ok_or_else(unexpected)?;
                    let (key, value) = (&pair[..colon], &pair[colon + 1..]);
                    let watch = |kind| -> Result<_, PacketError> {
                        Ok(Some(StopReason::Watch { kind, addr: Gva(parse_hex_u64(value)?) }))
                    };
                    match key {
                        b"thread" => thread = Some(ThreadId::parse(value)?),
                        b"watch" => reason = watch(WatchKind::Write)?,
                        b"rwatch" => reason = watch(WatchKind::Read)?,
                        b"awatch" => reason = watch(WatchKind::Access)?,
                        b"hwbreak" => reason = Some(StopReason::HwBreak),
                        b"swbreak" => reason = Some(StopReason::SwBreak),
                        k if k.iter().all(u8::is_ascii_hexdigit) => {
                            let n = u32::try_from(parse_hex_u64(k)?).map_err(|_| unexpected())?;
                            registers.push((n, unhex(value)?));
                        }
                        // Other keys (core, library, fork, ...) carry nothing we use.
                        _ => {}
                    }
                }
                Ok(StopReply::Stopped { signal, thread, reason, registers })
            }
            _ => Err(unexpected()),
        }
    }

    /// The stopped thread, if the reply names one.
    pub fn thread(&self) -> Option<ThreadId> {
        match self {
            StopReply::Stopped { thread, .. } => *thread,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_replies() {
        assert_eq!(
            StopReply::parse(b"T02thread:01;").unwrap(),
            StopReply::Stopped {
                signal: 2,
                thread: Some(ThreadId { pid: None, tid: 1 }),
                reason: None,
                registers: vec![]
            }
        );
        let r = StopReply::parse(b"T05thread:p1.2;watch:ffff888000001000;").unwrap();
        assert_eq!(r.thread(), Some(ThreadId { pid: Some(1), tid: 2 }));
        let StopReply::Stopped { reason, .. } = r else { panic!() };
        assert_eq!(reason, Some(StopReason::Watch { kind: WatchKind::Write, addr: Gva(0xffff_8880_0000_1000) }));
        let r = StopReply::parse(b"T05hwbreak:;10:0010000000000000;core:0;").unwrap();
        let StopReply::Stopped { reason, registers, .. } = r else { panic!() };
        assert_eq!(reason, Some(StopReason::HwBreak));
        assert_eq!(registers, vec![(16, vec![0, 0x10, 0, 0, 0, 0, 0, 0])]);
        assert_eq!(StopReply::parse(b"S05").unwrap().thread(), None);
        assert_eq!(StopReply::parse(b"W00").unwrap(), StopReply::Exited { status: 0 });
        assert_eq!(StopReply::parse(b"X09;process:1").unwrap(), StopReply::Terminated { signal: 9 });
    }

    #[test]
    fn rejects_malformed_replies() {
        for bad in [&b""[..], b"T", b"T0", b"Tzz", b"T05thread", b"T05thread:zz;", b"OK", b"S05x", b"T0510:0;"] {
            assert!(StopReply::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(ThreadId::parse(b"p1.-1").unwrap().tid, u64::MAX);
        assert_eq!(ThreadId { pid: Some(1), tid: 2 }.to_string(), "p1.2");
    }
}
