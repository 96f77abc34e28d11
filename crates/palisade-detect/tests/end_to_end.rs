//! Issue #6: train and evaluate on a real (generated) capture with labels: the extractor, the
//! labels join, LSTM-NAD, both baselines, the model directory and the metrics, end to end.

mod support;

use std::path::Path;

use palisade_detect::data;
use palisade_detect::detect::Scorer;
use palisade_detect::detector::{evaluate, train_model, TrainOptions};
use palisade_detect::nn::NetConfig;
use palisade_detect::plot::roc_svg;
use palisade_detect::store;
use palisade_detect::train::TrainConfig;
use palisade_nad::{extract_file, Config, Seconds};
use support::{scenario, T0, VM};

fn opts(train_until: u64, epochs: usize) -> TrainOptions {
    TrainOptions {
        train_until_ns: train_until * 1_000_000_000,
        val_fraction: 0.25,
        net: NetConfig::paper(4),
        train: TrainConfig { epochs, batch: 32, lr: 3e-3, seed: 3, ..TrainConfig::default() },
        period_ns: 100_000_000_000,
        slots: 10,
        trees: 50,
    }
}

/// A scenario of `windows` one-second windows (seed `seed`) in a fresh directory, loaded.
fn loaded_scenario(windows: u64, seed: u64) -> (tempfile::TempDir, data::Series) {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), windows, seed);
    let (series, _) = data::load(
        &dir.path().join("capture.pcap"),
        &dir.path().join("labels.csv"),
        VM.into(),
        Seconds::from_secs(1),
        &mut |_| {},
    )
    .unwrap();
    (dir, series)
}

#[test]
fn lstm_nad_learns_the_attack_kinds_it_was_trained_on() {
    let (_dir, series) = loaded_scenario(500, 1);
    assert_eq!(series.starts.len(), 500);
    let mut epochs_seen = 0;
    let model = train_model(&series, "10.0.0.5", &opts(T0 + 350, 4), |_| epochs_seen += 1).unwrap();
    assert_eq!(epochs_seen, 4);
    assert!(model.meta.windows[0][1] > 0 && model.meta.windows[1][1] > 0, "{:?}", model.meta.windows);
    let ev = evaluate(&model, &series, (T0 + 350) * 1_000_000_000, 2).unwrap();
    assert_eq!(ev.windows, 150);
    let all = serde_json::to_string(&ev).unwrap();
    let auc = ev.lstm_nad.roc_auc.unwrap();
    assert!(auc > 0.85, "LSTM-NAD ROC AUC {auc}: {all}");
    // The kinds seen in training are found on windows it never saw. (The UDP flood that only
    // the test part has is not asserted on: a supervised model need not generalise to it.)
    for kind in ["syn_flood", "port_scan"] {
        let a = ev.lstm_nad.per_attack[kind];
        assert!(a.windows >= 4 && a.rate >= 0.75, "{kind}: {all}");
    }
    assert!(ev.lstm_nad.per_attack.contains_key("udp_flood"));
    // The JSON report: LSTM-NAD at the top level, each baseline under its name.
    let v = serde_json::to_value(&ev).unwrap();
    for d in [&v, &v["stability_2018"], &v["isolation_forest"]] {
        for key in ["roc_auc", "pr_auc", "tpr_at_1pct_fpr", "threshold"] {
            assert!(d[key].is_number(), "{key} in {d}");
        }
        assert!(d["confusion"]["fn"].is_u64() && d["per_attack"]["syn_flood"]["rate"].is_number(), "{d}");
    }
    for r in [&ev.stability_2018, &ev.isolation_forest] {
        assert!(r.roc_auc.unwrap() > 0.5, "{:?}", r.roc_auc);
    }
    // The confusion matrix covers every window.
    let c = ev.lstm_nad.confusion;
    assert_eq!((c.tp + c.fp + c.tn + c.fn_) as usize, ev.windows);
    assert_eq!((c.tp + c.fn_) as usize, ev.abnormal_windows);
}

#[test]
fn a_saved_model_scores_exactly_like_the_trained_one_and_the_same_seed_reproduces_it() {
    let (dir, series) = loaded_scenario(300, 2);
    let model = train_model(&series, "10.0.0.5", &opts(T0 + 200, 2), |_| {}).unwrap();
    let again = train_model(&series, "10.0.0.5", &opts(T0 + 200, 2), |_| {}).unwrap();
    assert_eq!(model.net.params, again.net.params, "same seed, same weights");
    store::save(&model, &dir.path().join("m")).unwrap();
    let loaded = store::load(&dir.path().join("m")).unwrap();
    assert_eq!(loaded.net.params, model.net.params);
    let from = (T0 + 200) * 1_000_000_000;
    let a = evaluate(&model, &series, from, 1).unwrap();
    let b = evaluate(&loaded, &series, from, 2).unwrap();
    assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap());
}

