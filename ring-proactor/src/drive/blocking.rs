//! [`block_on`]: a future run to completion on the calling thread, which
//! drives the Proactor its ops wait on while nobody else does.

use super::*;

/// Turns one hold of the driver token by [`block_on`] runs before its
/// thread registers the ring's fd in its own table of rings (four
/// syscalls: the register and a duplicate of the fd to unregister by, and
/// when the hold ends the unregister and the close, which later enters
/// repay by skipping the kernel's fd lookup, some 25 ns each here: a hold
/// as short as an `Op::wait` does not register).
const REGISTER_AFTER: u32 = 64;

/// Registers the ring's fd in this thread's table (the driver token's
/// holder, between its turns), counted in `thread_registrations`. `None`
/// where the kernel cannot (before 5.18: not tried again on this
/// Proactor) or this thread's table is full.
#[cold]
fn register_thread(shared: &Shared) -> Option<ring_io_driver::ThreadRegistration> {
    if shared.no_thread_registration.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: `block_on` calls this holding the token, back from its
    // step out, and registering runs no user code.
    let registered = unsafe {
        shared
            .driver
            .with(|d| d.as_mut().map(|d| d.register_thread()))
    }?;
    match registered {
        Ok(Some(registration)) => {
            shared.lock().stats.thread_registrations += 1;
            Some(registration)
        }
        // EBUSY: this thread's 16 slots are taken (by other rings).
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => None,
        Ok(None) | Err(_) => {
            shared.no_thread_registration.store(true, Ordering::Relaxed);
            None
        }
    }
}

/// The waker of [`block_on`]: unparks its thread and, if that thread is
/// waiting in the kernel as the driver, ends the wait.
struct Unpark {
    thread: Thread,
    /// `thread`'s id (read on every wake-up: kept here, not behind the
    /// `Thread`'s pointer).
    id: ThreadId,
    woken: AtomicBool,
    /// The Proactor this thread waits in the kernel for, if it does.
    in_kernel: Mutex<Option<Arc<Shared>>>,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    #[inline]
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if self.id == me() {
            // Woken by its own thread (a completion it dispatched): it is
            // not in the kernel, and polls again next.
            return;
        }
        let driving = self
            .in_kernel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(shared) = driving {
            shared.wake_driver();
        }
        self.thread.unpark();
    }
}

