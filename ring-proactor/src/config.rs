//! How a Proactor is set up ([`ProactorConfig`]) and what it counts ([`ProactorStats`]).

#[cfg(doc)]
use crate::Proactor;
use std::time::Duration;

use ring_io_driver::Builder;
use ring_io_sys::SetupFlags;

/// The most ops in flight at once unless [`ProactorConfig::max_in_flight`]
/// says otherwise: enough for a server's idle connections (each holds a
/// pending receive), a bound on the memory the slot table and the kernel's
/// overflow backlog may take.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1 << 20;

/// How long credit that came back stays granted to the op it woke. Credit
/// that comes back (an op past the budget waits for it, first come, first
/// served) is granted to the first waiters it covers, which are woken to
/// take it: no other op may take it meanwhile (not even one that the woken
/// op's own waker starts). An op polled once and then kept (never polled
/// again) would hold its grant for ever, and the ops behind it would wait
/// with the credit unused: a grant not taken within this time lapses, and
/// the credit goes on to the next waiters (counted in
/// [`ProactorStats::credit_lapses`]). The Proactor's fallback thread
/// watches for that; a [`LocalProactor`] does in its turns: at once in a
/// turn about to wait in the kernel (all its thread had to run has run),
/// after this long over turns that do not wait. An op whose grant lapsed
/// loses nothing: it is first again when polled.
///
/// [`LocalProactor`]: crate::LocalProactor
pub const CREDIT_LAPSE: Duration = Duration::from_millis(10);

/// How a [`Proactor`] sets up its ring and batches.
#[derive(Debug, Clone)]
pub struct ProactorConfig {
    pub(crate) entries: u32,
    pub(crate) cq_entries: Option<u32>,
    pub(crate) batch: u32,
    pub(crate) max_in_flight: Option<u32>,
    pub(crate) delay: Duration,
    pub(crate) spin: Duration,
    pub(crate) fixed: Option<(u16, usize)>,
    pub(crate) defaults: bool,
}