/// Model files reach the controller from its model directory: damaged ones are refused with
/// an error, never a panic or an unbounded allocation.
#[test]
fn damaged_model_files_are_refused_without_panicking() {
    let (dir, series) = loaded_scenario(300, 2);
    let model = train_model(&series, "10.0.0.5", &opts(T0 + 200, 1), |_| {}).unwrap();
    let m = dir.path().join("m");
    store::save(&model, &m).unwrap();
    let files: Vec<Vec<u8>> = ["model.json", "model.safetensors", "baselines.json"]
        .iter()
        .map(|f| std::fs::read(m.join(f)).unwrap())
        .collect();
    assert!(store::from_bytes(&m, &files[0], &files[1], &files[2]).is_ok());
    for which in 0..3 {
        let len = files[which].len();
        for cut in (0..len).step_by((len / 200).max(1)) {
            let mut parts = files.clone();
            parts[which].truncate(cut);
            assert!(store::from_bytes(&m, &parts[0], &parts[1], &parts[2]).is_err(), "file {which} cut at {cut}");
        }
        for at in (0..len).step_by((len / 100).max(1)) {
            let mut parts = files.clone();
            parts[which][at] ^= 0x5a;
            let _ = store::from_bytes(&m, &parts[0], &parts[1], &parts[2]);
        }
    }
    // A configuration asking for a huge network is refused before anything is allocated.
    let mut meta: serde_json::Value = serde_json::from_slice(&files[0]).unwrap();
    meta["options"]["net"]["lstm1"] = 4_000_000_000u64.into();
    let meta = serde_json::to_vec(&meta).unwrap();
    let e = store::from_bytes(&m, &meta, &files[1], &files[2]).unwrap_err().to_string();
    assert!(e.contains("unusable network configuration"), "{e}");
}

/// What `palisade nad train` then `eval --roc --scores` do, through the library: the model
/// directory's files, one scores line per scored window, one ROC curve per detector.
#[test]
fn train_then_eval_writes_model_files_scores_and_a_roc_plot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    scenario(d, 300, 3);
    let (series, _) =
        data::load(&d.join("capture.pcap"), &d.join("labels.csv"), VM.into(), Seconds::from_secs(1), &mut |_| {})
            .unwrap();
    let model = train_model(&series, "10.0.0.5", &opts(T0 + 200, 2), |_| {}).unwrap();
    store::save(&model, &d.join("model")).unwrap();
    for f in ["model.safetensors", "model.json", "baselines.json"] {
        assert!(d.join("model").join(f).is_file(), "{f}");
    }
    let model = store::load(&d.join("model")).unwrap();
    let window = model.window().unwrap();
    assert_eq!(window, Seconds::from_secs(1));
    let ev = evaluate(&model, &series, (T0 + 200) * 1_000_000_000, 2).unwrap();
    // One line per scored window (the 100 from --from on), labels as in labels.csv.
    let scores = ev.scores_csv(window);
    let lines: Vec<&str> = scores.lines().collect();
    assert_eq!(lines[0], "window_start,label,attack,lstm_nad,stability_2018,isolation_forest");
    assert_eq!(lines.len(), 101);
    let labels = std::fs::read_to_string(d.join("labels.csv")).unwrap();
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert!(labels.contains(&format!("\n{},{},{}\n", f[0], f[1], f[2])), "{l}");
        assert!(f[3..].iter().all(|v| v.parse::<f64>().is_ok()), "{l}");
    }
    let svg = roc_svg("ROC", &ev.curves());
    assert_eq!(svg.matches("<polyline").count(), 3, "one curve per detector");
    assert!(svg.contains("LSTM-NAD (AUC") && svg.contains("stability_2018") && svg.contains("isolation_forest"));
}

