//! [`FixedBuf`]: buffers registered with the Proactor's ring.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use ring_io_driver::SetupError;

use crate::buf::{IoBuf, IoBufMut};

/// The registered memory: `count` buffers of `size` bytes in one
/// page-aligned block, and which of them are free.
pub(super) struct Pool {
    base: NonNull<u8>,
    layout: Layout,
    size: usize,
    free: Mutex<Vec<u16>>,
}

// SAFETY: the block is plain memory owned by the pool; each buffer in it is
// reachable through at most one `FixedBuf` at a time (the free list hands
// out each index once), so threads never share a buffer's bytes.
unsafe impl Send for Pool {}
// SAFETY: as above; the free list is behind a mutex.
unsafe impl Sync for Pool {}

/// The most buffers the kernel registers (`IORING_MAX_REG_BUFFERS`; 1024
/// before Linux 5.13, which then refuses more with `EINVAL`).
const MAX_COUNT: u16 = 1 << 14;
/// The largest buffer the kernel registers (`SZ_1G`, every version).
const MAX_SIZE: usize = 1 << 30;

impl Pool {
    /// `count` zeroed buffers of `size` bytes (page-aligned block). Refused
    /// before anything is allocated: what no kernel registers (more than
    /// 16384 buffers, or one larger than 1 GiB; the kernel would answer
    /// only after the whole block was zeroed, with a bare `EINVAL` or
    /// `EFAULT`).
    pub(crate) fn new(count: u16, size: usize) -> Result<Arc<Pool>, SetupError> {
        let invalid = SetupError::Invalid(
            "fixed buffers: 1 to 16384 of them, each of 1 byte to 1 GiB \
             (the most the kernel registers)",
        );
        let bytes = usize::from(count)
            .checked_mul(size)
            .filter(|&b| b > 0 && size <= MAX_SIZE && count <= MAX_COUNT)
            .ok_or(invalid)?;
        let layout = Layout::from_size_align(bytes, 4096).map_err(|e| {
            SetupError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        })?;
        // SAFETY: the layout has a non-zero size.
        let base = NonNull::new(unsafe { alloc_zeroed(layout) })
            .ok_or_else(|| SetupError::Io(std::io::Error::from(std::io::ErrorKind::OutOfMemory)))?;
        Ok(Arc::new(Pool {
            base,
            layout,
            size,
            free: Mutex::new((0..count).rev().collect()),
        }))
    }

