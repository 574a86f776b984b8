//! [`Proactor`]: setup, shutdown, and the helpers every op is built with.

#[cfg(doc)]
use crate::Op;
use std::fmt;
use std::fs::File;
use std::io::{self};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
#[cfg(doc)]
use {
    crate::{BufResult, FixedBuf, IntoOpFd, IoBuf, IoBufMut, Link, Multi, Slice},
    ring_io_driver::Ring,
};

use ring_io_driver::{Probe, SetupError};

use crate::config::*;
use crate::drive::Turned;
use crate::driver::*;
use crate::fixed::Pool;
use crate::state::*;

/// How long dropping a [`Proactor`] waits for the last CQEs before it
/// leaves its thread to finish alone.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A safe, owned-buffer, future-based io_uring driver: one [`Ring`], driven
/// by whichever thread waits on it, and futures for the operations.
///
/// # How it works
///
/// [`Proactor::new`] sets up a [`Ring`] and a fallback thread. Every
/// operation (`proactor.read(fd, buf, offset)`, ...) returns an
/// [`Op`], a `Future` that works on any executor (it needs nothing but the
/// std [`Waker`]) and has a blocking [`Op::wait`]. Like every Rust future it
/// does nothing until first polled (or [`Op::start`]ed, which queues it at
/// once, so ops made in a row run together); then it takes a *slot* in the
/// Proactor's slab (the SQE's `user_data` is the slot index plus a random
/// 32-bit tag, new for every request) and queues its entry for the driver.
///
/// # Who drives the ring
///
/// A *ring turn* takes every queued entry (one lock), pushes them, submits
/// them with one `io_uring_enter` (a batch is everything queued since the
/// last enter, cut at [`ProactorConfig::batch`], optionally held up to
/// [`ProactorConfig::submit_delay`] to fill), waits there for a completion
/// if there is nothing else to do, and dispatches each CQE to its slot,
/// waking the slot's `Waker`. One thread at a time runs turns: the holder
/// of the Proactor's *driver token*.
///
/// - A thread about to block on the Proactor ([`Op::wait`], [`block_on`],
///   [`Multi::wait_next`], [`Proactor::park`]) takes the token if it is
///   free and runs turns itself until its future is ready: its op is
///   pushed, submitted, completed and handed back on its own thread, with
///   no wake-up of another thread (one `io_uring_enter` per batch).
///   [`Proactor::drive`] runs one turn without blocking, for executors that
///   integrate the Proactor into their own loop. Once a [`block_on`]'s
///   turns find nothing but its own work (16 in a row), the ops its future
///   submits go straight into the SQ and its turn takes the Proactor's
///   lock only to reap, until another thread's work or a cancellation
///   needs its turn to look ([`ProactorStats::holder_pushes`] counts
///   them).
/// - A future may also block in user code right after it submitted an op,
///   before its thread turns (on another thread that waits for that op):
///   the fallback thread, woken to watch, takes the ring if that caller
///   has not driven within a second, so the op reaches the kernel (it
///   waits that long so that a caller merely slow, on a loaded machine,
///   keeps its completions on its own thread). With a tokio drive task
///   attached, the fallback thread wakes that task for the op instead
///   (or, if the token's holder is stuck in user code, takes the ring
///   over for a turn, as below).
/// - The fallback thread drives only work nobody else drives: ops polled
///   by an executor that never blocks on the Proactor (tokio's, say), a
///   cancellation of a dropped op, work left when the last waiting caller
///   returned. After a caller drove, it waits 5 ms without one before it
///   takes over, so a caller that drives again and again never wakes it;
///   otherwise it is woken once per change of driver, never per batch.
///   While a caller holds the ring (an idle server's `block_on`, waiting in
///   the kernel), it wakes only every 50 ms, to see that the holder is not
///   stuck in user code.
///   With the `tokio` feature, `ring_io_proactor::tokio::spawn_driver`
///   makes a task of the tokio runtime drive instead: the fallback thread
///   then stays out (unless that task gets stuck in user code, below).
/// - No user code holds the ring up. A holder runs user code between its
///   turns: the future a [`block_on`] polls, the wakers and the drops its
///   turn collected. Meanwhile a thread about to block on the Proactor
///   takes the token over, and so does the fallback thread (once the
///   holder has run user code for 50 ms) for work nobody waits on; the
///   holder, back from its user code, asks for the token again if it
///   still needs it ([`ProactorStats::token_takeovers`] counts them). So
///   a future that computes for a second inside `block_on`, or a waker
///   that blocks, delays only its own task.
/// - A driver waiting in the kernel keeps a read of an eventfd armed on the
///   ring; a thread that queues work meanwhile writes the eventfd (one
///   write per sleep, not per op), and so does a [`block_on`] waker or an
///   [`Unparker`] woken from another thread.
///
/// Any thread may submit, so the ring is set up without `COOP_TASKRUN`
/// (the kernel would leave a request's task work on the thread that
/// submitted it, unwoken, even after that thread stopped driving) and
/// without a registered ring fd (a per-thread index).
///
/// [`block_on`]: crate::block_on
/// [`Unparker`]: crate::Unparker
///
/// # Owned buffers
///
/// Each op takes its buffers by value and gives them back with the result:
/// `read` returns `(io::Result<usize>, B)` (a [`BufResult`]), for any
/// buffer `B` that is an [`IoBufMut`] (`Vec<u8>`, `Box<[u8]>`,
/// [`FixedBuf`], a [`Slice`] of one, ...); writes take any [`IoBuf`] (also
/// `String`, `&'static str`, `&'static [u8]`). A read fills the buffer
/// from its start, up to its [`bytes_total`](IoBuf::bytes_total) (a
/// `Vec`'s capacity), then marks the `n` bytes read initialized (a `Vec`'s
/// length becomes `max(len, n)`); a write sends the
/// [`bytes_init`](IoBuf::bytes_init) bytes from its start (a `Vec`'s
/// length). A read with no room fails with `InvalidInput`, never `Ok(0)`.
/// The [`buf`](crate::buf) module has the rules and examples.
///
/// # Files
///
/// An op names its file by number, and the kernel resolves the number when
/// it issues the request (for a linked op, only after the ops before it).
/// So ops take files as [`IntoOpFd`], which keeps the file open until the
/// kernel is done: `&Arc<File>` (the op holds a clone), a file by value
/// (closed when the op finishes), or a handle of [`fs`](crate::fs) or
/// [`net`](crate::net) by reference (`&fs::File`, `&net::TcpStream`, ...).
/// A plain `&std::fs::File` does not compile.
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
///   slot, and the driver asks the kernel to cancel the request
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
/// Neither ring size limits how many ops are in flight, so requests that
/// wait for readiness (an idle connection's receive, an accept, a poll)
/// never stop new work: a server holds as many idle connections as it
/// has file descriptors. What bounds memory is
/// [`ProactorConfig::max_in_flight`] (default
/// [`DEFAULT_MAX_IN_FLIGHT`](crate::DEFAULT_MAX_IN_FLIGHT), 2^20): an op
/// past it stays pending (its `wait()` blocks) until an earlier one
/// completes, first come first served; nothing fails. The credit a
/// completion gives back is granted to the first op waiting, which is
/// woken to take it: an op started meanwhile cannot (a waker that starts
/// an op when woken once starved its own task that way); if the woken op
/// is never polled again (a future kept and forgotten), its grant lapses
/// after [`CREDIT_LAPSE`](crate::CREDIT_LAPSE) and the next is woken. A full SQ is
/// submitted to make room. When completions outrun the CQ, the kernel keeps
/// the rest in its overflow backlog (`IORING_FEAT_NODROP`, every supported
/// kernel) and flags it; the driver then pushes nothing new until it has
/// reaped, its next wait flushing the backlog into the CQ
/// ([`ProactorStats::overflow_pauses`] counts those turns). No completion
/// is lost, unless the kernel cannot allocate its backlog entry (memory
/// exhausted), which [`ProactorStats::cq_overflow`] would count.
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
/// [`Multi::next_item`] (a future), [`Multi::wait_next`], or as a
/// `futures_core::Stream`. The multishot
/// recv selects from a buffer ring the stream owns and copies each chunk
/// out, so its buffer goes back to the kernel at once.
///
/// # Completions are input
///
/// Code in the process that can name the ring's fd can post CQEs into it
/// (`IORING_OP_MSG_RING` from another ring), though only with `unsafe`
/// (pushing any entry is; see the crate docs' Soundness section): a bug
/// there, not safe code, is what this guards against. So a CQE is taken for a
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
/// run with no lock of the Proactor held and after the ring turn that
/// completed them, on the driving thread: they may use the Proactor, even
/// block on an op (the driving thread takes its token again); a waker or a
/// drop that panics ends that call only: the op still completes, and other
/// ops are not affected.
///
/// # Clones, and the handles of `fs` and `net`
///
/// A `Proactor` is a handle: [`clone`](Clone::clone) is cheap (a
/// reference count), and every clone is the same Proactor (one ring, one
/// slab, one fallback thread). So a task, a thread or a typed handle
/// ([`fs::File`](crate::fs::File), [`net::TcpStream`](crate::net::TcpStream),
/// ...) keeps a clone of its own, and nothing needs an `Arc<Proactor>`.
/// The Proactor shuts down when its last clone is dropped (see
/// [Shutdown](#shutdown)): a handle of `fs` or `net` keeps it running for
/// as long as the handle lives. Ops and streams are not clones: one alive
/// after the last clone ends as the shutdown says. An op that makes a
/// handle (an accept, a connect, an open) holds a clone until it completes,
/// or, dropped in flight, until its last CQE; the last clone may then be
/// dropped on the thread that drives, which finishes the shutdown there.
///
/// The same handles run on a [`LocalProactor`](crate::LocalProactor)
/// (`File<LocalProactor>`: see [`Runtime`](crate::Runtime)), whose clones
/// are `Rc`s; there an op that makes a handle holds it weakly, as nothing
/// but its own thread could finish a shutdown.
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, net::UdpSocket};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// // The socket holds a clone: it can move to another thread alone.
/// let socket = UdpSocket::bind(&p, "127.0.0.1:0")?;
/// drop(p);
/// let to = socket.local_addr()?;
/// std::thread::spawn(move || socket.send_to("hi", to).wait().0).join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Shutdown
///
/// Dropping the last clone of the [`Proactor`] wakes every op waiting for credit (each then
/// fails with `ErrorKind::NotConnected`), asks every request still in
/// flight to cancel (retrying as above), frees the buffers of dropped ops
/// as their CQEs arrive (driving the ring itself if nobody else does), and
/// joins the fallback thread once every CQE has come. Ops
/// still alive complete with their kernel result (usually `ECANCELED`); ops
/// polled after that fail with `ErrorKind::NotConnected`. Dropping waits
/// at most 2 seconds: if the kernel has not ended every request by then (a
/// blocking read of a device that ignores cancellation, say), it returns
/// and leaves the fallback thread to finish alone, still freeing each
/// buffer only after its CQE.
///
/// # Unsupported ops
///
/// The Proactor probes the kernel once; an op the kernel lacks completes at
/// once with an error of kind `Unsupported` wrapping [`Unsupported`]
/// (naming the op and the kernel it needs).
///
/// [`Unsupported`]: ring_io_ops::Unsupported
///
/// # Limits (today)
///
/// - Speed: a caller that waits drives the ring with one `io_uring_enter`
///   per batch, but the bookkeeping around each op (slot, queue, dispatch,
///   wakers) costs about 700 user-space instructions per NOP at 32 in
///   flight (1200 one at a time), ten to twenty times a raw [`Ring`]'s; a
///   [`LocalProactor`](crate::LocalProactor), for one thread, about 600
///   (the project's benchmarks compare both with tokio-uring, monoio and
///   compio). Work driven by the fallback thread still crosses threads
///   twice per batch; [`ProactorConfig::spin`] trades a core for it.
/// - One mutex guards the slab and the queue; an op takes it once, to be
///   submitted (the driver takes it twice per turn: to push, and to
///   dispatch what completed). A completed op finds its result, and gives
///   its slot back, without it.
/// - Who submits: the kernel ties a request to the thread that submitted
///   it, and the thread that drives submits every op queued meanwhile, its
///   own or not. When that thread exits, the kernel fails the requests it
///   submitted that are still waiting (for readiness, or queued for its
///   io-wq workers) with `ECANCELED` as they become ready, without running
///   them. The Proactor then submits them again, so a short-lived thread
///   that calls `wait()` does not cancel a server's idle receives
///   ([`ProactorStats::resubmitted`] counts them). Not submitted again,
///   and so ended with `ECANCELED`: members of linked chains
///   ([`Op::link`](crate::Op::link)), `connect` and timeouts (which cannot simply run
///   again), and requests made before a [`cancel_fd`](Proactor::cancel_fd)
///   that was still to come (the `ECANCELED` may be its). The kernel runs
///   no more of a chain whose submitter exited, nor fires its linked
///   timeout's cancellation, so the exit cancels the chains the thread
///   submitted that are still in the kernel: a read bounded by
///   [`link_timeout`](Proactor::link_timeout) still ends. Where that
///   matters, drive from threads that outlive the ops (the thread of an
///   executor, or one that parks on the Proactor). (A Proactor's own
///   fallback thread exits when that Proactor shuts down: a waker it runs
///   that waits on another Proactor's op drives that one from it.)
///
/// # If a ring turn panics
///
/// A panic of a ring turn is a bug (a broken invariant), but it does not
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
/// use ring_io_proactor::{CURRENT_POSITION, Proactor, ProactorConfig};
///
/// let proactor = Proactor::new(ProactorConfig::new(32))?;
/// let (mut tx, rx) = std::os::unix::net::UnixStream::pair()?;
/// // Ops keep their files open until the kernel is done: share them by `Arc`.
/// let rx = Arc::new(rx);
/// tx.write_all(b"hello")?;
/// // The buffer moves in, and comes back with the result.
/// let (n, buf) = proactor.read(&rx, Vec::with_capacity(16), CURRENT_POSITION).wait();
/// assert_eq!(n?, 5);
/// assert_eq!(buf, b"hello");
/// proactor.nop().wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Proactor {
    pub(crate) shared: Arc<Shared>,
    /// Shared by the clones: the last one dropped shuts the Proactor down.
    #[allow(dead_code, reason = "held for its drop")]
    owner: Arc<Owner>,
}

