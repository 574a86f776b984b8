//! The `Kernel` trait: what the driver needs from a kernel (the shared ring
//! words, the entry arrays, `io_uring_enter`), with the Linux implementation
//! over the mmap'd rings.
//!
//! This is the driver's mmap module: it turns the validated ring offsets into
//! pointers and performs the atomic loads and stores the kernel pairs with.
//! Each ordering is commented with the kernel operation it pairs with.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::Duration;

use ring_io_core::{Enter, FlagsRead, Geometry};
use ring_io_sys::{
    __kernel_timespec, Errno, SqFlags, io_uring_cqe, io_uring_cqe32, io_uring_getevents_arg,
    io_uring_sqe, io_uring_sqe128,
};

use crate::setup::RawRing;

/// What the driver needs from a kernel, as plain operations.
///
/// [`Linux`] is the real one; [`Sim`](crate::Sim) adapts ring-core's
/// simulated kernel so the driver's loops (retry on `EINTR`, reap and retry
/// on `EBUSY`, short submits) are tested without a kernel. All index
/// arithmetic stays in ring-core; implementations only move words and bytes.
///
/// The loads (`sq_head`, `cq_tail`, the flags and counters) are safe: the
/// ring validates every value it is shown and answers one no kernel could
/// have written with an error (`io::ErrorKind::InvalidData`), never with a
/// panic or a loop. What changes the ring the kernel acts on (writing an
/// SQE, moving the SQ tail or the CQ head, entering), and reading a CQE
/// slot the kernel may be writing, are `unsafe fn`s: on [`Linux`] each is a
/// way to make the kernel act on a pointer, or to race with it. Safe code
/// cannot reach them on a [`Ring`](crate::Ring): [`Ring::kernel`](crate::Ring::kernel)
/// lends `&K` only, and [`Ring::kernel_mut`](crate::Ring::kernel_mut) is
/// `unsafe`.
///
/// ```compile_fail,E0133
/// use ring_io_driver::{Kernel, WaitArgs};
/// // A safe function cannot enter the kernel...
/// fn enter<K: Kernel>(kernel: &mut K, enter: &ring_io_core::Enter) {
///     let _ = kernel.enter(enter, &WaitArgs::default());
/// }
/// ```
///
/// ```compile_fail,E0133
/// use ring_io_driver::Kernel;
/// // ... nor write and publish an SQE.
/// fn publish<K: Kernel>(kernel: &mut K, sqe: &ring_io_sys::io_uring_sqe) {
///     kernel.write_sqe(0, sqe);
///     kernel.set_sq_tail(1);
/// }
/// ```
///
/// # Safety
///
/// An implementation whose [`enter`](Self::enter) makes something act on
/// the memory SQEs point to (a real kernel does) must keep the io_uring
/// protocol as the ring relies on it: it acts only on SQEs the ring wrote
/// and then published with [`set_sq_tail`](Self::set_sq_tail); it shows a
/// request's last completion (through [`cq_tail`](Self::cq_tail) and
/// [`cqe`](Self::cqe)) only once the request no longer touches any memory
/// its SQE names; and it does not overwrite a CQE slot at or above the
/// head last stored with [`set_cq_head`](Self::set_cq_head). Its own
/// memory accesses must be sound for every call that meets the methods'
/// contracts, whatever it showed before. Its methods do not unwind (a
/// [`write_sqe`](Self::write_sqe) that did would leave the slot's old SQE,
/// pointers and all, to be published), and [`geometry`](Self::geometry)
/// returns the same value on every call.
///
/// The values it shows may be wrong without making anything unsound (the
/// ring refuses them), and an implementation that acts on no memory (the
/// simulator, or a test double over it that lies about the ring words)
/// meets the contract trivially.
pub unsafe trait Kernel {
    /// The ring's geometry.
    fn geometry(&self) -> &Geometry;
    /// Load the SQ head (acquire).
    fn sq_head(&self) -> u32;
    /// Store the SQ tail (release): publishes the SQEs below it.
    ///
    /// # Safety
    ///
    /// Every SQE from the tail last stored up to `tail` was written with
    /// [`write_sqe`](Self::write_sqe) (or `write_sqe128`) since the kernel
    /// last consumed its slot, and the memory and fds it names stay valid
    /// as [`SubmissionQueue::push`](crate::SubmissionQueue::push) requires;
    /// `tail` is at most `sq_entries` past the SQ head.
    unsafe fn set_sq_tail(&mut self, tail: u32);
    /// Load the SQ flags word as `read` says.
    fn sq_flags(&self, read: FlagsRead) -> SqFlags;
    /// Load the dropped counter.
    fn sq_dropped(&self) -> u32;
    /// Load the CQ tail (acquire).
    fn cq_tail(&self) -> u32;
    /// Store the CQ head (release): hands the CQE slots below it back to
    /// the kernel, which may overwrite them at once.
    ///
    /// # Safety
    ///
    /// `head` is between the head last stored and the tail last loaded,
    /// and no CQE below it is still being read.
    unsafe fn set_cq_head(&mut self, head: u32);
    /// Load the overflow counter.
    fn cq_overflow(&self) -> u32;
    /// Write a 64-byte SQE into the slot of ring index `index`.
    ///
    /// # Safety
    ///
    /// The slot is free: `index` is at or above the SQ tail last stored
    /// and below the SQ head (as last loaded) plus `sq_entries`, so the
    /// kernel is not reading it. Writing publishes nothing; see
    /// [`set_sq_tail`](Self::set_sq_tail).
    unsafe fn write_sqe(&mut self, index: u32, sqe: &io_uring_sqe);
    /// Write a 128-byte SQE into the slot of ring index `index`; an error,
    /// and nothing written, unless the ring was set up with
    /// `IORING_SETUP_SQE128`.
    ///
    /// # Safety
    ///
    /// As for [`write_sqe`](Self::write_sqe).
    unsafe fn write_sqe128(&mut self, index: u32, sqe: &io_uring_sqe128) -> Result<(), WrongRing>;
    /// Read the CQE at ring index `index`.
    ///
    /// # Safety
    ///
    /// The kernel posted the CQE and may not overwrite it yet: `index` is
    /// at or above the CQ head last stored and below a CQ tail loaded
    /// since, so the read does not race with the kernel's write.
    unsafe fn cqe(&self, index: u32) -> io_uring_cqe;
    /// Read the 32-byte CQE at ring index `index`; an error unless the ring
    /// was set up with `IORING_SETUP_CQE32`.
    ///
    /// # Safety
    ///
    /// As for [`cqe`](Self::cqe).
    unsafe fn cqe32(&self, index: u32) -> Result<io_uring_cqe32, WrongRing>;
    /// `io_uring_enter(2)` as decided; with `IORING_ENTER_EXT_ARG`, `wait`
    /// says what the `io_uring_getevents_arg` carries. The implementation
    /// names the ring: [`Linux`] passes the index the calling thread
    /// registered, with `IORING_ENTER_REGISTERED_RING`, where there is one,
    /// else the fd (the ring decides with `registered_ring` false, so the
    /// flag is never set in `enter.flags`).
    ///
    /// # Safety
    ///
    /// Every SQE published and not yet consumed meets the contract of
    /// [`set_sq_tail`](Self::set_sq_tail).
    unsafe fn enter(&mut self, enter: &Enter, wait: &WaitArgs) -> Result<u32, Errno>;
    /// True if the ring fd is registered in the calling thread's table, so
    /// [`enter`](Self::enter) may name it by its index
    /// (`IORING_ENTER_REGISTERED_RING`).
    #[inline]
    fn registered_here(&self) -> bool {
        false
    }
}

