//! What an entry points to besides the buffers: message headers, socket
//! addresses, iovecs, timespecs; and the checks of a result against them.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ring_io_sys::__kernel_timespec;

/// A `msghdr` with one iovec and an address, all in one heap block the
/// header points into.
pub(crate) struct Msg {
    pub(crate) hdr: libc::msghdr,
    pub(crate) iov: libc::iovec,
    pub(crate) addr: Box<libc::sockaddr_storage>,
}

// SAFETY: the pointers target this block, the address box it owns, and the
// buffer of the op that owns it; they move together.
unsafe impl Send for Msg {}

impl Msg {
    pub(crate) fn new(
        base: *mut u8,
        len: usize,
        mut addr: Box<libc::sockaddr_storage>,
        addr_len: u32,
    ) -> Box<Msg> {
        // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = (&raw mut *addr).cast();
        hdr.msg_namelen = addr_len;
        let mut msg = Box::new(Msg {
            hdr,
            iov: libc::iovec {
                iov_base: base.cast(),
                iov_len: len,
            },
            addr,
        });
        msg.hdr.msg_iov = &raw mut msg.iov;
        msg.hdr.msg_iovlen = 1;
        msg
    }
}

pub(crate) fn from_sockaddr(storage: &libc::sockaddr_storage, len: u32) -> Option<SocketAddr> {
    let p: *const libc::sockaddr_storage = storage;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*p.cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The iovecs of a vectored op, pointing into the op's own buffers.
pub(crate) struct Iovecs(pub(crate) Vec<libc::iovec>);

// SAFETY: the pointers target the heap memory of buffers the same op owns
// and moves together with these iovecs; nothing is shared.
unsafe impl Send for Iovecs {}

impl Iovecs {
    /// The iovec count as the SQE carries it (`None` if it does not fit)
    /// and the bytes they span: what a result may report at most.
    pub(crate) fn count_and_total(&self) -> Option<(u32, usize)> {
        let count = u32::try_from(self.0.len()).ok()?;
        let total = self
            .0
            .iter()
            .fold(0usize, |t, v| t.saturating_add(v.iov_len));
        Some((count, total))
    }
}

impl FromIterator<libc::iovec> for Iovecs {
    fn from_iter<I: IntoIterator<Item = libc::iovec>>(iter: I) -> Self {
        Iovecs(iter.into_iter().collect())
    }
}

pub(crate) fn sockaddr(addr: SocketAddr) -> (Box<libc::sockaddr_storage>, u32) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: Box<libc::sockaddr_storage> = Box::new(unsafe { std::mem::zeroed() });
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe { (&raw mut *storage).cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in6.
            unsafe { (&raw mut *storage).cast::<libc::sockaddr_in6>().write(sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as u32)
}

/// `n`, the bytes a completion reports for an op on `max` bytes, if it is
/// at most `max`: a larger count is no result the kernel gives (a forged
/// CQE, say), and is never used as a length.
#[inline]
pub(crate) fn at_most(n: u32, max: usize) -> io::Result<usize> {
    let n = n as usize;
    if n <= max {
        Ok(n)
    } else {
        Err(too_many_bytes(n, max))
    }
}

/// A completion reported `n` bytes for an op on `max`.
#[cold]
fn too_many_bytes(n: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a completion reported {n} bytes for an op on {max}"),
    )
}

pub(crate) fn too_many_buffers() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "more buffers than an iovec count holds (the kernel takes at most 1024)",
    )
}

/// `duration` as the kernel's timespec; past `i64::MAX` seconds (292
/// billion years) it is clamped there.
pub(crate) fn timespec(duration: Duration) -> __kernel_timespec {
    __kernel_timespec {
        tv_sec: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(duration.subsec_nanos()),
    }
}
