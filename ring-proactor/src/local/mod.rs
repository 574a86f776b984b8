//! [`LocalProactor`]: a Proactor for one thread, the model of monoio and
//! tokio-uring: no lock, no driver token, no other thread.
//!
//! Its state sits in a `RefCell` that is never borrowed while user code
//! (a waker, a `Drop`) runs: user code collected during a turn runs after
//! the borrow ends, so it may use the LocalProactor again (drop an op,
//! wait on one). An op's SQE goes into the SQ when the op is first polled;
//! the thread submits and reaps when it drives ([`LocalProactor::block_on`],
//! [`LocalOp::wait`], [`LocalProactor::park`], [`LocalProactor::drive`]).

mod multi;
pub(crate) mod op;
mod ops;
mod slab;
mod submit;
mod task;
mod turn;
mod wakers;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use ring_io_driver::{Probe, Ring, SetupError};

use crate::config::*;
use crate::fixed::Pool;
use crate::state::{Release, Tags};
use wakers::{SlotWaker, Wakers};

pub use multi::LocalMulti;
pub use op::LocalOp;
pub use task::LocalTask;
pub use turn::LocalUnparker;

/// A Proactor for the thread that made it (`!Send`): the same safe,
/// owned-buffer ops, each a [`LocalOp`] future, with no lock, no atomic
/// operation and no other thread on an op's path. The ring is set up with
/// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` where the
/// kernel has them (6.1): the kernel runs completion work only when this
/// thread enters the ring.
///
/// Nothing drives it but its thread: ops complete while that thread runs
/// [`block_on`](LocalProactor::block_on) (or [`LocalOp::wait`]), or an
/// executor that calls [`park`](LocalProactor::park) when its tasks are all
/// pending (and [`drive`](LocalProactor::drive) between polls, if it likes)
/// and wakes it with an [`unparker`](LocalProactor::unparker). An op polled
/// by an executor that does neither never completes. For an executor with
/// several threads, use the [`Proactor`](crate::Proactor).
///
/// Its `block_on` is an executor of its own for tasks: one task per
/// connection, [`spawn`](LocalProactor::spawn)ed from inside it, each
/// polled only when one of its ops completes (or its waker is used).
///
/// The promises are the Proactor's: the kernel writes only into buffers
/// the op owns; dropping an op in flight cancels it and keeps its buffers
/// until the kernel is done with them; a CQE that names no request of this
/// ring is counted ([`ProactorStats::unexpected_cqes`]) and changes
/// nothing (from Linux 6.5 the ring has no fd at all,
/// [`has_no_fd`](LocalProactor::has_no_fd), so no other code in the
/// process can post one into it); dropping the last handle (the LocalProactor and its ops)
/// cancels what is left and waits (at most 2 s) for the kernel to let go,
/// leaking the ring and the buffers of a request it would not cancel
/// rather than freeing memory the kernel may still write.
///
/// Linked chains ([`LocalOp::link`], bounded by a
/// [`link_timeout`](LocalProactor::link_timeout)) work as the Proactor's:
/// each chain goes to the kernel whole, in one submission. So do fixed
/// buffers ([`ProactorConfig::fixed_buffers`]): taken with
/// [`fixed_buffer`](LocalProactor::fixed_buffer), used by
/// [`read_fixed`](LocalProactor::read_fixed) and
/// [`write_fixed`](LocalProactor::write_fixed).
///
/// ```
/// use ring_io_proactor::{LocalProactor, ProactorConfig};
///
/// let p = LocalProactor::new(ProactorConfig::new(64))?;
/// let n = p.block_on(async {
///     let ops: Vec<_> = (0..32).map(|_| p.nop()).collect();
///     let mut n = 0;
///     for op in ops {
///         op.await?;
///         n += 1;
///     }
///     Ok::<_, std::io::Error>(n)
/// })?;
/// assert_eq!(n, 32);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalProactor {
    pub(crate) inner: Rc<Inner>,
}

