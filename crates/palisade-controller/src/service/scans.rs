//! The Type 2 scan engine (issue #7) as a service of the controller, wired like guests and
//! detectors: the controller holds it, the API and the scheduler reach it through here.

use std::sync::Arc;

use palisade_scan::schedule::{run_due, Scheduler};
use palisade_scan::ScanService;

use super::Controller;
use crate::auth::Scope;

impl Controller {
    /// Runs Type 2 scan tasks with `engine` (by default this controller does not scan, and
    /// `/v1/scans` answers that scanning is not enabled).
    pub fn with_scans(mut self, engine: Arc<ScanService>) -> Self {
        self.scans = Some(engine);
        self
    }

    /// The scan engine, if this controller runs one.
    pub fn scans(&self) -> Option<Arc<ScanService>> {
        self.scans.clone()
    }

    /// Runs the `scan` policies whose schedule is due at `now` (seconds since the epoch), each
    /// once per due time as `scheduler` remembers; returns how many tasks ran. Blocks while
    /// they run. Without a scan engine nothing runs.
    pub fn run_due_scans(&self, scheduler: &Scheduler, now: u64) -> usize {
        match &self.scans {
            Some(engine) => run_due(&self.inventory(&Scope::Admin), engine, scheduler, now).len(),
            None => 0,
        }
    }
}
