//! How the inventory's port names become this host's interface names.
//!
//! Policies and inventories name ports (`port: pa-web1`) the same on every host. Interface names
//! are global on a host, though, so two Palisade instances on one machine (a user's lab and the
//! test suite's, say) each put their own prefix in front: `t4` makes `pa-web1` the interface
//! `t4pa-web1`. The controller sees its switch through the same naming, so flows, guests' taps
//! and captures all agree, and an interface without the prefix is never one of its ports.

use crate::PortMap;

/// Longest Linux interface name (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;
/// Longest port-name prefix.
pub const PREFIX_MAX: usize = 3;

/// A port-name prefix that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// The prefix is too long or has characters other than `[a-z0-9]`.
    #[error("port-name prefix `{0}` must be at most {PREFIX_MAX} characters of [a-z0-9]")]
    BadPrefix(String),
    /// Prefix and port name together exceed the interface-name limit.
    #[error("interface name `{0}` (port-name prefix + port) is longer than {IFNAME_MAX} characters")]
    TooLong(String),
}

/// The prefix this instance puts in front of every port name it creates or looks up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortNaming {
    prefix: String,
}

impl PortNaming {
    /// A naming with `prefix` (empty: interface names are the port names).
    pub fn new(prefix: &str) -> Result<Self, NamingError> {
        let ok = prefix.len() <= PREFIX_MAX && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(NamingError::BadPrefix(prefix.to_owned()));
        }
        Ok(PortNaming { prefix: prefix.to_owned() })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The interface that carries `port` on this host.
    pub fn interface(&self, port: &str) -> Result<String, NamingError> {
        let name = format!("{}{port}", self.prefix);
        if name.len() > IFNAME_MAX {
            return Err(NamingError::TooLong(name));
        }
        Ok(name)
    }

    /// The switch's ports under the names the inventory uses: a prefixed interface under its
    /// port name; interfaces this instance did not name for the inventory (scan task ports,
    /// which have a prefix of their own) under their own names.
    pub fn ports(&self, switch: PortMap) -> PortMap {
        if self.prefix.is_empty() {
            return switch;
        }
        switch
            .into_iter()
            .map(|(name, no)| match name.strip_prefix(&self.prefix) {
                Some(port) if !port.is_empty() => (port.to_owned(), no),
                _ => (name, no),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_prefix_changes_nothing() {
        let n = PortNaming::default();
        assert_eq!(n.interface("pa-web1").unwrap(), "pa-web1");
        let ports: PortMap = [("pa-web1".to_owned(), 3)].into_iter().collect();
        assert_eq!(n.ports(ports.clone()), ports);
    }

    #[test]
    fn a_prefix_is_added_to_interfaces_and_taken_off_the_switch_ports() {
        let n = PortNaming::new("t4").unwrap();
        assert_eq!(n.interface("pg-alpha-web").unwrap(), "t4pg-alpha-web");
        let ports: PortMap = [("t4pa-web1".to_owned(), 3), ("pt-7".to_owned(), 9)].into_iter().collect();
        let seen = n.ports(ports);
        assert_eq!(seen.get("pa-web1"), Some(&3));
        assert_eq!(seen.get("pt-7"), Some(&9), "task ports keep their own names");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn bad_prefixes_and_long_names_are_refused_with_the_name() {
        for bad in ["T4", "abcd", "a-b", "a b"] {
            assert_eq!(PortNaming::new(bad), Err(NamingError::BadPrefix(bad.to_owned())));
        }
        let err = PortNaming::new("abc").unwrap().interface("pg-alpha-webx").unwrap_err();
        assert!(err.to_string().contains("abcpg-alpha-webx"), "{err}");
    }
}
