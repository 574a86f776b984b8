//! `Proactor`: a safe, owned-buffer, future-based API over one ring driven
//! by a submitter thread. The design is documented on [`Proactor`].
// The one module outside mmap/syscalls that opts into unsafe: it pushes
// entries whose pointers target buffers it keeps alive until their CQEs, and
// hands the kernel's results back as lengths and fds. Each block says why.
#![allow(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write as _};
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ring_io_core::CqCredit;
use ring_io_core::FlagsRead;
use ring_io_ops::{Entry, Fd};
use ring_io_sys::{__kernel_timespec, FsyncFlags, SqFlags, SqeFlags};

use crate::kernel::Kernel;
use crate::probe::Probe;
use crate::ring::{Cqe, Ring};
use crate::setup::Builder;

mod fd;
mod fixed;
mod link;
pub use fd::{IntoOpFd, OpFd};
pub use fixed::FixedBuf;
use fixed::Pool;
pub use link::{Link, Linkable};

/// The low word of the `user_data` of the eventfd read that wakes the
/// thread (its high word is a random tag, new at each arming).
const WAKE_INDEX: u32 = u32::MAX;
/// Set in the low word of a cancellation's `user_data`, whose other bits
/// are its target's (slot indexes stay below it).
const CANCEL_BIT: u32 = 1 << 31;
/// How long dropping a [`Proactor`] waits for the last CQEs before it
/// leaves its thread to finish alone.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The first and the longest wait before a failed cancellation is retried.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(64);

/// How a [`Proactor`] sets up its ring and batches.
#[derive(Debug, Clone)]
pub struct ProactorConfig {
    entries: u32,
    cq_entries: Option<u32>,
    batch: u32,
    max_in_flight: Option<u32>,
    stream_credit: u32,
    delay: Duration,
    spin: Duration,
    fixed: Option<(u16, usize)>,
    defaults: bool,
}

impl ProactorConfig {
    /// A ring of `entries` SQ slots (the CQ gets the kernel's default, twice
    /// as many), batches of up to `entries`, and the largest safe budget.
    /// [`Proactor::new`] refuses (`InvalidInput`) a CQ of fewer than 3
    /// entries (`entries` below 2): it could not hold an op, its
    /// cancellation and the thread's wake-up read.
    pub fn new(entries: u32) -> Self {
        ProactorConfig {
            entries,
            cq_entries: None,
            batch: entries,
            max_in_flight: None,
            stream_credit: 8,
            delay: Duration::ZERO,
            spin: Duration::ZERO,
            fixed: None,
            defaults: true,
        }
    }

    /// The CQ size (`IORING_SETUP_CQSIZE`): at least `entries`.
    pub fn cq_entries(mut self, cq_entries: u32) -> Self {
        self.cq_entries = Some(cq_entries);
        self
    }

    /// Submit as soon as this many entries are pushed, even if more are
    /// queued (default: the SQ size).
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The most user ops in flight at once (default and maximum:
    /// `(cq_entries - 1) / 2`, leaving room in the CQ for one cancellation
    /// per op and for the thread's wake-up read); a larger value is
    /// clamped to that maximum, 0 is raised to 1.
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.max_in_flight = Some(max.max(1));
        self
    }

    /// When fewer than [`batch`](Self::batch) new ops are queued, wait up
    /// to `delay` for more before submitting (default: zero, submit at
    /// once). Trades latency for fewer `io_uring_enter` calls when many
    /// threads submit. A delay too long to add to the clock
    /// (`Duration::MAX`) waits until the batch is full.
    pub fn submit_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// How long the thread, out of work, keeps polling for more before it
    /// sleeps in the kernel (default zero: it sleeps at once).
    ///
    /// Waking a sleeping thread costs microseconds, and on a virtual
    /// machine with idle vCPUs tens of them; with a spin, callers that
    /// queue work while the thread polls wake nobody. Measured on a quiet
    /// 2-vCPU VM (`cargo xtask bench`'s Proactor rows), 50 µs took 4 KiB
    /// reads 32 deep from 0.18x to 0.7x of the raw ring's ops/s. But a
    /// spinning thread burns a core: with other work on the machine it
    /// takes the CPU from the very threads that would give it work, and
    /// the same rows fell below 0.01x. Use it only with a core to spare.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Registers `count` buffers of `size` bytes with the ring
    /// (`IORING_REGISTER_BUFFERS`): one page-aligned block the kernel pins
    /// once. Take them with [`Proactor::fixed_buffer`], use them with
    /// [`Proactor::read_fixed`] and [`Proactor::write_fixed`]. Registration
    /// counts against `RLIMIT_MEMLOCK`; [`Proactor::new`] fails if the kernel
    /// refuses it.
    pub fn fixed_buffers(mut self, count: u16, size: usize) -> Self {
        self.fixed = Some((count, size));
        self
    }

    /// CQ credits a multishot accept holds (default 8, at most the
    /// budget): headroom for the CQEs it may post between two reaps.
    pub fn stream_credit(mut self, credits: u32) -> Self {
        self.stream_credit = credits.max(1);
        self
    }

    /// Set the ring up without the [`Builder`]'s fast defaults.
    pub fn no_defaults(mut self) -> Self {
        self.defaults = false;
        self
    }

    fn builder(&self) -> Builder {
        let mut b = Builder::new(self.entries);
        if !self.defaults {
            b = b.no_defaults();
        }
        if let Some(cq) = self.cq_entries {
            b = b.cq_entries(cq);
        }
        b
    }
}

/// Counters of a [`Proactor`] (for tests and tuning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProactorStats {
    /// Completions dispatched to ops and streams.
    pub completed: u64,
    /// Times the thread submitted or waited (at most one `io_uring_enter`
    /// each; counted by the thread, published at its next update).
    pub enters: u64,
    /// Cancellations sent for dropped ops (or at shutdown).
    pub cancels: u64,
    /// The kernel's `cq.overflow` counter, as last read (stays 0).
    pub cq_overflow: u32,
    /// The most requests (ops, cancellations, wake-up read) in the ring at once.
    pub max_in_ring: u32,
    /// The CQ size.
    pub cq_entries: u32,
    /// Dropped ops whose last CQE has arrived: their resources (buffers,
    /// files) are freed right after, outside the Proactor's lock (their
    /// slot and credit come back when their cancellation's CQE has arrived
    /// too).
    pub orphans_freed: u64,
    /// Multishot requests re-armed: a recv that ran out of buffers, an
    /// accept the kernel ended on a full CQ.
    pub stream_restarts: u64,
    /// Cancellations sent again because the kernel answered the previous
    /// one with an error (`ENOENT`, `EALREADY`) before the request's own CQE
    /// arrived.
    pub cancel_retries: u64,
    /// CQEs that belong to no request of this Proactor (a `user_data` it
    /// never used or no longer waits for), ignored. Any code in the process
    /// that can name the ring's fd can post CQEs into it
    /// (`IORING_OP_MSG_RING`); they are counted here and change nothing.
    pub unexpected_cqes: u64,
}

/// A safe, owned-buffer, future-based io_uring driver: a submitter thread
/// that owns a [`Ring`], and futures for the operations.
///
/// # How it works
///
/// [`Proactor::new`] spawns one thread that sets up and owns a [`Ring`].
/// Every operation (`proactor.read(fd, buf, offset)`, ...) returns an
/// [`Op`], a `Future` that works on any executor (it needs nothing but the
/// std [`Waker`]) and has a blocking [`Op::wait`]. Like every Rust future it
/// does nothing until first polled (or [`Op::start`]ed, which queues it at
/// once, so ops made in a row run together); then it takes a *slot* in the
/// Proactor's slab (the SQE's `user_data` is the slot index plus a random
/// 32-bit tag, new for every request) and queues its entry for the thread.
///
/// The thread loop: take every queued entry (one lock), push them, submit
/// them with one `io_uring_enter` (a batch is everything queued since the
/// last enter, cut at [`ProactorConfig::batch`], optionally held up to
/// [`ProactorConfig::submit_delay`] to fill); when nothing is queued it
/// sleeps in `io_uring_enter` waiting for a completion. A read of an eventfd
/// is always armed on the ring, and a caller that queues work while the
/// thread sleeps writes the eventfd, so new work ends the wait (one write
/// per sleep, not per op). Each CQE is dispatched to its slot, and the
/// slot's `Waker` is woken.
///
/// # Owned buffers
///
/// Each op takes its buffers by value and gives them back with the result:
/// `read` returns `(io::Result<usize>, Vec<u8>)`. A read fills the vector's
/// *spare capacity* (`buf.capacity() - buf.len()` bytes after its length)
/// and extends its length by what was read; a write sends `buf[..]`.
///
/// # Files
///
/// An op names its file by number, and the kernel resolves the number when
/// it issues the request (for a linked op, only after the ops before it).
/// So ops take files as [`IntoOpFd`], which keeps the file open until the
/// kernel is done: `&Arc<File>` (the op holds a clone), or a file by value
/// (closed when the op finishes). A plain `&File` does not compile.
///
/// # Fixed buffers
///
/// With [`ProactorConfig::fixed_buffers`] the Proactor registers a pool of
/// buffers with the ring; [`Proactor::fixed_buffer`] takes one (a
/// [`FixedBuf`], back to the pool when dropped), and
/// [`Proactor::read_fixed`] / [`Proactor::write_fixed`] move it in and hand
/// it back, sparing the kernel the page mapping of each op.
///
/// # Dropping an op
///
/// What happens depends on how far the op got; in every case nothing the
/// kernel may still touch is freed, and nothing the op's result holds leaks:
///
/// - Never polled nor [started](Op::start) (or still waiting for credit):
///   nothing reached the kernel. Its buffers and files are dropped at once
///   (a file passed by value is closed; [`Proactor::close`] closes its fd
///   itself).
/// - Submitted, result not yet arrived: its buffers (and every path,
///   iovec, sockaddr or timespec the entry points to) move into its slab
///   slot, and the thread asks the kernel to cancel the request
///   (`IORING_OP_ASYNC_CANCEL` by `user_data`), again with a backoff (1 ms
///   doubling to 64 ms) for as long as the kernel answers `ENOENT` or
///   `EALREADY` and the request's own CQE has not come. The buffers are
///   freed only when that CQE arrives: never while the kernel may touch
///   them.
/// - Completed, result not taken: the result is released (a new fd from
///   [`open`](Proactor::open), [`accept`](Proactor::accept) or
///   [`socket`](Proactor::socket) is closed) and the buffers are freed.
///
/// What can be lost: the op's effect is not undone. A cancellation may come
/// too late, so the request may still run to completion: a dropped read or
/// receive may have consumed data (lost with its buffer), a dropped write
/// or send may have written, an open may have created its file, an accept
/// may have taken a connection (which is then closed). A dropped
/// [`Multi`] releases items that arrived but were not taken the same way
/// (accepted connections are closed, received chunks dropped).
///
/// # Back-pressure
///
/// The CQ can never overflow (but for CQEs other code posts into it, see
/// below, which the kernel keeps in its overflow backlog). Every request the ring carries holds one CQ
/// credit (ring-core's [`CqCredit`]) from its push until its CQE has been
/// reaped and the CQ head handed back: at most
/// [`ProactorConfig::max_in_flight`] user ops (default `(cq - 1) / 2`), at
/// most one cancellation per user op (a dropped op keeps its budget until
/// its cancellation's CQE too has come), and the eventfd read, which
/// together never exceed the CQ size; the thread pushes nothing without
/// credit. An op past the budget stays pending (its `wait()` blocks) until
/// an earlier one completes; nothing fails.
///
/// # Linked ops, timeouts, cancellation
///
/// [`Op::link`] and [`Link::link`] make a chain of any length
/// (`IOSQE_IO_LINK`), queued and pushed whole; [`Proactor::link_timeout`]
/// linked after an op bounds it;
/// [`Proactor::cancel_fd`] cancels every request on a file.
///
/// # Streams
///
/// [`Proactor::accept_multi`] and [`Proactor::recv_multi`] are multishot
/// requests returning a [`Multi`]: items one per completion, with
/// [`Multi::next_item`] (a future) or [`Multi::wait_next`]. The multishot
/// recv selects from a buffer ring the stream owns and copies each chunk
/// out, so its buffer goes back to the kernel at once.
///
/// # Completions are input
///
/// Any code in the process that can name the ring's fd can post CQEs into
/// it (`IORING_OP_MSG_RING` from another ring). So a CQE is taken for a
/// request's only if its `user_data` names a request in flight, tag
/// included (a guess succeeds with odds of 2^-32 per CQE), and its result
/// is used only within what the op can return: a read's length at most the
/// length asked (a larger one fails the op with `InvalidData` and is never
/// used as a length), an fd only from ops that create one. Anything else is
/// counted in [`ProactorStats::unexpected_cqes`] and ignored.
///
/// # User code
///
/// Wakers and the drops of what ops own (an `Arc` of a user's file, say)
/// run with no lock of the Proactor held, so they may use the Proactor
/// (start ops) but must not block on an op on the Proactor's thread; a
/// waker or a drop that panics on the thread ends that call only: the op
/// still completes, and other ops are not affected.
///
/// # Shutdown
///
/// Dropping the [`Proactor`] wakes every op waiting for credit (each then
/// fails with `ErrorKind::NotConnected`), asks every request still in
/// flight to cancel (retrying as above), frees the buffers of dropped ops
/// as their CQEs arrive, and joins the thread once every CQE has come. Ops
/// still alive complete with their kernel result (usually `ECANCELED`); ops
/// polled after that fail with `ErrorKind::NotConnected`. Dropping waits
/// at most 2 seconds: if the kernel has not ended every request by then (a
/// blocking read of a device that ignores cancellation, say), it returns
/// and leaves the thread to finish alone, still freeing each buffer only
/// after its CQE.
///
/// # Unsupported ops
///
/// The thread probes the kernel once; an op the kernel lacks completes at
/// once with an error of kind `Unsupported` wrapping [`Unsupported`]
/// (naming the op and the kernel it needs).
///
/// [`Unsupported`]: crate::Unsupported
///
/// # Limits (today)
///
/// - Speed: every batch hands work to the thread and completions back, so
///   it wakes the thread and then the waiting task. On an idle machine,
///   and on virtual machines above all, a wake-up can cost tens of
///   microseconds: a NOP through the Proactor then costs tens of times a
///   NOP on a raw [`Ring`], and a 4 KiB page-cached read about five times
///   (the project's benchmarks, measured on a 2-vCPU virtual machine). Real
///   I/O amortizes it; with a core to spare,
///   [`ProactorConfig::spin`] avoids it.
/// - One mutex guards the slab and the queue; every op takes it about three
///   times.
/// - [`Proactor::accept_multi`] can meet a full CQ under a burst of
///   connections; it loses none (see there), but it is the one request
///   whose CQEs are not all covered by credit.
///
/// # If the thread panics
///
/// A panic of the thread is a bug (a broken invariant), but it does not
/// leave anyone hanging: ops waiting for a CQE panic too (their output
/// would carry buffers the kernel may still write, so those buffers, and
/// the ring, are leaked, never freed), and new ops fail with
/// `ErrorKind::NotConnected`, "the proactor's thread panicked".
///
/// # Example
///
/// ```
/// use std::io::Write;
/// use std::sync::Arc;
/// use ring_io_driver::{Proactor, ProactorConfig};
///
/// let proactor = Proactor::new(ProactorConfig::new(32))?;
/// let (mut tx, rx) = std::os::unix::net::UnixStream::pair()?;
/// // Ops keep their files open until the kernel is done: share them by `Arc`.
/// let rx = Arc::new(rx);
/// tx.write_all(b"hello")?;
/// // The buffer moves in, and comes back with the result.
/// let (n, buf) = proactor.read(&rx, Vec::with_capacity(16), u64::MAX).wait();
/// assert_eq!(n?, 5);
/// assert_eq!(buf, b"hello");
/// proactor.nop().wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Proactor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

