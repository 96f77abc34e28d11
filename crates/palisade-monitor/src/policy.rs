//! What the host tells the payload: which system calls are hooked and the policy table
//! (paper §3.3.3: P = (ID, Nr, Conf, Action), Conf being the subject process and object path).

use std::fmt;

use crate::layout::{ACTION_BLOCK, ACTION_PASS, ACTION_RECORD, ANY_NR, COMM_LEN, MAX_POLICIES, NAME_LEN};

/// What to do with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Record the event; the call runs.
    Record,
    /// Record the event; the call returns -EPERM without running.
    Block,
    /// No event, the call runs, and later rules are not consulted (a matching pass rule
    /// shadows them: first match wins).
    Pass,
}

impl Action {
    /// The `MS_ACTION_*` value.
    pub fn code(self) -> u8 {
        match self {
            Action::Record => ACTION_RECORD,
            Action::Block => ACTION_BLOCK,
            Action::Pass => ACTION_PASS,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Record => "record",
            Action::Block => "block",
            Action::Pass => "pass",
        })
    }
}

/// How a system call names the file it acts on (`MS_OBJ_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectArg {
    /// None the payload reads.
    None,
    /// A file descriptor in argument 0 (path through `fget` + `file_path`).
    Fd,
    /// A user path string in argument 0.
    Path0,
    /// A user path string in argument 1 (after a directory fd).
    Path1,
}

impl ObjectArg {
    /// The `MS_OBJ_*` value.
    pub fn code(self) -> u32 {
        match self {
            ObjectArg::None => 0,
            ObjectArg::Fd => 1,
            ObjectArg::Path0 => 2,
            ObjectArg::Path1 => 3,
        }
    }
}

/// An x86-64 system call the monitor knows how to describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    /// Its name (`read`); the handler is `__x64_sys_<name>`.
    pub name: &'static str,
    /// Its number.
    pub nr: u32,
    /// Where its object is.
    pub object: ObjectArg,
}

/// System calls by name (x86-64 numbers, `arch/x86/entry/syscalls/syscall_64.tbl`).
pub const SYSCALLS: &[Syscall] = &[
    Syscall { name: "read", nr: 0, object: ObjectArg::Fd },
    Syscall { name: "write", nr: 1, object: ObjectArg::Fd },
    Syscall { name: "open", nr: 2, object: ObjectArg::Path0 },
    Syscall { name: "close", nr: 3, object: ObjectArg::Fd },
    Syscall { name: "pread64", nr: 17, object: ObjectArg::Fd },
    Syscall { name: "pwrite64", nr: 18, object: ObjectArg::Fd },
    Syscall { name: "readv", nr: 19, object: ObjectArg::Fd },
    Syscall { name: "writev", nr: 20, object: ObjectArg::Fd },
    Syscall { name: "sendfile64", nr: 40, object: ObjectArg::None },
    Syscall { name: "execve", nr: 59, object: ObjectArg::Path0 },
    Syscall { name: "truncate", nr: 76, object: ObjectArg::Path0 },
    Syscall { name: "ftruncate", nr: 77, object: ObjectArg::Fd },
    Syscall { name: "mkdir", nr: 83, object: ObjectArg::Path0 },
    Syscall { name: "rmdir", nr: 84, object: ObjectArg::Path0 },
    Syscall { name: "creat", nr: 85, object: ObjectArg::Path0 },
    Syscall { name: "unlink", nr: 87, object: ObjectArg::Path0 },
    Syscall { name: "openat", nr: 257, object: ObjectArg::Path1 },
    Syscall { name: "mkdirat", nr: 258, object: ObjectArg::Path1 },
    Syscall { name: "unlinkat", nr: 263, object: ObjectArg::Path1 },
    Syscall { name: "openat2", nr: 437, object: ObjectArg::Path1 },
];

/// System calls the payload itself calls (hooking them would recurse).
pub const HELPER_SYSCALLS: &[&str] = &["getuid", "getpid"];

impl Syscall {
    /// Looks a system call up by name.
    pub fn by_name(name: &str) -> Option<Syscall> {
        SYSCALLS.iter().find(|s| s.name == name).copied()
    }

    /// Looks a system call up by number.
    pub fn by_nr(nr: u32) -> Option<Syscall> {
        SYSCALLS.iter().find(|s| s.nr == nr).copied()
    }

    /// The kernel's handler symbol.
    pub fn handler(&self) -> String {
        format!("__x64_sys_{}", self.name)
    }
}

/// One policy rule. The first matching rule (in table order) decides; a hooked call that
/// matches none, or whose first match is a pass rule, is neither recorded nor blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Non-zero identifier, reported in events.
    pub id: u32,
    /// The system call number, or `None` for any hooked call.
    pub nr: Option<u32>,
    /// The process name (exact task comm), or `None` for any.
    pub subject: Option<String>,
    /// An object path prefix, or `None` for any.
    pub object: Option<String>,
    /// What to do.
    pub action: Action,
}

/// Why a policy cannot be written to the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// More rules than the table holds.
    #[error("{0} rules, the payload's table holds {MAX_POLICIES}")]
    TooMany(usize),
    /// Rule id 0 means "none" in events.
    #[error("rule ids must be non-zero")]
    ZeroId,
    /// A subject longer than a task name.
    #[error("rule {id}: subject `{subject}` is longer than a task name ({max} bytes)")]
    SubjectTooLong {
        /// The rule.
        id: u32,
        /// The subject.
        subject: String,
        /// The limit.
        max: usize,
    },
    /// An object prefix longer than the table's field.
    #[error("rule {id}: object prefix is longer than {max} bytes")]
    ObjectTooLong {
        /// The rule.
        id: u32,
        /// The limit.
        max: usize,
    },
    /// `MS_ANY_NR` is reserved.
    #[error("rule {0}: system call number {ANY_NR:#x} is reserved")]
    ReservedNr(u32),
}

/// Checks a rule set against the payload's table limits.
pub fn validate(rules: &[Rule]) -> Result<(), PolicyError> {
    if rules.len() > MAX_POLICIES {
        return Err(PolicyError::TooMany(rules.len()));
    }
    for r in rules {
        if r.id == 0 {
            return Err(PolicyError::ZeroId);
        }
        if r.nr == Some(ANY_NR) {
            return Err(PolicyError::ReservedNr(r.id));
        }
        if let Some(s) = &r.subject {
            if s.len() > COMM_LEN - 1 {
                return Err(PolicyError::SubjectTooLong { id: r.id, subject: s.clone(), max: COMM_LEN - 1 });
            }
        }
        if r.object.as_ref().is_some_and(|o| o.len() > NAME_LEN) {
            return Err(PolicyError::ObjectTooLong { id: r.id, max: NAME_LEN });
        }
    }
    Ok(())
}
