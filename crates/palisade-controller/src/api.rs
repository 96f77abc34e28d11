//! The REST/JSON API. Its contract is `docs/openapi.json`, served at `/openapi.json`.
//!
//! Every `/v1` route needs `Authorization: Bearer <token>`. A tenant token sees only its own
//! tenant: another tenant's objects answer 404, exactly like absent ones. Error bodies are
//! `{"error": "...", "details": [...]}` and never carry internal causes (those go to the log).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use palisade_api::{AlertPage, ApplyRequest, ErrorBody, Status, Symbols};
use palisade_host::ErrorChain;
use palisade_model::{Kind, ObjectKey};
use serde::Deserialize;
use tracing::error;

use crate::auth::{Scope, Tokens};
use crate::service::{Controller, ServiceError};

mod scans;

/// The OpenAPI document, checked in and served as is.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

#[derive(Debug, Clone)]
struct AppState {
    controller: Arc<Controller>,
    tokens: Arc<Tokens>,
}

/// Largest request body accepted: policy files for thousands of policies run to a few MB.
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// Builds the router over `controller` and the services it was given (guests, detectors,
/// scans: see [`Controller::with_guests`] and its siblings).
pub fn router(controller: Arc<Controller>, tokens: Arc<Tokens>) -> Router {
    let v1 = Router::new()
        .route("/apply", post(apply))
        .route("/objects", get(list))
        .route("/objects/{kind}/{name}", get(get_global).delete(delete_global))
        .route("/objects/{kind}/{tenant}/{name}", get(get_owned).delete(delete_owned))
        .route("/flows", get(flows))
        .route("/audit", get(audit))
        .route("/status", get(status))
        .route("/reconcile", post(reconcile))
        .route("/guests", get(guests))
        .route("/vmi/{tenant}/{vm}/symbols", get(symbols))
        .route("/vmi/{tenant}/{vm}/events", get(events))
        .route("/alerts", get(alerts))
        .route("/detectors", get(detectors))
        .route("/scans", get(scans::list).post(scans::run))
        .route("/scans/policy/{tenant}/{name}", post(scans::run_policy));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .nest("/v1", v1)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState { controller, tokens })
}

#[derive(Debug)]
struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self(status, ErrorBody { error: msg.into(), details: Vec::new() })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(errs) => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody {
                    error: "the change is invalid; nothing was changed".to_owned(),
                    details: errs.iter().map(ToString::to_string).collect(),
                },
            ),
            ServiceError::InUse(what, details) => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody {
                    error: format!("cannot delete {what}: other objects refer to it; nothing was changed"),
                    details,
                },
            ),
            ServiceError::NotFound(what) => ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found")),
            ServiceError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, why),
            ServiceError::GuestNotReady(why) => ApiError::new(StatusCode::CONFLICT, why),
            ServiceError::Introspection(why) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why),
            ServiceError::Rejected(_) => {
                error!(error = %ErrorChain(&e), "change rejected by the switch");
                ApiError::new(StatusCode::CONFLICT, "the switch rejected the change; the previous rules stay in place")
            }
            other => {
                error!(error = %ErrorChain(&other), "request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the controller log")
            }
        }
    }
}

fn scope(state: &AppState, headers: &HeaderMap) -> Result<Scope, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    state
        .tokens
        .scope_of(presented.trim())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid bearer token"))
}

/// Runs blocking controller work off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => {
            error!(error = %e, "worker task failed");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the controller log"))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct DryRun {
    #[serde(default)]
    dry_run: bool,
}

async fn apply(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DryRun>,
    body: Result<Json<ApplyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let Json(body) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text())))?;
    let c = st.controller.clone();
    let out = blocking(move || {
        let out = c.apply(&scope, &body.file, &body.content, q.dry_run)?;
        // Guests added or removed start or stop now rather than at the next reconcile pass.
        c.reconcile_guests();
        c.reconcile_detectors();
        Ok(out)
    })
    .await?;
    Ok(Json(out).into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    kind: Option<String>,
}

fn parse_kind(s: &str) -> Result<Kind, ApiError> {
    s.parse().map_err(|e: palisade_model::types::ValueError| ApiError::new(StatusCode::BAD_REQUEST, e.0))
}

async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let kind = q.kind.as_deref().map(parse_kind).transpose()?;
    Ok(Json(st.controller.objects(&scope, kind)).into_response())
}

fn key(kind: &str, tenant: Option<&str>, name: &str) -> Result<ObjectKey, ApiError> {
    let kind = parse_kind(kind)?;
    let owned = !matches!(kind, Kind::Tenant | Kind::Appliance);
    if owned != tenant.is_some() {
        let shape = if owned { "/v1/objects/{kind}/{tenant}/{name}" } else { "/v1/objects/{kind}/{name}" };
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("a {kind} is addressed as {shape}")));
    }
    let bad = |e: palisade_model::types::ValueError| ApiError::new(StatusCode::BAD_REQUEST, e.0);
    Ok(ObjectKey { kind, tenant: tenant.map(str::parse).transpose().map_err(bad)?, name: name.parse().map_err(bad)? })
}

