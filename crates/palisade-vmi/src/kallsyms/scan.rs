//! Finding `kallsyms_token_table` + `kallsyms_token_index` pairs in guest RAM.
//!
//! `kallsyms_token_index` is 256 `u16` offsets into the token table, 8-byte aligned, starting
//! at 0 and strictly increasing (each token is at least its NUL). The token table is 256
//! NUL-terminated printable tokens ending right before the index (then `.balign 8`). Guest RAM
//! is read in `CHUNK`s and every 8-byte-aligned position is tested with a cheap prefix check
//! first; the few survivors are checked byte for byte against their token table.

use super::window::{align8, Window, CHUNK};
use crate::{Gpa, MemoryError, PhysMemory};

/// Size of `kallsyms_token_index`.
pub(crate) const INDEX_LEN: u64 = 512;

/// A verified token table / token index pair.
#[derive(Debug, Clone)]
pub(crate) struct TokenTable {
    /// Address of `kallsyms_token_table`.
    pub table: u64,
    /// Address of `kallsyms_token_index`.
    pub index: u64,
    /// The 256 tokens.
    pub tokens: Vec<Vec<u8>>,
    /// The RAM region holding both.
    pub region: (Gpa, u64),
}

/// Every token table / index pair in guest RAM, and the bytes scanned.
pub(crate) fn find_token_tables(mem: &impl PhysMemory) -> Result<(Vec<TokenTable>, u64), MemoryError> {
    let mut found = Vec::new();
    let mut scanned = 0u64;
    let mut buf = vec![0u8; CHUNK + INDEX_LEN as usize];
    for region in mem.regions() {
        let (start, len) = (region.0 .0, region.1);
        let mut off = 0u64;
        while off < len {
            let n = usize::try_from((len - off).min(buf.len() as u64)).unwrap_or(buf.len());
            let at = start + off;
            mem.read(Gpa(at), &mut buf[..n])?;
            let first = usize::try_from(align8(at).unwrap_or(at) - at).unwrap_or(0);
            let last = n.saturating_sub(INDEX_LEN as usize).min(CHUNK - 1);
            let mut p = first;
            while p <= last {
                // Cheapest reject first (this loop sees every 8 bytes of RAM): offset 0 must be
                // 0 and offset 1 must not be.
                let b = &buf[p..p + 4];
                if b[0] | b[1] == 0 && b[2] | b[3] != 0 {
                    if let Some(idx) = index_at(&buf[p..n]) {
                        if let Some(t) = verify(mem, region, at + p as u64, &idx)? {
                            found.push(t);
                        }
                    }
                }
                p += 8;
            }
            off += CHUNK as u64;
        }
        scanned += len;
    }
    Ok((found, scanned))
}

/// The 256 offsets if `bytes` starts with something shaped like `kallsyms_token_index`.
fn index_at(bytes: &[u8]) -> Option<[u16; 256]> {
    let head = bytes.get(..8)?;
    // Fast reject: offset 0 == 0, then three strictly increasing offsets, the first small.
    let w = u64::from_le_bytes(head.try_into().ok()?);
    let (i0, i1, i2, i3) = (w as u16, (w >> 16) as u16, (w >> 32) as u16, (w >> 48) as u16);
    if i0 != 0 || i1 == 0 || i1 > 256 || i2 <= i1 || i3 <= i2 {
        return None;
    }
    let mut idx = [0u16; 256];
    let raw = bytes.get(..INDEX_LEN as usize)?;
    for (slot, pair) in idx.iter_mut().zip(raw.chunks_exact(2)) {
        *slot = u16::from_le_bytes([pair[0], pair[1]]);
    }
    // Every token is at most 255 characters plus its NUL.
    idx.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 256).then_some(idx)
}

/// The token table ending right before the index at `index`, if the offsets match its tokens.
fn verify(
    mem: &impl PhysMemory,
    region: (Gpa, u64),
    index: u64,
    idx: &[u16; 256],
) -> Result<Option<TokenTable>, MemoryError> {
    let last_start = u64::from(idx[255]);
    // The table is last_start + (last token + NUL) bytes, then padded to 8.
    let mut win = Window::new(index, region);
    win.cover(mem, index.saturating_sub(last_start + 256 + 8), index)?;
    // 8-aligned starts T with T + last_start + 1 <= index - 1 ... try each in range.
    let lo = index.saturating_sub(last_start + 256 + 8);
    let hi = index.saturating_sub(last_start + 1);
    let mut t = align8(lo).unwrap_or(lo);
    while t <= hi {
        if let Some(tokens) = tokens_at(&win, t, idx, index) {
            return Ok(Some(TokenTable { table: t, index, tokens, region }));
        }
        t += 8;
    }
    Ok(None)
}

/// The 256 tokens if a table at `t` matches `idx` exactly and ends (padded to 8) at `index`.
fn tokens_at(win: &Window, t: u64, idx: &[u16; 256], index: u64) -> Option<Vec<Vec<u8>>> {
    let mut tokens = Vec::with_capacity(256);
    for i in 0..256 {
        let start = t + u64::from(idx[i]);
        let bytes = if i < 255 {
            let end = t + u64::from(idx[i + 1]) - 1; // its NUL
            let tok = win.slice(start, end - start)?;
            (win.u8(end)? == 0).then_some(tok)?
        } else {
            let rest = win.slice(start, index.checked_sub(start)?)?;
            let nul = rest.iter().position(|&b| b == 0)?;
            let end = start + nul as u64 + 1;
            if align8(end)? != index || rest[nul..].iter().any(|&b| b != 0) {
                return None;
            }
            &rest[..nul]
        };
        if !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        tokens.push(bytes.to_vec());
    }
    Some(tokens)
}
