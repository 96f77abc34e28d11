//! Installs and removes task rules atomically, reference counting the shared ones.
//!
//! Setup is one bundle: the task's flows, plus the target's shared flows when this is the
//! first task on that target. Teardown is one bundle: the task's flows out, plus the shared
//! flows when it was the last. The counts live here, under one lock, so a setup and a teardown
//! on the same target cannot interleave; the count is only changed once the switch accepted
//! the bundle, so a rejected bundle leaves both switch and counts as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use palisade_flows::Cookie;
use palisade_ovs::{OvsError, Switch};
use tracing::{debug, info};

use crate::flows::TaskRules;
use crate::task::TaskId;

/// Why the switch did not take a task's rules.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The bundle was rejected or the switch could not be reached.
    #[error("the switch refused the rules of task {task}")]
    Switch {
        /// The task.
        task: TaskId,
        /// Why.
        #[source]
        source: OvsError,
    },
    /// The task already has rules installed.
    #[error("task {0} already has rules installed")]
    Duplicate(TaskId),
    /// Reading the switch for orphans failed.
    #[error("could not read the switch to remove orphaned task flows")]
    Read(#[source] OvsError),
}

#[derive(Debug, Default)]
struct Counts {
    /// Shared cookie -> the tasks using it.
    shared: BTreeMap<Cookie, BTreeSet<TaskId>>,
    /// Task -> (its cookie, its shared cookie).
    tasks: BTreeMap<TaskId, (Cookie, Cookie)>,
}

/// The task flows on one switch.
#[derive(Debug)]
pub struct TaskFlows {
    switch: Arc<dyn Switch>,
    counts: Mutex<Counts>,
}

impl TaskFlows {
    /// Task flows on `switch`; nothing is read or written yet.
    pub fn new(switch: Arc<dyn Switch>) -> Self {
        Self { switch, counts: Mutex::new(Counts::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The switch.
    pub fn switch(&self) -> &Arc<dyn Switch> {
        &self.switch
    }

    /// Removes every task flow on the switch (what a crashed engine left behind), in one
    /// bundle. Call before the first setup. Returns the number of cookies removed.
    pub fn purge_orphans(&self) -> Result<usize, FlowError> {
        let counts = self.lock();
        let installed = self.switch.installed().map_err(FlowError::Read)?;
        let live: BTreeSet<Cookie> = counts.tasks.values().flat_map(|(t, s)| [*t, *s]).collect();
        let orphans: Vec<Cookie> =
            installed.flows.keys().filter(|c| c.is_task() && !live.contains(c)).copied().collect();
        let lines: Vec<String> = orphans.iter().map(|c| format!("flow delete cookie={c}/-1")).collect();
        self.switch.commit(&lines).map_err(FlowError::Read)?;
        if !orphans.is_empty() {
            info!(count = orphans.len(), "removed orphaned task flows");
        }
        Ok(orphans.len())
    }

    /// Installs `rules` for task `id` in one bundle.
    pub fn setup(&self, id: TaskId, rules: &TaskRules) -> Result<(), FlowError> {
        let mut counts = self.lock();
        if counts.tasks.contains_key(&id) {
            return Err(FlowError::Duplicate(id));
        }
        let first = counts.shared.get(&rules.shared.cookie).is_none_or(BTreeSet::is_empty);
        let mut lines: Vec<String> = Vec::new();
        if first {
            lines.extend(rules.shared.flows.iter().map(|f| format!("flow add {}", f.to_ofctl(rules.shared.cookie))));
        }
        lines.extend(rules.task.flows.iter().map(|f| format!("flow add {}", f.to_ofctl(rules.task.cookie))));
        self.switch.commit(&lines).map_err(|source| FlowError::Switch { task: id, source })?;
        counts.shared.entry(rules.shared.cookie).or_default().insert(id);
        counts.tasks.insert(id, (rules.task.cookie, rules.shared.cookie));
        debug!(task = %id, shared_added = first, "task flows installed");
        Ok(())
    }

    /// Removes task `id`'s flows in one bundle, and the shared ones if it was their last user.
    /// A task without rules is a no-op.
    pub fn teardown(&self, id: TaskId) -> Result<(), FlowError> {
        let mut counts = self.lock();
        let Some(&(task, shared)) = counts.tasks.get(&id) else { return Ok(()) };
        let last = counts.shared.get(&shared).is_none_or(|s| s.len() == 1 && s.contains(&id));
        let mut lines = vec![format!("flow delete cookie={task}/-1")];
        if last {
            lines.push(format!("flow delete cookie={shared}/-1"));
        }
        self.switch.commit(&lines).map_err(|source| FlowError::Switch { task: id, source })?;
        counts.tasks.remove(&id);
        if let Some(users) = counts.shared.get_mut(&shared) {
            users.remove(&id);
            if users.is_empty() {
                counts.shared.remove(&shared);
            }
        }
        debug!(task = %id, shared_removed = last, "task flows removed");
        Ok(())
    }

    /// How many tasks use the shared flows with `cookie`.
    pub fn users(&self, cookie: Cookie) -> usize {
        self.lock().shared.get(&cookie).map_or(0, BTreeSet::len)
    }
}
