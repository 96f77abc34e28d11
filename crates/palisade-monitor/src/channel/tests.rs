use palisade_vmi::FakeMemory;

use super::*;

/// mem-S scattered over non-contiguous fake pages, in reverse order.
fn mems() -> MemS<FakeMemory> {
    let n = (REGION_SIZE / PAGE) as usize;
    let mem = FakeMemory::new((2 * n as u64 + 2) * PAGE);
    let pages = (0..n).map(|i| Gpa((2 * (n - i) as u64) * PAGE)).collect();
    let m = MemS::new(mem, pages);
    m.initialise(&[(0xffff_ffff_8120_0000, Syscall::by_name("openat").unwrap())]).unwrap();
    m
}

/// What the payload's `publish` does, for one event.
fn publish(m: &MemS<FakeMemory>, path: &str, comm: &str, commit: bool) -> u64 {
    let head = m.read_u64(HDR_HEAD).unwrap();
    let tail = m.read_u64(HDR_TAIL).unwrap();
    if head - tail >= RING_CAPACITY {
        let o = m.read_u64(HDR_OVERFLOW).unwrap();
        m.write(HDR_OVERFLOW, &(o + 1).to_le_bytes()).unwrap();
        return u64::MAX;
    }
    m.write(HDR_HEAD, &(head + 1).to_le_bytes()).unwrap();
    let mut r = vec![0u8; EVENT_SIZE as usize];
    put(&mut r, EV_TIME_NS, &1_700_000_000_000_000_123u64.to_le_bytes());
    put(&mut r, EV_NR, &257u32.to_le_bytes());
    put(&mut r, EV_PID, &42u32.to_le_bytes());
    put(&mut r, EV_UID, &1000u32.to_le_bytes());
    put(&mut r, EV_POLICY_ID, &7u32.to_le_bytes());
    put(&mut r, EV_ARG0, &(-100i64).to_le_bytes());
    r[EV_ACTION as usize] = 1;
    put(&mut r, EV_PATH_LEN, &(path.len() as u16).to_le_bytes());
    put(&mut r, EV_COMM, comm.as_bytes());
    put(&mut r, EV_PATH, path.as_bytes());
    if commit {
        put(&mut r, EV_SEQ, &(head + 1).to_le_bytes());
    }
    m.write(REGION_RING + (head % RING_CAPACITY) * EVENT_SIZE, &r).unwrap();
    head
}

#[test]
fn events_come_out_typed_and_in_order() {
    let m = mems();
    let mut reader = EventReader::new(&m).unwrap();
    publish(&m, "/etc/hosts", "cat", true);
    publish(&m, "/tmp/a.txt", "sh", true);

    let batch = reader.poll(&m).unwrap();

    assert_eq!(batch.lost, 0);
    let e = &batch.events;
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].index, e[0].path.as_str(), e[0].file_name.as_str()), (0, "/etc/hosts", "hosts"));
    assert_eq!((e[0].process.as_str(), e[0].pid, e[0].uid, e[0].rule), ("cat", 42, 1000, 7));
    assert_eq!((e[0].syscall, e[0].action, e[0].arg0), (Some("openat"), Action::Block, -100));
    assert_eq!(e[0].time, SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_123));
    assert_eq!((e[1].index, e[1].process.as_str()), (1, "sh"));
    assert!(reader.poll(&m).unwrap().events.is_empty(), "each event once");
}

#[test]
fn a_reserved_but_uncommitted_slot_holds_back_later_ones() {
    let m = mems();
    let mut reader = EventReader::new(&m).unwrap();
    publish(&m, "/a", "sh", true);
    let held = publish(&m, "/b", "sh", false);
    publish(&m, "/c", "sh", true);

    assert_eq!(reader.poll(&m).unwrap().events.len(), 1);
    // The writer commits.
    m.write(REGION_RING + held * EVENT_SIZE + EV_SEQ, &(held + 1).to_le_bytes()).unwrap();
    let paths: Vec<String> = reader.poll(&m).unwrap().events.into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["/b", "/c"]);
}

#[test]
fn a_full_ring_counts_its_losses_and_wraps_after_the_host_reads() {
    let m = mems();
    let mut reader = EventReader::new(&m).unwrap();
    for i in 0..RING_CAPACITY + 5 {
        publish(&m, &format!("/f{i}"), "sh", true);
    }

    let batch = reader.poll(&m).unwrap();

    assert_eq!(batch.events.len() as u64, RING_CAPACITY);
    assert_eq!(batch.lost, 5);
    // Freed: the next events wrap around to slot 0 with the next sequence numbers.
    publish(&m, "/wrapped", "sh", true);
    let batch = reader.poll(&m).unwrap();
    assert_eq!((batch.events.len(), batch.lost), (1, 0));
    assert_eq!((batch.events[0].index, batch.events[0].path.as_str()), (RING_CAPACITY, "/wrapped"));
}

