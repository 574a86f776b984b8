//! Helpers shared by the differential tests: the bytes of an entry, and a
//! slot full of garbage to check that in-place encoding writes every byte.
#![allow(dead_code)]

use ring_io_sys::{io_uring_sqe, io_uring_sqe128};

/// The 64 bytes of an SQE.
pub(crate) fn sqe_bytes(sqe: io_uring_sqe) -> [u8; 64] {
    // SAFETY: io_uring_sqe is #[repr(C)], 64 bytes with no padding (ring-sys
    // asserts size and offsets), and every entry handled here was built
    // from `io_uring_sqe::zeroed()` or from `garbage_sqe()`, so all 64 bytes
    // are initialised.
    unsafe { core::mem::transmute::<io_uring_sqe, [u8; 64]>(sqe) }
}

/// The 128 bytes of an SQE128.
pub(crate) fn sqe128_bytes(sqe: io_uring_sqe128) -> [u8; 128] {
    // SAFETY: as `sqe_bytes`, plus 64 initialised bytes of `cmd_ext`.
    unsafe { core::mem::transmute::<io_uring_sqe128, [u8; 128]>(sqe) }
}

/// The 64 bytes of an oracle entry.
pub(crate) fn oracle_bytes(entry: io_uring::squeue::Entry) -> [u8; 64] {
    // SAFETY: io_uring::squeue::Entry is `#[repr(C)] struct Entry(io_uring_sqe)`,
    // 64 bytes; the oracle builds every entry from `mem::zeroed()`, so all
    // bytes are initialised.
    unsafe { core::mem::transmute::<io_uring::squeue::Entry, [u8; 64]>(entry) }
}

/// The 128 bytes of an oracle SQE128 entry.
pub(crate) fn oracle128_bytes(entry: io_uring::squeue::Entry128) -> [u8; 128] {
    // SAFETY: Entry128 is `#[repr(C)] struct Entry128(Entry, [u8; 64])`,
    // 128 bytes, every byte initialised as above.
    unsafe { core::mem::transmute::<io_uring::squeue::Entry128, [u8; 128]>(entry) }
}

/// A slot whose every byte is `0xa5`, as if it held an earlier entry.
pub(crate) fn garbage_sqe() -> io_uring_sqe {
    // SAFETY: every bit pattern is a valid io_uring_sqe (integers and unions
    // of integers only).
    unsafe { core::mem::transmute::<[u8; 64], io_uring_sqe>([0xa5; 64]) }
}

/// A 128-byte slot whose every byte is `0xa5`.
pub(crate) fn garbage_sqe128() -> io_uring_sqe128 {
    // SAFETY: as `garbage_sqe`.
    unsafe { core::mem::transmute::<[u8; 128], io_uring_sqe128>([0xa5; 128]) }
}

/// Names the differing byte offsets of two encodings, for failure messages.
pub(crate) fn diff(ours: &[u8], theirs: &[u8]) -> String {
    let mut out = String::new();
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if a != b {
            out.push_str(&format!("byte {i}: ours {a:#04x}, reference {b:#04x}; "));
        }
    }
    out
}
