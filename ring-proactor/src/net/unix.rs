//! [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ring_io_ops::Fd;

#[cfg(doc)]
use crate::LocalProactor;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::flags::{Domain, MsgFlags, SocketType};
use crate::handle::{Transfer, socket};
use crate::net::Incoming;
use crate::net::tcp::fd_traits;
use crate::ops::Backend;
use crate::proactor::Proactor;
use crate::{IntoOpFd, OpFd, Runtime};

/// A Unix domain socket listening for connections, whose accepts are ops
/// of its runtime `R`: a [`Proactor`] (the default) or a
/// [`LocalProactor`] (see [`Runtime`]).
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, net::{UnixListener, UnixStream}};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let path = std::env::temp_dir().join(format!("unix-listener-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&p, &path)?;
/// let client = UnixStream::connect(&p, &path).wait()?;
/// let (server, peer) = listener.accept().wait()?;
/// assert!(peer.is_unnamed(), "the client did not bind");
/// assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
/// # drop(server);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// On a [`LocalProactor`] (the connect first: the client's connection
/// waits in the backlog for the accept):
///
/// ```
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::{UnixListener, UnixStream}};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let path = std::env::temp_dir().join(format!("unix-listener-local-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&p, &path)?;
/// let client = UnixStream::connect(&p, &path).wait()?;
/// let (server, peer) = listener.accept().wait()?;
/// assert!(peer.is_unnamed());
/// # drop((server, client));
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener<R: Runtime = Proactor> {
    inner: Arc<std::os::unix::net::UnixListener>,
    proactor: R,
}

impl<R: Runtime> UnixListener<R> {
    /// A listener bound to the path `path` (created; as
    /// [`std::os::unix::net::UnixListener::bind`]). See [`UnixListener`]
    /// for an example.
    pub fn bind(proactor: &impl AsRef<R>, path: impl AsRef<Path>) -> io::Result<UnixListener<R>> {
        let proactor = proactor.as_ref();
        UnixListener::from_std(proactor, std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Accepts a connection: the stream and the peer's address (from
    /// `getpeername(2)`; usually unnamed). See [`UnixListener`] for an
    /// example.
    pub fn accept(&self) -> R::Op<io::Result<(UnixStream<R>, SocketAddr)>> {
        let accept = crate::ops::net::accept(&self.proactor, &self.inner);
        self.proactor.map_with(accept, |p, fd| {
            let stream = UnixStream::from_owned(fd?, p);
            let peer = stream.peer_addr()?;
            Ok((stream, peer))
        })
    }

    /// The connections, as a stream (multishot from Linux 5.19; see
    /// [`Incoming`]). It holds the listener open.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::UnixListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("unix-incoming-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&p, &path)?;
    /// let _clients = [
    ///     std::os::unix::net::UnixStream::connect(&path)?,
    ///     std::os::unix::net::UnixStream::connect(&path)?,
    /// ];
    /// let accepted: Vec<_> = block_on(listener.incoming().take(2).collect());
    /// assert!(accepted.iter().all(|stream| stream.is_ok()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> Incoming<UnixStream<R>, R> {
        let inner = self.inner.clone();
        Incoming::new(
            &self.proactor,
            move || inner.clone(),
            UnixStream::from_owned,
        )
    }

    /// The address it listens on.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("unix-local-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&p, &path)?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A listener of `proactor` from a std listener, put in blocking mode
    /// (io_uring fails an accept on a non-blocking socket at once, with
    /// `WouldBlock`, rather than wait).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("unix-from-std-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let std = std::os::unix::net::UnixListener::bind(&path)?;
    /// std.set_nonblocking(true)?;
    /// let listener = UnixListener::from_std(&p, std)?;
    /// let _client = std::os::unix::net::UnixStream::connect(&path)?;
    /// listener.accept().wait()?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(
        proactor: &impl AsRef<R>,
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<Self> {
        let proactor = proactor.as_ref();
        listener.set_nonblocking(false)?;
        Ok(UnixListener {
            inner: Arc::new(listener),
            proactor: proactor.clone(),
        })
    }

    /// The std listener (a `dup(2)` of it if ops dropped in flight still
    /// hold this one).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("unix-into-std-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let std = UnixListener::bind(&p, &path)?.into_std()?;
    /// assert_eq!(std.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    /// The std listener. Its blocking `accept` blocks the calling thread.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("unix-as-std-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&p, &path)?;
    /// assert!(listener.as_std().take_error()?.is_none());
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_std(&self) -> &std::os::unix::net::UnixListener {
        &self.inner
    }

    /// The runtime whose ops this listener's are.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let path = std::env::temp_dir().join(format!("unix-proactor-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&p, &path)?;
    /// listener.proactor().nop().wait()?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn proactor(&self) -> &R {
        &self.proactor
    }
}

/// A Unix domain stream socket whose reads and writes are ops of its
/// runtime `R` (a [`Proactor`], the default, or a [`LocalProactor`]: see
/// [`Runtime`]), each taking a buffer by value and handing it back with
/// the result. Reads and writes take `&self` (see
/// [`TcpStream`](crate::net::TcpStream)).
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::UnixStream};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let (a, b) = UnixStream::pair(&p)?;
/// block_on(async {
///     a.write_all("over a pair").await.0?;
///     let (n, buf) = b.read(vec![0u8; 64]).await;
///     assert_eq!(&buf[..n?], b"over a pair");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// On a [`LocalProactor`]:
///
/// ```
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::UnixStream};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let (a, b) = UnixStream::pair(&p)?;
/// p.block_on(async {
///     a.write_all("over a pair").await.0?;
///     let (n, buf) = b.read(vec![0u8; 64]).await;
///     assert_eq!(&buf[..n?], b"over a pair");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream<R: Runtime = Proactor> {
    inner: Arc<std::os::unix::net::UnixStream>,
    proactor: R,
}