pub struct Shared {
    state: CacheLine<Mutex<State>>,
    /// Signalled when an op is queued while the thread gathers a batch.
    more: Condvar,
    /// Signalled when the thread stops (`State::stopped`).
    stopped: Condvar,
    /// Written by callers to end the thread's wait.
    wake: File,
    probe: Probe,
    budget: u32,
    stream_credit: u32,
    sq_entries: u32,
    /// A duplicate of the ring's fd, to register buffer rings.
    ring_fd: OwnedFd,
    /// The fixed buffers registered with the ring, if any.
    fixed: Option<Arc<Pool>>,
    /// Bumped whenever work is queued for the thread: what its spin
    /// watches (a hint; the queue itself is read under the lock).
    activity: AtomicU64,
}

/// A value on cache lines of its own: the lock every op and the thread
/// take must not share a line with the `Arc` counts (every op clones the
/// `Arc`) or with read-mostly fields.
#[repr(align(128))]
struct CacheLine<T>(T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

enum SlotState {
    Free,
    /// Submitted; the op's future is alive.
    Waiting(Option<Waker>),
    /// The CQE arrived: `(res, flags)`.
    Done(i32, u32),
    /// A multishot request: its CQEs not yet taken, and whether the last
    /// one (without `IORING_CQE_F_MORE`) has arrived.
    Stream {
        cqes: VecDeque<(i32, u32)>,
        waker: Option<Waker>,
        ended: bool,
    },
    /// The op's future was dropped: what it owned waits here for the last
    /// CQE, with the CQEs of a dropped stream that came meanwhile (their
    /// results, fds say, are released with it).
    Orphan(Box<dyn Release>, Cqes),
    /// Done with (the last CQE arrived and, for an op, its future took the
    /// result or was dropped), but a cancellation's CQE is still owed: the
    /// slot waits for it (a dropped op keeps its credit until then, so
    /// cancellations in the ring never outnumber the budget).
    Reaped,
}

/// Where a request stands with its cancellation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cancel {
    /// None asked for.
    None,
    /// A cancellation is queued or in the ring: its CQE is owed.
    Owed,
    /// The last cancellation failed before the request's CQE arrived: the
    /// thread sends another when the backoff has passed.
    Retry,
}

struct Slot {
    /// The random high word of the request's `user_data`: a CQE must name
    /// it to be taken for this request's.
    tag: u32,
    cancel: Cancel,
    /// Cancellations sent for this request (the backoff's exponent).
    attempts: u32,
    /// A multishot request (posts CQEs with `IORING_CQE_F_MORE`).
    stream: bool,
    /// CQ credits the request holds (1, or a stream's headroom).
    credits: u32,
    /// Of those, still counted in `State::in_flight`.
    held: u32,
    state: SlotState,
}

impl Slot {
    /// The request is in the kernel: its last CQE has not arrived.
    fn armed(&self) -> bool {
        matches!(
            self.state,
            SlotState::Waiting(_) | SlotState::Orphan(..) | SlotState::Stream { ended: false, .. }
        )
    }
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Random tags for new requests.
    tags: Tags,
    /// Entries queued for the thread, `user_data` already set, with the
    /// CQ credits each takes.
    queue: Vec<(Entry, u32)>,
    /// `user_data` of requests to cancel.
    cancels: Vec<u64>,
    /// User ops holding credit (queued, or in the ring until their CQE).
    in_flight: u32,
    /// Ops waiting for credit, by ticket (first come, first served).
    credit_waiters: BTreeMap<u64, Waker>,
    next_ticket: u64,
    /// The thread is (about to be) blocked in `io_uring_enter`.
    sleeping: bool,
    /// The thread waits on `Shared::more` for a batch to fill.
    gathering: bool,
    shutdown: bool,
    stopped: bool,
    /// The thread panicked (a bug): ops still in the kernel never complete,
    /// and their resources are leaked rather than freed.
    panicked: bool,
    /// Tests: the thread panics at the top of its next turn.
    #[cfg(test)]
    inject_panic: bool,
    /// The next buffer group id for a stream's buffer ring.
    next_bgid: u16,
    stats: ProactorStats,
}

/// A request's `user_data`: its slot index in the low word, its tag in the
/// high word.
fn user_data(index: u32, tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(index)
}

/// Random 32-bit tags, drawn from `getrandom(2)` 64 at a time.
struct Tags {
    buf: [u32; 64],
    next: usize,
}

impl Default for Tags {
    fn default() -> Self {
        Tags {
            buf: [0; 64],
            next: 64,
        }
    }
}

impl Tags {
    fn next(&mut self) -> u32 {
        if self.next == self.buf.len() {
            fill_random(&mut self.buf);
            self.next = 0;
        }
        self.next += 1;
        self.buf[self.next - 1]
    }
}

/// Fills `words` from the kernel's random source (`getrandom(2)`); if that
/// fails (a seccomp filter, say), from std's randomly keyed hasher.
fn fill_random(words: &mut [u32]) {
    let bytes = std::mem::size_of_val(words);
    let mut done = 0;
    while done < bytes {
        // SAFETY: the range `[done, bytes)` of `words` is writable memory
        // this function borrows mutably; getrandom writes at most `len`
        // bytes there.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getrandom,
                words.as_mut_ptr().cast::<u8>().add(done),
                bytes - done,
                0,
            )
        };
        if n > 0 {
            done += n as usize;
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            use std::hash::{BuildHasher, Hasher};
            let keyed = std::collections::hash_map::RandomState::new();
            for (i, w) in words.iter_mut().enumerate() {
                let mut h = keyed.build_hasher();
                h.write_usize(i);
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                h.write_u128(now.map_or(0, |d| d.as_nanos()));
                *w ^= h.finish() as u32;
            }
            return;
        }
    }
}

/// An op's result from a CQE's `res`.
fn result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(res.wrapping_neg()))
    } else {
        Ok(res as u32)
    }
}

/// Runs user code (a waker, a `Drop`) on a thread it must not take down:
/// a panic ends only this call.
fn run_user(f: impl FnOnce()) {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(f));
}

/// Wakes `wakers`, skipping repeats of the task just woken (ops joined in
/// one task share a waker: a batch of them then costs one wake-up, not one
/// per op, each of which may be a futex call). Call with no lock held: a
/// waker is user code; one that panics does not stop the others.
fn wake_all(wakers: &mut Vec<Waker>) {
    let mut last: Option<Waker> = None;
    for w in wakers.drain(..) {
        if last.as_ref().is_some_and(|l| l.will_wake(&w)) {
            run_user(|| drop(w));
        } else if let Some(l) = last.replace(w) {
            run_user(|| l.wake());
        }
    }
    if let Some(l) = last {
        run_user(|| l.wake());
    }
}

/// What a dropped op or stream owned, and how to release a result it will
/// never deliver (close an accepted fd, free a buffer).
trait Release: Send {
    /// One CQE of the request arrived for nobody: release what it carries.
    fn release(&mut self, res: i32, flags: u32);
}

/// CQEs' `(res, flags)`, in order.
type Cqes = Vec<(i32, u32)>;

/// What must be released outside the lock, in this order: CQE results and
/// the resources that carried them, then the resources' owners.
#[derive(Default)]
struct Graveyard {
    /// Resources with the CQEs to release through them (none: drop only).
    orphans: Vec<(Box<dyn Release>, Cqes)>,
    /// Slot states dropped for their wakers.
    states: Vec<SlotState>,
    wakers: Vec<Waker>,
}

impl Graveyard {
    /// Releases everything (call with no lock held).
    fn bury(&mut self) {
        for (mut release, cqes) in self.orphans.drain(..) {
            for (res, flags) in cqes {
                run_user(|| release.release(res, flags));
            }
            run_user(|| drop(release));
        }
        for state in self.states.drain(..) {
            run_user(|| drop(state));
        }
        wake_all(&mut self.wakers);
    }
}

