//! `io_uring_register(2)` opcodes and argument structs, and the remaining
//! structs of the header (provided buffers, recvmsg output, socket commands).

use crate::__kernel_timespec;

/// Defines `u32` constants with their docs.
macro_rules! consts {
    ($ty:ty; $( $name:ident = $val:expr, $ver:literal, $doc:literal; )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: ", $doc, " Since Linux ", $ver, ".")]
            pub const $name: $ty = $val;
        )*
    };
}

consts! { u32;
    IORING_REGISTER_BUFFERS = 0, "5.1", "register fixed buffers (iovec array).";
    IORING_UNREGISTER_BUFFERS = 1, "5.1", "unregister all fixed buffers.";
    IORING_REGISTER_FILES = 2, "5.1", "register fixed files (fd array).";
    IORING_UNREGISTER_FILES = 3, "5.1", "unregister all fixed files.";
    IORING_REGISTER_EVENTFD = 4, "5.2", "signal an eventfd on completions.";
    IORING_UNREGISTER_EVENTFD = 5, "5.2", "remove the eventfd.";
    IORING_REGISTER_FILES_UPDATE = 6, "5.5", "update fixed files (`io_uring_files_update`).";
    IORING_REGISTER_EVENTFD_ASYNC = 7, "5.6", "signal an eventfd only for async completions.";
    IORING_REGISTER_PROBE = 8, "5.6", "fill an `io_uring_probe` with supported opcodes.";
    IORING_REGISTER_PERSONALITY = 9, "5.6", "register the current credentials; returns an id.";
    IORING_UNREGISTER_PERSONALITY = 10, "5.6", "unregister a personality id.";
    IORING_REGISTER_RESTRICTIONS = 11, "5.10", "restrict a disabled ring (`io_uring_restriction` array).";
    IORING_REGISTER_ENABLE_RINGS = 12, "5.10", "enable a ring set up with `IORING_SETUP_R_DISABLED`.";
    IORING_REGISTER_FILES2 = 13, "5.13", "register files with tags (`io_uring_rsrc_register`).";
    IORING_REGISTER_FILES_UPDATE2 = 14, "5.13", "update files with tags (`io_uring_rsrc_update2`).";
    IORING_REGISTER_BUFFERS2 = 15, "5.13", "register buffers with tags (`io_uring_rsrc_register`).";
    IORING_REGISTER_BUFFERS_UPDATE = 16, "5.13", "update buffers with tags (`io_uring_rsrc_update2`).";
    IORING_REGISTER_IOWQ_AFF = 17, "5.14", "set the io-wq CPU affinity.";
    IORING_UNREGISTER_IOWQ_AFF = 18, "5.14", "clear the io-wq CPU affinity.";
    IORING_REGISTER_IOWQ_MAX_WORKERS = 19, "5.15", "set/get the io-wq worker limits (`[bounded, unbounded]`).";
    IORING_REGISTER_RING_FDS = 20, "5.18", "register ring fds for `IORING_ENTER_REGISTERED_RING`.";
    IORING_UNREGISTER_RING_FDS = 21, "5.18", "unregister ring fds.";
    IORING_REGISTER_PBUF_RING = 22, "5.19", "register a provided-buffer ring (`io_uring_buf_reg`).";
    IORING_UNREGISTER_PBUF_RING = 23, "5.19", "unregister a provided-buffer ring.";
    IORING_REGISTER_SYNC_CANCEL = 24, "6.0", "cancel synchronously (`io_uring_sync_cancel_reg`).";
    IORING_REGISTER_FILE_ALLOC_RANGE = 25, "6.0", "restrict fixed-file allocation to a range.";
    IORING_REGISTER_PBUF_STATUS = 26, "6.8", "read a buffer ring's head (`io_uring_buf_status`).";
    IORING_REGISTER_NAPI = 27, "6.9", "enable NAPI busy polling (`io_uring_napi`).";
    IORING_UNREGISTER_NAPI = 28, "6.9", "disable NAPI busy polling.";
    IORING_REGISTER_CLOCK = 29, "6.12", "choose the clock of waits (`io_uring_clock_register`).";
    IORING_REGISTER_CLONE_BUFFERS = 30, "6.12", "clone registered buffers from another ring.";
    IORING_REGISTER_SEND_MSG_RING = 31, "6.13", "send a `MSG_RING` without a ring of one's own.";
    IORING_REGISTER_ZCRX_IFQ = 32, "6.15", "register a NIC rx queue for zero-copy receive.";
    IORING_REGISTER_RESIZE_RINGS = 33, "6.13", "resize the SQ/CQ rings.";
    IORING_REGISTER_MEM_REGION = 34, "6.13", "register a memory region (`io_uring_mem_region_reg`).";
    IORING_REGISTER_QUERY = 35, "6.18", "query the kernel's io_uring capabilities (`io_uring_query_hdr` chain).";
    IORING_REGISTER_LAST = 36, "6.18", "one past the last register opcode of Linux 6.18 (grows with each release).";
    IORING_REGISTER_USE_REGISTERED_RING = 1 << 31, "6.3", "or'ed into the opcode: `fd` is a registered ring index.";
}

