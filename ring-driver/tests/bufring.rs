//! `BufRing` against the real kernel: only buffers the kernel handed out can
//! be taken, each once; bundles return every buffer; incremental
//! completions are refused without harm. Each test skips, with its reason,
//! where the running kernel lacks what it needs.

mod common;

use std::io::{self, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ring_io_core::BufRingError;
use ring_io_driver::{BufRing, Cqe, Ring};
use ring_io_ops::Fd;
use ring_io_sys::{CqeFlags, IORING_CQE_BUFFER_SHIFT, io_uring_cqe};

/// A ring of 8 entries and a buffer ring of `entries` buffers of `len`
/// bytes as group 5, or the reason they cannot be had.
fn setup(entries: u32, len: u32) -> Result<(Ring, BufRing), String> {
    let ring = Ring::new(8).map_err(|e| e.to_string())?;
    let fd = ring
        .fd()
        .ok_or("a ring without an fd (REGISTERED_FD_ONLY)")?;
    // SAFETY: every test reaps the completions of the requests selecting
    // from group 5 before dropping the buffer ring.
    match unsafe { BufRing::new(&fd, 5, entries, len) } {
        Ok(bufs) => Ok((ring, bufs)),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Err(e.to_string()),
        Err(e) => panic!("{e}"),
    }
}

/// A completion naming buffer `bid`, as nobody but a forger would build it.
fn forged(bid: u16, res: i32, more: bool) -> Cqe {
    let mut flags = CqeFlags::BUFFER.bits() | (u32::from(bid) << IORING_CQE_BUFFER_SHIFT);
    if more {
        flags |= CqeFlags::BUF_MORE.bits();
    }
    Cqe::from(io_uring_cqe {
        user_data: 1,
        res,
        flags,
        ..Default::default()
    })
}

/// The ring-core error inside an `io::Error` from `take`.
fn refusal(e: &io::Error) -> BufRingError {
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    *e.get_ref()
        .and_then(|e| e.downcast_ref::<BufRingError>())
        .unwrap_or_else(|| panic!("not a BufRingError: {e}"))
}

/// Receives once from `b` with a buffer from `bufs` (a bundle if asked)
/// and returns the completion.
fn recv(ring: &mut Ring, bufs: &BufRing, b: &UnixStream, bundle: bool) -> Cqe {
    let recv = ring_io_ops::Recv::select(Fd(b.as_raw_fd()), bufs.bgid(), 0);
    let recv = if bundle { recv.bundle() } else { recv };
    // SAFETY: the buffers come from group 5, which outlives the request
    // (its completion is reaped here).
    unsafe { ring.sq().push(recv.build().user_data(7)) }.unwrap();
    ring.submitter().submit_and_wait(1).unwrap();
    let cqe = ring.cq().next().expect("the receive completed");
    assert_eq!(cqe.user_data(), 7);
    cqe
}

/// Linux 6.8 shows a buffer ring's head (`IORING_REGISTER_PBUF_STATUS`),
/// which lets `take` refuse a buffer the kernel has not consumed.
fn shows_head() -> bool {
    common::kernel().at_least(6, 8)
}

#[test]
fn a_hand_built_completion_is_refused() {
    let (_ring, mut bufs) = match setup(4, 16) {
        Ok(r) => r,
        Err(e) => skip!("a_hand_built_completion_is_refused", "{e}"),
    };
    // Out of range: refused on every kernel.
    // SAFETY: deliberately not the kernel's completion; `take` refuses it
    // before anything is read, which is what this test checks.
    let e = unsafe { bufs.take(&forged(9, 4, false)) }.unwrap_err();
    assert_eq!(refusal(&e), BufRingError::BadId(9));
    if !shows_head() {
        skip!(
            "a_hand_built_completion_is_refused",
            "Linux {} cannot show a buffer ring's head (IORING_REGISTER_PBUF_STATUS needs 6.8)",
            common::kernel()
        );
    }
    // Every buffer is published and none consumed: a completion naming
    // one is not the kernel's, and the kernel may still write that buffer.
    for bid in 0..4 {
        // SAFETY: as above.
        let e = unsafe { bufs.take(&forged(bid, 4, false)) }.unwrap_err();
        assert_eq!(refusal(&e), BufRingError::NotConsumed(bid));
    }
    assert_eq!(bufs.available(), 4, "nothing changed");
}

#[test]
fn a_completion_is_taken_once() {
    let (mut ring, mut bufs) = match setup(4, 16) {
        Ok(r) => r,
        Err(e) => skip!("a_completion_is_taken_once", "{e}"),
    };
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"first").unwrap();
    let cqe = recv(&mut ring, &bufs, &b, false);
    // SAFETY: the kernel posted `cqe` for the receive; this is its first take.
    let data = unsafe { bufs.take(&cqe) }.unwrap().expect("a buffer");
    assert_eq!(data.to_vec(), b"first");
    let bid = data.bid();
    // While the guard lives the buffer is the application's (and a second
    // take cannot even be written: the guard borrows the ring).
    drop(data);
    assert_eq!(bufs.available(), 4);
    if !shows_head() {
        skip!(
            "a_completion_is_taken_once",
            "Linux {} cannot show a buffer ring's head (IORING_REGISTER_PBUF_STATUS needs 6.8)",
            common::kernel()
        );
    }
    // The buffer went back to the ring and the kernel has not picked it
    // again: the same completion again would lend it twice.
    // SAFETY: breaks the "at most once" half of the contract on purpose;
    // `take` refuses it before anything is read.
    let e = unsafe { bufs.take(&cqe) }.unwrap_err();
    assert_eq!(refusal(&e), BufRingError::NotConsumed(bid));
    assert_eq!(bufs.available(), 4, "nothing changed");
    // The ring still works: the next message lands in the next buffer.
    a.write_all(b"second").unwrap();
    let cqe = recv(&mut ring, &bufs, &b, false);
    // SAFETY: the kernel posted `cqe` for the receive; first take.
    let data = unsafe { bufs.take(&cqe) }.unwrap().expect("a buffer");
    assert_eq!(data.to_vec(), b"second");
}