/// An entry of the wrong size for the ring: a 128-byte SQE on a ring set
/// up without `IORING_SETUP_SQE128`, or a 32-byte CQE read from one set up
/// without `IORING_SETUP_CQE32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WrongRing {
    /// A 128-byte SQE on a ring of 64-byte SQEs.
    NotSqe128,
    /// A 32-byte CQE from a ring of 16-byte CQEs.
    NotCqe32,
}

impl std::fmt::Display for WrongRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WrongRing::NotSqe128 => {
                "a 128-byte SQE needs a ring set up with IORING_SETUP_SQE128 (Builder::sqe128)"
            }
            WrongRing::NotCqe32 => {
                "a 32-byte CQE needs a ring set up with IORING_SETUP_CQE32 (Builder::cqe32)"
            }
        })
    }
}

impl std::error::Error for WrongRing {}

impl From<WrongRing> for std::io::Error {
    fn from(e: WrongRing) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

/// The longest timeout given to the kernel: 2^32 seconds (136 years).
/// The kernel adds a relative timeout to its 64-bit nanosecond clock
/// without saturating (`ktime_add` in `io_cqring_wait`, `ktime_add_ns` in
/// the synchronous cancel), so a longer one can wrap into the past; and
/// `tv_sec` is signed, so `Duration::MAX` cast to it is -1 (`EINVAL`).
pub(crate) const MAX_TIMEOUT_SECS: u64 = 1 << 32;

/// `d` as the kernel's timespec, saturated at [`MAX_TIMEOUT_SECS`]: a
/// timeout that long never expires in practice, as `Duration::MAX` means.
#[inline]
pub(crate) fn timespec(d: Duration) -> __kernel_timespec {
    if d.as_secs() >= MAX_TIMEOUT_SECS {
        return __kernel_timespec {
            tv_sec: MAX_TIMEOUT_SECS as i64,
            tv_nsec: 0,
        };
    }
    __kernel_timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// What a wait is bounded by (the `io_uring_getevents_arg` of an enter with
/// `IORING_ENTER_EXT_ARG`). A timeout longer than 2^32 seconds is given to
/// the kernel as 2^32 seconds (136 years): longer ones overflow its clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitArgs {
    /// Give up after this long (`ts`); `None`: no deadline.
    pub timeout: Option<Duration>,
    /// After this long, return as soon as one completion is ready even if
    /// fewer than `min_complete` are (`min_wait_usec`,
    /// `IORING_FEAT_MIN_TIMEOUT`, Linux 6.12).
    pub min_wait: Option<Duration>,
}

impl WaitArgs {
    /// True if the enter needs an extended argument.
    #[inline]
    pub fn any(&self) -> bool {
        self.timeout.is_some() || self.min_wait.is_some()
    }
}

/// The Linux kernel: a ring set up by [`Builder`](crate::Builder), with
/// pointers into its mappings resolved once.
pub struct Linux {
    geometry: Geometry,
    // The ring words and arrays, resolved and bounds-checked at setup
    // (crate-visible: SharedMap uses them through `&self`).
    pub(crate) sq_head: NonNull<AtomicU32>,
    pub(crate) sq_tail: NonNull<AtomicU32>,
    pub(crate) sq_flags: NonNull<AtomicU32>,
    pub(crate) sq_dropped: NonNull<AtomicU32>,
    pub(crate) cq_head: NonNull<AtomicU32>,
    pub(crate) cq_tail: NonNull<AtomicU32>,
    pub(crate) cq_overflow: NonNull<AtomicU32>,
    pub(crate) sqes: NonNull<u8>,
    pub(crate) cqes: NonNull<u8>,
    // Last: keeps the mappings (and the fd) alive as long as the pointers.
    pub(crate) raw: RawRing,
}

// SAFETY: the pointers point into `raw`'s mappings, owned by this value and
// moved with it; nothing is tied to the creating thread.
unsafe impl Send for Linux {}

impl Linux {
    pub(crate) fn new(raw: RawRing) -> std::io::Result<Linux> {
        let p = *raw.params.raw();
        let geometry = Geometry::from_params(&p)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let sq = &raw.sq_ring;
        let cq = raw.cq_map();
        let word = |map: &crate::sys::Mmap, off: u32| map.ptr::<AtomicU32>(off, 1);
        let linux = Linux {
            sq_head: word(sq, p.sq_off.head)?,
            sq_tail: word(sq, p.sq_off.tail)?,
            sq_flags: word(sq, p.sq_off.flags)?,
            sq_dropped: word(sq, p.sq_off.dropped)?,
            cq_head: word(cq, p.cq_off.head)?,
            cq_tail: word(cq, p.cq_off.tail)?,
            cq_overflow: word(cq, p.cq_off.overflow)?,
            sqes: raw
                .sqes
                .ptr::<u8>(0, geometry.sqe_size() * geometry.sq_entries() as usize)?,
            cqes: cq.ptr::<u8>(
                p.cq_off.cqes,
                geometry.cqe_size() * geometry.cq_entries() as usize,
            )?,
            geometry,
            raw,
        };
        // Check what the ring itself says against the geometry, then fill
        // the SQ index array with the identity, as ring-core prescribes.
        let load = |off: u32, map: &crate::sys::Mmap| map.atomic_u32(off).load(Ordering::Relaxed);
        linux
            .geometry
            .check_mapped(
                load(p.sq_off.ring_entries, &linux.raw.sq_ring),
                load(p.sq_off.ring_mask, &linux.raw.sq_ring),
                load(p.cq_off.ring_entries, linux.raw.cq_map()),
                load(p.cq_off.ring_mask, linux.raw.cq_map()),
            )
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if linux.geometry.has_sq_array() {
            let array = linux
                .raw
                .sq_ring
                .ptr::<u32>(p.sq_off.array, linux.geometry.sq_entries() as usize)?;
            for slot in 0..linux.geometry.sq_entries() {
                if let Some(value) = linux.geometry.sq_array_entry(slot) {
                    // SAFETY: `array` holds sq_entries u32s (checked by
                    // `ptr`); the kernel reads the array only for published
                    // entries and none is published yet.
                    unsafe { array.as_ptr().add(slot as usize).write(value) };
                }
            }
        }
        Ok(linux)
    }

