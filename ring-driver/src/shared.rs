//! `SharedRing`: one io_uring, many threads, no lock. The design (who
//! enters the kernel, waiting, back-pressure, refused flags, closing,
//! verification) is documented on [`SharedRing`] itself.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering, fence};
use std::time::{Duration, Instant};

use ring_io_core::{
    AtomicCqCredit, ClaimError, EnterInput, FlagsRead, SharedCq, SharedSq, SubmitGate,
    decide_enter, decide_submit, timeout_needs_sqe,
};
use ring_io_ops::{Entry, Entry128};
use ring_io_sys::{Errno, SetupFlags, SqFlags, io_uring_sqe};

use crate::error::{SetupError, Unsupported, os};
use crate::kernel::Linux;
use crate::ring::Cqe;
use crate::setup::{Builder, Params};
use crate::shared_map::SharedMap;
use crate::shared_sync::CqRelease;

/// How long a waiter spins, at most, while another thread submits, before
/// it sleeps in the kernel (see [`SharedRing`]'s doc on waiting).
const SPIN_LIMIT: Duration = Duration::from_micros(20);

/// The longest single wait handed to the kernel: its timespec has signed
/// 64-bit seconds; a longer wait is several of these.
const MAX_WAIT: Duration = Duration::from_secs(i64::MAX as u64);

/// A push refused: the entry is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// The SQ has no free slot: [`submit`](SharedRing::submit), then push again.
    SqFull(T),
    /// The CQ credit is spent (as many requests in flight as the CQ can
    /// hold completions): [`reap`](SharedRing::reap), then push again.
    NoCredit(T),
    /// The entry can never be pushed on a [`SharedRing`]: the reason says
    /// why (an entry whose completions the ring cannot account for, one
    /// that would touch the ring's fixed-file table, or a ring whose shared
    /// state the kernel corrupted). For a batch, no entry was pushed.
    Refused(T, &'static str),
}

impl<T> PushError<T> {
    /// The refused entry.
    pub fn into_inner(self) -> T {
        match self {
            PushError::SqFull(t) | PushError::NoCredit(t) | PushError::Refused(t, _) => t,
        }
    }