/// What the last clone of a [`Proactor`] shuts down: its fallback thread
/// (and, through it, the ring).
struct Owner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A setup error as the Proactor's caller can act on it: an oversize ring
/// names the size to ask [`ProactorConfig::new`] for (the Proactor has no
/// `Builder::clamp`); the rest stays as the builder said (an `EPERM`
/// explains io_uring disabled by sysctl, seccomp or a container).
pub(crate) fn proactor_setup_error(e: SetupError) -> SetupError {
    match e {
        SetupError::Size(size @ ring_io_core::GeometryError::TooLarge { max, .. }) => {
            SetupError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid ring size: {size}: ask ProactorConfig::new (and cq_entries) \
                     for at most {max} entries"
                ),
            ))
        }
        e => e,
    }
}

impl Proactor {
    /// A Proactor over `shared` with no fallback thread: the unit tests'
    /// (whose driver is a simulated ring, driven by the thread that waits).
    #[cfg(test)]
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Proactor {
        Proactor {
            owner: Arc::new(Owner {
                shared: shared.clone(),
                thread: None,
            }),
            shared,
        }
    }

    /// Sets up a ring as `config` says and starts the fallback thread.
    ///
    /// The error says why, as [`Builder::build`](ring_io_driver::Builder::build)'s
    /// does: an `EPERM` explains io_uring disabled by sysctl (with its
    /// value), seccomp or a container; an oversize ring (more than 32768
    /// entries) names the maximum to ask [`ProactorConfig::new`] for. `?` in
    /// a function returning `io::Result` converts it, keeping the kernel's
    /// error code ([`raw_os_error()`](io::Error::raw_os_error)).
    pub fn new(config: ProactorConfig) -> Result<Proactor, SetupError> {
        // SAFETY: eventfd(2) takes no pointers; the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(SetupError::Io(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let driver_efd = efd.try_clone().map_err(SetupError::Io)?;
        // The fixed buffers first: the ring that has them registered is
        // closed (or leaked) before the last `Arc` of the pool goes.
        let pool = config
            .fixed
            .map(|(n, size)| Pool::new(n, size))
            .transpose()?;
        let ring = config.builder().build().map_err(proactor_setup_error)?;
        if let Some(pool) = &pool {
            // SAFETY: the pool's memory stays allocated while the ring
            // lives: the shared state holds the pool, and its driver closes
            // the ring (or leaks it, after a panic) before the state goes.
            unsafe { ring.registrar().register_buffers(&pool.iovecs()) }.map_err(SetupError::Io)?;
        }
        let probe = ring.probe().map_err(SetupError::Io)?;
        // The ring's fd, duplicated (the Proactor's builder never asks for
        // REGISTERED_FD_ONLY, so there is one).
        let ring_fd = ring
            .fd()
            .ok_or_else(|| io::Error::other("the Proactor's ring has no fd"))
            .and_then(|fd| fd.try_clone_to_owned())
            .map_err(SetupError::Io)?;
        let cq = ring.params().cq_entries();
        let budget = config.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        let mut state = State::default();
        state.stats.cq_entries = cq;
        state.budget = budget;
        let sq_entries = ring.params().sq_entries();
        let driver: Box<dyn Drive> = Box::new(Driver::new(ring, driver_efd, &config));
        let shared = Arc::new(Shared {
            state: CacheLine(Mutex::new(state)),
            driver: DriverCell::new(Some(driver)),
            more: Condvar::new(),
            stopped: Condvar::new(),
            idle: Condvar::new(),
            wake: File::from(efd),
            probe,
            budget,
            sq_entries,
            ring_fd,
            fixed: pool,
            activity: AtomicU64::new(0),
            cells: Arc::new(crate::cells::Cells::new()),
            panicked: std::sync::atomic::AtomicBool::new(false),
            tenure: AtomicU64::new(0),
            handover: crate::drive::Handover::new(),
            no_thread_registration: std::sync::atomic::AtomicBool::new(false),
            direct: std::sync::atomic::AtomicBool::new(false),
        });
        let fallback = shared.clone();
        let thread = thread::Builder::new()
            .name("ring-proactor".into())
            .spawn(move || crate::drive::fallback(fallback));
        match thread {
            Ok(thread) => Ok(Proactor {
                owner: Arc::new(Owner {
                    shared: shared.clone(),
                    thread: Some(thread),
                }),
                shared,
            }),
            Err(e) => {
                // Nothing was pushed: the ring can be closed at once.
                // SAFETY: no other thread can reach `shared`: the
                // fallback thread was not spawned.
                let driver = unsafe { shared.driver.with(Option::take) };
                if let Some(driver) = driver {
                    driver.close();
                }
                Err(SetupError::Io(e))
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
}

impl fmt::Debug for Proactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proactor")
            .field("max_in_flight", &self.shared.budget)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.shutdown = true;
        // (The eventfd is written below.)
        st.set_direct(&self.shared, false);
        // Ops waiting for credit will never get it: each is woken, and
        // fails with `NotConnected` when polled.
        let mut wakers: Vec<Waker> = std::mem::take(&mut st.credit_waiters)
            .into_values()
            .map(|(w, _)| w)
            .collect();
        // An external driver detaches, leaving the shutdown to this thread
        // and the fallback.
        wakers.extend(st.external_waker());
        // Dropped by code the driver runs on this thread (a user's Drop or
        // waker): the driver finishes the shutdown when that returns.
        let driving_here = st.owner == Some(thread::current().id());
        drop(st);
        wake_all(&mut wakers);
        self.shared.wake_driver();
        self.shared.idle.notify_all();
        if driving_here {
            return;
        }
        // Drive the shutdown here if nobody else does, or wait for the
        // driver to see every request's last CQE; a bounded time: a request
        // the kernel will not cancel (a blocking read of a device, say) must
        // not block the caller. The fallback thread then finishes alone,
        // freeing what the kernel used only after its CQE.
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut stopped = false;
        while !stopped {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if crate::drive::acquire(&self.shared) {
                let mut kept = true;
                while !stopped && kept && Instant::now() < deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match crate::drive::turn(&self.shared, Wait::For(Some(left)), false) {
                        Turned::Stopped => stopped = true,
                        Turned::Lost => kept = false,
                        Turned::Kept => {}
                    }
                }
                if kept {
                    crate::drive::release(&self.shared, false);
                }
            } else {
                let st = self.shared.lock();
                if st.stopped {
                    break;
                }
                let (st, _) = match self
                    .shared
                    .stopped
                    .wait_timeout(st, (deadline - now).min(Duration::from_millis(10)))
                {
                    Ok(woken) => woken,
                    Err(poisoned) => poisoned.into_inner(),
                };
                stopped = st.stopped;
            }
        }
        let stopped = stopped || self.shared.lock().stopped;
        if let Some(thread) = self.thread.take() {
            if stopped && thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
