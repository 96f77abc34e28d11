//! `/v1/scans`: Type 2 scan tasks (issue #7). A task runs in its own task space and reaches
//! exactly one VM; a tenant token may scan and list only its own tenant's VMs.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palisade_model::{Inventory, Object, ObjectKey};
use palisade_scan::{Profile, Target, TargetError};
use serde::Deserialize;
use tracing::error;

use super::{blocking, scope, ApiError, AppState};
use crate::auth::Scope;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunBody {
    /// `tenant/vm`.
    target: String,
    /// TCP ports (default: Palisade's port-scan profile).
    tcp: Option<Vec<u16>>,
    /// UDP ports (default none).
    udp: Option<Vec<u16>>,
    /// Probes in flight at once (1-1024).
    concurrency: Option<usize>,
    /// Per-probe timeout in ms (1-10000).
    timeout_ms: Option<u64>,
    /// `port-scan` (default) or `vuln-scan` (nmap with service detection and offline-safe
    /// vulnerability scripts).
    kind: Option<palisade_model::ScanKind>,
    /// vuln-scan: identify services and versions (default true).
    service_detection: Option<bool>,
    /// vuln-scan: only these scripts of the offline-safe set (default all of it).
    scripts: Option<Vec<String>>,
}

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

fn profile(body: &RunBody) -> Result<Profile, ApiError> {
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
    let scans = st.scans.clone().ok_or_else(unavailable)?;
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
    body: Result<Json<RunBody>, axum::extract::rejection::JsonRejection>,
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
    let mut record = blocking(move || Ok(scans.run(&target, &profile))).await?;
    if scope != Scope::Admin {
        // Tenants get the reason's first sentence; the chain (commands, their output) is logged.
        record.reason = record.reason.map(|r| r.split(": ").next().unwrap_or_default().to_owned());
    }
    Ok(Json(record).into_response())
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
    let mut records = blocking(move || Ok(palisade_scan::schedule::run_targets(&scans, &targets, &spec))).await?;
    if scope != Scope::Admin {
        for r in &mut records {
            r.reason = r.reason.take().map(|r| r.split(": ").next().unwrap_or_default().to_owned());
        }
    }
    Ok(Json(records).into_response())
}

/// `GET /v1/scans`: the tasks the caller may see, oldest first.
pub(super) async fn list(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let Some(scans) = st.scans.clone() else { return Ok(Json(Vec::<()>::new()).into_response()) };
    let mut tasks = scans.tasks(scope.tenant().map(|t| t.as_str())).map_err(|e| {
        error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "reading scan tasks failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the controller log")
    })?;
    if scope != Scope::Admin {
        for t in &mut tasks {
            t.reason = t.reason.take().map(|r| r.split(": ").next().unwrap_or_default().to_owned());
        }
    }
    Ok(Json(tasks).into_response())
}