    fn with<U>(self, value: U) -> PushError<U> {
        match self {
            PushError::SqFull(_) => PushError::SqFull(value),
            PushError::NoCredit(_) => PushError::NoCredit(value),
            PushError::Refused(_, why) => PushError::Refused(value, why),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::SqFull(_) => f.write_str("the submission queue is full; submit, then push again"),
            PushError::NoCredit(_) => f.write_str(
                "as many requests are in flight as the completion queue holds; reap, then push again",
            ),
            PushError::Refused(_, why) => write!(f, "refused by SharedRing: {why}"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for PushError<T> {}

impl<T> From<PushError<T>> for io::Error {
    fn from(e: PushError<T>) -> io::Error {
        let kind = match e {
            PushError::SqFull(_) | PushError::NoCredit(_) => io::ErrorKind::WouldBlock,
            PushError::Refused(..) => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// One io_uring shared by many threads without a lock. Cloning makes
/// another handle to the same ring; the ring closes when the last handle
/// drops.
///
/// The kernel's side of each ring is single-producer/single-consumer. A
/// [`SharedRing`] lets any number of threads push and reap at once through
/// ring-core's claim -> fill -> commit-in-order protocol
/// ([`ring_io_core::SharedSq`], [`ring_io_core::SharedCq`]); this module moves the
/// bytes, makes the calls, and decides the points below.
///
/// # Submission
///
/// [`push`](SharedRing::push) takes a CQ credit, claims an SQ slot (CAS on a
/// shared reservation tail), writes the SQE into the mapped slot and
/// commits it; the commit advances the kernel-visible `sq.tail` over every
/// consecutive committed slot, so the kernel never sees a slot before it is
/// filled. A commit behind a slot another thread is still filling does not
/// move the tail: that thread's commit will move it over both (ring-core's
/// `SeqCst` fences make sure two racing committers never both leave it).
///
/// **Who calls `io_uring_enter` to submit: one thread at a time** (flat
/// combining, ring-core's [`ring_io_core::SubmitGate`]). The kernel
/// serialises submissions on the ring's `uring_lock`, a sleeping mutex:
/// two threads entering at once make the second spin or sleep in the
/// kernel. So [`submit`](SharedRing::submit) first tries to take the gate:
/// a thread that gets it enters with `sq.tail - sq.head` to submit, and
/// enters again while entries other threads published meanwhile are
/// pending; a thread that finds the gate taken returns at once (0): the
/// holder submits its entries. loom checks (ring-core's `tests/loom.rs`)
/// that no published entry is left behind and that without the recheck
/// one would be. Producers never block each other: pushing is lock-free,
/// and no thread waits for the gate. The rule for liveness: **after
/// pushing, call `submit`** (or let another thread's later `submit` take
/// the entry). An entry whose commit could not move the tail is published
/// by the commit of the earlier claim, whose pusher then submits. If the
/// holder's enter fails, it gets the error and entries others left to it
/// stay pending until the next `submit` of any thread. Under
/// `IORING_SETUP_SQPOLL` the kernel thread consumes the entries and
/// `submit` only wakes it when it sleeps (after a full fence,
/// [`FlagsRead::FullFenceThenLoad`]), without the gate; with the SQ full,
/// pushers retry until the thread has consumed entries, or wait for it
/// with [`sq_wait`](SharedRing::sq_wait). The ring fd is never registered:
/// registered ring fds live in a per-thread table. On a ring set up with
/// `IORING_SETUP_SQE128`, [`push128`](SharedRing::push128) pushes 128-byte
/// entries the same way.
///
/// # Completion
///
/// [`reap`](SharedRing::reap) claims up to `max` ready CQEs (CAS on a shared
/// claim index), copies them out, marks them done; `cq.head` only advances
/// over consecutive copied-out slots, so the kernel never overwrites a CQE a
/// thread is still reading. ring-core's release moves a private index; a
/// second compare-and-swap moves `cq.head` up to it and returns the CQ
/// credit of exactly the slots it passed (`shared_sync.rs`, loom-checked).
/// Any thread may reap any completion: route them by `user_data` if threads
/// must get their own.
///
/// **Waiting.** [`submit_and_wait(n)`](SharedRing::submit_and_wait)
/// submits (as above), then waits in a second `io_uring_enter` that
/// submits nothing (so it never holds the gate while blocked: entries
/// published meanwhile, whose completions it may be waiting for, are
/// submitted by others), until the kernel sees `n` CQEs in the CQ,
/// *including those other threads have claimed or will take*: a waiter may
/// wake and find nothing to reap (call it again), and may sleep on when
/// another thread took the completion it woke for. With several waiters
/// and a finite amount of work, bound the wait with
/// [`submit_and_wait_timeout`](SharedRing::submit_and_wait_timeout), or
/// have each thread reap no more than it is owed (as the `shared` rows of
/// the benchmarks do). The kernel decides against its own `cq.head`, which
/// only moves when completions are handed back, so a wakeup is never lost.
/// Before sleeping, a waiter spins briefly (20 microseconds at most)
/// while another thread holds the submit gate and too few completions are
/// ready: that thread's enter may be about to post them (NOPs and other
/// requests that complete inline), and a sleep and wakeup in the kernel
/// cost more than such an enter.
///
/// # Back-pressure
///
/// Each pushed entry takes one credit of a [`ring_io_core::AtomicCqCredit`]
/// whose budget is the CQ size minus one (room for one completion no
/// request accounts for, see below). A push past the budget is refused
/// with [`PushError::NoCredit`], the entry handed back: reap, then push
/// again. The credit of a completion comes back when `cq.head` moves past
/// its slot (not merely when it is read: a slot read out of order is still
/// full for the kernel), so completions can never outnumber the CQ's
/// slots, and the CQ cannot overflow. A CQE with `IORING_CQE_F_MORE`
/// (multishot, the first CQE of a zero-copy send) keeps its request's
/// credit, which the final CQE (without it: the last multishot CQE, the
/// `IORING_CQE_F_NOTIF` notification) returns; a multishot request may
/// post several CQEs before they are reaped, so leave headroom for such
/// bursts (beyond the CQ they wait in the kernel's overflow backlog).
///
/// **One final CQE per entry.** The credit is exact because every entry a
/// `SharedRing` accepts posts exactly one final CQE on it. Refused at push
/// with [`PushError::Refused`], the entry handed back, are the shapes that
/// do not: `IOSQE_CQE_SKIP_SUCCESS` (no CQE on success), and
/// `IORING_OP_MSG_RING` naming this ring's own fd (two CQEs on success,
/// one on failure); and everything that would use or change the
/// fixed-file table, whose one slot is the close barrier (below):
/// `IOSQE_FIXED_FILE`, `IORING_OP_FILES_UPDATE`, direct descriptors
/// (`file_index` of open, accept, socket, pipe, close), `IORING_MSG_SEND_FD`.
///
/// **Completions nobody asked for.** Any code that can name the ring's fd
/// can post CQEs into it with `IORING_OP_MSG_RING` from another ring (a
/// `dup` of the fd reaches it too), with any `user_data`, `res` and flags:
/// nothing in a CQE tells them apart from the ring's own. Reaped, such a
/// CQE is handed out like any other; if no credit is out it is counted in
/// [`unexpected`](SharedRing::unexpected) (never an underflow), otherwise
/// it returns the credit of a request still in flight, so
/// [`in_flight`](SharedRing::in_flight) reads low and the CQ may overflow
/// into the kernel's backlog. Nothing about memory rests on the count: the
/// close asks the kernel.
///
/// # Setup flags
///
/// Refused, with [`SetupError::Invalid`] naming the flag:
/// `IORING_SETUP_SINGLE_ISSUER` and `IORING_SETUP_DEFER_TASKRUN` (the kernel
/// binds the ring to one task), `IORING_SETUP_COOP_TASKRUN` and
/// `IORING_SETUP_TASKRUN_FLAG` (completions would wait, without interrupting
/// it, for the next system call of whichever thread submitted the request,
/// while another thread sleeps waiting for them; the fast default is
/// dropped for shared rings), `IORING_SETUP_REGISTERED_FD_ONLY` (the index
/// is per thread), `IORING_SETUP_CQE_MIXED` (a 32-byte CQE spans two slots,
/// the shared claim is per slot).
///
/// # Closing
///
/// Handles are `Clone + Send + Sync` ([`Arc`] inside). When the last one
/// drops, entries still unsubmitted are submitted (those that do not
/// complete at once are cancelled with the rest), the ring is unmapped and
/// its fd closed, and the drop **waits until the kernel has freed the
/// ring**, which it does only once every request it took has completed or
/// been cancelled and been freed: the kernel's ring exit
/// (`io_ring_exit_work`) cancels everything it can and waits for the rest,
/// but asynchronously (`close` returns at once). So the drop does not
/// trust a count of completions (which a forged CQE can lower, and a
/// completion-less request would keep up forever): at setup, the write end
/// of a pipe is registered as the ring's one fixed file and closed; the
/// kernel drops its reference only when it frees the ring, and the drop
/// reads the pipe until end-of-file. Before closing, the drop cancels
/// everything it can (`IORING_REGISTER_SYNC_CANCEL`, Linux 6.0) to give
/// the exit a head start. This works on every kernel and costs what the
/// kernel's teardown costs, typically 10 to 50 milliseconds (an RCU grace
/// period, more when a request is stuck in an io-wq worker: the exit
/// retries its cancel every 50 ms); a ring on which no entry was ever
/// pushed skips the wait. Once the last drop returns, the kernel writes no
/// memory named by any entry pushed on the ring. Completions not reaped
/// are discarded.
///
/// Limits. The drop waits as long as anything else keeps the ring file
/// open: a `dup` of its fd, a child process forked (not yet exec'd) while
/// the ring existed, another ring's fixed-file table; and as long as a
/// request the kernel cannot cancel has not completed (a read of a
/// hung network filesystem). A file installed over the table's slot by
/// another ring (`IORING_MSG_SEND_FD`, Linux 6.0, naming this ring's fd)
/// would end the wait early: code that does so uses an fd it does not own.
///
/// # Verification
///
/// `tests/shared.rs` on the running kernel: 4 threads x 1,000,000 NOPs
/// (`RING_STRESS_OPS`; 50,000 in debug builds), every `user_data` seen once,
/// overflow counter 0, all credit back; the same on a 4-slot ring and under
/// SQPOLL; concurrent submitters; waiters on several threads; close with
/// work in flight; completions forged by another ring (no underflow, and a
/// drop with an io-wq read in flight whose credit a forged CQE took still
/// waits for the kernel); the refused entry shapes; timed waits with and
/// without SQPOLL; 128-byte entries across the wrap (and refused on a
/// 64-byte ring); `sq_wait` waking a sleeping SQPOLL thread and waiting for
/// room. `tests/shared_loom.rs`: loom models of the credit stage
/// (with `--cfg loom`), including a naive variant loom shows overflowing;
/// ring-core's `tests/loom.rs` models the claim/commit queues and the
/// submit gate (nothing left unsubmitted, one submitter at a time).
/// `shared_sync`'s unit tests run under Miri; `tests/shared.rs` runs under
/// ThreadSanitizer (which cannot see the kernel's side of the mappings).
///
/// ```
/// use ring_io_driver::SharedRing;
/// use ring_io_ops::Nop;
///
/// let ring = SharedRing::new(64)?;
/// let threads: Vec<_> = (0..4u64)
///     .map(|t| {
///         let ring = ring.clone();
///         std::thread::spawn(move || {
///             // SAFETY: a NOP carries no pointers.
///             unsafe { ring.push(Nop::new().build().user_data(t)) }.unwrap();
///             ring.submit().unwrap();
///         })
///     })
///     .collect();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// let mut done = Vec::new();
/// while done.len() < 4 {
///     ring.reap(&mut done, 16);
/// }
/// let mut ids: Vec<u64> = done.iter().map(|c| c.user_data()).collect();
/// ids.sort();
/// assert_eq!(ids, [0, 1, 2, 3]);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`FlagsRead::FullFenceThenLoad`]: ring_io_core::FlagsRead::FullFenceThenLoad
#[derive(Clone)]
pub struct SharedRing {
    inner: Arc<Inner>,
}

/// Keeps a shared word on cache lines of its own (128 bytes: the adjacent
/// line prefetcher pulls lines in pairs), so threads writing different
/// words (pushers the SQ claim, reapers the CQ claim) do not bounce one
/// line between cores.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

struct Inner {
    sq: Padded<SharedSq>,
    cq: Padded<SharedCq>,
    release: Padded<CqRelease>,
    credit: Padded<AtomicCqCredit>,
    gate: Padded<SubmitGate>,
    defaults: SetupFlags,
    /// [`BROKEN_SQ`] / [`BROKEN_CQ`] once the kernel's side of the ring
    /// was seen out of range; 0 while it is sound.
    broken: AtomicU8,
    /// Whether an entry was ever published (the close's wait for the
    /// kernel is skipped for a ring that never had one).
    used: AtomicBool,
    // Last: the mappings outlive every use above, and dropping them waits
    // until the kernel has freed the ring (see `shared_map`).
    map: SharedMap,
}

/// `Inner::broken`: the kernel's `sq.head` was out of range.
const BROKEN_SQ: u8 = 1;
/// `Inner::broken`: the kernel's `cq.tail` was more than a ring ahead.
const BROKEN_CQ: u8 = 2;
const BROKEN_SQ_WHY: &str =
    "the kernel's SQ head is out of range (the ring's shared memory is corrupted)";
const BROKEN_CQ_WHY: &str = "the kernel's CQ tail is more than a ring ahead of the head (the \
     ring's shared memory is corrupted); no completion was read";

/// The opcodes [`refusal`] looks into, by opcode.
static LOOKED_AT: [bool; 256] = {
    use ring_io_sys::{
        IORING_OP_ACCEPT, IORING_OP_CLOSE, IORING_OP_FILES_UPDATE, IORING_OP_MSG_RING,
        IORING_OP_OPENAT, IORING_OP_OPENAT2, IORING_OP_PIPE, IORING_OP_SOCKET,
    };
    let mut table = [false; 256];
    table[IORING_OP_ACCEPT as usize] = true;
    table[IORING_OP_CLOSE as usize] = true;
    table[IORING_OP_FILES_UPDATE as usize] = true;
    table[IORING_OP_MSG_RING as usize] = true;
    table[IORING_OP_OPENAT as usize] = true;
    table[IORING_OP_OPENAT2 as usize] = true;
    table[IORING_OP_PIPE as usize] = true;
    table[IORING_OP_SOCKET as usize] = true;
    table
};

/// Non-zero if [`refusal`] must look at this entry: a few instructions
/// per entry (one table load, one flag mask, no branch), so that the
/// common entry (any other opcode, no refused flag) pays little more.
#[inline(always)]
fn look_at(sqe: &io_uring_sqe) -> u8 {
    use ring_io_sys::{IOSQE_CQE_SKIP_SUCCESS, IOSQE_FIXED_FILE};
    (sqe.flags & (IOSQE_CQE_SKIP_SUCCESS | IOSQE_FIXED_FILE))
        | u8::from(LOOKED_AT[usize::from(sqe.opcode)])
}

/// Why an entry cannot go on a [`SharedRing`], if it cannot: the shapes
/// whose completions the CQ credit cannot account for, and the entries
/// that would touch the fixed-file table (its one slot is the exit barrier
/// that tells the close when the kernel has let go of every request).
/// Everything else posts exactly one final CQE (without
/// `IORING_CQE_F_MORE`) on this ring: a single-shot request its only one,
/// a multishot request its last, a zero-copy send its notification, a
/// request cancelled or failed in a chain its error.
#[allow(unsafe_code, reason = "reads integer members of the entry's unions")]
fn refusal(sqe: &io_uring_sqe, own_fd: i32) -> Option<&'static str> {
    use ring_io_sys::{
        IORING_MSG_DATA, IORING_OP_ACCEPT, IORING_OP_CLOSE, IORING_OP_FILES_UPDATE,
        IORING_OP_MSG_RING, IORING_OP_OPENAT, IORING_OP_OPENAT2, IORING_OP_PIPE, IORING_OP_SOCKET,
        IOSQE_CQE_SKIP_SUCCESS, IOSQE_FIXED_FILE,
    };
    let flags = sqe.flags;
    if flags & IOSQE_CQE_SKIP_SUCCESS != 0 {
        return Some(
            "IOSQE_CQE_SKIP_SUCCESS: the request posts no completion when it succeeds, so a \
             SharedRing could never return its credit nor tell it is done",
        );
    }
    if flags & IOSQE_FIXED_FILE != 0 {
        return Some(
            "IOSQE_FIXED_FILE: a SharedRing has no registered files (its fixed-file table \
             holds the barrier its close waits on)",
        );
    }
    match sqe.opcode {
        IORING_OP_MSG_RING => {
            // SAFETY: every member of these unions is a plain integer of
            // the union's size: any initialised bytes are a valid value.
            let command = unsafe { sqe.addr_splice_off_in.addr };
            if command != IORING_MSG_DATA {
                return Some(
                    "IORING_MSG_SEND_FD: a SharedRing has no registered files to send (its one \
                     fixed file is its close barrier)",
                );
            }
            if sqe.fd == own_fd {
                return Some(
                    "IORING_OP_MSG_RING to the ring itself posts a second completion when it \
                     succeeds and none when it fails, which the CQ credit cannot account for; \
                     post from another ring, or use a NOP",
                );
            }
            None
        }
        IORING_OP_FILES_UPDATE => Some(
            "IORING_OP_FILES_UPDATE: a SharedRing has no registered files (its fixed-file table \
             holds its close barrier)",
        ),
        IORING_OP_CLOSE | IORING_OP_OPENAT | IORING_OP_OPENAT2 | IORING_OP_ACCEPT
        | IORING_OP_SOCKET | IORING_OP_PIPE => {
            // SAFETY: as above.
            let file_index = unsafe { sqe.splice_fd_in_file_index.file_index };
            (file_index != 0).then_some(
                "a direct descriptor (file_index): a SharedRing has no registered files (its \
                 fixed-file table holds its close barrier)",
            )
        }
        _ => None,
    }
}

/// The flags a shared ring refuses, and why.
const REFUSED: &[(SetupFlags, &str)] = &[
    (
        SetupFlags::SINGLE_ISSUER,
        "IORING_SETUP_SINGLE_ISSUER binds the ring to one task; a SharedRing is used by many threads",
    ),
    (
        SetupFlags::DEFER_TASKRUN,
        "IORING_SETUP_DEFER_TASKRUN runs completions only in the one issuer task; a SharedRing is used by many threads",
    ),
    (
        SetupFlags::COOP_TASKRUN,
        "IORING_SETUP_COOP_TASKRUN delays completions until the submitting thread's next system call, while other threads wait for them; a SharedRing cannot use it",
    ),
    (
        SetupFlags::TASKRUN_FLAG,
        "IORING_SETUP_TASKRUN_FLAG goes with COOP_TASKRUN or DEFER_TASKRUN, which a SharedRing cannot use",
    ),
    (
        SetupFlags::REGISTERED_FD_ONLY,
        "IORING_SETUP_REGISTERED_FD_ONLY leaves only a per-thread ring index; a SharedRing is entered from many threads",
    ),
    (
        SetupFlags::CQE_MIXED,
        "IORING_SETUP_CQE_MIXED puts 32-byte CQEs across two slots; a SharedRing claims CQEs slot by slot",
    ),
];

impl Builder {
    /// Sets up a ring to be shared by many threads: a [`SharedRing`].
    ///
    /// Refuses (with [`SetupError::Invalid`] saying why) the flags that bind
    /// a ring to one thread or one slot layout: `SINGLE_ISSUER`,
    /// `DEFER_TASKRUN`, `COOP_TASKRUN`, `TASKRUN_FLAG`, `REGISTERED_FD_ONLY`,
    /// `CQE_MIXED`. Of the fast defaults it keeps `SUBMIT_ALL` and
    /// `NO_SQARRAY` (where the kernel has them) and drops `COOP_TASKRUN`; the
    /// ring fd is not registered. It registers one fixed file, the close
    /// barrier (see [`SharedRing`], "Closing"): a failure to do so is an
    /// error ([`SetupError::Io`]).
    pub fn build_shared(&self) -> Result<SharedRing, SetupError> {
        let asked = self.flags();
        for &(flag, why) in REFUSED {
            if asked.contains(flag) {
                return Err(SetupError::Invalid(why));
            }
        }
        let (raw, defaults) = if self.uses_defaults() {
            let version = crate::kernel_version();
            let has = |major, minor| version.is_some_and(|v| v.at_least(major, minor));
            let mut defaults = SetupFlags::empty();
            if has(5, 18) {
                defaults |= SetupFlags::SUBMIT_ALL;
            }
            if has(6, 6) {
                defaults |= SetupFlags::NO_SQARRAY;
            }
            let mut plain = self.clone().no_defaults();
            if defaults.contains(SetupFlags::SUBMIT_ALL) {
                plain = plain.submit_all();
            }
            if defaults.contains(SetupFlags::NO_SQARRAY) {
                plain = plain.no_sqarray();
            }
            match plain.build_raw() {
                Ok(raw) => (raw, defaults - asked),
                // A kernel without what its version promises: plain setup.
                Err(SetupError::Unsupported(_)) if !defaults.is_empty() => {
                    (self.clone().no_defaults().build_raw()?, SetupFlags::empty())
                }
                Err(e) => return Err(e),
            }
        } else {
            (self.build_raw()?, SetupFlags::empty())
        };
        let linux = Linux::new(raw).map_err(SetupError::Io)?;
        let map = SharedMap::new(linux).map_err(SetupError::Io)?;
        SharedRing::from_map(map, defaults).map_err(SetupError::Io)
    }
}

impl SharedRing {
    /// A shared ring of `entries` submission slots:
    /// `Builder::new(entries).build_shared()` (see
    /// [`Builder::build_shared`]). The error explains itself as
    /// [`Ring::new`](crate::Ring::new)'s does.
    pub fn new(entries: u32) -> Result<SharedRing, SetupError> {
        Builder::new(entries).build_shared()
    }

    fn from_map(map: SharedMap, defaults: SetupFlags) -> io::Result<SharedRing> {
        let geometry = *map.geometry();
        // Start from what the kernel shows (0 on a fresh ring).
        let sq_start = map.sq_head().load(Ordering::Acquire);
        let cq_start = map.cq_tail().load(Ordering::Acquire);
        let credit = AtomicCqCredit::new(geometry.cq_entries() - 1, &geometry)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(SharedRing {
            inner: Arc::new(Inner {
                sq: Padded(SharedSq::with_start(geometry.sq_entries(), sq_start)),
                cq: Padded(SharedCq::with_start(geometry.cq_entries(), cq_start)),
                release: Padded(CqRelease::new(geometry.cq_entries(), cq_start)),
                credit: Padded(credit),
                gate: Padded(SubmitGate::new()),
                defaults,
                broken: AtomicU8::new(0),
                used: AtomicBool::new(false),
                map,
            }),
        })
    }

    /// Pushes one entry without a lock: takes a CQ credit, claims a slot,
    /// writes the entry, commits. The entry reaches the kernel at the next
    /// [`submit`](Self::submit) of any thread (or the SQPOLL thread). Refused
    /// entries are handed back ([`PushError`]).
    ///
    /// # Safety
    ///
    /// As for [`SubmissionQueue::push`](crate::SubmissionQueue::push): the
    /// memory, files and rings the entry names are the caller's until the
    /// request is finished. Here a request is finished when its final
    /// completion has been reaped (the one without `IORING_CQE_F_MORE`: for
    /// multishot requests the last one, for zero-copy sends the
    /// notification), or when the last handle of the ring has been dropped
    /// (which waits until the kernel has let go of every request). Only a
    /// completion this entry posted counts: a CQE with the same
    /// `user_data` may have been posted by another ring (see the type's
    /// doc), so code that cannot rule that out keeps the memory until the
    /// drop.
    #[allow(
        unsafe_code,
        reason = "declares the caller's contract; the slot write is the map's"
    )]
    pub unsafe fn push(&self, entry: Entry) -> Result<(), PushError<Entry>> {
        self.inner
            .push_batch(std::slice::from_ref(&entry))
            .map_err(|e| e.with(entry))
    }

    /// Pushes all the entries as one claim (consecutive slots) or none.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push), for every entry.
    #[allow(
        unsafe_code,
        reason = "declares the caller's contract; the slot write is the map's"
    )]
    pub unsafe fn push_batch(&self, entries: &[Entry]) -> Result<(), PushError<()>> {
        self.inner.push_batch(entries)
    }

    /// Pushes a 128-byte entry (a ring set up with
    /// [`Builder::sqe128`]) as [`push`](Self::push) pushes a 64-byte one.
    /// On a ring of 64-byte SQEs, where it can never fit, it is handed back
    /// with [`PushError::Refused`] (and nothing is pushed).
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[allow(
        unsafe_code,
        reason = "declares the caller's contract; the slot write is the map's"
    )]
    #[allow(
        clippy::result_large_err,
        reason = "the refused entry is handed back by value, so nothing is lost"
    )]
    pub unsafe fn push128(&self, entry: Entry128) -> Result<(), PushError<Entry128>> {
        self.inner.push128(&entry).map_err(|e| e.with(entry))
    }

