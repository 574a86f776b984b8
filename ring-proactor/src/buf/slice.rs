//! [`Slice`]: a range of a buffer, itself a buffer.

use std::ops::{Bound, Deref, DerefMut, RangeBounds};

use super::{IoBuf, IoBufMut};

/// `range` within `0..len`, as `(begin, end)`.
fn bounds(range: &impl RangeBounds<usize>, len: usize) -> (usize, usize) {
    let begin = match range.start_bound() {
        Bound::Included(&b) => b,
        Bound::Excluded(&b) => b.checked_add(1).expect("a range start past usize::MAX"),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1).expect("a range end past usize::MAX"),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    assert!(
        begin <= end,
        "a slice starting at {begin} ends before it, at {end}"
    );
    assert!(
        end <= len,
        "a slice ending at {end} is past the buffer's {len} bytes"
    );
    (begin, end)
}

/// Bytes `begin..end` of a buffer `T`, as a buffer of their own: made by
/// [`IoBuf::slice`], handed to an op as any buffer, and turned back into
/// the buffer with [`into_inner`](Self::into_inner).
///
/// A read into it fills it from its start (byte `begin` of the buffer) and
/// never writes past `end`; a write sends its initialized bytes
/// (`begin..min(end, buf.bytes_init())`), which it also derefs to.
///
/// ```
/// # use std::sync::Arc;
/// use ring_io_proactor::{IoBuf, Proactor, ProactorConfig};
///
/// let p = Proactor::new(ProactorConfig::new(8))?;
/// let zero = Arc::new(std::fs::File::open("/dev/zero")?);
/// let (n, slice) = p.read(&zero, vec![1u8; 8].slice(2..5), 0).wait();
/// assert_eq!(n?, 3);
/// assert_eq!(slice.into_inner(), [1, 1, 0, 0, 0, 1, 1, 1]);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`get_mut`](Self::get_mut) may change the buffer, even shrink it below
/// `end`: the slice then covers what is left of `begin..end`.
#[derive(Debug)]
pub struct Slice<T> {
    buf: T,
    begin: usize,
    end: usize,
}

impl<T> Slice<T> {
    /// `buf`'s bytes in `range` (see [`IoBuf::slice`]).
    pub(super) fn new(buf: T, range: impl RangeBounds<usize>) -> Self
    where
        T: IoBuf,
    {
        let (begin, end) = bounds(&range, buf.bytes_total());
        Slice { buf, begin, end }
    }

    /// The offset of the slice's first byte in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// The offset just past the slice's last byte in the buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }

    /// The whole buffer, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.buf
    }

    /// The whole buffer: what was read into the slice is at
    /// `begin()..begin() + n`.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: IoBuf> Slice<T> {
    /// Bytes `range` of this slice (relative to its start), as a slice of
    /// the same buffer (not a slice of a slice).
    ///
    /// ```
    /// use ring_io_proactor::{IoBuf, Slice};
    ///
    /// let s: Slice<Vec<u8>> = b"0123456789".to_vec().slice(2..8).slice(1..3);
    /// assert_eq!((s.begin(), s.end(), &s[..]), (3, 5, &b"34"[..]));
    /// ```
    ///
    /// # Panics
    ///
    /// If the range starts after it ends, or ends past the slice's length
    /// (`end() - begin()`).
    pub fn slice(self, range: impl RangeBounds<usize>) -> Slice<T> {
        let (begin, end) = bounds(&range, self.end - self.begin);
        Slice {
            buf: self.buf,
            begin: self.begin + begin,
            end: self.begin + end,
        }
    }
}

// SAFETY: the pointer is the buffer's, offset by `begin` (wrapping: if the
// buffer shrank below `begin`, both lengths are 0 and it is never used);
// the lengths are `begin..end` cut to the buffer's own, so they stay within
// memory the buffer owns, initialized as far as the buffer says. The
// buffer's guarantees of stability and exclusivity carry over, as the
// slice owns it.
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr().wrapping_add(self.begin)
    }

    fn bytes_init(&self) -> usize {
        self.end
            .min(self.buf.bytes_init())
            .saturating_sub(self.begin)
    }

    fn bytes_total(&self) -> usize {
        self.end
            .min(self.buf.bytes_total())
            .saturating_sub(self.begin)
    }
}

// SAFETY: as for `IoBuf`; `set_init` keeps the buffer's contract: it marks
// initialized only bytes it zeroed or the caller vouched for.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }

    /// Marks the slice's first `n` bytes initialized: the buffer's first
    /// `begin() + n` (if the slice started past the buffer's initialized
    /// bytes, those in between are zeroed first). `set_init(0)` does
    /// nothing.
    unsafe fn set_init(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let init = self.buf.bytes_init();
        let ptr = self.buf.stable_mut_ptr();
        if init < self.begin {
            // SAFETY: `begin + n <= buf.bytes_total()` (the caller's `n` is
            // within the slice, which is within the buffer), so
            // `init..begin` is inside the buffer's memory, writable by its
            // contract.
            unsafe { ptr.add(init).write_bytes(0, self.begin - init) };
        }
        // SAFETY: bytes `..init` were initialized, `init..begin` were just
        // zeroed, `begin..begin + n` the caller vouched for; `begin + n` is
        // within the buffer's `bytes_total()`.
        unsafe { self.buf.set_init(self.begin + n) };
    }
}

impl<T: IoBuf> Deref for Slice<T> {
    type Target = [u8];

    /// The slice's initialized bytes.
    fn deref(&self) -> &[u8] {
        let len = self.bytes_init();
        if len == 0 {
            return &[];
        }
        // SAFETY: `len` bytes from the slice's start are within the
        // buffer's initialized bytes, which nothing writes while it is
        // borrowed shared (its `IoBuf` contract).
        unsafe { std::slice::from_raw_parts(self.stable_ptr(), len) }
    }
}

impl<T: IoBufMut> DerefMut for Slice<T> {
    /// The slice's initialized bytes, mutably.
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.bytes_init();
        if len == 0 {
            return &mut [];
        }
        let ptr = self.stable_mut_ptr();
        // SAFETY: `len` bytes from the slice's start are within the
        // buffer's initialized bytes, the buffer's alone (its `IoBufMut`
        // contract), borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }
}