impl State {
    /// A slot for a new request; `None` if the slab is at its largest.
    fn alloc(&mut self, waker: Option<Waker>, credits: u32, stream: bool) -> Option<u64> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let index = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&i| i < CANCEL_BIT)?;
                self.slots.push(Slot {
                    tag: 0,
                    cancel: Cancel::None,
                    attempts: 0,
                    stream: false,
                    credits: 1,
                    held: 0,
                    state: SlotState::Free,
                });
                index
            }
        };
        let tag = self.tags.next();
        let slot = &mut self.slots[index as usize];
        slot.tag = tag;
        slot.credits = credits;
        slot.stream = stream;
        slot.held = credits;
        slot.cancel = Cancel::None;
        slot.attempts = 0;
        slot.state = if stream {
            SlotState::Stream {
                cqes: VecDeque::new(),
                waker,
                ended: false,
            }
        } else {
            SlotState::Waiting(waker)
        };
        Some(user_data(index, tag))
    }

    /// The live slot `ud` names (index and tag), if any.
    fn slot(&mut self, ud: u64) -> Option<&mut Slot> {
        let index = ud as u32;
        if index >= CANCEL_BIT {
            return None;
        }
        let slot = self.slots.get_mut(index as usize)?;
        (slot.tag == (ud >> 32) as u32 && !matches!(slot.state, SlotState::Free)).then_some(slot)
    }

    /// The request of slot `ud` is done with: the slot is freed (and its
    /// credit returned) unless a cancellation's CQE is still owed, in which
    /// case it waits for that as `Reaped`. The old state goes to `grave`
    /// (it may hold a waker: dropped after unlocking).
    fn finish(&mut self, ud: u64, grave: &mut Graveyard) {
        let index = ud as u32;
        let slot = &mut self.slots[index as usize];
        if slot.cancel == Cancel::Owed {
            let old = std::mem::replace(&mut slot.state, SlotState::Reaped);
            grave.states.push(old);
            return;
        }
        let held = std::mem::take(&mut slot.held);
        let old = std::mem::replace(&mut slot.state, SlotState::Free);
        slot.cancel = Cancel::None;
        // A new tag at once: nothing names the freed slot any more.
        slot.tag = slot.tag.wrapping_add(1);
        grave.states.push(old);
        self.free.push(index);
        self.release_credit(held, &mut grave.wakers);
    }

    /// Credit of a user op came back: wake the first waiter(s).
    fn release_credit(&mut self, n: u32, wakers: &mut Vec<Waker>) {
        self.in_flight = self.in_flight.saturating_sub(n);
        for _ in 0..n {
            match self.credit_waiters.pop_first() {
                Some((_, w)) => wakers.push(w),
                None => break,
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every
        // update is a few plain stores), so a poisoned lock is still used.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After the thread panicked: wakes every waiting op (each panics in
    /// turn, see [`panicked`]), leaks the resources of dropped ops (the
    /// kernel may still use them; the ring is leaked too), and refuses new
    /// ops.
    fn fail_all(&self) {
        let mut st = self.lock();
        st.panicked = true;
        st.shutdown = true;
        st.stopped = true;
        st.sleeping = false;
        let mut wakers: Vec<Waker> = std::mem::take(&mut st.credit_waiters)
            .into_values()
            .collect();
        for slot in &mut st.slots {
            match &mut slot.state {
                SlotState::Waiting(waker) | SlotState::Stream { waker, .. } => {
                    wakers.extend(waker.take());
                }
                SlotState::Orphan(..) => {
                    if let SlotState::Orphan(resources, cqes) =
                        std::mem::replace(&mut slot.state, SlotState::Reaped)
                    {
                        std::mem::forget(resources);
                        std::mem::forget(cqes);
                    }
                }
                SlotState::Free | SlotState::Done(..) | SlotState::Reaped => {}
            }
        }
        drop(st);
        self.stopped.notify_all();
        wake_all(&mut wakers);
    }

    /// Ends the thread's wait if it sleeps (called after unlocking).
    fn wake_thread(&self) {
        // A failed write means the eventfd counter is saturated, which only
        // happens if the thread already has a wake-up pending.
        let _ = (&self.wake).write(&1u64.to_ne_bytes());
    }
}

/// A setup error as the Proactor's caller can act on it: an oversize ring
/// names the size to ask [`ProactorConfig::new`] for (the Proactor has no
/// `Builder::clamp`); the rest converts as every `SetupError` does (an OS
/// error keeps its code).
fn proactor_setup_error(e: crate::SetupError) -> io::Error {
    match e {
        crate::SetupError::Size(size @ ring_io_core::GeometryError::TooLarge { max, .. }) => {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid ring size: {size}: ask ProactorConfig::new (and cq_entries) \
                     for at most {max} entries"
                ),
            )
        }
        e => io::Error::from(e),
    }
}

