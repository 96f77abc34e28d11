/* Palisade's monitoring payload: runs inside the guest kernel, entered from hooked system-call
 * handlers through palisade_trampoline. Freestanding: no kernel headers, no FPU/SSE, no red zone,
 * kernel code model. Every kernel function or variable it uses is an undefined symbol that the
 * host's loader resolves by name from the guest's own symbol table:
 *
 *   current_task          per-CPU pointer to the running task (%gs-relative)
 *   __get_task_comm       the task's name (takes its task lock)
 *   __x64_sys_getuid      the caller's uid (syscall ABI entry; ignores its regs argument)
 *   __x64_sys_getpid      the caller's thread-group id in its pid namespace
 *   ktime_get_real_fast_ns   CLOCK_REALTIME, NMI-safe, lock-free
 *   strncpy_from_user     a path argument from user memory
 *   fget                  an fd argument to its struct file (a reference)
 *   file_path             ... to an absolute path (d_path)
 *   fput                  ... and the reference dropped
 *
 * Layout of the shared region: shared.h.
 */
#include "shared.h"

#define EPERM 1
#define MAX_ERRNO 4095

/* The x86-64 `struct pt_regs` (the ptrace ABI: stable). */
struct pt_regs_abi {
	ms_u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs,
		flags, sp, ss;
};

extern long strncpy_from_user(char *dst, const char *src, long count);
extern void *fget(unsigned int fd);
extern void fput(void *file);
extern char *file_path(void *file, char *buf, int buflen);
extern char *__get_task_comm(char *buf, unsigned long buf_size, void *task);
extern long __x64_sys_getuid(const struct pt_regs_abi *regs);
extern long __x64_sys_getpid(const struct pt_regs_abi *regs);
extern ms_u64 ktime_get_real_fast_ns(void);

long palisade_handle(struct pt_regs_abi *regs, ms_u64 ret_addr);

/* Original handlers behind the table-redirect stubs (trampoline.S), written by the host. */
ms_u64 palisade_table_orig[MS_MAX_HOOKS];

struct ms_region palisade_mem_s __attribute__((section(".bss.palisade_mem_s"), aligned(MS_PAGE)));

static inline void *current_task_ptr(void)
{
	void *task;
	asm volatile("movq %%gs:current_task, %0" : "=r"(task));
	return task;
}

static ms_u64 arg(const struct pt_regs_abi *regs, int n)
{
	return n == 0 ? regs->di : regs->si;
}

/* Zeroes an event word by word (volatile: no memset call or vector stores from the compiler). */
static void zero_event(struct ms_event *ev)
{
	volatile ms_u64 *w = (volatile ms_u64 *)ev;
	for (unsigned long i = 0; i < sizeof(*ev) / 8; i++)
		w[i] = 0;
}

static unsigned int bounded_len(const char *s, unsigned int max)
{
	unsigned int n = 0;
	while (n < max && s[n])
		n++;
	return n;
}

static void object_path(const struct pt_regs_abi *regs, ms_u32 kind, struct ms_event *ev)
{
	long n;
	if (kind == MS_OBJ_USER_PATH0 || kind == MS_OBJ_USER_PATH1) {
		const char *user = (const char *)arg(regs, kind == MS_OBJ_USER_PATH0 ? 0 : 1);
		n = strncpy_from_user(ev->path, user, MS_PATH_LEN);
		if (n < 0) {
			ev->flags |= MS_EV_PATH_FAULT;
			n = 0;
		} else if (n >= MS_PATH_LEN) {
			ev->flags |= MS_EV_PATH_TRUNCATED;
			n = MS_PATH_LEN - 1;
		}
		ev->path[n] = 0;
		ev->path_len = (ms_u16)n;
	} else if (kind == MS_OBJ_FD) {
		char buf[MS_PATH_LEN];
		void *file = fget((unsigned int)regs->di);
		char *p;
		if (!file) {
			ev->flags |= MS_EV_PATH_FAULT;
			return;
		}
		p = file_path(file, buf, MS_PATH_LEN);
		if ((unsigned long)p >= (unsigned long)-MAX_ERRNO) {
			ev->flags |= MS_EV_PATH_TRUNCATED;
		} else {
			unsigned int len = bounded_len(p, MS_PATH_LEN - 1);
			for (unsigned int i = 0; i < len; i++)
				ev->path[i] = p[i];
			ev->path[len] = 0;
			ev->path_len = (ms_u16)len;
		}
		fput(file);
	}
}

static int policy_matches(const volatile struct ms_policy *p, ms_u32 nr, const struct ms_event *ev)
{
	unsigned int i, n;
	if (p->nr != MS_ANY_NR && p->nr != nr)
		return 0;
	n = p->subject_len;
	if (n > MS_COMM_LEN - 1)
		return 0;
	if (n) {
		for (i = 0; i < n; i++)
			if (ev->comm[i] != p->subject[i])
				return 0;
		if (ev->comm[n] != 0)
			return 0;
	}
	n = p->object_len;
	if (n > MS_NAME_LEN)
		return 0;
	for (i = 0; i < n; i++)
		if (ev->path[i] != p->object[i]) /* stops at the path's NUL too */
			return 0;
	return 1;
}

