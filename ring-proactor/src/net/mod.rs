//! Sockets as the Proactor's handles: [`TcpListener`], [`TcpStream`],
//! [`UdpSocket`], [`UnixListener`], [`UnixStream`]. Their accepts,
//! connects, reads and writes are ops with owned buffers, as in
//! tokio-uring and monoio; each converts from and into its std type
//! (`from_std`, `into_std`, `as_std`), and `&handle` is an
//! [`IntoOpFd`] for the Proactor's other ops
//! ([`send`](crate::Proactor::send) with [`MsgFlags`](crate::MsgFlags),
//! [`poll`](crate::Proactor::poll), ...).
//!
//! Each handle holds a clone of its [`Proactor`] (see
//! [Clones](Proactor#clones-and-the-handles-of-fs-and-net)): a task or a
//! thread needs only its socket. The same handles run on a
//! [`LocalProactor`](crate::LocalProactor) (`TcpStream<LocalProactor>`,
//! ...: see [`Runtime`]), where they stay on its thread; the
//! `echo_local` example is a server built on them.
//!
//! An echo server, one task per connection on a single thread (with
//! `futures-util`'s `for_each_concurrent`):
//!
//! ```
//! use futures_util::StreamExt;
//! use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::{TcpListener, TcpStream}};
//!
//! let p = Proactor::new(ProactorConfig::new(64))?;
//! let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = std::thread::spawn(move || {
//!     block_on(listener.incoming().take(1).for_each_concurrent(None, |conn| async move {
//!         let conn = conn.unwrap();
//!         let mut buf = vec![0u8; 4096];
//!         loop {
//!             let (n, back) = conn.read(buf).await;
//!             let n = n.unwrap();
//!             if n == 0 {
//!                 break;
//!             }
//!             let (res, back) = conn.write_all(back.slice(..n)).await;
//!             res.unwrap();
//!             buf = back.into_inner();
//!         }
//!     }))
//! });
//! # use ring_io_proactor::IoBuf;
//! block_on(async {
//!     let stream = TcpStream::connect(&p, addr).await?;
//!     stream.write_all("ping").await.0?;
//!     let (res, buf) = stream.read_exact(vec![0u8; 4]).await;
//!     res?;
//!     assert_eq!(buf, b"ping");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! server.join().unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

mod tcp;
mod udp;
mod unix;

use std::fmt;
use std::future::Future as _;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

use crate::ops::Backend;
use crate::proactor::Proactor;
use crate::runtime::sealed::{Sealed, Token};
use crate::{IntoOpFd, OpFd, Runtime};

/// The connections a listener accepts, as a `futures_core::Stream` that
/// never ends: from [`TcpListener::incoming`] and
/// [`UnixListener::incoming`]. An accept that fails is an `Err` item, and
/// the stream goes on.
///
/// From Linux 5.19, one multishot accept (`IORING_ACCEPT_MULTISHOT`)
/// serves every connection, re-armed if the kernel ends it. Before, each
/// item is one accept, submitted when the stream is polled: connections
/// that arrive meanwhile wait in the listen backlog, and none is lost.
///
/// Dropping the stream cancels its accept, and a connection the kernel
/// accepted meanwhile is closed. To stop without losing one,
/// [`cancel`](Self::cancel) the stream and take what it still yields.
///
/// `S` is the listener's stream, `R` its runtime (see [`Runtime`]): the
/// default is a [`Proactor`]'s; a [`LocalProactor`](crate::LocalProactor)'s
/// listener yields an `Incoming<TcpStream<LocalProactor>, LocalProactor>`:
///
/// ```
/// use futures_util::StreamExt;
/// use ring_io_proactor::{LocalProactor, ProactorConfig, net::TcpListener};
///
/// let p = LocalProactor::new(ProactorConfig::new(8))?;
/// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let clients: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(addr)).collect();
/// let accepted: Vec<_> = p.block_on(listener.incoming().take(3).collect());
/// for (stream, client) in accepted.into_iter().zip(clients) {
///     assert_eq!(stream?.peer_addr()?, client?.local_addr()?);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "a stream does nothing until polled"]
pub struct Incoming<S: 'static, R: Runtime = Proactor> {
    proactor: R,
    listener: Box<dyn Fn() -> OpFd + Send + Sync>,
    accepting: Accepting<R>,
    make: fn(OwnedFd, &R) -> S,
    cancelled: bool,
}