    /// The iovecs to register, buffer `i` at index `i`.
    pub(super) fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.layout.size() / self.size)
            .map(|i| libc::iovec {
                iov_base: self.ptr(i as u16).cast(),
                iov_len: self.size,
            })
            .collect()
    }

    fn ptr(&self, index: u16) -> *mut u8 {
        // SAFETY: index < count, so the offset stays inside the block.
        unsafe { self.base.as_ptr().add(usize::from(index) * self.size) }
    }

    /// A free buffer, empty, or `None` if all are taken.
    pub(super) fn take(self: &Arc<Self>) -> Option<FixedBuf> {
        let index = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        Some(FixedBuf {
            pool: self.clone(),
            index,
            len: 0,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no FixedBuf is left
        // (each holds the Arc), and the ring that registered the block is
        // gone: the Proactor's shared state, which holds the Arc too, outlives
        // the thread's ring (or, after a panic, is leaked with it); a
        // LocalProactor's state holds it too, and drops it after closing its
        // ring (or leaking it, with the FixedBufs of requests still in it).
        unsafe { dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// A buffer registered with a [`Proactor`](crate::Proactor)'s ring
/// ([`ProactorConfig::fixed_buffers`](crate::ProactorConfig::fixed_buffers)),
/// taken with [`Proactor::fixed_buffer`](crate::Proactor::fixed_buffer) and
/// given back to the pool when dropped (or a
/// [`LocalProactor`](crate::LocalProactor)'s, through its methods of the
/// same names). Used by
/// [`read_fixed`](crate::Proactor::read_fixed) and
/// [`write_fixed`](crate::Proactor::write_fixed), which move it in and hand
/// it back: the kernel pinned its pages once, at registration, instead of
/// mapping them on every op.
///
/// Like a `Vec<u8>` with a fixed capacity: it derefs to its first `len()`
/// bytes; a read fills it from its start, its length becoming
/// `max(len, n)`. It is also an [`IoBufMut`], so the plain ops
/// ([`read`](crate::Proactor::read), [`send`](crate::Proactor::send), ...)
/// and [`slice`](IoBuf::slice)s take it too (as any buffer: the fixed ops
/// are what spare the page mapping).
pub struct FixedBuf {
    pool: Arc<Pool>,
    index: u16,
    len: usize,
}

impl FixedBuf {
    /// True if it was taken from `pool`.
    pub(crate) fn is_from(&self, pool: &Arc<Pool>) -> bool {
        Arc::ptr_eq(&self.pool, pool)
    }

    /// Its index in the ring's buffer table (`buf_index` of the SQE).
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Bytes it can hold.
    pub fn capacity(&self) -> usize {
        self.pool.size
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `len` bytes (no-op if it holds fewer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends as much of `data` as fits; returns how many bytes that was.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.capacity() - self.len);
        // SAFETY: `len + n <= capacity`: the bytes are inside this buffer,
        // which only this FixedBuf reaches; `data` cannot overlap it (it is
        // borrowed while this is borrowed mutably).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.start().add(self.len), n);
        }
        self.len += n;
        n
    }

    /// The start of the buffer's memory.
    pub(super) fn start(&self) -> *mut u8 {
        self.pool.ptr(self.index)
    }
}

// SAFETY: the buffer is `capacity()` bytes of the pool's block, which the
// `Arc` this value holds keeps allocated and which never moves; the pool
// hands out each index once, so this value alone reaches those bytes; the
// block was zeroed, so all of them are initialized; the first `len` are
// its contents.
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.start()
    }

    fn bytes_init(&self) -> usize {
        self.len
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above; any bytes are valid, and `set_init` only grows the
// length, up to the capacity.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.start()
    }

    unsafe fn set_init(&mut self, n: usize) {
        debug_assert!(n <= self.capacity());
        self.len = self.len.max(n);
    }
}

impl Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of this buffer, initialized (the
        // block was zeroed), reachable only through this FixedBuf.
        unsafe { std::slice::from_raw_parts(self.start(), self.len) }
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.start(), self.len) }
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        self.pool
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.index);
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.index)
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_hands_out_each_buffer_once_and_takes_it_back() {
        let pool = Pool::new(2, 8).unwrap();
        let iov = pool.iovecs();
        assert_eq!(iov.len(), 2);
        assert_eq!(iov[0].iov_base as usize % 4096, 0, "page-aligned");
        assert_eq!(iov[1].iov_base as usize - iov[0].iov_base as usize, 8);
        let mut a = pool.take().unwrap();
        let mut b = pool.take().unwrap();
        assert!(pool.take().is_none());
        assert_ne!(a.index(), b.index());
        assert_eq!((a.len(), a.capacity()), (0, 8));
        assert_eq!(a.extend_from_slice(b"0123456789"), 8, "as much as fits");
        assert_eq!(&a[..], b"01234567");
        a.truncate(3);
        a[0] = b'x';
        assert_eq!(&a[..], b"x12");
        assert_eq!(b.extend_from_slice(b"b"), 1);
        assert_eq!(&b[..], b"b", "buffers do not overlap");
        // SAFETY: 3 bytes fit, and the pool's memory is initialized.
        unsafe { b.set_init(3) };
        assert_eq!(&b[..], b"b\0\0");
        // SAFETY: as above.
        unsafe { b.set_init(1) };
        assert_eq!(b.len(), 3, "never shrinks");
        assert_eq!((b.bytes_init(), b.bytes_total()), (3, 8));
        assert_eq!(b.stable_ptr(), b.as_ptr());
        let index = a.index();
        drop(a);
        let again = pool.take().unwrap();
        assert_eq!(again.index(), index);
        assert!(again.is_empty(), "taken empty");
        assert!(Pool::new(0, 8).is_err());
        assert!(Pool::new(1, 0).is_err());
        assert!(Pool::new(1, MAX_SIZE + 1).is_err());
        assert!(Pool::new(MAX_COUNT + 1, 8).is_err());
    }
}
