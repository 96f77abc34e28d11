//! Anomaly detectors and their alerts (issue #6), tenant-scoped like monitor events.

use palisade_store::EventStream;

use super::vmi::MAX_EVENTS_PAGE;
use super::{Controller, ServiceError};
use crate::anomaly::{AlertRecord, DetectorStatus};
use crate::auth::Scope;

impl Controller {
    /// Detectors the caller may see.
    pub fn detectors(&self, scope: &Scope) -> Vec<DetectorStatus> {
        let mut all = self.detectors.status();
        if let Scope::Tenant(t) = scope {
            let prefix = format!("{t}/");
            all.retain(|d| d.vm.starts_with(&prefix));
        }
        all
    }

    /// Up to `limit` stored anomaly alerts with an id above `after`, oldest first. A tenant
    /// token reads its own tenant's only; asking for another tenant's is not found. `vm` needs
    /// a tenant (the token's, or `tenant` for the admin).
    pub fn alerts(
        &self,
        scope: &Scope,
        tenant: Option<&str>,
        vm: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, ServiceError> {
        let tenant = match (scope, tenant) {
            (Scope::Tenant(own), Some(t)) if own.as_str() != t => {
                return Err(ServiceError::NotFound(format!("tenant `{t}`")));
            }
            (Scope::Tenant(own), _) => Some(own.to_string()),
            (Scope::Admin, t) => t.map(str::to_owned),
        };
        if vm.is_some() && tenant.is_none() {
            return Err(ServiceError::Invalid(vec![palisade_model::FileError {
                file: "request".to_owned(),
                line: None,
                field: "vm".to_owned(),
                message: "a VM name needs its tenant (`tenant=`)".to_owned(),
            }]));
        }
        let rows = self
            .store
            .events(EventStream::Alerts, tenant.as_deref(), vm, after, limit.min(MAX_EVENTS_PAGE))
            .map_err(ServiceError::Store)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_value::<AlertRecord>(row.body) {
                Ok(mut a) => {
                    a.id = row.id;
                    out.push(a);
                }
                Err(e) => tracing::warn!(id = row.id, error = %e, "a stored anomaly alert does not decode; skipped"),
            }
        }
        Ok(out)
    }
}
