//! An op's way into the queue: credit, a slot, its entry (alone or in a
//! linked chain), and the driver woken if nobody drives.

use std::io;
use std::sync::Arc;
use std::task::{Poll, Waker};

use ring_io_ops::Entry;

use super::*;

/// Takes credit for `parts` and queues their entries as one linked chain
/// (each but the last with `IOSQE_IO_LINK`); each part's stage becomes
/// `Submitted`. The first part's stage holds the credit ticket while the
/// budget is spent. `Ready(Err)` if the kernel lacks an op, the chain can
/// never fit the budget, or the Proactor has shut down. Without a `waker`
/// ([`Op::start`]), an op past the budget is left as it was (not waiting
/// for credit: no wake-up could reach it).
#[inline]
pub(crate) fn submit(
    shared: &Arc<Shared>,
    parts: &mut [(Entry, &mut Stage)],
    waker: Option<&Waker>,
) -> Poll<io::Result<()>> {
    submit_with(shared, parts, 1, false, waker, None)
}

/// [`submit`], each part taking `credits` CQ credits, as a stream (a
/// multishot request) if `stream`; once submitted, `stored` (if given)
/// says which waker the (single) part's slot holds, as [`waker_id`] shows
/// it.
#[inline]
pub(crate) fn submit_with(
    shared: &Arc<Shared>,
    parts: &mut [(Entry, &mut Stage)],
    credits: u32,
    stream: bool,
    waker: Option<&Waker>,
    stored: Option<&mut WakerId>,
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
        return Poll::Ready(Err(crate::link::too_long()));
    };
    // Wakers are cloned before locking (a clone is user code), one per
    // part; the extra ones are dropped after unlocking.
    let mut wakers = Wakers::new(waker, parts.len());
    // Inside `block_on`, this thread drives next (if nobody else does).
    let will_drive = waker.is_some() && crate::drive::note_pending(shared);
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
    if let Some(ticket) = ticket {
        // Granted credit (if any) is this op's room now.
        st.take_grant(ticket);
    }
    let room = st.free.len() + (CANCEL_BIT as usize).saturating_sub(st.slots.len());
    if room < parts.len() {
        drop(st);
        drop(wakers);
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            "the Proactor's slab has no free slot (2^31 requests outstanding)",
        )));
    }
    // A timer of `Op::timeout` goes past the budget (see
    // `Stage::Unbudgeted`).
    let unbudgeted = matches!(*parts[0].1, Stage::Unbudgeted);
    if !st.has_room(n) && !unbudgeted {
        let Some(waker) = wakers.pop() else {
            return Poll::Pending;
        };
        let ticket = ticket.unwrap_or_else(|| {
            st.next_ticket += 1;
            st.next_ticket
        });
        // The first waiter: the fallback thread starts watching for a
        // wake-up that nobody takes (see `drive::fallback`); one asleep
        // without a timeout is woken for it.
        let watch = st.credit_waiters.is_empty() && st.fallback_idle && !st.fallback_timed;
        let old = st.credit_waiters.insert(ticket, (waker, n));
        *parts[0].1 = Stage::Credit(ticket);
        drop(st);
        if watch {
            shared.idle.notify_all();
        }
        drop(old);
        drop(wakers);
        return Poll::Pending;
    }
    let old = ticket.and_then(|ticket| st.credit_waiters.remove(&ticket));
    if let Some(stored) = stored {
        *stored = wakers.one.as_ref().map_or((0, 0), waker_id);
    }
    st.in_flight += n;
    let last = parts.len() - 1;
    for (i, (entry, stage)) in parts.iter_mut().enumerate() {
        if entry.opcode() == ring_io_sys::IORING_OP_ASYNC_CANCEL {
            // A `cancel_fd`: what ends with ECANCELED from now on may be
            // its doing, and is not submitted again (`State::resubmits`).
            st.events += 1;
            st.last_fd_cancel = st.events;
        }
        let ud = st
            .alloc(&shared.cells, wakers.pop(), credits, stream)
            .expect("room for every part was checked");
        if last > 0 {
            st.slots[ud as u32 as usize].born |= LINKED;
            st.chains_queued = true;
        }
        let entry = if i < last { entry.link() } else { *entry };
        st.queue.push(entry.user_data(ud));
        **stage = Stage::Submitted(ud);
    }
    if st.gathering {
        shared.more.notify_one();
    }
    shared.note_activity(&mut st);
    kick(shared, st, will_drive);
    drop(old);
    Poll::Ready(Ok(()))
}

