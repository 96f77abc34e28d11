//! The host's side of mem-S: the payload's event ring read and its policy table written through
//! guest physical memory (the RAM file), with no VM exit per event.
//!
//! mem-S is vmalloc memory, physically scattered: its pages are translated once (page walk at
//! injection) and every access goes to those guest physical pages.

use std::time::{Duration, SystemTime};

use palisade_vmi::{Gpa, MemoryError, PhysMemory};

use crate::layout::*;
use crate::policy::{validate, Action, PolicyError, Rule, Syscall};

/// Errors of the host side of mem-S.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Guest memory could not be read or written.
    #[error("mem-S access at offset {offset:#x} failed")]
    Memory {
        /// Offset in mem-S.
        offset: u64,
        /// Why.
        #[source]
        source: MemoryError,
    },
    /// An access past mem-S's pages.
    #[error("mem-S access at offset {offset:#x} (+{len}) is outside its {pages} pages")]
    OutOfRange {
        /// Offset.
        offset: u64,
        /// Length.
        len: usize,
        /// Pages known.
        pages: usize,
    },
    /// The header does not describe the layout this host was built for.
    #[error("mem-S header mismatch: {0}")]
    Header(String),
    /// The payload's ring claims more outstanding events than it holds.
    #[error("mem-S ring is inconsistent: head {head}, tail {tail}, capacity {RING_CAPACITY}")]
    Ring {
        /// Payload's head.
        head: u64,
        /// Host's tail.
        tail: u64,
    },
    /// The policy is not acceptable.
    #[error("policy rejected")]
    Policy(#[from] PolicyError),
}

/// mem-S as a list of guest physical pages.
#[derive(Debug)]
pub struct MemS<M: PhysMemory> {
    mem: M,
    pages: Vec<Gpa>,
}

impl<M: PhysMemory> MemS<M> {
    /// mem-S whose page `i` is at `pages[i]`.
    pub fn new(mem: M, pages: Vec<Gpa>) -> MemS<M> {
        MemS { mem, pages }
    }

    /// The guest physical pages.
    pub fn pages(&self) -> &[Gpa] {
        &self.pages
    }

