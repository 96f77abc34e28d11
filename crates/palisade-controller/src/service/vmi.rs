//! Guest VMs as the caller may see them: their status, kernel symbols (issue #3) and monitor
//! events (issue #5), each tenant-scoped.

use palisade_model::{Object, ObjectKey};

use std::sync::Arc;

use super::{visible, Controller, ServiceError};
use crate::auth::Scope;
use crate::guests::{GuestRuntimeError, GuestStatus, SymbolTable};
use crate::monitors::{EventPage, MonitorEvent};

/// Most events one request returns.
pub const MAX_EVENTS_PAGE: usize = 10_000;

impl Controller {
    /// Guests the caller may see.
    pub fn guests(&self, scope: &Scope) -> Vec<GuestStatus> {
        let mut all = self.guests.status();
        if let Scope::Tenant(t) = scope {
            let prefix = format!("{t}/");
            all.retain(|g| g.vm.starts_with(&prefix));
        }
        all
    }

    /// The kernel symbol table of guest VM `key`, recovered from its memory.
    pub fn symbols(&self, scope: &Scope, key: &ObjectKey) -> Result<Arc<SymbolTable>, ServiceError> {
        {
            let cell = self.lock();
            match cell.0.inventory.objects.get(key) {
                Some(o @ Object::Vm(vm)) if visible(scope, key, o) => {
                    if vm.guest.is_none() {
                        return Err(ServiceError::GuestNotReady(format!(
                            "vm {key} is not a guest (it has no `guest:` section), so there is no memory to look into"
                        )));
                    }
                }
                _ => return Err(ServiceError::NotFound(key.to_string())),
            }
        }
        let id = format!("{}/{}", key.tenant.as_ref().map(ToString::to_string).unwrap_or_default(), key.name);
        self.guests.symbols(&id).map_err(|e| runtime_error(&id, e))
    }

    /// Up to `limit` recent monitor events of guest VM `key` after sequence `after`. Another
    /// tenant's VM is not found.
    pub fn events(&self, scope: &Scope, key: &ObjectKey, after: u64, limit: usize) -> Result<EventPage, ServiceError> {
        {
            let cell = self.lock();
            match cell.0.inventory.objects.get(key) {
                Some(o @ Object::Vm(vm)) if visible(scope, key, o) => {
                    if vm.guest.is_none() {
                        return Err(ServiceError::GuestNotReady(format!(
                            "vm {key} is not a guest (it has no `guest:` section), so it cannot be monitored"
                        )));
                    }
                }
                _ => return Err(ServiceError::NotFound(key.to_string())),
            }
        }
        let id = format!("{}/{}", key.tenant.as_ref().map(ToString::to_string).unwrap_or_default(), key.name);
        self.guests.events(&id, after, limit.min(MAX_EVENTS_PAGE)).map_err(|e| runtime_error(&id, e))
    }

    /// Up to `limit` stored monitor events of VM `key` with a store id above `after`, oldest
    /// first: the whole history, across guest boots and controller restarts. Each event's `seq`
    /// is its store id. A VM of another tenant is not found; a VM that no longer exists (or
    /// never was a guest) still answers with what the store kept under its name.
    pub fn event_history(
        &self,
        scope: &Scope,
        key: &ObjectKey,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, ServiceError> {
        let tenant = key.tenant.as_ref().map(ToString::to_string).unwrap_or_default();
        if let Scope::Tenant(own) = scope {
            if own.as_str() != tenant {
                return Err(ServiceError::NotFound(key.to_string()));
            }
        }
        let rows = self
            .store
            .events(
                palisade_store::EventStream::Monitor,
                Some(&tenant),
                Some(key.name.as_str()),
                after,
                limit.min(MAX_EVENTS_PAGE),
            )
            .map_err(ServiceError::Store)?;
        let mut page = EventPage { last_seq: after, ..EventPage::default() };
        for row in rows {
            match serde_json::from_value::<MonitorEvent>(row.body) {
                Ok(mut e) => {
                    e.seq = row.id;
                    page.events.push(e);
                }
                Err(e) => tracing::warn!(id = row.id, error = %e, "a stored monitor event does not decode; skipped"),
            }
            page.last_seq = row.id;
        }
        Ok(page)
    }
}

pub(super) fn runtime_error(id: &str, e: GuestRuntimeError) -> ServiceError {
    match e {
        GuestRuntimeError::NotFound(_) => {
            ServiceError::GuestNotReady(format!("guest {id} has not been started yet; try again shortly"))
        }
        GuestRuntimeError::NotRunning { .. } => ServiceError::GuestNotReady(e.to_string()),
        GuestRuntimeError::Introspection { .. } => ServiceError::Introspection(e.to_string()),
    }
}
