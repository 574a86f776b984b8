//! `BufRing`: a provided-buffer ring owned by the library: allocated,
//! registered, filled, recycled, and released on drop.
//!
//! This is one of the driver's mmap modules: it writes `io_uring_buf`
//! entries into the ring's memory and publishes the tail with the ordering
//! the kernel pairs with. Which slot and which tail is ring-core's
//! [`ring_io_core::BufRingState`].
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use ring_io_core::TakenBufs;
use ring_io_sys::{Errno, io_uring_buf, io_uring_buf_reg, io_uring_buf_status};

use crate::error::{Unsupported, os};
use crate::ring::Cqe;
use crate::sys::{self, Mmap, Registered};

/// How a [`BufRing`] names its io_uring.
enum GroupRing {
    /// A duplicate of the ring's fd, owned (closed on drop).
    Fd(RawFd),
    /// The index of a ring that has no fd (`IORING_SETUP_REGISTERED_FD_ONLY`)
    /// in the table of the thread that set it up.
    Index(Registered),
}

impl GroupRing {
    /// `io_uring_register` on the ring.
    ///
    /// # Safety
    ///
    /// As [`ring_io_sys::io_uring_register`] for `opcode` and `arg`; an
    /// `Index` ring is still alive (the contract of
    /// [`Registrar::buf_ring`](crate::Registrar::buf_ring)).
    unsafe fn register<T>(&self, opcode: u32, arg: *const T, nr_args: u32) -> Result<u32, Errno> {
        match self {
            // SAFETY: the fd is this value's own duplicate of the ring's;
            // the rest is the caller's contract.
            GroupRing::Fd(fd) => unsafe { sys::register(*fd, opcode, arg, nr_args) },
            // SAFETY: forwarded to the caller's contract.
            GroupRing::Index(r) => unsafe { r.register(opcode, arg, nr_args) },
        }
    }
}

