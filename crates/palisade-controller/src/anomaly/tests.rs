use super::*;
use palisade_model::merge_file;

const LAB: &str = include_str!("../../../../examples/lab.yaml");

fn with(policies: &str) -> Inventory {
    let lab = merge_file("lab.yaml", LAB, &Inventory::default()).expect("lab").after;
    merge_file("p.yaml", policies, &lab).expect("valid policies").after
}

#[test]
fn one_detector_per_vm_decided_by_the_highest_priority_policy() {
    let inv = with(
        "policies:
  - { name: sub, tenant: alpha, priority: 10, anomaly: { target: { subdomain: web }, model: lab } }
  - { name: web1, tenant: alpha, priority: 500, anomaly: { target: { vm: web1 }, model: strict, threshold: 0.3 } }
  - { name: beta, tenant: beta, anomaly: { target: { vm: web2 }, model: lab } }
",
    );
    let d = desired(&inv);
    let got: Vec<(&str, &str, &str, &str, Option<f64>)> =
        d.iter().map(|d| (d.vm.as_str(), d.policy.as_str(), d.port.as_str(), d.model.as_str(), d.threshold)).collect();
    assert_eq!(
        got,
        [
            ("alpha/web1", "alpha/web1", "pa-web1", "strict", Some(0.3)),
            ("alpha/web2", "alpha/sub", "pa-web2", "lab", None),
            ("beta/web2", "beta/beta", "pb-web2", "lab", None),
        ]
    );
    assert_eq!(d[0].ip, Ipv4Addr::new(198, 18, 1, 10));
}

#[test]
fn no_anomaly_policy_means_no_detector() {
    assert!(desired(&with("policies: []\n")).is_empty());
}

#[test]
fn a_missing_model_is_named_with_the_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    let live = LiveDetectors::new(dir.path().to_owned(), Vec::new());
    let e = live.check_model("lab").expect_err("no such model");
    assert!(e.contains("model `lab`") && e.contains(&dir.path().display().to_string()), "{e}");
    assert!(NoDetectors.check_model("lab").is_ok() && !NoDetectors.enforces());
}

#[test]
fn alerts_are_one_json_line_each_in_the_events_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let file = crate::monitors::EventsFile::open(&path).unwrap();
    let alert = AlertRecord {
        kind: "anomaly".into(),
        id: 0,
        vm: "alpha/web1".into(),
        policy: "alpha/web-nad".into(),
        model: "lab".into(),
        window_start: "1700000000".into(),
        window: "1".into(),
        score: 0.97,
        threshold: 0.5,
        top_features: vec![Deviation { feature: "syn_count".into(), value: 950.0, z: 12.5 }],
    };
    file.alert(&alert);
    file.alert(&alert);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<AlertRecord> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, [alert.clone(), alert]);
}
