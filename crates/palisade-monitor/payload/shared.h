/* mem-S: the region shared by the injected payload (writer of events, reader of policy) and the
 * host (reader of events through the guest's RAM file, writer of policy). The Rust mirror is
 * `src/layout.rs`; it checks every size and offset below at compile time. Change both together
 * and bump MS_VERSION.
 *
 *   page 0     struct ms_header   magic, counters, hook table, policy table
 *   page 1..   struct ms_event[MS_RING_CAPACITY]
 *
 * Ring protocol (multi-producer, one consumer):
 *   writer: h = head; if h - tail >= capacity -> overflow += 1, drop; else CAS head h -> h+1,
 *           fill slot h % capacity, then store seq = h + 1 (release). Events are gathered before
 *           the reservation, so a reserved slot is committed a few instructions later.
 *   host:   at position t, the slot is ready when seq == t + 1; read it, then tail = t + 1.
 * Policy protocol (seqlock): the host makes policy_generation odd, rewrites the table and count,
 * then makes it even again; the payload retries a decision made while it was odd or changed.
 */
#ifndef PALISADE_SHARED_H
#define PALISADE_SHARED_H

typedef unsigned char ms_u8;
typedef unsigned short ms_u16;
typedef unsigned int ms_u32;
typedef unsigned long long ms_u64;
typedef long long ms_i64;

#define MS_MAGIC 0x31534d53494c4150ULL /* "PALISMS1" little-endian */
#define MS_VERSION 1
#define MS_PAGE 4096
#define MS_COMM_LEN 16
#define MS_PATH_LEN 256
#define MS_NAME_LEN 128
#define MS_MAX_HOOKS 32
#define MS_MAX_POLICIES 16
#define MS_RING_CAPACITY 1024 /* power of two */
#define MS_ANY_NR 0xffffffffu

#define MS_ACTION_RECORD 0
#define MS_ACTION_BLOCK 1
#define MS_ACTION_PASS 2 /* stops matching; no event, the call runs */

/* ms_event.flags */
#define MS_EV_PATH_TRUNCATED 1u /* the path did not fit */
#define MS_EV_PATH_FAULT 2u     /* the user string or the fd could not be read */
#define MS_EV_POLICY_BUSY 4u    /* the policy kept changing; recorded, not blocked */

/* How a hooked syscall names its object (ms_hook.kind). */
#define MS_OBJ_NONE 0
#define MS_OBJ_FD 1       /* fd in argument 0: path through fget + file_path */
#define MS_OBJ_USER_PATH0 2 /* user string in argument 0 (open) */
#define MS_OBJ_USER_PATH1 3 /* user string in argument 1 (openat) */

struct ms_hook {          /* 16 bytes */
	ms_u64 site;      /* address of the patched 5-byte call, 0 = unused */
	ms_u32 nr;        /* system call number */
	ms_u32 kind;      /* MS_OBJ_* */
};

struct ms_policy {        /* 160 bytes */
	ms_u32 id;
	ms_u32 nr;        /* system call number or MS_ANY_NR */
	ms_u8 action;     /* MS_ACTION_* */
	ms_u8 subject_len;/* 0 = any process */
	ms_u8 object_len; /* 0 = any object; else a path prefix */
	ms_u8 pad0;
	ms_u32 pad1;
	char subject[MS_COMM_LEN];
	char object[MS_NAME_LEN];
};

struct ms_header {        /* one page */
	ms_u64 magic;               /* 0 */
	ms_u32 version;             /* 8 */
	ms_u32 event_size;          /* 12 */
	ms_u32 ring_capacity;       /* 16 */
	ms_u32 hook_count;          /* 20 */
	ms_u64 head;                /* 24: next slot to reserve (payload) */
	ms_u64 tail;                /* 32: next slot the host reads (host) */
	ms_u64 overflow;            /* 40: events dropped because the ring was full */
	ms_u64 policy_generation;   /* 48: odd while the host rewrites the policy */
	ms_u32 policy_count;        /* 56 */
	ms_u32 pad0;                /* 60 */
	ms_u64 hits;                /* 64: hooked calls seen (matched or not) */
	ms_u64 pad1[7];             /* 72 */
	struct ms_hook hooks[MS_MAX_HOOKS];           /* 128 .. 640 */
	struct ms_policy policies[MS_MAX_POLICIES];   /* 640 .. 3200 */
	ms_u8 pad2[MS_PAGE - 3200];
};

struct ms_event {         /* 320 bytes */
	ms_u64 seq;       /* 0: index + 1 once committed */
	ms_u64 time_ns;   /* 8: CLOCK_REALTIME */
	ms_u32 nr;        /* 16 */
	ms_u32 pid;       /* 20: thread group id */
	ms_u32 uid;       /* 24 */
	ms_u32 policy_id; /* 28 */
	ms_i64 arg0;      /* 32: fd or dirfd argument */
	ms_u8 action;     /* 40: action taken */
	ms_u8 flags;      /* 41: MS_EV_* */
	ms_u16 path_len;  /* 42 */
	ms_u32 pad0;      /* 44 */
	char comm[MS_COMM_LEN]; /* 48 */
	char path[MS_PATH_LEN]; /* 64 */
};

struct ms_region {
	struct ms_header header;
	struct ms_event ring[MS_RING_CAPACITY];
};

#endif