consts! { u32;
    IO_WQ_BOUND = 0, "5.15", "`enum io_wq_type`: bounded io-wq workers (index 0 of the max-workers pair).";
    IO_WQ_UNBOUND = 1, "5.15", "`enum io_wq_type`: unbounded io-wq workers (index 1).";
}

consts! { u16;
    IORING_RESTRICTION_REGISTER_OP = 0, "5.10", "`enum io_uring_register_restriction_op`: allow a register opcode.";
    IORING_RESTRICTION_SQE_OP = 1, "5.10", "allow an SQE opcode.";
    IORING_RESTRICTION_SQE_FLAGS_ALLOWED = 2, "5.10", "allow these SQE flags.";
    IORING_RESTRICTION_SQE_FLAGS_REQUIRED = 3, "5.10", "require these SQE flags on every SQE.";
    IORING_RESTRICTION_LAST = 4, "5.10", "one past the last restriction opcode.";
}

consts! { u8;
    IO_URING_NAPI_REGISTER_OP = 0, "6.13", "`enum io_uring_napi_op`: register/unregister (backward compatible).";
    IO_URING_NAPI_STATIC_ADD_ID = 1, "6.13", "add a NAPI id to the static list.";
    IO_URING_NAPI_STATIC_DEL_ID = 2, "6.13", "delete a NAPI id from the static list.";
}

consts! { u32;
    IO_URING_NAPI_TRACKING_DYNAMIC = 0, "6.13", "`enum io_uring_napi_tracking_strategy`: track NAPI ids dynamically.";
    IO_URING_NAPI_TRACKING_STATIC = 1, "6.13", "track only the NAPI ids added statically.";
    IO_URING_NAPI_TRACKING_INACTIVE = 255, "6.13", "no tracking.";
}

consts! { u32;
    SOCKET_URING_OP_SIOCINQ = 0, "6.7", "`enum io_uring_socket_op`: bytes queued for reading (`SIOCINQ`).";
    SOCKET_URING_OP_SIOCOUTQ = 1, "6.7", "bytes queued for sending (`SIOCOUTQ`).";
    SOCKET_URING_OP_GETSOCKOPT = 2, "6.7", "`getsockopt(2)`.";
    SOCKET_URING_OP_SETSOCKOPT = 3, "6.7", "`setsockopt(2)`.";
    SOCKET_URING_OP_TX_TIMESTAMP = 4, "6.17", "read transmit timestamps.";
}

/// `struct io_uring_files_update`: argument of `IORING_REGISTER_FILES_UPDATE`
/// and `IORING_OP_FILES_UPDATE` (deprecated in favour of
/// [`io_uring_rsrc_update`]). Since Linux 5.5.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_files_update {
    /// `offset`: first slot to update.
    pub offset: u32,
    #[doc(hidden)]
    pub resv: u32,
    /// `fds`: pointer to an array of `__s32` fds.
    pub fds: u64,
}

