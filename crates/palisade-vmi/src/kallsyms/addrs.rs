//! The address table (`kallsyms_offsets` + `kallsyms_relative_base`, or `kallsyms_addresses`)
//! and the physical base of the kernel image.
//!
//! Up to 6.3 the address table comes first, right before `kallsyms_num_syms`; from 6.4 it
//! follows `kallsyms_token_index`. Both places are tried; exactly one must validate.

use super::error::Reject;
use super::names::Names;
use super::scan::{TokenTable, INDEX_LEN};
use super::window::{align8, Window};
use super::AddressLayout;
use crate::{Gpa, PhysMemory};

/// Lowest canonical kernel-half address.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
/// x86-64 `__START_KERNEL_map`: kernel image VA = this + (PA - phys_base).
pub(crate) const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// x86-64 `CONFIG_PHYSICAL_ALIGN` is a multiple of 2 MiB.
const PHYS_ALIGN: u64 = 2 << 20;

/// Decoded addresses and how they were stored.
#[derive(Debug)]
pub(crate) struct Addresses {
    pub values: Vec<u64>,
    pub layout: AddressLayout,
    /// Where the address table starts.
    pub table: u64,
}

/// Finds the address table of `n` symbols next to `names`/`tt` and decodes it.
pub(crate) fn find(
    mem: &impl PhysMemory,
    win: &mut Window,
    tt: &TokenTable,
    names: &Names,
) -> Result<Addresses, Reject> {
    let n = names.symbols.len() as u64;
    let after = tt.index + INDEX_LEN;
    let before = names.start.saturating_sub(16 + align8(8 * n).ok_or(Reject::NoAddresses)?);
    win.cover(mem, before, after + align8(8 * n).unwrap_or(0) + 8).map_err(Reject::Memory)?;
    let rel_old = names.start.checked_sub(16).and_then(|rb| {
        let off = rb.checked_sub(align8(4 * n)?)?;
        Some((off, rb))
    });
    let rel_new = align8(after + 4 * n).map(|rb| (after, rb));
    let tries: [(&'static str, Option<Addresses>); 4] = [
        ("kallsyms_offsets before kallsyms_num_syms", rel_old.and_then(|(o, rb)| relative(win, o, rb, n))),
        ("kallsyms_offsets after kallsyms_token_index", rel_new.and_then(|(o, rb)| relative(win, o, rb, n))),
        (
            "kallsyms_addresses before kallsyms_num_syms",
            names.start.checked_sub(8 + 8 * n).and_then(|a| absolute(win, a, n)),
        ),
        ("kallsyms_addresses after kallsyms_token_index", absolute(win, after, n)),
    ];
    let mut ok: Vec<(&'static str, Addresses)> = Vec::new();
    for (what, found) in tries {
        if let Some(a) = found {
            if plausible(&a, names) {
                ok.push((what, a));
            }
        }
    }
    match ok.len() {
        0 => Err(Reject::NoAddresses),
        1 => Ok(ok.remove(0).1),
        _ => Err(Reject::AmbiguousAddresses(ok[0].0, ok[1].0)),
    }
}

/// `kallsyms_offsets` at `at` and `kallsyms_relative_base` at `rb_at`, decoded as
/// `kallsyms_sym_address()` does.
fn relative(win: &Window, at: u64, rb_at: u64, n: u64) -> Option<Addresses> {
    let base = win.u64(rb_at)?;
    if base < KERNEL_HALF {
        return None;
    }
    let raw = win.slice(at, 4 * n)?;
    let offsets: Vec<i32> = raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    // Without absolute per-cpu symbols offsets are unsigned distances from the base and stay
    // below 2 GiB (a kernel image is far smaller); a negative one means the absolute-percpu
    // encoding: non-negative = absolute value, negative = base - 1 - offset.
    let absolute_percpu = offsets.iter().any(|&o| o < 0);
    let values: Vec<u64> = offsets
        .iter()
        .map(|&o| {
            if !absolute_percpu {
                base.wrapping_add(u64::from(o as u32))
            } else if o >= 0 {
                o as u64
            } else {
                base.wrapping_sub(1).wrapping_sub(i64::from(o) as u64)
            }
        })
        .collect();
    // The base is the first relatively encoded symbol's address.
    let first_rel = offsets.iter().position(|&o| !absolute_percpu || o < 0)?;
    if values[first_rel] != base {
        return None;
    }
    let layout = AddressLayout::Relative { relative_base: base, absolute_percpu };
    Some(Addresses { values, layout, table: at })
}

/// `kallsyms_addresses` (`unsigned long` each) at `at`.
fn absolute(win: &Window, at: u64, n: u64) -> Option<Addresses> {
    let raw = win.slice(at, 8 * n)?;
    let values =
        raw.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect();
    Some(Addresses { values, layout: AddressLayout::Absolute, table: at })
}

/// Sorted as scripts/kallsyms.c sorts them, with `_text` a kernel address.
fn plausible(a: &Addresses, names: &Names) -> bool {
    let sorted = a.values.windows(2).all(|w| w[0] <= w[1]);
    let text = names.symbols.iter().position(|(_, s)| s == "_text");
    sorted && text.and_then(|i| a.values.get(i)).is_some_and(|&v| v >= KERNEL_HALF)
}

/// How the physical base was tied to the virtual addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysAnchor {
    /// The checks that held at the chosen physical base (symbol names).
    pub checks: Vec<&'static str>,
}

/// The GPA of `_text`: the one 2 MiB-aligned placement of the image that contains the token
/// table and at which the image's own contents agree. Checks used, when the symbols exist:
/// `phys_base` holds `PA(_text) - (_text - __START_KERNEL_map)` (x86-64 `__pa_symbol`), and
/// `linux_banner` starts with "Linux version ".
pub(crate) fn phys_base(
    mem: &impl PhysMemory,
    tt: &TokenTable,
    lookup: &dyn Fn(&str) -> Option<u64>,
    text: u64,
) -> Result<(Gpa, PhysAnchor), Reject> {
    let end = lookup("_end").filter(|&e| e > text).unwrap_or(text + (1 << 30));
    let size = end - text;
    let region_start = tt.region.0 .0;
    let lowest = tt.table.saturating_sub(size - 1).max(region_start);
    let mut pb = lowest.div_ceil(PHYS_ALIGN) * PHYS_ALIGN;
    let mut hits = Vec::new();
    while pb <= tt.table {
        let mut checks = Vec::new();
        let mut all = true;
        if let Some(sym) = lookup("phys_base") {
            let want = pb.wrapping_sub(text.wrapping_sub(START_KERNEL_MAP));
            let got = read_at(mem, pb, sym.checked_sub(text), 8).map(|b| u64_le(&b));
            all &= got == Some(want);
            checks.push("phys_base");
        }
        if let Some(sym) = lookup("linux_banner") {
            let got = read_at(mem, pb, sym.checked_sub(text), 14);
            all &= got.as_deref() == Some(b"Linux version ".as_slice());
            checks.push("linux_banner");
        }
        if checks.is_empty() {
            return Err(Reject::NoPhysAnchor);
        }
        if all {
            hits.push((pb, checks));
        }
        pb += PHYS_ALIGN;
    }
    match hits.len() {
        0 => Err(Reject::NoPhysAnchor),
        1 => {
            let (pb, checks) = hits.remove(0);
            Ok((Gpa(pb), PhysAnchor { checks }))
        }
        placements => Err(Reject::PhysAmbiguous { placements }),
    }
}

fn read_at(mem: &impl PhysMemory, pb: u64, off: Option<u64>, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    mem.read(Gpa(pb.checked_add(off?)?), &mut buf).ok()?;
    Some(buf)
}

fn u64_le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x))
}