    /// Submits everything published (by any thread); returns how many
    /// entries this call's `io_uring_enter`s consumed (0 if another thread
    /// is submitting: it takes this thread's entries too, see the type's
    /// doc).
    pub fn submit(&self) -> io::Result<u32> {
        self.inner.enter(0, None)
    }

    /// Submits, then waits until at least `want` completions are in the
    /// CQ, counting those other threads have claimed and not yet handed
    /// back (see the type's doc on waiting); returns how many entries this
    /// call submitted.
    ///
    /// A `want` larger than the CQ returns once the CQ is full; the wait
    /// also returns when the kernel holds completions back because the CQ
    /// was full (`IORING_SQ_CQ_OVERFLOW`): reap, then wait again. A wake-up
    /// with fewer completions (a timeout request firing wakes every
    /// waiter) waits on.
    pub fn submit_and_wait(&self, want: u32) -> io::Result<u32> {
        self.inner.enter(want, None)
    }

    /// As [`submit_and_wait`](Self::submit_and_wait), bounded by `timeout`
    /// (`IORING_FEAT_EXT_ARG`, Linux 5.11): `Ok` (the number submitted) if
    /// `want` completions are ready by then, else
    /// `Err(ErrorKind::TimedOut)` once `timeout` has passed, with or
    /// without SQPOLL. On a timeout nothing is lost: the completions that
    /// did arrive stay in the CQ for [`reap`](Self::reap), and the entries
    /// were submitted. `Duration::MAX` (any timeout past what a deadline
    /// can represent) waits as [`submit_and_wait`](Self::submit_and_wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ring_io_driver::SharedRing;
    ///
    /// let ring = SharedRing::new(8)?;
    /// // Nothing was pushed: no completion can come.
    /// let err = ring
    ///     .submit_and_wait_timeout(1, Duration::from_millis(5))
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn submit_and_wait_timeout(&self, want: u32, timeout: Duration) -> io::Result<u32> {
        self.inner.enter(want, Some(timeout))
    }

