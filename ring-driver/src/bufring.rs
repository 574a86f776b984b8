//! `BufRing`: a provided-buffer ring owned by the library: allocated,
//! registered, filled, recycled, and released on drop.
//!
//! This is one of the driver's mmap modules: it writes `io_uring_buf`
//! entries into the ring's memory and publishes the tail with the ordering
//! the kernel pairs with. Which slot and which tail is ring-core's
//! [`ring_core::BufRing`].
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use ring_sys::{io_uring_buf, io_uring_buf_reg};

use crate::error::{Unsupported, os};
use crate::probe::KernelVersion;
use crate::ring::Cqe;
use crate::sys::{self, Mmap};

/// A ring of `entries` buffers of `buf_len` bytes, registered as buffer
/// group `bgid` (`IORING_REGISTER_PBUF_RING`, Linux 5.19). Ops that select a
/// buffer from the group (`Recv::select(fd, bgid, 0)`, multishot recv,
/// `ReadMulti`, ...) get one of these buffers; [`BufRing::take`] turns their
/// completion into the received bytes and gives the buffer back to the
/// kernel when they are dropped.
///
/// The ring keeps its own reference to the io_uring (a duplicated fd), so it
/// may outlive the [`Ring`](crate::Ring) it was made for; dropping it
/// unregisters the group and frees the memory. The io-uring crate leaves all
/// of this to its users (its issue #306).
///
/// A request that has picked a buffer writes into it until it completes,
/// and the ring cannot see that from user space, hence the contract of
/// [`BufRing::new`]: drop the ring only when no request selecting from its
/// group is in flight (reap their completions first, or cancel them and
/// reap the cancellations).
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use ring_driver::{BufRing, Ring};
/// use ring_ops::{Fd, Recv};
///
/// let mut ring = Ring::new(8)?;
/// // SAFETY: the only request using group 7 is reaped before `bufs` drops.
/// let fd = ring.fd().expect("a ring set up without REGISTERED_FD_ONLY has an fd");
/// let mut bufs = match unsafe { BufRing::new(&fd, 7, 4, 64) } {
///     Ok(bufs) => bufs,
///     Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(()), // before 5.19
///     Err(e) => return Err(e),
/// };
/// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
/// a.write_all(b"hello")?;
/// // SAFETY: the buffer comes from the group, which outlives the completion.
/// unsafe { ring.sq().push(Recv::select(Fd(b.as_raw_fd()), bufs.bgid(), 0).build()) }?;
/// ring.submitter().submit_and_wait(1)?;
/// let cqe = ring.cq().next().unwrap();
/// let data = bufs.take(&cqe)?.expect("a buffer was selected");
/// assert_eq!(&*data, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BufRing {
    state: ring_core::BufRing,
    fd: RawFd,
    bgid: u16,
    buf_len: u32,
    /// The `io_uring_buf` entries (the tail overlays entry 0's `resv`);
    /// `entries` and `tail` point into it. Kept mapped until after the
    /// group is unregistered in `drop`.
    _ring_mem: Mmap,
    /// The buffers, `entries * buf_len` bytes.
    bufs: Mmap,
    entries: NonNull<io_uring_buf>,
    tail: NonNull<AtomicU16>,
}

