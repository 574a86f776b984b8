//! Socket ops: accept, connect, send and receive (with addresses), shutdown,
//! socket, poll, and the multishot accept and receive streams.

#[cfg(doc)]
use crate::{ProactorConfig, ProactorStats};
use std::io::{self};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use ring_io_ops::Fd;

use ring_io_driver::Cqe;

use crate::args::*;
use crate::buf::{BufResult, IoBuf, IoBufMut, op_len};
use crate::multi::*;
use crate::op::*;
use crate::ops::Backend;
use crate::proactor::*;
use crate::{Domain, MsgFlags, PollEvents, Protocol, SocketType};
use crate::{IntoOpFd, OpFd};

impl Proactor {
    /// Accepts a connection on the listening socket `fd` (`SOCK_CLOEXEC`).
    pub fn accept(&self, fd: impl IntoOpFd) -> Op<io::Result<OwnedFd>> {
        accept(self, fd)
    }

    /// Connects the socket `fd` to `addr`, like `connect(2)`.
    pub fn connect(&self, fd: impl IntoOpFd, addr: SocketAddr) -> Op<io::Result<()>> {
        connect(self, fd, addr)
    }

    /// Sends `buf`'s initialized bytes (a `Vec`'s length) on the socket
    /// `fd` with `flags`, like `send(2)`; see [`write`](Self::write) for
    /// the buffers it takes. Without [`MsgFlags::NOSIGNAL`], a send on a
    /// connection the peer closed raises `SIGPIPE` (which Rust programs
    /// ignore by default).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use ring_io_proactor::{MsgFlags, Proactor, ProactorConfig};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// drop(b);
    /// let (res, _) = p.send(Arc::new(a), "lost", MsgFlags::NOSIGNAL).wait();
    /// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        flags: MsgFlags,
    ) -> Op<BufResult<usize, B>> {
        send(self, fd, buf, flags)
    }

    /// Receives into `buf` from the socket `fd` with `flags`, like
    /// `recv(2)`: fills it from its start, as [`read`](Self::read) does
    /// (0 at end of stream; no room is `InvalidInput`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ring_io_proactor::{MsgFlags, Proactor, ProactorConfig};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let (a, b) = (Arc::new(a), Arc::new(b));
    /// p.send(&a, "ping", MsgFlags::empty()).wait().0?;
    /// let (n, buf) = p.recv(&b, vec![0u8; 1024], MsgFlags::empty()).wait();
    /// assert_eq!(&buf[..n?], b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        flags: MsgFlags,
    ) -> Op<BufResult<usize, B>> {
        recv(self, fd, buf, flags)
    }

    /// Shuts down part of the full-duplex connection on the socket `fd`,
    /// like `shutdown(2)` (`IORING_OP_SHUTDOWN`, Linux 5.11).
    pub fn shutdown(&self, fd: impl IntoOpFd, how: std::net::Shutdown) -> Op<io::Result<()>> {
        shutdown(self, fd, how)
    }

    /// A new socket (close-on-exec), like `socket(2)`
    /// (`IORING_OP_SOCKET`, Linux 5.19); a `protocol` of `None` is the
    /// domain's default for the type.
    ///
    /// ```
    /// use ring_io_proactor::{Domain, Proactor, ProactorConfig, Protocol, SocketType};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// # if p.probe().kernel().is_some_and(|k| !k.at_least(5, 19)) { return Ok(()) }
    /// let fd = p.socket(Domain::IPV4, SocketType::DGRAM, Some(Protocol::UDP)).wait()?;
    /// let socket = std::net::UdpSocket::from(fd);
    /// assert!(socket.local_addr()?.ip().is_unspecified());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn socket(
        &self,
        domain: Domain,
        socket_type: SocketType,
        protocol: Option<Protocol>,
    ) -> Op<io::Result<OwnedFd>> {
        socket(self, domain, socket_type, protocol)
    }

    /// Waits until `fd` is ready for `events` ([`PollEvents::IN`],
    /// [`PollEvents::OUT`], ...), like `poll(2)` on one file; returns the
    /// ready events (`ERR` and `HUP` are reported unasked).
    ///
    /// ```
    /// use std::{io::Write, sync::Arc};
    /// use ring_io_proactor::{PollEvents, Proactor, ProactorConfig};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let readable = p.poll(Arc::new(a), PollEvents::IN).start();
    /// b.write_all(b"!")?;
    /// assert!(readable.wait()?.contains(PollEvents::IN));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll(&self, fd: impl IntoOpFd, events: PollEvents) -> Op<io::Result<PollEvents>> {
        poll(self, fd, events)
    }

    /// Sends `buf`'s initialized bytes to `addr` on the datagram socket
    /// `fd`, like `sendmsg(2)` with one iovec and a destination.
    pub fn send_to<B: IoBuf>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
        addr: SocketAddr,
    ) -> Op<BufResult<usize, B>> {
        send_to(self, fd, buf, addr)
    }

    /// Receives one datagram into `buf` from the socket `fd`, like
    /// `recvmsg(2)`: fills it from its start, as [`read`](Self::read) does
    /// (no room is `InvalidInput`), and returns the length and the sender
    /// (`None` if not an IP address). A datagram longer than the room is
    /// cut (the rest is lost, as with `recv_from(2)`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ring_io_proactor::{Proactor, ProactorConfig};
    /// # let p = Proactor::new(ProactorConfig::new(8))?;
    /// let a = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0")?);
    /// let b = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0")?);
    /// p.send_to(&a, "hi", b.local_addr()?).wait().0?;
    /// let (res, buf) = p.recv_from(&b, vec![0u8; 64]).wait();
    /// let (n, from) = res?;
    /// assert_eq!((&buf[..n], from), (&b"hi"[..], Some(a.local_addr()?)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_from<B: IoBufMut>(
        &self,
        fd: impl IntoOpFd,
        buf: B,
    ) -> Op<BufResult<(usize, Option<SocketAddr>), B>> {
        recv_from(self, fd, buf)
    }

    /// Accepts connections on the listening socket `fd` with one multishot
    /// request (`IORING_ACCEPT_MULTISHOT`, Linux 5.19): a [`Multi`] of new
    /// sockets (`SOCK_CLOEXEC`).
    ///
    /// The kernel posts one CQE per connection, and nothing bounds how
    /// many arrive between two reaps: a burst can find the CQ full. No
    /// connection is lost: the kernel keeps the CQEs in its overflow
    /// backlog (`IORING_FEAT_NODROP`), which the driver flushes, or ends the
    /// request with a last, successful CQE (newer kernels), which the
    /// stream delivers before it re-arms the request (counted in
    /// [`ProactorStats::stream_restarts`]).
    pub fn accept_multi(&self, fd: impl IntoOpFd) -> Multi<OwnedFd> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(5, 19, "multishot accept (IORING_ACCEPT_MULTISHOT)") {
            return Multi::failed(self, e);
        }
        let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
            .flags(libc::SOCK_CLOEXEC)
            .multishot()
            .build();
        let mut multi = Multi::new(self, entry, 1, move |res: io::Result<u32>, _| {
            // The listener stays open while the request lives.
            let _ = &fd;
            // SAFETY: a successful accept returns a new fd nothing owns.
            Some(res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
        });
        multi.restart_from = Some(0);
        multi
    }

    /// Receives from the socket `fd` with one multishot request
    /// (`IORING_RECV_MULTISHOT`, Linux 6.0) into a buffer ring the stream
    /// owns: `buffers` buffers (a power of two) of `buf_len` bytes. A
    /// [`Multi`] of received chunks, copied out so the buffer goes back to
    /// the kernel at once; it ends at end of stream.
    ///
    /// Each of its CQEs but the last consumes a buffer, which comes back
    /// only after the CQE has been taken. When the kernel runs out of
    /// buffers (`ENOBUFS`, the consumer being slow) the stream re-arms the
    /// request once its queued chunks are taken; so it does when the kernel
    /// ends the request because the CQ is full (its last CQE then carries
    /// a chunk): only a last CQE of 0 bytes, or an error, ends the stream.
    pub fn recv_multi(&self, fd: impl IntoOpFd, buffers: u16, buf_len: u32) -> Multi<Vec<u8>> {
        let fd = fd.into_op_fd();
        if let Some(e) = self.needs(6, 0, "multishot recv (IORING_RECV_MULTISHOT)") {
            return Multi::failed(self, e);
        }
        let next = || {
            let mut st = self.shared.lock();
            st.next_bgid = st.next_bgid.wrapping_add(1);
            st.next_bgid
        };
        let made = register_group(next, |bgid| {
            // SAFETY: the BufRing moves into the stream's resources, which
            // stay alive (in the stream, or orphaned in the slab) until the
            // last CQE of the only request that selects from group `bgid`.
            unsafe {
                ring_io_driver::BufRing::new(
                    &self.shared.ring_fd,
                    bgid,
                    u32::from(buffers),
                    buf_len,
                )
            }
        });
        let (bgid, bufs) = match made {
            Ok(made) => made,
            Err(e) => return Multi::failed(self, e),
        };
        let entry = ring_io_ops::Recv::select(Fd(fd.raw()), bgid, 0)
            .multishot()
            .build();
        let mut multi = Multi::new(self, entry, 1, recv_chunks(fd, bufs));
        multi.restart_on = Some(libc::ENOBUFS);
        multi.restart_from = Some(1);
        multi
    }
}

