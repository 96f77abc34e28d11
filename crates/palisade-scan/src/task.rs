//! Task identifiers and the names derived from them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A scan task's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId(pub u32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest interface name Linux accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Why a name prefix is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task name prefix `{0}` is unusable: it must be 1 to 7 characters of [a-z0-9-]")]
pub struct BadPrefix(pub String);

/// Derives namespace and interface names from task ids: `<prefix><id as 8 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
}

impl Naming {
    /// Names starting with `prefix` (1-7 characters, so names stay within 15).
    pub fn new(prefix: &str) -> Result<Self, BadPrefix> {
        let ok = !prefix.is_empty()
            && prefix.len() + 8 <= IFNAME_MAX
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self { prefix: prefix.to_owned() })
        } else {
            Err(BadPrefix(prefix.to_owned()))
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name of task `id`'s namespace and of its veth's switch end (the `vport`).
    pub fn name(&self, id: TaskId) -> String {
        format!("{}{:08x}", self.prefix, id.0)
    }

    /// The task id a name belongs to, if it is one of ours.
    pub fn parse(&self, name: &str) -> Option<TaskId> {
        let hex = name.strip_prefix(&self.prefix)?;
        (hex.len() == 8).then(|| u32::from_str_radix(hex, 16).ok().map(TaskId)).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_read_back() {
        let n = Naming::new("pst-").unwrap();
        let name = n.name(TaskId(u32::MAX));
        assert_eq!(name, "pst-ffffffff");
        assert!(name.len() <= IFNAME_MAX);
        assert_eq!(n.parse(&name), Some(TaskId(u32::MAX)));
        assert_eq!(n.parse("pst-1"), None);
        assert_eq!(n.parse("pa-web1"), None);
        assert!(Naming::new("toolong-").is_err());
        assert!(Naming::new("").is_err());
        assert!(Naming::new("Bad").is_err());
    }
}
