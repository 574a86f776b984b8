//! The three io_uring system calls, as thin `unsafe fn`s over raw `syscall`
//! instructions (no libc, so they work the same with glibc, musl and no_std).
//!
//! Each returns the kernel's non-negative result, or the error number it
//! returned as an [`Errno`]. Nothing is retried: `EINTR` comes back as
//! `Err(Errno::EINTR)` for the caller (ring-driver) to decide.

use core::ffi::c_void;
use core::fmt;

use crate::io_uring_params;

/// `__NR_io_uring_setup`: the same on every architecture (unified syscall
/// table, Linux 5.1).
pub const SYS_IO_URING_SETUP: usize = 425;
/// `__NR_io_uring_enter`. Since Linux 5.1.
pub const SYS_IO_URING_ENTER: usize = 426;
/// `__NR_io_uring_register`. Since Linux 5.1.
pub const SYS_IO_URING_REGISTER: usize = 427;

/// Size of the kernel's signal set (`_NSIG / 8`), the `argsz` that
/// [`io_uring_enter`] passes with a plain `sigset_t` pointer.
pub const KERNEL_SIGSET_SIZE: usize = 8;

/// An error number returned by a system call (a positive `errno` value).
///
/// Values are the generic Linux ones (x86_64, aarch64, riscv64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($( $name:ident = $val:literal, $msg:literal; )*) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`: ", $msg, ".")]
                pub const $name: Errno = Errno($val);
            )*

            /// The symbolic name (`"EINVAL"`), if it is one io_uring commonly returns.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// A short description (`"invalid argument"`), if known.
            pub const fn description(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some($msg), )*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "operation not permitted";
    ENOENT = 2, "no such file or directory";
    EINTR = 4, "interrupted system call";
    EIO = 5, "input/output error";
    ENXIO = 6, "no such device or address";
    EBADF = 9, "bad file descriptor";
    EAGAIN = 11, "resource temporarily unavailable";
    ENOMEM = 12, "cannot allocate memory";
    EACCES = 13, "permission denied";
    EFAULT = 14, "bad address";
    EBUSY = 16, "device or resource busy";
    EEXIST = 17, "file exists";
    ENODEV = 19, "no such device";
    EINVAL = 22, "invalid argument";
    ENFILE = 23, "too many open files in system";
    EMFILE = 24, "too many open files";
    EFBIG = 27, "file too large";
    ENOSPC = 28, "no space left on device";
    ESPIPE = 29, "illegal seek";
    EPIPE = 32, "broken pipe";
    ERANGE = 34, "numerical result out of range";
    ENOSYS = 38, "function not implemented";
    EOVERFLOW = 75, "value too large for defined data type";
    EBADFD = 77, "file descriptor in bad state";
    ENOTSOCK = 88, "socket operation on non-socket";
    EOPNOTSUPP = 95, "operation not supported";
    ECONNRESET = 104, "connection reset by peer";
    ENOBUFS = 105, "no buffer space available";
    ETIMEDOUT = 110, "connection timed out";
    ECONNREFUSED = 111, "connection refused";
    EALREADY = 114, "operation already in progress";
    EINPROGRESS = 115, "operation now in progress";
    ECANCELED = 125, "operation canceled";
    ETIME = 62, "timer expired";
}

impl Errno {
    /// The errno of a negative `cqe.res` or syscall return, `None` if `res >= 0`.
    pub const fn from_result(res: i64) -> Option<Errno> {
        if res < 0 && res >= -4095 {
            Some(Errno(-res as i32))
        } else {
            None
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Errno({name})"),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.description()) {
            (Some(name), Some(desc)) => write!(f, "{desc} ({name}, errno {})", self.0),
            _ => write!(f, "errno {}", self.0),
        }
    }
}

impl core::error::Error for Errno {}