    /// Waits until the SQ has a free slot. Under SQPOLL the kernel thread
    /// frees slots as it consumes entries: if none is free, this sleeps in
    /// the kernel until it has consumed some (`IORING_ENTER_SQ_WAIT`,
    /// Linux 5.10), waking it first if it sleeps. Without SQPOLL entering is
    /// what consumes entries: this submits (as [`submit`](Self::submit)
    /// does; if another thread is submitting, that thread frees the
    /// slots). Returns at once if a slot is free. Other threads may take
    /// the free slot before this thread pushes: push, and on
    /// [`PushError::SqFull`] wait again.
    pub fn sq_wait(&self) -> io::Result<()> {
        self.inner.sq_wait()
    }

    /// Reaps up to `max` completions, appending them to `out`; returns how
    /// many. Never blocks.
    pub fn reap(&self, out: &mut Vec<Cqe>, max: usize) -> usize {
        self.inner.reap(out, max)
    }

    /// Reaps one completion, if one is ready and no other thread takes it
    /// first.
    pub fn pop(&self) -> Option<Cqe> {
        let mut one = None;
        self.inner.reap_with(1, |cqe| one = Some(cqe));
        one
    }

    /// Requests pushed whose final completion has not been handed back to
    /// the kernel yet (a snapshot): every entry a `SharedRing` accepts
    /// posts exactly one final CQE here (the shapes that do not are refused
    /// at push). One exception it cannot see: a CQE another ring posts into
    /// this one (`IORING_OP_MSG_RING` naming this ring's fd) looks like a
    /// final CQE and returns the credit of some request still in flight,
    /// so the count can read low (never below 0: with no credit out, such
    /// CQEs are counted in [`unexpected`](Self::unexpected)). Nothing
    /// about memory rests on this count: the close waits for the kernel
    /// itself (see the type's doc).
    pub fn in_flight(&self) -> u32 {
        self.inner.credit.in_flight()
    }