impl Proactor {
    /// Sets up a ring as `config` says on a new thread and starts it.
    ///
    /// A refused setup keeps the kernel's error code
    /// ([`raw_os_error()`](io::Error::raw_os_error)); an oversize ring
    /// (more than 32768 entries) is `InvalidInput` naming the maximum.
    /// [`Builder::build`](crate::Builder::build) with the same sizes gives
    /// the [`SetupError`](crate::SetupError), whose message also explains
    /// an `EPERM` (io_uring disabled by sysctl, seccomp or a container).
    pub fn new(config: ProactorConfig) -> io::Result<Proactor> {
        // SAFETY: eventfd(2) takes no pointers; the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let thread_efd = efd.try_clone()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name("ring-proactor".into())
            .spawn(move || {
                // The fixed buffers first: declared before the ring, they are
                // dropped after it on every path out of here.
                let pool = match config.fixed.map(|(n, size)| Pool::new(n, size)) {
                    None => None,
                    Some(Ok(pool)) => Some(pool),
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                // The ring is set up on its own thread (SINGLE_ISSUER and the
                // registered ring fd both belong to the thread that submits).
                let setup = config
                    .builder()
                    .build()
                    .map_err(proactor_setup_error)
                    .and_then(|ring| {
                        if let Some(pool) = &pool {
                            // SAFETY: the pool's memory stays allocated while
                            // the ring lives: `pool` (and the shared state,
                            // which holds it too) outlives the ring here and
                            // in the driver, whose ring is dropped (or
                            // leaked, after a panic) before its `shared`.
                            unsafe { ring.registrar().register_buffers(&pool.iovecs()) }?;
                        }
                        Ok((ring.probe()?, ring))
                    });
                let (probe, ring) = match setup {
                    Ok(ok) => ok,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                // The ring's fd, duplicated (the Proactor's builder never
                // asks for REGISTERED_FD_ONLY, so there is one).
                let ring_fd = match ring
                    .fd()
                    .ok_or_else(|| io::Error::other("the Proactor's ring has no fd"))
                    .and_then(|fd| fd.try_clone_to_owned())
                {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let cq = ring.params().cq_entries();
                let limit = cq.saturating_sub(1) / 2;
                if limit == 0 {
                    let _ = tx.send(Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "a CQ of {cq} entries has no room for an op, its cancellation \
                             and the thread's wake-up read (3 are needed): ask for at least \
                             2 entries, or cq_entries(3)"
                        ),
                    )));
                    return;
                }
                let budget = config.max_in_flight.map_or(limit, |m| m.min(limit));
                let mut state = State::default();
                state.stats.cq_entries = cq;
                let shared = Arc::new(Shared {
                    state: CacheLine(Mutex::new(state)),
                    more: Condvar::new(),
                    stopped: Condvar::new(),
                    wake: File::from(efd),
                    probe,
                    budget,
                    stream_credit: config.stream_credit.clamp(1, budget),
                    sq_entries: ring.params().sq_entries(),
                    ring_fd,
                    fixed: pool.clone(),
                    activity: AtomicU64::new(0),
                });
                if tx.send(Ok(shared.clone())).is_err() {
                    return;
                }
                let driver = Driver::new(ring, shared.clone(), thread_efd, &config);
                if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| driver.run())) {
                    shared.fail_all();
                    std::panic::resume_unwind(panic);
                }
            })?;
        match rx.recv() {
            Ok(Ok(shared)) => Ok(Proactor {
                shared,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("the proactor thread died during setup"))
            }
        }
    }

    /// The opcodes the kernel supports (probed once at start).
    pub fn probe(&self) -> &Probe {
        &self.shared.probe
    }

    /// The most user ops in flight at once.
    pub fn max_in_flight(&self) -> u32 {
        self.shared.budget
    }

    /// Counters, as of now.
    pub fn stats(&self) -> ProactorStats {
        self.shared.lock().stats
    }

    fn op<O: 'static>(&self, entry: Entry, finish: impl Finish<O>) -> Op<O> {
        Op {
            shared: self.shared.clone(),
            entry,
            stage: Stage::New,
            finish: Some(Box::new(finish)),
        }
    }

    /// [`op`](Self::op) for an entry naming files: `keep` (the [`OpFd`]s)
    /// stays alive until the op finishes, or, if its future is dropped,
    /// until its last CQE.
    fn op_with<O: 'static>(
        &self,
        entry: Entry,
        keep: impl Send + 'static,
        finish: impl FnOnce(io::Result<u32>, u32) -> O + Send + 'static,
    ) -> Op<O> {
        self.op(entry, move |res: io::Result<u32>, flags| {
            let out = finish(res, flags);
            drop(keep);
            out
        })
    }

    /// `IORING_OP_NOP`: completes with `Ok(())`.
    pub fn nop(&self) -> Op<io::Result<()>> {
        self.op(
            ring_io_ops::Nop::new().build(),
            |res: io::Result<u32>, _| res.map(drop),
        )
    }

    /// Reads into the spare capacity of `buf` at `offset` (`u64::MAX`: the
    /// file position), like `pread(2)`; the length grows by what was read.
    pub fn read(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.fill_spare(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Read::new(fd, at, len).offset(offset).build()
        })
    }

    /// An op that fills the spare capacity of `buf`, whose entry `make`
    /// builds from the fd, the spare capacity's start and its length; the
    /// vector's length grows by what the kernel wrote.
    fn fill_spare(
        &self,
        fd: OpFd,
        mut buf: Vec<u8>,
        make: impl FnOnce(Fd, *mut u8, u32) -> Entry,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        let spare = buf.spare_capacity_mut();
        let len = u32::try_from(spare.len()).unwrap_or(u32::MAX);
        let entry = make(Fd(fd.raw()), spare.as_mut_ptr().cast(), len);
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, len as usize)).inspect(|&n| {
                // SAFETY: the kernel wrote `n` bytes, checked to be at most
                // the `len` it was given, into the spare capacity, which
                // starts at `buf.len()`.
                unsafe { buf.set_len(buf.len() + n) };
            });
            (res, buf)
        })
    }

    /// An op that writes or sends `buf`, whose entry `make` builds from the
    /// fd, the bytes' start and their length.
    fn send_bytes(
        &self,
        fd: OpFd,
        buf: Vec<u8>,
        make: impl FnOnce(Fd, *const u8, u32) -> Entry,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let entry = make(Fd(fd.raw()), buf.as_ptr(), len);
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            (res.and_then(|n| at_most(n, len as usize)), buf)
        })
    }

    /// A free fixed buffer (empty), or `None` if all are taken or none were
    /// registered ([`ProactorConfig::fixed_buffers`]). It goes back to the
    /// pool when dropped.
    pub fn fixed_buffer(&self) -> Option<FixedBuf> {
        self.shared.fixed.as_ref()?.take()
    }

    /// [`read`](Self::read) into a fixed buffer (`IORING_OP_READ_FIXED`):
    /// fills the space after its first `len()` bytes.
    pub fn read_fixed(
        &self,
        fd: impl IntoOpFd,
        mut buf: FixedBuf,
        offset: u64,
    ) -> Op<(io::Result<usize>, FixedBuf)> {
        let fd = fd.into_op_fd();
        let len = u32::try_from(buf.capacity() - buf.len()).unwrap_or(u32::MAX);
        // SAFETY: `len()` is at most the capacity: still inside the buffer.
        let at = unsafe { buf.start().add(buf.len()) };
        let entry = ring_io_ops::ReadFixed::new(Fd(fd.raw()), at, len, buf.index())
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, len as usize)).inspect(|&n| {
                // SAFETY: the kernel wrote `n` bytes, checked to be at most
                // the `len` it was given, after `len()`.
                unsafe { buf.grow(n) };
            });
            (res, buf)
        })
    }

    /// [`write`](Self::write) from a fixed buffer (`IORING_OP_WRITE_FIXED`):
    /// writes its first `len()` bytes.
    pub fn write_fixed(
        &self,
        fd: impl IntoOpFd,
        buf: FixedBuf,
        offset: u64,
    ) -> Op<(io::Result<usize>, FixedBuf)> {
        let fd = fd.into_op_fd();
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let entry = ring_io_ops::WriteFixed::new(Fd(fd.raw()), buf.start(), len, buf.index())
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            (res.and_then(|n| at_most(n, len as usize)), buf)
        })
    }

    /// Writes `buf` at `offset` (`u64::MAX`: the file position), like
    /// `pwrite(2)`.
    pub fn write(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.send_bytes(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Write::new(fd, at, len).offset(offset).build()
        })
    }

    /// Reads into the spare capacity of each buffer in turn, like
    /// `preadv(2)`; each length grows by what landed in it.
    pub fn readv(
        &self,
        fd: impl IntoOpFd,
        mut bufs: Vec<Vec<u8>>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<Vec<u8>>)> {
        let fd = fd.into_op_fd();
        let iovecs: Iovecs = bufs
            .iter_mut()
            .map(|b| {
                let spare = b.spare_capacity_mut();
                libc::iovec {
                    iov_base: spare.as_mut_ptr().cast(),
                    iov_len: spare.len(),
                }
            })
            .collect();
        let Some((count, total)) = iovecs.count_and_total() else {
            return self.failed_op(too_many_buffers(), move |res: io::Result<u32>, _| {
                drop(fd);
                (res.map(|n| n as usize), bufs)
            });
        };
        let entry = ring_io_ops::Readv::new(Fd(fd.raw()), iovecs.0.as_ptr().cast(), count)
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, total)).inspect(|&n| {
                let mut left = n;
                for (b, iov) in bufs.iter_mut().zip(&iovecs.0) {
                    let k = left.min(iov.iov_len);
                    // SAFETY: the kernel filled the iovecs in order, `k`
                    // bytes of this one (at most its length), which is this
                    // vector's spare capacity.
                    unsafe { b.set_len(b.len() + k) };
                    left -= k;
                }
            });
            drop(iovecs);
            (res, bufs)
        })
    }

    /// Writes the buffers in turn, like `pwritev(2)`.
    pub fn writev(
        &self,
        fd: impl IntoOpFd,
        bufs: Vec<Vec<u8>>,
        offset: u64,
    ) -> Op<(io::Result<usize>, Vec<Vec<u8>>)> {
        let fd = fd.into_op_fd();
        let iovecs: Iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            })
            .collect();
        let Some((count, total)) = iovecs.count_and_total() else {
            return self.failed_op(too_many_buffers(), move |res: io::Result<u32>, _| {
                drop(fd);
                (res.map(|n| n as usize), bufs)
            });
        };
        let entry = ring_io_ops::Writev::new(Fd(fd.raw()), iovecs.0.as_ptr().cast(), count)
            .offset(offset)
            .build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            drop(iovecs);
            (res.and_then(|n| at_most(n, total)), bufs)
        })
    }

    /// `fsync(2)`, or `fdatasync(2)` with `datasync`.
    pub fn fsync(&self, fd: impl IntoOpFd, datasync: bool) -> Op<io::Result<()>> {
        let fd = fd.into_op_fd();
        let flags = if datasync {
            FsyncFlags::DATASYNC
        } else {
            FsyncFlags::empty()
        };
        let entry = ring_io_ops::Fsync::new(Fd(fd.raw())).flags(flags).build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res.map(drop))
    }

    /// Completes after `duration` (`IORING_OP_TIMEOUT`); a duration past
    /// `i64::MAX` seconds is clamped there.
    pub fn timeout(&self, duration: Duration) -> Op<io::Result<()>> {
        let ts = Box::new(timespec(duration));
        let entry = ring_io_ops::Timeout::new(&*ts).build();
        self.op(entry, move |res: io::Result<u32>, _| {
            drop(ts);
            match res {
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
                other => other.map(drop),
            }
        })
    }

    /// Opens `path` (relative to the current directory) with `O_*` `flags`
    /// (`O_CLOEXEC` is added) and `mode`, like `openat(2)`.
    pub fn open(&self, path: impl AsRef<Path>, flags: i32, mode: u32) -> Op<io::Result<OwnedFd>> {
        let path = match CString::new(path.as_ref().as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(e) => return self.failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        let entry = ring_io_ops::OpenAt::new(Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags | libc::O_CLOEXEC)
            .mode(mode)
            .build();
        self.op(entry, move |res: io::Result<u32>, _| {
            drop(path);
            // SAFETY: a successful open returns a new fd that nothing owns.
            res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        })
    }

    /// Closes `fd`, like `close(2)`. The op owns `fd` until the kernel has
    /// closed it: dropped before it was submitted, it closes `fd` itself.
    pub fn close(&self, fd: OwnedFd) -> Op<io::Result<()>> {
        let entry = ring_io_ops::Close::new(Fd(fd.as_raw_fd())).build();
        self.op(entry, move |res: io::Result<u32>, _| match res {
            // The kernel found no such file to close (it refuses io_uring
            // fds, say): the fd is still open, and still this op's.
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                drop(fd);
                Err(e)
            }
            // Closed by the kernel (other errors come from the file's
            // flush, after the fd was removed): forget the number.
            other => {
                let _ = fd.into_raw_fd();
                other.map(drop)
            }
        })
    }

    /// `statx(2)` of `path` (relative to the current directory) with `AT_*`
    /// `flags` and `STATX_*` `mask`.
    pub fn statx(
        &self,
        path: impl AsRef<Path>,
        flags: i32,
        mask: u32,
    ) -> Op<io::Result<Box<libc::statx>>> {
        let path = match CString::new(path.as_ref().as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(e) => return self.failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        // SAFETY: `statx` is plain integers, for which zero is valid.
        let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
        let entry =
            ring_io_ops::Statx::new(Fd(libc::AT_FDCWD), path.as_ptr(), (&raw mut *buf).cast())
                .flags(flags)
                .mask(mask)
                .build();
        self.op(entry, move |res: io::Result<u32>, _| {
            drop(path);
            res.map(|_| buf)
        })
    }

    /// Accepts a connection on the listening socket `fd` (`SOCK_CLOEXEC`).
    pub fn accept(&self, fd: impl IntoOpFd) -> Op<io::Result<OwnedFd>> {
        let fd = fd.into_op_fd();
        let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| {
            // SAFETY: a successful accept returns a new fd that nothing owns.
            res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        })
    }

    /// Connects the socket `fd` to `addr`, like `connect(2)`.
    pub fn connect(&self, fd: impl IntoOpFd, addr: SocketAddr) -> Op<io::Result<()>> {
        let fd = fd.into_op_fd();
        let (storage, len) = sockaddr(addr);
        let entry =
            ring_io_ops::Connect::new(Fd(fd.raw()), (&raw const *storage).cast(), len).build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            drop(storage);
            res.map(drop)
        })
    }

    /// Sends `buf` on the socket `fd` with `MSG_*` `flags`, like `send(2)`.
    pub fn send(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        flags: i32,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.send_bytes(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Send::new(fd, at, len).flags(flags).build()
        })
    }

    /// Receives into the spare capacity of `buf` from the socket `fd` with
    /// `MSG_*` `flags`, like `recv(2)`; the length grows by what arrived
    /// (0 at end of stream).
    pub fn recv(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        flags: i32,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        self.fill_spare(fd.into_op_fd(), buf, |fd, at, len| {
            ring_io_ops::Recv::new(fd, at, len).flags(flags).build()
        })
    }

    /// Shuts down part of the full-duplex connection on the socket `fd`,
    /// like `shutdown(2)` (`IORING_OP_SHUTDOWN`, Linux 5.11).
    pub fn shutdown(&self, fd: impl IntoOpFd, how: std::net::Shutdown) -> Op<io::Result<()>> {
        let fd = fd.into_op_fd();
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        let entry = ring_io_ops::Shutdown::new(Fd(fd.raw()), how).build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res.map(drop))
    }

    /// A new socket, like `socket(2)` with `SOCK_CLOEXEC` added
    /// (`IORING_OP_SOCKET`, Linux 5.19).
    pub fn socket(&self, domain: i32, socket_type: i32, protocol: i32) -> Op<io::Result<OwnedFd>> {
        let entry =
            ring_io_ops::Socket::new(domain, socket_type | libc::SOCK_CLOEXEC, protocol).build();
        self.op(entry, |res: io::Result<u32>, _| {
            // SAFETY: a successful socket returns a new fd that nothing owns.
            res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        })
    }

    /// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`, ...);
    /// returns the ready events.
    pub fn poll(&self, fd: impl IntoOpFd, events: u32) -> Op<io::Result<u32>> {
        let fd = fd.into_op_fd();
        let entry = ring_io_ops::PollAdd::new(Fd(fd.raw()), events).build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res)
    }

    /// Moves up to `len` bytes from `fd_in` to `fd_out` (one must be a
    /// pipe), like `splice(2)`; an offset of `None` uses the file position.
    pub fn splice(
        &self,
        fd_in: impl IntoOpFd,
        off_in: Option<u64>,
        fd_out: impl IntoOpFd,
        off_out: Option<u64>,
        len: u32,
    ) -> Op<io::Result<usize>> {
        let fd_in = fd_in.into_op_fd();
        let fd_out = fd_out.into_op_fd();
        // -1 is "the file position": an offset past i64::MAX must not
        // become it.
        let off = |o: Option<u64>| o.map_or(Some(-1), |o| i64::try_from(o).ok());
        let (Some(at_in), Some(at_out)) = (off(off_in), off(off_out)) else {
            return self.failed_op(
                io::Error::new(io::ErrorKind::InvalidInput, "a splice offset past i64::MAX"),
                move |res: io::Result<u32>, _| {
                    drop((fd_in, fd_out));
                    res.map(|n| n as usize)
                },
            );
        };
        let entry =
            ring_io_ops::Splice::new(Fd(fd_in.raw()), at_in, Fd(fd_out.raw()), at_out, len).build();
        self.op_with(entry, (fd_in, fd_out), move |res: io::Result<u32>, _| {
            res.and_then(|n| at_most(n, len as usize))
        })
    }

    /// Sends `buf` to `addr` on the datagram socket `fd`, like `sendmsg(2)`
    /// with one iovec and a destination.
    pub fn send_to(
        &self,
        fd: impl IntoOpFd,
        buf: Vec<u8>,
        addr: SocketAddr,
    ) -> Op<(io::Result<usize>, Vec<u8>)> {
        let fd = fd.into_op_fd();
        let (storage, len) = sockaddr(addr);
        let mut msg = Msg::new(buf.as_ptr().cast_mut(), buf.len(), storage, len);
        let entry = ring_io_ops::SendMsg::new(Fd(fd.raw()), (&raw mut msg.hdr).cast()).build();
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            drop(msg);
            let len = buf.len();
            (res.and_then(|n| at_most(n, len)), buf)
        })
    }

    /// Receives one message into the spare capacity of `buf` from the
    /// socket `fd`, like `recvmsg(2)`: the length and the sender (`None`
    /// if not an IP address).
    #[allow(
        clippy::type_complexity,
        reason = "the result and the buffer, as every op"
    )]
    pub fn recv_from(
        &self,
        fd: impl IntoOpFd,
        mut buf: Vec<u8>,
    ) -> Op<(io::Result<(usize, Option<SocketAddr>)>, Vec<u8>)> {
        let fd = fd.into_op_fd();
        let spare = buf.spare_capacity_mut();
        // SAFETY: all-zero is a valid sockaddr_storage.
        let storage = Box::new(unsafe { std::mem::zeroed() });
        let mut msg = Msg::new(
            spare.as_mut_ptr().cast(),
            spare.len(),
            storage,
            size_of::<libc::sockaddr_storage>() as u32,
        );
        let entry = ring_io_ops::RecvMsg::new(Fd(fd.raw()), (&raw mut msg.hdr).cast()).build();
        let len = msg.iov.iov_len;
        self.op_with(entry, fd, move |res: io::Result<u32>, _| {
            let res = res.and_then(|n| at_most(n, len)).map(|n| {
                // SAFETY: the kernel wrote `n` bytes, checked to be at most
                // the spare capacity it was given, into it.
                unsafe { buf.set_len(buf.len() + n) };
                (n, from_sockaddr(&msg.addr, msg.hdr.msg_namelen))
            });
            drop(msg);
            (res, buf)
        })
    }

    /// Accepts connections on the listening socket `fd` with one multishot
    /// request (`IORING_ACCEPT_MULTISHOT`, Linux 5.19): a [`Multi`] of new
    /// sockets (`SOCK_CLOEXEC`).
    ///
    /// The request holds [`ProactorConfig::stream_credit`] CQ credits. The
    /// kernel posts one CQE per connection, and nothing bounds how many
    /// arrive between two reaps of the thread: a burst of more connections
    /// than that headroom can find the CQ full. No connection is lost: the
    /// kernel then ends the request with a last, successful CQE (newer
    /// kernels), and the stream delivers it and re-arms the request (counted
    /// in [`ProactorStats::stream_restarts`]); or it keeps the CQE in its
    /// overflow backlog (`IORING_FEAT_NODROP`), which the thread flushes.
    /// Either way the CQ overflow counter stays 0. Single-shot
    /// [`accept`](Self::accept) in a loop never exceeds its credit.
    pub fn accept_multi(&self, fd: impl IntoOpFd) -> Multi<OwnedFd> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(5, 19, "multishot accept (IORING_ACCEPT_MULTISHOT)") {
            return Multi::failed(self, e);
        }
        let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .multishot()
            .build();
        let mut multi = Multi::new(
            self,
            entry,
            self.shared.stream_credit,
            move |res: io::Result<u32>, _| {
                // The listener stays open while the request lives.
                let _ = &fd;
                // SAFETY: a successful accept returns a new fd nothing owns.
                Some(res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
            },
        );
        multi.restart_after_success = true;
        multi
    }

    /// Receives from the socket `fd` with one multishot request
    /// (`IORING_RECV_MULTISHOT`, Linux 6.0) into a buffer ring the stream
    /// owns: `buffers` buffers (a power of two) of `buf_len` bytes. A
    /// [`Multi`] of received chunks, copied out so the buffer goes back to
    /// the kernel at once; it ends at end of stream.
    ///
    /// The CQ cannot overflow: the request holds `buffers + 1` credits and
    /// each of its CQEs but the last consumes a buffer, which comes back
    /// only after the CQE has been taken. When the kernel runs out of
    /// buffers (`ENOBUFS`, the consumer being slow) the stream re-arms the
    /// request once its queued chunks are taken.
    pub fn recv_multi(&self, fd: impl IntoOpFd, buffers: u16, buf_len: u32) -> Multi<Vec<u8>> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(6, 0, "multishot recv (IORING_RECV_MULTISHOT)") {
            return Multi::failed(self, e);
        }
        let credits = u32::from(buffers) + 1;
        if credits > self.shared.budget {
            return Multi::failed(
                self,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "more buffers than the Proactor's budget of in-flight ops",
                ),
            );
        }
        let bgid = {
            let mut st = self.shared.lock();
            st.next_bgid = st.next_bgid.wrapping_add(1);
            0x8000 | (st.next_bgid & 0x7fff)
        };
        // SAFETY: the BufRing moves into the stream's resources, which stay
        // alive (in the stream, or orphaned in the slab) until the last CQE
        // of the only request that selects from group `bgid`.
        let bufs = match unsafe {
            crate::BufRing::new(&self.shared.ring_fd, bgid, u32::from(buffers), buf_len)
        } {
            Ok(b) => b,
            Err(e) => return Multi::failed(self, e),
        };
        let entry = ring_io_ops::Recv::select(Fd(fd.raw()), bgid, 0)
            .multishot()
            .build();
        let mut bufs = bufs;
        let mut multi = Multi::new(self, entry, credits, move |res: io::Result<u32>, flags| {
            // The socket stays open while the request lives.
            let _ = &fd;
            // A failed receive may name a buffer too (consumed before
            // 6.12): take it so it goes back to the ring.
            let raw = match &res {
                Ok(n) => i32::try_from(*n).unwrap_or(i32::MAX),
                Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            };
            let cqe = Cqe::from(ring_io_sys::io_uring_cqe {
                res: raw,
                flags,
                ..Default::default()
            });
            // SAFETY: `res` and `flags` are those of a completion the kernel
            // posted for this multishot recv (the Proactor matched it by its
            // user_data), the only request that selects from group `bgid`,
            // and each of its completions reaches this closure once.
            let taken = unsafe { bufs.take(&cqe) };
            if let Err(e) = res {
                drop(taken);
                return Some(Err(e));
            }
            match taken {
                Ok(Some(data)) => Some(Ok(data.to_vec())),
                // End of stream: no buffer, no data.
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        });
        multi.restart_on = Some(libc::ENOBUFS);
        multi
    }

    /// An error if the running kernel is older than `major.minor`.
    fn needs(&self, major: u16, minor: u16, what: &'static str) -> Option<io::Error> {
        let kernel = self.shared.probe.kernel()?;
        (!kernel.at_least(major, minor)).then(|| {
            crate::Unsupported {
                what,
                needs: Some((major, minor)),
                kernel: Some(kernel),
            }
            .into()
        })
    }

    /// A timeout for the op it is linked after (`IORING_OP_LINK_TIMEOUT`):
    /// `p.read(..).link(p.link_timeout(d))`. If `duration` passes first
    /// the op fails with `ECANCELED` and this completes with `ETIME`;
    /// otherwise this completes with `ECANCELED` (the kernel's results,
    /// as they are). Alone, it fails with `EINVAL`.
    pub fn link_timeout(&self, duration: Duration) -> Op<io::Result<()>> {
        let ts = Box::new(timespec(duration));
        let entry = ring_io_ops::LinkTimeout::new(&*ts).build();
        self.op(entry, move |res: io::Result<u32>, _| {
            drop(ts);
            res.map(drop)
        })
    }

    /// Cancels every request on `fd` (`IORING_ASYNC_CANCEL_FD |
    /// IORING_ASYNC_CANCEL_ALL`, Linux 5.19): returns how many were
    /// cancelled; they complete with `ECANCELED`.
    pub fn cancel_fd(&self, fd: impl IntoOpFd) -> Op<io::Result<u32>> {
        let fd = fd.into_op_fd();
        let entry = ring_io_ops::AsyncCancel::by_fd(Fd(fd.raw())).all().build();
        self.op_with(entry, fd, |res: io::Result<u32>, _| res)
    }

    /// An op that fails at once with `error` (an argument the kernel would
    /// never see, such as a path with a NUL byte).
    fn failed<T: 'static>(&self, error: io::Error) -> Op<io::Result<T>> {
        self.failed_op(error, |res: io::Result<u32>, _| {
            res.and_then(|_| Err(io::Error::other("unreachable")))
        })
    }

    /// An op that fails at once with `error`: `finish` makes its output
    /// from `Err(error)`.
    fn failed_op<O: 'static>(
        &self,
        error: io::Error,
        finish: impl FnOnce(io::Result<u32>, u32) -> O + Send + 'static,
    ) -> Op<O> {
        let mut op = self.op(ring_io_ops::Nop::new().build(), finish);
        op.stage = Stage::Failed(error);
        op
    }
}

