//! Errors of the driver: small, specific, and convertible to `io::Error`.

use std::fmt;
use std::io;

use ring_io_sys::Errno;

pub use ring_io_ops::Unsupported;

/// Why a ring could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// The kernel rejected a setup flag this kernel does not have.
    Unsupported(Unsupported),
    /// The builder's options contradict each other (checked before the
    /// kernel is asked): the text says which.
    Invalid(&'static str),
    /// The entry counts asked for make no ring the kernel accepts (zero, too
    /// large without [`Builder::clamp`](crate::Builder::clamp), or a CQ
    /// smaller than the SQ), checked by the kernel's own rules before it is
    /// asked.
    Size(ring_io_core::GeometryError),
    /// `io_uring_setup(2)` failed for another reason (`ENOMEM`, `EPERM` when
    /// io_uring is disabled, `EMFILE`, ...).
    Setup(Errno),
    /// Mapping or registering the ring failed.
    Io(io::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Unsupported(u) => write!(f, "cannot set up the ring: {u}"),
            SetupError::Invalid(why) => write!(f, "invalid ring configuration: {why}"),
            SetupError::Size(e @ ring_io_core::GeometryError::TooLarge { .. }) => write!(
                f,
                "invalid ring size: {e} (the kernel's limits are 32768 SQ and 65536 CQ entries); \
                 Builder::clamp() sets up a ring of the largest size instead"
            ),
            SetupError::Size(e) => write!(f, "invalid ring size: {e}"),
            SetupError::Setup(e) => {
                write!(f, "io_uring_setup failed: {e}")?;
                explain_setup_errno(f, *e, || std::fs::read_to_string(IO_URING_DISABLED).ok())
            }
            SetupError::Io(e) => write!(f, "cannot map the ring: {e}"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Unsupported(u) => Some(u),
            SetupError::Setup(e) => Some(e),
            SetupError::Io(e) => Some(e),
            SetupError::Size(e) => Some(e),
            SetupError::Invalid(_) => None,
        }
    }
}

impl SetupError {
    /// The OS error code behind this error, if there is one: the errno of
    /// `io_uring_setup(2)` ([`Setup`](Self::Setup)) or of the mapping or
    /// registration that failed ([`Io`](Self::Io)). The `io::Error` this
    /// converts to has the same [`raw_os_error()`](io::Error::raw_os_error).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SetupError::Setup(errno) => Some(errno.0),
            SetupError::Io(e) => e.raw_os_error(),
            SetupError::Unsupported(_) | SetupError::Invalid(_) | SetupError::Size(_) => None,
        }
    }
}

impl From<SetupError> for io::Error {
    /// An error that carries an OS error code becomes the `io::Error` of that
    /// code ([`raw_os_error()`](io::Error::raw_os_error) keeps it; an
    /// `io::Error` cannot carry both a code and a message, so the
    /// explanation of [`SetupError`]'s `Display` stays with the
    /// `SetupError`). The others keep the `SetupError` as their payload, of
    /// kind `Unsupported` or `InvalidInput`.
    fn from(e: SetupError) -> io::Error {
        match e {
            SetupError::Setup(errno) => io::Error::from(errno),
            SetupError::Io(io) if io.raw_os_error().is_some() => io,
            SetupError::Io(io) => io::Error::new(io.kind(), SetupError::Io(io)),
            SetupError::Unsupported(_) => io::Error::new(io::ErrorKind::Unsupported, e),
            SetupError::Invalid(_) | SetupError::Size(_) => {
                io::Error::new(io::ErrorKind::InvalidInput, e)
            }
        }
    }
}

/// The sysctl that disables io_uring (Linux 6.6): 0 allowed, 1 allowed only
/// for the group in `kernel.io_uring_group` and `CAP_SYS_ADMIN`, 2 disabled.
const IO_URING_DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";

/// What an `io_uring_setup(2)` errno usually means, after the errno itself.
/// `disabled` reads the `kernel.io_uring_disabled` sysctl (`None` where the
/// kernel has none); it is only called for `EPERM`.
fn explain_setup_errno(
    f: &mut fmt::Formatter<'_>,
    errno: Errno,
    disabled: impl FnOnce() -> Option<String>,
) -> fmt::Result {
    const FILTERED: &str = "a seccomp filter (container runtimes such as Docker and \
                            Podman block io_uring by default) or a security module \
                            (SELinux, AppArmor) refuses io_uring to this process";
    match errno {
        Errno::EPERM => match disabled().as_deref().map(str::trim) {
            Some("2") => f.write_str(
                "; io_uring is disabled for every process by the sysctl \
                 kernel.io_uring_disabled = 2 (`sysctl kernel.io_uring_disabled=0` \
                 enables it)",
            ),
            Some("1") => f.write_str(
                "; io_uring is restricted by the sysctl kernel.io_uring_disabled = 1: \
                 only members of the group in kernel.io_uring_group and processes with \
                 CAP_SYS_ADMIN may use it (`sysctl kernel.io_uring_disabled=0` enables it \
                 for everyone)",
            ),
            Some(value) => write!(
                f,
                "; the sysctl kernel.io_uring_disabled = {value} allows io_uring, so {FILTERED}"
            ),
            None => write!(f, "; {FILTERED}"),
        },
        Errno::ENOSYS => f.write_str(
            "; this kernel has no io_uring (older than Linux 5.1, or built without \
             CONFIG_IO_URING), or a seccomp filter hides it",
        ),
        Errno::ENOMEM => f.write_str(
            "; before Linux 5.12 ring memory counts against RLIMIT_MEMLOCK \
             (`ulimit -l`): raise it or ask for fewer entries",
        ),
        _ => Ok(()),
    }
}