    /// Final completions that found no credit to return (a snapshot,
    /// wrapping): CQEs posted into this ring by something other than a
    /// request pushed on it, counted instead of trusted.
    pub fn unexpected(&self) -> u32 {
        self.inner.release.unexpected()
    }

    /// How many requests may be in flight at once: the CQ size minus one.
    pub fn credit_budget(&self) -> u32 {
        self.inner.credit.budget()
    }

    /// Completions the kernel dropped because the CQ was full (`cq.overflow`).
    pub fn overflow(&self) -> u32 {
        // Written by the kernel with WRITE_ONCE; a statistic.
        self.inner.map.cq_overflow().load(Ordering::Relaxed)
    }

    /// Entries the kernel skipped as invalid (`sq.dropped`).
    pub fn dropped(&self) -> u32 {
        // Written by the kernel with WRITE_ONCE; a statistic.
        self.inner.map.sq_dropped().load(Ordering::Relaxed)
    }

    /// The parameters the kernel filled in.
    pub fn params(&self) -> &Params {
        self.inner.map.params()
    }

    /// The setup flags the builder added as defaults on this kernel.
    pub fn defaults(&self) -> SetupFlags {
        self.inner.defaults
    }

    /// Entries published and not yet consumed by the kernel (a snapshot).
    pub fn pending(&self) -> u32 {
        self.inner.sq_pending()
    }
}

