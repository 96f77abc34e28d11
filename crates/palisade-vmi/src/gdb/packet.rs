//! The gdb remote serial protocol's packet layer: `$payload#cs` framing with a modulo-256
//! checksum, `}` escapes (next byte xor 0x20) and `*` run-length encoding, plus the hex helpers
//! replies are written in. Every decoder here takes untrusted bytes and never panics.

/// Malformed packet contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The packet ends inside an escape sequence.
    #[error("packet ends inside an escape")]
    TruncatedEscape,
    /// A run-length marker has no byte to repeat, no count, or an invalid count.
    #[error("invalid run-length encoding at byte {0}")]
    BadRunLength(usize),
    /// A field that must be hexadecimal is not.
    #[error("`{0}` is not hexadecimal")]
    BadHex(String),
    /// The reply does not have the shape the request calls for.
    #[error("unexpected reply `{0}`")]
    Unexpected(String),
}

/// The modulo-256 sum of `data`.
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

/// Frames `payload` as `$...#cs`, escaping `$`, `#`, `}` and `*`.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + 4);
    for &b in payload {
        if matches!(b, b'$' | b'#' | b'}' | b'*') {
            body.push(b'}');
            body.push(b ^ 0x20);
        } else {
            body.push(b);
        }
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(b'$');
    out.extend_from_slice(&body);
    out.push(b'#');
    out.extend_from_slice(format!("{:02x}", checksum(&body)).as_bytes());
    out
}

/// Decodes the body of a received packet (between `$` and `#`): undoes escapes and expands
/// runs (`X*n` repeats `X` a further `n - 29` times).
pub fn decode(body: &[u8]) -> Result<Vec<u8>, PacketError> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'}' => {
                let b = body.get(i + 1).ok_or(PacketError::TruncatedEscape)?;
                out.push(b ^ 0x20);
                i += 2;
            }
            b'*' => {
                let last = *out.last().ok_or(PacketError::BadRunLength(i))?;
                let n = *body.get(i + 1).ok_or(PacketError::BadRunLength(i))?;
                // Counts are printable, and never `$` or `#`.
                if !(29..=126).contains(&n) || n == b'$' || n == b'#' {
                    return Err(PacketError::BadRunLength(i));
                }
                out.extend(std::iter::repeat_n(last, usize::from(n - 29)));
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Parses a two-digit hex checksum.
pub fn parse_checksum(cs: [u8; 2]) -> Option<u8> {
    Some(hex_digit(cs[0])? << 4 | hex_digit(cs[1])?)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Bytes from hex text.
pub fn unhex(text: &[u8]) -> Result<Vec<u8>, PacketError> {
    let bad = || PacketError::BadHex(String::from_utf8_lossy(text).into_owned());
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    text.chunks(2)
        .map(|p| {
            let (h, l) = hex_digit(p[0]).zip(hex_digit(p[1])).ok_or_else(bad)?;
            Ok(h << 4 | l)
        })
        .collect()
}

/// A big-endian hex number as the protocol writes addresses and counts (at most 64 bits).
pub fn parse_hex_u64(text: &[u8]) -> Result<u64, PacketError> {
    let bad = || PacketError::BadHex(String::from_utf8_lossy(text).into_owned());
    if text.is_empty() || text.len() > 16 {
        return Err(bad());
    }
    text.iter().try_fold(0u64, |a, &d| Some(a << 4 | u64::from(hex_digit(d)?))).ok_or_else(bad)
}

fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Little-endian register bytes as a `u64` (at most 8 bytes).
pub fn le_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 8 {
        return None;
    }
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_escapes_and_checksums() {
        assert_eq!(encode(b"g"), b"$g#67");
        assert_eq!(encode(b"a$b"), b"$a}\x04b#".iter().copied().chain(*b"44").collect::<Vec<_>>());
        assert_eq!(decode(&encode(b"#}*$")[1..9]).unwrap(), b"#}*$");
    }

    #[test]
    fn decode_expands_runs_after_escapes() {
        // "0* " = '0' plus 3 more; "}]*!" = '}' plus 4 more.
        assert_eq!(decode(b"0* ").unwrap(), b"0000");
        assert_eq!(decode(b"}]*!").unwrap(), b"}}}}}");
    }

    #[test]
    fn decode_rejects_bad_input_without_panicking() {
        assert_eq!(decode(b"ab}"), Err(PacketError::TruncatedEscape));
        assert_eq!(decode(b"*a"), Err(PacketError::BadRunLength(0)));
        assert_eq!(decode(b"a*"), Err(PacketError::BadRunLength(1)));
        assert_eq!(decode(b"a*\x01"), Err(PacketError::BadRunLength(1)));
        assert_eq!(decode(b"a*#"), Err(PacketError::BadRunLength(1)));
    }

    #[test]
    fn hex_helpers_are_strict() {
        assert_eq!(unhex(b"00ff").unwrap(), vec![0, 0xff]);
        assert!(unhex(b"0").is_err() && unhex(b"zz").is_err() && unhex(b"+1").is_err());
        assert_eq!(parse_hex_u64(b"ffffffff81000000").unwrap(), 0xffff_ffff_8100_0000);
        assert!(parse_hex_u64(b"").is_err() && parse_hex_u64(b"10000000000000000").is_err());
        assert_eq!(le_u64(&[1, 2]), Some(0x201));
        assert_eq!(le_u64(&[0; 9]), None);
        assert_eq!(parse_checksum(*b"6g"), None);
    }
}
