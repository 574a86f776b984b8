//! CQ credit: back-pressure that keeps the CQ from overflowing.

use ring_io_sys::{IORING_CQE_F_MORE, IORING_CQE_F_SKIP};

use crate::sync::{AtomicU32, Ordering};
use crate::{CoreError, CreditRefused, Geometry, GeometryError};

/// Whether a CQE returns the credit of its request: every CQE without
/// `IORING_CQE_F_MORE` is its request's last (a single-shot op's only CQE, a
/// multishot op's final one, a zero-copy send's notification). A
/// `IORING_CQE_F_SKIP` padding entry is no completion and returns nothing.
pub const fn cqe_returns_credit(flags: u32) -> bool {
    flags & (IORING_CQE_F_MORE | IORING_CQE_F_SKIP) == 0
}

fn check_budget(budget: u32, geometry: &Geometry) -> Result<(), GeometryError> {
    if budget > geometry.cq_entries() {
        return Err(GeometryError::BudgetTooLarge {
            budget,
            cq_entries: geometry.cq_entries(),
        });
    }
    Ok(())
}

/// A budget of outstanding completions, no larger than the CQ.
///
/// Each request takes one credit when it is submitted
/// ([`acquire`](Self::acquire); a linked chain of `n` SQEs that may each
/// post a CQE takes `n` with [`acquire_n`](Self::acquire_n)); the credit
/// comes back with its last CQE ([`handle_cqe`](Self::handle_cqe): a CQE
/// without `IORING_CQE_F_MORE`). When the budget is spent the request is
/// refused and handed back in [`CreditRefused`].
///
/// # What it guarantees
///
/// With every submitter taking credit and credit returned only once the
/// CQE's slot is released to the kernel (after
/// [`CqState::poll_release_head`](crate::CqState::poll_release_head)),
/// single-shot requests can never have more CQEs in the ring than it holds,
/// so the CQ cannot overflow. A multishot request keeps its one credit
/// across all its `F_MORE` CQEs, but may post several before the consumer
/// reaps them: leave headroom for such bursts (a budget below the CQ size)
/// or reap between submissions. Requests submitted with
/// `IOSQE_CQE_SKIP_SUCCESS` post no CQE on success: give their credit back
/// with [`release`](Self::release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqCredit {
    budget: u32,
    taken: u32,
}

impl CqCredit {
    /// A budget of `budget` credits; more than the CQ holds is an error.
    pub fn new(budget: u32, geometry: &Geometry) -> Result<Self, GeometryError> {
        check_budget(budget, geometry)?;
        Ok(CqCredit { budget, taken: 0 })
    }

    /// The whole CQ as budget.
    pub fn for_geometry(geometry: &Geometry) -> Self {
        CqCredit {
            budget: geometry.cq_entries(),
            taken: 0,
        }
    }

    /// The budget.
    pub const fn budget(&self) -> u32 {
        self.budget
    }

    /// Credits taken and not yet returned.
    pub const fn in_flight(&self) -> u32 {
        self.taken
    }

    /// Credits left.
    pub const fn available(&self) -> u32 {
        self.budget - self.taken
    }

    /// Take one credit for `request`, or hand it back.
    pub fn acquire<T>(&mut self, request: T) -> Result<T, CreditRefused<T>> {
        self.acquire_n(1, request)
    }

    /// Take `n` credits for `request`, all or nothing.
    pub fn acquire_n<T>(&mut self, n: u32, request: T) -> Result<T, CreditRefused<T>> {
        if n > self.available() {
            return Err(CreditRefused(request));
        }
        self.taken += n;
        Ok(request)
    }

    /// A CQE with these flags was consumed: returns whether it gave a credit
    /// back. A final CQE with no credit taken is an error.
    pub fn handle_cqe(&mut self, flags: u32) -> Result<bool, CoreError> {
        if !cqe_returns_credit(flags) {
            return Ok(false);
        }
        self.release(1)?;
        Ok(true)
    }

    /// Give back `n` credits (for requests that will post no CQE).
    pub fn release(&mut self, n: u32) -> Result<(), CoreError> {
        if n > self.taken {
            return Err(CoreError::CreditUnderflow);
        }
        self.taken -= n;
        Ok(())
    }

    /// `in_flight <= budget`.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        if self.taken > self.budget {
            return Err("credit: more taken than the budget");
        }
        Ok(())
    }
}

/// [`CqCredit`] for many threads: the same rules, over one atomic counter.
///
/// Orderings: [`acquire`](Self::acquire) succeeds with `Acquire` and
/// [`release`](Self::release) uses `Release`. A consumer returns a credit
/// after storing the new CQ head (release), so a producer that takes that
/// credit, fills an SQE and publishes the SQ tail (release, read by the
/// kernel with `smp_load_acquire(&rings->sq.tail)`) has the head store
/// ordered before the kernel's read of `cq.head` (`READ_ONCE` in
/// `io_get_cqe_overflow`'s space check) for the resulting CQE.
#[derive(Debug)]
pub struct AtomicCqCredit {
    budget: u32,
    taken: AtomicU32,
}

impl AtomicCqCredit {
    /// A budget of `budget` credits; more than the CQ holds is an error.
    pub fn new(budget: u32, geometry: &Geometry) -> Result<Self, GeometryError> {
        check_budget(budget, geometry)?;
        Ok(AtomicCqCredit {
            budget,
            taken: AtomicU32::new(0),
        })
    }

    /// The budget.
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Credits taken and not yet returned (a snapshot).
    #[inline]
    pub fn in_flight(&self) -> u32 {
        // Relaxed: a snapshot; acquire/release decide with RMWs.
        self.taken.load(Ordering::Relaxed)
    }