impl<R: Runtime> UnixStream<R> {
    pub(crate) fn from_owned(fd: OwnedFd, proactor: &R) -> UnixStream<R> {
        UnixStream {
            inner: Arc::new(fd.into()),
            proactor: proactor.clone(),
        }
    }

    /// Connects to the socket at the path `path` (`IORING_OP_CONNECT`), on
    /// a new socket. A path of 108 bytes or more, or with a NUL byte, is
    /// `InvalidInput`. See [`UnixListener`] for an example.
    pub fn connect(
        proactor: &impl AsRef<R>,
        path: impl AsRef<Path>,
    ) -> R::Op<io::Result<UnixStream<R>>> {
        let proactor = proactor.as_ref();
        let addr = match sockaddr_un(path.as_ref()) {
            Ok(addr) => addr,
            Err(e) => return proactor.failed(e),
        };
        let socket = match socket(Domain::UNIX, SocketType::STREAM) {
            Ok(socket) => Arc::new(std::os::unix::net::UnixStream::from(socket)),
            Err(e) => return proactor.failed(e),
        };
        let fd: OpFd = (&socket).into_op_fd();
        let len = size_of::<libc::sockaddr_un>() as u32;
        let entry = ring_io_ops::Connect::new(Fd(fd.raw()), (&raw const *addr).cast(), len).build();
        let connect = proactor.op_with(entry, fd, move |res: io::Result<u32>, _| {
            drop(addr);
            res.map(|_| socket)
        });
        proactor.map_with(connect, |p, socket| {
            Ok(UnixStream {
                inner: socket?,
                proactor: p.clone(),
            })
        })
    }

    /// Two streams connected to each other (`socketpair(2)`).
    /// See [`UnixStream`] for an example.
    pub fn pair(proactor: &impl AsRef<R>) -> io::Result<(UnixStream<R>, UnixStream<R>)> {
        let proactor = proactor.as_ref();
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((
            UnixStream::from_std(proactor, a)?,
            UnixStream::from_std(proactor, b)?,
        ))
    }

    /// Receives into `buf`: fills it from its start, up to its
    /// [`bytes_total`](IoBuf::bytes_total), with what has arrived (at
    /// least a byte, waiting for it); returns how many bytes, 0 at the end
    /// of the stream. See [`UnixStream`] for an example.
    pub fn read<B: IoBufMut>(&self, buf: B) -> R::Op<BufResult<usize, B>> {
        crate::ops::net::recv(&self.proactor, &self.inner, buf, MsgFlags::empty())
    }

