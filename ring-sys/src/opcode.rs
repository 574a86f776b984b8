//! `enum io_uring_op`: every `IORING_OP_*` of Linux 6.18, as `u8` constants
//! (the type of `io_uring_sqe::opcode`), plus [`IORING_OPS`], a table of them.

/// Defines each opcode constant and, from the same list, [`IORING_OPS`], so
/// the table cannot disagree with the constants.
macro_rules! opcodes {
    ($( $name:ident = $val:literal, ($major:literal, $minor:literal), $doc:literal; )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: ", $doc, " Since Linux ",
                stringify!($major), ".", stringify!($minor), ".")]
            pub const $name: u8 = $val;
        )*

        /// Every opcode of Linux 6.18 in value order: `(value, C name, first
        /// kernel as (major, minor))`. `IORING_OPS[i].0 == i` for every `i`,
        /// and its length is [`IORING_OP_LAST`].
        pub const IORING_OPS: &[(u8, &str, (u8, u8))] = &[
            $( ($val, stringify!($name), ($major, $minor)), )*
        ];
    };
}

opcodes! {
    IORING_OP_NOP = 0, (5, 1), "no operation; completes with 0.";
    IORING_OP_READV = 1, (5, 1), "vectored read, like `preadv2(2)`.";
    IORING_OP_WRITEV = 2, (5, 1), "vectored write, like `pwritev2(2)`.";
    IORING_OP_FSYNC = 3, (5, 1), "`fsync(2)` / `fdatasync(2)`.";
    IORING_OP_READ_FIXED = 4, (5, 1), "read into a registered buffer.";
    IORING_OP_WRITE_FIXED = 5, (5, 1), "write from a registered buffer.";
    IORING_OP_POLL_ADD = 6, (5, 1), "poll an fd, like `poll(2)`.";
    IORING_OP_POLL_REMOVE = 7, (5, 1), "remove or update a poll request.";
    IORING_OP_SYNC_FILE_RANGE = 8, (5, 2), "`sync_file_range(2)`.";
    IORING_OP_SENDMSG = 9, (5, 3), "`sendmsg(2)`.";
    IORING_OP_RECVMSG = 10, (5, 3), "`recvmsg(2)`.";
    IORING_OP_TIMEOUT = 11, (5, 4), "a timeout, relative or absolute, optionally counting completions.";
    IORING_OP_TIMEOUT_REMOVE = 12, (5, 5), "remove or update a timeout.";
    IORING_OP_ACCEPT = 13, (5, 5), "`accept4(2)`.";
    IORING_OP_ASYNC_CANCEL = 14, (5, 5), "cancel in-flight requests.";
    IORING_OP_LINK_TIMEOUT = 15, (5, 5), "a timeout for the previous linked request.";
    IORING_OP_CONNECT = 16, (5, 5), "`connect(2)`.";
    IORING_OP_FALLOCATE = 17, (5, 6), "`fallocate(2)`.";
    IORING_OP_OPENAT = 18, (5, 6), "`openat(2)`.";
    IORING_OP_CLOSE = 19, (5, 6), "`close(2)`, or close a fixed file.";
    IORING_OP_FILES_UPDATE = 20, (5, 6), "update registered files from the ring.";
    IORING_OP_STATX = 21, (5, 6), "`statx(2)`.";
    IORING_OP_READ = 22, (5, 6), "`pread(2)` into a single buffer.";
    IORING_OP_WRITE = 23, (5, 6), "`pwrite(2)` from a single buffer.";
    IORING_OP_FADVISE = 24, (5, 6), "`posix_fadvise(2)`.";
    IORING_OP_MADVISE = 25, (5, 6), "`madvise(2)`.";
    IORING_OP_SEND = 26, (5, 6), "`send(2)`.";
    IORING_OP_RECV = 27, (5, 6), "`recv(2)`.";
    IORING_OP_OPENAT2 = 28, (5, 6), "`openat2(2)`.";
    IORING_OP_EPOLL_CTL = 29, (5, 6), "`epoll_ctl(2)`.";
    IORING_OP_SPLICE = 30, (5, 7), "`splice(2)`.";
    IORING_OP_PROVIDE_BUFFERS = 31, (5, 7), "provide buffers to a buffer group.";
    IORING_OP_REMOVE_BUFFERS = 32, (5, 7), "remove buffers from a buffer group.";
    IORING_OP_TEE = 33, (5, 8), "`tee(2)`.";
    IORING_OP_SHUTDOWN = 34, (5, 11), "`shutdown(2)`.";
    IORING_OP_RENAMEAT = 35, (5, 11), "`renameat2(2)`.";
    IORING_OP_UNLINKAT = 36, (5, 11), "`unlinkat(2)`.";
    IORING_OP_MKDIRAT = 37, (5, 15), "`mkdirat(2)`.";
    IORING_OP_SYMLINKAT = 38, (5, 15), "`symlinkat(2)`.";
    IORING_OP_LINKAT = 39, (5, 15), "`linkat(2)`.";
    IORING_OP_MSG_RING = 40, (5, 18), "post a completion (or pass a fixed file) to another ring.";
    IORING_OP_FSETXATTR = 41, (5, 19), "`fsetxattr(2)`.";
    IORING_OP_SETXATTR = 42, (5, 19), "`setxattr(2)`.";
    IORING_OP_FGETXATTR = 43, (5, 19), "`fgetxattr(2)`.";
    IORING_OP_GETXATTR = 44, (5, 19), "`getxattr(2)`.";
    IORING_OP_SOCKET = 45, (5, 19), "`socket(2)`.";
    IORING_OP_URING_CMD = 46, (5, 19), "a driver- or socket-specific command (like `ioctl(2)`).";
    IORING_OP_SEND_ZC = 47, (6, 0), "zero-copy `send(2)`.";
    IORING_OP_SENDMSG_ZC = 48, (6, 1), "zero-copy `sendmsg(2)`.";
    IORING_OP_READ_MULTISHOT = 49, (6, 7), "multishot read into provided buffers.";
    IORING_OP_WAITID = 50, (6, 7), "`waitid(2)`.";
    IORING_OP_FUTEX_WAIT = 51, (6, 7), "`futex(2)` wait (futex2 semantics).";
    IORING_OP_FUTEX_WAKE = 52, (6, 7), "`futex(2)` wake (futex2 semantics).";
    IORING_OP_FUTEX_WAITV = 53, (6, 7), "`futex_waitv(2)`.";
    IORING_OP_FIXED_FD_INSTALL = 54, (6, 8), "install a fixed file into the process fd table.";
    IORING_OP_FTRUNCATE = 55, (6, 9), "`ftruncate(2)`.";
    IORING_OP_BIND = 56, (6, 11), "`bind(2)`.";
    IORING_OP_LISTEN = 57, (6, 11), "`listen(2)`.";
    IORING_OP_RECV_ZC = 58, (6, 15), "zero-copy receive into a registered zcrx area.";
    IORING_OP_EPOLL_WAIT = 59, (6, 15), "`epoll_wait(2)`.";
    IORING_OP_READV_FIXED = 60, (6, 15), "vectored read into registered buffers.";
    IORING_OP_WRITEV_FIXED = 61, (6, 15), "vectored write from registered buffers.";
    IORING_OP_PIPE = 62, (6, 16), "`pipe2(2)`.";
}

