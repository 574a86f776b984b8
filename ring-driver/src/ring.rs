//! `Ring`: one io_uring instance for one thread at a time, with its
//! submission and completion queue views and its submitter.
//!
//! Every index decision is ring-core's: [`ring_io_core::SqState`] says
//! which slot an entry goes to and which tail to publish,
//! [`ring_io_core::CqState`] which CQE to read and which head to hand
//! back, [`ring_io_core::decide_enter`] whether and how to enter the kernel.
//! This module moves the bytes and makes the calls: it is the one caller
//! of the [`Kernel`] trait's `unsafe` methods, and keeps their contracts
//! with ring-core's indices (each call says why it holds).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use ring_io_core::{CoreError, EnterInput, FlagsRead, decide_enter, decide_submit};
use ring_io_ops::{Entry, Entry128};
use ring_io_sys::{CqeFlags, Errno, SetupFlags, io_uring_cqe, io_uring_cqe32};

use crate::error::{SetupError, os};
use crate::kernel::{Kernel, Linux, WaitArgs, WrongRing, timespec};
use crate::probe::Probe;
use crate::register::Registrar;
use crate::setup::{Builder, Params};

/// A completion: what the kernel posted for a request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cqe {
    raw: io_uring_cqe32,
}

impl Cqe {
    /// The request's `user_data`.
    pub fn user_data(&self) -> u64 {
        self.raw.cqe.user_data
    }

    /// The raw result: non-negative on success, `-errno` on failure.
    pub fn res(&self) -> i32 {
        self.raw.cqe.res
    }

    /// The result as `Ok(value)` or `Err(errno)`. A `res` no kernel posts
    /// (`i32::MIN`, whose negation overflows) comes back as
    /// `Err(Errno(i32::MAX))`, never a panic.
    ///
    /// An [`Errno`] converts to an `io::Error` of the same
    /// [`raw_os_error()`](io::Error::raw_os_error), so `?` works in a
    /// function returning `io::Result`:
    ///
    /// ```
    /// use std::io;
    /// use ring_io_driver::Ring;
    /// use ring_io_ops::{Fd, Read};
    ///
    /// fn read_from_bad_fd(ring: &mut Ring) -> io::Result<u32> {
    ///     let mut buf = [0u8; 8];
    ///     let read = Read::new(Fd(-1), buf.as_mut_ptr(), 8).build().user_data(1);
    ///     // SAFETY: `buf` outlives the completion reaped below.
    ///     unsafe { ring.sq().push(read) }.expect("an empty SQ has room");
    ///     ring.submitter().submit_and_wait(1)?;
    ///     let cqe = ring.cq().next().expect("one completion");
    ///     let n = cqe.result()?;
    ///     Ok(n)
    /// }
    ///
    /// let mut ring = Ring::new(4)?;
    /// let err = read_from_bad_fd(&mut ring).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    /// # Ok::<(), io::Error>(())
    /// ```
    pub fn result(&self) -> Result<u32, Errno> {
        let res = self.raw.cqe.res;
        if res < 0 {
            Err(Errno(res.saturating_neg()))
        } else {
            Ok(res as u32)
        }
    }

    /// The flags, unknown bits kept (the upper 16 hold a buffer id when
    /// [`CqeFlags::BUFFER`] is set).
    pub fn flags(&self) -> CqeFlags {
        CqeFlags::from_bits_retain(self.raw.cqe.flags)
    }

    /// True if the request will post more completions (multishot).
    pub fn more(&self) -> bool {
        self.flags().contains(CqeFlags::MORE)
    }

    /// The provided buffer the kernel picked, if any.
    pub fn buffer_id(&self) -> Option<u16> {
        self.flags()
            .contains(CqeFlags::BUFFER)
            .then_some((self.raw.cqe.flags >> ring_io_sys::IORING_CQE_BUFFER_SHIFT) as u16)
    }

    /// The extra 16 bytes of a 32-byte CQE (zero in 16-byte rings).
    pub fn big(&self) -> [u64; 2] {
        self.raw.big_cqe
    }

    /// The raw 16-byte CQE.
    pub fn raw(&self) -> io_uring_cqe {
        self.raw.cqe
    }
}

impl From<io_uring_cqe> for Cqe {
    fn from(cqe: io_uring_cqe) -> Cqe {
        Cqe {
            raw: io_uring_cqe32 {
                cqe,
                big_cqe: [0; 2],
            },
        }
    }
}

impl From<io_uring_cqe32> for Cqe {
    fn from(raw: io_uring_cqe32) -> Cqe {
        Cqe { raw }
    }
}

impl fmt::Debug for Cqe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cqe")
            .field("user_data", &self.user_data())
            .field("res", &self.res())
            .field("flags", &self.flags())
            .finish()
    }
}

/// A submission queue with no room: the entry is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the submission queue is full; submit, then push again")
    }
}

impl<T: fmt::Debug> std::error::Error for Full<T> {}

impl<T> From<Full<T>> for io::Error {
    fn from(_: Full<T>) -> io::Error {
        io::Error::new(io::ErrorKind::WouldBlock, "the submission queue is full")
    }
}

/// Why [`SubmissionQueue::push128`] refused a 128-byte entry, handed back.
#[derive(Debug, Clone, Copy)]
pub enum Push128Error {
    /// The submission queue is full: submit, then push again.
    Full(Entry128),
    /// The ring's SQEs are 64 bytes (set up without `IORING_SETUP_SQE128`,
    /// see [`Builder::sqe128`]): no 128-byte entry ever fits it.
    NotSqe128(Entry128),
}

impl Push128Error {
    /// The refused entry.
    pub fn into_inner(self) -> Entry128 {
        match self {
            Push128Error::Full(entry) | Push128Error::NotSqe128(entry) => entry,
        }
    }
}

impl fmt::Display for Push128Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Push128Error::Full(_) => Full(()).fmt(f),
            Push128Error::NotSqe128(_) => WrongRing::NotSqe128.fmt(f),
        }
    }
}

impl std::error::Error for Push128Error {}

impl From<Push128Error> for io::Error {
    fn from(e: Push128Error) -> io::Error {
        match e {
            Push128Error::Full(_) => Full(()).into(),
            Push128Error::NotSqe128(_) => WrongRing::NotSqe128.into(),
        }
    }
}

/// A value the kernel showed in the shared ring that no kernel keeping the
/// protocol could have written (a head that went back, a tail past the
/// ring): the ring keeps its own view and the call fails.
#[cold]
#[inline(never)]
fn broken(what: &str, e: CoreError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the kernel's {what} was refused: {e}"),
    )
}

/// An enter that should have consumed entries consumed none, so waiting
/// for SQ room cannot end.
#[cold]
#[inline(never)]
fn stuck(head: u32, pending: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the kernel's SQ head was refused: it stays at {head} with {pending} entries \
             submitted, so no room can come"
        ),
    )
}

/// The wait of a call without a deadline.
const NO_WAIT: &WaitArgs = &WaitArgs {
    timeout: None,
    min_wait: None,
};

/// Which paths a [`Ring`]'s calls and views take, kept up to date by the
/// stash's users so that each is chosen with one test.
#[derive(Debug, Clone, Copy)]
struct Paths {
    /// CQ views read through their general path: 32-byte CQEs (`CQE32`,
    /// or `CQE_MIXED` where a CQE may take two slots or be padding), or
    /// CQEs in the stash (delivered first).
    cq_general: bool,
    /// A wait without a deadline tries `Ring::enter_fast` first: no
    /// SQPOLL, no IOPOLL, and nothing in the stash (so the CQ is where
    /// every completion waited for must be).
    enter_fast: bool,
}

impl Paths {
    fn new(geometry: &ring_io_core::Geometry, stash_empty: bool) -> Paths {
        Paths {
            cq_general: geometry.cqe_size() == 32 || geometry.cqe_mixed() || !stash_empty,
            enter_fast: stash_empty
                && !geometry
                    .setup_flags()
                    .intersects(SetupFlags::SQPOLL | SetupFlags::IOPOLL),
        }
    }
}