/// A ring of `entries` buffers of `buf_len` bytes, registered as buffer
/// group `bgid` (`IORING_REGISTER_PBUF_RING`, Linux 5.19). Ops that select a
/// buffer from the group (`Recv::select(fd, bgid, 0)`, multishot recv,
/// `ReadMulti`, ...) get one of these buffers (a bundle receive, several
/// in a row); [`BufRing::take`] turns their completion into the received
/// bytes and gives the buffers back to the kernel when they are dropped.
///
/// The ring tracks every buffer: lent to the kernel (published, or consumed
/// by a request) or the application's. A completion hands out only buffers
/// the kernel consumed, each once; since Linux 6.8 the ring checks that
/// with the kernel's head (`IORING_REGISTER_PBUF_STATUS`). `take` is
/// `unsafe` all the same: a completion that is not the kernel's (built by
/// hand, replayed, or another group's) could name a buffer a request still
/// in flight is writing into, which nothing in user space can see.
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
/// use ring_io_driver::{BufRing, Ring};
/// use ring_io_ops::{Fd, Recv};
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
/// // SAFETY: the kernel posted `cqe` for the receive, and it is taken once.
/// let data = unsafe { bufs.take(&cqe) }?.expect("a buffer was selected");
/// assert_eq!(data.to_vec(), b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BufRing {
    state: ring_io_core::BufRingState,
    /// How it names the io_uring for `io_uring_register`.
    ring: GroupRing,
    bgid: u16,
    buf_len: u32,
    /// The kernel shows its head (`IORING_REGISTER_PBUF_STATUS`, 6.8).
    verify: bool,
    /// The `io_uring_buf` entries (the tail overlays entry 0's `resv`);
    /// `entries` and `tail` point into it. Kept mapped until after the
    /// group is unregistered in `drop`.
    _ring_mem: ManuallyDrop<Mmap>,
    /// The buffers, `entries * buf_len` bytes.
    bufs: ManuallyDrop<Mmap>,
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
    /// until the request completes, and dropping frees the buffers. (A
    /// request still in flight when `ring` is dropped ends only in the
    /// kernel's teardown, which this value's own reference to the ring
    /// holds off and which goes on after both are dropped: leak the value
    /// with `mem::forget` then.)
    pub unsafe fn new(
        ring: &impl AsRawFd,
        bgid: u16,
        entries: u32,
        buf_len: u32,
    ) -> io::Result<BufRing> {
        let fd = sys::dup(ring.as_raw_fd())?;
        // SAFETY: forwarded to the caller's contract; the fd is a new
        // duplicate, which the value owns.
        unsafe { BufRing::create(GroupRing::Fd(fd), bgid, entries, buf_len) }
    }

    /// [`BufRing::new`] for `ring`, which may have no fd (then through its
    /// index in this thread's table: the caller's thread is the one that
    /// set it up). See [`Registrar::buf_ring`](crate::Registrar::buf_ring).
    ///
    /// # Safety
    ///
    /// As [`Registrar::buf_ring`](crate::Registrar::buf_ring).
    pub(crate) unsafe fn on_ring(
        ring: &sys::RingFd,
        bgid: u16,
        entries: u32,
        buf_len: u32,
    ) -> io::Result<BufRing> {
        let name = match (ring.fd(), ring.index_only()) {
            (Some(fd), _) => GroupRing::Fd(sys::dup(fd.as_raw_fd())?),
            (None, Some(r)) if r.is_here() => GroupRing::Index(r),
            (None, _) => return Err(crate::register::not_here()),
        };
        // SAFETY: forwarded to the caller's contract; a `Fd` is a new
        // duplicate, which the value owns.
        unsafe { BufRing::create(name, bgid, entries, buf_len) }
    }

    /// Maps, registers and fills the ring (closes a `Fd` name on failure).
    ///
    /// # Safety
    ///
    /// As [`BufRing::new`].
    unsafe fn create(
        ring: GroupRing,
        bgid: u16,
        entries: u32,
        buf_len: u32,
    ) -> io::Result<BufRing> {
        // The fd is closed on every error path.
        struct CloseOnError(Option<RawFd>);
        impl Drop for CloseOnError {
            fn drop(&mut self) {
                if let Some(fd) = self.0 {
                    sys::close(fd);
                }
            }
        }
        let mut guard = CloseOnError(match ring {
            GroupRing::Fd(fd) => Some(fd),
            GroupRing::Index(_) => None,
        });
        let mut state = ring_io_core::BufRingState::new(entries, buf_len)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if buf_len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffers must not be empty",
            ));
        }
        let Some(bufs_len) = (entries as usize).checked_mul(buf_len as usize) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "entries * buf_len overflows the address space",
            ));
        };
        let page = 4096;
        let ring_bytes = (entries as usize * size_of::<io_uring_buf>()).div_ceil(page) * page;
        let ring_map = Mmap::anonymous(ring_bytes)?;
        // The buffers' pages are made as data lands in them: a large group
        // costs address space, not memory, until used.
        let bufs = Mmap::anonymous_lazy(bufs_len)?;
        let entries_ptr = ring_map.ptr::<io_uring_buf>(0, entries as usize)?;
        let tail = ring_map.ptr::<AtomicU16>(
            std::mem::offset_of!(ring_io_sys::buf_ring_hdr, tail) as u32,
            1,
        )?;
        let reg = io_uring_buf_reg {
            ring_addr: ring_map.base() as u64,
            ring_entries: entries,
            bgid,
            ..Default::default()
        };
        let op = ring_io_sys::IORING_REGISTER_PBUF_RING;
        // SAFETY: `reg` describes memory this value owns and keeps mapped
        // until it unregisters the group in `drop`.
        let registered = unsafe { ring.register(op, &reg, 1) };
        if let Err(e) = registered {
            let old = crate::kernel_version().is_some_and(|v| !v.at_least(5, 19));
            return Err(if e == ring_io_sys::Errno::EINVAL && old {
                Unsupported {
                    what: "IORING_REGISTER_PBUF_RING",
                    needs: Some((5, 19)),
                    kernel: crate::kernel_version(),
                }
                .into()
            } else {
                os(e)
            });
        }
        // Since 6.8 the kernel shows its head: take only what it consumed.
        let verify = kernel_head(&ring, bgid).is_ok();
        state.verify_head(verify);
        // Since 6.12 a failed request names the buffer it selected without
        // consuming it (io_kbuf_commit returns early for `len < 0`).
        let failures_keep = crate::kernel_version().is_none_or(|v| v.at_least(6, 12));
        state.failures_keep_buffer(failures_keep);
        // From here the value owns the name (its drop unregisters the
        // group and closes a `Fd`).
        guard.0 = None;
        let mut this = BufRing {
            state,
            ring,
            bgid,
            buf_len,
            verify,
            _ring_mem: ManuallyDrop::new(ring_map),
            bufs: ManuallyDrop::new(bufs),
            entries: entries_ptr,
            tail,
        };
        for bid in 0..entries {
            // A fresh ring takes every buffer once.
            if let Err(e) = this.give_back(bid as u16) {
                return Err(io::Error::other(e));
            }
        }
        this.publish();
        Ok(this)
    }

    /// The buffer group id, for ops that select a buffer.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The size of each buffer.
    pub fn buf_len(&self) -> u32 {
        self.buf_len
    }

    /// Buffers lent to the kernel (published, or consumed by a request
    /// whose completion has not been taken yet).
    pub fn available(&self) -> u32 {
        self.state.in_ring()
    }

    /// The data of a completion that selected buffers from this group: a
    /// guard over the `cqe.res` bytes received (in one buffer, or in
    /// several for a bundle receive, `IORING_RECVSEND_BUNDLE`) that gives
    /// every one of those buffers back to the kernel when dropped.
    ///
    /// `Ok(None)` if the completion carries no buffer (an error, or end of
    /// stream), or is a failed request's (since Linux 6.12 the kernel names
    /// the buffer a failed request selected without consuming it; the
    /// buffer stays in the ring). An [`io::ErrorKind::InvalidData`] error
    /// wrapping a [`ring_io_core::BufRingError`], with nothing changed, if it
    /// names a buffer this ring has not lent to the kernel (out of range,
    /// never published, already taken), a bundle longer than the ring lent
    /// in a row, an incrementally consumed buffer (`IORING_CQE_F_BUF_MORE`:
    /// this ring does not use `IOU_PBUF_RING_INC`), or, since Linux 6.8
    /// (where the ring reads the kernel's head with
    /// `IORING_REGISTER_PBUF_STATUS`), a buffer the kernel has not consumed.
    ///
    /// Not for safe code: a completion built by hand (here naming buffer
    /// 0, which a request in flight may have picked) does not compile
    /// without `unsafe`:
    ///
    /// ```compile_fail,E0133
    /// use ring_io_driver::{BufRing, Cqe};
    /// use ring_io_sys::{IORING_CQE_F_BUFFER, io_uring_cqe};
    ///
    /// fn take_forged(bufs: &mut BufRing) {
    ///     let cqe = Cqe::from(io_uring_cqe {
    ///         res: 5,
    ///         // Buffer id 0 (the upper 16 bits).
    ///         flags: IORING_CQE_F_BUFFER,
    ///         ..Default::default()
    ///     });
    ///     let _ = bufs.take(&cqe);
    /// }
    /// ```
    ///
    /// # Safety
    ///
    /// `cqe` is a completion the kernel posted for a request that selected
    /// its buffer from this ring's group, read from the ring the group is
    /// registered with, and it is given to `take` at most once. (A
    /// completion built by hand, posted by another ring with
    /// `IORING_OP_MSG_RING`, or belonging to another group may name a
    /// buffer that a request still in flight is writing into, and no check
    /// can tell: the kernel consumes a buffer when a request starts using
    /// it. The checks above catch most such mistakes, but not that one.)
    pub unsafe fn take(&mut self, cqe: &Cqe) -> io::Result<Option<BufGuard<'_>>> {
        let (flags, res) = (cqe.flags().bits(), cqe.res());
        let taken = match self.state.handle_cqe(flags, res) {
            Err(ring_io_core::BufRingError::NotConsumed(_)) if self.verify => {
                // The head seen is older than the completion: read it again.
                let head = kernel_head(&self.ring, self.bgid).map_err(os)?;
                self.state.handle_head(head).map_err(invalid)?;
                self.state.handle_cqe(flags, res)
            }
            other => other,
        };
        let Some(taken) = taken.map_err(invalid)? else {
            return Ok(None);
        };
        Ok(Some(BufGuard { ring: self, taken }))
    }

    /// `len` bytes of buffer `bid`.
    fn buffer(&self, bid: u16, len: u32) -> &[u8] {
        let start = usize::from(bid) * self.buf_len as usize;
        let len = len.min(self.buf_len) as usize;
        // SAFETY: `bid < entries` (ring-core checked it when the CQE named
        // it) and `len <= buf_len`, so the range is inside `bufs`. The
        // buffer is the application's (ring-core handed it out once, after
        // the kernel consumed it and, by `take`'s contract, completed the
        // request that wrote it) and is not given back while the returned
        // borrow of the guard lives.
        unsafe { std::slice::from_raw_parts(self.bufs.base().add(start), len) }
    }

    /// Gives buffer `bid` back to the kernel (not yet published).
    fn give_back(&mut self, bid: u16) -> Result<(), ring_io_core::BufRingError> {
        let slot = self.state.add(bid)?;
        let entry = io_uring_buf {
            addr: self.bufs.base() as u64 + u64::from(bid) * u64::from(self.buf_len),
            len: self.buf_len,
            bid,
            resv: 0,
        };
        // SAFETY: `slot < entries` (ring-core masks it) so the entry is
        // inside the ring mapping. ring-core only hands out a slot whose
        // entry the kernel has consumed (its head is past it). The `resv`
        // field of entry 0 is the tail, so write the three other fields
        // only, never `resv`.
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

/// The kernel's head of group `bgid` (`IORING_REGISTER_PBUF_STATUS`, 6.8).
fn kernel_head(ring: &GroupRing, bgid: u16) -> Result<u16, Errno> {
    let mut status = io_uring_buf_status {
        buf_group: u32::from(bgid),
        ..Default::default()
    };
    // SAFETY: one `io_uring_buf_status`, valid and writable for the call.
    unsafe { ring.register(ring_io_sys::IORING_REGISTER_PBUF_STATUS, &raw mut status, 1) }?;
    // The kernel's head is a u16 (`io_buffer_list.head`).
    Ok(status.head as u16)
}

fn invalid(e: ring_io_core::BufRingError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
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
        let op = ring_io_sys::IORING_UNREGISTER_PBUF_RING;
        // SAFETY: `reg` names the group only. After this the kernel no longer
        // picks buffers from it, and no request that picked one is in flight
        // (the contract of `new`), so nothing uses the buffers the mappings
        // free below. An `Index` ring is still alive (the contract of
        // `Registrar::buf_ring`).
        let unregistered = unsafe { self.ring.register(op, &reg, 1) };
        match self.ring {
            GroupRing::Fd(fd) => sys::close(fd),
            // Not unregistered: dropped on another thread than the ring's
            // (which cannot name it). The kernel may still pick buffers
            // from the group: the memory is leaked, never freed under it.
            GroupRing::Index(_) if unregistered.is_err() => return,
            GroupRing::Index(_) => {}
        }
        // SAFETY: dropped once, here; nothing uses the mappings any more
        // (see above).
        unsafe {
            ManuallyDrop::drop(&mut self.bufs);
            ManuallyDrop::drop(&mut self._ring_mem);
        }
    }
}

