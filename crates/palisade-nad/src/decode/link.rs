//! Link layers: Ethernet II, Linux cooked capture v1 and v2, and 802.1Q/802.1ad tags.

use super::{ip, Decoded, Malformed, NotIp};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_8021Q: u16 = 0x8100;
const ETHERTYPE_8021AD: u16 = 0x88A8;
/// The spec counts IP "possibly inside one or two 802.1Q/802.1ad tags".
const MAX_TAGS: usize = 2;

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A checked view of an Ethernet II header.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<'a>(&'a [u8]);

impl<'a> EthernetFrame<'a> {
    /// Header length.
    pub const HEADER_LEN: usize = 14;

    /// Checks that the 14-byte header is present.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < Self::HEADER_LEN {
            return Err(Malformed::LinkTruncated);
        }
        Ok(EthernetFrame(b))
    }

    /// The EtherType (or 802.3 length).
    pub fn ethertype(&self) -> u16 {
        be16(self.0, 12)
    }

    /// Bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::HEADER_LEN..]
    }
}

/// A checked view of a Linux cooked capture (SLL, v1) header.
#[derive(Debug, Clone, Copy)]
pub struct SllHeader<'a>(&'a [u8]);

impl<'a> SllHeader<'a> {
    /// Header length.
    pub const HEADER_LEN: usize = 16;

    /// Checks that the 16-byte header is present.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < Self::HEADER_LEN {
            return Err(Malformed::LinkTruncated);
        }
        Ok(SllHeader(b))
    }

    /// The protocol field (an EtherType for IP).
    pub fn protocol(&self) -> u16 {
        be16(self.0, 14)
    }

    /// Bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::HEADER_LEN..]
    }
}

/// A checked view of a Linux cooked capture v2 (SLL2) header.
#[derive(Debug, Clone, Copy)]
pub struct Sll2Header<'a>(&'a [u8]);

impl<'a> Sll2Header<'a> {
    /// Header length.
    pub const HEADER_LEN: usize = 20;

    /// Checks that the 20-byte header is present.
    pub fn new_checked(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < Self::HEADER_LEN {
            return Err(Malformed::LinkTruncated);
        }
        Ok(Sll2Header(b))
    }

    /// The protocol field (an EtherType for IP), the header's first field in v2.
    pub fn protocol(&self) -> u16 {
        be16(self.0, 0)
    }

    /// The capturing interface's index.
    pub fn ifindex(&self) -> u32 {
        u32::from_be_bytes([self.0[4], self.0[5], self.0[6], self.0[7]])
    }

    /// Bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::HEADER_LEN..]
    }
}

/// Follows up to two VLAN tags from an EtherType to the IP header.
#[inline]
pub(super) fn ethertype(mut ty: u16, mut rest: &[u8]) -> Decoded {
    let mut tags = 0;
    loop {
        match ty {
            ETHERTYPE_IPV4 => return ip::ipv4(rest),
            ETHERTYPE_IPV6 => return ip::ipv6(rest),
            ETHERTYPE_8021Q | ETHERTYPE_8021AD => {
                tags += 1;
                if tags > MAX_TAGS {
                    return Decoded::NotIp(NotIp::TooManyTags);
                }
                if rest.len() < 4 {
                    return Decoded::Malformed(Malformed::VlanTruncated);
                }
                ty = be16(rest, 2);
                rest = &rest[4..];
            }
            _ => return Decoded::NotIp(NotIp::OtherProtocol),
        }
    }
}