/// What is left of a wait without a deadline after its first attempt
/// (see `Ring::enter_fast`).
#[derive(Debug, Clone, Copy)]
enum Slow {
    /// The general loop, having submitted this many.
    Loop { submitted: u32 },
    /// The CQ tail was refused.
    CqTail(CoreError),
    /// The enter submitted `submitted`, fewer than pending: load the SQ
    /// head, then look at the CQ if `look` (for `target` CQEs).
    SqHead {
        submitted: u32,
        look: bool,
        target: u32,
    },
    /// The enter failed.
    Failed(Errno),
}

/// An io_uring instance: the kernel's rings and the application's side of
/// them (from ring-core).
///
/// A `Ring` is used by one thread at a time (`&mut self`); it may move
/// between threads. For many threads on one ring, see `SharedRing`.
///
/// ```
/// use ring_io_driver::Ring;
/// use ring_io_ops::Nop;
///
/// let mut ring = Ring::new(8)?;
/// // SAFETY: a NOP carries no pointers.
/// unsafe { ring.sq().push(Nop::new().build().user_data(42)) }?;
/// ring.submitter().submit_and_wait(1)?;
/// let cqe = ring.cq().next().expect("one completion");
/// assert_eq!((cqe.user_data(), cqe.result()), (42, Ok(0)));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Ring<K: Kernel = Linux> {
    kernel: K,
    sq: ring_io_core::SqState,
    cq: ring_io_core::CqState,
    /// Completions taken out of the CQ while resolving `EBUSY`, delivered
    /// before the CQ's own.
    stash: VecDeque<Cqe>,
    /// The paths views and calls take (general while the stash holds CQEs).
    paths: Paths,
    defaults: SetupFlags,
}

/// The `user_data` of the `IORING_OP_TIMEOUT` (and `IORING_OP_TIMEOUT_REMOVE`)
/// entries that [`Submitter::submit_and_wait_timeout`] queues on kernels
/// before 5.11 (liburing's `LIBURING_UDATA_TIMEOUT`); their CQEs are taken
/// out before the call returns and never reach the caller.
pub const TIMEOUT_USER_DATA: u64 = u64::MAX;

impl Ring<Linux> {
    /// A ring of `entries` submission slots with the fast defaults of
    /// [`Builder::new`]: `Builder::new(entries).build()`.
    ///
    /// The error says why, with what to do: `Ring::new(100_000)` names the
    /// kernel's maximum of 32768 entries and [`Builder::clamp`]; `EPERM`
    /// names the sysctl, seccomp filter or container that disables
    /// io_uring. It converts to an `io::Error` (so `?` works in a function
    /// returning `io::Result`) that keeps the OS error code.
    pub fn new(entries: u32) -> Result<Ring, SetupError> {
        Builder::new(entries).build()
    }

    /// A builder with every setup option.
    pub fn builder(entries: u32) -> Builder {
        Builder::new(entries)
    }

    pub(crate) fn from_linux(kernel: Linux, register_fd: bool) -> Ring {
        let defaults = kernel.raw.defaults;
        let mut ring = Ring::with_kernel(kernel);
        ring.defaults = defaults;
        if register_fd {
            ring.kernel.register_fd();
        }
        ring
    }

    /// The parameters the kernel filled in.
    pub fn params(&self) -> &Params {
        &self.kernel.raw.params
    }

    /// The setup flags the builder added as defaults on this kernel.
    pub fn defaults(&self) -> SetupFlags {
        self.defaults
    }

    /// True if `io_uring_enter` on the calling thread uses a registered
    /// ring index (the one registered at setup, on the thread that set the
    /// ring up, or a live [`ThreadRegistration`](crate::ThreadRegistration)
    /// of this thread put to use).
    pub fn uses_registered_fd(&self) -> bool {
        self.kernel.registered_here()
    }

    /// Registers this ring's fd in the calling thread's table of rings
    /// (`IORING_REGISTER_RING_FDS`, Linux 5.18) for a thread other than
    /// the one that set it up, or for a ring set up without it: once put
    /// to use ([`use_thread_registration`](Self::use_thread_registration)),
    /// this thread's enters skip the fd lookup. The registration lasts
    /// until the returned value is dropped, on this thread.
    ///
    /// Errors: the kernel's (`EINVAL` before 5.18, `EBUSY` when the
    /// thread's 16 slots are taken); `Unsupported` for a ring without an
    /// fd (`REGISTERED_FD_ONLY`), which is in its thread's table already.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use ring_io_driver::Builder;
    /// let mut ring = Builder::new(8).register_ring_fd(false).build()?;
    /// # let Ok(here) = ring.register_thread() else { return Ok(()) }; // before 5.18
    /// # /*
    /// let here = ring.register_thread()?;
    /// # */
    /// assert!(ring.use_thread_registration(&here));
    /// assert!(ring.uses_registered_fd());
    /// ring.submitter().submit()?; // by the index
    /// drop(here);
    /// assert!(!ring.uses_registered_fd());
    /// ring.submitter().submit()?; // by the fd again
    /// # Ok(())
    /// # }
    /// ```
    pub fn register_thread(&self) -> io::Result<crate::ThreadRegistration> {
        self.kernel.raw.ring.register_lease(self.kernel.raw.id)
    }

    /// Enters through `registration` (made by
    /// [`register_thread`](Self::register_thread)) on its thread from now
    /// on, while it lives; any other thread, or any enter after it is
    /// dropped, uses the fd (each enter checks). Replaces a registration
    /// put to use before. False, changing nothing, if `registration` is
    /// another ring's, or this ring was registered when it was set up (it
    /// keeps that).
    pub fn use_thread_registration(&mut self, registration: &crate::ThreadRegistration) -> bool {
        match registration.lease_for(self.kernel.raw.id) {
            Some(at) => self.kernel.raw.ring.use_lease(at),
            None => false,
        }
    }

    /// Registration on this ring.
    pub fn registrar(&self) -> Registrar<'_> {
        Registrar::new(&self.kernel.raw.ring, self.kernel.raw.params.features())
    }

    /// The opcodes the kernel supports.
    pub fn probe(&self) -> io::Result<Probe> {
        self.registrar().probe()
    }
}

impl<K: Kernel> Ring<K> {
    /// A ring over any [`Kernel`] (for tests: [`Sim`](crate::Sim)).
    pub fn with_kernel(kernel: K) -> Ring<K> {
        let geometry = *kernel.geometry();
        Ring {
            sq: ring_io_core::SqState::with_start(&geometry, kernel.sq_head()),
            cq: ring_io_core::CqState::with_start(&geometry, kernel.cq_tail()),
            kernel,
            stash: VecDeque::new(),
            paths: Paths::new(&geometry, true),
            defaults: SetupFlags::empty(),
        }
    }