#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl From<Errno> for std::io::Error {
    /// The `io::Error` of the same OS error code:
    /// [`raw_os_error()`](std::io::Error::raw_os_error) gives `errno.0` back,
    /// so `?` on a `Result<_, Errno>` works in a function returning
    /// `std::io::Result`. Needs the `std` feature (which `ring-io-driver`
    /// turns on).
    fn from(errno: Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(errno.0)
    }
}

/// Turns a raw syscall return into `Ok(value)` or `Err(errno)`.
#[inline(always)]
fn check(ret: isize) -> Result<usize, Errno> {
    // -4095..=-1 are errors: as unsigned, the values from -4095 up (one
    // compare, as the C library's wrappers do).
    if ret as usize >= -4095isize as usize {
        Err(Errno((ret as i32).wrapping_neg()))
    } else {
        Ok(ret as usize)
    }
}

/// `io_uring_setup(2)`: create a ring with room for `entries` submissions.
///
/// Returns the ring's file descriptor (or, with
/// `IORING_SETUP_REGISTERED_FD_ONLY`, a registered ring index) and fills
/// `params` with the geometry, offsets and features.
///
/// # Safety
///
/// `params` must point to a valid, writable [`io_uring_params`].
///
/// With `IORING_SETUP_NO_MMAP`, `params.sq_off.user_addr` (the SQEs) and
/// `params.cq_off.user_addr` (the SQ and CQ rings) must each point to a
/// page-aligned region, valid for reads and writes for the size the kernel
/// needs for the requested geometry, of private anonymous memory of this
/// process (`MAP_PRIVATE | MAP_ANONYMOUS`, huge pages allowed; not shared
/// with a file or another mapping), the two not overlapping and neither
/// given to another ring. Once the call succeeds the regions belong to the
/// ring for good. While the caller holds the ring it accesses them only as
/// the ring's shared memory, by the io_uring protocol (the application's
/// side of the indices, SQEs and CQEs). It never frees or reuses them in
/// place, not even after closing the ring: the kernel pins their pages and
/// tears a ring down asynchronously, after the last close returns (later
/// still while another thread's registered-ring table holds it),
/// cancelling the requests still in flight and writing their completions
/// into these pages then. No caller can observe when that ends, so the one
/// thing allowed after the close is unmapping them (`munmap`): the kernel
/// holds its own references to the pages, and its late writes go to pages
/// no mapping shows. (If the call fails, no request ever ran on the ring
/// and nothing is written there later: the regions are the caller's
/// again, as ring-driver's `Builder` takes them to be when it lends them
/// to another setup.)
///
/// With `IORING_SETUP_SQPOLL` the kernel's thread consumes each SQE once
/// its tail is published, with no [`io_uring_enter`] call (and, with
/// `IORING_SETUP_R_DISABLED`, from `IORING_REGISTER_ENABLE_RINGS` on):
/// every SQE published to such a ring must meet [`io_uring_enter`]'s
/// contract from the moment it is published.
#[inline]
pub unsafe fn io_uring_setup(entries: u32, params: *mut io_uring_params) -> Result<i32, Errno> {
    // SAFETY: the caller guarantees `params` is valid; the syscall reads and
    // writes only that struct (and, with NO_MMAP, memory the caller vouched for).
    let ret = unsafe {
        raw::syscall(
            SYS_IO_URING_SETUP,
            entries as usize,
            params as usize,
            0,
            0,
            0,
            0,
        )
    };
    check(ret).map(|fd| fd as i32)
}