    #[inline]
    fn load(word: NonNull<AtomicU32>, order: Ordering) -> u32 {
        // SAFETY: `word` points into a live mapping, aligned (checked at setup).
        unsafe { word.as_ref() }.load(order)
    }

    #[inline]
    fn store(word: NonNull<AtomicU32>, value: u32, order: Ordering) {
        // SAFETY: as in `load`.
        unsafe { word.as_ref() }.store(value, order)
    }
}

// SAFETY: the kernel keeps the io_uring protocol; every method below is a
// load, or does what its contract allows on the mappings `raw` keeps alive.
unsafe impl Kernel for Linux {
    #[inline]
    fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    #[inline]
    fn sq_head(&self) -> u32 {
        // Pairs with the kernel's smp_store_release(&rings->sq.head) in
        // io_commit_sqring: it is done reading the SQEs below the head.
        Self::load(self.sq_head, Ordering::Acquire)
    }

    #[inline]
    unsafe fn set_sq_tail(&mut self, tail: u32) {
        // Pairs with the kernel's smp_load_acquire(&rings->sq.tail) in
        // io_sqring_entries: the SQE writes become visible before the tail.
        Self::store(self.sq_tail, tail, Ordering::Release)
    }

    #[inline]
    fn sq_flags(&self, read: FlagsRead) -> SqFlags {
        if read == FlagsRead::FullFenceThenLoad {
            // Pairs with the smp_mb__after_atomic() the SQPOLL thread issues
            // after setting IORING_SQ_NEED_WAKEUP and before re-reading the
            // tail (io_sqpoll_wait / io_sq_thread): liburing's io_uring_smp_mb().
            fence(Ordering::SeqCst);
        }
        // A plain READ_ONCE on the kernel side (atomic_or / atomic_andnot of
        // the flags): relaxed is what liburing's IO_URING_READ_ONCE is.
        SqFlags::from_bits_retain(Self::load(self.sq_flags, Ordering::Relaxed))
    }