#[test]
fn a_head_beyond_the_ring_is_reported_not_trusted() {
    let m = mems();
    let mut reader = EventReader::new(&m).unwrap();
    m.write(HDR_HEAD, &(RING_CAPACITY * 3).to_le_bytes()).unwrap();
    assert!(matches!(reader.poll(&m), Err(ChannelError::Ring { .. })));
}

#[test]
fn policy_writes_bump_an_even_generation_and_fill_the_table() {
    let m = mems();
    let rules = [
        Rule {
            id: 2,
            nr: Some(257),
            subject: Some("cat".into()),
            object: Some("/etc/hosts".into()),
            action: Action::Block,
        },
        Rule { id: 3, nr: None, subject: None, object: None, action: Action::Record },
    ];

    m.write_policy(&rules).unwrap();
    m.write_policy(&rules).unwrap();

    assert_eq!(m.read_u64(HDR_POLICY_GENERATION).unwrap(), 4);
    assert_eq!(m.read_u32(HDR_POLICY_COUNT).unwrap(), 2);
    let mut p = vec![0u8; POLICY_SIZE as usize * 2];
    m.read(HDR_POLICIES, &mut p).unwrap();
    assert_eq!(u32_field(&p, POL_ID), 2);
    assert_eq!(u32_field(&p, POL_NR), 257);
    assert_eq!((p[POL_ACTION as usize], p[POL_SUBJECT_LEN as usize], p[POL_OBJECT_LEN as usize]), (1, 3, 10));
    assert_eq!(&p[POL_SUBJECT as usize..POL_SUBJECT as usize + 4], b"cat\0");
    assert_eq!(&p[POL_OBJECT as usize..POL_OBJECT as usize + 10], b"/etc/hosts");
    let second = &p[POLICY_SIZE as usize..];
    assert_eq!((u32_field(second, POL_NR), second[POL_ACTION as usize]), (ANY_NR, 0));
}

#[test]
fn a_pass_rule_is_written_with_the_pass_code_in_its_place() {
    let m = mems();
    let rule = |id, action| Rule { id, nr: None, subject: None, object: Some("/etc/".into()), action };
    m.write_policy(&[rule(1, Action::Pass), rule(2, Action::Record), rule(3, Action::Block)]).unwrap();

    let mut p = vec![0u8; POLICY_SIZE as usize * 3];
    m.read(HDR_POLICIES, &mut p).unwrap();
    let actions: Vec<u8> = (0..3).map(|i| p[i * POLICY_SIZE as usize + POL_ACTION as usize]).collect();
    assert_eq!(actions, [ACTION_PASS, ACTION_RECORD, ACTION_BLOCK]);
    assert_eq!((ACTION_PASS, Action::Pass.to_string()), (2, "pass".to_owned()));
}

#[test]
fn policies_the_table_cannot_hold_are_refused() {
    let m = mems();
    let rule = |id| Rule { id, nr: None, subject: None, object: None, action: Action::Record };
    assert!(matches!(m.write_policy(&[rule(0)]), Err(ChannelError::Policy(PolicyError::ZeroId))));
    let many: Vec<Rule> = (1..=MAX_POLICIES as u32 + 1).map(rule).collect();
    assert!(matches!(m.write_policy(&many), Err(ChannelError::Policy(PolicyError::TooMany(17)))));
    let long = Rule { subject: Some("a-very-long-process-name".into()), ..rule(1) };
    assert!(matches!(m.write_policy(&[long]), Err(ChannelError::Policy(PolicyError::SubjectTooLong { .. }))));
    assert_eq!(m.read_u64(HDR_POLICY_GENERATION).unwrap(), 0, "nothing written");
}

#[test]
fn garbage_records_decode_without_panicking() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    for len in [0usize, 1, 47, 63, 64, 319, 320, 400] {
        let mut r = vec![0u8; len];
        for b in r.iter_mut() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = rng as u8;
        }
        let e = parse_event(9, &r);
        assert!(e.path.len() <= 3 * PATH_LEN && e.process.len() <= 3 * COMM_LEN);
    }
}

#[test]
fn accesses_outside_mem_s_are_refused() {
    let m = mems();
    let mut b = [0u8; 8];
    assert!(matches!(m.read(REGION_SIZE - 4, &mut b), Err(ChannelError::OutOfRange { .. })));
    assert!(matches!(m.read(u64::MAX - 2, &mut b), Err(ChannelError::OutOfRange { .. })));
}

#[test]
fn events_print_in_the_papers_figure_12_form() {
    let m = mems();
    let mut reader = EventReader::new(&m).unwrap();
    publish(&m, "/home/test2", "bash", true);

    let e = &reader.poll(&m).unwrap().events[0];

    assert_eq!(
        e.figure12(),
        "FILE MONITOR: INDEX:[0], timestamp: [1700000000.000000123], filename:[test2], pathname: [/home/test2], \
         operation: [OPENAT], process name: [bash], user id:[1000]."
    );
}
