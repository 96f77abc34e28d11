//! Cookies and group ids: every flow and group Palisade installs names its owner.
//!
//! ```text
//!  63        48 47    40 39                         0
//! +------------+--------+----------------------------+
//! |   0x5a15   |  kind  |  id (hash of owner's key)   |
//! +------------+--------+----------------------------+
//! ```
//! Flows whose cookie lacks the 0x5a15 prefix are not Palisade's and are never touched.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The prefix that marks a flow as Palisade's.
pub const COOKIE_PREFIX: u64 = 0x5a15 << 48;
/// Mask selecting the prefix (for `cookie=PREFIX/MASK` matches).
pub const COOKIE_PREFIX_MASK: u64 = 0xffff << 48;
/// The lowest group id Palisade allocates; ids below are left to others.
pub const GROUP_BASE: u32 = 0x5a10_0000;
/// The highest group id Palisade allocates.
pub const GROUP_LAST: u32 = 0x5a1f_ffff;

/// What kind of owner a flow has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OwnerKind {
    /// The switch's base behaviour (normal switching).
    Base = 1,
    /// A security appliance's groups and its return-to-normal flow.
    Appliance = 2,
    /// A redirect policy.
    Redirect = 3,
    /// One Type 2 scan task's own flows (issue #7). Owned by `palisade-scan`, not by the
    /// desired state: the planner never touches them.
    Task = 0x10,
    /// Type 2 flows shared by the tasks reaching one target VM, reference counted by
    /// `palisade-scan`; like `Task`, never touched by the planner.
    TaskShared = 0x11,
}

impl OwnerKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Base),
            2 => Some(Self::Appliance),
            3 => Some(Self::Redirect),
            0x10 => Some(Self::Task),
            0x11 => Some(Self::TaskShared),
            _ => None,
        }
    }
}

/// A Palisade flow cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cookie(pub u64);

impl Cookie {
    /// The cookie for `kind` and the owner identified by `key`.
    pub fn new(kind: OwnerKind, key: &str) -> Self {
        Self(COOKIE_PREFIX | ((kind as u64) << 40) | (fnv1a(key) & 0xff_ffff_ffff))
    }

    /// True if the cookie carries Palisade's prefix.
    pub fn is_palisade(self) -> bool {
        self.0 & COOKIE_PREFIX_MASK == COOKIE_PREFIX
    }

    /// The owner kind, if this is a Palisade cookie of a known kind.
    pub fn kind(self) -> Option<OwnerKind> {
        if !self.is_palisade() {
            return None;
        }
        OwnerKind::from_byte(((self.0 >> 40) & 0xff) as u8)
    }

    /// True for the flows of Type 2 scan tasks, which the task manager owns, not the planner.
    pub fn is_task(self) -> bool {
        matches!(self.kind(), Some(OwnerKind::Task | OwnerKind::TaskShared))
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

/// A stable group id for `key` inside Palisade's range.
pub fn group_id(key: &str) -> u32 {
    let span = u64::from(GROUP_LAST - GROUP_BASE + 1);
    GROUP_BASE + (fnv1a(key) % span) as u32
}

/// 64-bit FNV-1a: stable across runs and builds, unlike std's hasher.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_stable_and_tagged() {
        let c = Cookie::new(OwnerKind::Redirect, "policy alpha/p");
        assert_eq!(c, Cookie::new(OwnerKind::Redirect, "policy alpha/p"));
        assert_ne!(c, Cookie::new(OwnerKind::Redirect, "policy beta/p"));
        assert!(c.is_palisade());
        assert_eq!(c.kind(), Some(OwnerKind::Redirect));
        assert_eq!(Cookie(0x1234).kind(), None);
        assert!(Cookie::new(OwnerKind::Task, "task 1").is_task());
        assert!(Cookie::new(OwnerKind::TaskShared, "target alpha/web1").is_task());
        assert!(!c.is_task());
        let g = group_id("appliance fw1 open");
        assert!((GROUP_BASE..=GROUP_LAST).contains(&g));
    }
}
