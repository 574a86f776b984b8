//! `struct io_uring_cqe` and the 32-byte entry of `IORING_SETUP_CQE32`.

/// `struct io_uring_cqe`: a completion queue entry, 16 bytes. Since Linux 5.1.
///
/// The C struct ends in `__u64 big_cqe[]`, a flexible array that is empty in
/// 16-byte rings; here it is the zero-length `big_cqe`, and
/// [`io_uring_cqe32`] is the 32-byte form.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct io_uring_cqe {
    /// `user_data`: the submission's `user_data`. Since Linux 5.1.
    pub user_data: u64,
    /// `res`: the result, `-errno` on failure. Since Linux 5.1.
    pub res: i32,
    /// `flags`: `IORING_CQE_F_*` bits ([`CqeFlags`](crate::CqeFlags)) and,
    /// with `IORING_CQE_F_BUFFER`, the buffer id in the upper 16 bits.
    /// Since Linux 5.1.
    pub flags: u32,
    /// `big_cqe[]`: the extra 16 bytes of a 32-byte entry start here.
    /// Since Linux 5.19.
    pub big_cqe: [u64; 0],
}

/// A 32-byte completion entry, the slot size of a ring set up with
/// `IORING_SETUP_CQE32` (Linux 5.19), or a CQE flagged `IORING_CQE_F_32` in
/// an `IORING_SETUP_CQE_MIXED` ring (Linux 6.18). No C struct of its own: the
/// header spells it `io_uring_cqe` with `big_cqe[2]`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct io_uring_cqe32 {
    /// The first 16 bytes: an ordinary entry.
    pub cqe: io_uring_cqe,
    /// `big_cqe[0..2]`: op-specific extra data (uring_cmd results, ...).
    pub big_cqe: [u64; 2],
}