async fn get_global(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    Ok(Json(st.controller.object(&scope, &key(&kind, None, &name)?)?).into_response())
}

async fn get_owned(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((kind, tenant, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    Ok(Json(st.controller.object(&scope, &key(&kind, Some(&tenant), &name)?)?).into_response())
}

async fn guests(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    Ok(Json(st.controller.guests(&scope)).into_response())
}

#[derive(Debug, Deserialize)]
struct SymbolQuery {
    /// A regular expression the names must match.
    grep: Option<String>,
}

async fn symbols(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SymbolQuery>,
    Path((tenant, vm)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let filter = match &q.grep {
        Some(p) => Some(regex::Regex::new(p).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("grep: not a valid regular expression: {e}"))
        })?),
        None => None,
    };
    let key = key("vm", Some(&tenant), &vm)?;
    let c = st.controller.clone();
    let table = blocking(move || c.symbols(&scope, &key)).await?;
    let body = Symbols {
        vm: format!("{tenant}/{vm}"),
        virt_base: format!("{:#x}", table.virt_base),
        phys_base: format!("{:#x}", table.phys_base),
        kaslr_slide: table.kaslr_slide,
        layout: table.layout.clone(),
        recovery_ms: table.recovery_ms,
        total: table.symbols.len(),
        symbols: table
            .symbols
            .iter()
            .filter(|s| filter.as_ref().is_none_or(|f| f.is_match(&s.name)))
            .cloned()
            .collect(),
    };
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    /// Only events with a higher sequence number.
    #[serde(default)]
    after: u64,
    /// At most this many.
    limit: Option<usize>,
    /// The stored history (store ids) instead of the recent events in memory.
    #[serde(default)]
    history: bool,
}

async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventQuery>,
    Path((tenant, vm)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let key = key("vm", Some(&tenant), &vm)?;
    let c = st.controller.clone();
    let limit = q.limit.unwrap_or(1000);
    let page = blocking(move || {
        if q.history {
            c.event_history(&scope, &key, q.after, limit)
        } else {
            c.events(&scope, &key, q.after, limit)
        }
    })
    .await?;
    Ok(Json(page).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    /// Only this tenant's (a tenant token's own by default).
    tenant: Option<String>,
    /// Only this VM's (needs the tenant).
    vm: Option<String>,
    /// Only alerts with a higher id.
    #[serde(default)]
    after: u64,
    /// At most this many.
    limit: Option<usize>,
}

async fn alerts(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let c = st.controller.clone();
    let limit = q.limit.unwrap_or(1000);
    let after = q.after;
    let alerts = blocking(move || c.alerts(&scope, q.tenant.as_deref(), q.vm.as_deref(), q.after, limit)).await?;
    let last_id = alerts.last().map_or(after, |a| a.id);
    Ok(Json(AlertPage { alerts, last_id }).into_response())
}

async fn detectors(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    Ok(Json(st.controller.detectors(&scope)).into_response())
}

async fn delete_key(st: AppState, headers: HeaderMap, key: ObjectKey, dry_run: bool) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let c = st.controller.clone();
    let out = blocking(move || {
        let out = c.delete(&scope, &key, dry_run)?;
        c.reconcile_guests();
        c.reconcile_detectors();
        Ok(out)
    })
    .await?;
    Ok(Json(out).into_response())
}

async fn delete_global(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DryRun>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = key(&kind, None, &name)?;
    delete_key(st, headers, key, q.dry_run).await
}

async fn delete_owned(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DryRun>,
    Path((kind, tenant, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let key = key(&kind, Some(&tenant), &name)?;
    delete_key(st, headers, key, q.dry_run).await
}

async fn flows(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let c = st.controller.clone();
    Ok(Json(blocking(move || c.flows(&scope)).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    let c = st.controller.clone();
    let limit = q.limit.unwrap_or(50).min(1000);
    Ok(Json(blocking(move || c.audit(&scope, limit)).await?).into_response())
}

async fn status(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scope = scope(&st, &headers)?;
    Ok(Json(Status { revision: st.controller.revision(), scope: scope.actor() }).into_response())
}

async fn reconcile(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if scope(&st, &headers)? != Scope::Admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "reconcile needs the admin token"));
    }
    let c = st.controller.clone();
    let out = blocking(move || {
        let out = c.reconcile()?;
        c.reconcile_guests();
        c.reconcile_detectors();
        Ok(out)
    })
    .await?;
    Ok(Json(out).into_response())
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut text = st.controller.metrics.render();
    text.push_str(&crate::monitors::metrics(&st.controller.guests(&Scope::Admin)));
    text.push_str(&crate::anomaly::metrics(&st.controller.detectors(&Scope::Admin)));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
