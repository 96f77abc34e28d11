//! Acknowledged commits survive the process being killed with SIGKILL mid-stream.
//!
//! The parent test re-runs this same test binary as a child, selecting only the ignored helper
//! `child_writer` and handing it the database path in `CHILD_DB_ENV`. The child commits one
//! object per revision and prints `ACK <revision> <i>` after each commit returns. The parent
//! kills it after a number of acknowledgements, reopens the file, and checks every acknowledged
//! revision is there.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::{admin, put};
use palisade_store::{ObjectKey, SqliteStore, Store};
use serde_json::json;

const CHILD_DB_ENV: &str = "PALISADE_STORE_DURABILITY_CHILD_DB";
/// Acknowledgements to wait for before killing the child.
const KILL_AFTER_ACKS: usize = 60;
/// More than the child can reach before it is killed; it is never meant to finish.
const CHILD_COMMITS: u64 = 1_000_000;

fn key(i: u64) -> ObjectKey {
    ObjectKey::tenant("policy", "alpha", format!("obj-{i}"))
}

/// Helper run only as the child of `acknowledged_commits_survive_sigkill`.
#[test]
#[ignore = "helper: run in a child process by acknowledged_commits_survive_sigkill"]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        eprintln!("{CHILD_DB_ENV} is not set: nothing to do outside the durability test");
        return;
    };
    let store = SqliteStore::open(path).expect("child opens the store");
    for i in 0..CHILD_COMMITS {
        let rev = store
            .commit(&admin(), &format!("write {i}"), &[put(&key(i), json!({ "i": i }))], i as i64)
            .expect("child commit");
        // stdout is line-buffered: the line leaves the process before the next commit starts.
        println!("ACK {rev} {i}");
    }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());

    let mut acks: Vec<(u64, u64)> = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // Only a complete line is an acknowledgement; a kill can cut the last one short. The
        // first ACK shares its line with libtest's "test child_writer ... " under --nocapture.
        if let Some((_, rest)) = line.strip_suffix('\n').and_then(|l| l.split_once("ACK ")) {
            let (rev, i) = rest.split_once(' ').unwrap();
            acks.push((rev.parse().unwrap(), i.parse().unwrap()));
        }
        if !killed && acks.len() >= KILL_AFTER_ACKS {
            child.kill().unwrap(); // SIGKILL on Unix
            killed = true;
        }
        // Keep reading after the kill: lines already in the pipe were acknowledged too.
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();

    assert_eq!(status.signal(), Some(9), "child must die by SIGKILL mid-way; status {status:?}, stderr:\n{err}");
    assert!(acks.len() >= KILL_AFTER_ACKS, "only {} acks before exit; stderr:\n{err}", acks.len());
    assert_eq!(acks[0], (1, 0), "the first acknowledgement was not parsed");

    let store = SqliteStore::open(&db).expect("reopen after SIGKILL");
    let last_ack = acks.last().unwrap().0;
    let revision = store.revision().unwrap();
    assert!(revision >= last_ack, "store at revision {revision}, but {last_ack} was acknowledged");
    let objects = store.objects().unwrap();
    let log = store.audit(None, usize::MAX).unwrap();
    for &(rev, i) in &acks {
        let obj = objects.iter().find(|o| o.key == key(i));
        let obj = obj.unwrap_or_else(|| panic!("acknowledged object {i} (revision {rev}) is missing"));
        assert_eq!((obj.revision, &obj.spec), (rev, &json!({ "i": i })), "object {i}");
        assert!(log.iter().any(|e| e.revision == rev), "audit entry for revision {rev} is missing");
    }
    // Revisions are dense: nothing was lost in the middle either.
    let mut revs: Vec<_> = log.iter().map(|e| e.revision).collect();
    revs.reverse();
    assert_eq!(revs, (1..=revision).collect::<Vec<_>>());
}