    /// Sends `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes; returns how
    /// many were sent (maybe fewer). A peer that closed is an error
    /// (`EPIPE`, with `MSG_NOSIGNAL`: no `SIGPIPE`).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, b) = UnixStream::pair(&p)?;
    /// drop(b);
    /// let (res, _) = a.write("nobody reads").wait();
    /// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write<B: IoBuf>(&self, buf: B) -> R::Op<BufResult<usize, B>> {
        crate::ops::net::send(&self.proactor, &self.inner, buf, MsgFlags::NOSIGNAL)
    }

    /// Fills `buf` to its [`bytes_total`](IoBuf::bytes_total), with as
    /// many receives as it takes: the end of the stream before it is full
    /// fails with `UnexpectedEof`. The buffer comes back in every case.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, b) = UnixStream::pair(&p)?;
    /// a.write_all("abc").wait().0?;
    /// drop(a);
    /// let (res, buf) = b.read_exact(vec![0u8; 4]).wait();
    /// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    /// assert_eq!(&buf[..3], b"abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_exact<B: IoBufMut>(&self, buf: B) -> Transfer<B, R> {
        Transfer::read(&self.proactor, &self.inner, 0, buf, |p, fd, rest, _| {
            crate::ops::net::recv(p, fd, rest, MsgFlags::empty())
        })
    }

    /// Sends all of `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes, with
    /// as many sends as it takes; a send of 0 bytes fails with
    /// `WriteZero`. The buffer comes back in every case. See
    /// [`UnixStream`] for an example.
    pub fn write_all<B: IoBuf>(&self, buf: B) -> Transfer<B, R> {
        Transfer::write(&self.proactor, &self.inner, 0, buf, |p, fd, rest, _| {
            crate::ops::net::send(p, fd, rest, MsgFlags::NOSIGNAL)
        })
    }

    /// Shuts down reading, writing or both, like `shutdown(2)` (at once).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, b) = UnixStream::pair(&p)?;
    /// a.shutdown(std::net::Shutdown::Write)?;
    /// assert_eq!(b.read(vec![0u8; 8]).wait().0?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The peer's address. See [`UnixListener`] for an example.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address (unnamed unless bound).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, _b) = UnixStream::pair(&p)?;
    /// assert!(a.local_addr()?.is_unnamed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A stream of `proactor` from a std stream, put in blocking mode
    /// (io_uring may fail the ops of a non-blocking socket at once, with
    /// `WouldBlock`, rather than wait).
    ///
    /// ```
    /// use std::io::Write;
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let b = UnixStream::from_std(&p, b)?;
    /// a.write_all(b"from std")?;
    /// let (n, buf) = b.read(vec![0u8; 16]).wait();
    /// assert_eq!(&buf[..n?], b"from std");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(
        proactor: &impl AsRef<R>,
        stream: std::os::unix::net::UnixStream,
    ) -> io::Result<Self> {
        let proactor = proactor.as_ref();
        stream.set_nonblocking(false)?;
        Ok(UnixStream {
            inner: Arc::new(stream),
            proactor: proactor.clone(),
        })
    }

    /// The std stream (a `dup(2)` of it if ops dropped in flight still
    /// hold this one).
    ///
    /// ```
    /// use std::io::Read;
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, b) = UnixStream::pair(&p)?;
    /// a.write_all("to std").wait().0?;
    /// let mut buf = [0u8; 6];
    /// b.into_std()?.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"to std");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    /// The std stream, for socket options and ancillary calls. Its
    /// blocking reads and writes block the calling thread.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, _b) = UnixStream::pair(&p)?;
    /// assert!(a.as_std().take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_std(&self) -> &std::os::unix::net::UnixStream {
        &self.inner
    }

    /// The runtime whose ops this stream's are.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UnixStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, _b) = UnixStream::pair(&p)?;
    /// a.proactor().nop().wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn proactor(&self) -> &R {
        &self.proactor
    }
}

fd_traits!(UnixListener, UnixStream);

/// The `sockaddr_un` of the path `path`: `InvalidInput` if it holds a NUL
/// byte or is too long for `sun_path` with its terminating NUL.
fn sockaddr_un(path: &Path) -> io::Result<Box<libc::sockaddr_un>> {
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: Box<libc::sockaddr_un> = Box::new(unsafe { std::mem::zeroed() });
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a socket path with a NUL byte",
        ));
    }
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a socket path of {} bytes: at most {} fit",
                bytes.len(),
                addr.sun_path.len() - 1
            ),
        ));
    }
    for (to, &from) in addr.sun_path.iter_mut().zip(bytes) {
        *to = from as libc::c_char;
    }
    Ok(addr)
}
