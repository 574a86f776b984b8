//! The buffer traits on the running kernel: a read fills a buffer (or a
//! slice of one) from its start and never writes past its room; every
//! buffer type writes and reads; a buffer with no room is an error that
//! hands it back; readv fills each buffer from its start. And `Multi` as a
//! `futures_core::Stream`.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use ring_io_proactor::{
    CURRENT_POSITION, IoBuf, IoBufMut, MsgFlags, Proactor, ProactorConfig, Slice, block_on,
};

fn proactor() -> Proactor {
    Proactor::new(ProactorConfig::new(32)).expect("a proactor on this kernel")
}

/// `len` bytes that differ from their neighbours and from 0 and 0xAA.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 + 1).collect()
}

/// A file holding `data`, open for reading (its name already removed).
fn file_with(name: &str, data: &[u8]) -> Arc<File> {
    let path =
        std::env::temp_dir().join(format!("ring-proactor-buf-{}-{name}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let file = File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    Arc::new(file)
}

/// A connected pair: the writing end as std uses it, the reading end
/// shared as the ops take it.
fn pair() -> (UnixStream, Arc<UnixStream>) {
    let (a, b) = UnixStream::pair().unwrap();
    (a, Arc::new(b))
}

#[test]
fn a_zeroed_vec_is_read_into_from_its_start() {
    let p = proactor();
    let data = pattern(10_000);
    let file = file_with("zeroed", &data);
    // Reads used to append after the length: this one read nothing, Ok(0).
    let (n, buf) = p.read(&file, vec![0u8; 4096], 0).wait();
    assert_eq!(n.unwrap(), 4096);
    assert_eq!(buf, data[..4096]);
    // Reused as it came back, not cleared: filled from its start again;
    // the length stays max(len, n), the bytes past `n` as they were.
    let (n, buf) = p.read(&file, buf, 9_000).wait();
    assert_eq!(n.unwrap(), 1_000);
    assert_eq!(buf[..1_000], data[9_000..]);
    assert_eq!(buf.len(), 4096, "max(len, n)");
    assert_eq!(buf[1_000..], data[1_000..4096], "bytes past n stay");
    // An empty vector's length becomes n.
    let (n, buf) = p.read(&file, Vec::with_capacity(100), 50).wait();
    assert_eq!(n.unwrap(), 100);
    assert_eq!(buf, data[50..150]);
    // A receive as well.
    let (mut a, b) = pair();
    a.write_all(b"abc").unwrap();
    let (n, buf) = p.recv(&b, vec![0u8; 16], MsgFlags::empty()).wait();
    assert_eq!(&buf[..n.unwrap()], b"abc");
    assert_eq!(buf.len(), 16);
}

#[test]
fn a_read_into_a_slice_writes_only_there() {
    let p = proactor();
    let data = pattern(100);
    let file = file_with("slice", &data);
    // The file has 100 bytes; the slice room for 10, the vector for 64.
    let (n, slice) = p.read(&file, vec![0xAA; 64].slice(10..20), 0).wait();
    assert_eq!(n.unwrap(), 10);
    assert_eq!((slice.begin(), slice.end()), (10, 20));
    assert_eq!(&slice[..], &data[..10]);
    let buf = slice.into_inner();
    assert_eq!(buf.len(), 64);
    assert!(buf[..10].iter().all(|&b| b == 0xAA), "before the slice");
    assert_eq!(buf[10..20], data[..10]);
    assert!(
        buf[20..].iter().all(|&b| b == 0xAA),
        "the kernel wrote past the slice's end: {:?}",
        &buf[20..]
    );
    // On a stream socket the kernel takes only the slice's room: the rest
    // stays queued for the next receive.
    let (mut a, b) = pair();
    a.write_all(&data).unwrap();
    let (n, slice) = p
        .recv(&b, vec![0xAA; 64].slice(60..), MsgFlags::empty())
        .wait();
    assert_eq!(n.unwrap(), 4);
    assert_eq!(slice.into_inner()[60..], data[..4]);
    let (n, buf) = p.recv(&b, vec![0u8; 128], MsgFlags::empty()).wait();
    assert_eq!(buf[..n.unwrap()], data[4..]);
    // A slice of a vector's spare capacity: the bytes between its length
    // and the slice are zeroed, so that the length covers what was read.
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(b"keep");
    let (n, slice) = p.read(&file, v.slice(10..20), 0).wait();
    assert_eq!(n.unwrap(), 10);
    let v = slice.into_inner();
    assert_eq!(v.len(), 20);
    assert_eq!(&v[..4], b"keep");
    assert_eq!(v[4..10], [0; 6]);
    assert_eq!(v[10..], data[..10]);
    // A short read into a slice marks only what it read.
    let (n, slice) = p.read(&file, Vec::with_capacity(64).slice(..50), 95).wait();
    assert_eq!(n.unwrap(), 5);
    assert_eq!(slice.into_inner(), data[95..]);
    // A slice of a slice is a slice of the buffer.
    let sliced: Slice<Vec<u8>> = vec![0xAA; 64].slice(8..40).slice(2..4);
    let (n, slice) = p.read(&file, sliced, 5).wait();
    assert_eq!(n.unwrap(), 2);
    assert_eq!((slice.begin(), slice.end()), (10, 12));
    let buf = slice.into_inner();
    assert_eq!(buf[10..12], data[5..7]);
    assert!(buf[..10].iter().chain(&buf[12..]).all(|&b| b == 0xAA));
    // A write sends the slice's initialized bytes.
    let (n, slice) = p
        .write(&b, data.clone().slice(90..), CURRENT_POSITION)
        .wait();
    assert_eq!(n.unwrap(), 10);
    assert_eq!(slice.into_inner(), data, "handed back whole");
    let mut got = [0u8; 10];
    a.read_exact(&mut got).unwrap();
    assert_eq!(got, data[90..]);
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(b"0123");
    let (n, _) = p.write(&b, v.slice(2..30), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 2, "only the initialized bytes of the slice");
    let mut got = [0u8; 2];
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"23");
}

#[test]
fn every_buffer_type_writes_and_reads() {
    let p = proactor();
    let (a, b) = UnixStream::pair().unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    // Writes from each kind of IoBuf.
    let (n, s) = p.write(&a, "str,", CURRENT_POSITION).wait();
    assert_eq!((n.unwrap(), s), (4, "str,"));
    let (n, s) = p.write(&a, &b"slice,"[..], CURRENT_POSITION).wait();
    assert_eq!((n.unwrap(), s), (6, &b"slice,"[..]));
    let (n, s) = p
        .send(&a, String::from("string,"), MsgFlags::empty())
        .wait();
    assert_eq!((n.unwrap(), &s[..]), (7, "string,"));
    let boxed: Box<[u8]> = b"boxed,".to_vec().into_boxed_slice();
    let (n, boxed) = p.write(&a, boxed, CURRENT_POSITION).wait();
    assert_eq!((n.unwrap(), &boxed[..]), (6, &b"boxed,"[..]));
    let (n, _) = p.write(&a, b"vec".to_vec(), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 3);
    // Reads into each kind of IoBufMut: a box is filled from its start.
    let (n, boxed) = p
        .read(&b, Box::<[u8]>::from([0u8; 10]), CURRENT_POSITION)
        .wait();
    assert_eq!(n.unwrap(), 10);
    assert_eq!(&boxed[..], b"str,slice,");
    let (n, boxed) = p.recv(&b, boxed.slice(4..), MsgFlags::empty()).wait();
    assert_eq!(n.unwrap(), 6);
    assert_eq!(&boxed.into_inner()[..], b"str,string");
    let (n, v) = p.read(&b, Vec::with_capacity(64), CURRENT_POSITION).wait();
    assert_eq!((n.unwrap(), &v[..]), (10, &b",boxed,vec"[..]));
    // Vectored, with boxes and static strings.
    let (n, _) = p.writev(&a, vec!["ab", "cde", ""], CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 5);
    let bufs: Vec<Box<[u8]>> = vec![Box::new([0; 2]), Box::new([0; 8])];
    let (n, bufs) = p.readv(&b, bufs, CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 5);
    assert_eq!((&bufs[0][..], &bufs[1][..3]), (&b"ab"[..], &b"cde"[..]));
    // Datagrams.
    let u1 = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let u2 = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let (n, _) = p.send_to(&u1, "datagram", u2.local_addr().unwrap()).wait();
    assert_eq!(n.unwrap(), 8);
    let (res, buf) = p.recv_from(&u2, vec![0xAA; 16].slice(4..8)).wait();
    let (n, from) = res.unwrap();
    assert_eq!((n, from), (4, Some(u1.local_addr().unwrap())));
    let buf = buf.into_inner();
    assert_eq!(&buf[4..8], b"data", "cut to the slice's room");
    assert!(buf[8..].iter().all(|&b| b == 0xAA));
}

#[cfg(feature = "bytes")]
#[test]
fn bytes_and_bytes_mut_write_and_read() {
    use bytes::{Bytes, BytesMut};
    let p = proactor();
    let (a, b) = UnixStream::pair().unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (n, back) = p
        .write(&a, Bytes::from_static(b"static,"), CURRENT_POSITION)
        .wait();
    assert_eq!((n.unwrap(), &back[..]), (7, &b"static,"[..]));
    let (n, _) = p
        .send(&a, Bytes::from(b"shared,".to_vec()), MsgFlags::empty())
        .wait();
    assert_eq!(n.unwrap(), 7);
    let mut m = BytesMut::with_capacity(32);
    m.extend_from_slice(b"mut,bytes");
    let (n, _) = p.write(&a, m.slice(..4), CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 4);
    // Into an empty BytesMut: its length becomes n.
    let (n, m) = p
        .read(&b, BytesMut::with_capacity(7), CURRENT_POSITION)
        .wait();
    assert_eq!((n.unwrap(), &m[..]), (7, &b"static,"[..]));
    // Into one that holds more: filled from its start, length max(len, n).
    let mut m = BytesMut::with_capacity(64);
    m.extend_from_slice(&[b'.'; 10]);
    let (n, m) = p.recv(&b, m.slice(..7), MsgFlags::empty()).wait();
    assert_eq!(n.unwrap(), 7);
    assert_eq!(&m.into_inner()[..], b"shared,...");
    let (n, m) = p
        .read(&b, BytesMut::with_capacity(64), CURRENT_POSITION)
        .wait();
    assert_eq!((n.unwrap(), &m[..]), (4, &b"mut,"[..]));
}

#[test]
fn a_buffer_with_no_room_is_invalid_input_and_comes_back() {
    let p = proactor();
    let (mut a, b) = pair();
    a.write_all(b"waiting").unwrap();
    let no_room = |e: io::Error| {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("no room"), "{e}");
    };
    let (res, buf) = p.read(&b, Vec::new(), CURRENT_POSITION).wait();
    no_room(res.unwrap_err());
    assert_eq!(buf.capacity(), 0);
    let mut v = Vec::with_capacity(8);
    v.extend_from_slice(b"full");
    let (res, buf) = p.recv(&b, v.slice(8..), MsgFlags::empty()).wait();
    no_room(res.unwrap_err());
    assert_eq!(buf.into_inner(), b"full", "handed back unchanged");
    let (res, buf) = p.read(&b, Box::<[u8]>::from([]), CURRENT_POSITION).wait();
    no_room(res.unwrap_err());
    assert!(buf.is_empty());
    let (res, buf) = p.recv_from(&b, b"xy".to_vec().slice(1..1)).wait();
    no_room(res.unwrap_err());
    assert_eq!(buf.into_inner(), b"xy");
    let (res, bufs) = p.readv(&b, vec![Vec::<u8>::new(), Vec::new()], 0).wait();
    no_room(res.unwrap_err());
    assert_eq!(bufs.len(), 2);
    let (res, bufs) = p.readv(&b, Vec::<Vec<u8>>::new(), 0).wait();
    no_room(res.unwrap_err());
    assert!(bufs.is_empty());
    // More room than an op's 32-bit length: refused (only address space is
    // reserved: the bytes are never touched), and a slice of it reads.
    let mut huge: Vec<u8> = Vec::new();
    if huge.try_reserve_exact(u32::MAX as usize + 1).is_ok() {
        let (res, huge) = p.read(&b, huge, CURRENT_POSITION).wait();
        let e = res.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("32-bit"), "{e}");
        assert!(huge.capacity() > u32::MAX as usize);
        let (n, slice) = p.read(&b, huge.slice(..3), CURRENT_POSITION).wait();
        assert_eq!(n.unwrap(), 3);
        assert_eq!(&slice[..], b"wai");
    } else {
        eprintln!("ring-skip: a 4 GiB buffer: no address space for it");
    }
    // Nothing was read by the refused ops.
    let (n, buf) = p.read(&b, vec![0u8; 16], CURRENT_POSITION).wait();
    let n = n.unwrap();
    assert!(b"waiting".ends_with(&buf[..n]), "{:?}", &buf[..n]);
}