    /// The kernel behind this ring.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// The kernel behind this ring, mutably. A simulated kernel has the
    /// safe [`sim_mut`](Ring::sim_mut).
    ///
    /// Not for safe code: swapping two rings' kernels, or storing a tail
    /// through one, would leave the ring's bookkeeping describing another
    /// ring than the kernel's, and the next push would overwrite or publish
    /// an SQE the kernel has (or had) with pointers nobody vouches for.
    ///
    /// ```compile_fail,E0133
    /// let mut a = ring_io_driver::Ring::new(4)?;
    /// let mut b = ring_io_driver::Ring::new(4)?;
    /// std::mem::swap(a.kernel_mut(), b.kernel_mut());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// The kernel stays the one this ring's bookkeeping describes: do not
    /// replace it (`mem::swap`, `mem::replace`, assignment); call its
    /// `unsafe` methods only as their contracts allow, and neither store
    /// the SQ tail nor the CQ head (the ring stores them from its own
    /// indices) nor write an SQE into a slot below the SQ tail.
    pub unsafe fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// The submission queue.
    #[inline]
    pub fn sq(&mut self) -> SubmissionQueue<'_, K> {
        let pusher = self.sq.pusher().expect("a Ring leaves no reservation open");
        SubmissionQueue {
            kernel: &mut self.kernel,
            pusher,
        }
    }

    /// The completion queue: loads the kernel's tail once; hands the head
    /// back when dropped.
    #[inline]
    pub fn cq(&mut self) -> CompletionQueue<'_, K> {
        // A tail the kernel could not have written is refused: the view
        // shows what was known (the submitter's calls report the error).
        let _ = self.sync_cq();
        CompletionQueue {
            kernel: &mut self.kernel,
            reader: self.cq.reader(),
            stash: &mut self.stash,
            general: self.paths.cq_general,
            paths: &mut self.paths,
        }
    }

    /// The submitter: `io_uring_enter` as ring-core decides.
    #[inline]
    pub fn submitter(&mut self) -> Submitter<'_, K> {
        Submitter { ring: self }
    }

    /// Completions the kernel dropped because the CQ was full (`cq.overflow`;
    /// stays 0 with `IORING_FEAT_NODROP`, where they wait in a backlog).
    pub fn overflow(&mut self) -> u32 {
        self.cq.handle_overflow(self.kernel.cq_overflow());
        self.cq.overflow()
    }

    #[inline]
    fn publish(&mut self) {
        // One call publishes everything committed (single-threaded SQ).
        if let Some(tail) = self.sq.poll_publish() {
            // SAFETY: ring-core publishes only committed slots, each written
            // by `push` (whose caller vouches for the entry's pointers) or
            // by this ring for its own timeout; its indices keep the tail
            // within `sq_entries` of the head.
            unsafe { self.kernel.set_sq_tail(tail) };
        }
    }

    /// Loads the kernel's SQ head. A head the kernel could not have
    /// written (back, or past the tail) is refused: the ring keeps its own
    /// view (which only makes fewer slots free) and the caller reports the
    /// error, or, in a push, finds the SQ full.
    #[inline]
    fn sync_sq_head(&mut self) -> io::Result<()> {
        self.sq
            .handle_head(self.kernel.sq_head())
            .map_err(|e| broken("SQ head", e))
    }

    /// Loads the kernel's CQ tail; one that went back or past the ring is
    /// refused as in [`sync_sq_head`](Self::sync_sq_head) (no CQE beyond
    /// the old tail is read).
    #[inline]
    fn sync_cq(&mut self) -> io::Result<()> {
        self.cq
            .handle_tail(self.kernel.cq_tail())
            .map_err(|e| broken("CQ tail", e))
    }

    #[inline]
    fn release_cq(&mut self) {
        // One call releases everything reaped (single-threaded CQ).
        if let Some(head) = self.cq.poll_release_head() {
            // SAFETY: ring-core releases only reaped CQEs, below the tail
            // handled; every reader copies a CQE out before it is reaped.
            unsafe { self.kernel.set_cq_head(head) };
        }
    }

    /// The number of stashed CQEs, as the `u32` counts of the CQ (2^32
    /// stashed CQEs would take 128 GiB: the cast does not truncate).
    #[inline]
    fn stash_len(&self) -> u32 {
        self.stash.len() as u32
    }

    /// How many CQEs a wait for `want` completions needs in the ring's CQ:
    /// those not already stashed, and at most what the CQ holds. A full CQ
    /// ends any wait, since nothing more can be posted until the caller
    /// reaps (the kernel clamps `min_complete` the same way in
    /// `io_cqring_wait`, and returns at once).
    #[inline]
    fn cq_target(&self, want: u32) -> u32 {
        // The stash holds CQEs only while views read the general path.
        let want = if self.paths.cq_general {
            want.saturating_sub(self.stash_len())
        } else {
            want
        };
        self.cq.wait_target(want)
    }

    #[inline]
    fn read_cqe(&self, index: u32) -> Cqe {
        read_cqe(&self.kernel, index)
    }

    #[inline]
    fn mixed_cqe(&self, batch: &ring_io_core::CqBatch) -> Result<Option<(Cqe, u32)>, ()> {
        mixed_cqe(&self.kernel, batch)
    }

    /// Moves every ready CQE into the stash (so the kernel can flush its
    /// backlog into the freed slots) and returns how many moved.
    fn stash_ready(&mut self) -> io::Result<usize> {
        self.stash_ready_except(|_| false)
    }

    /// [`stash_ready`](Self::stash_ready), dropping the CQEs `drop` picks
    /// (they count as moved).
    fn stash_ready_except(&mut self, drop: impl Fn(&Cqe) -> bool) -> io::Result<usize> {
        self.sync_cq()?;
        self.stash.retain(|cqe| !drop(cqe));
        let before = self.stash.len();
        let mut dropped = 0;
        if self.kernel.geometry().cqe_mixed() {
            loop {
                let batch = self.cq.peek_batch(u32::MAX);
                let Ok(found) = self.mixed_cqe(&batch) else {
                    break;
                };
                let slots = found.map_or(1, |(_, slots)| slots);
                let _refused = self.cq.advance(slots);
                debug_assert!(_refused.is_ok(), "{_refused:?}");
                if let Some((cqe, _)) = found {
                    if drop(&cqe) {
                        dropped += 1;
                    } else {
                        self.stash.push_back(cqe);
                    }
                }
            }
        }
        while let Some(index) = self.cq.reap() {
            let cqe = self.read_cqe(index);
            if drop(&cqe) {
                dropped += 1;
            } else {
                self.stash.push_back(cqe);
            }
        }
        self.paths = Paths::new(self.kernel.geometry(), self.stash.is_empty());
        self.release_cq();
        Ok(self.stash.len() - before + dropped)
    }

    /// How many ready CQEs (stash, then the CQ up to its tail as last
    /// loaded) `count` picks, and how many it does not.
    fn count_ready(&self, count: impl Fn(&Cqe) -> bool) -> (u32, u32) {
        let (mut yes, mut no) = (0u32, 0u32);
        let mut tally = |cqe: &Cqe| {
            if count(cqe) {
                yes = yes.saturating_add(1);
            } else {
                no = no.saturating_add(1);
            }
        };
        self.stash.iter().for_each(&mut tally);
        let mut batch = self.cq.peek_batch(u32::MAX);
        while !batch.is_empty() {
            if self.kernel.geometry().cqe_mixed() {
                match self.mixed_cqe(&batch) {
                    Ok(found) => {
                        let slots = found.map_or(1, |(_, slots)| slots);
                        for _ in 0..slots {
                            let _ = batch.pop_front();
                        }
                        if let Some((cqe, _)) = found {
                            tally(&cqe);
                        }
                    }
                    Err(()) => break,
                }
            } else if let Some(index) = batch.pop_front() {
                tally(&self.read_cqe(index));
            }
        }
        (yes, no)
    }

    /// True if the ring's CQ holds as many CQEs as it has slots: the
    /// kernel can post no more until some are reaped.
    #[inline]
    fn cq_full(&self) -> bool {
        self.cq.ready() >= self.cq.entries()
    }

    /// [`Submitter::submit_and_wait_timeout`] on a kernel without
    /// `IORING_FEAT_EXT_ARG` (before 5.11), as liburing does it: queue an
    /// `IORING_OP_TIMEOUT` that completes after `want` CQEs or when
    /// `timeout` has passed (`ETIME`), wait, then take its CQE out (after
    /// an `IORING_OP_TIMEOUT_REMOVE` if it has not fired), so that nothing
    /// of it outlives the call: the CQ views never see it. It ends as the
    /// wait with `IORING_ENTER_EXT_ARG` does: when `want` are ready or the
    /// CQ is full (`Ok`), or when the timeout fired first (`TimedOut`).
    #[cold]
    #[inline(never)]
    fn wait_with_timeout_sqe(&mut self, want: u32, timeout: Duration) -> io::Result<u32> {
        let ours = |cqe: &Cqe| cqe.user_data() == TIMEOUT_USER_DATA;
        self.sync_cq()?;
        if self.count_ready(ours).1 >= want || self.cq_full() {
            return self.enter(0, WaitArgs::default());
        }
        // Saturated: the kernel's relative timer saturates its own sum, but
        // a negative `tv_sec` (Duration::MAX cast) is EINVAL.
        let ts = Box::new(timespec(timeout));
        let entry = ring_io_ops::Timeout::new(&*ts)
            .count(want)
            .build()
            .user_data(TIMEOUT_USER_DATA);
        let mut submitted = 0;
        loop {
            // SAFETY: `ts` outlives the request: this function returns only
            // once the timeout's CQE is in, and leaks `ts` on the error
            // paths.
            if unsafe { self.sq().push(entry) }.is_ok() {
                break;
            }
            submitted += self.make_room()?;
        }
        // Entries submitted from here on: ours first.
        let mut after = 0u32;
        let result = loop {
            // Done when `want` of the caller's CQEs are ready (CQEs posted
            // before the timeout was armed do not count for it), or the CQ
            // is full, or when the timeout's CQE says the time is up.
            let (mine, others) = self.count_ready(ours);
            if others >= want {
                break Ok(());
            }
            if mine > 0 {
                break Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            if self.cq_full() {
                break Ok(());
            }
            // Wait for one more CQE than is ready now (the CQ has room).
            let slots = self.cq.ready().saturating_add(self.stash_len());
            match self.enter(slots.saturating_add(1), WaitArgs::default()) {
                Ok(n) => after += n,
                Err(e) => {
                    // The timeout may still be armed: its timespec must stay.
                    Box::leak(ts);
                    return Err(e);
                }
            }
        };
        // Take the timeout's CQE out, cancelling it first if it has not
        // fired (the removal's CQE comes after the cancelled timeout's).
        if let Err(e) = self.remove_timeout_sqe(ours) {
            Box::leak(ts);
            return Err(e);
        }
        drop(ts);
        self.stash_ready_except(ours)?;
        result.map(|()| submitted + after.saturating_sub(1))
    }

    /// The end of [`wait_with_timeout_sqe`](Self::wait_with_timeout_sqe):
    /// unless its timeout's CQE is in, cancels the timeout and waits for
    /// both CQEs (the cancelled timeout's and the removal's), making room
    /// in a full CQ by stashing the caller's CQEs.
    fn remove_timeout_sqe(&mut self, ours: impl Fn(&Cqe) -> bool + Copy) -> io::Result<()> {
        if self.count_ready(ours).0 > 0 {
            return Ok(());
        }
        let remove = ring_io_ops::TimeoutRemove::new(TIMEOUT_USER_DATA)
            .build()
            .user_data(TIMEOUT_USER_DATA);
        // SAFETY: a removal carries no pointers.
        while unsafe { self.sq().push(remove) }.is_err() {
            self.make_room()?;
        }
        while self.count_ready(ours).0 < 2 {
            if self.cq_full() {
                self.stash_ready()?;
            }
            let slots = self.cq.ready().saturating_add(self.stash_len());
            self.enter(slots.saturating_add(1), WaitArgs::default())?;
        }
        Ok(())
    }

    /// Frees an SQ slot: submits (or, under SQPOLL, waits for the kernel
    /// thread); returns what it submitted. An error if no slot came free
    /// (a kernel that consumed nothing it was given: retrying cannot help).
    fn make_room(&mut self) -> io::Result<u32> {
        let head = self.sq.head();
        let n = if self.kernel.geometry().sqpoll() {
            self.sq_wait().map(|()| 0)?
        } else {
            self.enter(0, WaitArgs::default())?
        };
        self.sync_sq_head()?;
        if self.sq.space() == 0 {
            return Err(stuck(head, self.sq.pending()));
        }
        Ok(n)
    }

    /// The input of [`decide_enter`] for a submit that waits until `target`
    /// CQEs are in the ring's CQ (from [`cq_target`](Self::cq_target);
    /// `timeout`: bounded by an extended argument), with the SQ flags read
    /// as ring-core says.
    #[inline]
    fn enter_input(&self, target: u32, timeout: bool) -> EnterInput {
        let geometry = self.kernel.geometry();
        let mut input = EnterInput {
            to_submit: self.sq.pending(),
            wait_nr: target,
            cq_ready: self.cq.ready(),
            setup: geometry.setup_flags(),
            features: geometry.features(),
            timeout,
            // The kernel's `enter` names the ring (fd, or the index this
            // thread registered, with its flag): nothing to decide here.
            registered_ring: false,
            ..EnterInput::default()
        };
        input.sq_flags = self.kernel.sq_flags(input.flags_read());
        input
    }

    /// Enter as ring-core decides until the kernel accepts, retrying
    /// `EINTR`, and resolving `EBUSY`/`EAGAIN` by moving ready completions
    /// out of the CQ (into the stash, delivered first) and retrying; wait
    /// until `wait_nr` completions are ready (stash included) or the CQ is
    /// full.
    ///
    /// The first attempt of a wait without a deadline is inline (the hot
    /// path of `submit` and `submit_and_wait`); anything else, a retry or
    /// an error, goes to [`enter_loop`](Self::enter_loop), which is the
    /// same loop from its top.
    #[inline]
    fn enter(&mut self, wait_nr: u32, wait: WaitArgs) -> io::Result<u32> {
        if wait.any() {
            self.publish();
            return self.enter_loop(wait_nr, wait, 0);
        }
        self.enter_now(wait_nr)
    }

    /// [`enter`](Self::enter) without a deadline: its first attempt inline,
    /// anything else (a retry, an error, a ring the general loop serves)
    /// in [`enter_slow`](Self::enter_slow).
    #[inline]
    fn enter_now(&mut self, wait_nr: u32) -> io::Result<u32> {
        self.enter_fast(wait_nr)
    }

    /// The first attempt of [`enter_now`](Self::enter_now): `Ok` with what
    /// the call submitted when done, else what is left to do. Always
    /// inlined into the caller's `submit` or `submit_and_wait` (across
    /// crates too): out of line, its frame, and a result returned through
    /// memory, cost a caller that submits one entry per call (a QD1 loop)
    /// about 20 instructions per call.
    #[inline(always)]
    fn enter_fast(&mut self, wait_nr: u32) -> io::Result<u32> {
        // Nothing to publish here: entries are committed only by the SQ
        // view's pusher, which publishes when the view is dropped. (A view
        // leaked with `mem::forget` after refilling leaves what it
        // committed to the next view's drop.)
        if !self.paths.enter_fast {
            // A kernel thread that consumes entries, completions found only
            // by polling in the call, or CQEs in the stash: the general
            // loop.
            return Self::slow(self.enter_slow(wait_nr, Slow::Loop { submitted: 0 }));
        }
        // The stash is empty (`enter_fast`), so the CQ is where the wait's
        // completions must be.
        let target = self.cq.wait_target(wait_nr);
        let submission = self.sq.submission();
        let to_submit = submission.to_submit();
        if to_submit == 0 {
            return self.wait_fast(wait_nr, target);
        }
        // Entries to submit: the call is made anyway, and a wait asks the
        // kernel (which counts what is ready before it sleeps), so neither
        // the CQ tail nor, when waiting, the SQ flags need a look first.
        let kernel = &self.kernel;
        let decision = decide_submit(to_submit, target, || kernel.sq_flags(FlagsRead::Load));
        // SAFETY: every SQE published was written by `push`, whose caller
        // vouches for its pointers, or by this ring for its own timeout
        // (kept alive until its CQE is in); see `publish`.
        match unsafe { self.kernel.enter(&decision, NO_WAIT) } {
            Ok(n) => {
                // A count of every entry pending proves the head (ring-core
                // says when); else it is loaded.
                if !submission.handle_submitted(n) {
                    return Self::slow(self.enter_slow(
                        wait_nr,
                        Slow::SqHead {
                            submitted: n,
                            look: target > 0,
                            target,
                        },
                    ));
                }
                // See enter_loop: without a deadline, wait until `target`
                // CQEs are visible. A look at the tail is enough to
                // decide; it is handled (checked, and a tail no kernel
                // could have written refused) before any CQE is read, by
                // the CQ view or by the next call, which reports it.
                if target > 0 && self.cq.ready_at(self.kernel.cq_tail()) < target {
                    return Self::slow(self.enter_slow(wait_nr, Slow::Loop { submitted: n }));
                }
                Ok(n)
            }
            Err(e) => Self::slow(self.enter_slow(wait_nr, Slow::Failed(e))),
        }
    }

    /// [`enter_fast`](Self::enter_fast) with nothing to submit: the enter
    /// would only be for completions, so the tail is loaded first (they may
    /// be there and spare the syscall), then ring-core decides.
    #[inline]
    fn wait_fast(&mut self, wait_nr: u32, target: u32) -> io::Result<u32> {
        if let Err(e) = self.cq.handle_tail(self.kernel.cq_tail()) {
            return Self::slow(self.enter_slow(wait_nr, Slow::CqTail(e)));
        }
        let geometry = self.kernel.geometry();
        let mut input = EnterInput {
            wait_nr: target,
            cq_ready: self.cq.ready(),
            setup: geometry.setup_flags(),
            features: geometry.features(),
            ..EnterInput::default()
        };
        input.sq_flags = self.kernel.sq_flags(input.flags_read());
        let Some(decision) = decide_enter(&input) else {
            return Ok(0);
        };
        // SAFETY: as in `enter_fast` (nothing is pending here).
        match unsafe { self.kernel.enter(&decision, NO_WAIT) } {
            Ok(n) => {
                if !self.sq.handle_submitted(n) {
                    return Self::slow(self.enter_slow(
                        wait_nr,
                        Slow::SqHead {
                            submitted: n,
                            look: decision.min_complete > 0,
                            target,
                        },
                    ));
                }
                if decision.min_complete > 0 && self.cq.ready_at(self.kernel.cq_tail()) < target {
                    return Self::slow(self.enter_slow(wait_nr, Slow::Loop { submitted: n }));
                }
                Ok(n)
            }
            Err(e) => Self::slow(self.enter_slow(wait_nr, Slow::Failed(e))),
        }
    }

    /// The result of [`enter_slow`](Self::enter_slow) as the caller
    /// returns it.
    #[inline(always)]
    fn slow((submitted, error): (u32, Option<io::Error>)) -> io::Result<u32> {
        match error {
            None => Ok(submitted),
            Some(e) => Err(e),
        }
    }

    /// The rest of [`enter_now`](Self::enter_now) after
    /// [`enter_fast`](Self::enter_fast) said `slow`: what the call
    /// submitted, or the error. A pair, returned in two registers: an
    /// `io::Result<u32>` would be returned through memory, and the fast
    /// path's result with it.
    #[cold]
    #[inline(never)]
    fn enter_slow(&mut self, wait_nr: u32, slow: Slow) -> (u32, Option<io::Error>) {
        match self.enter_slow_result(wait_nr, slow) {
            Ok(n) => (n, None),
            Err(e) => (0, Some(e)),
        }
    }

    /// [`enter_slow`](Self::enter_slow) as a result.
    #[inline]
    fn enter_slow_result(&mut self, wait_nr: u32, slow: Slow) -> io::Result<u32> {
        let no_wait = WaitArgs::default();
        match slow {
            Slow::Loop { submitted } => self.enter_loop(wait_nr, no_wait, submitted),
            Slow::CqTail(e) => Err(broken("CQ tail", e)),
            Slow::SqHead {
                submitted,
                look,
                target,
            } => {
                self.sync_sq_head()?;
                if look && self.cq.ready_at(self.kernel.cq_tail()) < target {
                    return self.enter_loop(wait_nr, no_wait, submitted);
                }
                Ok(submitted)
            }
            Slow::Failed(e) => {
                self.enter_failed(e)?;
                self.enter_loop(wait_nr, no_wait, 0)
            }
        }
    }

    /// What an enter that failed with `e` means: `Ok` to retry, or the
    /// error to return.
    #[cold]
    #[inline(never)]
    fn enter_failed(&mut self, e: Errno) -> io::Result<()> {
        match e {
            // Interrupted by a signal before doing anything: retry.
            Errno::EINTR => Ok(()),
            // The CQ is full and the kernel cannot post (EBUSY: overflow
            // backlog without NODROP room; EAGAIN: no memory for it):
            // make room and retry; nothing is lost, the moved CQEs are
            // delivered first.
            Errno::EBUSY | Errno::EAGAIN => {
                if self.stash_ready()? == 0 {
                    Err(os(e))
                } else {
                    Ok(())
                }
            }
            e => Err(os(e)),
        }
    }

    /// The general enter loop (after [`publish`](Self::publish)), having
    /// submitted `submitted` entries already: until `want` completions are
    /// ready (stash included) or the CQ is full; with a minimum wait, once
    /// it has passed, until one is; with a timeout, `TimedOut` once the
    /// deadline has passed first.
    ///
    /// A deadline is checked here on the monotonic clock, not left to the
    /// kernel: `io_uring_enter` returns the number it submitted even when
    /// the wait that followed timed out, and 0 rather than `ETIME` when the
    /// CQ is not empty. The deadline is taken before the first enter, so
    /// the kernel's own (relative to its start) is never earlier.
    #[cold]
    #[inline(never)]
    fn enter_loop(&mut self, want: u32, wait: WaitArgs, mut submitted: u32) -> io::Result<u32> {
        let timed = wait.any();
        let start = timed.then(Instant::now);
        // `None` with a duration: past what the clock can represent, never.
        let deadline = start.zip(wait.timeout).and_then(|(s, t)| s.checked_add(t));
        let min_deadline = start.zip(wait.min_wait).and_then(|(s, t)| s.checked_add(t));
        let mut entered = false;
        loop {
            self.sync_cq()?;
            let now = timed.then(Instant::now);
            let min_passed = matches!((min_deadline, now), (Some(d), Some(now)) if now >= d);
            // After a minimum wait one completion is enough.
            let target = self.cq_target(if min_passed { want.min(1) } else { want });
            let input = self.enter_input(target, timed);
            let done = input.cq_ready >= target;
            let past = matches!((deadline, now), (Some(d), Some(now)) if now >= d);
            if entered && past && !done && input.to_submit == 0 {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            if wait.min_wait.is_some()
                && !input.features.contains(ring_io_sys::Features::MIN_TIMEOUT)
            {
                return Err(crate::error::Unsupported {
                    what: "a minimum wait (IORING_FEAT_MIN_TIMEOUT)",
                    needs: Some((6, 12)),
                    kernel: crate::kernel_version(),
                }
                .into());
            }
            if timed && !done && ring_io_core::timeout_needs_sqe(input.features) {
                return Err(crate::error::Unsupported {
                    what: "a wait with a timeout (IORING_FEAT_EXT_ARG)",
                    needs: Some((5, 11)),
                    kernel: crate::kernel_version(),
                }
                .into());
            }
            let Some(decision) = decide_enter(&input) else {
                return Ok(submitted);
            };
            let args = match now {
                Some(now) => WaitArgs {
                    // What is left; saturated by `timespec` if unbounded.
                    timeout: wait
                        .timeout
                        .map(|t| deadline.map_or(t, |d| d.saturating_duration_since(now))),
                    min_wait: wait
                        .min_wait
                        .filter(|_| !min_passed)
                        .map(|m| min_deadline.map_or(m, |d| d.saturating_duration_since(now))),
                },
                None => wait,
            };
            // SAFETY: as in `enter`: every SQE published was written by
            // `push` or by this ring for its own timeout.
            let result = unsafe { self.kernel.enter(&decision, &args) };
            entered = true;
            match result {
                Ok(n) => {
                    submitted += n;
                    self.sync_sq_head()?;
                    // Nothing asked of the wait: done. Otherwise the kernel
                    // may have returned before `target` CQEs are visible (a
                    // wait ended by task work or a signal, a drained
                    // request posted late, a timeout with some ready): the
                    // top of the loop decides. The next decision has
                    // nothing to submit.
                    if decision.min_complete == 0 {
                        return Ok(submitted);
                    }
                }
                // The kernel's deadline passed with the CQ empty (or, for
                // the simulator, nothing can arrive): what is ready decides.
                Err(Errno::ETIME) if timed => {
                    self.sync_sq_head()?;
                    self.sync_cq()?;
                    let target = self.cq_target(if min_passed { want.min(1) } else { want });
                    if self.cq.ready() >= target {
                        return Ok(submitted);
                    }
                    return Err(io::Error::from(io::ErrorKind::TimedOut));
                }
                Err(e) => self.enter_failed(e)?,
            }
        }
    }
}

/// Enters with `IORING_ENTER_SQ_WAIT` that may return in a row with the SQ
/// still full and its head where it was before `sq_wait` gives up. A
/// kernel returns from that wait only once its SQPOLL thread made room or a
/// signal came (then the enter returns 0, or fails with `EINTR`), so this
/// many returns without room means this many signals while the thread
/// consumed nothing; a kernel that shows a head that never moves ends here
/// instead of keeping the caller entering forever.
const SQ_WAIT_RETURNS: u32 = 4096;

impl<K: Kernel> Ring<K> {
    fn sq_wait(&mut self) -> io::Result<()> {
        self.publish();
        let mut idle = 0u32;
        loop {
            self.sync_sq_head()?;
            let geometry = *self.kernel.geometry();
            let mut input = EnterInput {
                to_submit: self.sq.pending(),
                want_sq_space: self.sq.space() == 0,
                cq_ready: self.cq.ready(),
                setup: geometry.setup_flags(),
                features: geometry.features(),
                // The kernel's `enter` names the ring (fd, or the index this
                // thread registered, with its flag): nothing to decide here.
                registered_ring: false,
                ..EnterInput::default()
            };
            input.sq_flags = self.kernel.sq_flags(input.flags_read());
            let Some(decision) = decide_enter(&input) else {
                return Ok(());
            };
            let head = self.sq.head();
            // SAFETY: as in `enter`: every SQE published was written by
            // `push` or by this ring for its own timeout.
            match unsafe { self.kernel.enter(&decision, &WaitArgs::default()) } {
                Ok(_) => {
                    self.sync_sq_head()?;
                    if self.sq.space() > 0 {
                        return Ok(());
                    }
                    // Without SQPOLL, entering is what consumes entries: an
                    // enter that consumed none will not do better next
                    // time. (Under SQPOLL, IORING_ENTER_SQ_WAIT sleeps
                    // until the thread consumed some, or a signal came.)
                    if !geometry.sqpoll() && self.sq.head() == head {
                        return Err(stuck(head, self.sq.pending()));
                    }
                }
                Err(Errno::EINTR) => self.sync_sq_head()?,
                Err(e) => return Err(os(e)),
            }
            // Under SQPOLL (or after EINTR): returns without room are
            // bounded (see SQ_WAIT_RETURNS); any progress starts the count
            // again.
            idle = if self.sq.head() == head { idle + 1 } else { 0 };
            if idle >= SQ_WAIT_RETURNS {
                return Err(stuck(head, self.sq.pending()));
            }
        }
    }
}

/// The CQE at `index`, of the size the geometry says. `index` is from a
/// batch of ring-core's CQ: at or above the released head, below the tail
/// handled, which was loaded from the kernel since (the contract of the
/// kernel's reads).
#[inline]
fn read_cqe<K: Kernel>(kernel: &K, index: u32) -> Cqe {
    read_cqe_sized(kernel, index, kernel.geometry().cqe_size() == 32)
}

/// [`read_cqe`], 32 bytes if `cqe32` (as the geometry says).
#[inline]
fn read_cqe_sized<K: Kernel>(kernel: &K, index: u32, cqe32: bool) -> Cqe {
    // Every caller takes `index` from a batch of ring-core's CQ: at or
    // above the released head, below the tail handled, which was loaded
    // from the kernel since (the contract of both reads).
    let raw = if cqe32 {
        // SAFETY: as said above.
        match unsafe { kernel.cqe32(index) } {
            Ok(raw) => raw,
            // A 16-byte ring (only for a kernel whose geometry
            // changed): the 16 bytes there are.
            Err(_) => io_uring_cqe32 {
                // SAFETY: as said above.
                cqe: unsafe { kernel.cqe(index) },
                big_cqe: [0; 2],
            },
        }
    } else {
        io_uring_cqe32 {
            // SAFETY: as said above.
            cqe: unsafe { kernel.cqe(index) },
            big_cqe: [0; 2],
        }
    };
    Cqe { raw }
}

/// In a `CQE_MIXED` ring, the CQE at the head of `batch`: `Ok(Some)`
/// with the CQE and the slots it takes (2 for a 32-byte one), `Ok(None)`
/// for a padding slot (`IORING_CQE_F_SKIP`, one slot, no CQE), or
/// `Err(())` if `batch` is empty or ends inside a 32-byte CQE (the rest
/// is not visible yet: nothing is consumed).
#[inline]
fn mixed_cqe<K: Kernel>(
    kernel: &K,
    batch: &ring_io_core::CqBatch,
) -> Result<Option<(Cqe, u32)>, ()> {
    if batch.is_empty() {
        return Err(());
    }
    let index = batch.start();
    // SAFETY: `batch` is ring-core's: at or above the released head,
    // below the tail handled.
    let cqe = unsafe { kernel.cqe(index) };
    let flags = CqeFlags::from_bits_retain(cqe.flags);
    if flags.contains(CqeFlags::SKIP) {
        return Ok(None);
    }
    if !flags.contains(CqeFlags::BIG) {
        let raw = io_uring_cqe32 {
            cqe,
            big_cqe: [0; 2],
        };
        return Ok(Some((Cqe { raw }, 1)));
    }
    if batch.len() < 2 {
        return Err(());
    }
    // The second 16-byte slot holds the two extra words (the kernel
    // never lets a 32-byte CQE wrap: it pads with a SKIP instead).
    // SAFETY: as above; the batch holds two or more.
    let second = unsafe { kernel.cqe(index.wrapping_add(1)) };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&second.user_data.to_ne_bytes());
    bytes[8..12].copy_from_slice(&second.res.to_ne_bytes());
    bytes[12..].copy_from_slice(&second.flags.to_ne_bytes());
    let word = |i: usize| u64::from_ne_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let raw = io_uring_cqe32 {
        cqe,
        big_cqe: [word(0), word(8)],
    };
    Ok(Some((Cqe { raw }, 2)))
}

