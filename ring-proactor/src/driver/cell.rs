//! [`DriverCell`]: the driver, reached only by the driver token's holder,
//! without a lock of its own.

use std::cell::UnsafeCell;
#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicBool, Ordering};

use super::Drive;

/// Where a Proactor keeps its driver (`None` once closed, or leaked after
/// a panic). Only the thread that holds the driver token reaches it: not
/// stepped out (see `drive::step_out`), or stepped out but holding the
/// state lock in a step out nobody ended (`drive::holding_here`: a
/// `block_on` pushing its own ops). The token's protocol (taken and let go
/// under the state lock, taken over only under that lock by the
/// compare-exchange that ends a step out, which the holder's `back`
/// races) gives it to one thread at a time, so the driver needs no lock
/// of its own. It had a mutex, locked once per turn and never contended: two
/// atomic read-modify-writes per turn, which is most of a turn's cost
/// above the kernel's at QD1.
///
/// Debug builds check the exclusion (a flag set while a thread is inside),
/// so every test that drives a Proactor from several threads (the chaos,
/// the adversarial suites) would panic on a breach.
pub(crate) struct DriverCell {
    driver: UnsafeCell<Option<Box<dyn Drive>>>,
    #[cfg(debug_assertions)]
    inside: AtomicBool,
}

// SAFETY: the driver is `Send` (`Drive: Send`), and `with`'s contract lets
// one thread at a time reach it, as a mutex would.
unsafe impl Sync for DriverCell {}

impl DriverCell {
    pub(crate) fn new(driver: Option<Box<dyn Drive>>) -> Self {
        DriverCell {
            driver: UnsafeCell::new(driver),
            #[cfg(debug_assertions)]
            inside: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the driver.
    ///
    /// # Safety
    ///
    /// The calling thread holds the driver token and either is not
    /// stepped out (its `back` succeeded, or it has not stepped out since
    /// it took the token), or is stepped out in a step out nobody ended
    /// and holds the state lock for the whole call (`drive::holding_here`,
    /// checked under it: a takeover needs that lock); or no other thread
    /// can reach this cell yet (the Proactor is being built). And the
    /// calling thread is not inside `with` already (`f` does not call it
    /// again, and a step out is never taken inside it). Then no other
    /// thread is inside `with` until the token changes hands, which
    /// happens only after this call returns.
    #[inline]
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&mut Option<Box<dyn Drive>>) -> R) -> R {
        #[cfg(debug_assertions)]
        let _inside = Inside::enter(&self.inside);
        // SAFETY: the contract above: no other reference to the driver
        // exists while `f` runs.
        f(unsafe { &mut *self.driver.get() })
    }
}

/// The debug check's flag, set for as long as a thread is inside
/// [`DriverCell::with`] (cleared on unwind too).
#[cfg(debug_assertions)]
struct Inside<'a>(&'a AtomicBool);

#[cfg(debug_assertions)]
impl<'a> Inside<'a> {
    fn enter(flag: &'a AtomicBool) -> Self {
        assert!(
            !flag.swap(true, Ordering::Acquire),
            "two threads reached a Proactor's driver at once (the driver token's exclusion broke)"
        );
        Inside(flag)
    }
}

#[cfg(debug_assertions)]
impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;
    use std::panic::AssertUnwindSafe;

    /// The debug check catches a second entry before it makes a second
    /// reference to the driver (the outer one is live): here, nested on
    /// one thread, as a breach of the token would be across two.
    #[test]
    #[should_panic(expected = "two threads reached a Proactor's driver at once")]
    fn a_second_entry_panics_in_debug_builds() {
        let cell = DriverCell::new(None);
        // SAFETY: the inner call breaks the contract on purpose; the debug
        // check panics before it makes its reference.
        unsafe {
            cell.with(|_| cell.with(|_| ()));
        }
    }

    /// The flag is cleared when a call returns or unwinds: the next entry
    /// passes.
    #[test]
    fn an_entry_after_a_panic_inside_passes() {
        let cell = DriverCell::new(None);
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: no other thread reaches `cell`.
            unsafe { cell.with(|_| panic!("inside")) }
        }));
        assert!(panicked.is_err());
        // SAFETY: as above.
        assert!(unsafe { cell.with(|d| d.is_none()) });
    }
}
