//! `kallsyms_num_syms`, `kallsyms_names`, `kallsyms_markers` and `kallsyms_seqs_of_names`,
//! found backwards from a verified token table.
//!
//! Before the token table sit the markers (one per 256 names: the offset of that name in the
//! names stream; both `unsigned long` and `u32` widths are tried), in 6.2 to 6.3 (and Debian's
//! 6.1 backport) followed by `kallsyms_seqs_of_names` (3-byte big-endian symbol indexes in name
//! order) before the token table. Before the markers: the names stream, and before it
//! `kallsyms_num_syms`. Every table starts 8-byte aligned.

use super::error::Reject;
use super::scan::TokenTable;
use super::window::{align8, Window};
use crate::PhysMemory;

/// Most symbols accepted (`kallsyms_seqs_of_names` entries are 3 bytes: < 2^24).
pub(crate) const MAX_SYMS: u64 = 1 << 21;
/// Longest compressed name accepted (KSYM_NAME_LEN is 512 since 6.1).
const MAX_NAME: u64 = 512;

/// The decoded names tables of one candidate.
#[derive(Debug)]
pub(crate) struct Names {
    /// Address of `kallsyms_names` (`kallsyms_num_syms` is 8 bytes before it).
    pub start: u64,
    /// Address of `kallsyms_markers`.
    pub markers: u64,
    /// Width of one marker in bytes.
    pub marker_width: u8,
    /// Address of `kallsyms_seqs_of_names` if it sits between markers and token table.
    pub seqs: Option<u64>,
    /// (type, name) per symbol, in table order.
    pub symbols: Vec<(u8, String)>,
}

/// A plausible markers array: where it starts, its width and its values.
#[derive(Debug)]
struct MarkerCandidate {
    start: u64,
    width: u8,
    values: Vec<u64>,
    seqs: Option<(u64, u64)>,
}