enum Accepting<R: Runtime> {
    Multi(<R as Sealed>::Multi<OwnedFd>),
    /// Before 5.19: one accept at a time.
    One(Option<R::Op<io::Result<OwnedFd>>>),
}

impl<S: 'static, R: Runtime> Incoming<S, R> {
    pub(crate) fn new<L: IntoOpFd>(
        proactor: &R,
        listener: impl Fn() -> L + Send + Sync + 'static,
        make: fn(OwnedFd, &R) -> S,
    ) -> Self {
        let listener: Box<dyn Fn() -> OpFd + Send + Sync> =
            Box::new(move || listener().into_op_fd());
        let accepting = if proactor.needs(5, 19, "multishot accept").is_some() {
            Accepting::One(None)
        } else {
            Accepting::Multi(proactor.accept_multi_of(Token(()), listener()))
        };
        Incoming {
            proactor: proactor.clone(),
            listener,
            accepting,
            make,
            cancelled: false,
        }
    }

    /// Asks the kernel to stop accepting: the connections it accepted
    /// before the cancellation took effect still come, then the stream
    /// ends. Nothing is lost, unlike a drop: a connection that arrives
    /// after the cancellation stays in the listen backlog, for the next
    /// [`accept`](TcpListener::accept) or stream.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use ring_io_proactor::{Proactor, ProactorConfig, block_on, net::TcpListener};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let listener = TcpListener::bind(&p, "127.0.0.1:0")?;
    /// let mut incoming = listener.incoming();
    /// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// incoming.cancel();
    /// // The connection comes from the stream, or is still in the backlog.
    /// let from_stream = block_on(incoming.collect::<Vec<_>>()).len();
    /// if from_stream == 0 {
    ///     listener.accept().wait()?;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel(&mut self) {
        self.cancelled = true;
        match &mut self.accepting {
            Accepting::Multi(multi) => R::cancel_multi(Token(()), multi),
            Accepting::One(op) => {
                if let Some(op) = op {
                    R::cancel_of(Token(()), op);
                }
            }
        }
    }
}

impl<S: 'static, R: Runtime> Unpin for Incoming<S, R> {}

impl<S: 'static, R: Runtime> futures_core::Stream for Incoming<S, R> {
    type Item = io::Result<S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<S>>> {
        let this = self.get_mut();
        loop {
            let accepted = match &mut this.accepting {
                Accepting::Multi(multi) => match R::poll_multi(Token(()), multi, cx) {
                    Poll::Ready(Some(accepted)) => accepted,
                    Poll::Ready(None) if this.cancelled => return Poll::Ready(None),
                    Poll::Ready(None) => {
                        // The kernel ended the request: accept again.
                        let listener = (this.listener)();
                        let multi = this.proactor.accept_multi_of(Token(()), listener);
                        this.accepting = Accepting::Multi(multi);
                        continue;
                    }
                    Poll::Pending => return Poll::Pending,
                },
                Accepting::One(None) if this.cancelled => return Poll::Ready(None),
                Accepting::One(op) => {
                    let accept = op.get_or_insert_with(|| {
                        crate::ops::net::accept(&this.proactor, (this.listener)())
                    });
                    match Pin::new(accept).poll(cx) {
                        Poll::Ready(accepted) => {
                            *op = None;
                            accepted
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
            };
            let ecanceled =
                matches!(&accepted, Err(e) if e.raw_os_error() == Some(libc::ECANCELED));
            if this.cancelled && ecanceled {
                // The cancellation's own completion: not an item. A
                // multishot request ends after it; a single accept is
                // done.
                continue;
            }
            return Poll::Ready(Some(accepted.map(|fd| (this.make)(fd, &this.proactor))));
        }
    }
}

impl<S: 'static, R: Runtime> fmt::Debug for Incoming<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.accepting {
            Accepting::Multi(_) => "multishot",
            Accepting::One(_) => "one at a time",
        };
        f.debug_struct("Incoming")
            .field("accepting", &how)
            .finish_non_exhaustive()
    }
}
