//! The kernel symbol table recovered from guest physical memory alone (no guest agent, no
//! vCPU state): finds the kernel under KASLR and decodes `/proc/kallsyms`'s core part.
//!
//! ```text
//!  scan all RAM (2 MiB reads) ─► token_index + token_table pairs (exact offset match)
//!        │ for each pair, backwards:
//!        ├─► markers (u64 or u32) [+ seqs_of_names]  ─► names (every name decodes,
//!        │     every 256th offset = its marker) ─► num_syms
//!        ├─► offsets + relative_base (before num_syms ≤ 6.3, after token_index ≥ 6.4)
//!        │     or kallsyms_addresses: sorted, `_text` present
//!        └─► physical base: the 2 MiB-aligned image placement holding the tables whose
//!              `phys_base` and `linux_banner` agree
//!  recover_all: every distinct valid kernel ─► KernelSymbols::runs_under(cr3, cr4): the one
//!        whose `_text` a vCPU's page tables map to its physical base (a stale boot's does not)
//! ```
//!
//! Table layout written by scripts/kallsyms.c on 64-bit (every table `.balign 8`): up to 6.3
//! `offsets|addresses, relative_base, num_syms, names, markers, [seqs_of_names],
//! token_table, token_index`; from 6.4 `num_syms, names, markers, token_table, token_index,
//! offsets, relative_base, seqs_of_names`. Each candidate must pass every check; a failure is a
//! typed [`Reject`] and recovery fails loudly rather than guess.

mod addrs;
mod error;
mod live;
mod names;
mod scan;
mod symbols;
mod window;

#[cfg(test)]
mod tests;

pub use addrs::PhysAnchor;
pub use error::{KallsymsError, Reject, Rejection};
pub use live::{NotRunning, TextWalk};
pub use symbols::{AddressLayout, KernelSymbols, Symbol, SymbolAddr, TableLayout, DEFAULT_TEXT};

use crate::{Gpa, Gva, PhysMemory};
use scan::TokenTable;
use window::Window;

/// Each candidate costs a few tens of milliseconds to validate; a real guest holds one or a few
/// (the live tables, perhaps copies of vmlinux in the page cache).
const MAX_CANDIDATES: usize = 64;

/// Symbols every x86-64 kernel's table holds.
const REQUIRED: [&str; 2] = ["_text", "_stext"];

/// Scans guest physical memory for the kallsyms tables, validates every candidate, and
/// returns the one complete table set with the kernel's virtual and physical base.
///
/// Several fully valid candidates are accepted only if they decode to the same symbols at the
/// same bases; otherwise [`KallsymsError::Ambiguous`]. RAM may hold a stale or planted kernel
/// image next to the live one: callers that can read vCPU registers use [`recover_all`] and
/// [`KernelSymbols::runs_under`] instead.
pub fn recover(mem: &impl PhysMemory) -> Result<KernelSymbols, KallsymsError> {
    let mut valid = recover_all(mem)?;
    if valid.len() > 1 {
        let token_tables = valid.iter().map(|k| k.layout.token_table).collect();
        return Err(KallsymsError::Ambiguous { token_tables });
    }
    Ok(valid.swap_remove(0))
}

/// Scans guest physical memory for the kallsyms tables, validates every candidate, and returns
/// every complete table set that passed, one per distinct kernel (same symbols at the same
/// bases count once: the first found), in physical address order of their token tables. Never
/// empty: no valid candidate is [`KallsymsError::NoValidCandidate`].
pub fn recover_all(mem: &impl PhysMemory) -> Result<Vec<KernelSymbols>, KallsymsError> {
    let (tables, scanned) = scan::find_token_tables(mem).map_err(KallsymsError::Memory)?;
    if tables.is_empty() {
        return Err(KallsymsError::NoTokenTable { scanned });
    }
    if tables.len() > MAX_CANDIDATES {
        return Err(KallsymsError::TooManyCandidates { found: tables.len(), limit: MAX_CANDIDATES });
    }
    tracing::debug!(candidates = tables.len(), scanned, "kallsyms token tables found");
    let mut valid: Vec<KernelSymbols> = Vec::new();
    let mut rejected = Vec::new();
    let mut copies = 0usize;
    for tt in &tables {
        match candidate(mem, tt) {
            Ok(ks) if valid.iter().any(|k| k.same_kernel(&ks)) => copies += 1,
            Ok(ks) => valid.push(ks),
            Err(reason) => {
                tracing::debug!(token_table = tt.table, %reason, "kallsyms candidate rejected");
                rejected.push(Rejection { token_table: Gpa(tt.table), reason });
            }
        }
    }
    if valid.is_empty() {
        return Err(KallsymsError::NoValidCandidate { rejected });
    }
    if copies > 0 {
        tracing::info!(copies, "identical kallsyms table sets found; using the first of each");
    }
    Ok(valid)
}

/// Validates and decodes the table set around one token table.
fn candidate(mem: &impl PhysMemory, tt: &TokenTable) -> Result<KernelSymbols, Reject> {
    let mut win = Window::new(tt.table, tt.region);
    let names = names::find(mem, &mut win, tt)?;
    let addrs = addrs::find(mem, &mut win, tt, &names)?;
    let symbols: Vec<Symbol> = names
        .symbols
        .iter()
        .zip(&addrs.values)
        .map(|((kind, name), &a)| Symbol { addr: SymbolAddr(a), kind: char::from(*kind), name: name.clone() })
        .collect();
    for req in REQUIRED {
        if !symbols.iter().any(|s| s.name == req) {
            return Err(Reject::MissingSymbol(req));
        }
    }
    let text = symbols.iter().find(|s| s.name == "_text").map(|s| s.addr.0).ok_or(Reject::MissingSymbol("_text"))?;
    let lookup = |n: &str| symbols.iter().find(|s| s.name == n).map(|s| s.addr.0);
    let (phys, anchor) = addrs::phys_base(mem, tt, &lookup, text)?;
    let layout = TableLayout {
        addresses: addrs.layout,
        address_table: Gpa(addrs.table),
        names: Gpa(names.start),
        markers: Gpa(names.markers),
        marker_width: names.marker_width,
        seqs_of_names: names.seqs.map(Gpa),
        token_table: Gpa(tt.table),
        token_index: Gpa(tt.index),
    };
    Ok(KernelSymbols::new(symbols, Gva(text), phys, layout, anchor))
}
