//! The nmap report parser on a real report (see docs/testing.md for how it was made) and on
//! broken input.

use super::*;

const REAL: &[u8] = include_bytes!("../fixtures/nmap-http-git.xml");

#[test]
fn a_real_report_gives_ports_services_and_script_findings() {
    let r = parse_report(REAL).unwrap();

    assert_eq!(
        r.ports,
        [
            PortResult { proto: Proto::Tcp, port: 22, state: PortState::Closed },
            PortResult { proto: Proto::Tcp, port: 8089, state: PortState::Open },
        ]
    );
    let http = r.services.iter().find(|s| s.port == 8089).expect("the http service");
    assert_eq!((http.name.as_str(), http.product.as_str(), http.version.as_str()), ("http", "Apache httpd", "2.4.57"));
    assert_eq!(http.extra, "(Debian)");
    let git = r.findings.iter().find(|f| f.script == "http-git").expect("http-git's finding");
    assert_eq!((git.proto, git.port), (Proto::Tcp, 8089));
    assert!(git.output.contains("Potential Git repository found"), "{}", git.output);
}

#[test]
fn broken_or_foreign_input_is_an_error_never_a_panic() {
    assert_eq!(parse_report(b"<html></html>"), Err(ReportError::NotNmap));
    assert!(matches!(
        parse_report(b"<nmaprun><host><ports><port protocol=\"tcp\">"),
        Err(ReportError::Attribute { .. })
    ));
    assert!(matches!(parse_report(b"<nmaprun><a></b></nmaprun>"), Err(ReportError::Xml { .. })));
    let failed = br#"<nmaprun><runstats><finished exit="error" errormsg="bad port spec"/></runstats></nmaprun>"#;
    assert_eq!(parse_report(failed), Err(ReportError::Failed("bad port spec".into())));
    // Every prefix of a real report: errors or partial reports, no panic.
    for n in 0..REAL.len() {
        let _ = parse_report(&REAL[..n]);
    }
}

#[test]
fn arguments_keep_nmap_offline_and_on_the_given_ports() {
    let spec = NmapSpec {
        target: Ipv4Addr::new(100, 64, 0, 3),
        tcp: vec![22, 80],
        udp: vec![53],
        scripts: OFFLINE_VULN_SCRIPTS.into(),
        service_detection: true,
        timeout: Duration::from_secs(120),
    };
    let args = arguments(&spec);
    assert!(args.contains(&"-sV".to_owned()));
    assert!(!arguments(&NmapSpec { service_detection: false, ..spec.clone() }).contains(&"-sV".to_owned()));
    assert!(args.contains(&"-n".to_owned()), "no name resolution: {args:?}");
    let at = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(at("-p"), "T:22,80,U:53");
    assert!(at("--script").contains("not (external"), "{args:?}");
    assert_eq!(at("--host-timeout"), "120s");
    assert!(args.contains(&"-sSU".to_owned()));
    assert_eq!(args.last().unwrap(), "100.64.0.3");
}

#[test]
fn named_scripts_only_narrow_the_offline_safe_set() {
    assert_eq!(script_selection(&[]), OFFLINE_VULN_SCRIPTS);
    let two = script_selection(&["http-git".into(), "vulners".into()]);
    assert_eq!(two, format!("({OFFLINE_VULN_SCRIPTS}) and (http-git or vulners)"));
    // `vulners` is external: the first clause keeps it out. Not-a-name text is dropped.
    assert_eq!(script_selection(&["all or x".into()]), OFFLINE_VULN_SCRIPTS);
}
