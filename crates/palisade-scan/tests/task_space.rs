//! Task spaces are made all or nothing, and orphans are found by name (issue #7). Needs root.

mod common;

use std::path::Path;

use common::{is_root, sh};
use palisade_host::ToolError;
use palisade_scan::space::purge_orphans;
use palisade_scan::{AddressPool, Naming, SpaceError, TaskId, TaskSpace, DEFAULT_POOL};

fn leftovers(name: &str) -> bool {
    sh(&["ip", "netns", "list"]).lines().any(|l| l.starts_with(name)) || Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn a_failed_creation_leaves_nothing_behind() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let naming = Naming::new("pst-f").unwrap();
    let addrs = AddressPool::new(DEFAULT_POOL.parse().unwrap()).unwrap().allocate().unwrap();
    // The last step (joining the bridge) fails: there is no such bridge.
    let err = TaskSpace::create(&naming, TaskId(7), addrs, "pst-nobridge").unwrap_err();
    assert!(
        matches!(err, SpaceError::Tool(ToolError::Failed { ref command, .. }) if command.contains("add-port")),
        "{err}"
    );
    assert!(!leftovers("pst-f00000007"), "namespace or veth left behind");
}

#[test]
fn a_second_space_for_one_task_is_refused_and_orphans_are_purged() {
    assert!(is_root(), "this test needs root (CI runs as root)");
    let naming = Naming::new("pst-o").unwrap();
    // An engine that died left a namespace named like a task space.
    sh(&["ip", "netns", "add", "pst-o0000000a"]);
    let addrs = AddressPool::new(DEFAULT_POOL.parse().unwrap()).unwrap().allocate().unwrap();
    let err = TaskSpace::create(&naming, TaskId(10), addrs, "pst-nobridge").unwrap_err();
    assert_eq!(err.to_string(), "a task space named pst-o0000000a exists already");
    assert!(leftovers("pst-o0000000a"), "refusing must not remove the existing one");
    assert_eq!(purge_orphans(&naming, "pst-nobridge").unwrap(), vec!["pst-o0000000a".to_owned()]);
    assert!(!leftovers("pst-o0000000a"));
}
