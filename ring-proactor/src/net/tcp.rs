//! [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use ring_io_ops::Fd;

use crate::args::from_sockaddr;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::flags::{Domain, MsgFlags, SocketType};
use crate::handle::{Transfer, socket};
use crate::net::Incoming;
use crate::ops::Backend;
use crate::proactor::Proactor;
use crate::{IntoOpFd, OpFd, Runtime};
#[cfg(doc)]
use crate::{LocalProactor, Op};

/// A TCP socket listening for connections, whose accepts are ops of its
/// runtime `R`: a [`Proactor`] (the default) or a [`LocalProactor`] (see
/// [`Runtime`]).
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpListener};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
/// let client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let (stream, peer) = listener.accept().wait()?;
/// assert_eq!(peer, client.local_addr()?);
/// assert_eq!(stream.peer_addr()?, peer);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// On a [`LocalProactor`], whose ops complete while its thread drives it
/// (here its `block_on`, through `wait`):
///
/// ```
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::TcpListener};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
/// let client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let (stream, peer) = listener.accept().wait()?;
/// assert_eq!(peer, client.local_addr()?);
/// assert_eq!(stream.peer_addr()?, peer);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener<R: Runtime = Proactor> {
    inner: Arc<std::net::TcpListener>,
    proactor: R,
}

impl<R: Runtime> TcpListener<R> {
    /// A listener bound to `addr` (the first of its addresses that binds,
    /// as [`std::net::TcpListener::bind`]: a name is resolved on this
    /// thread, blocking).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// assert!(listener.local_addr()?.ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(proactor: &impl AsRef<R>, addr: impl ToSocketAddrs) -> io::Result<TcpListener<R>> {
        let proactor = proactor.as_ref();
        TcpListener::from_std(proactor, std::net::TcpListener::bind(addr)?)
    }

    /// Accepts a connection: the stream and the peer's address.
    /// See [`TcpListener`] for an example.
    pub fn accept(&self) -> R::Op<io::Result<(TcpStream<R>, SocketAddr)>> {
        let fd: OpFd = (&self.inner).into_op_fd();
        // The peer's address, and its length (updated by the kernel).
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut addr: Box<(libc::sockaddr_storage, u32)> = Box::new((
            unsafe { std::mem::zeroed() },
            size_of::<libc::sockaddr_storage>() as u32,
        ));
        let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .peer_addr((&raw mut addr.0).cast(), &raw mut addr.1)
            .build();
        let accept =
            self.proactor
                .op_with(entry, fd, move |res: io::Result<u32>, _| -> io::Result<_> {
                    // SAFETY: a successful accept returns a new fd that nothing
                    // owns.
                    let fd = res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })?;
                    Ok((fd, from_sockaddr(&addr.0, addr.1)))
                });
        self.proactor.map_with(accept, |p, accepted| {
            let (fd, peer) = accepted?;
            let stream = TcpStream::from_owned(fd, p);
            let peer = match peer {
                Some(peer) => peer,
                None => stream.peer_addr()?,
            };
            Ok((stream, peer))
        })
    }

    /// The connections, as a stream (multishot from Linux 5.19; see
    /// [`Incoming`]). It holds the listener open.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let clients: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(addr)).collect();
    /// let accepted: Vec<_> = block_on(listener.incoming().take(3).collect());
    /// for (stream, client) in accepted.into_iter().zip(clients) {
    ///     assert_eq!(stream?.peer_addr()?, client?.local_addr()?);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> Incoming<TcpStream<R>, R> {
        let inner = self.inner.clone();
        Incoming::new(&self.proactor, move || inner.clone(), TcpStream::from_owned)
    }

    /// The address it listens on.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
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
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let std = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// std.set_nonblocking(true)?;
    /// let listener = TcpListener::from_std(&p, std)?;
    /// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// listener.accept().wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(proactor: &impl AsRef<R>, listener: std::net::TcpListener) -> io::Result<Self> {
        let proactor = proactor.as_ref();
        listener.set_nonblocking(false)?;
        Ok(TcpListener {
            inner: Arc::new(listener),
            proactor: proactor.clone(),
        })
    }

    /// The std listener (a `dup(2)` of it if ops dropped in flight still
    /// hold this one).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let std = listener.into_std()?;
    /// assert_eq!(std.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    /// The std listener, for socket options (`set_ttl`, ...). Its
    /// blocking `accept` blocks the calling thread.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// listener.as_std().set_ttl(42)?;
    /// assert_eq!(listener.as_std().ttl()?, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_std(&self) -> &std::net::TcpListener {
        &self.inner
    }

    /// The runtime whose ops this listener's are.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// listener.proactor().nop().wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn proactor(&self) -> &R {
        &self.proactor
    }
}

