//! [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

#[cfg(doc)]
use crate::LocalProactor;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::flags::MsgFlags;
use crate::net::tcp::fd_traits;
use crate::ops::Backend;
use crate::proactor::Proactor;
use crate::{IntoOpFd, OpFd, Runtime};

/// A UDP socket whose sends and receives are ops of its runtime `R` (a
/// [`Proactor`], the default, or a [`LocalProactor`]: see [`Runtime`]),
/// each taking a buffer by value and handing it back with the result.
///
/// ```
/// use ring_io_proactor::{Proactor, ProactorConfig, net::UdpSocket};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let a = UdpSocket::bind(&p, "127.0.0.1:0")?;
/// let b = UdpSocket::bind(&p, "127.0.0.1:0")?;
/// a.send_to("datagram", b.local_addr()?).wait().0?;
/// let (res, buf) = b.recv_from(vec![0u8; 64]).wait();
/// let (n, from) = res?;
/// assert_eq!((&buf[..n], from), (&b"datagram"[..], a.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// On a [`LocalProactor`]:
///
/// ```
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::UdpSocket};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let a = UdpSocket::bind(&p, "127.0.0.1:0")?;
/// let b = UdpSocket::bind(&p, "127.0.0.1:0")?;
/// a.send_to("datagram", b.local_addr()?).wait().0?;
/// let (res, buf) = b.recv_from(vec![0u8; 64]).wait();
/// let (n, from) = res?;
/// assert_eq!((&buf[..n], from), (&b"datagram"[..], a.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket<R: Runtime = Proactor> {
    inner: Arc<std::net::UdpSocket>,
    proactor: R,
}

impl<R: Runtime> UdpSocket<R> {
    /// A socket bound to `addr` (the first of its addresses that binds, as
    /// [`std::net::UdpSocket::bind`]: a name is resolved on this thread,
    /// blocking). See [`UdpSocket`] for an example.
    pub fn bind(proactor: &impl AsRef<R>, addr: impl ToSocketAddrs) -> io::Result<UdpSocket<R>> {
        let proactor = proactor.as_ref();
        UdpSocket::from_std(proactor, std::net::UdpSocket::bind(addr)?)
    }

    /// Sends `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes as one
    /// datagram to `addr`; returns how many were sent. See [`UdpSocket`]
    /// for an example.
    pub fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> R::Op<BufResult<usize, B>> {
        crate::ops::net::send_to(&self.proactor, &self.inner, buf, addr)
    }

    /// Receives one datagram into `buf` (filled from its start; a longer
    /// datagram is cut, the rest lost); returns its length and its sender.
    /// See [`UdpSocket`] for an example.
    pub fn recv_from<B: IoBufMut>(&self, buf: B) -> R::Op<BufResult<(usize, SocketAddr), B>> {
        let recv = crate::ops::net::recv_from(&self.proactor, &self.inner, buf);
        R::map(recv, |(res, buf)| {
            let res = res.and_then(|(n, from)| {
                let from = from.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "a datagram from no IP address")
                })?;
                Ok((n, from))
            });
            (res, buf)
        })
    }

    /// Sets the peer that [`send`](Self::send) sends to and the only one
    /// [`recv`](Self::recv) receives from (`IORING_OP_CONNECT`).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UdpSocket};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let a = UdpSocket::bind(&p, "127.0.0.1:0")?;
    /// let b = UdpSocket::bind(&p, "127.0.0.1:0")?;
    /// a.connect(b.local_addr()?).wait()?;
    /// b.connect(a.local_addr()?).wait()?;
    /// assert_eq!(a.peer_addr()?, b.local_addr()?);
    /// a.send("to b").wait().0?;
    /// let (n, buf) = b.recv(vec![0u8; 16]).wait();
    /// assert_eq!(&buf[..n?], b"to b");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(&self, addr: SocketAddr) -> R::Op<io::Result<()>> {
        crate::ops::net::connect(&self.proactor, &self.inner, addr)
    }

    /// Sends `buf`'s [`bytes_init`](IoBuf::bytes_init) bytes as one
    /// datagram to the [`connect`](Self::connect)ed peer. See
    /// [`connect`](Self::connect) for an example.
    pub fn send<B: IoBuf>(&self, buf: B) -> R::Op<BufResult<usize, B>> {
        crate::ops::net::send(&self.proactor, &self.inner, buf, MsgFlags::empty())
    }

    /// Receives one datagram from the [`connect`](Self::connect)ed peer
    /// into `buf` (filled from its start; a longer datagram is cut). See
    /// [`connect`](Self::connect) for an example.
    pub fn recv<B: IoBufMut>(&self, buf: B) -> R::Op<BufResult<usize, B>> {
        crate::ops::net::recv(&self.proactor, &self.inner, buf, MsgFlags::empty())
    }

    /// The local address. See [`UdpSocket`] for an example.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The [`connect`](Self::connect)ed peer's address (`NotConnected` if
    /// none). See [`connect`](Self::connect) for an example.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// A socket of `proactor` from a std socket, put in blocking mode
    /// (io_uring may fail the ops of a non-blocking socket at once, with
    /// `WouldBlock`, rather than wait).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UdpSocket};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let std = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// std.set_nonblocking(true)?;
    /// let socket = UdpSocket::from_std(&p, std)?;
    /// socket.send_to("self", socket.local_addr()?).wait().0?;
    /// let (n, _) = socket.recv(vec![0u8; 8]).wait();
    /// assert_eq!(n?, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(proactor: &impl AsRef<R>, socket: std::net::UdpSocket) -> io::Result<Self> {
        let proactor = proactor.as_ref();
        socket.set_nonblocking(false)?;
        Ok(UdpSocket {
            inner: Arc::new(socket),
            proactor: proactor.clone(),
        })
    }

    /// The std socket (a `dup(2)` of it if ops dropped in flight still
    /// hold this one).
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UdpSocket};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let socket = UdpSocket::bind(&p, "127.0.0.1:0")?;
    /// let addr = socket.local_addr()?;
    /// assert_eq!(socket.into_std()?.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    /// The std socket, for socket options (`set_broadcast`, multicast,
    /// ...). Its blocking sends and receives block the calling thread.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UdpSocket};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let socket = UdpSocket::bind(&p, "127.0.0.1:0")?;
    /// socket.as_std().set_broadcast(true)?;
    /// assert!(socket.as_std().broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_std(&self) -> &std::net::UdpSocket {
        &self.inner
    }

    /// The runtime whose ops this socket's are.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, net::UdpSocket};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let socket = UdpSocket::bind(&p, "127.0.0.1:0")?;
    /// socket.proactor().nop().wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn proactor(&self) -> &R {
        &self.proactor
    }
}

fd_traits!(UdpSocket);
