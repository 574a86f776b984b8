//! Credit: the CQ credits ops hold while in flight (at most the budget),
//! the ops waiting for it, first come, first served, and the grants of
//! credit that came back to the waiters it woke.
//!
//! Credit that comes back is granted to the first waiters it covers, which
//! are woken to take it: no other op may take it meanwhile. Without the
//! grant, an op that starts before the woken one polls takes it (a waker
//! that starts an op when woken took its own task's credit, for ever). A
//! grant lapses if its op does not take it within
//! [`CREDIT_LAPSE`](crate::CREDIT_LAPSE) (an op polled once and then kept,
//! never polled again: a stored future, a `select!` branch that lost),
//! and the credit goes on to the next waiters (the fallback thread looks,
//! see `drive::fallback`). An op whose grant lapsed waits again in its
//! place when next polled.

use std::task::Waker;
use std::time::Instant;

use super::State;

impl State {
    /// Room in the budget for `n` more credits besides those in flight and
    /// those granted.
    #[inline]
    pub(crate) fn has_room(&self, n: u32) -> bool {
        self.in_flight
            .saturating_add(self.reserved)
            .saturating_add(n)
            <= self.budget
    }

    /// The waiter with `ticket` polls: its grant, if it has one, is its
    /// room again (it takes it as any op takes room, or waits again).
    /// True if it had one.
    #[inline]
    pub(crate) fn take_grant(&mut self, ticket: u64) -> bool {
        let Some((need, _)) = self.grants.remove(&ticket) else {
            return false;
        };
        self.reserved -= need;
        true
    }

    /// Credit of a user op came back: granted to the first waiters it
    /// covers, whose wakers go to `wakers`.
    #[inline]
    pub(crate) fn release_credit(&mut self, n: u32, wakers: &mut Vec<Waker>) {
        self.in_flight = self.in_flight.saturating_sub(n);
        if !self.credit_waiters.is_empty() {
            self.grant(wakers);
        }
    }

    /// Grants the room there is to the first waiters it covers, in order,
    /// for [`CREDIT_LAPSE`](crate::CREDIT_LAPSE); their wakers go to
    /// `wakers`. Stops at the first waiter it does not cover (a chain
    /// waits for the room it needs; ops behind it do not overtake it).
    #[cold]
    pub(crate) fn grant(&mut self, wakers: &mut Vec<Waker>) {
        let mut until = None;
        while let Some((_, &(_, need))) = self.credit_waiters.first_key_value() {
            if !self.has_room(need) {
                break;
            }
            let (ticket, (waker, need)) = self.credit_waiters.pop_first().expect("looked at above");
            let until = *until.get_or_insert_with(|| Instant::now() + crate::CREDIT_LAPSE);
            self.grants.insert(ticket, (need, until));
            self.reserved += need;
            wakers.push(waker);
        }
    }

    /// Ends the grants that lapsed by `now` (counted in
    /// [`credit_lapses`](crate::ProactorStats::credit_lapses)) and grants
    /// the room there is to the next waiters (their wakers go to
    /// `wakers`). Returns when the next grant lapses, if any is left.
    pub(crate) fn lapse_grants(
        &mut self,
        now: Instant,
        wakers: &mut Vec<Waker>,
    ) -> Option<Instant> {
        let mut lapsed = 0;
        let mut freed = 0;
        self.grants.retain(|_, &mut (need, until)| {
            let keep = until > now;
            if !keep {
                lapsed += 1;
                freed += need;
            }
            keep
        });
        self.reserved -= freed;
        self.stats.credit_lapses += lapsed;
        if !self.credit_waiters.is_empty() {
            self.grant(wakers);
        }
        self.grants.values().map(|&(_, until)| until).min()
    }
}