/// [`submit_with`] of one op (one credit, not a stream) polled with
/// `waker`: nearly every op's first poll, without a chain's loops.
/// Anything out of the common way (an op waiting for credit, an opcode
/// the kernel lacks, a `cancel_fd`, a shutdown, a spent budget, a full
/// slab) goes through [`submit_with`].
#[inline(always)]
pub(crate) fn submit_one(
    shared: &Arc<Shared>,
    entry: &Entry,
    stage: &mut Stage,
    waker: &Waker,
    stored: &mut WakerId,
) -> Poll<io::Result<()>> {
    let opcode = entry.opcode();
    let usual = matches!(stage, Stage::New)
        && opcode != ring_io_sys::IORING_OP_ASYNC_CANCEL
        && shared.probe.check(opcode).is_ok();
    if usual {
        // Inside `block_on`, this thread drives next (if nobody else does);
        // a spare waker of the same task it kept is taken rather than a
        // new clone.
        let (will_drive, spare) = crate::drive::note_pending_waker(shared, waker);
        // Cloned before locking (a clone is user code).
        let waker = spare.unwrap_or_else(|| waker.clone());
        let id = waker_id(&waker);
        let mut st = shared.lock();
        let room = !st.free.is_empty() || st.slots.len() < CANCEL_BIT as usize;
        if !st.shutdown && room && st.has_room(1) {
            st.in_flight += 1;
            let ud = st
                .alloc(&shared.cells, Some(waker), 1, false)
                .expect("room was checked");
            *stage = Stage::Submitted(ud);
            *stored = id;
            if st.direct && crate::drive::holding_here(shared) {
                // The holder's own op, polled by its `block_on`: straight
                // into the SQ, no queue; it turns next, and nobody else
                // needs telling.
                // SAFETY: `holding_here`, checked under the state lock
                // held for the whole call: this thread holds the driver
                // token, in a step out nobody ended (a takeover needs
                // this lock), and polls its `block_on`'s future or runs
                // what its turn collected, after that turn's `with`
                // returned, so it is inside no call of `with`; pushing
                // runs no user code.
                let pushed = unsafe {
                    shared
                        .driver
                        .with(|d| d.as_mut().and_then(|d| d.push_direct(entry, ud)))
                };
                if let Some(in_ring) = pushed {
                    st.stats.max_in_ring = st.stats.max_in_ring.max(in_ring);
                    st.stats.holder_pushes += 1;
                    if watch_holder(shared, &mut st) {
                        drop(st);
                        shared.idle.notify_one();
                    }
                    return Poll::Ready(Ok(()));
                }
                // The SQ is full, or the driver left its plain way: the
                // holder's next turn looks at the queue (and this thread,
                // not in the kernel, needs no waking).
                st.set_direct(shared, false);
                st.sleeping = false;
            }
            st.queue.push(entry.user_data(ud));
            if st.gathering {
                shared.more.notify_one();
            }
            shared.note_activity(&mut st);
            kick(shared, st, will_drive);
            return Poll::Ready(Ok(()));
        }
        drop(st);
        drop(waker);
    }
    submit_with(
        shared,
        &mut [(*entry, stage)],
        1,
        false,
        Some(waker),
        Some(stored),
    )
}

/// One clone of a waker per part of a chain, without a heap allocation
/// for the common chain of one.
struct Wakers {
    one: Option<Waker>,
    more: Vec<Waker>,
}

impl Wakers {
    fn new(waker: Option<&Waker>, parts: usize) -> Self {
        match waker {
            Some(w) if parts == 1 => Wakers {
                one: Some(w.clone()),
                more: Vec::new(),
            },
            Some(w) => Wakers {
                one: None,
                more: (0..parts).map(|_| w.clone()).collect(),
            },
            None => Wakers {
                one: None,
                more: Vec::new(),
            },
        }
    }

    fn pop(&mut self) -> Option<Waker> {
        self.one.take().or_else(|| self.more.pop())
    }
}
