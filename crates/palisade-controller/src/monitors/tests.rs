use palisade_model::inventory::FileObjects;
use palisade_model::ParsedFile;

use super::*;

const GUESTS: &str = include_str!("../../../../examples/guest.yaml");

fn inventory(policies: &str) -> Inventory {
    let mut inv = Inventory::default();
    for (name, text) in [("guest.yaml", GUESTS), ("monitor.yaml", policies)] {
        let parsed = ParsedFile::parse(name, text).unwrap();
        for (k, o, _) in FileObjects::from_document(&parsed.document).unwrap().objects {
            inv.objects.insert(k, o);
        }
    }
    inv
}

fn rule(
    id: u32,
    policy: &str,
    nr: Option<u16>,
    subject: Option<&str>,
    object: Option<&str>,
    action: MonitorAction,
) -> PlanRule {
    PlanRule {
        id,
        policy: format!("alpha/{policy}"),
        nr,
        subject: subject.map(str::to_owned),
        object: object.map(str::to_owned),
        action,
    }
}

#[test]
fn the_example_policy_becomes_one_plan_for_guest1_with_its_rules_in_file_order() {
    let inv = inventory(include_str!("../../../../examples/monitor.yaml"));

    let plans = plans(&inv);

    assert_eq!(plans.keys().collect::<Vec<_>>(), ["alpha/guest1"]);
    let p = &plans["alpha/guest1"];
    assert_eq!(p.syscalls, [0, 1, 3, 257]);
    use MonitorAction::*;
    assert_eq!(
        p.rules,
        [
            rule(1, "watch-files", None, Some("cat"), Some("/etc/hosts"), Block),
            rule(2, "watch-files", None, None, Some("/etc/"), Record),
            rule(3, "watch-files", None, None, Some("/root/"), Record),
        ]
    );
}

#[test]
fn policies_merge_by_priority_with_a_non_pass_default_last_and_narrower_ones_per_syscall() {
    let inv = inventory(
        "policies:
  - name: low
    tenant: alpha
    priority: 10
    monitor:
      target: { subdomain: web }
      syscalls: [openat]
      rules:
        - { object: /tmp/, action: pass }
      default: record
  - name: high
    tenant: alpha
    priority: 500
    monitor:
      target: { vm: guest1 }
      syscalls: [openat, write]
      rules:
        - { subject: cat, action: pass }
        - { object: /etc/, action: block }
  - name: other-tenant
    tenant: beta
    priority: 900
    monitor:
      target: { vm: guest1 }
      syscalls: [read]
",
    );

    let p = &plans(&inv)["alpha/guest1"];

    use MonitorAction::*;
    assert_eq!(p.syscalls, [1, 257], "beta's policy cannot watch alpha's guest");
    assert_eq!(
        p.rules,
        [
            rule(1, "high", None, Some("cat"), None, Pass),
            rule(2, "high", None, None, Some("/etc/"), Block),
            rule(3, "low", Some(257), None, Some("/tmp/"), Pass),
            rule(4, "low", Some(257), None, None, Record),
        ]
    );
}

#[test]
fn the_ring_numbers_events_pages_after_a_sequence_and_counts_what_it_evicts() {
    let mut ring = EventRing::new(2);
    let ev = |i| MonitorEvent {
        seq: 0,
        time: "1.000000000".into(),
        vm: "alpha/guest1".into(),
        index: i,
        operation: "openat".into(),
        file_name: "hosts".into(),
        path: "/etc/hosts".into(),
        process: "cat".into(),
        pid: 7,
        uid: 0,
        action: "block".into(),
        rule: 1,
        policy: None,
    };

    for i in 0..3 {
        ring.push(ev(i));
    }

    let page = ring.page(0, 10);
    assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!((page.last_seq, page.evicted), (3, 1));
    assert_eq!(ring.page(2, 10).events.len(), 1);
    assert!(ring.page(3, 10).events.is_empty());
    assert_eq!(
        page.events[1].figure12(),
        "FILE MONITOR: INDEX:[2], timestamp: [1.000000000], filename:[hosts], pathname: [/etc/hosts], \
         operation: [OPENAT], process name: [cat], user id:[0]."
    );
}