    fn span(
        &self,
        offset: u64,
        len: usize,
        mut f: impl FnMut(Gpa, usize, usize) -> Result<(), MemoryError>,
    ) -> Result<(), ChannelError> {
        let end = offset.checked_add(len as u64).filter(|&e| e <= self.pages.len() as u64 * PAGE);
        if end.is_none() {
            return Err(ChannelError::OutOfRange { offset, len, pages: self.pages.len() });
        }
        let mut done = 0usize;
        while done < len {
            let at = offset + done as u64;
            let page = self.pages[(at / PAGE) as usize];
            let in_page = (at % PAGE) as usize;
            let n = (PAGE as usize - in_page).min(len - done);
            f(Gpa(page.0 + in_page as u64), done, n).map_err(|source| ChannelError::Memory { offset: at, source })?;
            done += n;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ChannelError> {
        let len = buf.len();
        self.span(offset, len, |gpa, at, n| self.mem.read(gpa, &mut buf[at..at + n]))
    }

    /// Writes `data` at `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), ChannelError> {
        self.span(offset, data.len(), |gpa, at, n| self.mem.write(gpa, &data[at..at + n]))
    }

    fn read_u64(&self, offset: u64) -> Result<u64, ChannelError> {
        let mut b = [0; 8];
        self.read(offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_u32(&self, offset: u64) -> Result<u32, ChannelError> {
        let mut b = [0; 4];
        self.read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Counters the payload keeps: (hooked calls seen, events dropped because the ring was full,
    /// events published).
    pub fn counters(&self) -> Result<Counters, ChannelError> {
        Ok(Counters {
            hits: self.read_u64(HDR_HITS)?,
            overflow: self.read_u64(HDR_OVERFLOW)?,
            published: self.read_u64(HDR_HEAD)?,
        })
    }

    /// Replaces the policy table, live (seqlock: generation odd while rewriting).
    pub fn write_policy(&self, rules: &[Rule]) -> Result<(), ChannelError> {
        validate(rules)?;
        let gen = self.read_u64(HDR_POLICY_GENERATION)?;
        let gen = gen + (gen & 1); // even
        self.write(HDR_POLICY_GENERATION, &(gen + 1).to_le_bytes())?;
        let mut table = vec![0u8; MAX_POLICIES * POLICY_SIZE as usize];
        for (i, r) in rules.iter().enumerate() {
            let e = &mut table[i * POLICY_SIZE as usize..(i + 1) * POLICY_SIZE as usize];
            put(e, POL_ID, &r.id.to_le_bytes());
            put(e, POL_NR, &r.nr.unwrap_or(ANY_NR).to_le_bytes());
            e[POL_ACTION as usize] = r.action.code();
            let subject = r.subject.as_deref().unwrap_or("").as_bytes();
            let object = r.object.as_deref().unwrap_or("").as_bytes();
            e[POL_SUBJECT_LEN as usize] = subject.len() as u8;
            e[POL_OBJECT_LEN as usize] = object.len() as u8;
            put(e, POL_SUBJECT, subject);
            put(e, POL_OBJECT, object);
        }
        self.write(HDR_POLICIES, &table)?;
        self.write(HDR_POLICY_COUNT, &(rules.len() as u32).to_le_bytes())?;
        self.write(HDR_POLICY_GENERATION, &(gen + 2).to_le_bytes())
    }

    /// Writes a fresh header: magic, sizes, the hook table, an empty ring and no policy.
    pub fn initialise(&self, hooks: &[(u64, Syscall)]) -> Result<(), ChannelError> {
        if hooks.len() > MAX_HOOKS {
            return Err(ChannelError::Header(format!("{} hooks, the table holds {MAX_HOOKS}", hooks.len())));
        }
        let mut h = vec![0u8; HEADER_SIZE as usize];
        put(&mut h, HDR_MAGIC, &MAGIC.to_le_bytes());
        put(&mut h, HDR_VERSION, &VERSION.to_le_bytes());
        put(&mut h, HDR_EVENT_SIZE, &(EVENT_SIZE as u32).to_le_bytes());
        put(&mut h, HDR_RING_CAPACITY, &(RING_CAPACITY as u32).to_le_bytes());
        put(&mut h, HDR_HOOK_COUNT, &(hooks.len() as u32).to_le_bytes());
        for (i, (site, sc)) in hooks.iter().enumerate() {
            let at = HDR_HOOKS + i as u64 * HOOK_SIZE;
            put(&mut h, at + HOOK_SITE, &site.to_le_bytes());
            put(&mut h, at + HOOK_NR, &sc.nr.to_le_bytes());
            put(&mut h, at + HOOK_KIND, &sc.object.code().to_le_bytes());
        }
        self.write(0, &h)?;
        // Stale bytes from earlier users of these pages must not look committed.
        self.write(REGION_RING, &vec![0u8; (RING_CAPACITY * EVENT_SIZE) as usize])
    }

    /// Checks the header the payload sees is ours.
    pub fn check_header(&self) -> Result<(), ChannelError> {
        let magic = self.read_u64(HDR_MAGIC)?;
        let version = self.read_u32(HDR_VERSION)?;
        let size = self.read_u32(HDR_EVENT_SIZE)?;
        let cap = self.read_u32(HDR_RING_CAPACITY)?;
        if magic != MAGIC || version != VERSION || u64::from(size) != EVENT_SIZE || u64::from(cap) != RING_CAPACITY {
            return Err(ChannelError::Header(format!(
                "magic {magic:#x}, version {version}, event size {size}, capacity {cap}"
            )));
        }
        Ok(())
    }
}

fn put(buf: &mut [u8], at: u64, data: &[u8]) {
    buf[at as usize..at as usize + data.len()].copy_from_slice(data);
}

/// The payload's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Hooked calls that entered the payload.
    pub hits: u64,
    /// Events dropped because the ring was full.
    pub overflow: u64,
    /// Events reserved in the ring so far.
    pub published: u64,
}

/// One monitored system call, as the payload recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the ring's sequence (0, 1, ...).
    pub index: u64,
    /// Guest CLOCK_REALTIME.
    pub time: SystemTime,
    /// System call number.
    pub nr: u32,
    /// Its name, when known.
    pub syscall: Option<&'static str>,
    /// The object's last path component.
    pub file_name: String,
    /// The object's path: absolute for descriptors, as passed for path arguments.
    pub path: String,
    /// The calling task's name.
    pub process: String,
    /// Its thread-group id.
    pub pid: u32,
    /// Its uid.
    pub uid: u32,
    /// The fd or dirfd argument.
    pub arg0: i64,
    /// The rule that matched.
    pub rule: u32,
    /// What the payload did.
    pub action: Action,
    /// The path was cut at the record's size.
    pub path_truncated: bool,
    /// The path could not be read (bad user pointer or fd).
    pub path_fault: bool,
    /// The policy changed throughout the decision: recorded, not blocked.
    pub policy_busy: bool,
}

impl Event {
    /// The paper's Figure 12 text form: `FILE MONITOR: INDEX:[0], timestamp: [...],
    /// filename:[test2], pathname: [/home/test2], operation: [OPEN], process name: [bash],
    /// user id:[0].` (timestamp: seconds.nanoseconds since the epoch, guest clock).
    pub fn figure12(&self) -> String {
        let t = self.time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let op = self.syscall.map_or_else(|| format!("SYSCALL {}", self.nr), str::to_uppercase);
        format!(
            "FILE MONITOR: INDEX:[{}], timestamp: [{}.{:09}], filename:[{}], pathname: [{}], operation: [{}], \
             process name: [{}], user id:[{}].",
            self.index,
            t.as_secs(),
            t.subsec_nanos(),
            self.file_name,
            self.path,
            op,
            self.process,
            self.uid
        )
    }
}

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// New events, in ring order.
    pub events: Vec<Event>,
    /// Events the payload dropped (ring full) since the previous poll.
    pub lost: u64,
}

/// Reads events from mem-S in order, once each.
#[derive(Debug)]
pub struct EventReader {
    next: u64,
    overflow_seen: u64,
}

impl EventReader {
    /// A reader starting at the ring's current tail.
    pub fn new<M: PhysMemory>(mems: &MemS<M>) -> Result<EventReader, ChannelError> {
        mems.check_header()?;
        Ok(EventReader { next: mems.read_u64(HDR_TAIL)?, overflow_seen: mems.read_u64(HDR_OVERFLOW)? })
    }

    /// Takes every committed event and the loss count since the last poll, and frees their
    /// slots for the payload.
    pub fn poll<M: PhysMemory>(&mut self, mems: &MemS<M>) -> Result<Batch, ChannelError> {
        let head = mems.read_u64(HDR_HEAD)?;
        if head < self.next || head - self.next > RING_CAPACITY {
            return Err(ChannelError::Ring { head, tail: self.next });
        }
        let mut batch = Batch::default();
        // The outstanding slots in at most two contiguous reads (the ring may wrap).
        let first = self.next % RING_CAPACITY;
        let n = head - self.next;
        let span1 = n.min(RING_CAPACITY - first);
        let mut bytes = vec![0u8; (n * EVENT_SIZE) as usize];
        let (a, b) = bytes.split_at_mut((span1 * EVENT_SIZE) as usize);
        mems.read(REGION_RING + first * EVENT_SIZE, a)?;
        mems.read(REGION_RING, b)?;
        for record in bytes.chunks_exact(EVENT_SIZE as usize) {
            if u64_field(record, EV_SEQ) != self.next + 1 {
                break; // reserved, not yet committed: next poll
            }
            batch.events.push(parse_event(self.next, record));
            self.next += 1;
        }
        mems.write(HDR_TAIL, &self.next.to_le_bytes())?;
        let overflow = mems.read_u64(HDR_OVERFLOW)?;
        batch.lost = overflow.saturating_sub(self.overflow_seen);
        self.overflow_seen = overflow;
        Ok(batch)
    }
}

fn u64_field(r: &[u8], at: u64) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&r[at as usize..at as usize + 8]);
    u64::from_le_bytes(b)
}