/// `io_uring_enter(2)` with an optional signal mask (`argsz` = the kernel's
/// sigset size): submit `to_submit` entries and, with
/// `IORING_ENTER_GETEVENTS`, wait for `min_complete` completions.
///
/// Returns the number of entries consumed from the SQ.
///
/// # Safety
///
/// `fd` must be an io_uring fd the caller may use (or, with
/// `IORING_ENTER_REGISTERED_RING`, an index in this thread's table of
/// registered rings). `sig` must be null or point to a valid kernel
/// `sigset_t`. `flags` must not contain `IORING_ENTER_EXT_ARG` or
/// `IORING_ENTER_EXT_ARG_REG` (use [`io_uring_enter2`]).
///
/// Every SQE the call may submit (those between the kernel's SQ head and
/// the published tail, up to `to_submit` of them) must be fully written,
/// and the kernel must be able to carry each one out touching only what
/// the caller owns until its request is finished: until its final
/// completion has been reaped (the one without `IORING_CQE_F_MORE`: for
/// multishot requests the last one, for zero-copy sends the notification).
/// - Memory: every buffer, path, iovec, message header, timespec or other
///   pointer the SQE carries (in the command area of an `SQE128` entry
///   too) points to memory that stays valid until then, that nothing else
///   reads or writes meanwhile where the kernel writes, and that nothing
///   else writes where it reads. Memory handed over for later requests
///   (`IORING_OP_PROVIDE_BUFFERS`) stays so until the kernel has given
///   every buffer of it back (used by a request whose completion was
///   reaped, or removed with `IORING_OP_REMOVE_BUFFERS`). An SQE that
///   names registered resources (fixed buffers and files, a buffer group)
///   relies on [`io_uring_register`]'s contract for them.
/// - Files: every fd it names stays open until then and is the caller's
///   to use (owned or borrowed, as I/O safety has it); an SQE that closes,
///   installs or replaces files (`IORING_OP_CLOSE`,
///   `IORING_OP_FILES_UPDATE`, `IORING_OP_FIXED_FD_INSTALL`, ...) does so
///   only with files and fd numbers the caller owns.
/// - Other rings: an `IORING_OP_MSG_RING` SQE posts a completion into (or
///   installs a file in) the ring it names, whose owner may take the
///   completion for one of its own requests: it names only a ring whose
///   owner expects exactly that completion.
///
/// Two ways "finished" is later than it looks:
/// - Only a completion this SQE's request posted counts. A CQE with the
///   same `user_data` can be posted by code that names this ring's fd in
///   an `IORING_OP_MSG_RING` SQE of another ring (or with
///   `IORING_REGISTER_SEND_MSG_RING`); a caller that cannot rule that out
///   must not treat a CQE as proof the memory is free.
/// - If the ring is closed while the request is in flight, the kernel
///   cancels it during an asynchronous teardown that goes on after the
///   last close returns, and nothing tells the caller when it ends: the
///   memory must then stay valid for the rest of the process (leak it).
///
/// This is the contract of `ring_io_driver::SubmissionQueue::push`, which
/// writes and publishes the SQEs this call submits.
#[inline]
pub unsafe fn io_uring_enter(
    fd: i32,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    sig: *const c_void,
) -> Result<u32, Errno> {
    // SAFETY: forwarded to the caller's contract; argsz matches a sigset.
    unsafe { io_uring_enter2(fd, to_submit, min_complete, flags, sig, KERNEL_SIGSET_SIZE) }
}

/// `io_uring_enter(2)` with an explicit argument size: with
/// `IORING_ENTER_EXT_ARG`, `arg` points to an
/// [`io_uring_getevents_arg`](crate::io_uring_getevents_arg) and `argsz` is its
/// size; with `IORING_ENTER_EXT_ARG_REG`, `arg` is an offset into the
/// registered wait region and `argsz` is `size_of::<io_uring_reg_wait>()`.
///
/// # Safety
///
/// As for [`io_uring_enter`]; in addition `arg` and `argsz` must describe
/// what `flags` says they are, and any timespec or sigmask `arg` points to
/// must be valid for the duration of the call.
#[inline]
pub unsafe fn io_uring_enter2(
    fd: i32,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    arg: *const c_void,
    argsz: usize,
) -> Result<u32, Errno> {
    // SAFETY: the caller guarantees the ring's published SQEs and `arg` are
    // valid as the kernel will read them.
    let ret = unsafe {
        raw::syscall(
            SYS_IO_URING_ENTER,
            fd as usize,
            to_submit as usize,
            min_complete as usize,
            flags as usize,
            arg as usize,
            argsz,
        )
    };
    check(ret).map(|n| n as u32)
}

