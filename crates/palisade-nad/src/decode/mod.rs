//! The packet decoder: link layer -> (up to two VLAN tags) -> IPv4/IPv6 (extension headers) ->
//! TCP/UDP ports and flags. Zero-copy checked views in smoltcp's `new_checked` style: every
//! length is checked before it is used, so no input can panic. A packet whose headers are cut
//! or bogus still yields whatever its intact outer headers say, with the reason attached.

mod ip;
mod link;

pub use ip::{Ipv4Header, Ipv6Header, TcpHeader, UdpHeader};
pub use link::{EthernetFrame, Sll2Header, SllHeader};

use std::fmt;
use std::net::IpAddr;

use crate::capture::LinkType;

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// What a frame is, as far as the features care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// An IP packet (possibly with damaged inner headers: see [`IpPacket::malformed`]).
    Ip(IpPacket),
    /// Not an IP packet the features count (ARP, LLDP, three VLAN tags, unknown link type...).
    NotIp(NotIp),
    /// Damaged before the IP addresses could be read: counts for nobody.
    Malformed(Malformed),
}

/// Why a well-formed frame is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIp {
    /// Its EtherType (or SLL protocol) is not IPv4 or IPv6.
    OtherProtocol,
    /// IP inside more than two 802.1Q/802.1ad tags (the spec counts one or two).
    TooManyTags,
    /// The capture's link type is not one the decoder knows.
    UnsupportedLink,
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: addresses in the low 32 bits.
    V4,
    /// IPv6.
    V6,
}

/// The fields of an IP packet the features use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket {
    /// Address family of both addresses.
    pub family: Family,
    /// Source address (IPv4 zero-extended).
    pub src: u128,
    /// Destination address (IPv4 zero-extended).
    pub dst: u128,
    /// The transport header, when there is a whole one.
    pub transport: Transport,
    /// Set when some header inside the IP packet is cut short or bogus.
    pub malformed: Option<Malformed>,
}

impl IpPacket {
    /// The source as an `IpAddr`.
    pub fn src_addr(&self) -> IpAddr {
        to_addr(self.family, self.src)
    }

    /// The destination as an `IpAddr`.
    pub fn dst_addr(&self) -> IpAddr {
        to_addr(self.family, self.dst)
    }
}

/// An address in the decoder's key form.
pub fn addr_key(a: IpAddr) -> (Family, u128) {
    match a {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    }
}

fn to_addr(family: Family, key: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4((key as u32).into()),
        Family::V6 => IpAddr::V6(key.into()),
    }
}

/// Transport header information. Ports exist only for TCP and UDP packets that carry their
/// header (not non-first fragments, not headers cut short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP header.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// The flags byte (see [`tcp_flags`]).
        flags: u8,
    },
    /// A UDP header.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// Anything else: ICMP, other protocols, non-first fragments, missing or damaged headers.
    None,
}

impl Transport {
    /// `(source, destination)` ports for TCP and UDP.
    pub fn ports(self) -> Option<(u16, u16)> {
        match self {
            Transport::Tcp { src_port, dst_port, .. } | Transport::Udp { src_port, dst_port } => {
                Some((src_port, dst_port))
            }
            Transport::None => None,
        }
    }

    /// A connection request: SYN set, ACK clear.
    pub fn is_syn(self) -> bool {
        matches!(self, Transport::Tcp { flags, .. } if flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN)
    }
}

/// Why a packet is malformed. Each is counted and reported, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than its link-layer header.
    LinkTruncated,
    /// Cut inside an 802.1Q/802.1ad tag.
    VlanTruncated,
    /// Fewer than 20 bytes of IPv4 header (no addresses).
    Ipv4Truncated,
    /// IPv6 fixed header cut short (no addresses).
    Ipv6Truncated,
    /// The IP version nibble contradicts the link layer, or is neither 4 nor 6.
    BadIpVersion,
    /// IPv4 header length field below 5 words.
    Ipv4BadHeaderLength,
    /// IPv4 options cut short.
    Ipv4OptionsTruncated,
    /// IPv4 total length smaller than its header.
    Ipv4BadTotalLength,
    /// An IPv6 extension header cut short.
    Ipv6ExtensionTruncated,
    /// TCP header cut short (fewer than 20 bytes).
    TcpTruncated,
    /// TCP data offset below 5 words.
    TcpBadHeaderLength,
    /// UDP header cut short (fewer than 8 bytes).
    UdpTruncated,
}

impl Malformed {
    /// Every reason, in report order.
    pub const ALL: [Malformed; 12] = [
        Malformed::LinkTruncated,
        Malformed::VlanTruncated,
        Malformed::Ipv4Truncated,
        Malformed::Ipv6Truncated,
        Malformed::BadIpVersion,
        Malformed::Ipv4BadHeaderLength,
        Malformed::Ipv4OptionsTruncated,
        Malformed::Ipv4BadTotalLength,
        Malformed::Ipv6ExtensionTruncated,
        Malformed::TcpTruncated,
        Malformed::TcpBadHeaderLength,
        Malformed::UdpTruncated,
    ];

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::LinkTruncated => "frame shorter than its link-layer header",
            Malformed::VlanTruncated => "cut inside a VLAN tag",
            Malformed::Ipv4Truncated => "IPv4 header cut short",
            Malformed::Ipv6Truncated => "IPv6 header cut short",
            Malformed::BadIpVersion => "IP version nibble wrong for the link layer",
            Malformed::Ipv4BadHeaderLength => "IPv4 header length below 20 bytes",
            Malformed::Ipv4OptionsTruncated => "IPv4 options cut short",
            Malformed::Ipv4BadTotalLength => "IPv4 total length below its header length",
            Malformed::Ipv6ExtensionTruncated => "IPv6 extension header cut short",
            Malformed::TcpTruncated => "TCP header cut short",
            Malformed::TcpBadHeaderLength => "TCP data offset below 20 bytes",
            Malformed::UdpTruncated => "UDP header cut short",
        })
    }
}

/// Decodes one frame of the given link type. Never panics.
#[inline]
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded {
    match link {
        LinkType::ETHERNET => match EthernetFrame::new_checked(frame) {
            Ok(eth) => link::ethertype(eth.ethertype(), eth.payload()),
            Err(m) => Decoded::Malformed(m),
        },
        LinkType::LINUX_SLL => match SllHeader::new_checked(frame) {
            Ok(sll) => link::ethertype(sll.protocol(), sll.payload()),
            Err(m) => Decoded::Malformed(m),
        },
        LinkType::LINUX_SLL2 => match Sll2Header::new_checked(frame) {
            Ok(sll) => link::ethertype(sll.protocol(), sll.payload()),
            Err(m) => Decoded::Malformed(m),
        },
        LinkType::RAW => match frame.first().map(|b| b >> 4) {
            Some(4) => ip::ipv4(frame),
            Some(6) => ip::ipv6(frame),
            Some(_) => Decoded::Malformed(Malformed::BadIpVersion),
            None => Decoded::Malformed(Malformed::LinkTruncated),
        },
        LinkType::IPV4 => ip::ipv4(frame),
        LinkType::IPV6 => ip::ipv6(frame),
        _ => Decoded::NotIp(NotIp::UnsupportedLink),
    }
}