#[test]
fn readv_fills_each_buffer_from_its_start() {
    let p = proactor();
    let (mut a, b) = pair();
    a.write_all(b"0123456789ab").unwrap();
    let mut second = Vec::with_capacity(6);
    second.extend_from_slice(b"yy");
    let bufs = vec![vec![b'x'; 4], second, Vec::with_capacity(8), vec![b'z'; 3]];
    let (n, bufs) = p.readv(&b, bufs, CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 12);
    assert_eq!(bufs[0], b"0123");
    assert_eq!(bufs[1], b"456789", "filled from its start, not after yy");
    assert_eq!(bufs[2], b"ab", "its length is what landed in it");
    assert_eq!(bufs[3], b"zzz", "untouched");
    // Slices: each filled from its own start, nothing past its end.
    a.write_all(b"ABCDEFG").unwrap();
    let bufs = vec![vec![b'.'; 8].slice(2..4), vec![b'.'; 8].slice(5..)];
    let (n, bufs) = p.readv(&b, bufs, CURRENT_POSITION).wait();
    assert_eq!(n.unwrap(), 5);
    let bufs: Vec<Vec<u8>> = bufs.into_iter().map(Slice::into_inner).collect();
    assert_eq!(bufs[0], b"..AB....");
    assert_eq!(bufs[1], b".....CDE");
    // And writev sends each buffer's initialized bytes.
    let mut half = Vec::with_capacity(16);
    half.extend_from_slice(b"half");
    let (n, _) = p
        .writev(&b, vec![half, b"-full".to_vec()], CURRENT_POSITION)
        .wait();
    assert_eq!(n.unwrap(), 9);
    let mut got = [0u8; 9];
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"half-full");
}