impl Inner {
    #[allow(unsafe_code, reason = "writes the slots it claimed")]
    fn push_batch(&self, entries: &[Entry]) -> Result<(), PushError<()>> {
        let n = u32::try_from(entries.len()).map_err(|_| PushError::SqFull(()))?;
        if n == 0 {
            return Ok(());
        }
        // One branch for the batch: almost every batch has nothing to look at.
        if entries.iter().fold(0, |look, e| look | look_at(e.as_sqe())) != 0 {
            for entry in entries {
                let own_fd = self.map.fd().map_or(-1, |fd| fd.as_raw_fd());
                if let Some(why) = refusal(entry.as_sqe(), own_fd) {
                    return Err(PushError::Refused((), why));
                }
            }
        }
        let claim = self.claim(n)?;
        for (index, entry) in claim.indices().zip(entries) {
            // SAFETY: `index` is ours: claimed above and not yet committed,
            // so neither the kernel nor another thread touches its slot.
            unsafe { self.map.write_sqe(index, entry.as_sqe()) };
        }
        self.sq.commit(claim, self.map.sq_tail());
        Ok(())
    }

    #[allow(unsafe_code, reason = "writes the slot it claimed")]
    fn push128(&self, entry: &Entry128) -> Result<(), PushError<()>> {
        if self.map.geometry().sqe_size() != 128 {
            return Err(PushError::Refused(
                (),
                "a 128-byte entry needs a ring set up with IORING_SETUP_SQE128 (Builder::sqe128)",
            ));
        }
        let sqe = &entry.as_sqe128().sqe;
        if look_at(sqe) != 0 {
            let own_fd = self.map.fd().map_or(-1, |fd| fd.as_raw_fd());
            if let Some(why) = refusal(sqe, own_fd) {
                return Err(PushError::Refused((), why));
            }
        }
        let claim = self.claim(1)?;
        // SAFETY: `index` is ours: claimed above and not yet committed, so
        // neither the kernel nor another thread touches its slot; the ring's
        // SQEs are 128 bytes (checked above).
        unsafe { self.map.write_sqe128(claim.start(), entry.as_sqe128()) };
        self.sq.commit(claim, self.map.sq_tail());
        Ok(())
    }

    /// Takes `n` CQ credits and claims `n` SQ slots, or neither.
    fn claim(&self, n: u32) -> Result<ring_io_core::Reservation, PushError<()>> {
        self.credit
            .acquire_n(n, ())
            .map_err(|_| PushError::NoCredit(()))?;
        let claim = match self.sq.claim(n, self.map.sq_head()) {
            Ok(claim) => claim,
            Err(e) => {
                // Release: nothing was published with the credit.
                let _ = self.credit.release(n);
                return Err(match e {
                    ClaimError::Full(_) => PushError::SqFull(()),
                    ClaimError::Kernel(_) => {
                        self.broken.store(BROKEN_SQ, Ordering::Relaxed);
                        PushError::Refused((), BROKEN_SQ_WHY)
                    }
                });
            }
        };
        // Relaxed: read by the close, which the last handle's drop orders
        // after every push (Arc's release/acquire). A load first: after the
        // first push the line is only read.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        Ok(claim)
    }

    /// [`SharedRing::sq_wait`].
    fn sq_wait(&self) -> io::Result<()> {
        self.check_sound()?;
        let geometry = *self.map.geometry();
        if !geometry.sqpoll() {
            self.submit_gated()?;
            return Ok(());
        }
        let entries = geometry.sq_entries();
        loop {
            // The head first (Acquire: pairs with the kernel's
            // smp_store_release in io_commit_sqring), then the claims: every
            // claim the kernel consumed happened before its head store, so
            // the claims seen are at least the head.
            let head = self.map.sq_head().load(Ordering::Acquire);
            let used = self.sq.claimed().wrapping_sub(head);
            if used < entries {
                return Ok(());
            }
            if used > entries {
                // A head past every claim: no kernel writes that.
                self.broken.store(BROKEN_SQ, Ordering::Relaxed);
                return self.check_sound();
            }
            let mut input = EnterInput {
                to_submit: self.sq_pending(),
                want_sq_space: true,
                cq_ready: self.cq_unclaimed(),
                setup: geometry.setup_flags(),
                features: geometry.features(),
                registered_ring: false,
                ..EnterInput::default()
            };
            input.sq_flags = self.sq_flags(input.flags_read());
            let Some(decision) = decide_enter(&input) else {
                return Ok(());
            };
            match self.map.enter(&decision, None) {
                // Full when the kernel thread has not yet taken the entries
                // claims are still writing (the kernel sees only published
                // ones): look again.
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(os(e)),
            }
        }
    }

    fn sq_pending(&self) -> u32 {
        // Acquire on the head: pairs with the kernel's smp_store_release in
        // io_commit_sqring. The tail is ours (the committers' CAS); a stale
        // pair only over- or under-asks, which the kernel clamps (see the
        // module doc).
        let head = self.map.sq_head().load(Ordering::Acquire);
        let tail = self.map.sq_tail().load(Ordering::Acquire);
        let pending = tail.wrapping_sub(head);
        pending.min(self.map.geometry().sq_entries())
    }