impl<K: Kernel> fmt::Debug for Ring<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("sq", &self.sq)
            .field("cq", &self.cq)
            .field("stashed", &self.stash.len())
            .finish_non_exhaustive()
    }
}

impl Ring<Linux> {
    /// The ring's file descriptor, or `None` for a ring set up with
    /// `IORING_SETUP_REGISTERED_FD_ONLY`, which has none: only an index in
    /// the table of the thread that set it up, which this library uses
    /// itself (on that thread only) and never hands out.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.kernel.raw.ring.fd()
    }
}

/// The submission queue of a [`Ring`]. Entries pushed are committed and
/// published to the kernel when the view is dropped.
pub struct SubmissionQueue<'r, K: Kernel = Linux> {
    kernel: &'r mut K,
    /// The free slots, as ring-core's pusher hands them out (its indices
    /// kept in registers); it commits the ones used when the view is
    /// dropped or refills. A view leaked with `mem::forget` pushes nothing:
    /// its slots are reused.
    pusher: ring_io_core::SqPusher<'r>,
}

impl<K: Kernel> SubmissionQueue<'_, K> {
    /// The ring index of a free slot for one SQE, which the caller writes
    /// at once; `None` if the SQ is full even after reading the kernel's
    /// head again. The slot is committed when the view is dropped or
    /// refills, so nothing between this and the write may unwind: a
    /// [`Kernel`] promises its methods do not.
    #[inline]
    fn next_index(&mut self) -> Option<u32> {
        if let Some(index) = self.pusher.next_index() {
            return Some(index);
        }
        self.refill();
        self.pusher.next_index()
    }

    /// Commits the slots used and reads the kernel's head once (it may
    /// have consumed entries since) for more. Inline: an out-of-line call
    /// in the push loop costs the loop its constants.
    #[inline(always)]
    fn refill(&mut self) {
        // A head the kernel could not have written is refused: the queue
        // looks as full as before (the submitter's calls report the error).
        let _ = self.pusher.handle_head(self.kernel.sq_head());
    }

    /// Pushes one entry, or hands it back if the queue is full.
    ///
    /// # Safety
    ///
    /// The kernel must be able to carry the entry out touching only what
    /// the caller owns until the request is finished: until its final
    /// completion has been reaped (the one without `IORING_CQE_F_MORE`: for
    /// multishot requests the last one, for zero-copy sends the
    /// notification).
    /// - Memory: every buffer, path, iovec, message header, timespec or
    ///   other pointer the entry carries (in the command area of an
    ///   `SQE128` entry too) points to memory that stays valid until then,
    ///   that nothing else reads or writes meanwhile where the kernel
    ///   writes, and that nothing else writes where it reads. Memory handed
    ///   over for later requests (`IORING_OP_PROVIDE_BUFFERS`) stays so
    ///   until the kernel has given every buffer of it back (used by a
    ///   request whose completion was reaped, or removed with
    ///   `IORING_OP_REMOVE_BUFFERS`).
    /// - Files: every fd it names stays open until then and is the caller's
    ///   to use (owned or borrowed, as I/O safety has it); an entry that
    ///   closes, installs or replaces files (`IORING_OP_CLOSE`,
    ///   `IORING_OP_FILES_UPDATE`, `IORING_OP_FIXED_FD_INSTALL`, ...) does
    ///   so only with files and fd numbers the caller owns.
    /// - Other rings: an `IORING_OP_MSG_RING` entry posts a completion into
    ///   (or installs a file in) the ring it names, whose owner may take
    ///   the completion for one of its own requests: it names only a ring
    ///   whose owner expects exactly that completion.
    ///
    /// Two ways "finished" is later than it looks:
    /// - Only a completion this entry posted counts. A CQE with the same
    ///   `user_data` can be posted by code that names this ring's fd in an
    ///   `IORING_OP_MSG_RING` entry of another ring (`unsafe` code breaking
    ///   the rule above); code that cannot rule that out must not treat a
    ///   CQE as proof the memory is free.
    /// - If the ring is dropped while the request is in flight, the kernel
    ///   cancels it during an asynchronous teardown that goes on after
    ///   `drop` returns: the memory must then stay valid for the rest of
    ///   the process (leak it), or be reclaimed only through a ring whose
    ///   drop waits for the kernel, such as [`SharedRing`](crate::SharedRing).
    #[inline]
    #[allow(
        unsafe_code,
        reason = "declares the caller's contract; the body does nothing unsafe"
    )]
    pub unsafe fn push(&mut self, entry: Entry) -> Result<(), Full<Entry>> {
        let Some(index) = self.next_index() else {
            return Err(Full(entry));
        };
        // SAFETY: the pusher hands out free slots only: at or above the
        // published tail, below the kernel's head plus `sq_entries`.
        unsafe { self.kernel.write_sqe(index, entry.as_sqe()) };
        Ok(())
    }

    /// Pushes all the entries or none (handing the count of free slots back).
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push), for every entry.
    #[allow(
        unsafe_code,
        reason = "declares the caller's contract; the body does nothing unsafe"
    )]
    pub unsafe fn push_batch(&mut self, entries: &[Entry]) -> Result<(), Full<u32>> {
        let n = u32::try_from(entries.len()).map_err(|_| Full(self.space()))?;
        if self.pusher.space() < n {
            self.refill();
            if self.pusher.space() < n {
                return Err(Full(self.pusher.space()));
            }
        }
        for entry in entries {
            let Some(index) = self.pusher.next_index() else {
                unreachable!("the pusher has room for every entry");
            };
            // SAFETY: as in `push`: a free slot from the pusher.
            unsafe { self.kernel.write_sqe(index, entry.as_sqe()) };
        }
        Ok(())
    }

    /// Pushes a 128-byte entry (rings set up with `sqe128`), or hands it
    /// back with the reason: [`Push128Error::Full`], or
    /// [`Push128Error::NotSqe128`] on a ring of 64-byte SQEs, where it can
    /// never fit.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[allow(
        clippy::result_large_err,
        reason = "the refused entry is handed back by value, so nothing is lost"
    )]
    pub unsafe fn push128(&mut self, entry: Entry128) -> Result<(), Push128Error> {
        if self.kernel.geometry().sqe_size() != 128 {
            return Err(Push128Error::NotSqe128(entry));
        }
        let Some(index) = self.next_index() else {
            return Err(Push128Error::Full(entry));
        };
        // SAFETY: as in `push`: a free slot from the pusher.
        if unsafe { self.kernel.write_sqe128(index, entry.as_sqe128()) }.is_err() {
            // Only a kernel whose geometry changed gets here, after the
            // slot was taken: fill it with a NOP, so nothing stale in it
            // is submitted, and refuse the entry.
            let nop = ring_io_ops::Nop::new()
                .build()
                .user_data(entry.get_user_data());
            // SAFETY: as above; a NOP carries no pointers.
            unsafe { self.kernel.write_sqe(index, nop.as_sqe()) };
            return Err(Push128Error::NotSqe128(entry));
        }
        Ok(())
    }

    /// Free slots (as last known; more may have been freed by the kernel).
    pub fn space(&self) -> u32 {
        self.pusher.space()
    }

    /// Entries pushed and not yet consumed by the kernel.
    pub fn len(&self) -> u32 {
        self.pusher.queue().entries() - self.pusher.space()
    }

    /// True if no entry waits for the kernel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of slots.
    pub fn capacity(&self) -> u32 {
        self.pusher.queue().entries()
    }

    /// Entries the kernel skipped because their SQ-array index was invalid.
    pub fn dropped(&mut self) -> u32 {
        self.pusher.handle_dropped(self.kernel.sq_dropped());
        self.pusher.queue().dropped()
    }
}