/// Waits (at most 5 s: a missing completion fails the test instead of
/// hanging it) for the next completion.
fn next_cqe(ring: &mut Ring) -> Cqe {
    if let Some(cqe) = ring.cq().next() {
        return cqe;
    }
    ring.submitter()
        .submit_and_wait_timeout(1, Duration::from_secs(5))
        .expect("a completion within 5 s");
    ring.cq().next().expect("a completion")
}

/// Arms a multishot bundle receive on `b` (user_data 8).
fn arm_bundles(ring: &mut Ring, bufs: &BufRing, b: &TcpStream) {
    let recv = ring_io_ops::Recv::select(Fd(b.as_raw_fd()), bufs.bgid(), 0)
        .multishot()
        .bundle();
    // SAFETY: the buffers come from group 5; the test reaps the request's
    // last completion before dropping the buffer ring.
    unsafe { ring.sq().push(recv.build().user_data(8)) }.unwrap();
    ring.submitter().submit().unwrap();
}

#[test]
fn a_bundle_receive_returns_all_its_bytes() {
    if !common::kernel().at_least(6, 10) {
        skip!(
            "a_bundle_receive_returns_all_its_bytes",
            "bundle receives (IORING_RECVSEND_BUNDLE) need Linux 6.10, this is {}",
            common::kernel()
        );
    }
    let (mut ring, mut bufs) = match setup(8, 16) {
        Ok(r) => r,
        Err(e) => skip!("a_bundle_receive_returns_all_its_bytes", "{e}"),
    };
    // TCP: the kernel learns how much is queued (msg_inq) and maps that
    // many buffers into one bundle once it knows.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    arm_bundles(&mut ring, &bufs, &b);
    // Several rounds, so buffers come back in another ring order than their
    // ids and a bundle walks the ring, not the ids.
    let mut next = 0u8;
    let mut most = 0;
    for (round, n) in [64usize, 100, 37, 128, 16, 90, 128].into_iter().enumerate() {
        let msg: Vec<u8> = (0..n)
            .map(|_| {
                next = next.wrapping_add(1);
                next
            })
            .collect();
        a.write_all(&msg).unwrap();
        let mut got = Vec::new();
        while got.len() < n {
            let cqe = next_cqe(&mut ring);
            assert_eq!(cqe.user_data(), 8, "{cqe:?}");
            if cqe.res() == -libc::ENOBUFS && !cqe.more() {
                // Out of buffers for a moment: the request ended; arm it
                // again.
                arm_bundles(&mut ring, &bufs, &b);
                continue;
            }
            let len = usize::try_from(cqe.res()).unwrap_or_else(|_| panic!("{cqe:?}"));
            // SAFETY: the kernel posted `cqe` for the receive; first take.
            let data = unsafe { bufs.take(&cqe) }.unwrap().expect("a buffer");
            assert_eq!(
                usize::from(data.buffers()),
                len.div_ceil(16),
                "round {round}"
            );
            assert_eq!(data.len(), len);
            let lens: Vec<usize> = data.chunks().map(<[u8]>::len).collect();
            assert!(lens.iter().rev().skip(1).all(|&l| l == 16), "{lens:?}");
            most = most.max(data.buffers());
            got.extend_from_slice(&data.to_vec());
            drop(data);
            assert_eq!(bufs.available(), 8, "round {round}: every buffer is back");
            if !cqe.more() {
                // The kernel may end a multishot request with data (e.g. its
                // last buffer): arm it again.
                arm_bundles(&mut ring, &bufs, &b);
            }
        }
        assert_eq!(got, msg, "round {round}: every byte, in order");
    }
    assert!(
        most >= 2,
        "a bundle spanned several buffers (at most {most})"
    );
    // End of stream ends the request; reap its last completion before the
    // buffer ring is dropped.
    drop(a);
    loop {
        let cqe = next_cqe(&mut ring);
        // SAFETY: the kernel posted `cqe` for the receive; first take.
        assert!(unsafe { bufs.take(&cqe) }.unwrap().is_none(), "{cqe:?}");
        if !cqe.more() {
            break;
        }
    }
}

