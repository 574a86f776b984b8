//! [`Finisher`]: an op's finishing closure (it owns what the op's entry
//! points to and turns the completion into the op's output), kept inside
//! the op when it is small, as nearly every op's is, so making an op
//! allocates nothing; a larger one is boxed.

use std::io;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};

/// A closure that finishes an op: called once with the result and the CQE
/// flags, it makes the op's output.
pub(crate) trait Finish<O>: FnOnce(io::Result<u32>, u32) -> O + Send + 'static {}

impl<O, F: FnOnce(io::Result<u32>, u32) -> O + Send + 'static> Finish<O> for F {}

/// Room for a closure inside the op: a buffer, its length and the file the
/// op keeps open fit (a read's finish is 7 words).
type Storage = MaybeUninit<[usize; 8]>;

/// A [`Finish`] closure, called at most once; dropped uncalled, it drops
/// the closure (and what it owns).
pub struct Finisher<O> {
    /// The closure, or a `Box` of it if it does not fit.
    storage: Storage,
    /// Moves the closure out of `storage` and calls it.
    call: unsafe fn(*mut Storage, io::Result<u32>, u32) -> O,
    /// Drops the closure in `storage`.
    drop: unsafe fn(*mut Storage),
    /// What a `Box<dyn Finish<O>>` is: `Send` (`new` takes only `Send`
    /// closures), neither `Sync` nor unwind-safe.
    _owns: PhantomData<Box<dyn Finish<O>>>,
}

/// Whether `F` is kept inline.
const fn fits<F>() -> bool {
    size_of::<F>() <= size_of::<Storage>() && align_of::<F>() <= align_of::<Storage>()
}

impl<O> Finisher<O> {
    /// Keeps `f`, inline if it fits.
    pub(crate) fn new<F: Finish<O>>(f: F) -> Self {
        let mut storage = Storage::uninit();
        if fits::<F>() {
            // SAFETY: `F` fits the storage in size and alignment (`fits`);
            // `call_inline::<F, O>` and `drop_inline::<F>` read it back as
            // an `F`.
            unsafe { storage.as_mut_ptr().cast::<F>().write(f) };
            Finisher {
                storage,
                call: call_inline::<F, O>,
                drop: drop_inline::<F>,
                _owns: PhantomData,
            }
        } else {
            // SAFETY: a `Box` is one pointer, which the storage holds;
            // `call_boxed::<F, O>` and `drop_boxed::<F>` read it back as a
            // `Box<F>`.
            unsafe { storage.as_mut_ptr().cast::<Box<F>>().write(Box::new(f)) };
            Finisher {
                storage,
                call: call_boxed::<F, O>,
                drop: drop_boxed::<F>,
                _owns: PhantomData,
            }
        }
    }

    /// Calls the closure with the op's result and CQE flags.
    pub(crate) fn call(self, res: io::Result<u32>, flags: u32) -> O {
        // Never dropped: `call` moves the closure out, so it is dropped
        // (or consumed) there, once, even if it panics.
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `call` was made by `new` for the closure in the storage,
        // which is still there (`call` and `drop` run at most once, each
        // consuming `self`).
        unsafe { (this.call)(&mut this.storage, res, flags) }
    }

    /// Calls the closure in `slot` where it lies, leaving `None`: what
    /// `slot.take().unwrap().call(res, flags)` does, without first moving
    /// the finisher out of the slot.
    ///
    /// # Panics
    ///
    /// If `slot` is `None`.
    #[inline]
    pub(crate) fn call_in(slot: &mut Option<Self>, res: io::Result<u32>, flags: u32) -> O {
        let this = slot.as_mut().expect("a finisher is called once");
        let call = this.call;
        // Spent from here: `call` moves the closure out (and drops it even
        // if it panics), so dropping what is left must not drop it again.
        this.drop = drop_nothing;
        // SAFETY: `call` was made by `new` for the closure in the storage,
        // which is still there (never called: `call_in` and `call` consume
        // the finisher, and `drop` is now a no-op).
        let out = unsafe { call(&mut this.storage, res, flags) };
        // The spent finisher owns nothing: forgotten, not dropped.
        std::mem::forget(slot.take());
        out
    }

