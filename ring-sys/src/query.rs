//! `linux/io_uring/query.h`: the `IORING_REGISTER_QUERY` interface. Since Linux 6.18.
//!
//! A query is a chain of [`io_uring_query_hdr`]s passed to `io_uring_register`
//! with `IORING_REGISTER_QUERY` (no ring needed: `fd` may be -1, `nr_args` 0).

/// `struct io_uring_query_hdr`: one query in a chain. Since Linux 6.18.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_query_hdr {
    /// `next_entry`: pointer to the next header, or 0.
    pub next_entry: u64,
    /// `query_data`: pointer to the query's output struct.
    pub query_data: u64,
    /// `query_op`: an `IO_URING_QUERY_*` value.
    pub query_op: u32,
    /// `size`: in, the size of the output buffer; out, the bytes written.
    pub size: u32,
    /// `result`: out, 0 or `-errno` (`-EOPNOTSUPP` for an unknown query).
    pub result: i32,
    #[doc(hidden)]
    pub __resv: [u32; 3],
}

/// `IO_URING_QUERY_OPCODES`: query what the kernel supports, into an
/// [`io_uring_query_opcode`]. Since Linux 6.18.
pub const IO_URING_QUERY_OPCODES: u32 = 0;
/// `__IO_URING_QUERY_MAX`: one past the last query of Linux 6.18.
pub const __IO_URING_QUERY_MAX: u32 = 1;

/// `struct io_uring_query_opcode`: output of `IO_URING_QUERY_OPCODES`.
/// Since Linux 6.18.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_query_opcode {
    /// `nr_request_opcodes`: number of supported `IORING_OP_*`.
    pub nr_request_opcodes: u32,
    /// `nr_register_opcodes`: number of supported `IORING_[UN]REGISTER_*`.
    pub nr_register_opcodes: u32,
    /// `feature_flags`: every supported `IORING_FEAT_*`.
    pub feature_flags: u64,
    /// `ring_setup_flags`: every supported `IORING_SETUP_*`.
    pub ring_setup_flags: u64,
    /// `enter_flags`: every supported `IORING_ENTER_*`.
    pub enter_flags: u64,
    /// `sqe_flags`: every supported `IOSQE_*`.
    pub sqe_flags: u64,
    /// `nr_query_opcodes`: number of supported `IO_URING_QUERY_*`.
    pub nr_query_opcodes: u32,
    #[doc(hidden)]
    pub __pad: u32,
}