/// `struct io_uring_region_desc`: a memory region for
/// `IORING_REGISTER_MEM_REGION` and zcrx. Since Linux 6.13.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_region_desc {
    /// `user_addr`: the memory, with `IORING_MEM_REGION_TYPE_USER`.
    pub user_addr: u64,
    /// `size`: size in bytes.
    pub size: u64,
    /// `flags`: [`RegionDescFlags`](crate::RegionDescFlags).
    pub flags: u32,
    /// `id`: region id.
    pub id: u32,
    /// `mmap_offset`: out, where to mmap a kernel-allocated region.
    pub mmap_offset: u64,
    #[doc(hidden)]
    pub __resv: [u64; 4],
}

/// `struct io_uring_mem_region_reg`: argument of `IORING_REGISTER_MEM_REGION`.
/// Since Linux 6.13.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_mem_region_reg {
    /// `region_uptr`: pointer to an [`io_uring_region_desc`].
    pub region_uptr: u64,
    /// `flags`: [`MemRegionRegFlags`](crate::MemRegionRegFlags).
    pub flags: u64,
    #[doc(hidden)]
    pub __resv: [u64; 2],
}

/// `struct io_uring_rsrc_register`: argument of `IORING_REGISTER_FILES2` and
/// `IORING_REGISTER_BUFFERS2`. Since Linux 5.13.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_rsrc_register {
    /// `nr`: number of resources.
    pub nr: u32,
    /// `flags`: [`RsrcRegisterFlags`](crate::RsrcRegisterFlags). Since Linux 5.19.
    pub flags: u32,
    #[doc(hidden)]
    pub resv2: u64,
    /// `data`: pointer to the fds or iovecs.
    pub data: u64,
    /// `tags`: pointer to `__u64` tags, or 0.
    pub tags: u64,
}

/// `struct io_uring_rsrc_update`: argument of `IORING_REGISTER_FILES_UPDATE`
/// and of ring-fd registration. Since Linux 5.13.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_rsrc_update {
    /// `offset`: slot (or -1 to let the kernel pick, for ring fds).
    pub offset: u32,
    #[doc(hidden)]
    pub resv: u32,
    /// `data`: pointer to the fds, or the fd itself for ring-fd registration.
    pub data: u64,
}

/// `struct io_uring_rsrc_update2`: argument of `IORING_REGISTER_FILES_UPDATE2`
/// and `IORING_REGISTER_BUFFERS_UPDATE`. Since Linux 5.13.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_rsrc_update2 {
    /// `offset`: first slot to update.
    pub offset: u32,
    #[doc(hidden)]
    pub resv: u32,
    /// `data`: pointer to the fds or iovecs.
    pub data: u64,
    /// `tags`: pointer to tags, or 0.
    pub tags: u64,
    /// `nr`: number of slots.
    pub nr: u32,
    #[doc(hidden)]
    pub resv2: u32,
}

/// `struct io_uring_probe_op`: one opcode in an [`io_uring_probe`]. Since Linux 5.6.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_probe_op {
    /// `op`: the opcode.
    pub op: u8,
    #[doc(hidden)]
    pub resv: u8,
    /// `flags`: [`ProbeOpFlags`](crate::ProbeOpFlags).
    pub flags: u16,
    #[doc(hidden)]
    pub resv2: u32,
}

/// `struct io_uring_probe`: argument of `IORING_REGISTER_PROBE`, followed in
/// memory by `ops_len` [`io_uring_probe_op`]s (`ops[]`). Since Linux 5.6.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_probe {
    /// `last_op`: the last opcode the kernel knows.
    pub last_op: u8,
    /// `ops_len`: number of entries filled in `ops`.
    pub ops_len: u8,
    #[doc(hidden)]
    pub resv: u16,
    #[doc(hidden)]
    pub resv2: [u32; 3],
    /// `ops[]`: the flexible array of per-opcode entries starts here.
    pub ops: [io_uring_probe_op; 0],
}

