//! The REST API against its OpenAPI document, tenant scoping and atomic rejection (issue #2).
//! Uses the in-memory store and the recording switch; the lab test covers the real ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use palisade_controller::guests::{FakeGuests, SymbolEntry};
use palisade_controller::{api, Controller, Secret, SymbolTable, Tokens};
use palisade_ovs::{RecordingSwitch, Switch};
use palisade_store::{SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const LAB: &str = include_str!("../../../examples/lab.yaml");
const REDIRECT: &str = include_str!("../../../examples/redirect.yaml");
const GUEST: &str = include_str!("../../../examples/guest.yaml");
const ADMIN: &str = "admin-token-0123456789";
const ALPHA: &str = "alpha-token-0123456789";
const BETA: &str = "beta-token-01234567890";

fn setup() -> (Router, Arc<RecordingSwitch>, Arc<SqliteStore>) {
    setup_with(Arc::new(FakeGuests::new(fake_symbols())))
}

fn setup_with(guests: Arc<FakeGuests>) -> (Router, Arc<RecordingSwitch>, Arc<SqliteStore>) {
    let ports = ["pa-web1", "pa-web2", "pb-web1", "pb-web2", "pa-fw1", "pg-alpha-web", "pg-beta-web"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), i as u32 + 1))
        .collect();
    let switch = Arc::new(RecordingSwitch::with_ports(ports));
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let controller = Arc::new(
        Controller::open(store.clone() as Arc<dyn Store>, switch.clone() as Arc<dyn Switch>)
            .unwrap()
            .with_guests(guests),
    );
    (api::router(controller, Arc::new(tokens())), switch, store)
}

fn tokens() -> Tokens {
    Tokens {
        admin: Secret::new(ADMIN),
        tenants: BTreeMap::from([
            ("alpha".parse().unwrap(), Secret::new(ALPHA)),
            ("beta".parse().unwrap(), Secret::new(BETA)),
        ]),
    }
}