impl fmt::Debug for Proactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proactor")
            .field("max_in_flight", &self.shared.budget)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for Proactor {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.shutdown = true;
        // Ops waiting for credit will never get it: each is woken, and
        // fails with `NotConnected` when polled.
        let mut wakers: Vec<Waker> = std::mem::take(&mut st.credit_waiters)
            .into_values()
            .collect();
        drop(st);
        wake_all(&mut wakers);
        self.shared.wake_thread();
        // Wait for the thread to see every request's last CQE, a bounded
        // time: a request the kernel will not cancel (a blocking read of a
        // device, say) must not block the caller. The thread then finishes
        // alone, freeing what the kernel used only after its CQE.
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        // Dropped on its own thread (by a user's Drop the thread ran): that
        // thread finishes when this returns.
        let own_thread = self
            .thread
            .as_ref()
            .is_some_and(|t| t.thread().id() == thread::current().id());
        let mut st = self.shared.lock();
        while !st.stopped && !own_thread {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = match self.shared.stopped.wait_timeout(st, deadline - now) {
                Ok((st, _)) => st,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let stopped = st.stopped;
        drop(st);
        if let Some(thread) = self.thread.take() {
            if stopped {
                let _ = thread.join();
            }
        }
    }
}

/// A `msghdr` with one iovec and an address, all in one heap block the
/// header points into.
struct Msg {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: Box<libc::sockaddr_storage>,
}

// SAFETY: the pointers target this block, the address box it owns, and the
// buffer of the op that owns it; they move together.
unsafe impl Send for Msg {}

impl Msg {
    fn new(
        base: *mut u8,
        len: usize,
        mut addr: Box<libc::sockaddr_storage>,
        addr_len: u32,
    ) -> Box<Msg> {
        // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = (&raw mut *addr).cast();
        hdr.msg_namelen = addr_len;
        let mut msg = Box::new(Msg {
            hdr,
            iov: libc::iovec {
                iov_base: base.cast(),
                iov_len: len,
            },
            addr,
        });
        msg.hdr.msg_iov = &raw mut msg.iov;
        msg.hdr.msg_iovlen = 1;
        msg
    }
}

fn from_sockaddr(storage: &libc::sockaddr_storage, len: u32) -> Option<SocketAddr> {
    let p: *const libc::sockaddr_storage = storage;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*p.cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The iovecs of a vectored op, pointing into the op's own buffers.
struct Iovecs(Vec<libc::iovec>);

// SAFETY: the pointers target the heap memory of buffers the same op owns
// and moves together with these iovecs; nothing is shared.
unsafe impl Send for Iovecs {}

impl Iovecs {
    /// The iovec count as the SQE carries it (`None` if it does not fit)
    /// and the bytes they span: what a result may report at most.
    fn count_and_total(&self) -> Option<(u32, usize)> {
        let count = u32::try_from(self.0.len()).ok()?;
        let total = self
            .0
            .iter()
            .fold(0usize, |t, v| t.saturating_add(v.iov_len));
        Some((count, total))
    }
}

impl FromIterator<libc::iovec> for Iovecs {
    fn from_iter<I: IntoIterator<Item = libc::iovec>>(iter: I) -> Self {
        Iovecs(iter.into_iter().collect())
    }
}

fn sockaddr(addr: SocketAddr) -> (Box<libc::sockaddr_storage>, u32) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: Box<libc::sockaddr_storage> = Box::new(unsafe { std::mem::zeroed() });
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe { (&raw mut *storage).cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in6.
            unsafe { (&raw mut *storage).cast::<libc::sockaddr_in6>().write(sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as u32)
}

/// `n`, the bytes a completion reports for an op on `max` bytes, if it is
/// at most `max`: a larger count is no result the kernel gives (a forged
/// CQE, say), and is never used as a length.
fn at_most(n: u32, max: usize) -> io::Result<usize> {
    let n = n as usize;
    if n <= max {
        Ok(n)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a completion reported {n} bytes for an op on {max}"),
        ))
    }
}

fn too_many_buffers() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "more buffers than an iovec count holds (the kernel takes at most 1024)",
    )
}

/// `duration` as the kernel's timespec; past `i64::MAX` seconds (292
/// billion years) it is clamped there.
fn timespec(duration: Duration) -> __kernel_timespec {
    __kernel_timespec {
        tv_sec: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(duration.subsec_nanos()),
    }
}

/// What turns an op's completion into its output; owns every resource the
/// entry points to.
trait Finish<O>: Send + 'static {
    fn finish(self: Box<Self>, res: io::Result<u32>, flags: u32) -> O;
}

impl<O, F: FnOnce(io::Result<u32>, u32) -> O + Send + 'static> Finish<O> for F {
    fn finish(self: Box<Self>, res: io::Result<u32>, flags: u32) -> O {
        self(res, flags)
    }
}

pub enum Stage {
    /// Not yet polled.
    New,
    /// Waiting for credit with this ticket.
    Credit(u64),
    /// In the Proactor (queued or in the ring) with this `user_data`.
    Submitted(u64),
    /// Fails with this error when polled.
    Failed(io::Error),
    /// The output was returned.
    Finished,
}

/// An operation of a [`Proactor`]: a `Future` of its output (the result
/// and the buffers moved in), usable on any executor, or
/// [`wait`](Op::wait)ed on. Submitted when first polled; dropping it before
/// it completes cancels the request, and its buffers stay with the
/// Proactor until the kernel is done with them.
#[must_use = "an op does nothing until it is polled or waited on"]
pub struct Op<O: 'static> {
    shared: Arc<Shared>,
    entry: Entry,
    stage: Stage,
    finish: Option<Box<dyn Finish<O>>>,
}

impl<O: 'static> Op<O> {
    /// Queues the op for the kernel now rather than when first polled, if
    /// the budget has room (otherwise it is queued when polled, as usual).
    ///
    /// Like every Rust future an op does nothing until polled, so
    /// `let a = p.read(..); let b = p.read(..);` then `a.wait()` and
    /// `b.wait()` runs the reads one after the other. Started, they run
    /// together:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ring_io_driver::{Proactor, ProactorConfig};
    /// let p = Proactor::new(ProactorConfig::new(16))?;
    /// let zero = Arc::new(std::fs::File::open("/dev/zero")?);
    /// let reads: Vec<_> = (0..8)
    ///     .map(|i| p.read(&zero, Vec::with_capacity(512), i * 512).start())
    ///     .collect();
    /// for read in reads {
    ///     assert_eq!(read.wait().0?, 512);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// A started op can no longer be [`link`](Op::link)ed: linking it runs
    /// it unlinked and fails the ops it was linked with (`InvalidInput`).
    pub fn start(mut self) -> Self {
        if let Stage::New = self.stage {
            if let Poll::Ready(Err(e)) =
                submit(&self.shared, &mut [(self.entry, &mut self.stage)], None)
            {
                self.stage = Stage::Failed(e);
            }
        }
        self
    }

    /// Blocks the calling thread until the op completes.
    pub fn wait(self) -> O {
        block_on(self)
    }

    fn complete(&mut self, res: io::Result<u32>, flags: u32) -> O {
        self.stage = Stage::Finished;
        self.finish
            .take()
            .expect("an op completes once")
            .finish(res, flags)
    }
}

impl<O: 'static> Unpin for Op<O> {}

