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

use ring_io_core::{Enter, Geometry};
use ring_io_sys::{Errno, io_uring_cqe, io_uring_cqe32, io_uring_sqe, io_uring_sqe128};

use crate::kernel::{Kernel, Linux, WaitArgs, enter_ring};
use crate::ring::Cqe;
use crate::setup::Params;

/// The mapped rings of one io_uring, shared by reference: the pointers
/// [`Linux`] resolved and validated, used through `&self` (never its `&mut`
/// kernel methods).
pub(crate) struct SharedMap {
    geometry: Geometry,
    linux: Linux,
    // After `linux`: fields drop in order, so the ring fd is closed (and
    // the rings unmapped) before the barrier waits for the kernel.
    barrier: ExitBarrier,
}

/// Tells when the kernel has freed a ring after its fd was closed.
///
/// Closing a ring's last fd does not stop its requests: the kernel queues
/// `io_ring_exit_work`, which cancels what it can and waits, in the
/// background, until every request has completed and been freed (the
/// ring's `refs`, which every request holds); only then does it free the
/// ring (`io_ring_ctx_free`) and with it the fixed-file table. So: at
/// setup, the write end of a pipe is registered as the ring's only fixed
/// file and closed here; the kernel then holds the only reference to it.
/// When the ring is freed, the pipe loses its last writer and a read of
/// the read end returns end-of-file: every request is gone, and none can
/// touch memory any more. This holds for every request the kernel took,
/// whatever CQEs it did or did not post, on every kernel (5.1+), and does
/// not trust any count of ours.
///
/// What it cannot see through (documented on `SharedRing`): a second
/// reference to the ring file (a `dup` of its fd, a child forked before
/// `exec`, another ring's fixed-file table holding it) keeps the ring
/// alive, and the wait lasts until that reference goes; a file installed
/// over slot 0 of the table (which the pushes of a `SharedRing` refuse, but
/// another ring can do with `IORING_MSG_SEND_FD` on Linux 6.0+ if it names
/// this ring's fd) ends the wait early.
struct ExitBarrier {
    /// The pipe's read end; -1 once waited for.
    read_end: i32,
}

impl ExitBarrier {
    /// Registers a pipe's write end as the only fixed file of `ring`.
    fn register(ring: &crate::sys::RingFd) -> std::io::Result<ExitBarrier> {
        let mut fds = [-1i32; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let [read_end, write_end] = fds;
        // SAFETY: IORING_REGISTER_FILES reads `nr_args` (1) i32 fds from
        // the pointer, which is valid for the call; the kernel takes its
        // own reference to the file.
        let r = unsafe { ring.register(ring_io_sys::IORING_REGISTER_FILES, &raw const fds[1], 1) };
        // The kernel's reference (if registered) is now the only writer.
        crate::sys::close(write_end);
        match r {
            Ok(_) => Ok(ExitBarrier { read_end }),
            Err(e) => {
                crate::sys::close(read_end);
                Err(std::io::Error::other(format!(
                    "a SharedRing registers one fixed file (the pipe that tells when the \
                     kernel has freed the ring on close); IORING_REGISTER_FILES failed: {e}"
                )))
            }
        }
    }

    /// Closes the read end without waiting: for a ring that never
    /// published an entry, so the kernel has no request to let go of.
    fn forget(&mut self) {
        if self.read_end >= 0 {
            crate::sys::close(self.read_end);
            self.read_end = -1;
        }
    }

    /// Blocks until the pipe's write end is released: the ring is freed.
    /// Call after the ring fd is closed.
    fn wait(&mut self) {
        if self.read_end < 0 {
            return;
        }
        let mut sink = [0u8; 64];
        loop {
            // SAFETY: `sink` is valid and writable for its length; the fd
            // is ours.
            let n = unsafe { libc::read(self.read_end, sink.as_mut_ptr().cast(), sink.len()) };
            if n == 0 {
                break; // end-of-file: the ring is freed
            }
            if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                // Only EBADF/EFAULT/EIO could land here, none of which a
                // pipe we own produces; waiting on would never end.
                break;
            }
            // Data (nothing of ours writes it) or EINTR: read on.
        }
        crate::sys::close(self.read_end);
        self.read_end = -1;
    }
}

impl Drop for ExitBarrier {
    fn drop(&mut self) {
        self.wait();
    }
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
    /// Registers the exit barrier (one fixed file): fails if the kernel
    /// refuses it.
    pub(crate) fn new(linux: Linux) -> std::io::Result<SharedMap> {
        let barrier = ExitBarrier::register(&linux.raw.ring)?;
        Ok(SharedMap {
            geometry: *linux.geometry(),
            linux,
            barrier,
        })
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

    /// Writes the 128-byte `sqe` into the slot of ring index `index`.
    ///
    /// # Safety
    ///
    /// As for [`write_sqe`](Self::write_sqe), and the ring's SQEs are 128
    /// bytes (`IORING_SETUP_SQE128`).
    pub(crate) unsafe fn write_sqe128(&self, index: u32, sqe: &io_uring_sqe128) {
        debug_assert_eq!(self.geometry.sqe_size(), 128);
        let offset = self.geometry.sqe_offset(index);
        // SAFETY: `sqe_offset` masks the index into the SQE array whose size
        // was checked at setup, with a 128-byte stride (the caller's
        // promise): the write fits the slot, which the caller owns.
        unsafe {
            self.linux
                .sqes
                .as_ptr()
                .add(offset)
                .cast::<io_uring_sqe128>()
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
    #[inline]
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

    /// The drop will not wait for the kernel to free the ring: only for a
    /// ring on which no entry was ever published (no SQE the kernel could
    /// have turned into a request; completions other rings post into this
    /// one are not requests of it).
    pub(crate) fn no_request_was_published(&mut self) {
        self.barrier.forget();
    }

    /// `IORING_REGISTER_SYNC_CANCEL` of every request (`ANY | ALL`, Linux
    /// 6.0): cancels what can be cancelled now (signalling io-wq workers
    /// that run one) without waiting. Only a head start for the close: the
    /// kernel's ring exit cancels everything again and the exit barrier
    /// waits for it, so a failure (older kernels: `EINVAL`) is ignored.
    pub(crate) fn cancel_all(&self) {
        let reg = ring_io_sys::io_uring_sync_cancel_reg {
            flags: ring_io_sys::IORING_ASYNC_CANCEL_ANY | ring_io_sys::IORING_ASYNC_CANCEL_ALL,
            fd: -1,
            timeout: ring_io_sys::__kernel_timespec {
                tv_sec: -1,
                tv_nsec: -1,
            },
            ..Default::default()
        };
        // SAFETY: one io_uring_sync_cancel_reg, valid for the call; the
        // kernel only reads it.
        let _ = unsafe {
            self.linux.raw.ring.register(
                ring_io_sys::IORING_REGISTER_SYNC_CANCEL,
                &raw const reg,
                1,
            )
        };
    }

    /// `io_uring_enter(2)` on the plain ring fd (registered ring fds are per
    /// thread, so a shared ring never uses them); with
    /// `IORING_ENTER_EXT_ARG`, bounded by `timeout`.
    #[inline]
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
