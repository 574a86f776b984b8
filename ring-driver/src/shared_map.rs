//! A `&self` view of a mapped ring, for [`SharedRing`](crate::SharedRing):
//! the shared ring words as atomics, SQE writes and CQE reads by ring index,
//! and `io_uring_enter`. Where [`Linux`] needs `&mut self` (one thread at a
//! time), this view is `Sync`: who may touch which slot is decided by
//! ring-core's claim protocol, which the `unsafe fn`s here make the caller
//! promise.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use ring_core::{Enter, Geometry};
use ring_sys::{Errno, io_uring_cqe, io_uring_cqe32, io_uring_sqe};

use crate::kernel::{Kernel, Linux, WaitArgs, enter_ring};
use crate::ring::Cqe;
use crate::setup::Params;

/// The mapped rings of one io_uring, shared by reference: the pointers
/// [`Linux`] resolved and validated, used through `&self` (never its `&mut`
/// kernel methods).
pub(crate) struct SharedMap {
    geometry: Geometry,
    linux: Linux,
}

// SAFETY: the pointers in `linux` point into its own mappings, moved with
// it; nothing is tied to the creating thread.
unsafe impl Send for SharedMap {}
// SAFETY: `&self` methods only load and store the ring words atomically,
// and touch SQE/CQE slots through `unsafe fn`s whose callers own the slot
// (ring-core's SharedSq / SharedCq claims). `linux` is only read.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// A shared view of a ring `Linux::new` set up and validated (offsets
    /// checked against the mappings, SQ array filled).
    pub(crate) fn new(linux: Linux) -> SharedMap {
        SharedMap {
            geometry: *linux.geometry(),
            linux,
        }
    }

    fn word(&self, word: NonNull<AtomicU32>) -> &AtomicU32 {
        // SAFETY: `word` points into a mapping `self.linux` keeps alive as
        // long as `self`, aligned and in bounds (checked by `ptr` at setup);
        // the kernel accesses these words atomically too.
        unsafe { word.as_ref() }
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    pub(crate) fn params(&self) -> &Params {
        &self.linux.raw.params
    }

    /// The ring's fd (a shared ring always has one: it refuses
    /// `REGISTERED_FD_ONLY`).
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.linux.raw.ring.fd()
    }

    /// `sq.head`, written by the kernel (`smp_store_release`).
    pub(crate) fn sq_head(&self) -> &AtomicU32 {
        self.word(self.linux.sq_head)
    }

    /// `sq.tail`, read by the kernel (`smp_load_acquire`).
    pub(crate) fn sq_tail(&self) -> &AtomicU32 {
        self.word(self.linux.sq_tail)
    }

    /// `sq.flags` (`NEED_WAKEUP`, `CQ_OVERFLOW`, `TASKRUN`).
    pub(crate) fn sq_flags(&self) -> &AtomicU32 {
        self.word(self.linux.sq_flags)
    }

    /// `sq.dropped`.
    pub(crate) fn sq_dropped(&self) -> &AtomicU32 {
        self.word(self.linux.sq_dropped)
    }

    /// `cq.head`, read by the kernel (`READ_ONCE`).
    pub(crate) fn cq_head(&self) -> &AtomicU32 {
        self.word(self.linux.cq_head)
    }

    /// `cq.tail`, written by the kernel (`smp_store_release`).
    pub(crate) fn cq_tail(&self) -> &AtomicU32 {
        self.word(self.linux.cq_tail)
    }

    /// `cq.overflow`.
    pub(crate) fn cq_overflow(&self) -> &AtomicU32 {
        self.word(self.linux.cq_overflow)
    }

    /// Writes `sqe` into the slot of ring index `index`.
    ///
    /// # Safety
    ///
    /// The caller owns the slot: it claimed `index` from the ring's
    /// `SharedSq` and has not committed it yet, so neither the kernel (the
    /// index is at or above the published tail, below head + entries) nor
    /// another thread reads or writes it.
    pub(crate) unsafe fn write_sqe(&self, index: u32, sqe: &io_uring_sqe) {
        let offset = self.geometry.sqe_offset(index);
        // SAFETY: `sqe_offset` masks the index into the SQE array whose size
        // was checked at setup (a 64-byte write fits a 64- or 128-byte
        // stride); the caller owns the slot (see above).
        unsafe {
            self.linux
                .sqes
                .as_ptr()
                .add(offset)
                .cast::<io_uring_sqe>()
                .write(*sqe)
        }
    }

    /// Reads the `n` CQEs from ring index `index` on, a run that does not
    /// wrap the ring, handing each to `f` in order.
    ///
    /// # Safety
    ///
    /// The caller owns the slots: it claimed `index .. index + n` from the
    /// ring's `SharedCq` (below the acquired `cq.tail`) and has not released
    /// them, so the kernel wrote them and does not overwrite them yet; and
    /// the run does not wrap: `(index & mask) + n <= cq_entries`.
    pub(crate) unsafe fn read_cqes(&self, index: u32, n: u32, mut f: impl FnMut(Cqe)) {
        let n = n as usize;
        // SAFETY: `cqe_offset` masks into the CQE array, whose size was
        // checked at setup: the offset pointer stays inside it.
        let base = unsafe {
            self.linux
                .cqes
                .as_ptr()
                .add(self.geometry.cqe_offset(index))
        };
        if self.geometry.cqe_size() == 32 {
            let base = base.cast::<io_uring_cqe32>();
            for i in 0..n {
                // SAFETY: the run lies inside the CQE array (the caller's
                // promise that it does not wrap), 32-byte stride; the caller
                // owns its slots.
                f(Cqe::from(unsafe { base.add(i).read() }));
            }
        } else {
            let base = base.cast::<io_uring_cqe>();
            for i in 0..n {
                // SAFETY: as above, 16-byte stride.
                f(Cqe::from(unsafe { base.add(i).read() }));
            }
        }
    }

    /// `io_uring_enter(2)` on the plain ring fd (registered ring fds are per
    /// thread, so a shared ring never uses them); with
    /// `IORING_ENTER_EXT_ARG`, bounded by `timeout`.
    pub(crate) fn enter(&self, enter: &Enter, timeout: Option<Duration>) -> Result<u32, Errno> {
        let wait = WaitArgs {
            timeout,
            min_wait: None,
        };
        // SAFETY: every published SQE was fully written before the tail
        // moved over it (ring-core's commit); the pointers SQEs carry are the
        // pusher's promise (`push` is unsafe). The plain fd is used.
        unsafe { enter_ring(&self.linux.raw.ring, enter, &wait) }
    }
}
