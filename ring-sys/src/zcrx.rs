//! Zero-copy receive (zcrx): `IORING_REGISTER_ZCRX_IFQ` and `IORING_OP_RECV_ZC`.
//! All of it since Linux 6.15, as laid out in Linux 6.18.

/// `struct io_uring_zcrx_rqe`: a refill queue entry, returning a buffer to
/// the kernel. Since Linux 6.15.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_zcrx_rqe {
    /// `off`: area-encoded offset of the buffer (see [`IORING_ZCRX_AREA_SHIFT`]).
    pub off: u64,
    /// `len`: its length.
    pub len: u32,
    #[doc(hidden)]
    pub __pad: u32,
}

/// `struct io_uring_zcrx_cqe`: the extra half of a `RECV_ZC` 32-byte CQE.
/// Since Linux 6.15.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_zcrx_cqe {
    /// `off`: area-encoded offset of the received data.
    pub off: u64,
    #[doc(hidden)]
    pub __pad: u64,
}

/// `IORING_ZCRX_AREA_SHIFT`: the bit from which the area id is encoded into
/// offsets. Since Linux 6.15.
pub const IORING_ZCRX_AREA_SHIFT: u32 = 48;
/// `IORING_ZCRX_AREA_MASK`: the area-id bits of an offset. Since Linux 6.15.
pub const IORING_ZCRX_AREA_MASK: u64 = !((1u64 << IORING_ZCRX_AREA_SHIFT) - 1);

/// `struct io_uring_zcrx_offsets`: where the refill ring's fields live.
/// Since Linux 6.15.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_zcrx_offsets {
    /// `head`: offset of the refill ring head.
    pub head: u32,
    /// `tail`: offset of the refill ring tail.
    pub tail: u32,
    /// `rqes`: offset of the refill entries.
    pub rqes: u32,
    #[doc(hidden)]
    pub __resv2: u32,
    #[doc(hidden)]
    pub __resv: [u64; 2],
}

/// `struct io_uring_zcrx_area_reg`: the memory area received data lands in.
/// Since Linux 6.15 (`flags`/`dmabuf_fd` since 6.16).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_zcrx_area_reg {
    /// `addr`: the area.
    pub addr: u64,
    /// `len`: its length.
    pub len: u64,
    /// `rq_area_token`: out, the token to encode into refill offsets.
    pub rq_area_token: u64,
    /// `flags`: [`ZcrxAreaFlags`](crate::ZcrxAreaFlags).
    pub flags: u32,
    /// `dmabuf_fd`: with `IORING_ZCRX_AREA_DMABUF`.
    pub dmabuf_fd: u32,
    #[doc(hidden)]
    pub __resv2: [u64; 2],
}

/// `struct io_uring_zcrx_ifq_reg`: argument of `IORING_REGISTER_ZCRX_IFQ`.
/// Since Linux 6.15.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_zcrx_ifq_reg {
    /// `if_idx`: network interface index.
    pub if_idx: u32,
    /// `if_rxq`: hardware rx queue.
    pub if_rxq: u32,
    /// `rq_entries`: refill ring size.
    pub rq_entries: u32,
    /// `flags`.
    pub flags: u32,
    /// `area_ptr`: pointer to an [`io_uring_zcrx_area_reg`].
    pub area_ptr: u64,
    /// `region_ptr`: pointer to an [`io_uring_region_desc`](crate::io_uring_region_desc).
    pub region_ptr: u64,
    /// `offsets`: out, the refill ring layout.
    pub offsets: io_uring_zcrx_offsets,
    /// `zcrx_id`: out, the id to put in `sqe->zcrx_ifq_idx`.
    pub zcrx_id: u32,
    #[doc(hidden)]
    pub __resv2: u32,
    #[doc(hidden)]
    pub __resv: [u64; 3],
}