fn u32_field(r: &[u8], at: u64) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&r[at as usize..at as usize + 4]);
    u32::from_le_bytes(b)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes one committed record (guest-written bytes: every field is taken as is, bounded).
pub fn parse_event(index: u64, r: &[u8]) -> Event {
    let mut full = [0u8; EVENT_SIZE as usize];
    let n = r.len().min(full.len());
    full[..n].copy_from_slice(&r[..n]);
    let r = &full;
    let nr = u32_field(r, EV_NR);
    let path_len = usize::from(u16::from_le_bytes([r[EV_PATH_LEN as usize], r[EV_PATH_LEN as usize + 1]]));
    let path_bytes = &r[EV_PATH as usize..(EV_PATH as usize + path_len.min(PATH_LEN - 1))];
    let path = c_string(path_bytes);
    let file_name = path.rsplit('/').next().unwrap_or("").to_owned();
    let flags = r[EV_FLAGS as usize];
    Event {
        index,
        time: SystemTime::UNIX_EPOCH + Duration::from_nanos(u64_field(r, EV_TIME_NS)),
        nr,
        syscall: Syscall::by_nr(nr).map(|s| s.name),
        file_name,
        path,
        process: c_string(&r[EV_COMM as usize..(EV_COMM as usize + COMM_LEN)]),
        pid: u32_field(r, EV_PID),
        uid: u32_field(r, EV_UID),
        arg0: u64_field(r, EV_ARG0) as i64,
        rule: u32_field(r, EV_POLICY_ID),
        action: if r[EV_ACTION as usize] == ACTION_BLOCK { Action::Block } else { Action::Record },
        path_truncated: flags & 1 != 0,
        path_fault: flags & 2 != 0,
        policy_busy: flags & 4 != 0,
    }
}

#[cfg(test)]
mod tests;