impl<K: Kernel> Drop for SubmissionQueue<'_, K> {
    #[inline]
    fn drop(&mut self) {
        // One call publishes everything committed (single-threaded SQ);
        // the tail is stored even if no entry was pushed (the kernel then
        // reads the value it had), which spares a compare and a branch.
        let tail = self.pusher.publish_tail();
        // SAFETY: ring-core publishes only committed slots, each written
        // by `push` (whose caller vouches for the entry's pointers) or by
        // the ring for its own timeout; its indices keep the tail within
        // `sq_entries` of the head.
        unsafe { self.kernel.set_sq_tail(tail) };
    }
}

/// The completion queue of a [`Ring`]: an iterator of [`Cqe`]s. The CQEs
/// read are handed back to the kernel when the view is dropped (a view
/// leaked with `mem::forget` hands nothing back: its CQEs are read again).
pub struct CompletionQueue<'r, K: Kernel = Linux> {
    kernel: &'r mut K,
    /// The CQEs of the ring's CQ ready when the view was made (or last
    /// synced) and not read yet, as ring-core's reader hands them out (its
    /// indices kept in registers, so reading one touches no shared state);
    /// it consumes those read when the view is dropped or synced.
    reader: ring_io_core::CqReader<'r>,
    /// The ring's stash (CQEs moved out of the CQ to resolve `EBUSY`,
    /// delivered first) and its flag saying views read the general path.
    stash: &'r mut VecDeque<Cqe>,
    paths: &'r mut Paths,
    /// Read through the general path (stashed CQEs first, then 32-byte or
    /// `CQE_MIXED` ones): the ring's `paths.cq_general` when the CQEs were taken.
    /// Otherwise every CQE is a 16-byte one of the reader's, and the loop
    /// checks one index per CQE.
    general: bool,
}