    #[inline]
    fn sq_dropped(&self) -> u32 {
        // Written with WRITE_ONCE; a statistic, no ordering needed.
        Self::load(self.sq_dropped, Ordering::Relaxed)
    }

    #[inline]
    fn cq_tail(&self) -> u32 {
        // Pairs with the kernel's smp_store_release(&rings->cq.tail) in
        // io_commit_cqring: every CQE below the tail is written.
        Self::load(self.cq_tail, Ordering::Acquire)
    }

    #[inline]
    unsafe fn set_cq_head(&mut self, head: u32) {
        // The kernel reads cq.head with READ_ONCE before overwriting a slot
        // (io_get_cqe_overflow); release orders our CQE reads before it.
        Self::store(self.cq_head, head, Ordering::Release)
    }

    #[inline]
    fn cq_overflow(&self) -> u32 {
        // Written with WRITE_ONCE; a statistic.
        Self::load(self.cq_overflow, Ordering::Relaxed)
    }

    #[inline]
    unsafe fn write_sqe(&mut self, index: u32, sqe: &io_uring_sqe) {
        let offset = self.geometry.sqe_offset(index);
        // SAFETY: `sqe_offset` masks the index into the SQE array whose size
        // was checked at setup (a 64-byte write fits a 64- or 128-byte
        // stride); the caller promises the slot is free (not published, so
        // the kernel is not reading it).
        unsafe {
            self.sqes
                .as_ptr()
                .add(offset)
                .cast::<io_uring_sqe>()
                .write(*sqe)
        }
    }

    #[inline]
    unsafe fn write_sqe128(&mut self, index: u32, sqe: &io_uring_sqe128) -> Result<(), WrongRing> {
        if self.geometry.sqe_size() != 128 {
            return Err(WrongRing::NotSqe128);
        }
        let offset = self.geometry.sqe_offset(index);
        // SAFETY: as in `write_sqe`; the stride is 128 bytes (checked).
        unsafe {
            self.sqes
                .as_ptr()
                .add(offset)
                .cast::<io_uring_sqe128>()
                .write(*sqe)
        }
        Ok(())
    }

    #[inline]
    unsafe fn cqe(&self, index: u32) -> io_uring_cqe {
        let offset = self.geometry.cqe_offset(index);
        // SAFETY: `cqe_offset` masks into the CQE array (size checked at
        // setup; a 16-byte read fits a 16- or 32-byte stride); the caller
        // promises the index is below an acquired tail and at or above the
        // released head, so the kernel wrote it and will not overwrite it yet.
        unsafe { self.cqes.as_ptr().add(offset).cast::<io_uring_cqe>().read() }
    }