    /// Take one credit for `request`, or hand it back.
    pub fn acquire<T>(&self, request: T) -> Result<T, CreditRefused<T>> {
        self.acquire_n(1, request)
    }

    /// Take `n` credits for `request`, all or nothing.
    #[inline]
    pub fn acquire_n<T>(&self, n: u32, request: T) -> Result<T, CreditRefused<T>> {
        let budget = self.budget;
        // Acquire on success: pairs with the Release in `release`, see the
        // type's doc (the consumer's CQ head store happens before our SQE
        // publication, hence before the kernel's read of the CQ head).
        let r = self
            .taken
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |t| {
                t.checked_add(n).filter(|&s| s <= budget)
            });
        match r {
            Ok(_) => Ok(request),
            Err(_) => Err(CreditRefused(request)),
        }
    }

    /// A CQE with these flags was consumed: returns whether it gave a credit
    /// back.
    #[inline]
    pub fn handle_cqe(&self, flags: u32) -> Result<bool, CoreError> {
        if !cqe_returns_credit(flags) {
            return Ok(false);
        }
        self.release(1)?;
        Ok(true)
    }

    /// Give back `n` credits.
    #[inline]
    pub fn release(&self, n: u32) -> Result<(), CoreError> {
        // Release: pairs with the Acquire in `acquire_n` (see the type's doc).
        self.taken
            .fetch_update(Ordering::Release, Ordering::Relaxed, |t| t.checked_sub(n))
            .map(|_| ())
            .map_err(|_| CoreError::CreditUnderflow)
    }

    /// Give back up to `n` credits, never more than are taken; returns how
    /// many of the `n` found no credit to return (0 when all did).
    ///
    /// For completions the consumer cannot attribute: a CQE another ring
    /// posted into this one (`IORING_OP_MSG_RING`) looks like a final
    /// CQE but answers no request of ours. Returning its "credit" must not
    /// wrap the count (an underflow would refuse every later request, or
    /// read as thousands in flight), so the excess is reported instead.
    #[inline]
    pub fn release_saturating(&self, n: u32) -> u32 {
        // Release: pairs with the Acquire in `acquire_n` (see the type's
        // doc). The closure always returns Some: the update cannot fail.
        let before = match self
            .taken
            .fetch_update(Ordering::Release, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(n))
            }) {
            Ok(t) | Err(t) => t,
        };
        n.saturating_sub(before)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use ring_io_sys::{Features, IORING_CQE_F_NOTIF, SetupFlags};

    fn geo() -> Geometry {
        Geometry::new(2, 4, SetupFlags::empty(), Features::empty()).unwrap()
    }

    #[test]
    fn single_and_multishot() {
        let mut c = CqCredit::for_geometry(&geo());
        assert_eq!(c.budget(), 4);
        assert_eq!(c.acquire("a"), Ok("a"));
        assert_eq!(c.acquire_n(3, "chain"), Ok("chain"));
        assert_eq!(c.acquire("b"), Err(CreditRefused("b")));
        assert_eq!(c.available(), 0);
        // multishot: F_MORE keeps the credit
        assert_eq!(c.handle_cqe(IORING_CQE_F_MORE), Ok(false));
        assert_eq!(c.handle_cqe(IORING_CQE_F_SKIP), Ok(false));
        assert_eq!(c.handle_cqe(0), Ok(true));
        assert_eq!(c.handle_cqe(IORING_CQE_F_NOTIF), Ok(true));
        assert_eq!(c.in_flight(), 2);
        c.release(2).unwrap();
        assert_eq!(c.handle_cqe(0), Err(CoreError::CreditUnderflow));
        assert_eq!(c.check_invariants(), Ok(()));
        assert!(CqCredit::new(5, &geo()).is_err());
        assert_eq!(CqCredit::new(3, &geo()).unwrap().budget(), 3);
    }

    #[test]
    fn atomic_variant() {
        let c = AtomicCqCredit::new(2, &geo()).unwrap();
        assert_eq!(c.acquire(1), Ok(1));
        assert_eq!(c.acquire_n(2, 2), Err(CreditRefused(2)));
        assert_eq!(c.acquire(3), Ok(3));
        assert_eq!(c.acquire(4).unwrap_err().into_inner(), 4);
        assert_eq!(c.handle_cqe(IORING_CQE_F_MORE), Ok(false));
        assert_eq!(c.handle_cqe(0), Ok(true));
        assert_eq!(c.in_flight(), 1);
        assert_eq!(c.release(2), Err(CoreError::CreditUnderflow));
        // Saturating: one credit returned, one CQE found none.
        assert_eq!(c.release_saturating(2), 1);
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.release_saturating(3), 3);
        assert_eq!(c.acquire_n(2, ()), Ok(()));
        assert_eq!(c.release_saturating(1), 0);
        c.release(1).unwrap();
        assert!(AtomicCqCredit::new(9, &geo()).is_err());
        assert_eq!(c.budget(), 2);
    }

    #[test]
    fn atomic_across_threads() {
        extern crate std;
        let c = std::sync::Arc::new(AtomicCqCredit::new(3, &geo()).unwrap());
        let handles: std::vec::Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut got = 0;
                    for _ in 0..if cfg!(miri) { 20 } else { 1000 } {
                        if c.acquire(()).is_ok() {
                            got += 1;
                            assert!(c.in_flight() <= 3);
                            c.release(1).unwrap();
                        }
                    }
                    got
                })
            })
            .collect();
        let total: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(total > 0);
        assert_eq!(c.in_flight(), 0);
    }
}
