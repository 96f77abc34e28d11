//! Which lab a lab directory stands for (issue #14): a directory other than the default one
//! never stands for the default lab, so a command given a fresh directory (as every test is)
//! can never take down or build over the lab a user has running.

use palisade_client::lab::{LabGlueError, LabHome, LabNames};

#[test]
fn a_directory_without_a_record_holds_no_lab_unless_it_is_the_default_one() {
    let tmp = tempfile::tempdir().unwrap();
    let home = LabHome::new(tmp.path().join("lab"));
    assert!(!home.is_default());
    assert!(matches!(home.names(), Err(LabGlueError::NoLab(_))));
    let err = home.names_for_up(None, Some("t1")).unwrap_err();
    assert!(matches!(err, LabGlueError::NeedBridge(_)), "{err}");
    assert!(err.to_string().contains("--bridge"), "{err}");

    let default = LabHome::new(palisade_lab::DEFAULT_STATE_DIR.into());
    assert!(default.is_default());
}

#[test]
fn up_records_its_names_and_refuses_another_lab_in_the_same_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let home = LabHome::new(tmp.path().join("lab"));
    let names = home.names_for_up(Some("paltest-x"), Some("tx")).unwrap();
    assert_eq!(names, LabNames::new("paltest-x", "tx").unwrap());
    home.claim(&names).unwrap();
    assert_eq!(home.names().unwrap(), names, "later commands find the recorded lab");
    assert_eq!(home.names_for_up(None, None).unwrap(), names, "`lab up` again needs no flags");

    let other = home.names_for_up(Some("palisade0"), None).unwrap();
    let err = home.claim(&other).unwrap_err();
    assert!(matches!(err, LabGlueError::OtherLab { .. }), "{err}");
    assert!(err.to_string().contains("paltest-x"), "{err}");
}

#[test]
fn bad_prefixes_and_records_are_refused_naming_them() {
    assert!(LabNames::new("b", "T-1").is_err());
    let tmp = tempfile::tempdir().unwrap();
    let home = LabHome::new(tmp.path().to_path_buf());
    std::fs::write(tmp.path().join("lab.json"), "{\"bridge\": \"b\"}").unwrap();
    let err = home.names().unwrap_err();
    assert!(err.to_string().contains("lab.json"), "{err}");
}