/// `io_uring_register(2)`: register or query resources of a ring (or, for
/// `IORING_REGISTER_QUERY` and `IORING_REGISTER_SEND_MSG_RING`, of no ring:
/// `fd` -1).
///
/// Returns the opcode's non-negative result (0 for most; an id for
/// `IORING_REGISTER_PERSONALITY`; a count for ring-fd registration).
///
/// # Safety
///
/// `fd` must be an io_uring fd the caller may use (or, with
/// `IORING_REGISTER_USE_REGISTERED_RING`, an index in this thread's table
/// of registered rings; or -1 for the opcodes above that take no ring).
/// `arg` must point to what `opcode` expects, `nr_args` entries long,
/// valid for reads and (for opcodes that write back) writes for the
/// call. What the kernel keeps after the call returns must stay as it
/// needs it:
/// - Buffers (`IORING_REGISTER_BUFFERS`, `_BUFFERS2`, `_BUFFERS_UPDATE`,
///   `IORING_REGISTER_CLONE_BUFFERS`): the kernel pins their pages and
///   reads and writes them for every fixed-buffer request, for as long as
///   any ring holds them. Their memory must not be freed, reused in place
///   (handed back to an allocator), or accessed in ways that race with
///   that I/O until all of these hold: it has been unregistered from this
///   ring (`IORING_UNREGISTER_BUFFERS`, a replacing update) and from every
///   ring it was cloned into, and every request that used it is finished
///   (as [`io_uring_enter`] says: an unregister does not end the requests
///   in flight, which keep their own reference). Closing the ring is not
///   enough: the kernel tears it down after the last close returns, and
///   requests in flight keep using the buffers until they are cancelled
///   then, which no caller can observe; after such a close the memory may
///   only be unmapped (the kernel keeps its own page references), never
///   reused in place.
/// - A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): its entries
///   (unless `IOU_PBUF_RING_MMAP` has the kernel allocate them) and the
///   buffers they point to are the kernel's, as above, until the group is
///   unregistered (`IORING_UNREGISTER_PBUF_RING`) and every request that
///   selected from it is finished; the caller writes entries and the tail
///   only as the protocol allows, and takes a buffer back only from a
///   completion the kernel posted for a request on that group.
/// - Memory the ring keeps for its lifetime (`IORING_REGISTER_MEM_REGION`,
///   `IORING_REGISTER_ZCRX_IFQ`'s area and refill ring,
///   `IORING_REGISTER_RESIZE_RINGS` with `IORING_SETUP_NO_MMAP`): it
///   belongs to the ring for good, as [`io_uring_setup`]'s `NO_MMAP`
///   regions do. So does user memory that any opcode not named here keeps
///   past the call.
/// - Files (`IORING_REGISTER_FILES`, `_FILES2`, `_FILES_UPDATE`,
///   `IORING_REGISTER_EVENTFD`, `_EVENTFD_ASYNC`): every fd is the
///   caller's to use (I/O safety); the kernel takes its own reference.
/// - `IORING_REGISTER_SEND_MSG_RING` posts a completion into the ring its
///   SQE names: as [`io_uring_enter`]'s rule for `IORING_OP_MSG_RING`.
/// - `IORING_REGISTER_ENABLE_RINGS` on an `IORING_SETUP_SQPOLL` ring
///   starts the kernel's thread, which consumes the SQEs published: as
///   [`io_uring_setup`] says for `SQPOLL`.
#[inline]
pub unsafe fn io_uring_register(
    fd: i32,
    opcode: u32,
    arg: *const c_void,
    nr_args: u32,
) -> Result<u32, Errno> {
    // SAFETY: the caller guarantees `arg` is what `opcode` expects.
    let ret = unsafe {
        raw::syscall(
            SYS_IO_URING_REGISTER,
            fd as usize,
            opcode as usize,
            arg as usize,
            nr_args as usize,
            0,
            0,
        )
    };
    check(ret).map(|n| n as u32)
}