    /// Ready completions no thread has claimed yet (a snapshot).
    fn cq_unclaimed(&self) -> u32 {
        let claimed = self.cq.claimed();
        // Pairs with the kernel's smp_store_release(&cq.tail).
        let tail = self.map.cq_tail().load(Ordering::Acquire);
        let ready = tail.wrapping_sub(claimed);
        // Another thread's claim can run ahead of our (older) tail load.
        if ready > self.map.geometry().cq_entries() {
            0
        } else {
            ready
        }
    }

    fn sq_flags(&self, read: FlagsRead) -> SqFlags {
        if read == FlagsRead::FullFenceThenLoad {
            // Pairs with the smp_mb__after_atomic() the SQPOLL thread issues
            // after setting IORING_SQ_NEED_WAKEUP and before re-reading the
            // tail (io_sq_thread): liburing's io_uring_smp_mb().
            fence(Ordering::SeqCst);
        }
        // atomic_or / atomic_andnot on the kernel side; a hint: relaxed.
        SqFlags::from_bits_retain(self.map.sq_flags().load(Ordering::Relaxed))
    }

    /// An error if the kernel's side of the ring was seen out of range.
    fn check_sound(&self) -> io::Result<()> {
        let why = match self.broken.load(Ordering::Relaxed) {
            0 => return Ok(()),
            BROKEN_SQ => BROKEN_SQ_WHY,
            _ => BROKEN_CQ_WHY,
        };
        Err(io::Error::new(io::ErrorKind::InvalidData, why))
    }

    /// Completions in the CQ as the kernel counts them (`cq.tail -
    /// cq.head`: including those claimed and not yet handed back), at most
    /// the CQ size.
    fn cq_ready(&self) -> u32 {
        // Acquire: pairs with the kernel's smp_store_release(&cq.tail);
        // the head is ours (the consumers' CAS).
        let tail = self.map.cq_tail().load(Ordering::Acquire);
        let head = self.map.cq_head().load(Ordering::Acquire);
        tail.wrapping_sub(head)
            .min(self.map.geometry().cq_entries())
    }

    /// Submits (through the gate, see [`SharedRing`]'s doc), then, if
    /// `wait_nr > 0`, waits for completions in `io_uring_enter`s that
    /// submit nothing (under SQPOLL too: an enter that submits returns the
    /// number submitted even when its wait timed out, hiding the timeout).
    ///
    /// The wait returns `Ok` once `min(wait_nr, CQ size)` completions are
    /// in the CQ (a wait for more than the CQ holds returns when it is
    /// full: the rest can only come once completions are reaped) or the
    /// kernel flags an overflow backlog; `ErrorKind::TimedOut` once
    /// `timeout` has passed with fewer (those that arrived stay in the CQ).
    /// The kernel also ends a wait early (a timeout request firing wakes
    /// every waiter, a signal): the wait then goes on, for what is left of
    /// the timeout. A timeout too large for a deadline (`Duration::MAX`)
    /// waits without one.
    #[inline]
    fn enter(&self, wait_nr: u32, timeout: Option<Duration>) -> io::Result<u32> {
        self.check_sound()?;
        let sqpoll = self.map.geometry().sqpoll();
        let submitted = if sqpoll {
            // Only wakes the kernel thread if it sleeps.
            self.enter_once(true, 0, None)?
        } else {
            self.submit_gated()?
        };
        if wait_nr == 0 {
            return Ok(submitted);
        }
        self.wait(submitted, wait_nr, timeout)
    }

