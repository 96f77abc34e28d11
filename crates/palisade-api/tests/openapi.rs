//! `docs/openapi.json` against the types: a full sample of each type (every optional field set)
//! serialises to exactly the properties its schema names, nested objects too, with enum values
//! the schema allows; a minimal sample has every required property; and each sample reads back
//! as the value it was. A field renamed, added or removed on either side fails here.

use std::collections::BTreeSet;

use palisade_api::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

const DOC: &str = include_str!("../../../docs/openapi.json");

fn doc() -> Value {
    serde_json::from_str(DOC).expect("docs/openapi.json is JSON")
}

/// The schema, with a `$ref` followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "{r} is not in the document");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// Checks `value` against `schema` at `path`; `full` demands every documented property.
fn check(doc: &Value, schema: &Value, value: &Value, path: &str, full: bool) {
    let schema = resolve(doc, schema);
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(allowed.contains(value), "{path}: {value} is not one of {allowed:?}");
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        let documented: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        let sent: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        let undocumented: Vec<_> = sent.difference(&documented).collect();
        assert!(undocumented.is_empty(), "{path}: fields not in the document: {undocumented:?}");
        if full {
            let missing: Vec<_> = documented.difference(&sent).collect();
            assert!(missing.is_empty(), "{path}: documented fields the type does not send: {missing:?}");
        }
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap_or_default();
            assert!(obj.contains_key(req), "{path}: required `{req}` is missing");
        }
        for (k, v) in obj {
            if !(v.is_null() && props[k]["nullable"] == true) {
                check(doc, &props[k], v, &format!("{path}.{k}"), full);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(doc, items, v, &format!("{path}[{i}]"), full);
        }
    }
    if let (Some(extra), Some(obj)) = (schema.get("additionalProperties").filter(|e| e.is_object()), value.as_object())
    {
        if schema.get("properties").is_none() {
            for (k, v) in obj {
                check(doc, extra, v, &format!("{path}.{k}"), full);
            }
        }
    }
}

/// `full` and `minimal` samples of one type against schema `name`, and their round trip.
fn agrees<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, full: T, minimal: T) {
    let doc = doc();
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "schema {name} is not in docs/openapi.json");
    for (sample, is_full) in [(&full, true), (&minimal, false)] {
        let v = serde_json::to_value(sample).expect("serialises");
        check(&doc, schema, &v, name, is_full);
        let back: T =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {v} does not read back: {e}"));
        assert_eq!(&back, sample, "{name} round trip");
    }
}

fn rule() -> RuleChange {
    RuleChange { op: '+', owner: "policy alpha/p".into(), rule: "cookie=0x1,priority=1,actions=drop".into() }
}

#[test]
fn errors_and_requests() {
    let e = ErrorBody { error: "bad".into(), details: vec!["f.yaml:1: x: y".into()] };
    agrees("Error", e.clone(), ErrorBody { details: vec![], ..e });
    let a = ApplyRequest { file: "f.yaml".into(), content: "tenants: []".into() };
    agrees("ApplyRequest", a.clone(), a);
}

#[test]
fn objects_changes_and_audit() {
    let o = ObjectView {
        kind: palisade_model::Kind::Vm,
        tenant: Some("alpha".into()),
        name: "web1".into(),
        spec: json!({"ip": "198.18.1.10"}),
    };
    agrees("Object", o.clone(), ObjectView { tenant: None, kind: palisade_model::Kind::Tenant, ..o });
    agrees("RuleChange", rule(), RuleChange { op: '-', ..rule() });
    let out = Outcome {
        dry_run: false,
        revision: 3,
        objects: vec![ObjectChange { op: ObjectOp::Unchanged, object: "vm alpha/web1".into() }],
        rules: vec![rule()],
        pending: vec!["policy alpha/p: port pa-x is not on the bridge".into()],
        enforced: true,
    };
    agrees("Outcome", out.clone(), Outcome { objects: vec![], rules: vec![], pending: vec![], ..out });
    let r = Reconciled { changed: 1, removed: 0, flows: 9, pending: vec!["x".into()] };
    agrees("Reconciled", r.clone(), r);
    let s = Status { revision: 2, scope: "admin".into() };
    agrees("Status", s.clone(), s);
    let entry = AuditEntry {
        revision: 1,
        at_unix_ms: 1_700_000_000_000,
        actor: "admin".into(),
        summary: "apply f.yaml".into(),
        mutations: vec![AuditChange {
            op: AuditOp::Put,
            key: ObjectRef { kind: "vm".into(), tenant: Some("alpha".into()), name: "web1".into() },
            before: None,
            after: Some(json!({})),
        }],
    };
    agrees("AuditEntry", entry.clone(), AuditEntry { mutations: vec![], ..entry });
}

#[test]
fn flows() {
    let owner = FlowOwner {
        cookie: 0x5a15_0100_0000_0001,
        name: "base".into(),
        groups: vec![GroupView { id: 0xff00_0000, spec: "type=indirect,bucket=actions=drop".into() }],
        flows: vec![FlowView { priority: 0, matches: String::new(), actions: "NORMAL".into() }],
    };
    let t = FlowTable { owners: [(owner.cookie.to_string(), owner)].into_iter().collect(), pending: vec!["p".into()] };
    agrees("Program", t, FlowTable::default());
}