/// `struct io_uring_restriction`: one entry of `IORING_REGISTER_RESTRICTIONS`.
/// Since Linux 5.10.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct io_uring_restriction {
    /// `opcode`: an `IORING_RESTRICTION_*` value.
    pub opcode: u16,
    /// `union { register_op; sqe_op; sqe_flags }`.
    pub op_flags: restriction_op_flags,
    #[doc(hidden)]
    pub resv: u8,
    #[doc(hidden)]
    pub resv2: [u32; 3],
}

impl Default for io_uring_restriction {
    fn default() -> Self {
        Self {
            opcode: 0,
            op_flags: restriction_op_flags { register_op: 0 },
            resv: 0,
            resv2: [0; 3],
        }
    }
}

impl core::fmt::Debug for io_uring_restriction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: every member of the union is a `u8` at offset 0, so whichever
        // was written, the byte is initialised and any value is valid.
        let value = unsafe { self.op_flags.register_op };
        f.debug_struct("io_uring_restriction")
            .field("opcode", &self.opcode)
            .field("op_flags", &value)
            .finish_non_exhaustive()
    }
}

/// `union { __u8 register_op; __u8 sqe_op; __u8 sqe_flags; }` in
/// [`io_uring_restriction`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union restriction_op_flags {
    /// `register_op`: for `IORING_RESTRICTION_REGISTER_OP`.
    pub register_op: u8,
    /// `sqe_op`: for `IORING_RESTRICTION_SQE_OP`.
    pub sqe_op: u8,
    /// `sqe_flags`: for `IORING_RESTRICTION_SQE_FLAGS_*`.
    pub sqe_flags: u8,
}

/// `struct io_uring_clock_register`: argument of `IORING_REGISTER_CLOCK`.
/// Since Linux 6.12.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_clock_register {
    /// `clockid`: `CLOCK_MONOTONIC` or `CLOCK_BOOTTIME`.
    pub clockid: u32,
    #[doc(hidden)]
    pub __resv: [u32; 3],
}

/// `struct io_uring_clone_buffers`: argument of `IORING_REGISTER_CLONE_BUFFERS`.
/// Since Linux 6.12 (`src_off`, `dst_off`, `nr` since 6.13).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_clone_buffers {
    /// `src_fd`: the ring to clone from.
    pub src_fd: u32,
    /// `flags`: [`CloneBuffersFlags`](crate::CloneBuffersFlags).
    pub flags: u32,
    /// `src_off`: first source buffer.
    pub src_off: u32,
    /// `dst_off`: first destination slot.
    pub dst_off: u32,
    /// `nr`: number of buffers (0 = all).
    pub nr: u32,
    #[doc(hidden)]
    pub pad: [u32; 3],
}

/// `struct io_uring_buf`: one entry of a provided-buffer ring. Since Linux 5.19.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_buf {
    /// `addr`: the buffer.
    pub addr: u64,
    /// `len`: its length.
    pub len: u32,
    /// `bid`: the buffer id reported in `cqe->flags`.
    pub bid: u16,
    #[doc(hidden)]
    pub resv: u16,
}

/// `struct io_uring_buf_ring`: header of a provided-buffer ring. The ring's
/// tail overlays the `resv` field of entry 0. Since Linux 5.19.
#[repr(C)]
#[derive(Clone, Copy)]
pub union io_uring_buf_ring {
    /// `{ resv1; resv2; resv3; tail }`: the header view.
    pub hdr: buf_ring_hdr,
    /// `bufs[]`: the entry view; entries start at offset 0.
    pub bufs: [io_uring_buf; 0],
}

/// The header view of [`io_uring_buf_ring`]: the tail sits where entry 0's
/// `resv` is.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct buf_ring_hdr {
    #[doc(hidden)]
    pub resv1: u64,
    #[doc(hidden)]
    pub resv2: u32,
    #[doc(hidden)]
    pub resv3: u16,
    /// `tail`: written by the application (store-release).
    pub tail: u16,
}

