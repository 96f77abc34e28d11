//! The lab dataset (issue #6): `palisade lab traffic` makes a capture and labels with real
//! tools in the lab — daily-cycle benign clients, hping3 floods, nmap and masscan scans, URL
//! probing — that the feature extractor and the detector read unchanged. A short run (180
//! one-second windows, a compressed day of 60 s) must show the attacks in the features where
//! the labels say, benign traffic in every other window with a visible cycle, and the held-back
//! kinds only after `train_until`.

use std::collections::BTreeMap;
use std::path::Path;

mod common;

use common::{is_root, Env};
use serde_json::Value;

const VM: &str = "198.18.1.10";

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no values");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p95(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no values");
    v.sort_by(f64::total_cmp);
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

/// `window_start -> (label, attack)` from labels.csv, read by the one labels parser.
fn labels(dir: &Path) -> BTreeMap<u64, (u8, String)> {
    let labels = palisade_nad::labels::Labels::read(&dir.join("labels.csv")).expect("labels.csv");
    labels
        .by_start
        .into_iter()
        .map(|(ns, l)| (ns / 1_000_000_000, (u8::from(l.abnormal), l.attack.unwrap_or_default())))
        .collect()
}

/// `window_start -> column -> value` from `palisade nad features`.
fn features(env: &Env, pcap: &Path) -> BTreeMap<u64, BTreeMap<String, f64>> {
    let csv = env.ok(&["nad", "features", "--pcap", &pcap.display().to_string(), "--vm", VM, "--window", "1"]);
    let mut lines = csv.lines();
    let head: Vec<String> = lines.next().expect("header").split(',').map(str::to_owned).collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let row = head.iter().zip(&f).skip(2).map(|(h, v)| (h.clone(), v.parse().expect("number"))).collect();
            (f[1].parse().expect("window_start"), row)
        })
        .collect()
}

