//! vCPU control through QEMU's gdb stub (the gdb remote serial protocol).
//!
//! ```text
//!   GdbClient ── registers by name ──► target (target.xml + xi:include annexes)
//!       │     ── stop replies ───────► stop (S/T/W/X, thread ids)
//!       └───── packets ─────────────► packet ($..#cs, acks, escapes, RLE) ─► Transport
//! ```
//!
//! QEMU's stub, as found: connecting stops the guest and sends an unsolicited `T02` stop
//! reply; `QStartNoAckMode` is not supported, so every packet is acked; `p`/`P` answer empty
//! until `target.xml` has been read; closing the socket without `D` or `c` leaves the guest
//! paused.

mod client;
pub mod packet;
pub mod stop;
pub mod target;

pub use client::{Breakpoint, GdbClient, GdbError, Registers, Transport};
pub use stop::{StopReason, StopReply, ThreadId, WatchKind};
pub use target::{RegisterInfo, TargetDescription, XmlError};

#[cfg(test)]
mod tests;