/// Runs `future` to completion on the calling thread. While it is pending
/// on a [`Proactor`](crate::Proactor)'s op, the thread drives that
/// Proactor's ring itself if nobody else does (its ops then complete
/// without a wake-up of another thread); otherwise it parks until woken.
/// Works with any future: a wake-up from elsewhere ends its wait.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        id: me(),
        woken: AtomicBool::new(false),
        in_kernel: Mutex::new(None),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    if exited() || HINT.try_with(|_| ()).is_err() {
        // A thread-local destructor at the thread's exit, run after its
        // exit was reported (see `exited`) or this thread's hint is gone:
        // it polls and sleeps, outside the blocking state (its ops wake
        // the fallback thread, which drives them).
        loop {
            unpark.woken.store(false, Ordering::Relaxed);
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            if !unpark.woken.load(Ordering::Acquire) {
                thread::park();
            }
        }
    }
    /// Ends the blocking state and lets a held token go, even on a panic.
    struct Blocking {
        held: Option<Arc<Shared>>,
        /// The tenure of a step out in progress (the future is polled).
        out: Option<u64>,
        /// Turns run since the token was taken (counted until
        /// [`REGISTER_AFTER`]).
        turns: u32,
        /// This thread's registration of the ring's fd, made once this
        /// hold of the token has run [`REGISTER_AFTER`] turns, dropped
        /// (unregistered) when the hold ends: the registration keeps the
        /// ring's file alive, so it never outlasts a hold (a ring closed
        /// meanwhile is freed as the hold ends).
        registration: Option<ring_io_driver::ThreadRegistration>,
    }
    impl Blocking {
        /// The token was just taken: a new hold. While it lasts, a
        /// wake-up from another thread also ends this thread's wait in the
        /// kernel (at worst spuriously).
        fn hold(&mut self, shared: Arc<Shared>, unpark: &Unpark) {
            *unpark.in_kernel.lock().unwrap_or_else(|e| e.into_inner()) = Some(shared.clone());
            self.held = Some(shared);
            self.turns = 0;
        }

        /// The hold of the token ended (let go, taken over, or the
        /// Proactor stopped).
        fn unhold(&mut self, unpark: &Unpark) -> Option<Arc<Shared>> {
            unpark
                .in_kernel
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            self.registration = None;
            self.held.take()
        }

        /// Back from polling the future: forgets a token taken over
        /// meanwhile.
        #[inline]
        fn back(&mut self, unpark: &Unpark) {
            if let (Some(tenure), Some(shared)) = (self.out.take(), self.held.as_ref()) {
                if !back(shared, tenure) {
                    self.unhold(unpark);
                }
            }
        }
    }
    /// Takes the ring of the Proactor this thread's ops wait on if it is
    /// free (or held by code stepped out), or asks for it when it is let go.
    #[cold]
    fn ask_for_ring(blocking: &mut Blocking, unpark: &Unpark, waker: &Waker) {
        let Some(shared) = HINT.with(|h| h.borrow().shared.clone()) else {
            return;
        };
        if acquire(&shared) {
            note_driver(&shared);
            blocking.hold(shared, unpark);
            return;
        }
        let mut st = shared.lock();
        if st.owner.is_some() {
            // (Out already: the next round takes it over.)
            ask(&shared, &mut st, waker);
        }
    }
    impl Drop for Blocking {
        fn drop(&mut self) {
            BLOCKING.with(|b| b.set(b.get() - 1));
            let (hint, spares) = HINT.with(|h| {
                let mut h = h.borrow_mut();
                (h.shared.take(), std::mem::take(&mut h.spares))
            });
            SPARE.with(|s| s.set(false));
            HINT_PTR.with(|p| p.set(std::ptr::null()));
            // The own waker kept for the next op goes too: it would keep
            // this `block_on`'s `Unpark` alive, and with it the Proactor
            // whose ring it waits in (its drop runs no user code).
            let own = OWN_SPARE.try_with(Cell::take).ok().flatten();
            drop(own);
            drop(hint);
            if BLOCKING.with(Cell::get) == 0 {
                // The Proactor reference kept for the next op: none comes.
                drop_kept_shared();
            }
            for w in spares {
                run_user(|| drop(w));
            }
            // (The hold ends with the `block_on`: its `Unpark` goes too.)
            self.registration = None;
            if let Some(shared) = self.held.take() {
                // A panic of the future: back from it first.
                let kept = self.out.take().is_none_or(|tenure| back(&shared, tenure));
                if kept {
                    release(&shared, true);
                }
            }
        }
    }
    BLOCKING.with(|b| b.set(b.get() + 1));
    let mut blocking = Blocking {
        held: None,
        out: None,
        turns: 0,
        registration: None,
    };
    // Its turns keep this waker's clones rather than waking them: the
    // future is polled after each turn anyway.
    let mut grave = Graveyard {
        own: crate::op::waker_id(&waker),
        ..Graveyard::default()
    };
    let mut scratch = Vec::new();
    loop {
        unpark.woken.store(false, Ordering::Relaxed);
        // The future is user code: while it runs, another thread may take
        // the token over (it must not wait for a future that computes).
        if blocking.out.is_none() {
            blocking.out = blocking.held.as_deref().map(step_out);
        }
        let polled = {
            // The ops it submits may go straight into the SQ (see
            // `holding_here`).
            let _polling = polling(blocking.held.as_deref().zip(blocking.out));
            future.as_mut().poll(&mut cx)
        };
        // Spares its ops did not take (user code: still stepped out).
        drop_spares(&mut scratch);
        // And the Proactor reference its ops left for a next op that did
        // not come in this poll (at QD1 the next op took it): a Proactor
        // whose last op and handle went in this poll is not kept for as
        // long as the future waits on something else.
        drop_kept_shared();
        blocking.back(&unpark);
        if let Poll::Ready(out) = polled {
            return out;
        }
        if let Some(held) = &blocking.held {
            let hinted = hint::hinted();
            if !hinted.is_null() && !std::ptr::eq(Arc::as_ptr(held), hinted) {
                // The future now waits on another Proactor's ops (it waits
                // on ops of two): this one is let go (its fallback thread
                // drives what is left of it, woken when the other was
                // noted) and the other's taken next.
                let old = blocking.unhold(&unpark).expect("held");
                release(&old, true);
            }
        }
        if unpark.woken.load(Ordering::Acquire) {
            if blocking.held.is_none() {
                // Woken before it asked for the ring: another thread (the
                // fallback) completed its op first. It asks anyway, as
                // `park` does, or that thread could serve it across threads
                // for as long as anything is in flight.
                ask_for_ring(&mut blocking, &unpark, &waker);
            }
            continue;
        }
        if blocking.held.is_none() {
            let Some(shared) = HINT.with(|h| h.borrow().shared.clone()) else {
                // Pending on something else than a Proactor: just sleep.
                thread::park();
                continue;
            };
            let took = acquire_how(&shared);
            if took != Took::No {
                // It may submit from now on: its exit is to be reported.
                note_driver(&shared);
                blocking.hold(shared, &unpark);
                if took == Took::Over {
                    // The old holder may have completed this thread's op,
                    // its waker stuck behind that holder's user code: the
                    // future is polled again before the kernel is waited on.
                    continue;
                }
            } else {
                // Ask for the token when it is let go; if it was let go
                // meanwhile, take it (this thread's op may be queued with
                // nobody woken to drive it).
                let mut st = shared.lock();
                if st.owner.is_none() {
                    if !st.stopped {
                        continue;
                    }
                } else if !ask(&shared, &mut st, &waker) && !st.stopped {
                    // Stepped out since: taken over. If it steps out only
                    // after this ask, it wakes this thread (see `ask`).
                    continue;
                }
                drop(st);
                if !unpark.woken.load(Ordering::Acquire) {
                    thread::park();
                }
                continue;
            }
        }
        if blocking.registration.is_none() && blocking.turns < REGISTER_AFTER {
            blocking.turns += 1;
            if blocking.turns == REGISTER_AFTER {
                let shared = blocking.held.as_ref().expect("held");
                blocking.registration = register_thread(shared);
            }
        }
        let shared = blocking.held.as_ref().expect("held");
        // A wake-up that came before `in_kernel` was set must not be slept
        // through.
        let wait = if unpark.woken.load(Ordering::Acquire) {
            Wait::No
        } else {
            Wait::For(None)
        };
        // The turn's wakers and drops run stepped out, and the thread stays
        // out to poll the future (one `back` for both).
        match turn_noted(shared, wait, false, true, &mut grave) {
            After::Holding => {}
            After::SteppedOut(tenure) => blocking.out = Some(tenure),
            After::Stopped => {
                // Nothing left to drive: what the future waits for
                // completes (or fails) without a driver.
                let shared = blocking.unhold(&unpark).expect("held");
                release(&shared, true);
                if !unpark.woken.load(Ordering::Acquire) {
                    thread::park();
                }
            }
        }
    }
}