/// What the LocalProactor and its ops share.
pub struct Inner {
    pub(crate) st: RefCell<LState>,
    pub(crate) probe: Probe,
    /// Ends this thread's wait in the kernel (see [`turn::Park`]).
    pub(crate) park: Arc<turn::Park>,
    /// The waker [`block_on`](LocalProactor::block_on) polls with (it
    /// unparks this thread); `Slab::wakers` shares it with the ops it polls.
    pub(crate) waker: Rc<Waker>,
    /// A turn woke `waker` (the completion of an op that waits with it):
    /// what waking it through its vtable does to `park.woken`, without an
    /// atomic operation, as it happens on this thread. Wherever this thread
    /// looks at `park.woken` (block_on, park, a turn about to wait), it
    /// looks at this too.
    pub(crate) own_woken: Cell<bool>,
    /// The most user ops in flight at once.
    pub(crate) budget: u32,
    /// The fixed buffers registered with the ring, if any (dropped after
    /// the ring: see `Drop for Inner`).
    pub(crate) fixed: Option<Arc<Pool>>,
    /// The tasks of [`spawn`](LocalProactor::spawn) (see `task.rs`).
    pub(crate) tasks: task::Tasks,
}

pub(crate) enum LSlotState {
    Free,
    /// In the kernel; the op's future is alive.
    Waiting(SlotWaker),
    /// The CQE arrived: `(res, flags)`.
    Done(i32, u32),
    /// The op's future was dropped: what it owned waits for the CQE.
    Orphan(Box<dyn Release>),
    /// A multishot request (boxed: the slots of single ops stay small).
    Stream(Box<StreamSlot>),
    /// A dropped stream: what it owned, with the CQEs that came since,
    /// released when the last one arrives.
    OrphanStream(Box<OrphanedStream>),
}

/// What a dropped stream owned, and the CQEs that came since.
pub(crate) type OrphanedStream = (Box<dyn Release>, Vec<(i32, u32)>);

/// A multishot request's slot: its CQEs not yet taken, its waker, and
/// whether the last CQE (without `IORING_CQE_F_MORE`) has arrived.
pub(crate) struct StreamSlot {
    pub(crate) cqes: VecDeque<(i32, u32)>,
    pub(crate) waker: SlotWaker,
    pub(crate) ended: bool,
}

pub(crate) struct LSlot {
    /// The random high word of the request's `user_data`.
    pub(crate) tag: u32,
    /// Cancellations sent for it (the retry backoff's exponent).
    pub(crate) attempts: u32,
    pub(crate) state: LSlotState,
}

impl LSlot {
    /// The request is in the kernel and was asked to cancel (dropped, or
    /// cancelled with its future alive).
    pub(crate) fn cancelling(&self) -> bool {
        match self.state {
            LSlotState::Orphan(_) | LSlotState::OrphanStream(..) => true,
            LSlotState::Waiting(_) => self.attempts > 0,
            LSlotState::Stream(ref s) => !s.ended && self.attempts > 0,
            LSlotState::Free | LSlotState::Done(..) => false,
        }
    }
}

pub(crate) struct LState {
    /// Leaked, never dropped, unless the kernel holds no request of it.
    pub(crate) ring: ManuallyDrop<Ring>,
    pub(crate) slab: Slab,
    /// Requests in the kernel that own memory (ops and the wake-up read):
    /// each is counted down only by a CQE that names it (slot and tag),
    /// so forged CQEs cannot make the ring look empty while the kernel
    /// may still write what they own.
    pub(crate) in_ring: u32,
    /// Cancellations in the kernel (they own no memory). Their CQEs
    /// cannot be told from forged ones once the target's slot is freed:
    /// one that arrives while none is counted here is unexpected.
    pub(crate) cancels_in_ring: u32,
    /// The eventfd read that ends a wait when another thread wakes this
    /// one: armed, its `user_data`, and its buffer (heap: the kernel
    /// writes it while armed).
    pub(crate) wake_armed: bool,
    pub(crate) wake_ud: u64,
    pub(crate) wake_buf: ManuallyDrop<Box<u64>>,
    /// Cancellations to send again (the kernel had not found the request
    /// yet, or it was running), when and for which request.
    pub(crate) retries: Vec<(Instant, u64)>,
    pub(crate) stats: ProactorStats,
    /// What a turn leaves to run after its borrow (kept for its capacity).
    pub(crate) graves: Vec<turn::Grave>,
    /// The last buffer group id handed to a multishot recv.
    pub(crate) next_bgid: u16,
}

