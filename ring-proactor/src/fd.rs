//! [`OpFd`]: a file descriptor an op keeps open until the kernel is done.

use std::fmt;
use std::fs::File;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::sync::Arc;

/// A file descriptor held by an op from its creation until its last CQE.
///
/// An SQE names a file by its number, and the kernel looks the number up
/// when it issues the request, which for a linked or drained op is long after
/// submission. If the file were closed before that, the op would fail with
/// `EBADF`, or act on whatever file reused the number. So every
/// [`Proactor`](crate::Proactor) op that takes a file takes an
/// [`IntoOpFd`]: the op keeps the file open until the kernel has finished
/// with it, even if the op's future is dropped first.
///
/// - `&Arc<F>` (the usual case): the op holds a clone of the `Arc`;
/// - `Arc<F>`: the same, moved;
/// - an owned file (`File`, `OwnedFd`, `TcpStream`, `TcpListener`,
///   `UdpSocket`, `UnixStream`, `UnixListener`, `UnixDatagram`): the op owns
///   it and closes it when it finishes;
/// - `BorrowedFd<'static>`: a file that is never closed (stdin, say);
/// - a handle of [`fs`](crate::fs) or [`net`](crate::net) by reference
///   (`&fs::File`, `&net::TcpStream`, ...): the op holds the handle's file.
///
/// A plain `&File` is refused at compile time: nothing would keep it open.
///
/// ```compile_fail
/// # use ring_io_proactor::{Proactor, ProactorConfig};
/// let proactor = Proactor::new(ProactorConfig::new(8)).unwrap();
/// let file = std::fs::File::open("/dev/zero").unwrap();
/// // error: a borrowed file could be closed while the kernel still uses it
/// let _ = proactor.read(&file, Vec::with_capacity(8), 0).wait();
/// ```
///
/// ```
/// # use std::sync::Arc;
/// # use ring_io_proactor::{Proactor, ProactorConfig};
/// let proactor = Proactor::new(ProactorConfig::new(8))?;
/// let file = Arc::new(std::fs::File::open("/dev/zero")?);
/// let (n, _buf) = proactor.read(&file, Vec::with_capacity(8), 0).wait();
/// assert_eq!(n?, 8);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct OpFd {
    raw: RawFd,
    keep: Keep,
}

enum Keep {
    /// Open for the life of the process.
    Static,
    Shared(#[allow(dead_code, reason = "held, not read")] Arc<dyn Send + Sync>),
    Owned(#[allow(dead_code, reason = "held, not read")] OwnedFd),
}

impl OpFd {
    /// The descriptor's number.
    pub fn raw(&self) -> RawFd {
        self.raw
    }

    /// The file numbered `raw`, kept open by `keep`.
    pub(crate) fn shared_raw(raw: RawFd, keep: Arc<dyn Send + Sync>) -> OpFd {
        OpFd {
            raw,
            keep: Keep::Shared(keep),
        }
    }

    fn shared<F: AsFd + Send + Sync + 'static>(file: Arc<F>) -> OpFd {
        OpFd {
            raw: file.as_fd().as_raw_fd(),
            keep: Keep::Shared(file),
        }
    }
}

impl fmt::Debug for OpFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.keep {
            Keep::Static => "static",
            Keep::Shared(_) => "shared",
            Keep::Owned(_) => "owned",
        };
        f.debug_struct("OpFd")
            .field("raw", &self.raw)
            .field("kept", &how)
            .finish()
    }
}

/// What a [`Proactor`](crate::Proactor) op accepts as a file: something
/// it can keep open until the kernel is done (see [`OpFd`]).
#[diagnostic::on_unimplemented(
    message = "a Proactor op must keep its file open until the kernel is done with it",
    label = "a borrowed file could be closed while the kernel still uses it",
    note = "pass `&Arc<F>` (share the file), or the file by value (the op closes it when it finishes)"
)]
pub trait IntoOpFd {
    /// Takes what keeps the file open.
    fn into_op_fd(self) -> OpFd;
}

impl IntoOpFd for OpFd {
    fn into_op_fd(self) -> OpFd {
        self
    }
}

impl<F: AsFd + Send + Sync + 'static> IntoOpFd for &Arc<F> {
    fn into_op_fd(self) -> OpFd {
        OpFd::shared(self.clone())
    }
}

impl<F: AsFd + Send + Sync + 'static> IntoOpFd for Arc<F> {
    fn into_op_fd(self) -> OpFd {
        OpFd::shared(self)
    }
}

impl IntoOpFd for BorrowedFd<'static> {
    fn into_op_fd(self) -> OpFd {
        OpFd {
            raw: self.as_raw_fd(),
            keep: Keep::Static,
        }
    }
}

macro_rules! owned {
    ($($ty:ty),*) => {$(
        impl IntoOpFd for $ty {
            fn into_op_fd(self) -> OpFd {
                let fd = OwnedFd::from(self);
                OpFd { raw: fd.as_raw_fd(), keep: Keep::Owned(fd) }
            }
        }
    )*};
}

owned!(
    OwnedFd,
    File,
    TcpStream,
    TcpListener,
    UdpSocket,
    UnixStream,
    UnixListener,
    UnixDatagram
);