impl<K: Kernel> CompletionQueue<'_, K> {
    /// The next completion without consuming it.
    pub fn peek(&self) -> Option<Cqe> {
        if let Some(cqe) = self.stash.front() {
            return Some(*cqe);
        }
        let mut batch = *self.reader.rest();
        if self.kernel.geometry().cqe_mixed() {
            loop {
                match mixed_cqe(&*self.kernel, &batch) {
                    Ok(Some((cqe, _))) => return Some(cqe),
                    Ok(None) => {
                        let _ = batch.pop_front();
                    }
                    Err(()) => return None,
                }
            }
        }
        batch
            .pop_front()
            .map(|index| read_cqe(&*self.kernel, index))
    }

    /// Completions ready to be read (in a `CQE_MIXED` ring, the slots
    /// ready: at most that many CQEs).
    pub fn len(&self) -> usize {
        self.stash.len() + self.reader.rest().len() as usize
    }

    /// True if none is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `out.len()` completions into `out`; returns how many.
    pub fn reap_batch(&mut self, out: &mut [Cqe]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(cqe) = self.next() else {
                break;
            };
            out[n] = cqe;
            n += 1;
        }
        n
    }

    /// Loads the kernel's tail again (completions that arrived since the
    /// view was made become readable).
    pub fn sync(&mut self) {
        self.hand_back();
        // A tail the kernel could not have written is refused: nothing new
        // (see `Ring::cq`).
        let _ = self.reader.handle_tail(self.kernel.cq_tail());
        self.general = self.paths.cq_general;
    }

    /// Has ring-core consume the CQEs read and hands their slots back to
    /// the kernel (the head is stored even if none was read: the kernel
    /// then reads the value it had, and a compare and a branch are spared).
    #[inline]
    fn hand_back(&mut self) {
        let head = self.reader.release_head();
        // SAFETY: ring-core releases only CQEs its reader gave (below the
        // tail handled), and each was copied out.
        unsafe { self.kernel.set_cq_head(head) }
    }

    /// [`next`](Iterator::next) off the fast path: stashed CQEs first, then
    /// 32-byte or `CQE_MIXED` CQEs. Inline like the rest: a call taking the
    /// view's address would keep its indices in memory.
    #[inline]
    fn next_general(&mut self) -> Option<Cqe> {
        if let Some(cqe) = self.stash.pop_front() {
            if self.stash.is_empty() {
                *self.paths = Paths::new(self.kernel.geometry(), true);
            }
            return Some(cqe);
        }
        if self.kernel.geometry().cqe_mixed() {
            loop {
                let found = mixed_cqe(&*self.kernel, self.reader.rest()).ok()?;
                let slots = found.map_or(1, |(_, slots)| slots);
                for _ in 0..slots {
                    let _ = self.reader.pop_front();
                }
                if let Some((cqe, _)) = found {
                    return Some(cqe);
                }
            }
        }
        let index = self.reader.pop_front()?;
        Some(read_cqe(&*self.kernel, index))
    }
}

