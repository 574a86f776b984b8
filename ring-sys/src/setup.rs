//! `io_uring_setup(2)` parameters, ring offsets, mmap offsets, and the
//! extended arguments of `io_uring_enter(2)`.

use crate::__kernel_timespec;

/// `struct io_sqring_offsets`: where the SQ ring's fields live in its mmap,
/// filled in by `io_uring_setup`. Since Linux 5.1.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_sqring_offsets {
    /// `head`: offset of the SQ head (kernel-written). Since Linux 5.1.
    pub head: u32,
    /// `tail`: offset of the SQ tail (application-written). Since Linux 5.1.
    pub tail: u32,
    /// `ring_mask`: offset of the mask. Since Linux 5.1.
    pub ring_mask: u32,
    /// `ring_entries`: offset of the entry count. Since Linux 5.1.
    pub ring_entries: u32,
    /// `flags`: offset of the `IORING_SQ_*` flags word. Since Linux 5.1.
    pub flags: u32,
    /// `dropped`: offset of the dropped-entry counter. Since Linux 5.1.
    pub dropped: u32,
    /// `array`: offset of the SQ index array (absent with
    /// `IORING_SETUP_NO_SQARRAY`). Since Linux 5.1.
    pub array: u32,
    #[doc(hidden)]
    pub resv1: u32,
    /// `user_addr`: with `IORING_SETUP_NO_MMAP`, the caller's memory for the
    /// SQEs. Since Linux 6.5.
    pub user_addr: u64,
}

/// `struct io_cqring_offsets`: where the CQ ring's fields live in its mmap.
/// Since Linux 5.1.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_cqring_offsets {
    /// `head`: offset of the CQ head (application-written). Since Linux 5.1.
    pub head: u32,
    /// `tail`: offset of the CQ tail (kernel-written). Since Linux 5.1.
    pub tail: u32,
    /// `ring_mask`: offset of the mask. Since Linux 5.1.
    pub ring_mask: u32,
    /// `ring_entries`: offset of the entry count. Since Linux 5.1.
    pub ring_entries: u32,
    /// `overflow`: offset of the overflow counter. Since Linux 5.1.
    pub overflow: u32,
    /// `cqes`: offset of the CQE array. Since Linux 5.1.
    pub cqes: u32,
    /// `flags`: offset of the `IORING_CQ_*` flags word. Since Linux 5.8.
    pub flags: u32,
    #[doc(hidden)]
    pub resv1: u32,
    /// `user_addr`: with `IORING_SETUP_NO_MMAP`, the caller's memory for the
    /// rings. Since Linux 6.5.
    pub user_addr: u64,
}

/// `struct io_uring_params`: passed to `io_uring_setup(2)` and copied back
/// with the ring's geometry and features. Since Linux 5.1.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_params {
    /// `sq_entries`: SQ size (out; rounded up to a power of two).
    pub sq_entries: u32,
    /// `cq_entries`: CQ size (in with `IORING_SETUP_CQSIZE`, out always).
    pub cq_entries: u32,
    /// `flags`: `IORING_SETUP_*` ([`SetupFlags`](crate::SetupFlags)).
    pub flags: u32,
    /// `sq_thread_cpu`: CPU of the SQPOLL thread, with `IORING_SETUP_SQ_AFF`.
    pub sq_thread_cpu: u32,
    /// `sq_thread_idle`: SQPOLL idle time in milliseconds.
    pub sq_thread_idle: u32,
    /// `features`: `IORING_FEAT_*` ([`Features`](crate::Features)), out.
    /// Since Linux 5.4.
    pub features: u32,
    /// `wq_fd`: ring to share the io-wq with, for `IORING_SETUP_ATTACH_WQ`.
    /// Since Linux 5.6.
    pub wq_fd: u32,
    #[doc(hidden)]
    pub resv: [u32; 3],
    /// `sq_off`: SQ ring offsets, out.
    pub sq_off: io_sqring_offsets,
    /// `cq_off`: CQ ring offsets, out.
    pub cq_off: io_cqring_offsets,
}

/// `IORING_OFF_SQ_RING`: mmap offset of the SQ ring. Since Linux 5.1.
pub const IORING_OFF_SQ_RING: u64 = 0;
/// `IORING_OFF_CQ_RING`: mmap offset of the CQ ring (unneeded with
/// `IORING_FEAT_SINGLE_MMAP`). Since Linux 5.1.
pub const IORING_OFF_CQ_RING: u64 = 0x800_0000;
/// `IORING_OFF_SQES`: mmap offset of the SQE array. Since Linux 5.1.
pub const IORING_OFF_SQES: u64 = 0x1000_0000;
/// `IORING_OFF_PBUF_RING`: mmap offset of a kernel-allocated provided-buffer
/// ring (`IOU_PBUF_RING_MMAP`), or'ed with `bgid << IORING_OFF_PBUF_SHIFT`.
/// Since Linux 6.4.
pub const IORING_OFF_PBUF_RING: u64 = 0x8000_0000;
/// `IORING_OFF_PBUF_SHIFT`: shift of the buffer group id in a
/// `IORING_OFF_PBUF_RING` offset. Since Linux 6.4.
pub const IORING_OFF_PBUF_SHIFT: u32 = 16;
/// `IORING_OFF_MMAP_MASK`: the bits of an mmap offset that select the region.
/// Since Linux 6.4.
pub const IORING_OFF_MMAP_MASK: u64 = 0xf800_0000;

/// `struct io_uring_getevents_arg`: the argument of `io_uring_enter(2)` with
/// `IORING_ENTER_EXT_ARG` (`argsz` = its size). Since Linux 5.11.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_getevents_arg {
    /// `sigmask`: pointer to a `sigset_t`, or 0.
    pub sigmask: u64,
    /// `sigmask_sz`: size of the signal set (`_NSIG / 8`).
    pub sigmask_sz: u32,
    /// `min_wait_usec`: wait at least this long for `min_complete` before
    /// returning with fewer (`IORING_FEAT_MIN_TIMEOUT`). Since Linux 6.12;
    /// `pad` before.
    pub min_wait_usec: u32,
    /// `ts`: pointer to a [`__kernel_timespec`] timeout, or 0.
    pub ts: u64,
}

/// `struct io_uring_reg_wait`: a wait argument in a registered region, for
/// `IORING_ENTER_EXT_ARG_REG`. Since Linux 6.13.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_reg_wait {
    /// `ts`: the timeout, valid with `IORING_REG_WAIT_TS`.
    pub ts: __kernel_timespec,
    /// `min_wait_usec`: minimum wait, as in [`io_uring_getevents_arg`].
    pub min_wait_usec: u32,
    /// `flags`: [`RegWaitFlags`](crate::RegWaitFlags).
    pub flags: u32,
    /// `sigmask`: pointer to a `sigset_t`, or 0.
    pub sigmask: u64,
    /// `sigmask_sz`: size of the signal set.
    pub sigmask_sz: u32,
    #[doc(hidden)]
    pub pad: [u32; 3],
    #[doc(hidden)]
    pub pad2: [u64; 2],
}
