//! Buffers the kernel reads or writes while an op owns them: [`IoBuf`],
//! [`IoBufMut`] and [`Slice`], as in tokio-uring and monoio.
//!
//! An op takes its buffer by value, hands the kernel a pointer into it,
//! and gives it back with the result ([`BufResult`]): the buffer's memory
//! must stay where it is while the value moves into the op (and, if the op
//! is dropped early, into the Proactor until the kernel is done). So the
//! traits are implemented for buffers whose bytes live on the heap or in
//! static memory: `Vec<u8>`, `Box<[u8]>`, `String`, `&'static [u8]`,
//! `&'static str`, [`FixedBuf`](crate::FixedBuf), and, with the `bytes`
//! feature, `bytes::Bytes` and `bytes::BytesMut`. An inline array
//! (`[u8; N]`) moves with its value and cannot be one.
//!
//! # What an op does with a buffer
//!
//! - A read ([`read`](crate::Proactor::read), [`recv`](crate::Proactor::recv),
//!   ...) fills the buffer **from its start**, up to
//!   [`bytes_total`](IoBuf::bytes_total) bytes (a `Vec`'s capacity), then
//!   marks the `n` bytes read initialized with
//!   [`set_init(n)`](IoBufMut::set_init): a `Vec`'s length becomes
//!   `max(len, n)` (tokio-uring's rule), so bytes past `n` that the vector
//!   held before stay. Use the returned `n`, not the length, for what was
//!   read.
//! - A write ([`write`](crate::Proactor::write), [`send`](crate::Proactor::send),
//!   ...) sends the [`bytes_init`](IoBuf::bytes_init) bytes from the start (a
//!   `Vec`'s length).
//! - A read into a buffer with no room (`bytes_total() == 0`: `Vec::new()`,
//!   an empty slice) fails with [`io::ErrorKind::InvalidInput`], never
//!   `Ok(0)` (which would read as end of file), and so does a buffer longer
//!   than the op's 32-bit length; either way the buffer comes back.
//! - [`IoBuf::slice`] narrows a buffer to a range: a read fills the slice
//!   from its start and never writes past its end; a write sends the
//!   slice's initialized bytes. [`Slice::into_inner`] gives the buffer back.
//!
//! ```
//! use std::sync::Arc;
//! use ring_io_proactor::{CURRENT_POSITION, IoBuf, Proactor, ProactorConfig};
//!
//! let p = Proactor::new(ProactorConfig::new(8))?;
//! let file = Arc::new(std::fs::File::open("/proc/self/status")?);
//! // A zeroed vector is filled from its start: `n` bytes of it are the file's.
//! let (n, buf) = p.read(&file, vec![0u8; 4096], 0).wait();
//! let n = n?;
//! assert!(buf[..n].starts_with(b"Name:"));
//! assert_eq!(buf.len(), 4096, "the length is max(len, n)");
//! // An empty vector with capacity: its length becomes `n`.
//! let (n, buf) = p.read(&file, Vec::with_capacity(5), 0).wait();
//! assert_eq!((n?, &buf[..]), (5, &b"Name:"[..]));
//! // Into bytes 10..15 of a buffer: the rest is untouched.
//! let (n, slice) = p.read(&file, vec![b'.'; 20].slice(10..15), 0).wait();
//! assert_eq!(n?, 5);
//! assert_eq!(&slice[..], b"Name:");
//! assert_eq!(slice.into_inner(), b"..........Name:.....");
//! // No room: an error, and the buffer comes back.
//! let (res, buf) = p.read(&file, Vec::new(), 0).wait();
//! assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
//! assert_eq!(buf.capacity(), 0);
//! // A write sends the initialized bytes: a `&'static str`, a `String`, ...
//! let (tx, rx) = std::os::unix::net::UnixStream::pair()?;
//! let (tx, rx) = (Arc::new(tx), Arc::new(rx));
//! let (n, _) = p.write(&tx, "hello", CURRENT_POSITION).wait();
//! assert_eq!(n?, 5);
//! let (n, buf) = p.read(&rx, Box::<[u8]>::from([0u8; 8]), CURRENT_POSITION).wait();
//! assert_eq!(&buf[..n?], b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::ops::RangeBounds;

mod slice;
pub use slice::Slice;

/// What a buffer op returns: its result and the buffer, handed back either
/// way.
pub type BufResult<T, B> = (io::Result<T>, B);

