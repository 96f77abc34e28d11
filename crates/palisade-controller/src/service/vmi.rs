//! Monitor events of guest VMs (issue #5), tenant-scoped like the symbol table.

use palisade_model::{Object, ObjectKey};

use super::{runtime_error, visible, Controller, ServiceError};
use crate::auth::Scope;
use crate::monitors::{EventPage, MonitorEvent};

/// Most events one request returns.
pub const MAX_EVENTS_PAGE: usize = 10_000;

impl Controller {
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