    /// A finisher that calls `self`, then `f` with its output.
    pub(crate) fn map<P>(self, f: impl FnOnce(O) -> P + Send + 'static) -> Finisher<P>
    where
        O: 'static,
    {
        Finisher::new(move |res: io::Result<u32>, flags: u32| f(self.call(res, flags)))
    }
}

impl<O> Drop for Finisher<O> {
    fn drop(&mut self) {
        // SAFETY: as in `call`: the closure is still in the storage, and
        // this is the last use of the finisher.
        unsafe { (self.drop)(&mut self.storage) }
    }
}

/// # Safety
/// `storage` holds an `F` written by [`Finisher::new`], never read since;
/// it is moved out (the storage must not be used again).
unsafe fn call_inline<F: Finish<O>, O>(
    storage: *mut Storage,
    res: io::Result<u32>,
    flags: u32,
) -> O {
    // SAFETY: the caller's contract.
    let f = unsafe { storage.cast::<F>().read() };
    f(res, flags)
}

/// The drop of a spent finisher (its closure was moved out and called).
///
/// # Safety
/// None needed: it touches nothing (`unsafe` only for its type).
unsafe fn drop_nothing(_: *mut Storage) {}

/// # Safety
/// As [`call_inline`].
unsafe fn drop_inline<F>(storage: *mut Storage) {
    // SAFETY: the caller's contract: a live `F`, dropped once.
    unsafe { storage.cast::<F>().drop_in_place() }
}

/// # Safety
/// `storage` holds a `Box<F>` written by [`Finisher::new`], never read
/// since; it is moved out (the storage must not be used again).
unsafe fn call_boxed<F: Finish<O>, O>(
    storage: *mut Storage,
    res: io::Result<u32>,
    flags: u32,
) -> O {
    // SAFETY: the caller's contract.
    let f = unsafe { storage.cast::<Box<F>>().read() };
    f(res, flags)
}

/// # Safety
/// As [`call_boxed`].
unsafe fn drop_boxed<F>(storage: *mut Storage) {
    // SAFETY: the caller's contract: a live `Box<F>`, dropped once.
    unsafe { storage.cast::<Box<F>>().drop_in_place() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ok(f: Finisher<usize>) -> usize {
        f.call(Ok(7), 3)
    }

    #[test]
    fn an_inline_closure_is_called_once_with_what_it_owns() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (c, buf) = (Counted(drops.clone()), vec![1u8; 5]);
        let f = Finisher::new(move |res: io::Result<u32>, flags| {
            let _c = &c;
            res.unwrap() as usize + flags as usize + buf.len()
        });
        assert!(fits::<[usize; 8]>() && !fits::<[usize; 9]>() && !fits::<u128>());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert_eq!(ok(f), 15);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_large_or_overaligned_closure_is_boxed_and_called_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (c, big) = (Counted(drops.clone()), [3usize; 16]);
        let f = Finisher::new(move |_: io::Result<u32>, _| {
            let _c = &c;
            big.iter().sum::<usize>()
        });
        assert_eq!(ok(f), 48);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        #[repr(align(32))]
        struct Wide(u8);
        let wide = Wide(9);
        let f = Finisher::new(move |_: io::Result<u32>, _| usize::from(wide.0));
        assert_eq!(ok(f), 9);
    }

    #[test]
    fn dropped_uncalled_it_drops_the_closure_once() {
        for big in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let c = Counted(drops.clone());
            let pad = [0usize; 16];
            let f: Finisher<usize> = if big {
                Finisher::new(move |_: io::Result<u32>, _| {
                    pad.len() + usize::from(c.0.load(Ordering::SeqCst) > 0)
                })
            } else {
                Finisher::new(move |_: io::Result<u32>, _| {
                    usize::from(c.0.load(Ordering::SeqCst) > 0)
                })
            };
            // Moved around, as an op is.
            let moved = vec![f];
            drop(moved);
            assert_eq!(drops.load(Ordering::SeqCst), 1, "big: {big}");
        }
    }

    #[test]
    fn a_closure_that_panics_is_dropped_once() {
        for big in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let c = Counted(drops.clone());
            let pad = [0usize; 16];
            let f: Finisher<usize> = if big {
                Finisher::new(move |_: io::Result<u32>, _| {
                    let _c = &c;
                    panic!("finish {}", pad.len())
                })
            } else {
                Finisher::new(move |_: io::Result<u32>, _| {
                    let _c = &c;
                    panic!("finish")
                })
            };
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ok(f)));
            assert!(caught.is_err());
            assert_eq!(drops.load(Ordering::SeqCst), 1, "big: {big}");
        }
    }

    #[test]
    fn a_closure_called_in_place_runs_once_and_a_panic_drops_it_once() {
        for big in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let (c, pad) = (Counted(drops.clone()), [1usize; 16]);
            let mut slot = Some(if big {
                Finisher::new(move |res: io::Result<u32>, flags| {
                    let _c = &c;
                    res.unwrap() as usize + flags as usize + pad.len()
                })
            } else {
                Finisher::new(move |res: io::Result<u32>, flags| {
                    let _c = &c;
                    res.unwrap() as usize + flags as usize
                })
            });
            let out = Finisher::call_in(&mut slot, Ok(7), 3);
            assert_eq!(out, if big { 26 } else { 10 });
            assert!(slot.is_none());
            assert_eq!(drops.load(Ordering::SeqCst), 1, "big: {big}");
            // A panic leaves a spent finisher in the slot: dropping it
            // drops nothing again.
            let c = Counted(drops.clone());
            let mut slot: Option<Finisher<usize>> = Some(Finisher::new(move |_, _| {
                let _c = &c;
                panic!("finish")
            }));
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Finisher::call_in(&mut slot, Ok(0), 0)
            }));
            assert!(caught.is_err() && slot.is_some());
            drop(slot);
            assert_eq!(drops.load(Ordering::SeqCst), 2, "big: {big}");
        }
    }

    #[test]
    fn mapped_finishers_compose() {
        let f = Finisher::new(|res: io::Result<u32>, _| res.unwrap()).map(|n| n as usize * 2);
        assert_eq!(ok(f), 14);
        let zst = Finisher::new(|_: io::Result<u32>, flags: u32| flags as usize);
        assert_eq!(ok(zst), 3);
    }
}