/// A buffer an op can send from: its bytes stay at one address while the
/// value moves, so the kernel can read them while the op holds the value.
///
/// Implemented for `Vec<u8>`, `Box<[u8]>`, `String`, `&'static [u8]`,
/// `&'static str`, [`FixedBuf`](crate::FixedBuf), [`Slice`] of any of
/// them, and (`bytes` feature) `bytes::Bytes` and `bytes::BytesMut`.
///
/// # Safety
///
/// The op hands [`stable_ptr`](Self::stable_ptr) to the kernel, moves the
/// value into its own storage (possibly to another thread), and lets the
/// kernel read the memory until the request completes. So for every value
/// `b` of the implementing type:
///
/// - `b.bytes_init() <= b.bytes_total()`, and `b.stable_ptr()` points to
///   `b.bytes_total()` bytes of memory that `b` owns or borrows for
///   `'static`, the first `b.bytes_init()` of them initialized (a length
///   of 0 may come with any non-null pointer, which is never dereferenced).
/// - That memory is not inside the value itself (it is on the heap or
///   static), so moving `b` neither moves nor frees it; the pointer and
///   both lengths stay valid and unchanged as long as `b` is only moved
///   and borrowed shared: until it is next borrowed mutably, or dropped.
///   An inline array (`[u8; N]`) does not qualify.
/// - While `b` lives, nothing writes its first `b.bytes_init()` bytes
///   other than code holding `b` mutably: the kernel reads what the value
///   holds, and an op that owns `b` has them to itself.
pub unsafe trait IoBuf: Send + 'static {
    /// The start of the buffer's memory, stable while the value is moved.
    fn stable_ptr(&self) -> *const u8;

    /// How many bytes from the start are initialized: what a write sends
    /// (a `Vec`'s length).
    fn bytes_init(&self) -> usize;

    /// How many bytes the buffer can hold: what a read may fill (a `Vec`'s
    /// capacity).
    fn bytes_total(&self) -> usize;

    /// The bytes `range` of this buffer, as a buffer of its own: a read
    /// into it fills it from its start and never writes past its end; a
    /// write sends its initialized bytes. [`Slice::into_inner`] gives the
    /// buffer back.
    ///
    /// The range is taken within [`bytes_total`](Self::bytes_total): a
    /// slice of a `Vec`'s spare capacity is allowed (a read into it zeroes
    /// the uninitialized bytes before it, so that the vector's length can
    /// cover the bytes read).
    ///
    /// ```
    /// use ring_io_proactor::IoBuf;
    ///
    /// let mut buf = Vec::with_capacity(32);
    /// buf.extend_from_slice(b"hello, world");
    /// let slice = buf.slice(7..);
    /// assert_eq!((slice.begin(), slice.end()), (7, 32));
    /// assert_eq!(&slice[..], b"world", "its initialized bytes");
    /// assert_eq!(slice.bytes_total(), 25);
    /// let buf = slice.into_inner();
    /// assert_eq!(buf, b"hello, world");
    /// ```
    ///
    /// # Panics
    ///
    /// If the range starts after it ends, or ends past `bytes_total()`.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        Slice::new(self, range)
    }
}

/// A buffer an op can read into: the kernel may write any bytes to its
/// whole [`bytes_total`](IoBuf::bytes_total), after which the op marks
/// those it wrote initialized with [`set_init`](Self::set_init).
///
/// Implemented for `Vec<u8>`, `Box<[u8]>`, [`FixedBuf`](crate::FixedBuf),
/// [`Slice`] of any of them, and (`bytes` feature) `bytes::BytesMut`; not
/// for `String`, whose bytes must stay UTF-8.
///
/// # Safety
///
/// Everything [`IoBuf`] requires, and for every value `b`:
///
/// - `b.stable_mut_ptr()` returns the pointer `b.stable_ptr()` does, valid
///   for writes of `b.bytes_total()` bytes until `b` is next borrowed
///   mutably (other than by `stable_mut_ptr` itself) or dropped, moves
///   included; calling it changes neither length.
/// - Those `bytes_total()` bytes are `b`'s alone: while `b` lives nothing
///   reads or writes them except through `b`, so the kernel may write them
///   while an op holds `b`.
/// - Any bytes may be written there: no invariant of the type depends on
///   their values (a `String`'s UTF-8 does: it is only an [`IoBuf`]).
/// - `b.set_init(n)` (with `n <= b.bytes_total()`) makes `b.bytes_init()`
///   `max(b.bytes_init(), n)` and changes neither the pointer nor
///   `bytes_total()`.
pub unsafe trait IoBufMut: IoBuf {
    /// The start of the buffer's memory, for writes; the pointer
    /// [`stable_ptr`](IoBuf::stable_ptr) returns.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Marks the first `n` bytes initialized: the initialized length
    /// becomes `max(bytes_init(), n)` (a `Vec`'s length grows to `n` if it
    /// was shorter, and never shrinks).
    ///
    /// # Safety
    ///
    /// `n <= self.bytes_total()`, and the first `n` bytes from
    /// [`stable_mut_ptr`](Self::stable_mut_ptr) were initialized (written,
    /// by the kernel or otherwise).
    unsafe fn set_init(&mut self, n: usize);
}