/// `IORING_OP_LAST`: one past the last opcode of Linux 6.18 (`IORING_OP_PIPE`).
/// The kernel's value grows with each release; this is 6.18's.
pub const IORING_OP_LAST: u8 = 63;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opcode_from_nop_to_last_is_named_once() {
        assert_eq!(IORING_OPS.len(), usize::from(IORING_OP_LAST));
        for (i, &(value, name, _)) in IORING_OPS.iter().enumerate() {
            assert_eq!(
                usize::from(value),
                i,
                "{name} is out of place: no gap or duplicate allowed"
            );
            assert!(name.starts_with("IORING_OP_"), "{name}");
        }
        assert_eq!(IORING_OPS[usize::from(IORING_OP_PIPE)].1, "IORING_OP_PIPE");
        assert_eq!(IORING_OPS.last().map(|op| op.0), Some(IORING_OP_LAST - 1));
    }

    #[test]
    fn first_kernels_never_decrease() {
        // Opcodes are appended as kernels add them, so the first-kernel
        // column never decreases; a decrease means a mistyped version.
        for pair in IORING_OPS.windows(2) {
            assert!(
                pair[0].2 <= pair[1].2,
                "{} ({:?}) after {} ({:?})",
                pair[1].1,
                pair[1].2,
                pair[0].1,
                pair[0].2
            );
        }
        assert_eq!(IORING_OPS[0].2, (5, 1));
        assert_eq!(IORING_OPS[usize::from(IORING_OP_PIPE)].2, (6, 16));
    }
}