/// The slot table: one slot per user op in flight.
pub(crate) struct Slab {
    pub(crate) slots: Vec<LSlot>,
    pub(crate) free: Vec<u32>,
    pub(crate) tags: Tags,
    /// User requests in the kernel (an op until its CQE, a stream until
    /// it is done with): what the budget bounds. An op done but not yet
    /// taken keeps its slot, not its room (as the Proactor's credit comes
    /// back at the reap).
    pub(crate) in_flight: u32,
    /// Ops waiting for `in_flight` to drop below the budget, by ticket
    /// (first come, first served): one place per op, however often it is
    /// polled, left when it is dropped or cancelled.
    /// Each with the slots it needs (a chain's length).
    pub(crate) credit_waiters: VecDeque<(u64, SlotWaker, u32)>,
    /// The last ticket given out.
    pub(crate) next_ticket: u64,
    /// The most slots ops may hold (`ProactorConfig::max_in_flight`).
    pub(crate) budget: u32,
    /// Room that came back, granted to the waiters it woke: ticket, slots,
    /// until when (see [`Slab::grant_first`]).
    pub(crate) grants: Vec<(u64, u32, Instant)>,
    /// The slots in `grants`, which no other op may take.
    pub(crate) reserved: u32,
    /// The waker that one task's ops share.
    pub(crate) wakers: Wakers,
}

impl LocalProactor {
    /// Sets up a ring as `config` says (`entries`, `cq_entries`,
    /// `max_in_flight`, `fixed_buffers`; the batching knobs concern the
    /// [`Proactor`](crate::Proactor)'s driving threads and are ignored), with
    /// `SINGLE_ISSUER | DEFER_TASKRUN` where the kernel has them. Errors as
    /// [`Proactor::new`](crate::Proactor::new)'s (which include the kernel
    /// refusing to register the fixed buffers).
    pub fn new(config: ProactorConfig) -> Result<LocalProactor, SetupError> {
        // The fixed buffers first: the ring that has them registered is
        // closed (or leaked) before the last `Arc` of the pool goes.
        let fixed = config
            .fixed
            .map(|(n, size)| Pool::new(n, size))
            .transpose()?;
        // SAFETY: eventfd(2) takes no pointers; the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(SetupError::Io(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let builder = config.local_builder();
        // The best ring the kernel offers: no fd at all (6.5: nothing else
        // in the process can name it, so no CQE can be forged into it),
        // then task work deferred to this thread (6.1), then the defaults.
        // An older kernel refuses the flags (EINVAL, or the builder names
        // them unsupported); a thread whose 16 registered-ring slots are
        // taken refuses the first (EBUSY).
        let ring = builder
            .clone()
            .defer_taskrun()
            .registered_fd_only()
            .build()
            .or_else(|_| builder.clone().defer_taskrun().build())
            .or_else(|_| builder.build())
            .map_err(crate::proactor::proactor_setup_error)?;
        if let Some(pool) = &fixed {
            // SAFETY: the pool's memory stays allocated while the ring
            // lives: `Inner` holds the pool, and its drop closes the ring
            // (or leaks it, with the resources of the requests still in
            // it, among them each FixedBuf one uses) before the pool's
            // `Arc` goes.
            unsafe { ring.registrar().register_buffers(&pool.iovecs()) }.map_err(SetupError::Io)?;
        }
        let probe = ring.probe().map_err(SetupError::Io)?;
        let stats = ProactorStats {
            cq_entries: ring.params().cq_entries(),
            ..ProactorStats::default()
        };
        let budget = config.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        let park = Arc::new(turn::Park::new(efd));
        let waker = Rc::new(Waker::from(Arc::new(LocalUnparker::new(park.clone()))));
        let st = LState {
            ring: ManuallyDrop::new(ring),
            slab: Slab {
                slots: Vec::new(),
                free: Vec::new(),
                tags: Tags::default(),
                in_flight: 0,
                credit_waiters: VecDeque::new(),
                wakers: Wakers::new(waker.clone()),
                next_ticket: 0,
                budget,
                grants: Vec::new(),
                reserved: 0,
            },
            in_ring: 0,
            cancels_in_ring: 0,
            wake_armed: false,
            wake_ud: 0,
            wake_buf: ManuallyDrop::new(Box::new(0)),
            retries: Vec::new(),
            stats,
            graves: Vec::new(),
            next_bgid: 0,
        };
        Ok(LocalProactor {
            inner: Rc::new(Inner {
                st: RefCell::new(st),
                probe,
                park: park.clone(),
                waker,
                own_woken: Cell::new(false),
                budget,
                fixed,
                tasks: task::Tasks::new(park.clone()),
            }),
        })
    }