/// A TCP connection whose reads and writes are ops of its runtime `R` (a
/// [`Proactor`], the default, or a [`LocalProactor`]: see [`Runtime`]),
/// each taking a buffer by value and handing it back with the result.
///
/// Reads and writes take `&self`, so a task may read and write at once
/// (joining the two futures), and the stream may be shared (`Arc`, or
/// `Rc` on a LocalProactor) between tasks. It closes when dropped (once
/// its ops are done).
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::{TcpListener, TcpStream}};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
/// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
/// let (server, _) = listener.accept().wait()?;
/// block_on(async {
///     client.write_all(b"hello".to_vec()).await.0?;
///     let (n, buf) = server.read(vec![0u8; 64]).await;
///     assert_eq!(&buf[..n?], b"hello");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// On a [`LocalProactor`], the accept and the connect at once on its
/// thread:
///
/// ```
/// use futures_util::future::join;
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::{TcpListener, TcpStream}};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// p.block_on(async {
///     let (accepted, client) = join(listener.accept(), TcpStream::connect(&p, addr)).await;
///     let ((server, _), client) = (accepted?, client?);
///     client.write_all(b"hello".to_vec()).await.0?;
///     let (n, buf) = server.read(vec![0u8; 64]).await;
///     assert_eq!(&buf[..n?], b"hello");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream<R: Runtime = Proactor> {
    inner: Arc<std::net::TcpStream>,
    proactor: R,
}

impl<R: Runtime> TcpStream<R> {
    pub(crate) fn from_owned(fd: OwnedFd, proactor: &R) -> TcpStream<R> {
        TcpStream {
            inner: Arc::new(fd.into()),
            proactor: proactor.clone(),
        }
    }