/// The Proactors' buffer group ids: the upper half of the 16-bit space
/// (what a user registers on a raw ring of their own never meets them).
const GROUP_IDS: u16 = 0x8000;

/// Registers a multishot recv's buffer ring under the next free group id:
/// `next` counts on (wrapping), `register` tries an id. An id still held by
/// a live stream (a long-lived connection's, after the count wrapped) is
/// refused by the kernel with `EEXIST`, and the next is tried; an error
/// only when every one of the 32,768 ids is in use.
pub(crate) fn register_group(
    mut next: impl FnMut() -> u16,
    mut register: impl FnMut(u16) -> io::Result<ring_io_driver::BufRing>,
) -> io::Result<(u16, ring_io_driver::BufRing)> {
    for _ in 0..GROUP_IDS {
        let bgid = GROUP_IDS | (next() & (GROUP_IDS - 1));
        match register(bgid) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            other => return other.map(|bufs| (bgid, bufs)),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        "every buffer group id of the Proactor (32,768) is held by a live multishot recv",
    ))
}

/// What a multishot recv's stream makes of each completion: the chunk
/// received into a buffer of `bufs` (its group the only one the request
/// selects from), copied out so the buffer goes back to the kernel at once;
/// `None` at end of stream. The socket `fd` stays open while the request
/// lives.
pub(crate) fn recv_chunks(
    fd: OpFd,
    mut bufs: ring_io_driver::BufRing,
) -> impl FnMut(io::Result<u32>, u32) -> Option<io::Result<Vec<u8>>> + Send + 'static {
    move |res: io::Result<u32>, flags| {
        let _ = &fd;
        // A failed receive may name a buffer too (consumed before 6.12):
        // take it so it goes back to the ring.
        let raw = match &res {
            Ok(n) => i32::try_from(*n).unwrap_or(i32::MAX),
            Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
        };
        let cqe = Cqe::from(ring_io_sys::io_uring_cqe {
            res: raw,
            flags,
            ..Default::default()
        });
        // SAFETY: `res` and `flags` are those of a completion the kernel
        // posted for this multishot recv (the Proactor matched it by its
        // user_data), the only request that selects from the group of
        // `bufs`, and each of its completions reaches this closure once.
        let taken = unsafe { bufs.take(&cqe) };
        if let Err(e) = res {
            drop(taken);
            return Some(Err(e));
        }
        match taken {
            Ok(Some(data)) => Some(Ok(data.to_vec())),
            // End of stream: no buffer, no data.
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// [`Proactor::accept`] for either kind of Proactor.
pub(crate) fn accept<P: Backend>(this: &P, fd: impl IntoOpFd) -> P::Op<io::Result<OwnedFd>> {
    let fd = fd.into_op_fd();
    let entry = ring_io_ops::Accept::new(Fd(fd.raw()))
        .flags(libc::SOCK_CLOEXEC)
        .build();
    this.op_with(entry, fd, |res: io::Result<u32>, _| {
        // SAFETY: a successful accept returns a new fd that nothing owns.
        res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    })
}

/// [`Proactor::connect`] for either kind of Proactor.
pub(crate) fn connect<P: Backend>(
    this: &P,
    fd: impl IntoOpFd,
    addr: SocketAddr,
) -> P::Op<io::Result<()>> {
    let fd = fd.into_op_fd();
    let (storage, len) = sockaddr(addr);
    let entry = ring_io_ops::Connect::new(Fd(fd.raw()), (&raw const *storage).cast(), len).build();
    this.op_with(entry, fd, move |res: io::Result<u32>, _| {
        drop(storage);
        res.map(drop)
    })
}

/// [`Proactor::send`] for either kind of Proactor.
pub(crate) fn send<P: Backend, B: IoBuf>(
    this: &P,
    fd: impl IntoOpFd,
    buf: B,
    flags: MsgFlags,
) -> P::Op<BufResult<usize, B>> {
    this.send_bytes(fd.into_op_fd(), buf, |fd, at, len| {
        ring_io_ops::Send::new(fd, at, len)
            .flags(flags.bits())
            .build()
    })
}

/// [`Proactor::recv`] for either kind of Proactor.
pub(crate) fn recv<P: Backend, B: IoBufMut>(
    this: &P,
    fd: impl IntoOpFd,
    buf: B,
    flags: MsgFlags,
) -> P::Op<BufResult<usize, B>> {
    this.fill(fd.into_op_fd(), buf, |fd, at, len| {
        ring_io_ops::Recv::new(fd, at, len)
            .flags(flags.bits())
            .build()
    })
}

/// [`Proactor::shutdown`] for either kind of Proactor.
pub(crate) fn shutdown<P: Backend>(
    this: &P,
    fd: impl IntoOpFd,
    how: std::net::Shutdown,
) -> P::Op<io::Result<()>> {
    let fd = fd.into_op_fd();
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    let entry = ring_io_ops::Shutdown::new(Fd(fd.raw()), how).build();
    this.op_with(entry, fd, |res: io::Result<u32>, _| res.map(drop))
}

/// [`Proactor::socket`] for either kind of Proactor.
pub(crate) fn socket<P: Backend>(
    this: &P,
    domain: Domain,
    socket_type: SocketType,
    protocol: Option<Protocol>,
) -> P::Op<io::Result<OwnedFd>> {
    let protocol = protocol.map_or(0, Protocol::raw);
    let socket_type = socket_type.raw() | libc::SOCK_CLOEXEC;
    let entry = ring_io_ops::Socket::new(domain.raw(), socket_type, protocol).build();
    this.op(entry, |res: io::Result<u32>, _| {
        // SAFETY: a successful socket returns a new fd that nothing owns.
        res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    })
}

/// [`Proactor::poll`] for either kind of Proactor.
pub(crate) fn poll<P: Backend>(
    this: &P,
    fd: impl IntoOpFd,
    events: PollEvents,
) -> P::Op<io::Result<PollEvents>> {
    let fd = fd.into_op_fd();
    let entry = ring_io_ops::PollAdd::new(Fd(fd.raw()), events.bits()).build();
    this.op_with(entry, fd, |res: io::Result<u32>, _| {
        res.map(PollEvents::from_bits_retain)
    })
}

/// [`Proactor::send_to`] for either kind of Proactor.
pub(crate) fn send_to<P: Backend, B: IoBuf>(
    this: &P,
    fd: impl IntoOpFd,
    buf: B,
    addr: SocketAddr,
) -> P::Op<BufResult<usize, B>> {
    let fd = fd.into_op_fd();
    let (storage, len) = sockaddr(addr);
    let size = buf.bytes_init();
    let mut msg = Msg::new(buf.stable_ptr().cast_mut(), size, storage, len);
    let entry = ring_io_ops::SendMsg::new(Fd(fd.raw()), (&raw mut msg.hdr).cast()).build();
    this.op_with(entry, fd, move |res: io::Result<u32>, _| {
        drop(msg);
        (res.and_then(|n| at_most(n, size)), buf)
    })
}

/// [`Proactor::recv_from`] for either kind of Proactor.
pub(crate) fn recv_from<P: Backend, B: IoBufMut>(
    this: &P,
    fd: impl IntoOpFd,
    mut buf: B,
) -> P::Op<BufResult<(usize, Option<SocketAddr>), B>> {
    let fd = fd.into_op_fd();
    let at = buf.stable_mut_ptr();
    let room = buf.bytes_total();
    if let Err(e) = op_len(room, true) {
        return this.failed_op(e, move |res: io::Result<u32>, _| {
            drop(fd);
            (res.map(|n| (n as usize, None)), buf)
        });
    }
    // SAFETY: all-zero is a valid sockaddr_storage.
    let storage = Box::new(unsafe { std::mem::zeroed() });
    let mut msg = Msg::new(
        at,
        room,
        storage,
        size_of::<libc::sockaddr_storage>() as u32,
    );
    let entry = ring_io_ops::RecvMsg::new(Fd(fd.raw()), (&raw mut msg.hdr).cast()).build();
    this.op_with(entry, fd, move |res: io::Result<u32>, _| {
        let res = res.and_then(|n| at_most(n, room)).map(|n| {
            // SAFETY: the kernel wrote `n` bytes, checked to be at most
            // the room (`bytes_total`) it was given, from the buffer's
            // start.
            unsafe { buf.set_init(n) };
            (n, from_sockaddr(&msg.addr, msg.hdr.msg_namelen))
        });
        drop(msg);
        (res, buf)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group id held by a live stream (the kernel's EEXIST) is skipped;
    /// an error only once every id is held.
    #[test]
    fn a_group_id_in_use_is_skipped_and_exhaustion_is_an_error() {
        let ring = ring_io_driver::Ring::new(8).unwrap();
        let fd = ring.fd().expect("a ring with an fd");
        let mut count = 0x7ffeu16;
        let mut tried = Vec::new();
        let held = [0xffff, 0x8000];
        let made = register_group(
            || {
                count = count.wrapping_add(1);
                count
            },
            |bgid| {
                tried.push(bgid);
                if held.contains(&bgid) {
                    return Err(io::Error::from_raw_os_error(libc::EEXIST));
                }
                // SAFETY: no request selects from the group.
                unsafe { ring_io_driver::BufRing::new(&fd, bgid, 2, 64) }
            },
        );
        let (bgid, bufs) = match made {
            Ok(made) => made,
            // Before 5.19 (buffer rings): nothing more to see.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => return,
            Err(e) => panic!("{e}"),
        };
        // 0x7fff and 0x8000 map to 0xffff and 0x8000 (both held), then 0x8001.
        assert_eq!(tried, [0xffff, 0x8000, 0x8001]);
        assert_eq!((bgid, bufs.bgid()), (0x8001, 0x8001));
        // Every id held: a clear error after one try of each.
        let mut tries = 0u32;
        let mut n = 0u16;
        let e = register_group(
            || {
                n = n.wrapping_add(1);
                n
            },
            |_| {
                tries += 1;
                Err(io::Error::from_raw_os_error(libc::EEXIST))
            },
        )
        .unwrap_err();
        assert_eq!(tries, 0x8000);
        assert!(e.to_string().contains("32,768"), "{e}");
        // Any other error is returned at once.
        let mut tries = 0;
        let e = register_group(
            || 1,
            |_| {
                tries += 1;
                Err(io::Error::from_raw_os_error(libc::ENOMEM))
            },
        )
        .unwrap_err();
        assert_eq!((tries, e.raw_os_error()), (1, Some(libc::ENOMEM)));
    }
}
