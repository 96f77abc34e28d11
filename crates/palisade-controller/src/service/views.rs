//! What the caller may read of the desired state: objects, the inventory, compiled flows, the
//! audit log and the revision, each as the caller's scope allows.

use palisade_api::{AuditEntry, FlowTable, ObjectView};
use palisade_model::{Inventory, Kind, Object, ObjectKey};

use super::{sees_owner, visible, Controller, ServiceError};
use crate::auth::Scope;

/// How the API shows object `key`.
fn view(key: &ObjectKey, obj: &Object) -> ObjectView {
    ObjectView {
        kind: key.kind,
        tenant: key.tenant.as_ref().map(|t| t.to_string()),
        name: key.name.to_string(),
        spec: obj.to_json(),
    }
}

impl Controller {
    /// Objects the caller may see, optionally of one kind.
    pub fn objects(&self, scope: &Scope, kind: Option<Kind>) -> Vec<ObjectView> {
        let cell = self.lock();
        cell.0
            .inventory
            .objects
            .iter()
            .filter(|(k, o)| kind.is_none_or(|kind| k.kind == kind) && visible(scope, k, o))
            .map(|(k, o)| view(k, o))
            .collect()
    }

    /// The desired state as `scope` sees it: the admin all of it, a tenant its own objects
    /// and the appliances attached to its domains.
    pub fn inventory(&self, scope: &Scope) -> Inventory {
        let cell = self.lock();
        let objects =
            cell.0.inventory.objects.iter().filter(|(k, o)| visible(scope, k, o)).map(|(k, o)| (k.clone(), o.clone()));
        Inventory { objects: objects.collect() }
    }

    /// One object, if the caller may see it.
    pub fn object(&self, scope: &Scope, key: &ObjectKey) -> Result<ObjectView, ServiceError> {
        let cell = self.lock();
        match cell.0.inventory.objects.get(key) {
            Some(o) if visible(scope, key, o) => Ok(view(key, o)),
            _ => Err(ServiceError::NotFound(key.to_string())),
        }
    }

    /// The compiled rules the caller may see, per owner.
    pub fn flows(&self, scope: &Scope) -> Result<FlowTable, ServiceError> {
        let cell = self.lock();
        let (ports, _) = match &cell.0.view {
            Some(v) => (v.ports.clone(), true),
            None => self.ports(),
        };
        let mut program = self.compile(&cell.0.inventory, &ports)?;
        program.owners.retain(|_, o| sees_owner(scope, &o.name));
        program.pending.retain(|p| sees_owner(scope, p));
        Ok(crate::wire::flow_table(program))
    }

    /// The audit log the caller may see.
    pub fn audit(&self, scope: &Scope, limit: usize) -> Result<Vec<AuditEntry>, ServiceError> {
        let entries = self.store.audit(scope.tenant().map(|t| t.as_str()), limit).map_err(ServiceError::Store)?;
        Ok(entries.into_iter().map(crate::wire::audit_entry).collect())
    }

    /// The current desired-state revision.
    pub fn revision(&self) -> u64 {
        self.lock().0.revision
    }
}
