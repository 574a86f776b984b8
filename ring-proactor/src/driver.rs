//! The driver: one ring turn at a time, run by whoever holds the driver
//! token (a waiting caller or the fallback thread, see `drive.rs`): push
//! what callers queued, submit, wait, reap, and dispatch each completion to
//! its slot.

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use ring_io_core::FlagsRead;
use ring_io_ops::{Entry, Fd};
use ring_io_sys::{SqFlags, SqeFlags};

use ring_io_driver::{Kernel, Linux, Ring};

use crate::config::*;
use crate::state::*;

mod cell;
mod reap;
mod turn;

pub(crate) use cell::DriverCell;

/// The first and the longest wait before a failed cancellation is retried.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(1);

pub(crate) const RETRY_MAX: Duration = Duration::from_millis(64);

/// How long a turn may wait in the kernel for a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: submit and reap what is there.
    No,
    /// Until a completion arrives (or the wake-up read ends the wait), at
    /// most this long if given.
    For(Option<Duration>),
}

/// One ring turn, whatever the kernel behind the ring (`Box<dyn Drive>` in
/// [`Shared::driver`]).
pub(crate) trait Drive: Send {
    /// Runs one turn; what must be released outside every lock (drops of
    /// what dropped ops owned, wakers) goes to `grave`. `fallback`: the
    /// fallback thread's turn (it may gather a batch and spin); `holder`: a
    /// `block_on`'s, which may let its future push its own ops next (see
    /// [`State::direct`]). True once the Proactor has shut down and the
    /// kernel holds no request: the driver must then be
    /// [`close`](Drive::close)d.
    fn turn(
        &mut self,
        shared: &Shared,
        wait: Wait,
        fallback: bool,
        holder: bool,
        grave: &mut Graveyard,
    ) -> bool;

    /// The turn of a `block_on` holder that pushed its own ops, without
    /// the state lock until its reap (see [`State::direct`]); false, doing
    /// nothing, if the driver cannot (the caller turns as usual).
    fn turn_direct(&mut self, shared: &Shared, wait: Wait, grave: &mut Graveyard) -> bool;

    /// Pushes the holder's own op, with `user_data` `ud`, into the SQ (see
    /// [`State::direct`]): the requests in the ring then, or `None`,
    /// pushing nothing, if the driver cannot now.
    fn push_direct(&mut self, entry: &Entry, ud: u64) -> Option<u32>;

    /// When the next failed cancellation is due to be sent again, if any:
    /// a driver that never waits in the kernel (an external one) must run
    /// a turn then.
    #[cfg(feature = "tokio")]
    fn next_retry(&self) -> Option<Instant> {
        None
    }

    /// Registers the ring's fd in the calling thread's table of rings and
    /// has the ring enter through it on this thread while it lives (see
    /// [`ThreadRegistration`](ring_io_driver::ThreadRegistration)).
    /// `Ok(None)`: a ring that is not the kernel's (a simulated one).
    fn register_thread(&mut self) -> std::io::Result<Option<ring_io_driver::ThreadRegistration>> {
        Ok(None)
    }

    /// Frees the ring and the wake-up buffer. Only after a turn returned
    /// true: the kernel holds no request. A driver dropped any other way
    /// (after a panic) leaks both, as the kernel may still use them.
    fn close(self: Box<Self>);
}

/// The driver's state: the ring and what only the token holder touches.
pub(crate) struct Driver<K: Kernel> {
    /// Leaked unless closed: requests may still be in the kernel.
    pub(crate) ring: ManuallyDrop<Ring<K>>,
    /// The eventfd the wake-up read targets (kept open while it is armed).
    pub(crate) efd: OwnedFd,
    /// The wake-up read's buffer (lives in the heap while it is armed).
    pub(crate) wake_buf: ManuallyDrop<Box<u64>>,
    pub(crate) wake_armed: bool,
    /// The `user_data` of the armed wake-up read (a random tag each time).
    pub(crate) wake_ud: u64,
    /// The wake-up read's tags.
    pub(crate) tags: Tags,
    /// Cancellations to send again, when, for which request.
    pub(crate) retries: Vec<(Instant, u64)>,
    /// Requests pushed whose last CQE has not been reaped (ops,
    /// cancellations, the wake-up read).
    pub(crate) in_ring: u32,
    pub(crate) batch: u32,
    pub(crate) delay: Duration,
    pub(crate) spin: Duration,
    /// Entries taken from the queue and not yet pushed (the kernel showed
    /// CQ overflow: nothing is pushed until it is drained), in order.
    pub(crate) pending: VecDeque<Entry>,
    /// `ProactorStats::enters`, published with other updates.
    pub(crate) enters: u64,
    /// Every request was asked to cancel at shutdown.
    pub(crate) shutdown_sent: bool,
    /// `user_data` of the members of linked chains this turn pushed, for
    /// the thread that submits them (see `drive::note_chains`).
    pub(crate) chained: Vec<u64>,
}