impl<K: Kernel> Iterator for CompletionQueue<'_, K> {
    type Item = Cqe;

    #[inline]
    fn next(&mut self) -> Option<Cqe> {
        if !self.general {
            let index = self.reader.pop_front()?;
            return Some(read_cqe_sized(&*self.kernel, index, false));
        }
        self.next_general()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len();
        if self.kernel.geometry().cqe_mixed() {
            // Slots: a 32-byte CQE takes two, padding none.
            (self.stash.len(), Some(n))
        } else {
            (n, Some(n))
        }
    }
}

impl<K: Kernel> Drop for CompletionQueue<'_, K> {
    #[inline]
    fn drop(&mut self) {
        self.hand_back();
    }
}

/// Calls into the kernel for a [`Ring`]: submit and wait.
///
/// # What a wait returns
///
/// Every wait counts the completions ready in the CQ (and any the ring
/// moved out of it to resolve `EBUSY`, delivered first) and returns `Ok`
/// with the number of entries the call submitted once `want` are ready, or
/// once the CQ is full even if fewer than `want` are: a CQ holds at most
/// its size, and the kernel posts nothing more until the caller reaps (so a
/// `want` larger than the CQ returns with the CQ full, as liburing does).
/// A wait with a deadline that passes first fails with
/// `io::ErrorKind::TimedOut`; nothing is lost then: the completions that
/// arrived stay in the CQ, and the entries it submitted stay submitted
/// ([`pending`](Submitter::pending) counts those the kernel has not taken).
/// A timeout too long for the kernel's clock (over 2^32 seconds, up to
/// `Duration::MAX`) waits as if unbounded. A ring word the kernel could
/// not have written (a head that went back, a tail past the ring) is
/// never used: the call that handles it fails with
/// `io::ErrorKind::InvalidData` (a submit that also waits, and decided
/// from a look at the tail that it need not wait again, returns first; the
/// CQ view shows nothing new and the next call fails); so does waiting for
/// SQ room from a kernel that consumes nothing.
pub struct Submitter<'r, K: Kernel = Linux> {
    ring: &'r mut Ring<K>,
}