#[test]
fn the_events_file_gets_one_json_object_per_line_with_the_stream_fields() {
    let dir = std::env::temp_dir().join(format!("palisade-events-{}", std::process::id()));
    let path = dir.join("events.jsonl");
    let file = EventsFile::open(&path).unwrap();
    let e = MonitorEvent {
        seq: 1,
        time: "1764190000.000000001".into(),
        vm: "alpha/guest1".into(),
        index: 0,
        operation: "openat".into(),
        file_name: "hosts".into(),
        path: "/etc/hosts".into(),
        process: "cat".into(),
        pid: 42,
        uid: 0,
        action: "block".into(),
        rule: 1,
        policy: Some("alpha/watch-files".into()),
    };

    file.record(&[e.clone(), MonitorEvent { seq: 2, ..e.clone() }]);

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for field in ["time", "vm", "index", "operation", "file_name", "path", "process", "pid", "uid", "action"] {
        assert!(lines[0].get(field).is_some(), "no {field} in {}", lines[0]);
    }
    assert_eq!((lines[1]["seq"].as_u64(), lines[1]["action"].as_str()), (Some(2), Some("block")));
}

#[test]
fn the_store_sink_keeps_each_event_under_its_vms_tenant() {
    let store = std::sync::Arc::new(palisade_store::SqliteStore::open_in_memory().unwrap());
    let sink = StoreEvents(store.clone());
    let e = |vm: &str| MonitorEvent {
        seq: 1,
        time: "1.000000000".into(),
        vm: vm.into(),
        index: 0,
        operation: "openat".into(),
        file_name: "hosts".into(),
        path: "/etc/hosts".into(),
        process: "cat".into(),
        pid: 1,
        uid: 0,
        action: "record".into(),
        rule: 1,
        policy: None,
    };

    sink.record(&[e("alpha/guest1"), e("beta/guest1")]);

    use palisade_store::Store;
    let alpha = store.events(palisade_store::EventStream::Monitor, Some("alpha"), None, 0, 10).unwrap();
    assert_eq!(alpha.len(), 1);
    assert_eq!((alpha[0].vm.as_str(), alpha[0].body["vm"].as_str()), ("guest1", Some("alpha/guest1")));
    assert_eq!(store.events(palisade_store::EventStream::Monitor, Some("beta"), None, 0, 10).unwrap().len(), 1);
}

/// Issue #5: a plan that cannot fit the guest's policy table is refused at apply, naming the
/// guest and the policies, instead of failing later inside the runtime.
#[test]
fn plans_larger_than_the_in_guest_table_are_named_with_their_policies() {
    let rules =
        |n: usize| (0..n).map(|i| format!("        - {{ object: /srv/{i}/, action: record }}\n")).collect::<String>();
    let policy = |name: &str, syscalls: &str, n: usize| {
        format!(
            "  - name: {name}\n    tenant: alpha\n    monitor:\n      target: {{ vm: guest1 }}\n      syscalls: [{syscalls}]\n      rules:\n{}",
            rules(n)
        )
    };
    let fits = inventory(&format!("policies:\n{}", policy("a", "openat", 16)));
    assert!(oversized_plans(&fits).is_empty());

    // 9 rules of a policy hooking openat and read, 4 of one hooking only openat: the narrower
    // policy's rules count once per system call the guest hooks it for (here 1), the wider
    // ones apply to any => 9 + 4 = 13 fits; 9 + 8 = 17 does not.
    let ok = inventory(&format!("policies:\n{}{}", policy("a", "openat, read", 9), policy("b", "openat", 4)));
    assert!(oversized_plans(&ok).is_empty(), "{:?}", oversized_plans(&ok));
    let big = inventory(&format!("policies:\n{}{}", policy("a", "openat, read", 9), policy("b", "openat", 8)));
    let errors = oversized_plans(&big);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("alpha/guest1") && errors[0].contains("17 monitor rules"), "{}", errors[0]);
    assert!(errors[0].contains("alpha/a, alpha/b"), "{}", errors[0]);
}