fn fake_symbols() -> SymbolTable {
    let sym = |address, kind, name: &str| SymbolEntry { address, kind, name: name.to_owned() };
    SymbolTable {
        virt_base: 0xffff_ffff_8a00_0000,
        phys_base: 0x3a00_0000,
        kaslr_slide: 0x900_0000,
        layout: "fake".to_owned(),
        recovery_ms: 1,
        symbols: vec![
            sym(0xffff_ffff_8a00_0000, 'T', "_text"),
            sym(0xffff_ffff_8a10_0000, 'T', "module_alloc"),
            sym(0xffff_ffff_8a20_0000, 't', "module_alloc_helper"),
        ],
    }
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

async fn apply(app: &Router, token: &str, file: &str, content: &str) -> (StatusCode, Value) {
    call(app, "POST", "/v1/apply", Some(token), Some(json!({ "file": file, "content": content }))).await
}

#[tokio::test]
async fn tenant_token_sees_only_its_tenant() {
    let (app, _, _) = setup();
    assert_eq!(apply(&app, ADMIN, "lab.yaml", LAB).await.0, StatusCode::OK);
    assert_eq!(apply(&app, ADMIN, "redirect.yaml", REDIRECT).await.0, StatusCode::OK);

    let (st, vms) = call(&app, "GET", "/v1/objects?kind=vm", Some(BETA), None).await;
    assert_eq!(st, StatusCode::OK);
    let tenants: Vec<&str> = vms.as_array().unwrap().iter().map(|v| v["tenant"].as_str().unwrap()).collect();
    assert_eq!(tenants, vec!["beta", "beta"]);

    // Another tenant's object answers exactly like an absent one.
    let (st_other, other) = call(&app, "GET", "/v1/objects/vm/alpha/web1", Some(BETA), None).await;
    let (st_none, none) = call(&app, "GET", "/v1/objects/vm/beta/nosuch", Some(BETA), None).await;
    assert_eq!((st_other, st_none), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(
        other["error"].as_str().unwrap().replace("alpha/web1", "X"),
        none["error"].as_str().unwrap().replace("beta/nosuch", "X")
    );
    assert_eq!(call(&app, "GET", "/v1/objects/appliance/fw1", Some(BETA), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&app, "DELETE", "/v1/objects/policy/alpha/web1-to-web2-via-fw", Some(BETA), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, flows) = call(&app, "GET", "/v1/flows", Some(BETA), None).await;
    assert!(flows["owners"].as_object().unwrap().is_empty(), "{flows}");
    let (_, audit) = call(&app, "GET", "/v1/audit", Some(BETA), None).await;
    assert!(!audit.to_string().contains("alpha"), "{audit}");

    // Beta cannot write into alpha either.
    let sneaky = REDIRECT.replace("tenant: alpha", "tenant: beta");
    assert_ne!(apply(&app, BETA, "x.yaml", &sneaky).await.0, StatusCode::OK);
    let (st, _) = apply(&app, BETA, "x.yaml", "tenants:\n  - name: alpha\n").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Alpha sees its policy and flows.
    let (_, flows) = call(&app, "GET", "/v1/flows", Some(ALPHA), None).await;
    assert_eq!(flows["owners"].as_object().unwrap().len(), 1);
    // No token, bad token.
    assert_eq!(call(&app, "GET", "/v1/objects", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&app, "GET", "/v1/objects", Some("wrong-token-0000000000"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn invalid_file_changes_nothing_and_names_the_line() {
    let (app, switch, store) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    let bundles = switch.bundles().len();
    let revision = store.revision().unwrap();
    let bad = "policies:\n  - name: p\n    tenant: alpha\n    redirect:\n      destination: { vm: web2 }\n      appliance: nosuch\n      fail_mode: open\n";
    let (st, body) = apply(&app, ADMIN, "bad.yaml", bad).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"][0], "bad.yaml:6: policies[0].redirect.appliance: unknown appliance `nosuch`");
    assert_eq!(switch.bundles().len(), bundles);
    assert_eq!(store.revision().unwrap(), revision);
}

#[tokio::test]
async fn rejected_bundle_leaves_store_and_switch_unchanged() {
    let (app, switch, store) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    let revision = store.revision().unwrap();
    let installed = switch.installed().unwrap();
    switch.reject_next_commit();
    let (st, body) = apply(&app, ADMIN, "redirect.yaml", REDIRECT).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(!body.to_string().contains("rejected by test"), "internals leaked: {body}");
    assert_eq!(store.revision().unwrap(), revision);
    assert_eq!(switch.installed().unwrap(), installed);
    // The same change goes through once the switch accepts it.
    assert_eq!(apply(&app, ADMIN, "redirect.yaml", REDIRECT).await.0, StatusCode::OK);
}

/// Changes plan against the controller's model of the switch (no read-back per change); when
/// someone changed the switch behind its back, the change still lands (issue #2).
#[tokio::test]
async fn a_change_repairs_a_switch_changed_behind_its_back() {
    let (app, switch, _) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    apply(&app, ADMIN, "redirect.yaml", REDIRECT).await;
    let groups = switch.installed().unwrap().groups;
    assert!(!groups.is_empty());
    let delete: Vec<String> = groups.iter().map(|g| format!("group delete group_id={g}")).collect();
    switch.commit(&delete).unwrap();

    // Moving the appliance to a new MAC modifies its group, which is no longer there.
    let moved = LAB.replace("02:00:00:65:01:fe", "02:00:00:65:01:fd");
    let (st, body) = apply(&app, ADMIN, "lab.yaml", &moved).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(switch.installed().unwrap().groups, groups);
    let last = switch.bundles().last().cloned().unwrap();
    assert!(last.iter().any(|l| l.starts_with("group add") && l.contains("02:00:00:65:01:fd")), "{last:?}");
}

#[tokio::test]
async fn dry_run_and_idempotent_apply() {
    let (app, switch, store) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    let body = json!({ "file": "redirect.yaml", "content": REDIRECT });
    let (st, out) = call(&app, "POST", "/v1/apply?dry_run=true", Some(ADMIN), Some(body)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(out["objects"][0]["op"], "create");
    assert_eq!(out["rules"].as_array().unwrap().len(), 2);
    let revision = store.revision().unwrap();
    assert_eq!(store.revision().unwrap(), revision);
    apply(&app, ADMIN, "redirect.yaml", REDIRECT).await;
    let bundles = switch.bundles().len();
    let (_, again) = apply(&app, ADMIN, "redirect.yaml", REDIRECT).await;
    assert_eq!(again["objects"][0]["op"], "unchanged");
    assert_eq!(switch.bundles().len(), bundles, "an unchanged apply sends no bundle");
}

/// Issue #3: guest VMs and their kernel symbols through the API, scoped per tenant.
#[tokio::test]
async fn guest_symbols_are_served_per_tenant() {
    let (app, _, _) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    assert_eq!(apply(&app, ADMIN, "guest.yaml", GUEST).await.0, StatusCode::OK);

    let (st, guests) = call(&app, "GET", "/v1/guests", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(guests[0]["vm"], "alpha/guest1");
    assert_eq!(guests[0]["state"], "running");
    let (_, none) = call(&app, "GET", "/v1/guests", Some(BETA), None).await;
    assert_eq!(none, json!([]));

    let (st, all) = call(&app, "GET", "/v1/vmi/alpha/guest1/symbols", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::OK, "{all}");
    assert_eq!((all["total"].as_u64(), all["symbols"].as_array().unwrap().len()), (Some(3), 3));
    assert_eq!(all["virt_base"], "0xffffffff8a000000");
    let (_, some) = call(&app, "GET", "/v1/vmi/alpha/guest1/symbols?grep=%5Emodule_alloc%24", Some(ADMIN), None).await;
    assert_eq!(some["symbols"], json!([{ "address": 0xffff_ffff_8a10_0000u64, "type": "T", "name": "module_alloc" }]));

    // Another tenant's guest answers like a missing one; a plain VM has no memory to read.
    let (st, _) = call(&app, "GET", "/v1/vmi/alpha/guest1/symbols", Some(BETA), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = call(&app, "GET", "/v1/vmi/alpha/web1/symbols", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("not a guest"), "{body}");
    let (st, body) = call(&app, "GET", "/v1/vmi/alpha/guest1/symbols?grep=%28", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().starts_with("grep:"), "{body}");

    // A monitor policy is enforced by this runtime: no "not enforced" message (issue #5).
    let monitor = include_str!("../../../examples/monitor.yaml");
    let (st, out) = apply(&app, ALPHA, "monitor.yaml", monitor).await;
    assert_eq!(st, StatusCode::OK, "{out}");
    assert!(!out["pending"].to_string().contains("not enforced"), "{out}");
}

/// Issue #5: monitor events through the API, paged by sequence and scoped per tenant.
#[tokio::test]
async fn monitor_events_are_served_per_tenant_and_paged_by_sequence() {
    let guests = Arc::new(FakeGuests::new(fake_symbols()));
    let (app, _, _) = setup_with(guests.clone());
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    apply(&app, ADMIN, "guest.yaml", GUEST).await;
    let (st, out) = apply(&app, ALPHA, "monitor.yaml", include_str!("../../../examples/monitor.yaml")).await;
    assert_eq!(st, StatusCode::OK, "{out}");
    let event = |index: u64, path: &str, action: &str| palisade_controller::monitors::MonitorEvent {
        seq: 0,
        time: "1764190000.000000001".into(),
        vm: "alpha/guest1".into(),
        index,
        operation: "openat".into(),
        file_name: path.rsplit('/').next().unwrap().into(),
        path: path.into(),
        process: "cat".into(),
        pid: 42,
        uid: 0,
        action: action.into(),
        rule: 1,
        policy: Some("alpha/watch-files".into()),
    };
    guests.push_event("alpha/guest1", event(0, "/etc/hosts", "block"));
    guests.push_event("alpha/guest1", event(1, "/etc/passwd", "record"));

    let (_, status) = call(&app, "GET", "/v1/guests", Some(ALPHA), None).await;
    assert_eq!(status[0]["monitor"]["state"], "active", "{status}");
    assert_eq!(status[0]["monitor"]["rules"], 3, "{status}");
    let (st, page) = call(&app, "GET", "/v1/vmi/alpha/guest1/events", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert_eq!(page["last_seq"], 2);
    assert_eq!(page["events"][0]["action"], "block");
    assert_eq!(page["events"][0]["path"], "/etc/hosts");
    let (_, rest) = call(&app, "GET", "/v1/vmi/alpha/guest1/events?after=1", Some(ALPHA), None).await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["events"][0]["seq"], 2);

    let (st, _) = call(&app, "GET", "/v1/vmi/alpha/guest1/events", Some(BETA), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(&app, "GET", "/v1/vmi/alpha/web1/events", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (_, m) = call(&app, "GET", "/metrics", None, None).await;
    assert!(m.as_str().unwrap().contains("palisade_monitor_events_lost_total{vm=\"alpha/guest1\"} 0"), "{m}");
}

/// Issue #5: the stored history outlives the runtime's memory (a restart, a new boot) and is
/// paged by store id, scoped per tenant like the recent events.
#[tokio::test]
async fn stored_event_history_is_paged_by_store_id_and_scoped_per_tenant() {
    use palisade_controller::monitors::{EventSink, MonitorEvent, StoreEvents};
    let (app, _, store) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    apply(&app, ADMIN, "guest.yaml", GUEST).await;
    let event = |vm: &str, index: u64, path: &str| MonitorEvent {
        seq: 0,
        time: "1764190000.000000001".into(),
        vm: vm.into(),
        index,
        operation: "openat".into(),
        file_name: path.rsplit('/').next().unwrap().into(),
        path: path.into(),
        process: "cat".into(),
        pid: 42,
        uid: 0,
        action: "record".into(),
        rule: 1,
        policy: None,
    };
    // What the runtime's store sink kept, e.g. before a controller restart.
    let sink = StoreEvents(store.clone() as Arc<dyn Store>);
    sink.record(&[event("alpha/guest1", 0, "/etc/hosts"), event("beta/guest1", 0, "/etc/shadow")]);
    sink.record(&[event("alpha/guest1", 1, "/etc/passwd"), event("alpha/guest1", 2, "/root/note")]);

    let (st, page) = call(&app, "GET", "/v1/vmi/alpha/guest1/events?history=true&limit=2", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let paths: Vec<&str> = page["events"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/etc/hosts", "/etc/passwd"]);
    assert_eq!(page["last_seq"], page["events"][1]["seq"]);
    let after = page["last_seq"].as_u64().unwrap();
    let uri = format!("/v1/vmi/alpha/guest1/events?history=true&after={after}");
    let (_, rest) = call(&app, "GET", &uri, Some(ALPHA), None).await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["events"][0]["path"], "/root/note");
    // The in-memory endpoint knows nothing of these: they only exist in the store.
    let (_, recent) = call(&app, "GET", "/v1/vmi/alpha/guest1/events", Some(ALPHA), None).await;
    assert_eq!(recent["events"].as_array().unwrap().len(), 0, "{recent}");

    let (st, _) = call(&app, "GET", "/v1/vmi/alpha/guest1/events?history=true", Some(BETA), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, all) = call(&app, "GET", "/v1/vmi/beta/guest1/events?history=true", Some(ADMIN), None).await;
    assert_eq!(all["events"][0]["path"], "/etc/shadow", "{all}");
}

/// Every operation in docs/openapi.json exists on the server, and every status the server
/// gives in these tests is documented for that operation.
#[tokio::test]
async fn server_matches_openapi_document() {
    let doc: Value = serde_json::from_str(api::OPENAPI).unwrap();
    let (app, _, _) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    apply(&app, ADMIN, "redirect.yaml", REDIRECT).await;
    apply(&app, ADMIN, "guest.yaml", GUEST).await;
    apply(&app, ADMIN, "scan.yaml", include_str!("../../../examples/scan.yaml")).await;
    let concrete = |path: &str| {
        path.replace("scans/policy/{tenant}/{name}", "scans/policy/alpha/web-ports")
            .replace("{kind}/{tenant}/{name}", "policy/alpha/web1-to-web2-via-fw")
            .replace("{tenant}/{vm}", "alpha/guest1")
            .replace("{kind}/{name}", "appliance/fw1")
    };
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let m = method.to_uppercase();
            let body = (m == "POST" && path == "/v1/apply").then(|| json!({ "file": "r.yaml", "content": REDIRECT }));
            let body = body.or_else(|| (m == "POST" && path == "/v1/scans").then(|| json!({ "target": "alpha/web1" })));
            let uri = format!("{}{}", concrete(path), if m == "DELETE" { "?dry_run=true" } else { "" });
            let (st, v) = call(&app, &m, &uri, Some(ADMIN), body).await;
            let documented = op["responses"].as_object().unwrap();
            assert!(documented.contains_key(st.as_str()), "{m} {path} answered {st} (undocumented): {v}");
            // This server runs no scan engine (the lab test runs the real one, issue #7).
            if (path == "/v1/scans" || path.starts_with("/v1/scans/policy/")) && m == "POST" {
                assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
                checked += 1;
                continue;
            }
            // fw1 is still used by the policy: deleting it must be refused, the rest succeed.
            if path == "/v1/objects/{kind}/{name}" && m == "DELETE" {
                assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
                assert!(v["details"][0].as_str().unwrap().contains("policy alpha/web1-to-web2-via-fw"), "{v}");
                checked += 1;
                continue;
            }
            assert!(st.is_success(), "{m} {path} answered {st}: {v}");
            let schema = &op["responses"][st.as_str()]["content"]["application/json"]["schema"];
            if let Some(r) = schema["$ref"].as_str() {
                let name = r.rsplit('/').next().unwrap();
                for field in doc["components"]["schemas"][name]["required"].as_array().into_iter().flatten() {
                    assert!(v.get(field.as_str().unwrap()).is_some(), "{m} {path}: reply lacks `{field}`: {v}");
                }
            }
            if m != "GET" || path.starts_with("/v1") {
                let (st, _) = call(&app, &m, &uri, None, None).await;
                if path.starts_with("/v1") {
                    assert_eq!(st, StatusCode::UNAUTHORIZED, "{m} {path} without a token");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 21);
    // Metrics are Prometheus text.
    let (_, m) = call(&app, "GET", "/metrics", None, None).await;
    assert!(m.as_str().unwrap().contains("palisade_flows_programmed "));
}

/// Issue #7: scan requests are checked before any engine is involved; without one, 503.
#[tokio::test]
async fn scan_requests_are_checked_and_scoped() {
    let (app, _, _) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    let (st, v) = call(&app, "POST", "/v1/scans", Some(ALPHA), Some(json!({ "target": "alpha/web1" }))).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], "scanning is not enabled on this controller");
    let (st, v) = call(&app, "POST", "/v1/scans", Some(ALPHA), Some(json!({ "target": "web1" }))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _) = call(&app, "POST", "/v1/scans", Some(ALPHA), Some(json!({ "target": "alpha/web1", "x": 1 }))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Another tenant's VM is "not found", exactly like an absent one.
    let (st, v) = call(&app, "POST", "/v1/scans", Some(ALPHA), Some(json!({ "target": "beta/web1" }))).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::NOT_FOUND, Some("vm beta/web1 not found")));
    let (st, v) = call(&app, "GET", "/v1/scans", Some(BETA), None).await;
    assert_eq!((st, v), (StatusCode::OK, json!([])));
}

/// Issue #7: a subdomain inside the scan task address pool is refused at apply (not first at
/// scan time), naming the subdomain and the pool; nothing of the file is applied.
#[tokio::test]
async fn subdomains_overlapping_a_reserved_range_are_refused_at_apply() {
    let switch = Arc::new(RecordingSwitch::with_ports(BTreeMap::new()));
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let controller = Arc::new(
        Controller::open(store.clone() as Arc<dyn Store>, switch as Arc<dyn Switch>)
            .unwrap()
            .with_reserved("the scan task address pool", "100.64.0.0/10".parse().unwrap()),
    );
    let tokens = Tokens { admin: Secret::new(ADMIN), tenants: BTreeMap::new() };
    let app = api::router(controller, Arc::new(tokens));
    let inside = LAB.replace("198.18.1.0/24", "100.64.7.0/24").replace("198.18.1.", "100.64.7.");

    let (st, out) = apply(&app, ADMIN, "lab.yaml", &inside).await;

    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let text = out.to_string();
    assert!(
        text.contains("subdomain alpha/web (100.64.7.0/24) overlaps the scan task address pool 100.64.0.0/10"),
        "{text}"
    );
    let (_, vms) = call(&app, "GET", "/v1/objects?kind=vm", Some(ADMIN), None).await;
    assert_eq!(vms.as_array().unwrap().len(), 0, "nothing applied: {vms}");
    assert_eq!(apply(&app, ADMIN, "lab.yaml", LAB).await.0, StatusCode::OK, "outside the pool is fine");
}

/// Issue #7: running a scan policy now is scoped like everything else: another tenant's policy
/// is not found, a policy of another kind is refused, and without an engine the answer is 503.
#[tokio::test]
async fn running_a_scan_policy_now_is_tenant_scoped() {
    let (app, _, _) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    apply(&app, ADMIN, "redirect.yaml", REDIRECT).await;
    apply(&app, ADMIN, "scan.yaml", include_str!("../../../examples/scan.yaml")).await;

    let (st, _) = call(&app, "POST", "/v1/scans/policy/alpha/web-ports", Some(BETA), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = call(&app, "POST", "/v1/scans/policy/alpha/web1-to-web2-via-fw", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("not a scan policy"), "{v}");
    let (st, _) = call(&app, "POST", "/v1/scans/policy/alpha/web-ports", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "no engine in this test; the lab test runs the real one");
}

/// A detector runtime that knows one model, `lab`, and records what it was asked to run.
#[derive(Debug, Default)]
struct FakeDetectors(std::sync::Mutex<Vec<String>>);

impl palisade_controller::anomaly::DetectorRuntime for FakeDetectors {
    fn reconcile(&self, desired: &[palisade_controller::anomaly::DesiredDetector]) {
        *self.0.lock().unwrap() = desired.iter().map(|d| format!("{} {} {}", d.vm, d.port, d.model)).collect();
    }
    fn status(&self) -> Vec<palisade_controller::anomaly::DetectorStatus> {
        Vec::new()
    }
    fn check_model(&self, model: &str) -> Result<(), String> {
        if model == "lab" {
            Ok(())
        } else {
            Err(format!("model `{model}` is not installed"))
        }
    }
}

/// Issue #6: `anomaly` policies need a model the controller has (refused whole otherwise);
/// alerts are read back from the store, each tenant only its own.
#[tokio::test]
async fn anomaly_policies_need_an_installed_model_and_alerts_are_tenant_scoped() {
    use palisade_controller::anomaly::{AlertRecord, AlertSink, Deviation, StoreAlerts};
    // Without a detector runtime, the policy is accepted and reported as not enforced.
    let (app, _, _) = setup();
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    let anomaly = include_str!("../../../examples/anomaly.yaml");
    let body = json!({ "file": "anomaly.yaml", "content": anomaly });
    let (st, v) = call(&app, "POST", "/v1/apply", Some(ALPHA), Some(body)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["pending"].to_string().contains("anomaly detection is not enforced yet"), "{v}");

    // With one: an unknown model refuses the file and nothing of it is applied.
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let detectors = Arc::new(FakeDetectors::default());
    let switch = Arc::new(RecordingSwitch::with_ports(BTreeMap::from([("pa-web1".to_string(), 1)])));
    let controller = Arc::new(
        Controller::open(store.clone() as Arc<dyn Store>, switch as Arc<dyn Switch>)
            .unwrap()
            .with_detectors(detectors.clone()),
    );
    let app = api::router(controller.clone(), Arc::new(tokens()));
    apply(&app, ADMIN, "lab.yaml", LAB).await;
    let bad = anomaly.replace("model: lab", "model: other");
    let (st, v) = call(&app, "POST", "/v1/apply", Some(ALPHA), Some(json!({ "file": "a.yaml", "content": bad }))).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["details"].to_string().contains("model `other` is not installed"), "{v}");
    let (_, objs) = call(&app, "GET", "/v1/objects?kind=policy", Some(ADMIN), None).await;
    assert_eq!(objs, json!([]), "nothing applied");
    let (st, v) =
        call(&app, "POST", "/v1/apply", Some(ALPHA), Some(json!({ "file": "a.yaml", "content": anomaly }))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["pending"], json!([]), "{v}");
    controller.reconcile_detectors();
    assert_eq!(*detectors.0.lock().unwrap(), ["alpha/web1 pa-web1 lab"]);

    // Alerts as the detectors' store sink keeps them.
    let alert = |vm: &str, score: f64| AlertRecord {
        kind: "anomaly".into(),
        id: 0,
        vm: vm.into(),
        policy: "alpha/web-nad".into(),
        model: "lab".into(),
        window_start: "1764190000".into(),
        window: "1".into(),
        score,
        threshold: 0.5,
        top_features: vec![Deviation { feature: "syn_count".into(), value: 900.0, z: 14.0 }],
    };
    let sink = StoreAlerts(store.clone() as Arc<dyn Store>);
    sink.alert(&alert("alpha/web1", 0.9));
    sink.alert(&alert("beta/web1", 0.8));
    sink.alert(&alert("alpha/web2", 0.7));
    let (st, page) = call(&app, "GET", "/v1/alerts", Some(ALPHA), None).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let scores: Vec<f64> = page["alerts"].as_array().unwrap().iter().map(|a| a["score"].as_f64().unwrap()).collect();
    assert_eq!(scores, [0.9, 0.7]);
    assert_eq!(page["last_id"], 3);
    assert_eq!(page["alerts"][0]["top_features"][0]["feature"], "syn_count");
    let (_, web1) = call(&app, "GET", "/v1/alerts?vm=web1", Some(ALPHA), None).await;
    assert_eq!(web1["alerts"].as_array().unwrap().len(), 1, "{web1}");
    let (_, after) = call(&app, "GET", "/v1/alerts?after=1", Some(ALPHA), None).await;
    assert_eq!(after["alerts"][0]["id"], 3, "{after}");
    let (_, beta) = call(&app, "GET", "/v1/alerts", Some(BETA), None).await;
    assert_eq!(beta["alerts"].as_array().unwrap().len(), 1, "{beta}");
    assert_eq!(beta["alerts"][0]["vm"], "beta/web1");
    let (st, _) = call(&app, "GET", "/v1/alerts?tenant=alpha", Some(BETA), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "another tenant's alerts are not found");
    let (st, _) = call(&app, "GET", "/v1/alerts?vm=web1", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "the admin names the tenant of a VM");
    let (_, all) = call(&app, "GET", "/v1/alerts?tenant=beta&vm=web1", Some(ADMIN), None).await;
    assert_eq!(all["alerts"].as_array().unwrap().len(), 1, "{all}");
    let (st, _) = call(&app, "GET", "/v1/alerts?colour=red", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}