    /// Connects to `addr` (`IORING_OP_CONNECT`), on a new socket. Give it
    /// a time limit with [`Op::timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let stream = TcpStream::connect(&p, listener.local_addr()?)
    ///     .timeout(Duration::from_secs(5))
    ///     .wait()??;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(proactor: &impl AsRef<R>, addr: SocketAddr) -> R::Op<io::Result<TcpStream<R>>> {
        let proactor = proactor.as_ref();
        let socket = match socket(Domain::for_address(addr), SocketType::STREAM) {
            Ok(socket) => Arc::new(std::net::TcpStream::from(socket)),
            Err(e) => return proactor.failed(e),
        };
        let connect = crate::ops::net::connect(proactor, socket.clone(), addr);
        proactor.map_with(connect, move |p, res| {
            res.map(|()| TcpStream {
                inner: socket,
                proactor: p.clone(),
            })
        })
    }

    /// Receives into `buf`: fills it from its start, up to its
    /// [`bytes_total`](IoBuf::bytes_total), with what has arrived (at
    /// least a byte, waiting for it); returns how many bytes, 0 at the end
    /// of the stream. See [`Proactor::read`] for the buffers it takes.
    /// See [`TcpStream`] for an example.
    pub fn read<B: IoBufMut>(&self, buf: B) -> R::Op<BufResult<usize, B>> {
        crate::ops::net::recv(&self.proactor, &self.inner, buf, MsgFlags::empty())
    }

    /// Sends `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes; returns how
    /// many were sent (maybe fewer: [`write_all`](Self::write_all) sends
    /// them all). A peer that closed is an error (`EPIPE`, with
    /// `MSG_NOSIGNAL`: no `SIGPIPE`).
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// # let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// let (n, buf) = client.write("static bytes").wait();
    /// assert_eq!((n?, buf), (12, "static bytes"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write<B: IoBuf>(&self, buf: B) -> R::Op<BufResult<usize, B>> {
        crate::ops::net::send(&self.proactor, &self.inner, buf, MsgFlags::NOSIGNAL)
    }

    /// Fills `buf` to its [`bytes_total`](IoBuf::bytes_total), with as
    /// many receives as it takes: the end of the stream before it is full
    /// fails with `UnexpectedEof`. The buffer comes back in every case (on
    /// an error, with the bytes received so far marked initialized).
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::{TcpListener, TcpStream}};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// # let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// let (server, _) = listener.accept().wait()?;
    /// let reading = server.read_exact(Vec::with_capacity(6));
    /// client.write_all("one").wait().0?;
    /// client.write_all("two").wait().0?;
    /// drop(client);
    /// let (res, buf) = block_on(reading);
    /// res?;
    /// assert_eq!(buf, b"onetwo");
    /// let (res, _) = server.read_exact(vec![0u8; 1]).wait();
    /// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_exact<B: IoBufMut>(&self, buf: B) -> Transfer<B, R> {
        Transfer::read(&self.proactor, &self.inner, 0, buf, |p, fd, rest, _| {
            crate::ops::net::recv(p, fd, rest, MsgFlags::empty())
        })
    }

    /// Sends all of `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes, with
    /// as many sends as it takes; a send of 0 bytes fails with
    /// `WriteZero`. The buffer comes back in every case.
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::{TcpListener, TcpStream}};
    /// # use std::io::Read;
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// # let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// let (server, _) = listener.accept().wait()?;
    /// // More than the socket buffers hold: several sends.
    /// let reader = std::thread::spawn(move || {
    ///     let mut got = Vec::new();
    ///     server.into_std()?.read_to_end(&mut got).map(|_| got)
    /// });
    /// let (res, _) = block_on(client.write_all(vec![1u8; 8 << 20]));
    /// res?;
    /// drop(client);
    /// assert_eq!(reader.join().unwrap()?.len(), 8 << 20);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_all<B: IoBuf>(&self, buf: B) -> Transfer<B, R> {
        Transfer::write(&self.proactor, &self.inner, 0, buf, |p, fd, rest, _| {
            crate::ops::net::send(p, fd, rest, MsgFlags::NOSIGNAL)
        })
    }

    /// Shuts down reading, writing or both, like `shutdown(2)` (at once:
    /// it does not wait): after `Write`, the peer reads the end of the
    /// stream.
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// # let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// let (server, _) = listener.accept().wait()?;
    /// client.shutdown(std::net::Shutdown::Write)?;
    /// assert_eq!(server.read(vec![0u8; 8]).wait().0?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The peer's address.
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// assert_eq!(client.peer_addr()?, listener.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// let (_, peer) = listener.accept().wait()?;
    /// assert_eq!(client.local_addr()?, peer);
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
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::TcpStream};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let std = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let stream = TcpStream::from_std(&p, std)?;
    /// stream.write_all("over io_uring").wait().0?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(proactor: &impl AsRef<R>, stream: std::net::TcpStream) -> io::Result<Self> {
        let proactor = proactor.as_ref();
        stream.set_nonblocking(false)?;
        Ok(TcpStream {
            inner: Arc::new(stream),
            proactor: proactor.clone(),
        })
    }

    /// The std stream (a `dup(2)` of it if ops dropped in flight still
    /// hold this one).
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    /// use std::io::Write;
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// # let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// let (server, _) = listener.accept().wait()?;
    /// client.into_std()?.write_all(b"blocking")?;
    /// let (n, buf) = server.read(vec![0u8; 16]).wait();
    /// assert_eq!(&buf[..n?], b"blocking");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    /// The std stream, for socket options (`set_nodelay`, `set_ttl`,
    /// ...). Its blocking reads and writes block the calling thread.
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// # let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// client.as_std().set_nodelay(true)?;
    /// assert!(client.as_std().nodelay()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_std(&self) -> &std::net::TcpStream {
        &self.inner
    }

    /// The runtime whose ops this stream's are.
    ///
    /// ```
    /// # use ring_io_proactor::{Proactor, ProactorConfig, net::{TcpListener, TcpStream}};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// # let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let client = TcpStream::connect(&p, listener.local_addr()?).wait()?;
    /// client.proactor().nop().wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn proactor(&self) -> &R {
        &self.proactor
    }
}

macro_rules! fd_traits {
    ($($ty:ident),*) => {$(
        impl<R: Runtime> AsFd for $ty<R> {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl<R: Runtime> AsRawFd for $ty<R> {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }

        /// The runtime's ops take `&handle`: the op holds the socket open
        /// until the kernel is done with it.
        impl<R: Runtime> IntoOpFd for &$ty<R> {
            fn into_op_fd(self) -> OpFd {
                (&self.inner).into_op_fd()
            }
        }

        impl<R: Runtime> fmt::Debug for $ty<R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.inner.as_raw_fd())
                    .finish_non_exhaustive()
            }
        }
    )*};
}

pub(crate) use fd_traits;

fd_traits!(TcpListener, TcpStream);