    /// The opcodes the kernel supports (probed once at start).
    pub fn probe(&self) -> &Probe {
        &self.inner.probe
    }

    /// The most ops in flight at once (`ProactorConfig::max_in_flight`).
    pub fn max_in_flight(&self) -> u32 {
        self.inner.budget
    }

    /// Counters, as of now. `enters` counts `io_uring_enter` calls.
    pub fn stats(&self) -> ProactorStats {
        let mut st = self.inner.st.borrow_mut();
        // The kernel's count, read when asked (not at every turn).
        st.stats.cq_overflow = st.ring.overflow();
        st.stats
    }

    /// Whether the ring has `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1).
    pub fn defers_task_work(&self) -> bool {
        self.setup_flags()
            .contains(ring_io_sys::SetupFlags::DEFER_TASKRUN)
    }

    /// Whether the ring has no fd (`IORING_SETUP_REGISTERED_FD_ONLY`, Linux
    /// 6.5): only this thread's registered-ring table names it, so no other
    /// code in the process can post a completion into it
    /// (`IORING_OP_MSG_RING` needs an fd).
    pub fn has_no_fd(&self) -> bool {
        self.setup_flags()
            .contains(ring_io_sys::SetupFlags::REGISTERED_FD_ONLY)
    }

    /// The ring's setup flags.
    fn setup_flags(&self) -> ring_io_sys::SetupFlags {
        self.inner.st.borrow().ring.params().flags()
    }
}

impl fmt::Debug for LocalProactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProactor")
            .field("max_in_flight", &self.inner.budget)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// How long the last handle's drop waits for the kernel to let go of
/// cancelled requests before it leaks their memory instead.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Drop for Inner {
    fn drop(&mut self) {
        // No op is alive (each holds an `Rc`): what is left in the kernel
        // is orphans and the wake-up read. Cancel them all and reap until
        // the kernel holds nothing, for a bounded time.
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let st = self.st.get_mut();
        // The waker kept for a task's ops (user code when dropped: a panic
        // of it stays here), and those of ops that waited for room.
        let kept = std::mem::take(&mut st.slab.wakers);
        crate::state::run_user(|| drop(kept));
        for (_, waiter, _) in st.slab.credit_waiters.drain(..) {
            crate::state::run_user(|| drop(waiter));
        }
        turn::cancel_all(st, &self.park);
        while st.in_ring > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            turn::cancel_due(st);
            let wait = st
                .retries
                .iter()
                .map(|&(due, _)| due.saturating_duration_since(Instant::now()))
                .min()
                .map_or(left, |r| r.min(left));
            let _ = st.ring.submitter().submit_and_wait_timeout(1, wait);
            st.stats.enters += 1;
            turn::reap(st, &self.own_woken);
            // Resources of requests that ended are released (the wake-up
            // read is cancelled, not re-armed).
            let mut graves = std::mem::take(&mut st.graves);
            turn::bury(&mut graves);
            st.graves = graves;
        }
        if st.in_ring == 0 {
            // SAFETY: the kernel holds no request: nothing writes the
            // wake-up buffer any more, and the ring is dropped once.
            unsafe {
                ManuallyDrop::drop(&mut st.wake_buf);
                ManuallyDrop::drop(&mut st.ring);
            }
        } else {
            // The kernel would not let go: leak the ring, and what the
            // requests own, rather than free memory it may still write.
            for slot in st.slab.slots.drain(..) {
                match slot.state {
                    LSlotState::Orphan(resources) => std::mem::forget(resources),
                    LSlotState::OrphanStream(orphan) => std::mem::forget(orphan),
                    _ => {}
                }
            }
        }
    }
}