#[test]
fn bad_inputs_are_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    scenario(d, 60, 4);
    let pcap = d.join("capture.pcap");
    let load = |labels: &Path| {
        data::load(&pcap, labels, VM.into(), Seconds::from_secs(1), &mut |_| {}).map(|_| ()).unwrap_err().to_string()
    };
    std::fs::write(d.join("bad.csv"), "window_start,label,attack\n1700000000,0,\n1700000001,yes,\n").unwrap();
    let e = load(&d.join("bad.csv"));
    assert!(e.ends_with("bad.csv:3: label `yes` is not 0 or 1"), "{e}");
    std::fs::write(d.join("short.csv"), "window_start,label,attack\n1700000000,0,\n").unwrap();
    let e = load(&d.join("short.csv"));
    assert!(e.contains("short.csv has no label for window 1700000001 (59 windows"), "{e}");
    // Training needs T + 1 windows before the split, and abnormal ones among them.
    let (series, _) = data::load(&pcap, &d.join("labels.csv"), VM.into(), Seconds::from_secs(1), &mut |_| {}).unwrap();
    let e = train_model(&series, "vm", &opts(T0 + 3, 1), |_| {}).unwrap_err().to_string();
    assert!(e.starts_with("only 3 windows start before --train-until; need at least 5"), "{e}");
    let e = train_model(&series, "vm", &opts(T0 + 19, 1), |_| {}).unwrap_err().to_string();
    assert!(e.contains("has no abnormal window"), "{e}");
    // Evaluation needs windows after --from.
    // (Its validation windows are all normal: thresholds fall back to flagging at most 1% of
    // them, and the model still saves and loads.)
    let model = train_model(&series, "vm", &opts(T0 + 40, 1), |_| {}).unwrap();
    store::save(&model, &d.join("normal-val")).unwrap();
    assert!(store::load(&d.join("normal-val")).is_ok());
    let e = evaluate(&model, &series, (T0 + 1000) * 1_000_000_000, 1).unwrap_err().to_string();
    assert!(e.contains("no window to score at or after 1700001000"), "{e}");
    // A model directory that is not one.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let e = store::load(&d.join("empty")).unwrap_err().to_string();
    assert!(e.contains("cannot read") && e.contains("model.json"), "{e}");
    // A model file edited into nonsense is refused, naming the file and what is wrong.
    let meta = d.join("normal-val").join("model.json");
    let text = std::fs::read_to_string(&meta).unwrap().replacen("\"threshold\": ", "\"threshold\": -1e999 * 0 + ", 1);
    std::fs::write(&meta, text).unwrap();
    let e = store::load(&d.join("normal-val")).unwrap_err().to_string();
    assert!(e.contains("model.json") && e.contains("not a valid model file"), "{e}");
}

#[test]
fn detect_alerts_on_exactly_the_windows_eval_flags_naming_the_deviating_features() {
    let (dir, series) = loaded_scenario(300, 5);
    let d = dir.path();
    let model = train_model(&series, "10.0.0.5", &opts(T0 + 200, 3), |_| {}).unwrap();
    store::save(&model, &d.join("m")).unwrap();
    // What eval flags over the whole capture (every window with T steps behind it).
    let ev = evaluate(&model, &series, T0 * 1_000_000_000, 1).unwrap();
    let flagged = (ev.lstm_nad.confusion.tp + ev.lstm_nad.confusion.fp) as usize;
    assert!(flagged > 0);
    // What `palisade nad detect --pcap` does: the saved model, its windows, rows scored as
    // they close.
    let model = store::load(&d.join("m")).unwrap();
    let window = model.window().unwrap();
    let cfg =
        Config { vms: vec![VM.into()], window, reorder: Seconds::from_secs(1), series: palisade_nad::Series::Bounded };
    let mut out = Vec::new();
    let mut scorer = Scorer::new(&model, window, &mut out, false);
    extract_file(&d.join("capture.pcap"), &cfg, &mut scorer, &mut |_| {}).unwrap();
    let (scored, alerts) = (scorer.scored, scorer.alerts);
    drop(scorer);
    assert_eq!(scored as usize, ev.windows);
    assert_eq!(alerts as usize, flagged);
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), flagged);
    let labels = std::fs::read_to_string(d.join("labels.csv")).unwrap();
    for l in &lines {
        assert_eq!(l["vm"], "10.0.0.5");
        assert_eq!(l["alert"], true);
        assert!(l["score"].as_f64().unwrap() >= l["threshold"].as_f64().unwrap());
        assert_eq!(l["top_features"].as_array().unwrap().len(), 3);
        // A flagged SYN-flood window names a SYN feature among those that deviated most.
        let start = l["window_start"].as_str().unwrap();
        if labels.contains(&format!("{start},1,syn_flood")) {
            let names: Vec<&str> =
                l["top_features"].as_array().unwrap().iter().map(|f| f["feature"].as_str().unwrap()).collect();
            assert!(names.iter().any(|n| n.starts_with("syn") || *n == "ip_count" || *n == "ip_entro"), "{l}");
        }
    }
}
