//! The baseline the injected monitor is measured against: classic breakpoint-based
//! introspection, where the host traps every call of a handler with a gdb software breakpoint
//! (one VM exit and a host round trip per event).

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use palisade_vmi::gdb::{Breakpoint, GdbClient, GdbError};
use palisade_vmi::Gva;

/// Wall time per trapped call of `handler` over `hits` hits: each hit is taken, the breakpoint
/// removed, the instruction stepped over, the breakpoint put back and the guest resumed, as a
/// breakpoint-based monitor must. The guest must keep calling `handler` meanwhile; the
/// breakpoint is removed and the stub detached at the end.
pub fn breakpoint_cost(mut gdb: GdbClient<UnixStream>, handler: u64, hits: u32) -> Result<Duration, GdbError> {
    let bp = Gva(handler);
    gdb.insert_breakpoint(Breakpoint::Software, bp, 1)?;
    let t = Instant::now();
    for _ in 0..hits {
        gdb.cont()?;
        gdb.wait_stop(Duration::from_secs(30))?;
        gdb.remove_breakpoint(Breakpoint::Software, bp, 1)?;
        gdb.step()?;
        gdb.insert_breakpoint(Breakpoint::Software, bp, 1)?;
    }
    let per_hit = t.elapsed() / hits.max(1);
    gdb.remove_breakpoint(Breakpoint::Software, bp, 1)?;
    gdb.detach()?;
    Ok(per_hit)
}