impl<O: 'static> Future for Op<O> {
    type Output = O;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = &mut *self;
        match std::mem::replace(&mut this.stage, Stage::Finished) {
            Stage::Finished => panic!("an Op polled after it completed"),
            Stage::Failed(e) => Poll::Ready(this.complete(Err(e), 0)),
            stage @ (Stage::New | Stage::Credit(_)) => {
                this.stage = stage;
                // Borrowed, not cloned: the count shares a cache line's
                // traffic with every other op and the thread.
                let shared = &this.shared;
                match submit(
                    shared,
                    &mut [(this.entry, &mut this.stage)],
                    Some(cx.waker()),
                ) {
                    Poll::Ready(Err(e)) => Poll::Ready(this.complete(Err(e), 0)),
                    Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
                }
            }
            Stage::Submitted(ud) => {
                // A waker cloned with the lock released (cloning one is
                // user code), stored on the second pass.
                let mut fresh: Option<Waker> = None;
                loop {
                    let mut st = this.shared.lock();
                    let thread_panicked = st.panicked;
                    let slot = st.slot(ud).expect("a submitted op keeps its slot");
                    match &mut slot.state {
                        SlotState::Done(res, flags) => {
                            let (res, flags) = (*res, *flags);
                            let mut grave = Graveyard::default();
                            st.finish(ud, &mut grave);
                            drop(st);
                            grave.bury();
                            drop(fresh);
                            return Poll::Ready(this.complete(result(res), flags));
                        }
                        SlotState::Waiting(_) if thread_panicked => {
                            drop(st);
                            panicked(this.finish.take())
                        }
                        SlotState::Waiting(waker) => {
                            this.stage = Stage::Submitted(ud);
                            if waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                                drop(st);
                                drop(fresh);
                                return Poll::Pending;
                            }
                            if let Some(new) = fresh.take() {
                                let old = waker.replace(new);
                                drop(st);
                                drop(old);
                                return Poll::Pending;
                            }
                            drop(st);
                            fresh = Some(cx.waker().clone());
                        }
                        SlotState::Free
                        | SlotState::Orphan(..)
                        | SlotState::Reaped
                        | SlotState::Stream { .. } => {
                            unreachable!("a live op's slot is neither free nor orphaned")
                        }
                    }
                }
            }
        }
    }
}

/// A dropped op's finishing closure: a result it will never deliver is
/// turned into its output and dropped, releasing what the result carries
/// (an opened or accepted fd, the buffers).
struct OpRelease<O>(Option<Box<dyn Finish<O>>>);

impl<O: 'static> Release for OpRelease<O> {
    fn release(&mut self, res: i32, flags: u32) {
        if let Some(finish) = self.0.take() {
            drop(finish.finish(result(res), flags));
        }
    }
}

impl<O: 'static> Drop for Op<O> {
    fn drop(&mut self) {
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        let finish = self.finish.take();
        abandon(
            &self.shared,
            stage,
            finish.map(|f| Box::new(OpRelease(Some(f))) as Box<dyn Release>),
        );
    }
}

/// Drops an op or stream at `stage`. Submitted: results that arrived and
/// were never taken are released through `resources` (an fd is closed); if
/// the kernel is done with the request, `resources` are dropped now; if the
/// thread panicked, they are leaked (nothing will reap the CQE); otherwise
/// they move into the slot, released when the last CQE arrives, and a
/// cancellation is queued. Waiting for credit: it leaves the queue, passing
/// on a wake-up it was given. All user code (the resources' drops, wakers)
/// runs after the lock is released.
fn abandon(shared: &Shared, stage: Stage, resources: Option<Box<dyn Release>>) {
    let mut grave = Graveyard::default();
    match stage {
        Stage::Submitted(ud) => {
            let mut st = shared.lock();
            let thread_panicked = st.panicked;
            let slot = st.slot(ud).expect("a submitted op keeps its slot");
            let (arrived, ended) = match &mut slot.state {
                SlotState::Done(res, flags) => (vec![(*res, *flags)], true),
                SlotState::Stream { cqes, ended, .. } => {
                    (std::mem::take(cqes).into_iter().collect(), *ended)
                }
                _ => (Vec::new(), false),
            };
            if ended {
                // The kernel is done: release what arrived, free the slot.
                st.finish(ud, &mut grave);
                drop(st);
                if let Some(resources) = resources {
                    grave.orphans.push((resources, arrived));
                }
                grave.bury();
                return;
            }
            if thread_panicked {
                drop(st);
                std::mem::forget(resources);
                return;
            }
            let resources = resources.expect("a submitted op owns its resources");
            let old = std::mem::replace(&mut slot.state, SlotState::Orphan(resources, arrived));
            grave.states.push(old);
            if slot.cancel == Cancel::None {
                slot.cancel = Cancel::Owed;
                slot.attempts = 1;
                st.cancels.push(ud);
                st.stats.cancels += 1;
                shared.activity.fetch_add(1, Ordering::Relaxed);
            }
            let sleeping = std::mem::take(&mut st.sleeping);
            drop(st);
            if sleeping {
                shared.wake_thread();
            }
        }
        Stage::Credit(ticket) => {
            let mut st = shared.lock();
            let own = st.credit_waiters.remove(&ticket);
            // Woken for credit it will never take: pass the wake-up on.
            let next = match own {
                Some(_) => None,
                None => st.credit_waiters.pop_first().map(|(_, w)| w),
            };
            drop(st);
            if let Some(own) = own {
                run_user(|| drop(own));
            }
            if let Some(next) = next {
                run_user(|| next.wake());
            }
            drop(resources);
        }
        Stage::New | Stage::Failed(_) | Stage::Finished => drop(resources),
    }
    grave.bury();
}

impl<O: 'static> fmt::Debug for Op<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::New => "new",
            Stage::Credit(_) => "waiting for credit",
            Stage::Submitted(_) => "submitted",
            Stage::Failed(_) => "failed",
            Stage::Finished => "finished",
        };
        f.debug_struct("Op")
            .field("opcode", &self.entry.opcode())
            .field("stage", &stage)
            .finish()
    }
}

fn shut_down(panicked: bool) -> io::Error {
    let what = if panicked {
        "the proactor's thread panicked"
    } else {
        "the proactor has shut down"
    };
    io::Error::new(io::ErrorKind::NotConnected, what)
}

/// What an op or stream still in the kernel does when the thread has
/// panicked: its output would carry buffers the kernel may still write, so
/// it leaks them and panics too (as a poisoned lock would).
fn panicked(resources: impl Sized) -> ! {
    std::mem::forget(resources);
    panic!(
        "the Proactor's thread panicked while this op was in flight; \
         its buffers are leaked, not freed, as the kernel may still use them"
    )
}

/// Takes credit for `parts` and queues their entries as one linked chain
/// (each but the last with `IOSQE_IO_LINK`); each part's stage becomes
/// `Submitted`. The first part's stage holds the credit ticket while the
/// budget is spent. `Ready(Err)` if the kernel lacks an op, the chain can
/// never fit the budget, or the Proactor has shut down. Without a `waker`
/// ([`Op::start`]), an op past the budget is left as it was (not waiting
/// for credit: no wake-up could reach it).
fn submit(
    shared: &Arc<Shared>,
    parts: &mut [(Entry, &mut Stage)],
    waker: Option<&Waker>,
) -> Poll<io::Result<()>> {
    submit_with(shared, parts, 1, false, waker)
}

/// [`submit`], each part taking `credits` CQ credits, as a stream (a
/// multishot request) if `stream`.
fn submit_with(
    shared: &Arc<Shared>,
    parts: &mut [(Entry, &mut Stage)],
    credits: u32,
    stream: bool,
    waker: Option<&Waker>,
) -> Poll<io::Result<()>> {
    for (entry, _) in parts.iter() {
        if let Err(unsupported) = shared.probe.check(entry.opcode()) {
            return Poll::Ready(Err(unsupported.into()));
        }
    }
    let n = u32::try_from(parts.len())
        .ok()
        .and_then(|len| len.checked_mul(credits));
    let Some(n) = n.filter(|&n| n <= shared.budget && parts.len() <= shared.sq_entries as usize)
    else {
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a linked chain longer than the Proactor's budget or SQ",
        )));
    };
    // Wakers are cloned before locking (a clone is user code), one per
    // part; the extra ones are dropped after unlocking.
    let mut wakers: Vec<Waker> = match waker {
        Some(w) => (0..parts.len()).map(|_| w.clone()).collect(),
        None => Vec::new(),
    };
    let mut st = shared.lock();
    if st.shutdown {
        let e = shut_down(st.panicked);
        drop(st);
        drop(wakers);
        return Poll::Ready(Err(e));
    }
    let ticket = match *parts[0].1 {
        Stage::Credit(t) => Some(t),
        _ => None,
    };
    let room = st.free.len() + (CANCEL_BIT as usize).saturating_sub(st.slots.len());
    if room < parts.len() {
        drop(st);
        drop(wakers);
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            "the Proactor's slab has no free slot (2^31 requests outstanding)",
        )));
    }
    if st.in_flight.saturating_add(n) > shared.budget {
        let Some(waker) = wakers.pop() else {
            return Poll::Pending;
        };
        let ticket = ticket.unwrap_or_else(|| {
            st.next_ticket += 1;
            st.next_ticket
        });
        let old = st.credit_waiters.insert(ticket, waker);
        *parts[0].1 = Stage::Credit(ticket);
        drop(st);
        drop(old);
        drop(wakers);
        return Poll::Pending;
    }
    let old = ticket.and_then(|ticket| st.credit_waiters.remove(&ticket));
    st.in_flight += n;
    let last = parts.len() - 1;
    for (i, (entry, stage)) in parts.iter_mut().enumerate() {
        let ud = st
            .alloc(wakers.pop(), credits, stream)
            .expect("room for every part was checked");
        let entry = if i < last { entry.link() } else { *entry };
        st.queue.push((entry.user_data(ud), credits));
        **stage = Stage::Submitted(ud);
    }
    if st.gathering {
        shared.more.notify_one();
    }
    shared.activity.fetch_add(1, Ordering::Relaxed);
    let sleeping = std::mem::take(&mut st.sleeping);
    drop(st);
    drop(old);
    if sleeping {
        shared.wake_thread();
    }
    Poll::Ready(Ok(()))
}

/// Turns one CQE of a stream into an item (`None`: skip it).
type Convert<T> = Box<dyn FnMut(io::Result<u32>, u32) -> Option<io::Result<T>> + Send>;

/// A multishot request of a [`Proactor`]: a stream of `io::Result<T>`,
/// one per completion, taken with [`next_item`](Multi::next_item) (a future) or
/// [`wait_next`](Multi::wait_next) (blocking); `None` once the request has
/// ended. Submitted when first polled; dropping it cancels the request, and
/// what the kernel may still write into (a buffer ring) stays with the
/// Proactor until the last CQE.
#[must_use = "a stream does nothing until polled"]
pub struct Multi<T: 'static> {
    shared: Arc<Shared>,
    entry: Entry,
    credits: u32,
    stage: Stage,
    convert: Option<Convert<T>>,
    /// Re-arm the request when it ends with this errno.
    restart_on: Option<i32>,
    /// Re-arm the request when its last CQE is a success: the kernel ended
    /// a multishot request it could not post more CQEs for (a full CQ).
    restart_after_success: bool,
    restart: bool,
}

impl<T: 'static> Multi<T> {
    fn new(
        proactor: &Proactor,
        entry: Entry,
        credits: u32,
        convert: impl FnMut(io::Result<u32>, u32) -> Option<io::Result<T>> + Send + 'static,
    ) -> Self {
        Multi {
            shared: proactor.shared.clone(),
            entry,
            credits,
            stage: Stage::New,
            convert: Some(Box::new(convert)),
            restart_on: None,
            restart_after_success: false,
            restart: false,
        }
    }

    fn failed(proactor: &Proactor, error: io::Error) -> Self {
        let mut multi = Multi::new(proactor, ring_io_ops::Nop::new().build(), 1, |_, _| None);
        multi.stage = Stage::Failed(error);
        multi
    }

    /// The next item, or `None` when the stream has ended.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<T>>> {
        loop {
            match std::mem::replace(&mut self.stage, Stage::Finished) {
                Stage::Finished => return Poll::Ready(None),
                Stage::Failed(e) => return Poll::Ready(Some(Err(e))),
                stage @ (Stage::New | Stage::Credit(_)) => {
                    self.stage = stage;
                    let shared = self.shared.clone();
                    let parts = &mut [(self.entry, &mut self.stage)];
                    match submit_with(&shared, parts, self.credits, true, Some(cx.waker())) {
                        Poll::Ready(Err(e)) => {
                            self.stage = Stage::Finished;
                            return Poll::Ready(Some(Err(e)));
                        }
                        Poll::Ready(Ok(())) | Poll::Pending => return Poll::Pending,
                    }
                }
                Stage::Submitted(ud) => {
                    let shared = self.shared.clone();
                    let mut st = shared.lock();
                    let thread_panicked = st.panicked;
                    let mut grave = Graveyard::default();
                    let slot = st.slot(ud).expect("a submitted stream keeps its slot");
                    let SlotState::Stream { cqes, waker, ended } = &mut slot.state else {
                        unreachable!("a live stream's slot is a stream");
                    };
                    if let Some((res, flags)) = cqes.pop_front() {
                        let last = cqes.is_empty() && *ended;
                        drop(st);
                        self.stage = Stage::Submitted(ud);
                        if last && self.restart_on.is_some_and(|e| res == -e) {
                            self.restart = true;
                            continue;
                        }
                        if last && res >= 0 && self.restart_after_success {
                            // The item is delivered below; then the request
                            // is re-armed.
                            self.restart = true;
                        }
                        let convert = self.convert.as_mut().expect("a live stream converts");
                        match convert(result(res), flags) {
                            Some(item) => return Poll::Ready(Some(item)),
                            None => continue,
                        }
                    }
                    if *ended {
                        st.finish(ud, &mut grave);
                        drop(st);
                        grave.bury();
                        if std::mem::take(&mut self.restart) {
                            shared.lock().stats.stream_restarts += 1;
                            self.stage = Stage::New;
                            continue;
                        }
                        return Poll::Ready(None);
                    }
                    if thread_panicked {
                        drop(st);
                        panicked(self.convert.take())
                    }
                    self.stage = Stage::Submitted(ud);
                    if waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        return Poll::Pending;
                    }
                    // Cloned with the lock released (user code), then
                    // stored if the stream still waits.
                    drop(st);
                    let fresh = cx.waker().clone();
                    let mut st = shared.lock();
                    let old = match st.slot(ud).map(|s| &mut s.state) {
                        Some(SlotState::Stream { waker, cqes, ended }) => {
                            if cqes.is_empty() && !*ended {
                                waker.replace(fresh)
                            } else {
                                // Something arrived meanwhile: take it now.
                                drop(st);
                                drop(fresh);
                                continue;
                            }
                        }
                        _ => Some(fresh),
                    };
                    drop(st);
                    drop(old);
                    return Poll::Pending;
                }
            }
        }
    }

    /// The next item (a future), or `None` when the stream has ended.
    pub fn next_item(&mut self) -> impl Future<Output = Option<io::Result<T>>> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    /// Blocks until the next item, or `None` when the stream has ended.
    pub fn wait_next(&mut self) -> Option<io::Result<T>> {
        block_on(self.next_item())
    }
}