impl<K: Kernel> Submitter<'_, K> {
    /// Submits the pushed entries; returns how many the kernel consumed.
    #[inline]
    pub fn submit(&mut self) -> io::Result<u32> {
        self.ring.enter_now(0)
    }

    /// Submits and waits until at least `want` completions are ready, or
    /// the CQ is full (see [What a wait returns](Submitter#what-a-wait-returns)).
    #[inline]
    pub fn submit_and_wait(&mut self, want: u32) -> io::Result<u32> {
        self.ring.enter_now(want)
    }

    /// Submits and waits for `want` completions (or a full CQ), at most
    /// `timeout` (`IORING_ENTER_EXT_ARG`, Linux 5.11). If the time passes
    /// first, `ErrorKind::TimedOut`, even if some but not all of `want` are
    /// ready: they stay in the CQ, and what was submitted stays submitted
    /// (see [What a wait returns](Submitter#what-a-wait-returns)).
    ///
    /// Before Linux 5.11 (no `IORING_FEAT_EXT_ARG`) this queues an
    /// `IORING_OP_TIMEOUT` entry (needing an SQ slot and a CQ slot), as
    /// liburing does, and takes its CQE out before returning; `user_data`
    /// [`TIMEOUT_USER_DATA`] is reserved during the call.
    pub fn submit_and_wait_timeout(&mut self, want: u32, timeout: Duration) -> io::Result<u32> {
        if ring_io_core::timeout_needs_sqe(self.ring.kernel.geometry().features()) {
            return self.ring.wait_with_timeout_sqe(want, timeout);
        }
        self.ring.enter(
            want,
            WaitArgs {
                timeout: Some(timeout),
                min_wait: None,
            },
        )
    }

    /// Submits and waits for `want` completions (or a full CQ), but once
    /// `min_wait` has passed returns as soon as at least one is ready;
    /// gives up after `timeout` if one is given: `ErrorKind::TimedOut` if
    /// by then `want` are not ready and the minimum wait has not passed
    /// with one ready (what is ready stays in the CQ). Batches completions
    /// under load without delaying a lone one for long
    /// (`IORING_FEAT_MIN_TIMEOUT`, Linux 6.12; an `Unsupported` error
    /// before).
    pub fn submit_and_wait_min(
        &mut self,
        want: u32,
        min_wait: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<u32> {
        self.ring.enter(
            want,
            WaitArgs {
                timeout,
                min_wait: Some(min_wait),
            },
        )
    }

    /// Under SQPOLL, waits until the kernel thread has consumed entries and
    /// the SQ has room (`IORING_ENTER_SQ_WAIT`, Linux 5.10); elsewhere,
    /// submits, which is what frees room. Fails with
    /// `io::ErrorKind::InvalidData` when the kernel's SQ head does not move:
    /// at once without SQPOLL (an enter that consumed nothing will not do
    /// better), after 4096 wake-ups in a row without room under SQPOLL (a
    /// kernel wakes the wait early only for a signal).
    pub fn sq_wait(&mut self) -> io::Result<()> {
        self.ring.sq_wait()
    }

    /// Flushes completions the kernel holds back (overflow backlog, pending
    /// task work) into the CQ without waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        self.ring.sync_cq()?;
        if self.ring.cq.ready() == 0 {
            // With nothing ready, decide_enter adds GETEVENTS when the
            // kernel flags overflow or task work.
            self.ring.enter(0, WaitArgs::default())?;
        }
        Ok(())
    }

    /// Entries pushed and published but not yet consumed by the kernel.
    pub fn pending(&self) -> u32 {
        self.ring.sq.pending()
    }
}