#[test]
fn an_incremental_completion_is_refused_cleanly() {
    let (mut ring, mut bufs) = match setup(4, 16) {
        Ok(r) => r,
        Err(e) => skip!("an_incremental_completion_is_refused_cleanly", "{e}"),
    };
    // This ring does not use IOU_PBUF_RING_INC, so the kernel never sets
    // IORING_CQE_F_BUF_MORE on its completions: one that does is refused,
    // nothing changes (it used to panic when the guard was dropped).
    for bid in 0..4 {
        // SAFETY: deliberately not the kernel's completion; `take` refuses
        // it before anything is read.
        let e = unsafe { bufs.take(&forged(bid, 4, true)) }.unwrap_err();
        assert_eq!(refusal(&e), BufRingError::Incremental(bid));
    }
    assert_eq!(bufs.available(), 4);
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"still works").unwrap();
    let cqe = recv(&mut ring, &bufs, &b, false);
    // SAFETY: the kernel posted `cqe` for the receive; first take.
    let data = unsafe { bufs.take(&cqe) }.unwrap().expect("a buffer");
    assert_eq!(data.to_vec(), b"still works");
}

/// `Registrar::buf_ring` on a ring that has no fd: the group is registered
/// and unregistered through the ring's index in this thread's table.
#[test]
fn a_ring_without_an_fd_gets_a_buffer_ring_through_its_index() {
    let test = "a_ring_without_an_fd_gets_a_buffer_ring_through_its_index";
    let Ok(mut ring) = ring_io_driver::Builder::new(8).registered_fd_only().build() else {
        skip!(test, "no IORING_SETUP_REGISTERED_FD_ONLY (Linux 6.5)");
    };
    assert!(ring.fd().is_none());
    // SAFETY: the only request selecting from group 9 is reaped before
    // `bufs` drops, and `bufs` drops before `ring`, on this thread.
    let mut bufs = match unsafe { ring.registrar().buf_ring(9, 4, 64) } {
        Ok(bufs) => bufs,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => skip!(test, "{e}"),
        Err(e) => panic!("{e}"),
    };
    // The group is the ring's: a second registration of it is refused.
    // SAFETY: as above (refused, so nothing to drop).
    // (EEXIST: what the Proactors' group-id allocation skips on.)
    let again = unsafe { ring.registrar().buf_ring(9, 4, 64) };
    assert_eq!(again.unwrap_err().raw_os_error(), Some(libc::EEXIST));
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"through the index").unwrap();
    let cqe = recv(&mut ring, &bufs, &b, false);
    // SAFETY: the kernel posted `cqe` for the receive from group 9, taken
    // once.
    let data = unsafe { bufs.take(&cqe) }.unwrap().expect("a buffer");
    assert_eq!(data.to_vec(), b"through the index");
    drop(data);
    drop(bufs);
    // Dropping unregistered it: the group can be registered again.
    // SAFETY: no request selects from group 9; dropped before the ring.
    let renewed = unsafe { ring.registrar().buf_ring(9, 4, 64) }.expect("group 9 is free again");
    drop(renewed);
    // On another thread the ring has no name: refused there, not sent.
    let ring = std::thread::spawn(move || {
        // SAFETY: refused before anything is registered.
        let e = unsafe { ring.registrar().buf_ring(10, 4, 64) }.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        ring
    })
    .join()
    .unwrap();
    drop(ring);
}

/// Pages of `len` bytes at `base` that are in memory (`mincore`).
fn resident_pages(base: *const u8, len: usize) -> usize {
    let page = 4096;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `base` is page aligned and `base..base + len` is one mapping
    // (a buffer ring's buffers); `vec` has a byte per page of it.
    let rc = unsafe { libc::mincore(base as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

#[test]
fn a_large_group_commits_memory_only_where_data_lands() {
    // 1024 buffers of 64 KiB: 64 MiB of address space.
    const ENTRIES: u32 = 1024;
    const LEN: u32 = 64 * 1024;
    let (mut ring, mut bufs) = match setup(ENTRIES, LEN) {
        Ok(r) => r,
        Err(e) => skip!("a_large_group_commits_memory_only_where_data_lands", "{e}"),
    };
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"landed").unwrap();
    let cqe = recv(&mut ring, &bufs, &b, false);
    // SAFETY: the kernel posted `cqe` for the receive; this is its first take.
    let data = unsafe { bufs.take(&cqe) }.unwrap().expect("a buffer");
    assert_eq!(data.to_vec(), b"landed");
    // The buffers are one mapping, buffer `bid` at `bid * LEN` in it.
    let at = data.as_slice().expect("one buffer").as_ptr();
    let base = at.wrapping_sub(usize::from(data.bid()) * LEN as usize);
    let all = (ENTRIES * LEN) as usize;
    let resident = resident_pages(base, all);
    drop(data);
    // One page was written (a transparent huge page may bring 512 in).
    assert!(
        resident <= 1024,
        "{resident} of {} pages in memory after one 6-byte receive",
        all / 4096
    );
}