/// A dropped stream's converter: each item it will never deliver is made
/// and dropped, releasing what it carries (an accepted fd, a buffer of the
/// buffer ring).
struct MultiRelease<T>(Convert<T>);

impl<T: 'static> Release for MultiRelease<T> {
    fn release(&mut self, res: i32, flags: u32) {
        drop((self.0)(result(res), flags));
    }
}

impl<T: 'static> Drop for Multi<T> {
    fn drop(&mut self) {
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        let convert = self.convert.take();
        abandon(
            &self.shared,
            stage,
            convert.map(|c| Box::new(MultiRelease(c)) as Box<dyn Release>),
        );
    }
}

impl<T: 'static> fmt::Debug for Multi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multi")
            .field("opcode", &self.entry.opcode())
            .field("credits", &self.credits)
            .finish_non_exhaustive()
    }
}

/// Runs `future` to completion on the calling thread, parking it while the
/// future is pending (a minimal executor for [`Op::wait`] and tests).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// The submitter thread's state.
struct Driver<K: Kernel> {
    /// Leaked if the thread panics: requests may still be in the kernel.
    ring: ManuallyDrop<Ring<K>>,
    shared: Arc<Shared>,
    /// The eventfd the wake-up read targets (kept open while it is armed).
    efd: OwnedFd,
    /// The wake-up read's buffer (lives in the heap while it is armed).
    wake_buf: ManuallyDrop<Box<u64>>,
    wake_armed: bool,
    /// The `user_data` of the armed wake-up read (a random tag each time).
    wake_ud: u64,
    /// The wake-up read's tags.
    tags: Tags,
    /// Cancellations to send again, when, for which request.
    retries: Vec<(Instant, u64)>,
    /// CQ credit of every request in the ring (ops, cancellations, the
    /// wake-up read): the last gate before the SQ, so the CQ cannot
    /// overflow whatever the callers do.
    credit: CqCredit,
    batch: u32,
    delay: Duration,
    spin: Duration,
    /// Entries waiting for credit, in order, with the credits each takes.
    pending: VecDeque<(Entry, u32)>,
    /// `ProactorStats::enters`, published with other updates.
    enters: u64,
    cqes: Vec<Cqe>,
    grave: Graveyard,
}

impl<K: Kernel> Driver<K> {
    fn new(ring: Ring<K>, shared: Arc<Shared>, efd: OwnedFd, config: &ProactorConfig) -> Self {
        let geometry = *ring.kernel().geometry();
        Driver {
            credit: CqCredit::for_geometry(&geometry),
            ring: ManuallyDrop::new(ring),
            shared,
            efd,
            wake_buf: ManuallyDrop::new(Box::new(0)),
            wake_armed: false,
            wake_ud: 0,
            tags: Tags::default(),
            retries: Vec::new(),
            batch: config.batch,
            delay: config.delay,
            spin: config.spin,
            pending: VecDeque::new(),
            enters: 0,
            cqes: Vec::new(),
            grave: Graveyard::default(),
        }
    }

    /// Pushes an entry, submitting to make room if the SQ is full, and takes
    /// its CQ credit; hands it back if there is no credit.
    fn push(&mut self, entry: Entry, credits: u32) -> Result<(), Entry> {
        let mut entry = self
            .credit
            .acquire_n(credits, entry)
            .map_err(|refused| refused.0)?;
        loop {
            // SAFETY: every pointer in `entry` targets memory owned by its
            // op's resources, which stay alive (in the op, or orphaned in the
            // slab, or `wake_buf` here) until its CQE is reaped.
            match unsafe { self.ring.sq().push(entry) } {
                Ok(()) => return Ok(()),
                Err(full) => {
                    entry = full.0;
                    self.submit(false, None);
                }
            }
        }
    }