// SAFETY: a vector's bytes are on the heap (moving it moves only its
// pointer, length and capacity); `len <= capacity`, the first `len`
// initialized; it owns them alone, and any bytes are valid `u8`s.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above; `as_mut_ptr` is the pointer `as_ptr` returns, valid
// for the whole capacity, and `set_init` only grows the length.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, n: usize) {
        if self.len() < n {
            // SAFETY: `n <= capacity` and the first `n` bytes are
            // initialized (the caller's contract).
            unsafe { self.set_len(n) };
        }
    }
}

// SAFETY: a boxed slice's bytes are on the heap, all initialized, its own.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as above; every byte is already initialized, so `set_init` has
// nothing to do.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, _n: usize) {}
}

// SAFETY: static bytes never move nor change.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static bytes never move nor change.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: a string's bytes are a `Vec<u8>`'s (see there). Only `IoBuf`:
// the kernel must not write bytes that could break its UTF-8.
unsafe impl IoBuf for String {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

#[cfg(feature = "bytes")]
#[cfg_attr(docsrs, doc(cfg(feature = "bytes")))]
// SAFETY: `Bytes` points to heap or static memory that does not move with
// the handle and that no handle ever writes; all `len()` bytes are
// initialized.
unsafe impl IoBuf for bytes::Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(feature = "bytes")]
#[cfg_attr(docsrs, doc(cfg(feature = "bytes")))]
// SAFETY: `BytesMut` owns a unique view of `capacity()` bytes of heap
// memory that does not move with the handle; the first `len()` are
// initialized.
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

#[cfg(feature = "bytes")]
#[cfg_attr(docsrs, doc(cfg(feature = "bytes")))]
// SAFETY: as above: the view is this handle's alone (splitting makes
// disjoint views), writable for its capacity; `set_init` only grows the
// length.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, n: usize) {
        if self.len() < n {
            // SAFETY: `n <= capacity` and the first `n` bytes are
            // initialized (the caller's contract).
            unsafe { self.set_len(n) };
        }
    }
}

/// The length an op's entry carries for a buffer of `len` bytes, or the
/// error naming why it cannot: a read with no room (`read`), or more bytes
/// than the entry's 32-bit length holds.
#[inline]
pub(crate) fn op_len(len: usize, read: bool) -> io::Result<u32> {
    match u32::try_from(len) {
        Ok(n) if n > 0 || !read => Ok(n),
        _ => Err(op_len_error(len, read)),
    }
}