    #[inline]
    unsafe fn cqe32(&self, index: u32) -> Result<io_uring_cqe32, WrongRing> {
        if self.geometry.cqe_size() != 32 {
            return Err(WrongRing::NotCqe32);
        }
        let offset = self.geometry.cqe_offset(index);
        // SAFETY: as in `cqe`; the stride is 32 bytes (checked).
        Ok(unsafe {
            self.cqes
                .as_ptr()
                .add(offset)
                .cast::<io_uring_cqe32>()
                .read()
        })
    }

    #[inline]
    fn registered_here(&self) -> bool {
        self.raw.ring.registered_here()
    }

    #[inline(always)]
    unsafe fn enter(&mut self, enter: &Enter, wait: &WaitArgs) -> Result<u32, Errno> {
        // SAFETY: the caller's contract: every published SQE was fully
        // written before its tail store, and the pointers it carries stay
        // valid (`push` is unsafe).
        unsafe { enter_ring(&self.raw.ring, enter, wait) }
    }
}

/// `io_uring_enter(2)` on `ring` as `enter` says: with `IORING_ENTER_EXT_ARG`,
/// an `io_uring_getevents_arg` built from `wait` (timeout, minimum wait);
/// otherwise no argument. Shared by [`Linux`] and the shared ring's map.
/// `ring` picks the number and `IORING_ENTER_REGISTERED_RING` (whatever
/// `enter.flags` says of it), and refuses with `EBADF`, without entering, a
/// `REGISTERED_FD_ONLY` ring on a thread other than its own.
///
/// # Safety
///
/// As for [`ring_io_sys::io_uring_enter`]: the ring's published SQEs are
/// fully written, and each meets the contract of
/// [`SubmissionQueue::push`](crate::SubmissionQueue::push).
#[inline(always)]
pub(crate) unsafe fn enter_ring(
    ring: &crate::sys::RingFd,
    enter: &Enter,
    wait: &WaitArgs,
) -> Result<u32, Errno> {
    if enter.ext_arg {
        let ts = wait.timeout.map(timespec);
        let arg = io_uring_getevents_arg {
            ts: ts
                .as_ref()
                .map_or(0, |ts| ts as *const __kernel_timespec as u64),
            min_wait_usec: wait
                .min_wait
                .map_or(0, |d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX)),
            ..Default::default()
        };
        // SAFETY: the caller's contract; `arg` and `ts` outlive the call.
        unsafe {
            ring.enter(
                enter.to_submit,
                enter.min_complete,
                enter.flags,
                (&raw const arg).cast::<c_void>(),
                size_of::<io_uring_getevents_arg>(),
            )
        }
    } else {
        // SAFETY: the caller's contract; no argument (a null sigmask).
        unsafe {
            ring.enter(
                enter.to_submit,
                enter.min_complete,
                enter.flags,
                std::ptr::null(),
                ring_io_sys::KERNEL_SIGSET_SIZE,
            )
        }
    }
}

impl Linux {
    /// Registers the ring fd in the calling thread's table
    /// (`IORING_REGISTER_RING_FDS`, 5.18), best effort: without it the
    /// plain fd is used. A `REGISTERED_FD_ONLY` ring is in this thread's
    /// table already. (Unregistered, on this thread, when the ring drops.)
    pub(crate) fn register_fd(&mut self) {
        self.raw.ring.register_here();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespecs_saturate_where_the_kernel_clock_would_overflow() {
        let ts = |d| {
            let t = timespec(d);
            (t.tv_sec, t.tv_nsec)
        };
        assert_eq!(ts(Duration::ZERO), (0, 0));
        assert_eq!(ts(Duration::new(3, 7)), (3, 7));
        let max = MAX_TIMEOUT_SECS as i64;
        assert_eq!(ts(Duration::new(MAX_TIMEOUT_SECS - 1, 5)), (max - 1, 5));
        for long in [
            Duration::from_secs(MAX_TIMEOUT_SECS),
            Duration::from_secs(i64::MAX as u64),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            assert_eq!(ts(long), (max, 0), "{long:?}");
        }
        // Far from the kernel's limit (KTIME_MAX ns, 292 years), whatever
        // the monotonic clock reads.
        const KTIME_SEC_MAX: i64 = i64::MAX / 1_000_000_000;
        assert!(max < KTIME_SEC_MAX / 2);
    }
}