// SAFETY: the pointers point into mappings this value owns; the kernel's
// side is reached through the fd, which any thread may use.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates `entries` buffers of `buf_len` bytes (`entries` a power of
    /// two up to 32768), registers them with `ring` as group `bgid`, and
    /// gives them all to the kernel.
    ///
    /// # Safety
    ///
    /// When the returned value is dropped, no request that selects a buffer
    /// from group `bgid` may be in flight on `ring` (every such request has
    /// posted its last completion): the kernel writes into a picked buffer
    /// until the request completes, and dropping frees the buffers.
    pub unsafe fn new(
        ring: &impl AsRawFd,
        bgid: u16,
        entries: u32,
        buf_len: u32,
    ) -> io::Result<BufRing> {
        let state = ring_core::BufRing::new(entries)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if buf_len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffers must not be empty",
            ));
        }
        let page = 4096;
        let ring_bytes = (entries as usize * size_of::<io_uring_buf>()).div_ceil(page) * page;
        let ring_map = Mmap::anonymous(ring_bytes)?;
        let bufs = Mmap::anonymous(entries as usize * buf_len as usize)?;
        let entries_ptr = ring_map.ptr::<io_uring_buf>(0, entries as usize)?;
        let tail = ring_map
            .ptr::<AtomicU16>(std::mem::offset_of!(ring_sys::buf_ring_hdr, tail) as u32, 1)?;
        let fd = sys::dup(ring.as_raw_fd())?;
        let reg = io_uring_buf_reg {
            ring_addr: ring_map.base() as u64,
            ring_entries: entries,
            bgid,
            ..Default::default()
        };
        // SAFETY: `reg` describes memory this value owns and keeps mapped
        // until it unregisters the group in `drop`.
        if let Err(e) = unsafe { sys::register(fd, ring_sys::IORING_REGISTER_PBUF_RING, &reg, 1) } {
            sys::close(fd);
            let old = KernelVersion::current().is_some_and(|v| !v.at_least(5, 19));
            return Err(if e == ring_sys::Errno::EINVAL && old {
                Unsupported {
                    what: "IORING_REGISTER_PBUF_RING",
                    needs: Some((5, 19)),
                    kernel: KernelVersion::current(),
                }
                .into()
            } else {
                os(e)
            });
        }
        let mut ring = BufRing {
            state,
            fd,
            bgid,
            buf_len,
            _ring_mem: ring_map,
            bufs,
            entries: entries_ptr,
            tail,
        };
        for bid in 0..entries as u16 {
            ring.give_back(bid)
                .expect("a fresh ring takes every buffer once");
        }
        ring.publish();
        Ok(ring)
    }

    /// The buffer group id, for ops that select a buffer.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The size of each buffer.
    pub fn buf_len(&self) -> u32 {
        self.buf_len
    }

    /// Buffers the kernel may currently pick.
    pub fn available(&self) -> u32 {
        self.state.in_ring()
    }

    /// The data of a completion that selected a buffer from this group: a
    /// guard that derefs to the `cqe.res` bytes received and gives the
    /// buffer back to the kernel when dropped. `Ok(None)` if the completion
    /// carries no buffer (an error, or end of stream); an error if it names a
    /// buffer this ring did not lend.
    pub fn take(&mut self, cqe: &Cqe) -> io::Result<Option<BufGuard<'_>>> {
        let bid = self
            .state
            .handle_cqe(cqe.flags().bits())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let Some(bid) = bid else { return Ok(None) };
        let len = cqe.result().unwrap_or(0).min(self.buf_len) as usize;
        Ok(Some(BufGuard {
            ring: self,
            bid,
            len,
        }))
    }

    /// The bytes of buffer `bid` (its whole length).
    fn buffer(&self, bid: u16) -> &[u8] {
        let start = usize::from(bid) * self.buf_len as usize;
        // SAFETY: `bid < entries` (checked by ring-core when the CQE named
        // it), so the range is inside `bufs`; the kernel wrote it before the
        // CQE was posted and does not touch it until it is given back.
        unsafe { std::slice::from_raw_parts(self.bufs.base().add(start), self.buf_len as usize) }
    }

    /// Gives buffer `bid` back to the kernel (not yet published).
    fn give_back(&mut self, bid: u16) -> Result<(), ring_core::BufRingError> {
        let slot = self.state.add(bid)?;
        let entry = io_uring_buf {
            addr: self.bufs.base() as u64 + u64::from(bid) * u64::from(self.buf_len),
            len: self.buf_len,
            bid,
            resv: 0,
        };
        // SAFETY: `slot < entries` (ring-core masks it) so the entry is
        // inside the ring mapping. ring-core only hands out a slot the
        // kernel has consumed (the buffer in it came back by a CQE). The
        // `resv` field of entry 0 is the tail, so write the three other
        // fields only, never `resv`.
        unsafe {
            let p = self.entries.as_ptr().add(usize::from(slot));
            (&raw mut (*p).addr).write(entry.addr);
            (&raw mut (*p).len).write(entry.len);
            (&raw mut (*p).bid).write(entry.bid);
        }
        Ok(())
    }

    fn publish(&mut self) {
        while let Some(tail) = self.state.poll_publish() {
            // SAFETY: `tail` points at the ring's tail, inside the mapping.
            // Release pairs with the kernel's smp_load_acquire(&br->tail) in
            // io_ring_buffer_select: the entries are visible before the tail.
            unsafe { self.tail.as_ref() }.store(tail, Ordering::Release);
        }
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("bgid", &self.bgid)
            .field("entries", &self.state.entries())
            .field("buf_len", &self.buf_len)
            .field("available", &self.state.in_ring())
            .finish()
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let reg = io_uring_buf_reg {
            bgid: self.bgid,
            ..Default::default()
        };
        // SAFETY: `reg` names the group only. After this the kernel no longer
        // picks buffers from it; requests that already picked one hold a
        // reference to the ring's buffer list until they complete, which the
        // kernel waits for before unregistering (io_unregister_pbuf_ring
        // under the uring lock).
        let _ = unsafe { sys::register(self.fd, ring_sys::IORING_UNREGISTER_PBUF_RING, &reg, 1) };
        sys::close(self.fd);
        // The mappings are released after this, by their own Drop.
    }
}

/// Received bytes in a buffer of a [`BufRing`]; the buffer goes back to the
/// kernel when this is dropped.
pub struct BufGuard<'a> {
    ring: &'a mut BufRing,
    bid: u16,
    len: usize,
}

impl BufGuard<'_> {
    /// The buffer's id in its group.
    pub fn bid(&self) -> u16 {
        self.bid
    }
}

impl Deref for BufGuard<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.ring.buffer(self.bid)[..self.len]
    }
}

impl fmt::Debug for BufGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufGuard")
            .field("bid", &self.bid)
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for BufGuard<'_> {
    fn drop(&mut self) {
        self.ring
            .give_back(self.bid)
            .expect("a buffer taken from a CQE is out of the ring");
        self.ring.publish();
    }
}