#[cfg(target_arch = "x86_64")]
mod raw {
    /// # Safety
    ///
    /// The arguments must be valid for syscall `n`.
    #[inline(always)]
    pub(super) unsafe fn syscall(
        n: usize,
        a1: usize,
        a2: usize,
        a3: usize,
        a4: usize,
        a5: usize,
        a6: usize,
    ) -> isize {
        let ret: isize;
        // SAFETY: the x86_64 syscall ABI: number in rax, arguments in rdi, rsi,
        // rdx, r10, r8, r9; the instruction clobbers rcx and r11. The caller
        // guarantees the arguments are valid for the syscall.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a1,
                in("rsi") a2,
                in("rdx") a3,
                in("r10") a4,
                in("r8") a5,
                in("r9") a6,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, preserves_flags),
            );
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod raw {
    /// # Safety
    ///
    /// The arguments must be valid for syscall `n`.
    #[inline(always)]
    pub(super) unsafe fn syscall(
        n: usize,
        a1: usize,
        a2: usize,
        a3: usize,
        a4: usize,
        a5: usize,
        a6: usize,
    ) -> isize {
        let ret: isize;
        // SAFETY: the aarch64 syscall ABI: number in x8, arguments in x0..x5,
        // result in x0. The caller guarantees the arguments are valid.
        unsafe {
            core::arch::asm!(
                "svc 0",
                in("x8") n,
                inlateout("x0") a1 as isize => ret,
                in("x1") a2,
                in("x2") a3,
                in("x3") a4,
                in("x4") a5,
                in("x5") a6,
                options(nostack, preserves_flags),
            );
        }
        ret
    }
}

#[cfg(target_arch = "riscv64")]
mod raw {
    /// # Safety
    ///
    /// The arguments must be valid for syscall `n`.
    #[inline(always)]
    pub(super) unsafe fn syscall(
        n: usize,
        a1: usize,
        a2: usize,
        a3: usize,
        a4: usize,
        a5: usize,
        a6: usize,
    ) -> isize {
        let ret: isize;
        // SAFETY: the riscv64 syscall ABI: number in a7, arguments in a0..a5,
        // result in a0. The caller guarantees the arguments are valid.
        unsafe {
            core::arch::asm!(
                "ecall",
                in("a7") n,
                inlateout("a0") a1 as isize => ret,
                in("a1") a2,
                in("a2") a3,
                in("a3") a4,
                in("a4") a5,
                in("a5") a6,
                options(nostack, preserves_flags),
            );
        }
        ret
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
compile_error!("ring-io-sys: raw syscalls are written for x86_64, aarch64 and riscv64 only");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_returns_split_into_values_and_errnos() {
        assert_eq!(check(0), Ok(0));
        assert_eq!(check(42), Ok(42));
        assert_eq!(check(-22), Err(Errno::EINVAL));
        assert_eq!(check(-4095), Err(Errno(4095)));
        assert_eq!(Errno::from_result(-4), Some(Errno::EINTR));
        assert_eq!(Errno::from_result(3), None);
    }

    #[cfg(feature = "std")]
    #[test]
    fn an_errno_becomes_an_io_error_of_the_same_code() {
        fn fails() -> std::io::Result<()> {
            Err(Errno::EPERM)?;
            Ok(())
        }
        let err = fails().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(1));
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        let err = std::io::Error::from(Errno(4000));
        assert_eq!(err.raw_os_error(), Some(4000));
    }

    #[test]
    fn errnos_name_themselves() {
        extern crate std;
        use std::format;
        assert_eq!(Errno::EBUSY.name(), Some("EBUSY"));
        assert_eq!(
            format!("{}", Errno::EINVAL),
            "invalid argument (EINVAL, errno 22)"
        );
        assert_eq!(format!("{:?}", Errno::EAGAIN), "Errno(EAGAIN)");
        assert_eq!(format!("{}", Errno(4000)), "errno 4000");
    }
}