#[test]
fn guests_and_symbols() {
    let m = MonitorStatus {
        state: MonitorState::Active,
        detail: "injected in 310 ms".into(),
        method: Some("fentry".into()),
        syscalls: vec!["openat".into()],
        rules: 3,
        events: 10,
        lost: 0,
    };
    agrees("MonitorStatus", m.clone(), MonitorStatus { method: None, state: MonitorState::Injecting, ..m.clone() });
    let g = GuestStatus {
        vm: "alpha/guest1".into(),
        state: GuestState::Running,
        detail: "TCG".into(),
        accel: Some("tcg".into()),
        pid: Some(42),
        memory_mb: 512,
        vcpus: 1,
        port: "pa-guest1".into(),
        monitor: Some(m),
    };
    agrees("GuestStatus", g.clone(), GuestStatus { accel: None, pid: None, monitor: None, ..g });
    let s = Symbols {
        vm: "alpha/guest1".into(),
        virt_base: "0xffffffff81000000".into(),
        phys_base: "0x1000000".into(),
        kaslr_slide: 0,
        layout: "absolute".into(),
        recovery_ms: 300,
        total: 1,
        symbols: vec![SymbolEntry { address: 0xffff_ffff_8100_0000, kind: 'T', name: "_text".into() }],
    };
    agrees("Symbols", s.clone(), Symbols { symbols: vec![], ..s });
}

#[test]
fn monitor_events() {
    let e = MonitorEvent {
        seq: 1,
        time: "1700000000.000000001".into(),
        vm: "alpha/guest1".into(),
        index: 0,
        operation: "openat".into(),
        file_name: "hosts".into(),
        path: "/etc/hosts".into(),
        process: "cat".into(),
        pid: 7,
        uid: 0,
        action: "block".into(),
        rule: 1,
        policy: Some("alpha/watch".into()),
    };
    agrees("MonitorEvent", e.clone(), MonitorEvent { policy: None, action: "record".into(), ..e.clone() });
    let p = EventPage { events: vec![e], last_seq: 1, lost: 0, evicted: 0 };
    agrees("EventPage", p.clone(), EventPage::default());
}

#[test]
fn alerts_and_detectors() {
    let d = Deviation { feature: "syn_count".into(), value: 900.0, z: 12.5 };
    agrees("Deviation", d.clone(), d.clone());
    let a = AlertRecord {
        kind: "anomaly".into(),
        id: 4,
        vm: "alpha/web1".into(),
        policy: "alpha/web1-lstm".into(),
        model: "lab".into(),
        window_start: "1700000000".into(),
        window: "1".into(),
        score: 0.99,
        threshold: 0.5,
        top_features: vec![d],
    };
    agrees("AnomalyAlert", a.clone(), AlertRecord { top_features: vec![], ..a.clone() });
    agrees("AlertPage", AlertPage { alerts: vec![a], last_id: 4 }, AlertPage { alerts: vec![], last_id: 0 });
    let waiting = DetectorStatus {
        vm: "alpha/web1".into(),
        policy: "alpha/web1-lstm".into(),
        model: "lab".into(),
        port: "pa-web1".into(),
        state: WatchState {
            phase: Phase::Waiting("no such port".into()),
            window: Some("1".into()),
            threshold: Some(0.5),
            windows: 3,
            alerts: 1,
            drops: 0,
        },
    };
    let running = DetectorStatus {
        state: WatchState { phase: Phase::Running, window: None, threshold: None, ..waiting.state.clone() },
        ..waiting.clone()
    };
    agrees("DetectorStatus", waiting, running);
}

#[test]
fn scan_requests_and_tasks() {
    let r = ScanRequest {
        target: "alpha/web1".into(),
        tcp: Some(vec![22, 80]),
        udp: Some(vec![53]),
        concurrency: Some(64),
        timeout_ms: Some(500),
        kind: Some(palisade_model::ScanKind::VulnScan),
        service_detection: Some(false),
        scripts: Some(vec!["http-git".into()]),
    };
    agrees("ScanRequest", r, ScanRequest { target: "alpha/web1".into(), ..ScanRequest::default() });
    let port = |port, state| PortResult { proto: Proto::Tcp, port, state };
    let failed = TaskRecord {
        id: 7,
        tenant: "alpha".into(),
        target: "alpha/web1".into(),
        kind: palisade_model::ScanKind::VulnScan,
        state: TaskState::Failed,
        reason: Some(FailureReason::NmapTimedOut),
        detail: Some("the vuln-scan engine (nmap) failed: nmap did not finish within 300s and was stopped".into()),
        started_ms: 1_700_000_000_000,
        duration_ms: 301_000.5,
        open: vec![port(80, PortState::Open)],
        ports: vec![port(22, PortState::Closed), port(80, PortState::Open), port(81, PortState::OpenFiltered)],
        services: vec![ServiceInfo {
            proto: Proto::Tcp,
            port: 80,
            name: "http".into(),
            product: "Apache httpd".into(),
            version: "2.4.57".into(),
            extra: "(Debian)".into(),
        }],
        findings: vec![Finding { proto: Proto::Tcp, port: 80, script: "http-git".into(), output: "Git repo".into() }],
    };
    let done = TaskRecord {
        kind: palisade_model::ScanKind::PortScan,
        state: TaskState::Done,
        reason: None,
        detail: None,
        open: vec![],
        ports: vec![],
        services: vec![],
        findings: vec![],
        ..failed.clone()
    };
    agrees("ScanTask", failed, done);
}

/// The document lists every reason a task can fail with, in the words tenants get.
#[test]
fn scan_failure_reasons() {
    let doc = doc();
    let listed = doc["components"]["schemas"]["ScanTask"]["properties"]["reason"]["description"].as_str().unwrap();
    for r in FailureReason::KNOWN {
        assert!(listed.contains(&format!("`{r}`")), "ScanTask.reason does not list `{r}`");
        let back: FailureReason = serde_json::from_value(json!(r.message())).unwrap();
        assert_eq!(back, r);
    }
}