/* Could any policy match `nr` from this process, whatever the object? Checked before the
 * object's path is resolved (the costly part), so calls of processes no rule names cost only
 * the task name. A hint read without the generation check: a policy rewritten meanwhile is
 * seen as if the call had come just before the rewrite. */
static int policy_may_match(const volatile struct ms_header *h, ms_u32 nr, const struct ms_event *ev)
{
	ms_u32 count = h->policy_count;
	for (ms_u32 i = 0; i < count && i < MS_MAX_POLICIES; i++) {
		const volatile struct ms_policy *p = &h->policies[i];
		unsigned int n = p->subject_len, j;
		if (p->nr != MS_ANY_NR && p->nr != nr)
			continue;
		if (n > MS_COMM_LEN - 1)
			continue;
		for (j = 0; j < n; j++)
			if (ev->comm[j] != p->subject[j])
				break;
		if (j == n && (n == 0 || ev->comm[n] == 0))
			return 1;
	}
	return 0;
}

/* Does any policy name `nr`? A cheap check before gathering the event. */
static int policy_mentions(const volatile struct ms_header *h, ms_u32 nr)
{
	ms_u32 count = h->policy_count;
	for (ms_u32 i = 0; i < count && i < MS_MAX_POLICIES; i++)
		if (h->policies[i].nr == nr || h->policies[i].nr == MS_ANY_NR)
			return 1;
	return 0;
}

/* The first matching policy under a stable generation: 1 and its id/action, or 0 when none
 * matches or the first match is a pass rule. */
static int decide(volatile struct ms_header *h, ms_u32 nr, struct ms_event *ev)
{
	for (int attempt = 0; attempt < 64; attempt++) {
		ms_u64 gen = __atomic_load_n(&h->policy_generation, __ATOMIC_ACQUIRE);
		int found = 0;
		if (gen & 1)
			continue;
		ms_u32 count = h->policy_count;
		for (ms_u32 i = 0; i < count && i < MS_MAX_POLICIES; i++) {
			if (policy_matches(&h->policies[i], nr, ev)) {
				ms_u8 action = h->policies[i].action;
				ev->policy_id = h->policies[i].id;
				ev->action = action == MS_ACTION_BLOCK ? MS_ACTION_BLOCK : MS_ACTION_RECORD;
				found = action != MS_ACTION_PASS; /* pass: matched, nothing to do */
				break;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&h->policy_generation, __ATOMIC_RELAXED) == gen)
			return found;
	}
	/* The host kept rewriting the policy: record what we saw, never block on a torn read. */
	ev->action = MS_ACTION_RECORD;
	ev->flags |= MS_EV_POLICY_BUSY;
	return ev->policy_id != 0;
}

static void publish(struct ms_region *r, const struct ms_event *ev)
{
	struct ms_header *h = &r->header;
	ms_u64 head = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);
	for (;;) {
		ms_u64 tail = __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE);
		if (head - tail >= MS_RING_CAPACITY) {
			__atomic_fetch_add(&h->overflow, 1, __ATOMIC_RELAXED);
			return;
		}
		if (__atomic_compare_exchange_n(&h->head, &head, head + 1, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			break;
	}
	struct ms_event *slot = &r->ring[head & (MS_RING_CAPACITY - 1)];
	const ms_u64 *src = (const ms_u64 *)ev;
	volatile ms_u64 *dst = (volatile ms_u64 *)slot;
	for (unsigned int i = 1; i < sizeof(*ev) / 8; i++)
		dst[i] = src[i];
	__atomic_store_n(&slot->seq, head + 1, __ATOMIC_RELEASE);
}

long palisade_handle(struct pt_regs_abi *regs, ms_u64 ret_addr)
{
	struct ms_region *r = &palisade_mem_s;
	volatile struct ms_header *h = &r->header;
	const volatile struct ms_hook *hook = 0;
	struct ms_event ev;
	ms_u64 site = ret_addr - 5;

	__atomic_fetch_add(&r->header.hits, 1, __ATOMIC_RELAXED);
	for (ms_u32 i = 0; i < h->hook_count && i < MS_MAX_HOOKS; i++) {
		if (h->hooks[i].site == site) {
			hook = &h->hooks[i];
			break;
		}
	}
	if (!hook)
		return 0;
	ms_u32 nr = hook->nr;
	if (!policy_mentions(h, nr))
		return 0;

	zero_event(&ev);
	__get_task_comm(ev.comm, MS_COMM_LEN, current_task_ptr());
	ev.comm[MS_COMM_LEN - 1] = 0;
	if (!policy_may_match(h, nr, &ev))
		return 0;
	object_path(regs, hook->kind, &ev);
	if (!decide(h, nr, &ev))
		return 0;
	ev.nr = nr;
	ev.time_ns = ktime_get_real_fast_ns();
	ev.uid = (ms_u32)__x64_sys_getuid(regs);
	ev.pid = (ms_u32)__x64_sys_getpid(regs);
	ev.arg0 = (ms_i64)regs->di;
	publish(r, &ev);
	return ev.action == MS_ACTION_BLOCK ? -EPERM : 0;
}
