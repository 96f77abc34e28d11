//! `monitor` policies: which system calls of which guest VMs Palisade watches from inside their
//! kernel, and what it does with each (the paper's policy P = (ID, Nr, Conf, Action)).
//!
//! ```yaml
//! policies:
//!   - name: watch-etc
//!     tenant: alpha
//!     monitor:
//!       target: { vm: guest1 }
//!       syscalls: [openat, read, write, close]
//!       rules:
//!         - { subject: cat, object: /etc/hosts, action: block }
//!         - { object: /etc/, action: record }
//!       default: pass
//! ```
//!
//! A rule matches when the calling process's name equals `subject` (any process if absent) and
//! the file's path starts with `object` (any file if absent). The first matching rule wins;
//! calls no rule matches get `default`.

use serde::{Deserialize, Serialize};

use crate::document::Endpoint;

/// Longest process name the kernel keeps (`TASK_COMM_LEN` - 1).
pub const MAX_SUBJECT_LEN: usize = 15;
/// Longest object path prefix (what one rule of the in-guest policy table holds).
pub const MAX_OBJECT_LEN: usize = 128;
/// Most rules one guest's merged monitor plan may have (the in-guest policy table's size).
pub const MAX_PLAN_RULES: usize = 16;
/// Highest x86-64 system call number accepted.
pub const MAX_SYSCALL_NR: u16 = 511;

/// What happens to a monitored call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MonitorAction {
    /// Let it run; no event.
    #[default]
    Pass,
    /// Let it run and record an event.
    Record,
    /// Fail it with EPERM without running it, and record an event.
    Block,
}

/// A system call, by x86-64 name or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SyscallRef {
    /// By number.
    Nr(u16),
    /// By name (`openat`), without the `sys_` prefix.
    Name(String),
}

/// One (subject, object) rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorRule {
    /// Process name (as `ps` shows it); absent means any process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Absolute path prefix; absent means any file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What to do on a match.
    pub action: MonitorAction,
}

/// What a `monitor` policy watches and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// The guest VMs watched: one VM, or every guest of a subdomain or domain of the tenant.
    pub target: Endpoint,
    /// The system calls hooked.
    pub syscalls: Vec<SyscallRef>,
    /// Rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<MonitorRule>,
    /// Action for calls no rule matches.
    #[serde(default)]
    pub default: MonitorAction,
}

/// x86-64 system call numbers of the calls that touch files, by name.
const SYSCALLS: &[(&str, u16)] = &[
    ("read", 0),
    ("write", 1),
    ("open", 2),
    ("close", 3),
    ("stat", 4),
    ("fstat", 5),
    ("lstat", 6),
    ("pread64", 17),
    ("pwrite64", 18),
    ("readv", 19),
    ("writev", 20),
    ("access", 21),
    ("sendfile", 40),
    ("execve", 59),
    ("truncate", 76),
    ("ftruncate", 77),
    ("getdents", 78),
    ("rename", 82),
    ("mkdir", 83),
    ("rmdir", 84),
    ("creat", 85),
    ("link", 86),
    ("unlink", 87),
    ("symlink", 88),
    ("readlink", 89),
    ("chmod", 90),
    ("fchmod", 91),
    ("chown", 92),
    ("fchown", 93),
    ("lchown", 94),
    ("getdents64", 217),
    ("openat", 257),
    ("mkdirat", 258),
    ("fchownat", 260),
    ("newfstatat", 262),
    ("unlinkat", 263),
    ("renameat", 264),
    ("linkat", 265),
    ("symlinkat", 266),
    ("readlinkat", 267),
    ("fchmodat", 268),
    ("faccessat", 269),
    ("renameat2", 316),
    ("execveat", 322),
    ("statx", 332),
    ("openat2", 437),
    ("faccessat2", 439),
];

/// The number of the x86-64 system call `name`, if Palisade knows it.
pub fn syscall_nr(name: &str) -> Option<u16> {
    SYSCALLS.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

/// The name of x86-64 system call `nr`, if Palisade knows it.
pub fn syscall_name(nr: u16) -> Option<&'static str> {
    SYSCALLS.iter().find(|(_, n)| *n == nr).map(|(name, _)| *name)
}

impl SyscallRef {
    /// Its number, or a message saying why it has none.
    pub fn nr(&self) -> Result<u16, String> {
        match self {
            SyscallRef::Nr(nr) if *nr <= MAX_SYSCALL_NR => Ok(*nr),
            SyscallRef::Nr(nr) => Err(format!("system call number {nr} is above {MAX_SYSCALL_NR}")),
            SyscallRef::Name(name) => syscall_nr(name.strip_prefix("sys_").unwrap_or(name)).ok_or_else(|| {
                format!("unknown system call `{name}` (use its x86-64 number, or one of: {})", known_names())
            }),
        }
    }
}

fn known_names() -> String {
    SYSCALLS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

impl MonitorSpec {
    /// Problems with the spec itself, as (field, message); references are checked by
    /// `validate`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.syscalls.is_empty() {
            out.push(("monitor.syscalls".to_owned(), "name at least one system call".to_owned()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.syscalls.iter().enumerate() {
            match s.nr() {
                Ok(nr) if !seen.insert(nr) => {
                    out.push((format!("monitor.syscalls[{i}]"), format!("system call {nr} is listed twice")))
                }
                Ok(_) => {}
                Err(m) => out.push((format!("monitor.syscalls[{i}]"), m)),
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(s) = &r.subject {
                if s.is_empty() || s.len() > MAX_SUBJECT_LEN || s.contains('\0') {
                    out.push((
                        format!("monitor.rules[{i}].subject"),
                        format!("a process name is 1-{MAX_SUBJECT_LEN} bytes (the kernel keeps no more)"),
                    ));
                }
            }
            if let Some(o) = &r.object {
                if !o.starts_with('/') || o.len() > MAX_OBJECT_LEN || o.contains('\0') {
                    out.push((
                        format!("monitor.rules[{i}].object"),
                        format!("an object is an absolute path prefix of at most {MAX_OBJECT_LEN} bytes"),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(SyscallRef::Name("openat".into()).nr(), Ok(257));
        assert_eq!(SyscallRef::Name("sys_read".into()).nr(), Ok(0));
        assert_eq!(SyscallRef::Nr(3).nr(), Ok(3));
        assert!(SyscallRef::Nr(600).nr().unwrap_err().contains("above"));
        assert!(SyscallRef::Name("frobnicate".into()).nr().unwrap_err().contains("unknown system call `frobnicate`"));
        assert_eq!(syscall_name(257), Some("openat"));
        let mut nrs: Vec<u16> = SYSCALLS.iter().map(|(_, n)| *n).collect();
        nrs.dedup();
        assert_eq!(nrs.len(), SYSCALLS.len(), "numbers are unique and sorted");
    }
}