/// A `Vec` buffer that counts its drops: the op must hand it back, or drop
/// it only once.
struct Counted(Vec<u8>, Arc<std::sync::atomic::AtomicUsize>);

// SAFETY: delegates to the `Vec`, which meets the contract; the counter
// changes nothing about its bytes.
unsafe impl IoBuf for Counted {
    fn stable_ptr(&self) -> *const u8 {
        self.0.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.0.bytes_total()
    }
}

// SAFETY: as above.
unsafe impl IoBufMut for Counted {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.set_init(n) }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_user_buffer_type_reads_and_a_dropped_op_frees_it_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let p = proactor();
    let (mut a, b) = pair();
    let drops = Arc::new(AtomicUsize::new(0));
    a.write_all(b"mine").unwrap();
    let (n, buf) = p
        .read(&b, Counted(vec![0; 8], drops.clone()), CURRENT_POSITION)
        .wait();
    assert_eq!(&buf.0[..n.unwrap()], b"mine");
    drop(buf);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // In flight, then dropped: the Proactor keeps it until the kernel's
    // CQE, then drops it once.
    let mut op = p
        .read(&b, Counted(vec![0; 8], drops.clone()), CURRENT_POSITION)
        .start();
    let polled = Pin::new(&mut op).poll(&mut Context::from_waker(Waker::noop()));
    assert!(polled.is_pending());
    drop(op);
    let deadline = Instant::now() + Duration::from_secs(5);
    while drops.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "never freed: {:?}", p.stats());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        p.stats().orphans_freed,
        1,
        "freed as an orphan, after its CQE"
    );
    drop(p);
    assert_eq!(drops.load(Ordering::SeqCst), 2, "dropped once");
}

#[test]
fn multi_is_a_stream() {
    use futures_core::stream::FusedStream;
    use futures_util::StreamExt;
    if !common::kernel().at_least(6, 0) {
        skip!("multi_is_a_stream", "multishot recv needs Linux 6.0");
    }
    let p = proactor();
    let (mut a, b) = pair();
    let mut stream = p.recv_multi(&b, 4, 64);
    assert!(!stream.is_terminated());
    a.write_all(b"one").unwrap();
    let first = block_on(stream.next()).expect("an item").unwrap();
    assert_eq!(first, b"one");
    a.write_all(b"two").unwrap();
    drop(a);
    // Through the combinators: the rest, until the end of stream.
    let rest: Vec<Vec<u8>> = block_on((&mut stream).map(|item| item.unwrap()).collect());
    assert_eq!(rest.concat(), b"two");
    assert!(stream.is_terminated());
    assert!(block_on(stream.next()).is_none(), "stays ended");
}
