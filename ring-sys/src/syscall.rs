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
/// `params` must point to a valid, writable [`io_uring_params`]. With
/// `IORING_SETUP_NO_MMAP`, `params.sq_off.user_addr` and
/// `params.cq_off.user_addr` must point to memory that stays mapped, and is
/// used for nothing else, for as long as the ring exists.
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
/// `fd` must be an io_uring fd (or registered index, with
/// `IORING_ENTER_REGISTERED_RING`) whose SQ entries up to the published tail
/// are fully written, and every buffer, iovec, path or other pointer they
/// carry must stay valid until the operation's completion is reaped. `sig`
/// must be null or point to a valid kernel `sigset_t`. `flags` must not
/// contain `IORING_ENTER_EXT_ARG` or `IORING_ENTER_EXT_ARG_REG` (use
/// [`io_uring_enter2`]).
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
/// `arg` must point to what `opcode` expects, `nr_args` entries long, valid
/// for reads and (for opcodes that write back) writes. Registered buffers
/// must stay valid until they are unregistered or the ring is closed.
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