impl<K: Kernel + Send + 'static> Drive for Driver<K> {
    fn turn(
        &mut self,
        shared: &Shared,
        wait: Wait,
        fallback: bool,
        holder: bool,
        grave: &mut Graveyard,
    ) -> bool {
        let stopped = Driver::turn(self, shared, wait, fallback, holder, grave);
        if !self.chained.is_empty() {
            crate::drive::note_chains(shared, &mut self.chained);
        }
        stopped
    }

    fn turn_direct(&mut self, shared: &Shared, wait: Wait, grave: &mut Graveyard) -> bool {
        // (No chain: the holder pushes single ops only.)
        Driver::turn_direct(self, shared, wait, grave)
    }

    fn push_direct(&mut self, entry: &Entry, ud: u64) -> Option<u32> {
        Driver::push_direct(self, entry, ud)
    }

    fn register_thread(&mut self) -> std::io::Result<Option<ring_io_driver::ThreadRegistration>> {
        let ring: &mut Ring<K> = &mut self.ring;
        let Some(ring) = (ring as &mut dyn std::any::Any).downcast_mut::<Ring<Linux>>() else {
            return Ok(None);
        };
        let registration = ring.register_thread()?;
        Ok(ring
            .use_thread_registration(&registration)
            .then_some(registration))
    }

    #[cfg(feature = "tokio")]
    fn next_retry(&self) -> Option<Instant> {
        self.retries.iter().map(|&(due, _)| due).min()
    }

    fn close(mut self: Box<Self>) {
        debug_assert_eq!(self.in_ring, 0);
        // SAFETY: `turn` returned true: no request is in the ring (the
        // wake-up read has completed), so the kernel no longer writes the
        // buffer; neither is used again (`self` is dropped next, and a
        // ManuallyDrop is not dropped with it).
        unsafe {
            ManuallyDrop::drop(&mut self.wake_buf);
            ManuallyDrop::drop(&mut self.ring);
        }
    }
}

impl<K: Kernel> Driver<K> {
    pub(crate) fn new(ring: Ring<K>, efd: OwnedFd, config: &ProactorConfig) -> Self {
        Driver {
            ring: ManuallyDrop::new(ring),
            efd,
            wake_buf: ManuallyDrop::new(Box::new(0)),
            wake_armed: false,
            wake_ud: 0,
            tags: Tags::default(),
            retries: Vec::new(),
            in_ring: 0,
            batch: config.batch,
            delay: config.delay,
            spin: config.spin,
            pending: VecDeque::new(),
            enters: 0,
            shutdown_sent: false,
            chained: Vec::new(),
        }
    }

    /// Pushes an entry, submitting to make room if the SQ is full.
    pub(crate) fn push(&mut self, mut entry: Entry) {
        loop {
            // SAFETY: every pointer in `entry` targets memory owned by its
            // op's resources, which stay alive (in the op, or orphaned in the
            // slab, or `wake_buf` here) until its last CQE is reaped.
            match unsafe { self.ring.sq().push(entry) } {
                Ok(()) => {
                    self.in_ring += 1;
                    return;
                }
                Err(full) => {
                    entry = full.0;
                    self.submit(false, None);
                }
            }
        }
    }

    /// Pushes `entries` in order through one view of the SQ (one load of
    /// the kernel's head, one store of the tail), submitting to make room
    /// whenever it is full.
    pub(crate) fn push_all(&mut self, entries: impl IntoIterator<Item = Entry>) {
        let mut pushed = 0;
        let mut sq = self.ring.sq();
        for mut entry in entries {
            loop {
                // SAFETY: every pointer in `entry` targets memory owned by
                // its op's resources, which stay alive (in the op, or
                // orphaned in the slab) until its last CQE is reaped.
                match unsafe { sq.push(entry) } {
                    Ok(()) => {
                        pushed += 1;
                        break;
                    }
                    Err(full) => {
                        entry = full.0;
                        drop(sq);
                        self.in_ring += pushed;
                        pushed = 0;
                        self.submit(false, None);
                        sq = self.ring.sq();
                    }
                }
            }
        }
        drop(sq);
        self.in_ring += pushed;
    }

    /// Notes the members of linked chains among `entries` (in push order:
    /// a chain is contiguous), which this thread is about to submit: if it
    /// exits while they are in the kernel, the kernel no longer runs the
    /// rest of a chain nor fires its linked timeout, so its exit cancels
    /// them (`drive::Drove`). The fallback thread notes none (it exits
    /// only when its Proactor has stopped).
    #[cold]
    fn note_linked(chained: &mut Vec<u64>, entries: &[Entry], fallback: bool) {
        if fallback {
            return;
        }
        let mut after_link = false;
        for entry in entries {
            let link = entry
                .sqe_flags()
                .intersects(SqeFlags::IO_LINK | SqeFlags::IO_HARDLINK);
            if link || after_link {
                chained.push(entry.get_user_data());
            }
            after_link = link;
        }
    }

    /// Submits; with `wait`, waits for a completion, at most `timeout` if
    /// one is given.
    pub(crate) fn submit(&mut self, wait: bool, timeout: Option<Duration>) {
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
                // memory the driver must not abandon. Back off a little.
                eprintln!("ring-proactor: io_uring_enter failed: {e}; retrying");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    pub(crate) fn arm_wake(&mut self) {
        let ptr: *mut u64 = &mut **self.wake_buf;
        let ud = user_data(WAKE_INDEX, self.tags.next());
        let entry = ring_io_ops::Read::new(Fd(self.efd.as_raw_fd()), ptr.cast(), 8)
            .build()
            .user_data(ud);
        self.push(entry);
        self.wake_armed = true;
        self.wake_ud = ud;
    }

    /// A cancellation of the request `ud`.
    pub(crate) fn cancel_entry(ud: u64) -> Entry {
        let entry = ring_io_ops::AsyncCancel::new(ud).build();
        entry.user_data(ud | u64::from(CANCEL_BIT))
    }

    /// The kernel holds CQEs in its overflow backlog (the CQ was full).
    fn overflowed(&self) -> bool {
        self.ring
            .kernel()
            .sq_flags(FlagsRead::Load)
            .contains(SqFlags::CQ_OVERFLOW)
    }
}
