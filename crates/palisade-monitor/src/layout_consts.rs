// The mem-S layout constants, shared by the crate (`layout.rs`) and `build.rs`, which turns
// `C_CHECKS` into `_Static_assert`s compiled against `payload/shared.h`: a mismatch between the
// C header and this mirror fails the build.

/// `MS_MAGIC`: "PALISMS1" read as a little-endian u64.
pub const MAGIC: u64 = 0x3153_4d53_494c_4150;
/// `MS_VERSION`.
pub const VERSION: u32 = 1;
/// `MS_PAGE`.
pub const PAGE: u64 = 4096;
/// `MS_COMM_LEN`: a task name with its NUL.
pub const COMM_LEN: usize = 16;
/// `MS_PATH_LEN`: an event's path with its NUL.
pub const PATH_LEN: usize = 256;
/// `MS_NAME_LEN`: a policy's object prefix (no NUL needed).
pub const NAME_LEN: usize = 128;
/// `MS_MAX_HOOKS`.
pub const MAX_HOOKS: usize = 32;
/// `MS_MAX_POLICIES`.
pub const MAX_POLICIES: usize = 16;
/// `MS_RING_CAPACITY` (a power of two).
pub const RING_CAPACITY: u64 = 1024;
/// `MS_ANY_NR`.
pub const ANY_NR: u32 = 0xffff_ffff;
/// `MS_ACTION_RECORD`, `MS_ACTION_BLOCK`, `MS_ACTION_PASS`.
pub const ACTION_RECORD: u8 = 0;
pub const ACTION_BLOCK: u8 = 1;
pub const ACTION_PASS: u8 = 2;

/// `struct ms_header` field offsets and size.
pub const HDR_MAGIC: u64 = 0;
pub const HDR_VERSION: u64 = 8;
pub const HDR_EVENT_SIZE: u64 = 12;
pub const HDR_RING_CAPACITY: u64 = 16;
pub const HDR_HOOK_COUNT: u64 = 20;
pub const HDR_HEAD: u64 = 24;
pub const HDR_TAIL: u64 = 32;
pub const HDR_OVERFLOW: u64 = 40;
pub const HDR_POLICY_GENERATION: u64 = 48;
pub const HDR_POLICY_COUNT: u64 = 56;
pub const HDR_HITS: u64 = 64;
pub const HDR_HOOKS: u64 = 128;
pub const HDR_POLICIES: u64 = 640;
pub const HEADER_SIZE: u64 = PAGE;

/// `struct ms_hook`.
pub const HOOK_SITE: u64 = 0;
pub const HOOK_NR: u64 = 8;
pub const HOOK_KIND: u64 = 12;
pub const HOOK_SIZE: u64 = 16;

/// `struct ms_policy`.
pub const POL_ID: u64 = 0;
pub const POL_NR: u64 = 4;
pub const POL_ACTION: u64 = 8;
pub const POL_SUBJECT_LEN: u64 = 9;
pub const POL_OBJECT_LEN: u64 = 10;
pub const POL_SUBJECT: u64 = 16;
pub const POL_OBJECT: u64 = 32;
pub const POLICY_SIZE: u64 = 160;

/// `struct ms_event`.
pub const EV_SEQ: u64 = 0;
pub const EV_TIME_NS: u64 = 8;
pub const EV_NR: u64 = 16;
pub const EV_PID: u64 = 20;
pub const EV_UID: u64 = 24;
pub const EV_POLICY_ID: u64 = 28;
pub const EV_ARG0: u64 = 32;
pub const EV_ACTION: u64 = 40;
pub const EV_FLAGS: u64 = 41;
pub const EV_PATH_LEN: u64 = 42;
pub const EV_COMM: u64 = 48;
pub const EV_PATH: u64 = 64;
pub const EVENT_SIZE: u64 = 320;

/// `struct ms_region`: the header page, then the ring.
pub const REGION_RING: u64 = HEADER_SIZE;
pub const REGION_SIZE: u64 = HEADER_SIZE + RING_CAPACITY * EVENT_SIZE;

