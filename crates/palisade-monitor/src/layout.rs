//! The Rust mirror of mem-S (`payload/shared.h`): field offsets and sizes. `build.rs` checks
//! each against the C header with `_Static_assert`; the assertions below check the mirror's own
//! arithmetic (fields inside their structs, tables inside the header page).

#![allow(missing_docs)]

include!("layout_consts.rs");

const _: () = {
    assert!(RING_CAPACITY.is_power_of_two());
    assert!(HDR_HITS + 8 <= HDR_HOOKS);
    assert!(HDR_HOOKS + MAX_HOOKS as u64 * HOOK_SIZE <= HDR_POLICIES);
    assert!(HDR_POLICIES + MAX_POLICIES as u64 * POLICY_SIZE <= HEADER_SIZE);
    assert!(HOOK_KIND + 4 == HOOK_SIZE);
    assert!(POL_OBJECT + NAME_LEN as u64 == POLICY_SIZE);
    assert!(POL_SUBJECT + COMM_LEN as u64 == POL_OBJECT);
    assert!(EV_COMM + COMM_LEN as u64 == EV_PATH);
    assert!(EV_PATH + PATH_LEN as u64 == EVENT_SIZE);
    assert!(EVENT_SIZE.is_multiple_of(8));
    assert!(REGION_SIZE.is_multiple_of(PAGE));
    // A subject must fit a task name with its NUL; lengths are stored in one byte.
    assert!(COMM_LEN <= 256 && NAME_LEN <= 255);
};