/// Finds and decodes the names tables that end at `tt`'s token table.
pub(crate) fn find(mem: &impl PhysMemory, win: &mut Window, tt: &TokenTable) -> Result<Names, Reject> {
    let back = 3 * MAX_SYMS + 8 * MAX_SYMS / 256 + 64;
    win.cover(mem, tt.table.saturating_sub(back), tt.index).map_err(Reject::Memory)?;
    let mut first_err = None;
    for cand in marker_candidates(win, tt.table) {
        match names_for(mem, win, tt, &cand) {
            Ok(names) => return Ok(names),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(Reject::NoMarkers))
}

/// Markers arrays ending right before `table`, or before a seqs table that ends there.
fn marker_candidates(win: &Window, table: u64) -> Vec<MarkerCandidate> {
    let mut out = Vec::new();
    // Markers directly before the token table.
    for width in [8u8, 4] {
        let ends: &[u64] = if width == 8 { &[0] } else { &[0, 4] };
        for &back in ends {
            if let Some(c) = walk_back(win, table.saturating_sub(back), width) {
                out.push(c);
            }
        }
    }
    // Markers, then seqs of 3 * num_syms bytes, then the token table.
    let lowest = table.saturating_sub(3 * MAX_SYMS + 8).max(win.start());
    let mut s = table.saturating_sub(8);
    while s >= lowest && s > 0 {
        let gap = table - s;
        // align8(s + 3n) == table  <=>  3n in (gap - 8, gap]
        for n in (gap.saturating_sub(7)).div_ceil(3)..=gap / 3 {
            if n == 0 {
                continue;
            }
            // Seqs entries are symbol indexes: the first and last must be below n.
            let below_n = |at: u64| {
                win.slice(at, 3).is_some_and(|b| (u64::from(b[0]) << 16 | u64::from(b[1]) << 8 | u64::from(b[2])) < n)
            };
            if !below_n(s) || !below_n(s + 3 * (n - 1)) {
                continue;
            }
            let count = n.div_ceil(256);
            for width in [8u8, 4] {
                let Some(len) = align8(count * u64::from(width)) else { continue };
                let Some(start) = s.checked_sub(len) else { continue };
                if let Some(values) = read_markers(win, start, width, count) {
                    out.push(MarkerCandidate { start, width, values, seqs: Some((s, n)) });
                }
            }
        }
        s -= 8;
    }
    out
}

/// A markers array ending at `end`, found by walking back to its leading 0.
fn walk_back(win: &Window, end: u64, width: u8) -> Option<MarkerCandidate> {
    let w = u64::from(width);
    let mut at = end.checked_sub(w)?;
    let mut values = Vec::new();
    let mut above = u64::MAX;
    loop {
        let v = read_width(win, at, width)?;
        if v >= above || values.len() as u64 > MAX_SYMS / 256 {
            return None;
        }
        values.push(v);
        if v == 0 {
            break;
        }
        above = v;
        at = at.checked_sub(w)?;
    }
    if at & 7 != 0 {
        return None;
    }
    values.reverse();
    Some(MarkerCandidate { start: at, width, values, seqs: None })
}

fn read_width(win: &Window, at: u64, width: u8) -> Option<u64> {
    if width == 8 {
        win.u64(at)
    } else {
        win.u32(at).map(u64::from)
    }
}

/// `count` markers at `start` if they start at 0 and strictly increase.
fn read_markers(win: &Window, start: u64, width: u8, count: u64) -> Option<Vec<u64>> {
    if read_width(win, start, width)? != 0 {
        return None;
    }
    let mut values = Vec::with_capacity(usize::try_from(count).ok()?);
    for i in 0..count {
        let v = read_width(win, start + i * u64::from(width), width)?;
        if values.last().is_some_and(|&prev| v <= prev) {
            return None;
        }
        values.push(v);
    }
    Some(values)
}

/// Finds `kallsyms_num_syms` + `kallsyms_names` ending right before the markers `cand`.
fn names_for(
    mem: &impl PhysMemory,
    win: &mut Window,
    tt: &TokenTable,
    cand: &MarkerCandidate,
) -> Result<Names, Reject> {
    let count = cand.values.len() as u64;
    let last = *cand.values.last().ok_or(Reject::NoMarkers)?;
    let syms_range = match cand.seqs {
        Some((_, n)) => n..=n,
        None => (256 * (count - 1) + 1)..=(256 * count),
    };
    // The last group holds 1..=256 names of 2..=MAX_NAME+2 bytes each.
    let rem_max = (*syms_range.end() - 256 * (count - 1)).min(256);
    let names_end_max = cand.start;
    let lo = cand.start.saturating_sub(last + rem_max * (MAX_NAME + 2) + 16);
    let hi = cand.start.saturating_sub(last + 2);
    win.cover(mem, lo.saturating_sub(8), tt.index).map_err(Reject::Memory)?;
    let mut x = hi & !7;
    while x >= lo && x >= 8 {
        let n = win.u32(x - 8).map(u64::from);
        let pad = win.u32(x - 4);
        if let (Some(n), Some(0)) = (n, pad) {
            if syms_range.contains(&n)
                && walk(win, x, n)
                    .is_some_and(|end| align8(end) == Some(names_end_max) && padding_zero(win, end, names_end_max))
            {
                let symbols = decode(win, x, n, &tt.tokens, &cand.values)?;
                let seqs = cand.seqs.map(|(s, _)| s);
                if let Some(s) = seqs {
                    check_seqs(win, s, &symbols)?;
                }
                return Ok(Names { start: x, markers: cand.start, marker_width: cand.width, seqs, symbols });
            }
        }
        x -= 8;
    }
    Err(Reject::NoNames)
}

fn padding_zero(win: &Window, from: u64, to: u64) -> bool {
    win.slice(from, to.saturating_sub(from)).is_some_and(|b| b.iter().all(|&v| v == 0))
}

/// One name's header: (length of the compressed name, header bytes). A first byte with the high
/// bit set starts a 2-byte ULEB128 length ("big" symbols, 6.1+).
fn name_len(win: &Window, at: u64) -> Option<(u64, u64)> {
    let b0 = win.u8(at)?;
    if b0 & 0x80 == 0 {
        return Some((u64::from(b0), 1));
    }
    let b1 = win.u8(at + 1)?;
    Some((u64::from(b0 & 0x7f) | (u64::from(b1) << 7), 2))
}

/// Walks `n` names from `start` without expanding them; the end of the stream.
fn walk(win: &Window, start: u64, n: u64) -> Option<u64> {
    let mut at = start;
    for _ in 0..n {
        let (len, hdr) = name_len(win, at)?;
        if len == 0 || len > MAX_NAME {
            return None;
        }
        at = at.checked_add(hdr + len)?;
        if at > win.end() {
            return None;
        }
    }
    Some(at)
}

/// Expands every name and checks every marker.
fn decode(win: &Window, start: u64, n: u64, tokens: &[Vec<u8>], markers: &[u64]) -> Result<Vec<(u8, String)>, Reject> {
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut at = start;
    let mut buf = Vec::with_capacity(64);
    for i in 0..usize::try_from(n).unwrap_or(0) {
        let offset = at - start;
        if i % 256 == 0 {
            let found = markers.get(i / 256).copied().unwrap_or(u64::MAX);
            if found != offset {
                return Err(Reject::MarkerMismatch { index: i / 256, found, expected: offset });
            }
        }
        let bad = || Reject::BadName { index: i, offset };
        let (len, hdr) = name_len(win, at).ok_or_else(bad)?;
        let data = win.slice(at + hdr, len).ok_or_else(bad)?;
        buf.clear();
        for &code in data {
            buf.extend_from_slice(tokens.get(usize::from(code)).ok_or_else(bad)?);
        }
        let (&kind, name) = buf.split_first().ok_or_else(bad)?;
        if !(kind.is_ascii_alphabetic() || kind == b'?') || name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
            return Err(bad());
        }
        out.push((kind, name.iter().map(|&b| char::from(b)).collect()));
        at += hdr + len;
    }
    Ok(out)
}

/// `kallsyms_seqs_of_names` must list every symbol once, in name order.
fn check_seqs(win: &Window, start: u64, symbols: &[(u8, String)]) -> Result<(), Reject> {
    let mut seen = vec![false; symbols.len()];
    let mut prev: Option<&str> = None;
    for (i, slot) in (0..symbols.len()).zip(0u64..) {
        let bad = Reject::BadSeqs { index: i };
        let b = win.slice(start + 3 * slot, 3).ok_or(Reject::BadSeqs { index: i })?;
        let seq = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
        let Some(flag) = seen.get_mut(seq) else { return Err(bad) };
        if std::mem::replace(flag, true) {
            return Err(bad);
        }
        let name = symbols[seq].1.as_str();
        if prev.is_some_and(|p| p > name) {
            return Err(bad);
        }
        prev = Some(name);
    }
    Ok(())
}
