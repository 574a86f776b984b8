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
            SetupError::Setup(e) => write!(f, "io_uring_setup failed: {e}"),
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

impl From<SetupError> for io::Error {
    fn from(e: SetupError) -> io::Error {
        let kind = match &e {
            SetupError::Unsupported(_) => io::ErrorKind::Unsupported,
            SetupError::Invalid(_) | SetupError::Size(_) => io::ErrorKind::InvalidInput,
            SetupError::Setup(errno) => io::Error::from_raw_os_error(errno.0).kind(),
            SetupError::Io(io) => io.kind(),
        };
        io::Error::new(kind, e)
    }
}

/// An `Errno` as an `io::Error` with the same OS error code.
pub(crate) fn os(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno.0)
}
