//! A guest monitor's events: monitored system calls, recorded or blocked.

use serde::{Deserialize, Serialize};

/// One monitored system call of a guest, as the API and the events file show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorEvent {
    /// The controller's sequence number for this guest (1, 2, ...; `after=` pages by it).
    pub seq: u64,
    /// Guest CLOCK_REALTIME, `seconds.nanoseconds` since the epoch.
    pub time: String,
    /// `tenant/name`.
    pub vm: String,
    /// Position in the in-guest ring since injection (the paper's INDEX).
    pub index: u64,
    /// The system call (`openat`), or its number.
    pub operation: String,
    /// The object's last path component.
    pub file_name: String,
    /// The object's path.
    pub path: String,
    /// The calling process's name.
    pub process: String,
    /// Its pid (thread-group id).
    pub pid: u32,
    /// Its uid.
    pub uid: u32,
    /// `record` or `block`.
    pub action: String,
    /// The matching plan rule's id.
    pub rule: u32,
    /// The policy the rule came from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl MonitorEvent {
    /// The paper's Figure 12 text form.
    pub fn figure12(&self) -> String {
        format!(
            "FILE MONITOR: INDEX:[{}], timestamp: [{}], filename:[{}], pathname: [{}], operation: [{}], \
             process name: [{}], user id:[{}].",
            self.index,
            self.time,
            self.file_name,
            self.path,
            self.operation.to_uppercase(),
            self.process,
            self.uid
        )
    }
}

/// A page of a guest's recent events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventPage {
    /// Events with `seq` above the request's `after`, oldest first.
    pub events: Vec<MonitorEvent>,
    /// The highest sequence number assigned so far (0 if none): the next `after`.
    pub last_seq: u64,
    /// Events the guest's ring dropped because it was full (since injection).
    pub lost: u64,
    /// Older events no longer in the controller's memory (the store and events file keep them).
    pub evicted: u64,
}
