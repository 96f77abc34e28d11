//! Monitor events of guest VMs (issue #5), tenant-scoped like the symbol table.

use palisade_model::{Object, ObjectKey};

use super::{runtime_error, visible, Controller, ServiceError};
use crate::auth::Scope;
use crate::monitors::EventPage;

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
}