    /// Submits; with `wait`, waits for a completion, at most `timeout` if
    /// one is given.
    fn submit(&mut self, wait: bool, timeout: Option<Duration>) {
        let res = match (wait, timeout) {
            (false, _) => self.ring.submitter().submit(),
            (true, None) => self.ring.submitter().submit_and_wait(1),
            (true, Some(t)) => self.ring.submitter().submit_and_wait_timeout(1, t),
        };
        // Published with the next stats update (no lock per enter).
        self.enters += 1;
        match res {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => {
                // Nothing to do but retry: the requests in the ring own
                // memory the thread must not abandon. Back off a little.
                eprintln!("ring-proactor: io_uring_enter failed: {e}; retrying");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn arm_wake(&mut self) {
        let ptr: *mut u64 = &mut **self.wake_buf;
        let ud = user_data(WAKE_INDEX, self.tags.next());
        let entry = ring_io_ops::Read::new(Fd(self.efd.as_raw_fd()), ptr.cast(), 8)
            .build()
            .user_data(ud);
        self.wake_armed = self.push(entry, 1).is_ok();
        if self.wake_armed {
            self.wake_ud = ud;
        }
    }

    /// A cancellation of the request `ud`, with the credit it takes.
    fn cancel_entry(ud: u64) -> (Entry, u32) {
        let entry = ring_io_ops::AsyncCancel::new(ud).build();
        (entry.user_data(ud | u64::from(CANCEL_BIT)), 1)
    }

    fn run(mut self) {
        let mut shutdown_sent = false;
        loop {
            #[cfg(test)]
            if self.shared.lock().inject_panic {
                panic!("a panic injected by a test");
            }
            let shutdown;
            {
                let mut st = self.shared.lock();
                let fresh = st.queue.len() as u32;
                if self.delay > Duration::ZERO
                    && !st.shutdown
                    && fresh > 0
                    && (self.pending.len() as u32) < self.batch
                {
                    // A partial batch: give callers `delay` to fill it (a
                    // delay past what an Instant holds waits for a full
                    // batch or shutdown).
                    let deadline = Instant::now().checked_add(self.delay);
                    st.gathering = true;
                    loop {
                        let have = self.pending.len() + st.queue.len();
                        let now = Instant::now();
                        if have as u32 >= self.batch
                            || deadline.is_some_and(|d| now >= d)
                            || st.shutdown
                        {
                            break;
                        }
                        let wait = deadline.map_or(Duration::MAX, |d| d - now);
                        st = match self.shared.more.wait_timeout(st, wait) {
                            Ok((st, _)) => st,
                            Err(poisoned) => poisoned.into_inner().0,
                        };
                    }
                    st.gathering = false;
                }
                let State {
                    queue,
                    cancels: to_cancel,
                    ..
                } = &mut *st;
                // Ops before cancellations: a cancel must meet its target
                // in the kernel, so it never goes ahead of it.
                self.pending.extend(queue.drain(..));
                self.pending
                    .extend(to_cancel.drain(..).map(Self::cancel_entry));
                // Cancellations whose backoff has passed, for requests still
                // in the kernel.
                if !self.retries.is_empty() {
                    let now = Instant::now();
                    let mut i = 0;
                    while i < self.retries.len() {
                        let (due, ud) = self.retries[i];
                        if due > now {
                            i += 1;
                            continue;
                        }
                        self.retries.swap_remove(i);
                        if let Some(slot) = st.slot(ud) {
                            if slot.cancel == Cancel::Retry && slot.armed() {
                                slot.cancel = Cancel::Owed;
                                slot.attempts = slot.attempts.saturating_add(1);
                                self.pending.push_back(Self::cancel_entry(ud));
                                st.stats.cancel_retries += 1;
                            } else if slot.cancel == Cancel::Retry {
                                slot.cancel = Cancel::None;
                            }
                        }
                    }
                }
                shutdown = st.shutdown;
                if shutdown && !shutdown_sent {
                    // Cancel everything in flight not yet asked; ops whose
                    // futures are alive get their CQE (usually ECANCELED).
                    // Requests whose cancellation failed are retried above.
                    let mut n = 0;
                    for (i, slot) in st.slots.iter_mut().enumerate() {
                        if slot.armed() && slot.cancel == Cancel::None {
                            slot.cancel = Cancel::Owed;
                            slot.attempts = 1;
                            self.pending
                                .push_back(Self::cancel_entry(user_data(i as u32, slot.tag)));
                            n += 1;
                        }
                    }
                    st.stats.cancels += n;
                }
            }
            if shutdown && !shutdown_sent {
                shutdown_sent = true;
                if self.wake_armed {
                    // End the wake-up read: the thread writes its own eventfd.
                    self.shared.wake_thread();
                }
            }
            if !self.wake_armed && !shutdown {
                self.arm_wake();
            }
            let mut pushed = 0;
            while !self.pending.is_empty() {
                // A linked chain goes in whole: all its credit, and room in
                // the SQ for all of it (a submit between its members would
                // cut the link).
                let n = 1 + self
                    .pending
                    .iter()
                    .take_while(|(e, _)| e.sqe_flags().contains(SqeFlags::IO_LINK))
                    .count() as u32;
                let need: u32 = self.pending.iter().take(n as usize).map(|(_, c)| c).sum();
                if self.credit.available() < need {
                    // No credit: wait for completions first.
                    break;
                }
                if n > 1 && self.ring.sq().space() < n {
                    self.submit(false, None);
                }
                for _ in 0..n {
                    let (entry, credits) = self.pending.pop_front().expect("counted above");
                    if self.push(entry, credits).is_err() {
                        unreachable!("credit for the whole chain was checked");
                    }
                }
                pushed += n;
                if pushed >= self.batch {
                    pushed = 0;
                    self.submit(false, None);
                }
            }
            let in_ring = self.credit.in_flight();
            if shutdown && in_ring == 0 && self.pending.is_empty() {
                break;
            }
            if self.spin > Duration::ZERO && self.pending.is_empty() && !shutdown {
                // Submit what was pushed and hand out what completed, then
                // poll a while for more work before sleeping
                // (ProactorConfig::spin).
                self.submit(false, None);
                self.reap();
                if self.spin_for_work() {
                    continue;
                }
            }
            // Sleep only if nothing arrived meanwhile; callers that queue
            // work after this see `sleeping` and write the eventfd. Blocked
            // on credit, wait for a completion (there are `in_ring` coming).
            // With cancellations to retry, sleep no longer than their
            // backoff.
            let wait = {
                let mut st = self.shared.lock();
                st.stats.max_in_ring = st.stats.max_in_ring.max(in_ring);
                st.stats.enters = self.enters;
                let idle = st.queue.is_empty() && st.cancels.is_empty();
                st.sleeping = idle && self.wake_armed;
                (st.sleeping || !self.pending.is_empty() || (shutdown && idle)) && in_ring > 0
            };
            let timeout = self
                .retries
                .iter()
                .map(|&(due, _)| due)
                .min()
                .map(|due| due.saturating_duration_since(Instant::now()));
            if wait && timeout == Some(Duration::ZERO) {
                self.submit(false, None);
            } else {
                self.submit(wait, timeout);
            }
            self.reap();
        }
        let mut st = self.shared.lock();
        st.stats.enters = self.enters;
        st.stopped = true;
        st.sleeping = false;
        st.stats.cq_overflow = self.ring.overflow();
        drop(st);
        self.shared.stopped.notify_all();
        // SAFETY: the wake-up read has completed (no credit is held, so no
        // request is in the ring): the kernel no longer writes the buffer.
        unsafe { ManuallyDrop::drop(&mut self.wake_buf) };
        // SAFETY: as above, no request is in the ring; `self.ring` is not
        // used again (`self` is dropped next, and a ManuallyDrop is not
        // dropped with it). On a panic this is never reached: leaked.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
    }

    /// Polls, for up to `spin`, for callers' work: true as soon as some is
    /// queued (after a moment for the caller to queue the rest of its
    /// batch); false at once if completions are ready (or task work the
    /// kernel wants run, which the wait that follows runs), or once `spin`
    /// has passed.
    fn spin_for_work(&mut self) -> bool {
        let seen = self.shared.activity.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut turns = 0u32;
        loop {
            let now = self.shared.activity.load(Ordering::Relaxed);
            if now != seen {
                let mut last = now;
                for _ in 0..64 {
                    std::hint::spin_loop();
                    let now = self.shared.activity.load(Ordering::Relaxed);
                    if now == last {
                        break;
                    }
                    last = now;
                }
                return true;
            }
            if !self.ring.cq().is_empty()
                || self
                    .ring
                    .kernel()
                    .sq_flags(FlagsRead::Load)
                    .intersects(SqFlags::TASKRUN | SqFlags::CQ_OVERFLOW)
            {
                return false;
            }
            turns += 1;
            if turns % 64 == 0 && start.elapsed() >= self.spin {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Takes every CQE and dispatches it. A CQE is taken for a request's
    /// only if its `user_data` names a request in the kernel (slot index
    /// and tag) or the armed wake-up read; anything else (a forged or stray
    /// CQE) is counted in `unexpected_cqes` and changes nothing, not even
    /// the credit.
    fn reap(&mut self) {
        self.cqes.clear();
        self.cqes.extend(self.ring.cq());
        // The CQ view is dropped: the head is handed back, so the credit of
        // these CQEs may return.
        if self.cqes.is_empty() {
            return;
        }
        let mut st = self.shared.lock();
        st.sleeping = false;
        let mut released = 0;
        let now = Instant::now();
        for cqe in &self.cqes {
            let ud = cqe.user_data();
            let (res, flags) = (cqe.res(), cqe.flags().bits());
            if self.wake_armed && ud == self.wake_ud {
                self.wake_armed = false;
                let _ = self.credit.release(1);
                continue;
            }
            let low = ud as u32;
            if low != WAKE_INDEX && low & CANCEL_BIT != 0 {
                // A cancellation's CQE: its target's slot still owes it.
                let target = ud & !u64::from(CANCEL_BIT);
                let slot = match st.slot(target) {
                    Some(slot) if slot.cancel == Cancel::Owed => slot,
                    _ => {
                        st.stats.unexpected_cqes += 1;
                        continue;
                    }
                };
                let _ = self.credit.release(1);
                slot.cancel = Cancel::None;
                if let SlotState::Reaped = slot.state {
                    st.finish(target, &mut self.grave);
                } else if res < 0 && slot.armed() {
                    // The kernel did not cancel it (ENOENT: not found yet,
                    // or completing; EALREADY: running) and its CQE has not
                    // come: ask again after a backoff.
                    slot.cancel = Cancel::Retry;
                    let shift = slot.attempts.saturating_sub(1).min(6);
                    let backoff = (RETRY_FIRST * (1 << shift)).min(RETRY_MAX);
                    self.retries.push((now + backoff, target));
                }
                continue;
            }
            let Some(slot) = st.slot(ud).filter(|slot| slot.armed()) else {
                st.stats.unexpected_cqes += 1;
                continue;
            };
            // Only a multishot request posts CQEs with IORING_CQE_F_MORE.
            let last = !slot.stream || ring_io_core::cqe_returns_credit(flags);
            let credits = slot.credits;
            if last {
                let _ = self.credit.release(credits);
            }
            let orphan = matches!(slot.state, SlotState::Orphan(..));
            if last && !orphan {
                released += std::mem::take(&mut slot.held);
            }
            st.stats.completed += 1;
            let slot = st.slot(ud).expect("looked up above");
            match std::mem::replace(&mut slot.state, SlotState::Free) {
                SlotState::Waiting(waker) => {
                    slot.state = SlotState::Done(res, flags);
                    self.grave.wakers.extend(waker);
                }
                SlotState::Stream {
                    mut cqes,
                    mut waker,
                    ended,
                } => {
                    cqes.push_back((res, flags));
                    self.grave.wakers.extend(waker.take());
                    slot.state = SlotState::Stream {
                        cqes,
                        waker,
                        ended: ended || last,
                    };
                }
                SlotState::Orphan(resources, mut cqes) => {
                    cqes.push((res, flags));
                    if last {
                        // The kernel is done with them: released (after
                        // unlocking). The slot and its credit wait for the
                        // cancellation's CQE if it is still owed.
                        self.grave.orphans.push((resources, cqes));
                        slot.state = SlotState::Reaped;
                        st.finish(ud, &mut self.grave);
                        st.stats.orphans_freed += 1;
                    } else {
                        // More CQEs of a dropped stream are coming.
                        slot.state = SlotState::Orphan(resources, cqes);
                    }
                }
                other => slot.state = other,
            }
        }
        st.release_credit(released, &mut self.grave.wakers);
        st.stats.cq_overflow = self.ring.overflow();
        drop(st);
        // User code (drops of what dropped ops owned, wakers), unlocked.
        self.grave.bury();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring_io_ops::KernelVersion;
    use std::os::fd::FromRawFd;

    /// A Proactor's shared state with no thread, over a probe that supports
    /// only `ops`.
    fn shared_with(ops: &[u8], budget: u32) -> Arc<Shared> {
        let null = || File::open("/dev/null").unwrap();
        Arc::new(Shared {
            state: CacheLine(Mutex::new(State::default())),
            more: Condvar::new(),
            stopped: Condvar::new(),
            wake: null(),
            probe: Probe::from_supported(ops, Some(KernelVersion::new(5, 10, 0))),
            budget,
            stream_credit: 1,
            sq_entries: 4,
            ring_fd: OwnedFd::from(null()),
            fixed: None,
            activity: AtomicU64::new(0),
        })
    }

    fn op(shared: &Arc<Shared>, entry: Entry) -> Op<io::Result<u32>> {
        Op {
            shared: shared.clone(),
            entry,
            stage: Stage::New,
            finish: Some(Box::new(|res: io::Result<u32>, _| res)),
        }
    }

    #[test]
    fn a_panic_of_the_thread_fails_waiters_and_leaks_what_the_kernel_may_use() {
        let p = Proactor::new(ProactorConfig::new(8)).expect("a proactor");
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two fds pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 returned two new fds that nothing else owns.
        let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let r = Arc::new(r);
        let mut cx = Context::from_waker(Waker::noop());
        // Two reads in the kernel that nothing will complete.
        let mut waited = p.read(&r, Vec::with_capacity(8), u64::MAX);
        let mut dropped = p.read(&r, Vec::with_capacity(8), u64::MAX);
        assert!(Pin::new(&mut waited).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut dropped).poll(&mut cx).is_pending());
        while p.stats().max_in_ring < 3 {
            thread::sleep(Duration::from_millis(1));
        }
        p.shared.lock().inject_panic = true;
        p.shared.wake_thread();
        while !p.shared.lock().panicked {
            thread::sleep(Duration::from_millis(1));
        }
        // The waiter panics instead of hanging, and leaks its buffer (and
        // so its clone of the file).
        let panic = std::panic::catch_unwind(AssertUnwindSafe(|| waited.wait()))
            .expect_err("waiting on an op of a dead thread panics");
        let msg = panic.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(msg.contains("thread panicked"), "{msg}");
        // A dropped op leaks its resources too: the kernel may still use them.
        drop(dropped);
        assert_eq!(Arc::strong_count(&r), 3, "both reads' resources are leaked");
        // New ops fail at once with a clear error.
        let err = p.nop().wait().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert_eq!(err.to_string(), "the proactor's thread panicked");
        // Dropping the Proactor does not hang.
        drop(p);
    }

    #[test]
    fn an_op_the_kernel_lacks_fails_with_unsupported_and_queues_nothing() {
        let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 2);
        let entry = ring_io_ops::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build();
        let err = op(&shared, entry).wait().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert_eq!(
            err.to_string(),
            "Socket needs Linux 5.19; this kernel is 5.10"
        );
        let st = shared.lock();
        assert!(st.queue.is_empty());
        assert_eq!(st.in_flight, 0);
    }

    #[test]
    fn ops_past_the_budget_wait_for_credit_and_are_woken_in_order() {
        let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 2);
        let mut cx = Context::from_waker(Waker::noop());
        let nop = || op(&shared, ring_io_ops::Nop::new().build());
        let mut ops: Vec<_> = (0..4).map(|_| nop()).collect();
        for op in &mut ops {
            assert!(Pin::new(op).poll(&mut cx).is_pending());
        }
        {
            let st = shared.lock();
            assert_eq!(st.queue.len(), 2, "the budget is 2");
            assert_eq!(st.in_flight, 2);
            assert_eq!(st.credit_waiters.len(), 2);
        }
        // A dropped waiter leaves the queue.
        drop(ops.pop());
        assert_eq!(shared.lock().credit_waiters.len(), 1);
        // A chain of two waits for two credits.
        let mut chain = nop().link(nop());
        assert!(Pin::new(&mut chain).poll(&mut cx).is_pending());
        assert_eq!(shared.lock().credit_waiters.len(), 2);
        // The thread reaps both queued ops: the two waiters are woken,
        // first come first.
        let mut wakers = Vec::new();
        shared.lock().release_credit(2, &mut wakers);
        assert_eq!(wakers.len(), 2);
        assert!(shared.lock().credit_waiters.is_empty());
        // The waiting op takes its credit when polled again.
        assert!(Pin::new(&mut ops[2]).poll(&mut cx).is_pending());
        assert_eq!(shared.lock().queue.len(), 3);
        drop(chain);
    }

    #[test]
    fn a_cancellation_the_kernel_refuses_is_sent_again_until_one_succeeds() {
        use ring_io_core::{Geometry, SimCompletion, SimConfig};
        let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 4);
        // A request the kernel keeps (it posts nothing), dropped: its first
        // cancellation fails with ENOENT (Linux 6.1 answers so while the
        // request is still armed), the second succeeds.
        let mut op = op(&shared, ring_io_ops::Nop::new().build());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut op).poll(&mut cx).is_pending());
        let Stage::Submitted(ud) = op.stage else {
            panic!("submitted")
        };
        let cancel = ud | u64::from(CANCEL_BIT);
        let g = Geometry::new(
            8,
            16,
            ring_io_sys::SetupFlags::empty(),
            ring_io_sys::Features::NODROP,
        )
        .unwrap();
        let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
        let sim = ring.sim_mut().inner_mut();
        sim.script(ud, []);
        sim.script(cancel, [SimCompletion::new(-libc::ENOENT, 0)]);
        sim.script(cancel, [SimCompletion::new(0, 0)]);
        let efd = OwnedFd::from(File::open("/dev/null").unwrap());
        let driver = Driver::new(ring, shared.clone(), efd, &ProactorConfig::new(8));
        let thread = thread::spawn(move || driver.run());
        drop(op);
        let deadline = Instant::now() + Duration::from_secs(5);
        while shared.lock().stats.cancel_retries < 1 {
            assert!(
                Instant::now() < deadline,
                "the cancellation was not retried"
            );
            thread::sleep(Duration::from_millis(1));
        }
        // The second one succeeded: no third (the backoff is 2 ms).
        thread::sleep(Duration::from_millis(30));
        let stats = shared.lock().stats;
        assert_eq!((stats.cancels, stats.cancel_retries), (1, 1), "{stats:?}");
        assert_eq!(stats.unexpected_cqes, 0);
        // The request never ends: stop the thread (its ring is leaked).
        shared.lock().inject_panic = true;
        assert!(thread.join().is_err());
    }

    #[test]
    fn a_chain_longer_than_the_budget_fails_at_once() {
        let shared = shared_with(&[ring_io_sys::IORING_OP_NOP], 1);
        let (a, b) = op(&shared, ring_io_ops::Nop::new().build())
            .link(op(&shared, ring_io_ops::Nop::new().build()))
            .wait();
        assert_eq!(a.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(b.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(shared.lock().queue.is_empty());
    }
}