    /// The waiting part of [`enter`](Self::enter), out of line: a submit
    /// without a wait keeps a small frame.
    #[inline(never)]
    fn wait(&self, submitted: u32, wait_nr: u32, timeout: Option<Duration>) -> io::Result<u32> {
        let sqpoll = self.map.geometry().sqpoll();
        let want = wait_nr.min(self.map.geometry().cq_entries());
        let deadline = match timeout {
            None => None,
            Some(t) => Instant::now().checked_add(t),
        };
        if !sqpoll {
            self.spin_while_submitting(want);
        }
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()).min(MAX_WAIT));
            let timed_out = match left {
                Some(left) if left.is_zero() => true,
                _ => match self.enter_once(false, want, left) {
                    Ok(_) => false,
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => true,
                    Err(e) => return Err(e),
                },
            };
            if self.cq_ready() >= want || self.cq_overflow_pending() {
                return Ok(submitted);
            }
            if timed_out {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the timeout passed with fewer completions ready than asked for (those that \
                     arrived stay in the completion queue)",
                ));
            }
        }
    }

    /// Whether the kernel holds completions it could not post because the
    /// CQ was full (`IORING_SQ_CQ_OVERFLOW`): they come in as slots are
    /// handed back, so a waiter must return and let its caller reap.
    fn cq_overflow_pending(&self) -> bool {
        self.sq_flags(FlagsRead::Load)
            .contains(SqFlags::CQ_OVERFLOW)
    }

    /// Before sleeping in the kernel for `wait_nr` completions: while
    /// another thread holds the submit gate, its enter may be about to post
    /// them (requests that complete inline, such as NOPs, or data already
    /// there), and a sleep plus wakeup costs far more than that enter. So
    /// spin, for at most [`SPIN_LIMIT`], while the gate is held and too few
    /// are ready.
    fn spin_while_submitting(&self, wait_nr: u32) {
        let mut deadline = None;
        let mut spins = 0u32;
        while self.gate.is_held() && self.cq_unclaimed() < wait_nr {
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 {
                // The clock only now and then; yield so that a submitter
                // sharing our core runs.
                let now = std::time::Instant::now();
                if now >= *deadline.get_or_insert(now + SPIN_LIMIT) {
                    return;
                }
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Flat-combining submission (ring-core's [`SubmitGate`]): one thread at
    /// a time enters the kernel to submit, and enters again while entries
    /// published meanwhile are pending; the others return at once (0).
    fn submit_gated(&self) -> io::Result<u32> {
        if !self.gate.try_enter() {
            return Ok(0);
        }
        // Opens the gate if we unwind while holding it (no submit would
        // ever run again otherwise); forgotten once `leave` has opened it.
        struct Held<'a>(&'a SubmitGate);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.abandon();
            }
        }
        let held = Held(&self.gate);
        let mut total = 0;
        let mut idle = false;
        loop {
            // On an error, `held` opens the gate: entries others left to us
            // stay pending for the next submit of any thread (SubmitGate's
            // doc).
            let n = self.enter_submit()?;
            total += n;
            if n == 0 && idle {
                // Twice nothing consumed, the second time with entries
                // pending (`leave` saw them): the kernel refuses them; do
                // not spin on it.
                return Ok(total);
            }
            // Nothing to submit (another submitter took our entries before
            // we got the gate) still goes through `leave`: entries published
            // while we held the gate are ours to submit.
            idle = n == 0;
            if !self.gate.leave(self.map.sq_head(), self.map.sq_tail()) {
                std::mem::forget(held);
                return Ok(total);
            }
        }
    }

    /// The gate holder's submit on a ring without SQPOLL (timeouts come
    /// only with waits): with entries pending, ring-core's submit decision,
    /// which needs neither the CQ's indices nor, when waiting, the SQ
    /// flags; [`enter_once`](Self::enter_once)'s general rules otherwise
    /// (nothing pending may still need a flush of the overflow backlog).
    #[inline]
    fn enter_submit(&self) -> io::Result<u32> {
        let to_submit = self.sq_pending();
        if to_submit == 0 {
            return self.enter_once(true, 0, None);
        }
        let decision = decide_submit(to_submit, 0, || self.sq_flags(FlagsRead::Load));
        loop {
            match self.map.enter(&decision, None) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(os(e)),
            }
        }
    }

    /// One `io_uring_enter` as ring-core decides in general (submitting the
    /// pending entries if `submit`, waiting for `wait_nr`), retrying
    /// `EINTR`.
    #[inline(never)]
    fn enter_once(&self, submit: bool, wait_nr: u32, timeout: Option<Duration>) -> io::Result<u32> {
        let geometry = self.map.geometry();
        loop {
            let mut input = EnterInput {
                to_submit: if submit { self.sq_pending() } else { 0 },
                wait_nr,
                cq_ready: self.cq_unclaimed(),
                setup: geometry.setup_flags(),
                features: geometry.features(),
                timeout: timeout.is_some(),
                registered_ring: false,
                ..EnterInput::default()
            };
            input.sq_flags = self.sq_flags(input.flags_read());
            if timeout.is_some() && wait_nr > input.cq_ready && timeout_needs_sqe(input.features) {
                return Err(Unsupported {
                    what: "a wait with a timeout (IORING_FEAT_EXT_ARG)",
                    needs: Some((5, 11)),
                    kernel: crate::kernel_version(),
                }
                .into());
            }
            let Some(decision) = decide_enter(&input) else {
                return Ok(0);
            };
            match self.map.enter(&decision, timeout) {
                Ok(n) => return Ok(n),
                // Interrupted by a signal: a timed wait returns to its
                // caller's loop, which waits again for what is left of the
                // timeout; anything else retries.
                Err(Errno::EINTR) if timeout.is_some() => return Ok(0),
                Err(Errno::EINTR) => continue,
                Err(Errno::ETIME) if timeout.is_some() => {
                    return Err(io::Error::from(io::ErrorKind::TimedOut));
                }
                // EBUSY/EAGAIN (no room to post completions: only possible
                // past the credit, with multishot bursts) and the rest: the
                // caller reaps and retries, or gives up.
                Err(e) => return Err(os(e)),
            }
        }
    }

    fn reap(&self, out: &mut Vec<Cqe>, max: usize) -> usize {
        self.reap_with(max, |cqe| out.push(cqe))
    }

    /// Claims up to `max` CQEs, hands each to `f` as it is copied out, then
    /// releases them. `f` runs while the batch is claimed: it must be short
    /// (other threads' releases wait behind this batch for the head).
    #[allow(unsafe_code, reason = "reads the slots it claimed")]
    fn reap_with(&self, max: usize, mut f: impl FnMut(Cqe)) -> usize {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        if max == 0 {
            return 0;
        }
        let batch = match self.cq.claim(max, self.map.cq_tail()) {
            Ok(Some(batch)) => batch,
            Ok(None) => return 0,
            Err(_) => {
                // A tail more than a ring ahead: the kernel's side is
                // corrupted. Take nothing (no slot is read), and make every
                // later submit and wait fail with the cause instead of
                // spinning on a CQ that always looks ready.
                self.broken.store(BROKEN_CQ, Ordering::Relaxed);
                return 0;
            }
        };
        // The batch in at most two runs of consecutive slots (it may wrap),
        // each read with one pointer walk and its credit notes with one
        // slice: no per-CQE masking or bounds check.
        let entries = self.map.geometry().cq_entries();
        let (mut index, mut left) = (batch.start(), batch.len());
        while left > 0 {
            let run = left.min(entries - (index & (entries - 1)));
            let mut notes = self.release.notes(index, run).iter();
            // SAFETY: `index .. index + run` are ours: claimed above below
            // the acquired tail, not released yet, so the kernel wrote them
            // and will not overwrite them; the run does not wrap.
            unsafe {
                self.map.read_cqes(index, run, |cqe| {
                    if let Some(note) = notes.next() {
                        CqRelease::note_in(note, cqe.raw().flags);
                    }
                    f(cqe);
                });
            }
            index = index.wrapping_add(run);
            left -= run;
        }
        self.release
            .release(&self.cq, batch, self.map.cq_head(), &self.credit);
        batch.len() as usize
    }

    /// The close protocol of [`SharedRing`]'s doc: submit what was pushed
    /// and not yet submitted; the wait for the kernel to let go of every
    /// request is the map's, when it drops after this (it closes the ring
    /// fd first). `&mut self`: no other handle is left.
    fn close(&mut self) {
        if self.sq_pending() > 0 && self.broken.load(Ordering::Relaxed) == 0 {
            // A failure leaves the entries unconsumed: they never reach
            // the kernel, and the exit frees them with the ring.
            let _ = self.enter(0, None);
        }
        if !self.used.load(Ordering::Relaxed) {
            // No SQE was ever published: the kernel holds no request of
            // this ring, and freeing it takes the kernel tens of
            // milliseconds (an RCU grace period) not worth waiting for.
            self.map.no_request_was_published();
            return;
        }
        self.map.cancel_all();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for SharedRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRing")
            .field("sq_claimed", &self.inner.sq.claimed())
            .field("cq_claimed", &self.inner.cq.claimed())
            .field("in_flight", &self.in_flight())
            .field("params", self.params())
            .finish_non_exhaustive()
    }
}

impl AsRawFd for SharedRing {
    /// The ring's fd.
    fn as_raw_fd(&self) -> RawFd {
        // A shared ring always has an fd (it refuses REGISTERED_FD_ONLY);
        // -1 names no file.
        self.inner.map.fd().map_or(-1, |fd| fd.as_raw_fd())
    }
}