#[test]
fn lab_traffic_makes_a_labelled_capture_the_detector_reads() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = Env::new("f", 17706, tmp.path().join("lab"));
    let _ = env.palisade(&["lab", "down"]);
    env.up();
    let out = tmp.path().join("data");
    let o = out.display().to_string();

    let t0 = std::time::Instant::now();
    env.ok(&["lab", "traffic", "--out", &o, "--minutes", "3", "--period", "60", "--seed", "5", "--share", "0.1"]);
    println!("lab traffic took {:.0} s", t0.elapsed().as_secs_f64());
    let ds: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("dataset.json")).expect("json")).expect("json");
    let (start, train_until) = (ds["start"].as_u64().expect("start"), ds["train_until"].as_u64().expect("split"));
    assert_eq!(ds["windows"], 180, "{ds}");

    // Labels: every window, each kind at least once, held-back kinds only after train_until.
    let l = labels(&out);
    assert_eq!(l.len(), 180);
    assert_eq!(*l.keys().next().expect("rows"), start);
    let held: Vec<&str> = ds["held_back_kinds"].as_array().expect("held").iter().filter_map(Value::as_str).collect();
    assert_eq!(held, ["udp_flood", "url_probe"]);
    for kind in ["syn_flood", "udp_flood", "nmap", "masscan_tcp", "url_probe"] {
        let at: Vec<u64> = l.iter().filter(|(_, (_, k))| k == kind).map(|(t, _)| *t).collect();
        assert!(!at.is_empty(), "no window of {kind}: {ds}");
        if held.contains(&kind) {
            assert!(at.iter().all(|&t| t >= train_until), "{kind} before train_until {train_until}: {at:?}");
        } else {
            assert!(at.iter().any(|&t| t < train_until), "{kind} is not in the training part: {at:?}");
        }
    }
    for (t, (label, kind)) in &l {
        assert_eq!(*label == 1, !kind.is_empty(), "window {t}");
    }

    // Features where the labels say.
    let f = features(&env, &out.join("capture.pcap"));
    assert!(f.keys().all(|t| l.contains_key(t)), "a feature row outside the labelled span");
    let col = |kind: &str, name: &str| -> Vec<f64> {
        l.iter().filter(|(_, (_, k))| k == kind).map(|(t, _)| f.get(t).map_or(0.0, |r| r[name])).collect()
    };
    let benign = |name: &str| col("", name);
    let (syn, syn_b) = (median(col("syn_flood", "syn_count")), p95(benign("syn_count")));
    println!("syn_count: syn_flood median {syn}, benign p95 {syn_b}");
    assert!(syn > 5.0 * syn_b.max(1.0), "SYN flood windows: syn_count {syn} vs benign p95 {syn_b}");
    let spe_b = p95(benign("service_port_entro"));
    for scan in ["nmap", "masscan_tcp"] {
        let spe = median(col(scan, "service_port_entro"));
        println!("service_port_entro: {scan} median {spe:.2}, benign p95 {spe_b:.2}");
        assert!(spe > spe_b + 2.0, "{scan} windows: service_port_entro {spe} vs benign p95 {spe_b}");
    }
    let (udp, pps_b) = (median(col("udp_flood", "pps")), p95(benign("pps")));
    println!("pps: udp_flood median {udp}, benign p95 {pps_b}");
    assert!(udp > 2.0 * pps_b, "UDP flood windows: pps {udp} vs benign p95 {pps_b}");

    // Benign windows: traffic in every one, more in the afternoon than at night (16:00 is 40 s
    // into each 60 s day, 04:00 is 10 s in).
    let pps: Vec<(u64, f64)> =
        l.iter().filter(|(_, (lb, _))| *lb == 0).map(|(t, _)| (*t, f.get(t).map_or(0.0, |r| r["pps"]))).collect();
    // The load never pauses; a window without a packet is a stall of the shared machine's
    // switch (seen while other work tore down hundreds of namespaces), tolerated if rare.
    let empty: Vec<u64> = pps.iter().filter(|&&(_, p)| p == 0.0).map(|&(t, _)| t - start).collect();
    println!("benign windows: {}, without traffic: {empty:?}", pps.len());
    assert!(empty.len() * 20 <= pps.len(), "benign windows without traffic at {empty:?}");
    let mean_at = |lo: u64, hi: u64| {
        let v: Vec<f64> = pps.iter().filter(|(t, _)| (lo..hi).contains(&((t - start) % 60))).map(|p| p.1).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let (day, night) = (mean_at(35, 46), mean_at(5, 16));
    println!("benign pps: afternoon {day:.0}, night {night:.0}");
    assert!(day > 2.5 * night, "no daily cycle: afternoon {day} vs night {night}");

    // The detector reads it unchanged.
    let model = tmp.path().join("model").display().to_string();
    let pcap = out.join("capture.pcap").display().to_string();
    let lab = out.join("labels.csv").display().to_string();
    let split = train_until.to_string();
    let common = ["--pcap", &pcap, "--labels", &lab, "--vm", VM];
    let mut train = vec!["nad", "train"];
    train.extend(common);
    train.extend(["--window", "1", "--train-until", &split, "--model", &model, "--epochs", "3"]);
    env.ok(&train);
    let mut eval = vec!["nad", "eval", "--model", &model];
    eval.extend(common);
    eval.extend(["--from", &split, "-o", "json"]);
    let r: Value = serde_json::from_str(&env.ok(&eval)).expect("eval json");
    assert!(r["roc_auc"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{r}");
    println!("quick eval (3 epochs): ROC AUC {}", r["roc_auc"]);

    // Nothing the run added is left: not its addresses on the client host, not a tool.
    let addrs = env.ok(&["lab", "exec", &env.ns("alpha-web2"), "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert_eq!(addrs.lines().count(), 1, "addresses left on web2: {addrs}");
    env.ok(&["lab", "down"]);
    let left = std::process::Command::new("pgrep").args(["-x", "hping3|masscan|nmap"]).output().expect("pgrep");
    assert!(left.stdout.is_empty(), "tools left running: {}", String::from_utf8_lossy(&left.stdout));
}