/// An `Errno` as an `io::Error` with the same OS error code.
pub(crate) fn os(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SetupError::Setup(errno)` formatted as if the sysctl read `disabled`.
    fn text(errno: Errno, disabled: Option<&str>) -> String {
        struct Shown(Errno, Option<String>);
        impl fmt::Display for Shown {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "io_uring_setup failed: {}", self.0)?;
                explain_setup_errno(f, self.0, || self.1.clone())
            }
        }
        Shown(errno, disabled.map(String::from)).to_string()
    }

    #[test]
    fn eperm_is_explained_by_the_sysctl_value_or_a_filter() {
        let everyone = text(Errno::EPERM, Some("2\n"));
        assert!(everyone.contains("EPERM"), "{everyone}");
        assert!(
            everyone.contains("kernel.io_uring_disabled = 2")
                && everyone.contains("disabled for every process"),
            "{everyone}"
        );
        let group = text(Errno::EPERM, Some("1\n"));
        assert!(
            group.contains("kernel.io_uring_disabled = 1")
                && group.contains("io_uring_group")
                && group.contains("CAP_SYS_ADMIN"),
            "{group}"
        );
        let allowed = text(Errno::EPERM, Some("0\n"));
        assert!(
            allowed.contains("kernel.io_uring_disabled = 0 allows io_uring")
                && allowed.contains("seccomp")
                && allowed.contains("container"),
            "{allowed}"
        );
        let old_kernel = text(Errno::EPERM, None);
        assert!(
            old_kernel.contains("seccomp") && !old_kernel.contains("io_uring_disabled"),
            "{old_kernel}"
        );
    }

    #[test]
    fn other_errnos_get_their_hint_or_none() {
        assert!(text(Errno::ENOSYS, None).contains("Linux 5.1"));
        assert!(text(Errno::ENOMEM, None).contains("RLIMIT_MEMLOCK"));
        assert_eq!(
            text(Errno::EMFILE, None),
            "io_uring_setup failed: too many open files (EMFILE, errno 24)"
        );
    }

    #[test]
    fn the_display_of_a_setup_error_explains_eperm() {
        let text = SetupError::Setup(Errno::EPERM).to_string();
        assert!(text.starts_with("io_uring_setup failed: operation not permitted"));
        // Which explanation depends on this machine's sysctl; there is one.
        assert!(
            text.contains("io_uring_disabled") || text.contains("seccomp"),
            "{text}"
        );
    }

    #[test]
    fn every_conversion_to_io_error_keeps_the_os_error_code() {
        for errno in [Errno::EPERM, Errno::ENOMEM, Errno::EMFILE, Errno(4000)] {
            let e = SetupError::Setup(errno);
            assert_eq!(e.raw_os_error(), Some(errno.0));
            let io = io::Error::from(e);
            assert_eq!(io.raw_os_error(), Some(errno.0), "{errno:?}");
        }
        let mapped = SetupError::Io(io::Error::from_raw_os_error(libc::ENOMEM));
        assert_eq!(mapped.raw_os_error(), Some(libc::ENOMEM));
        let io = io::Error::from(mapped);
        assert_eq!(io.raw_os_error(), Some(libc::ENOMEM));
        assert_eq!(io.kind(), io::ErrorKind::OutOfMemory);
        // Without a code: the kind and the message stay.
        let checked = SetupError::Io(io::Error::new(io::ErrorKind::InvalidData, "bad offset"));
        assert_eq!(checked.raw_os_error(), None);
        let io = io::Error::from(checked);
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        assert!(io.to_string().contains("bad offset"), "{io}");
        let size = SetupError::Size(ring_io_core::GeometryError::TooLarge {
            which: "sq_entries",
            entries: 100_000,
            max: 32768,
        });
        let io = io::Error::from(size);
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        assert!(io.to_string().contains("clamp()"), "{io}");
    }
}
