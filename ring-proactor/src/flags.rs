//! Typed arguments of the fd-based ops: [`MsgFlags`] for `send`/`recv`,
//! [`PollEvents`] for `poll`, [`StatxFlags`] for `statx`, [`Domain`],
//! [`SocketType`] and [`Protocol`] for `socket`, and [`CURRENT_POSITION`]
//! for reads and writes at the file position.

use std::fmt;
use std::net::SocketAddr;

#[cfg(doc)]
use crate::Proactor;

/// The offset of a [`read`](Proactor::read) or [`write`](Proactor::write)
/// (and their vectored and fixed forms) that means "at the file position,
/// and move it": what a pipe, a socket or a terminal needs (they have no
/// offsets), and what `read(2)` and `write(2)` do on a file. The kernel's
/// `-1` (`u64::MAX`).
///
/// ```
/// use ring_io_proactor::{CURRENT_POSITION, Proactor, ProactorConfig};
/// use std::{os::unix::net::UnixStream, sync::Arc};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let (a, b) = UnixStream::pair()?;
/// let (a, b) = (Arc::new(a), Arc::new(b));
/// p.write(&a, "no offset", CURRENT_POSITION).wait().0?;
/// let (n, buf) = p.read(&b, vec![0u8; 16], CURRENT_POSITION).wait();
/// assert_eq!(&buf[..n?], b"no offset");
/// # Ok::<(), std::io::Error>(())
/// ```
pub const CURRENT_POSITION: u64 = u64::MAX;

bitflags::bitflags! {
    /// The `MSG_*` flags of [`Proactor::send`] and [`Proactor::recv`]
    /// (`send(2)`, `recv(2)`); [`empty()`](MsgFlags::empty) for none.
    ///
    /// ```
    /// use ring_io_proactor::{MsgFlags, Proactor, ProactorConfig};
    /// use std::{os::unix::net::UnixStream, sync::Arc};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, b) = UnixStream::pair()?;
    /// let (a, b) = (Arc::new(a), Arc::new(b));
    /// p.send(&a, "peek", MsgFlags::NOSIGNAL).wait().0?;
    /// // A peek leaves the bytes in the socket.
    /// let (n, _) = p.recv(&b, vec![0u8; 8], MsgFlags::PEEK).wait();
    /// assert_eq!(n?, 4);
    /// let (n, buf) = p.recv(&b, vec![0u8; 8], MsgFlags::empty()).wait();
    /// assert_eq!(&buf[..n?], b"peek");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MsgFlags: i32 {
        /// `MSG_DONTWAIT`: fail with `EAGAIN` (`WouldBlock`) instead of
        /// waiting.
        const DONTWAIT = libc::MSG_DONTWAIT;
        /// `MSG_NOSIGNAL`: a send on a connection the peer closed fails
        /// with `EPIPE` instead of raising `SIGPIPE`.
        const NOSIGNAL = libc::MSG_NOSIGNAL;
        /// `MSG_MORE`: more data follows (TCP holds a partial segment).
        const MORE = libc::MSG_MORE;
        /// `MSG_PEEK`: receive without removing the data from the queue.
        const PEEK = libc::MSG_PEEK;
        /// `MSG_WAITALL`: receive until the buffer is full (or an error,
        /// a signal, the end of the stream).
        const WAITALL = libc::MSG_WAITALL;
        /// `MSG_TRUNC`: a datagram receive returns its real length, even
        /// if longer than the buffer.
        const TRUNC = libc::MSG_TRUNC;
        /// `MSG_OOB`: out-of-band data.
        const OOB = libc::MSG_OOB;
        /// `MSG_DONTROUTE`: send only to hosts on directly connected
        /// networks.
        const DONTROUTE = libc::MSG_DONTROUTE;
        /// `MSG_EOR`: ends a record (`SOCK_SEQPACKET`).
        const EOR = libc::MSG_EOR;
        /// `MSG_CONFIRM`: the link layer made forward progress (ARP).
        const CONFIRM = libc::MSG_CONFIRM;
    }
}

bitflags::bitflags! {
    /// The events of [`Proactor::poll`]: what to wait for, and what was
    /// ready (`poll(2)`'s `POLL*`). Bits the kernel reports that have no
    /// name here are kept.
    ///
    /// ```
    /// use ring_io_proactor::{PollEvents, Proactor, ProactorConfig};
    /// use std::{os::unix::net::UnixStream, sync::Arc};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let ready = p.poll(&Arc::new(a), PollEvents::OUT).wait()?;
    /// assert!(ready.contains(PollEvents::OUT));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PollEvents: u32 {
        /// `POLLIN`: there is data to read.
        const IN = libc::POLLIN as u32;
        /// `POLLPRI`: there is urgent data (out-of-band, a pty's state).
        const PRI = libc::POLLPRI as u32;
        /// `POLLOUT`: writing will not block.
        const OUT = libc::POLLOUT as u32;
        /// `POLLRDNORM`: normal data to read.
        const RDNORM = libc::POLLRDNORM as u32;
        /// `POLLRDBAND`: priority band data to read.
        const RDBAND = libc::POLLRDBAND as u32;
        /// `POLLWRNORM`: as `OUT`.
        const WRNORM = libc::POLLWRNORM as u32;
        /// `POLLWRBAND`: priority data may be written.
        const WRBAND = libc::POLLWRBAND as u32;
        /// `POLLRDHUP`: the peer closed its end, or shut down writing.
        const RDHUP = libc::POLLRDHUP as u32;
        /// `POLLERR` (reported, need not be asked): an error.
        const ERR = libc::POLLERR as u32;
        /// `POLLHUP` (reported, need not be asked): hang up.
        const HUP = libc::POLLHUP as u32;
        /// `POLLNVAL` (reported): the fd is not open.
        const NVAL = libc::POLLNVAL as u32;
        // Unnamed bits the kernel reports are kept.
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// How [`Proactor::statx`] resolves its path (`statx(2)`'s `AT_*`
    /// flags); [`empty()`](StatxFlags::empty): follow symlinks.
    ///
    /// ```
    /// use ring_io_proactor::{Proactor, ProactorConfig, StatxFlags};
    ///
    /// let p = Proactor::new(ProactorConfig::new(8))?;
    /// let link = std::env::temp_dir().join(format!("statx-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&link);
    /// std::os::unix::fs::symlink("/", &link)?;
    /// assert!(p.statx(&link, StatxFlags::empty()).wait()?.is_dir());
    /// assert!(p.statx(&link, StatxFlags::SYMLINK_NOFOLLOW).wait()?.is_symlink());
    /// std::fs::remove_file(&link)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct StatxFlags: i32 {
        /// `AT_SYMLINK_NOFOLLOW`: describe a symlink itself, not what it
        /// points to.
        const SYMLINK_NOFOLLOW = libc::AT_SYMLINK_NOFOLLOW;
        /// `AT_NO_AUTOMOUNT`: do not mount an automount point on the way.
        const NO_AUTOMOUNT = libc::AT_NO_AUTOMOUNT;
        /// `AT_STATX_FORCE_SYNC`: a network filesystem asks the server.
        const FORCE_SYNC = libc::AT_STATX_FORCE_SYNC;
        /// `AT_STATX_DONT_SYNC`: a network filesystem answers from its
        /// cache.
        const DONT_SYNC = libc::AT_STATX_DONT_SYNC;
    }
}