/// Why `op_len` refuses `len`.
#[cold]
fn op_len_error(len: usize, read: bool) -> io::Error {
    if read && len == 0 {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            "a read into a buffer with no room (bytes_total() is 0): \
             pass a buffer with capacity, such as vec![0; n] or Vec::with_capacity(n)",
        );
    }
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "a buffer of {len} bytes is longer than an op's 32-bit length: \
             pass a slice of it (buf.slice(..n)) of at most {} bytes",
            u32::MAX
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vec_fills_from_its_start_and_its_length_is_the_larger() {
        let mut v = vec![1u8; 4];
        v.reserve_exact(4);
        assert_eq!((v.bytes_init(), v.bytes_total()), (4, v.capacity()));
        // SAFETY: 2 <= capacity, and the first 2 bytes are initialized.
        unsafe { v.set_init(2) };
        assert_eq!(v.len(), 4, "never shrinks");
        let p = v.stable_mut_ptr();
        // SAFETY: 6 bytes are within the capacity.
        unsafe { p.write_bytes(9, 6) };
        // SAFETY: the first 6 bytes were just written.
        unsafe { v.set_init(6) };
        assert_eq!(v, [9, 9, 9, 9, 9, 9]);
    }

    #[test]
    fn a_slice_covers_its_range_and_composes() {
        let s = b"0123456789".to_vec().slice(2..8);
        assert_eq!((s.bytes_init(), s.bytes_total()), (6, 6));
        assert_eq!(&s[..], b"234567");
        let s = s.slice(1..=2);
        assert_eq!((s.begin(), s.end(), &s[..]), (3, 5, &b"34"[..]));
        let s = s.into_inner().slice(..);
        assert_eq!((s.begin(), s.end()), (0, 10));
        let base = s.get_ref().as_ptr();
        assert_eq!(s.slice(4..).stable_ptr(), base.wrapping_add(4));
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        let s = v.slice(2..10);
        assert_eq!((s.bytes_init(), s.bytes_total(), &s[..]), (1, 8, &b"c"[..]));
        let s = s.into_inner().slice(5..10);
        assert_eq!((s.bytes_init(), s.bytes_total()), (0, 5));
        assert!(s.is_empty());
    }

    #[test]
    #[should_panic(expected = "past the buffer's 4 bytes")]
    fn a_slice_past_the_buffer_panics() {
        let _ = vec![0u8; 4].slice(..5);
    }

    #[test]
    #[should_panic(expected = "ends before it")]
    #[allow(clippy::reversed_empty_ranges, reason = "the case under test")]
    fn a_backwards_slice_panics() {
        let _ = vec![0u8; 4].slice(3..2);
    }

    #[test]
    fn a_slice_past_the_initialized_bytes_zeroes_the_gap_when_filled() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"ab");
        let mut s = v.slice(5..9);
        let p = s.stable_mut_ptr();
        // SAFETY: 3 bytes within the slice's 4.
        unsafe { p.copy_from_nonoverlapping(b"xyz".as_ptr(), 3) };
        // SAFETY: the slice's first 3 bytes were just written.
        unsafe { s.set_init(3) };
        assert_eq!(&s[..], b"xyz");
        assert_eq!(s.into_inner(), b"ab\0\0\0xyz");
        let mut v = Vec::with_capacity(8);
        // SAFETY: nothing is marked.
        unsafe { v.set_init(0) };
        let mut s = v.slice(4..);
        // SAFETY: nothing is marked.
        unsafe { s.set_init(0) };
        assert!(s.into_inner().is_empty(), "set_init(0) marks nothing");
    }

    #[test]
    fn a_buffer_shrunk_under_its_slice_leaves_the_slice_only_what_is_left() {
        let mut s = vec![0u8; 16].slice(8..12);
        assert_eq!(s.bytes_total(), 4);
        *s.get_mut() = vec![0u8; 10];
        assert_eq!((s.bytes_init(), s.bytes_total()), (2, 2));
        *s.get_mut() = Vec::new();
        assert_eq!((s.bytes_init(), s.bytes_total()), (0, 0));
        assert!(s.is_empty());
    }

    #[test]
    fn the_other_buffers_report_their_bytes() {
        let b: Box<[u8]> = vec![1, 2, 3].into();
        assert_eq!((b.bytes_init(), b.bytes_total()), (3, 3));
        let s: &'static str = "hey";
        assert_eq!((s.bytes_init(), s.bytes_total()), (3, 3));
        let t: &'static [u8] = b"hi";
        assert_eq!((t.bytes_init(), t.bytes_total()), (2, 2));
        let mut st = String::with_capacity(10);
        st.push_str("abc");
        assert_eq!((st.bytes_init(), st.bytes_total()), (3, st.capacity()));
        assert_eq!(st.stable_ptr(), st.as_ptr());
    }

    #[test]
    fn op_lengths_refuse_no_room_and_past_u32() {
        let no_room = op_len(0, true).unwrap_err();
        assert_eq!(no_room.kind(), io::ErrorKind::InvalidInput);
        assert!(no_room.to_string().contains("no room"), "{no_room}");
        assert_eq!(op_len(0, false).unwrap(), 0, "an empty write is fine");
        assert_eq!(op_len(u32::MAX as usize, true).unwrap(), u32::MAX);
        let long = op_len(u32::MAX as usize + 1, false).unwrap_err();
        assert_eq!(long.kind(), io::ErrorKind::InvalidInput);
        assert!(long.to_string().contains("32-bit"), "{long}");
    }
}