/// The bytes a completion received into a [`BufRing`]: one buffer, or
/// several in ring order for a bundle receive. Every buffer goes back to
/// the kernel when this is dropped.
pub struct BufGuard<'a> {
    ring: &'a mut BufRing,
    taken: TakenBufs,
}

impl BufGuard<'_> {
    /// The id of the (first) buffer, as the completion named it.
    pub fn bid(&self) -> u16 {
        self.taken.bid()
    }

    /// How many buffers the bytes span: 1, or more for a bundle.
    pub fn buffers(&self) -> u16 {
        self.taken.count()
    }

    /// Bytes received.
    pub fn len(&self) -> usize {
        self.taken.len() as usize
    }

    /// True if no bytes were received.
    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }

    /// The bytes, one slice per buffer, in order.
    pub fn chunks(&self) -> Chunks<'_> {
        Chunks {
            ring: self.ring,
            taken: self.taken,
            bid: self.taken.bid(),
            i: 0,
        }
    }

    /// The bytes, if they lie in one buffer (always, unless a bundle
    /// spans several).
    pub fn as_slice(&self) -> Option<&[u8]> {
        (self.taken.count() == 1).then(|| self.ring.buffer(self.taken.bid(), self.taken.len()))
    }

    /// The bytes, copied out.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for chunk in self.chunks() {
            v.extend_from_slice(chunk);
        }
        v
    }
}

impl fmt::Debug for BufGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufGuard")
            .field("bid", &self.taken.bid())
            .field("buffers", &self.taken.count())
            .field("len", &self.taken.len())
            .finish()
    }
}

impl Drop for BufGuard<'_> {
    fn drop(&mut self) {
        let mut bid = self.taken.bid();
        for _ in 0..self.taken.count() {
            let next = self.ring.state.next_bid(bid);
            // Cannot fail: the buffer is the application's and ring-core
            // keeps a consumed slot for it. Were it to, the buffer would
            // stay out of the ring (never lent twice).
            let _ = self.ring.give_back(bid);
            bid = next;
        }
        self.ring.publish();
    }
}

/// The bytes of a [`BufGuard`], one slice per buffer ([`BufGuard::chunks`]).
#[derive(Debug)]
pub struct Chunks<'a> {
    ring: &'a BufRing,
    taken: TakenBufs,
    bid: u16,
    i: u16,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.i >= self.taken.count() {
            return None;
        }
        let len = self.taken.len_in(self.i, self.ring.buf_len);
        let chunk = self.ring.buffer(self.bid, len);
        self.bid = self.ring.state.next_bid(self.bid);
        self.i += 1;
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.taken.count() - self.i);
        (n, Some(n))
    }
}