/// A socket's communication domain (`AF_*`), for [`Proactor::socket`].
///
/// ```
/// use ring_io_proactor::Domain;
///
/// let addr: std::net::SocketAddr = "[::1]:80".parse().unwrap();
/// assert_eq!(Domain::for_address(addr), Domain::IPV6);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Domain(i32);

impl Domain {
    /// `AF_INET`: IPv4.
    pub const IPV4: Domain = Domain(libc::AF_INET);
    /// `AF_INET6`: IPv6.
    pub const IPV6: Domain = Domain(libc::AF_INET6);
    /// `AF_UNIX`: Unix domain sockets.
    pub const UNIX: Domain = Domain(libc::AF_UNIX);

    /// The domain of `addr`: [`IPV4`](Self::IPV4) or [`IPV6`](Self::IPV6).
    pub fn for_address(addr: SocketAddr) -> Domain {
        match addr {
            SocketAddr::V4(_) => Domain::IPV4,
            SocketAddr::V6(_) => Domain::IPV6,
        }
    }

    pub(crate) fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            libc::AF_INET => f.write_str("IPV4"),
            libc::AF_INET6 => f.write_str("IPV6"),
            libc::AF_UNIX => f.write_str("UNIX"),
            n => write!(f, "Domain({n})"),
        }
    }
}

/// A socket's type (`SOCK_*`), for [`Proactor::socket`].
///
/// ```
/// use ring_io_proactor::SocketType;
///
/// assert_ne!(SocketType::STREAM, SocketType::DGRAM);
/// assert_eq!(format!("{:?}", SocketType::SEQPACKET), "SEQPACKET");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketType(i32);

impl SocketType {
    /// `SOCK_STREAM`: a connection's byte stream (TCP, a Unix stream).
    pub const STREAM: SocketType = SocketType(libc::SOCK_STREAM);
    /// `SOCK_DGRAM`: datagrams (UDP, a Unix datagram socket).
    pub const DGRAM: SocketType = SocketType(libc::SOCK_DGRAM);
    /// `SOCK_SEQPACKET`: a connection's records, in order.
    pub const SEQPACKET: SocketType = SocketType(libc::SOCK_SEQPACKET);
    /// `SOCK_RAW`: raw network protocol access.
    pub const RAW: SocketType = SocketType(libc::SOCK_RAW);

    pub(crate) fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            libc::SOCK_STREAM => f.write_str("STREAM"),
            libc::SOCK_DGRAM => f.write_str("DGRAM"),
            libc::SOCK_SEQPACKET => f.write_str("SEQPACKET"),
            libc::SOCK_RAW => f.write_str("RAW"),
            n => write!(f, "SocketType({n})"),
        }
    }
}

/// A socket's protocol (`IPPROTO_*`), for [`Proactor::socket`]; `None`
/// there picks the domain's default for the type (TCP for an IP stream,
/// UDP for IP datagrams).
///
/// ```
/// use ring_io_proactor::Protocol;
///
/// assert_eq!(format!("{:?}", Protocol::TCP), "TCP");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protocol(i32);

impl Protocol {
    /// `IPPROTO_TCP`.
    pub const TCP: Protocol = Protocol(libc::IPPROTO_TCP);
    /// `IPPROTO_UDP`.
    pub const UDP: Protocol = Protocol(libc::IPPROTO_UDP);
    /// `IPPROTO_ICMP`: ICMP over IPv4 (a `DGRAM` ping socket, say).
    pub const ICMPV4: Protocol = Protocol(libc::IPPROTO_ICMP);
    /// `IPPROTO_ICMPV6`.
    pub const ICMPV6: Protocol = Protocol(libc::IPPROTO_ICMPV6);

    pub(crate) fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            libc::IPPROTO_TCP => f.write_str("TCP"),
            libc::IPPROTO_UDP => f.write_str("UDP"),
            libc::IPPROTO_ICMP => f.write_str("ICMPV4"),
            libc::IPPROTO_ICMPV6 => f.write_str("ICMPV6"),
            n => write!(f, "Protocol({n})"),
        }
    }
}