/// (C expression, value this mirror expects), checked by build.rs against shared.h.
pub const C_CHECKS: &[(&str, u64)] = &[
    ("MS_MAGIC", MAGIC),
    ("MS_VERSION", VERSION as u64),
    ("MS_PAGE", PAGE),
    ("MS_COMM_LEN", COMM_LEN as u64),
    ("MS_PATH_LEN", PATH_LEN as u64),
    ("MS_NAME_LEN", NAME_LEN as u64),
    ("MS_MAX_HOOKS", MAX_HOOKS as u64),
    ("MS_MAX_POLICIES", MAX_POLICIES as u64),
    ("MS_RING_CAPACITY", RING_CAPACITY),
    ("MS_ANY_NR", ANY_NR as u64),
    ("MS_ACTION_RECORD", ACTION_RECORD as u64),
    ("MS_ACTION_BLOCK", ACTION_BLOCK as u64),
    ("MS_ACTION_PASS", ACTION_PASS as u64),
    ("offsetof(struct ms_header, magic)", HDR_MAGIC),
    ("offsetof(struct ms_header, version)", HDR_VERSION),
    ("offsetof(struct ms_header, event_size)", HDR_EVENT_SIZE),
    ("offsetof(struct ms_header, ring_capacity)", HDR_RING_CAPACITY),
    ("offsetof(struct ms_header, hook_count)", HDR_HOOK_COUNT),
    ("offsetof(struct ms_header, head)", HDR_HEAD),
    ("offsetof(struct ms_header, tail)", HDR_TAIL),
    ("offsetof(struct ms_header, overflow)", HDR_OVERFLOW),
    ("offsetof(struct ms_header, policy_generation)", HDR_POLICY_GENERATION),
    ("offsetof(struct ms_header, policy_count)", HDR_POLICY_COUNT),
    ("offsetof(struct ms_header, hits)", HDR_HITS),
    ("offsetof(struct ms_header, hooks)", HDR_HOOKS),
    ("offsetof(struct ms_header, policies)", HDR_POLICIES),
    ("sizeof(struct ms_header)", HEADER_SIZE),
    ("offsetof(struct ms_hook, site)", HOOK_SITE),
    ("offsetof(struct ms_hook, nr)", HOOK_NR),
    ("offsetof(struct ms_hook, kind)", HOOK_KIND),
    ("sizeof(struct ms_hook)", HOOK_SIZE),
    ("offsetof(struct ms_policy, id)", POL_ID),
    ("offsetof(struct ms_policy, nr)", POL_NR),
    ("offsetof(struct ms_policy, action)", POL_ACTION),
    ("offsetof(struct ms_policy, subject_len)", POL_SUBJECT_LEN),
    ("offsetof(struct ms_policy, object_len)", POL_OBJECT_LEN),
    ("offsetof(struct ms_policy, subject)", POL_SUBJECT),
    ("offsetof(struct ms_policy, object)", POL_OBJECT),
    ("sizeof(struct ms_policy)", POLICY_SIZE),
    ("offsetof(struct ms_event, seq)", EV_SEQ),
    ("offsetof(struct ms_event, time_ns)", EV_TIME_NS),
    ("offsetof(struct ms_event, nr)", EV_NR),
    ("offsetof(struct ms_event, pid)", EV_PID),
    ("offsetof(struct ms_event, uid)", EV_UID),
    ("offsetof(struct ms_event, policy_id)", EV_POLICY_ID),
    ("offsetof(struct ms_event, arg0)", EV_ARG0),
    ("offsetof(struct ms_event, action)", EV_ACTION),
    ("offsetof(struct ms_event, flags)", EV_FLAGS),
    ("offsetof(struct ms_event, path_len)", EV_PATH_LEN),
    ("offsetof(struct ms_event, comm)", EV_COMM),
    ("offsetof(struct ms_event, path)", EV_PATH),
    ("sizeof(struct ms_event)", EVENT_SIZE),
    ("offsetof(struct ms_region, ring)", REGION_RING),
    ("sizeof(struct ms_region)", REGION_SIZE),
];
