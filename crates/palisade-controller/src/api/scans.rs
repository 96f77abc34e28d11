//! `/v1/scans`: Type 2 scan tasks (issue #7). A task runs in its own task space and reaches
//! exactly one VM; a tenant token may scan and list only its own tenant's VMs. A failed task's
//! reason is for everyone; its `detail` (the error chain: commands, their output) only for the
//! admin token ([`shown`]), and in the log.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palisade_api::scans::{ScanRequest, TaskRecord};
use palisade_model::{Inventory, Object, ObjectKey};
use palisade_scan::{Profile, Target, TargetError};
use tracing::error;

use super::{blocking, scope, ApiError, AppState};
use crate::auth::Scope;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

fn unavailable() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "scanning is not enabled on this controller")
}

/// The desired state as `scope` sees it.
fn inventory(st: &AppState, scope: &Scope) -> Inventory {
    st.controller.inventory(scope)
}

/// A task as `scope` may see it: tenants are not shown the operator's `detail`.
fn shown(scope: &Scope, task: TaskRecord) -> TaskRecord {
    if *scope == Scope::Admin {
        task
    } else {
        task.for_tenant()
    }
}

fn profile(body: &ScanRequest) -> Result<Profile, ApiError> {
    let mut p = Profile::default();
    if let Some(tcp) = &body.tcp {
        p.tcp.clone_from(tcp);
    }
    if let Some(udp) = &body.udp {
        p.udp.clone_from(udp);
    }
    if p.tcp.is_empty() && p.udp.is_empty() {
        return Err(bad("a scan needs at least one port"));
    }
    if p.tcp.iter().chain(&p.udp).any(|&port| port == 0) {
        return Err(bad("port 0 cannot be scanned"));
    }
    if let Some(c) = body.concurrency {
        if !(1..=1024).contains(&c) {
            return Err(bad("concurrency must be between 1 and 1024"));
        }
        p.concurrency = c;
    }
    if let Some(t) = body.timeout_ms {
        if !(1..=10_000).contains(&t) {
            return Err(bad("timeout_ms must be between 1 and 10000"));
        }
        p.timeout_ms = t;
    }
    if let Some(kind) = body.kind {
        p.kind = kind;
    }
    if body.service_detection.is_some() || body.scripts.is_some() {
        if p.kind != palisade_model::ScanKind::VulnScan {
            return Err(bad("service_detection and scripts need kind vuln-scan"));
        }
        p.service_detection = body.service_detection.unwrap_or(true);
        let scripts = body.scripts.clone().unwrap_or_default();
        if scripts.len() > palisade_model::scan::MAX_SCRIPTS {
            return Err(bad(format!("name at most {} scripts", palisade_model::scan::MAX_SCRIPTS)));
        }
        if let Some(bad_name) = scripts.iter().find(|n| !palisade_model::scan::is_script_name(n)) {
            return Err(bad(format!("`{bad_name}` is not an nmap script name")));
        }
        p.scripts = scripts;
    }
    Ok(p)
}

/// The scan engine, if this controller runs one and its pool is clear of every tenant subnet.
fn engine(st: &AppState) -> Result<std::sync::Arc<palisade_scan::ScanService>, ApiError> {
    let scans = st.controller.scans().ok_or_else(unavailable)?;
    if let Err(e) = scans.check_pool(&inventory(st, &Scope::Admin)) {
        error!(error = %e, "the task address pool overlaps a tenant subnet; scanning refused");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the task address pool overlaps a tenant subnet; the operator must choose another pool",
        ));
    }
    Ok(scans)
}

/// `POST /v1/scans`: runs a port-scan or vuln-scan task now and answers with its record.
pub(super) async fn run(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ScanRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let Json(body) = body.map_err(|e| bad(format!("request body: {}", e.body_text())))?;
    let (tenant, vm) = body.target.split_once('/').ok_or_else(|| bad("target must be tenant/vm"))?;
    let (tenant, vm) = match (tenant.parse(), vm.parse()) {
        (Ok(t), Ok(v)) => (t, v),
        _ => return Err(bad(format!("target `{}` is not tenant/vm", body.target))),
    };
    let profile = profile(&body)?;
    let target = Target::resolve(&inventory(&st, &scope), &tenant, &vm).map_err(|e| match e {
        TargetError::UnknownVm(_) => ApiError::new(StatusCode::NOT_FOUND, format!("vm {} not found", body.target)),
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    })?;
    let scans = engine(&st)?;
    let record = blocking(move || Ok(scans.run(&target, &profile))).await?;
    Ok(Json(shown(&scope, record)).into_response())
}

/// `POST /v1/scans/policy/{tenant}/{name}`: runs a `scan` policy now against every VM it
/// targets (VM, subdomain, domain or the whole tenant), at most its concurrency at once, and
/// answers with the finished tasks. Another tenant's policy is not found.
pub(super) async fn run_policy(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path((tenant, name)): axum::extract::Path<(String, String)>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("policy {tenant}/{name} not found"));
    let (Ok(tenant_name), Ok(policy_name)) = (tenant.parse::<palisade_model::Name>(), name.parse()) else {
        return Err(not_found());
    };
    let inv = inventory(&st, &scope);
    let key = ObjectKey { kind: palisade_model::Kind::Policy, tenant: Some(tenant_name.clone()), name: policy_name };
    let spec = match inv.objects.get(&key) {
        Some(Object::Policy(p)) => match &p.scan {
            Some(spec) => (**spec).clone(),
            None => return Err(bad(format!("policy {tenant}/{name} is not a scan policy"))),
        },
        _ => return Err(not_found()),
    };
    let scans = engine(&st)?;
    let targets = palisade_scan::schedule::targets(&inv, &tenant_name, &spec)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let records = blocking(move || Ok(palisade_scan::schedule::run_targets(&scans, &targets, &spec))).await?;
    let records: Vec<TaskRecord> = records.into_iter().map(|r| shown(&scope, r)).collect();
    Ok(Json(records).into_response())
}

/// `GET /v1/scans`: the tasks the caller may see, oldest first.
pub(super) async fn list(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let Some(scans) = st.controller.scans() else { return Ok(Json(Vec::<TaskRecord>::new()).into_response()) };
    let tasks = scans.tasks(scope.tenant().map(|t| t.as_str())).map_err(|e| {
        error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "reading scan tasks failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the controller log")
    })?;
    let tasks: Vec<TaskRecord> = tasks.into_iter().map(|t| shown(&scope, t)).collect();
    Ok(Json(tasks).into_response())
}

#[cfg(test)]
mod tests {
    use palisade_api::scans::{FailureReason, TaskState};

    use super::*;

    #[test]
    fn only_the_admin_token_is_shown_a_failed_tasks_detail() {
        let task = TaskRecord {
            id: 3,
            tenant: "alpha".into(),
            target: "alpha/web1".into(),
            kind: palisade_model::ScanKind::PortScan,
            state: TaskState::Failed,
            reason: Some(FailureReason::SpaceCreate),
            detail: Some("could not create the task space: `ip netns add pst-00000003` failed: File exists".into()),
            started_ms: 0,
            duration_ms: 2.0,
            open: Vec::new(),
            ports: Vec::new(),
            services: Vec::new(),
            findings: Vec::new(),
        };

        let tenant = shown(&Scope::Tenant("alpha".parse().unwrap()), task.clone());
        let admin = shown(&Scope::Admin, task.clone());

        assert_eq!((tenant.reason.clone(), tenant.detail), (Some(FailureReason::SpaceCreate), None));
        assert_eq!(admin, task);
    }
}