impl ProactorConfig {
    /// A ring of `entries` SQ slots (the CQ gets the kernel's default, twice
    /// as many), batches of up to `entries`, and at most
    /// [`DEFAULT_MAX_IN_FLIGHT`] ops in flight. Neither size bounds how many
    /// ops may be in flight: a full SQ is submitted, and completions past a
    /// full CQ wait in the kernel's overflow backlog (see
    /// [Back-pressure](Proactor#back-pressure)).
    pub fn new(entries: u32) -> Self {
        ProactorConfig {
            entries,
            cq_entries: None,
            batch: entries,
            max_in_flight: None,
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

    /// The most ops in flight at once (default [`DEFAULT_MAX_IN_FLIGHT`];
    /// 0 is raised to 1): an op past it stays pending (its `wait()`
    /// blocks) until an earlier one completes, first come first served.
    /// It bounds memory (the slot table, and the kernel's overflow backlog
    /// when completions outrun the CQ), not the CQ: a dropped op counts
    /// until its cancellation has completed too.
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.max_in_flight = Some(max.max(1));
        self
    }

    /// When fewer than [`batch`](Self::batch) new ops are queued, wait up
    /// to `delay` for more before submitting (default: zero, submit at
    /// once). Trades latency for fewer `io_uring_enter` calls when many
    /// threads submit. A delay too long to add to the clock
    /// (`Duration::MAX`) waits until the batch is full. Turns that must not
    /// block ([`Proactor::drive`], a tokio drive task) submit at once.
    pub fn submit_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// How long the fallback thread, out of work, keeps polling for more before it
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
    /// [`Proactor::read_fixed`] and [`Proactor::write_fixed`] (a
    /// [`LocalProactor`](crate::LocalProactor) has the same methods).
    /// Registration counts against `RLIMIT_MEMLOCK`; [`Proactor::new`] (and
    /// `LocalProactor::new`) fails if the kernel refuses it, and with
    /// `InvalidInput`, before allocating, for what no kernel registers: no
    /// buffer, more than 16384, or one larger than 1 GiB.
    pub fn fixed_buffers(mut self, count: u16, size: usize) -> Self {
        self.fixed = Some((count, size));
        self
    }

    /// Set the ring up without the [`Builder`]'s fast defaults.
    pub fn no_defaults(mut self) -> Self {
        self.defaults = false;
        self
    }

    pub(crate) fn builder(&self) -> Builder {
        // Any thread may drive the ring, so: no ring fd registered to one
        // thread, and no COOP_TASKRUN, under which the kernel queues a
        // request's task work on the thread that submitted it without
        // waking it (a thread that submitted, then stopped driving and
        // sleeps elsewhere, would hold up completions others wait for).
        let mut b = Builder::new(self.entries)
            .register_ring_fd(false)
            .exclude_defaults(SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG);
        if !self.defaults {
            b = b.no_defaults();
        }
        if let Some(cq) = self.cq_entries {
            b = b.cq_entries(cq);
        }
        b
    }

    /// The builder of a [`LocalProactor`](crate::LocalProactor)'s ring: one
    /// thread submits and waits, so the fast defaults stay (task work
    /// deferred or run cooperatively, the ring fd registered to it).
    pub(crate) fn local_builder(&self) -> Builder {
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
    /// Times a driver submitted or waited (at most one `io_uring_enter`
    /// each; published at the driver's next update).
    pub enters: u64,
    /// Cancellations sent for dropped ops (or at shutdown).
    pub cancels: u64,
    /// The kernel's `cq.overflow` counter, as last read: CQEs the kernel
    /// dropped because it could not allocate room in its overflow backlog
    /// (memory exhausted). Stays 0 otherwise; a request whose CQE was
    /// dropped never completes.
    pub cq_overflow: u32,
    /// Turns in which the kernel held CQEs in its overflow backlog (the CQ
    /// had filled): the driver pushed nothing new until it had reaped them.
    pub overflow_pauses: u64,
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
    /// never used or no longer waits for), ignored. Unsafe code in the
    /// process that can name the ring's fd can post CQEs into it
    /// (`IORING_OP_MSG_RING`); they are counted here and change nothing.
    pub unexpected_cqes: u64,
    /// Times the fallback thread took the ring because work was queued or
    /// in flight and no caller drove it. Each is one change of driver (one
    /// thread wake-up). An executor that parks on the Proactor
    /// ([`Proactor::park`](crate::Proactor::park)) keeps this low; one that
    /// never blocks on it is served by the fallback throughout. (The
    /// fallback thread taking the ring over from a holder stuck in user
    /// code is counted in [`token_takeovers`](Self::token_takeovers).)
    pub fallback_takeovers: u64,
    /// Times a thread took the driver token over from a holder that was
    /// running user code between its turns (a future polled by
    /// [`block_on`](crate::block_on) that computes, a waker or a `Drop`
    /// that blocks), so that user code never holds the ring up for the
    /// other threads: a thread about to block on the Proactor, or the
    /// fallback thread, for work nobody waits on, once the holder has
    /// stayed 50 ms in its user code (a slow or overloaded machine can
    /// show a few of those with no user code to blame: a holder preempted
    /// there looks stuck).
    pub token_takeovers: u64,
    /// Requests submitted again because the kernel failed them with
    /// `ECANCELED` before they ran, after the thread that had submitted
    /// them (a caller that drove the ring) exited. See the Proactor's
    /// "Who submits" docs.
    pub resubmitted: u64,
    /// Times a thread that drove the ring for long in one `block_on`
    /// registered the ring's fd in its own table of rings
    /// (`IORING_REGISTER_RING_FDS`, Linux 5.18), so its enters skip the fd
    /// lookup; the registration ends with its hold of the driver token.
    pub thread_registrations: u64,
    /// Grants of credit that lapsed (see
    /// [`CREDIT_LAPSE`](crate::CREDIT_LAPSE)): the op woken for the credit
    /// had not taken it (an op polled once and then kept, never polled
    /// again), so it went on to the next waiters; the op that did not come
    /// is first in the queue again when it is polled.
    pub credit_lapses: u64,
    /// Ops that a [`block_on`](crate::block_on) driving the ring pushed
    /// into the SQ itself as its future polled them (no queue, and a turn
    /// that takes the Proactor's lock only to reap), once its turns had
    /// found nothing else to do for a while. Work from other threads
    /// (queued ops, cancellations) ends that until its turns are quiet
    /// again.
    pub holder_pushes: u64,
}
