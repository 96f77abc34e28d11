//! The QMP client against a scripted fake server on a socket pair.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use super::*;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": []}}"#;

/// One step of the fake server: the command it expects, and the raw lines it answers with.
/// `{id}` in an answer is replaced by the request's id.
type Step = (&'static str, Vec<&'static str>);

fn fake_server(greeting: &'static str, steps: Vec<Step>) -> (UnixStream, JoinHandle<Vec<Value>>) {
    let (client, server) = UnixStream::pair().unwrap();
    let handle = std::thread::spawn(move || {
        let mut writer = server.try_clone().unwrap();
        let mut reader = BufReader::new(server);
        writeln!(writer, "{greeting}").unwrap();
        let mut seen = Vec::new();
        for (expected, answers) in steps {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let request: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(request["execute"], expected, "request {request}");
            let id = request["id"].to_string();
            for answer in answers {
                writer.write_all(answer.replace("{id}", &id).as_bytes()).unwrap();
                writer.write_all(b"\r\n").unwrap();
            }
            seen.push(request);
        }
        seen
    });
    (client, handle)
}

const OK: &str = r#"{"return": {}, "id": {id}}"#;

fn connect(steps: Vec<Step>) -> (Qmp, JoinHandle<Vec<Value>>) {
    let mut all = vec![("qmp_capabilities", vec![OK])];
    all.extend(steps);
    let (client, handle) = fake_server(GREETING, all);
    (Qmp::from_stream(client, Duration::from_secs(5)).unwrap(), handle)
}

#[test]
fn negotiates_then_pauses_queries_and_resumes() {
    let (mut qmp, server) = connect(vec![
        ("stop", vec![r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#, OK]),
        (
            "query-status",
            vec![r#"{"return": {"status": "paused", "singlestep": false, "running": false}, "id": {id}}"#],
        ),
        ("cont", vec![OK, r#"{"event": "RESUME", "data": {}}"#]),
        ("query-status", vec![r#"{"return": {"status": "running", "running": true}, "id": {id}}"#]),
    ]);

    qmp.stop().unwrap();
    let paused = qmp.query_status().unwrap();
    qmp.cont().unwrap();
    let running = qmp.query_status().unwrap();

    assert_eq!(paused, VmStatus { running: false, status: "paused".into() });
    assert_eq!(running, VmStatus { running: true, status: "running".into() });
    // STOP arrived before the stop reply; RESUME after cont's reply, read while querying.
    let events: Vec<String> = qmp.take_events().into_iter().map(|e| e.name).collect();
    assert_eq!(events, ["STOP", "RESUME"]);
    let requests = server.join().unwrap();
    let ids: Vec<u64> = requests.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5], "every request carries a fresh id");
}

#[test]
fn replies_to_other_ids_and_blank_lines_are_skipped() {
    let (mut qmp, _server) = connect(vec![(
        "query-status",
        vec![
            "",
            r#"{"return": {"status": "stale", "running": false}, "id": 999}"#,
            r#"{"return": {"status": "running", "running": true}, "id": {id}}"#,
        ],
    )]);

    assert_eq!(qmp.query_status().unwrap().status, "running");
}

#[test]
fn error_replies_become_typed_errors() {
    let (mut qmp, _server) = connect(vec![(
        "cont",
        vec![
            r#"{"error": {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}, "id": {id}}"#,
        ],
    )]);

    let err = qmp.cont().unwrap_err();

    let QmpError::Command { command, class, desc } = err else { panic!("{err:?}") };
    assert_eq!((command.as_str(), class.as_str()), ("cont", "GenericError"));
    assert!(desc.contains("Resetting"));
}

#[test]
fn quit_accepts_a_reply_or_a_closed_socket() {
    let (mut qmp, _server) = connect(vec![("quit", vec![OK])]);
    qmp.quit().unwrap();

    // The server reads quit, then its thread ends, closing the socket without answering.
    let (mut qmp, _server) = connect(vec![("quit", vec![])]);
    qmp.quit().unwrap();
}

#[test]
fn a_missing_greeting_is_refused() {
    let (client, _server) = fake_server(r#"{"return": {}}"#, vec![]);

    let err = Qmp::from_stream(client, Duration::from_secs(5)).unwrap_err();

    assert!(matches!(err, QmpError::Unexpected(_)), "{err:?}");
}

#[test]
fn garbage_replies_are_errors_never_panics() {
    let garbage: &[&'static str] = &[
        "not json",
        "[1,2,3]",
        "\"string\"",
        r#"{"return": {"running": "yes"}, "id": {id}}"#,
        r#"{"id": {id}}"#,
        r#"{"error": 5, "id": {id}}"#,
        "{\"return\": \u{fffd}}",
        r#"{"event": 5}"#,
    ];
    for answer in garbage {
        let (mut qmp, _server) = connect(vec![("query-status", vec![answer])]);
        assert!(qmp.query_status().is_err(), "{answer} accepted");
    }
    for bytes in [&b"\xff\xfe\x00\n"[..], b"{\"QMP\"", b"\n\n\n"] {
        let (client, mut server) = UnixStream::pair().unwrap();
        server.write_all(bytes).unwrap();
        drop(server);
        assert!(Qmp::from_stream(client, Duration::from_secs(5)).is_err());
    }
}

#[test]
fn a_silent_server_times_out() {
    let (client, _server) = UnixStream::pair().unwrap();

    let err = Qmp::from_stream(client, Duration::from_millis(50)).unwrap_err();

    assert!(matches!(err, QmpError::Io(_)), "{err:?}");
}