/// `struct io_uring_buf_reg`: argument of `IORING_(UN)REGISTER_PBUF_RING`.
/// Since Linux 5.19.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_buf_reg {
    /// `ring_addr`: the ring memory (0 with `IOU_PBUF_RING_MMAP`).
    pub ring_addr: u64,
    /// `ring_entries`: number of entries, a power of two.
    pub ring_entries: u32,
    /// `bgid`: the buffer group id.
    pub bgid: u16,
    /// `flags`: [`PbufRingFlags`](crate::PbufRingFlags).
    pub flags: u16,
    #[doc(hidden)]
    pub resv: [u64; 3],
}

/// `struct io_uring_buf_status`: argument of `IORING_REGISTER_PBUF_STATUS`.
/// Since Linux 6.8.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_buf_status {
    /// `buf_group`: in, the group.
    pub buf_group: u32,
    /// `head`: out, the kernel's head.
    pub head: u32,
    #[doc(hidden)]
    pub resv: [u32; 8],
}

/// `struct io_uring_napi`: argument of `IORING_(UN)REGISTER_NAPI`. Since Linux 6.9
/// (`opcode` and `op_param` since 6.13).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_napi {
    /// `busy_poll_to`: busy-poll timeout in microseconds.
    pub busy_poll_to: u32,
    /// `prefer_busy_poll`: prefer busy polling over interrupts.
    pub prefer_busy_poll: u8,
    /// `opcode`: an `IO_URING_NAPI_*_OP`/`_ID` value.
    pub opcode: u8,
    #[doc(hidden)]
    pub pad: [u8; 2],
    /// `op_param`: tracking strategy, or the NAPI id to add or delete.
    pub op_param: u32,
    #[doc(hidden)]
    pub resv: u32,
}

/// `struct io_uring_sync_cancel_reg`: argument of `IORING_REGISTER_SYNC_CANCEL`.
/// Since Linux 6.0 (`opcode` since 6.6).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_sync_cancel_reg {
    /// `addr`: user_data to match.
    pub addr: u64,
    /// `fd`: fd to match, with `IORING_ASYNC_CANCEL_FD`.
    pub fd: i32,
    /// `flags`: [`AsyncCancelFlags`](crate::AsyncCancelFlags).
    pub flags: u32,
    /// `timeout`: how long to wait; `{-1, -1}` waits forever.
    pub timeout: __kernel_timespec,
    /// `opcode`: opcode to match, with `IORING_ASYNC_CANCEL_OP`.
    pub opcode: u8,
    #[doc(hidden)]
    pub pad: [u8; 7],
    #[doc(hidden)]
    pub pad2: [u64; 3],
}

/// `struct io_uring_file_index_range`: argument of
/// `IORING_REGISTER_FILE_ALLOC_RANGE`, the range `[off, off + len)`. Since Linux 6.0.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_file_index_range {
    /// `off`: first slot.
    pub off: u32,
    /// `len`: number of slots.
    pub len: u32,
    #[doc(hidden)]
    pub resv: u64,
}

/// `struct io_uring_recvmsg_out`: header the kernel writes at the start of
/// each buffer of a multishot `IORING_OP_RECVMSG`. Since Linux 6.0.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_recvmsg_out {
    /// `namelen`: length of the source address that follows.
    pub namelen: u32,
    /// `controllen`: length of the control data.
    pub controllen: u32,
    /// `payloadlen`: length of the payload.
    pub payloadlen: u32,
    /// `flags`: `MSG_*` flags of the message.
    pub flags: u32,
}

/// `struct io_timespec`: the timestamp of a `SOCKET_URING_OP_TX_TIMESTAMP`
/// completion, in its 32-byte CQE's `big_cqe`. Since Linux 6.17.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_timespec {
    /// `tv_sec`.
    pub tv_sec: u64,
    /// `tv_nsec`.
    pub tv_nsec: u64,
}
