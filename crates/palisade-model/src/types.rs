//! Small value types: validated names, MAC addresses, port names and the enums of the policy language.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, ValueError> {
                $check(s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn check_name(s: &str) -> Result<(), ValueError> {
    let ok_chars = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let starts = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if s.is_empty() || s.len() > 63 || !ok_chars || !starts {
        return Err(ValueError(format!(
            "invalid name `{s}`: use 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
        )));
    }
    Ok(())
}

fn check_port(s: &str) -> Result<(), ValueError> {
    let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if s.is_empty() || s.len() > 15 || !ok_chars {
        return Err(ValueError(format!(
            "invalid port name `{s}`: a Linux interface name has 1-15 characters of a-z, A-Z, 0-9, '-', '_' and '.'"
        )));
    }
    Ok(())
}

string_newtype!(
    /// The name of a tenant, domain, subdomain, VM, appliance or policy.
    Name,
    check_name
);
string_newtype!(
    /// The name of an Open vSwitch port (a Linux interface name).
    PortName,
    check_port
);

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError(format!("invalid MAC address `{s}`: expected six hex octets like 02:00:00:00:00:01"));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if out[0] & 1 == 1 {
            return Err(ValueError(format!("invalid MAC address `{s}`: it is a multicast address")));
        }
        Ok(Self(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The IP protocol a redirect selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Any IPv4 traffic.
    #[default]
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
}

/// Which directions of a conversation a redirect steers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Source-to-destination packets and the replies (the appliance sees whole conversations).
    #[default]
    Both,
    /// Only source-to-destination packets.
    Forward,
}

/// What happens to selected traffic while the appliance is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Bypass the appliance: traffic takes the direct path.
    Open,
    /// Drop the selected traffic.
    Closed,
}

/// A function a security appliance hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplianceFunction {
    /// Stateful packet filter.
    Firewall,
    /// Packet capture of everything the appliance forwards.
    Tap,
    /// Intrusion detection.
    Ids,
}

/// A firewall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let the packet through.
    Accept,
    /// Drop the packet.
    Drop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_roundtrip_and_rejects() {
        let mac: MacAddr = "02:0A:00:00:00:ff".parse().unwrap();
        assert_eq!(mac.to_string(), "02:0a:00:00:00:ff");
        for bad in
            ["", "02:00:00:00:00", "02:00:00:00:00:00:00", "0g:00:00:00:00:00", "01:00:00:00:00:00", "2:00:00:00:00:00"]
        {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!("web-1".parse::<Name>().is_ok());
        for bad in ["", "Web", "-x", "a b", &"a".repeat(64)] {
            assert!(bad.parse::<Name>().is_err(), "{bad} accepted");
        }
        assert!("pa-alpha-web1".parse::<PortName>().is_ok());
        assert!("this-is-too-long-for-linux".parse::<PortName>().is_err());
    }
}
