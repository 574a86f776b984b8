//! What the kernel answers when an idle read is cancelled, on the raw ring:
//! the behaviour the Proactor's cancellation retry relies on (issue 13,
//! defect 9).
//!
//! A read of an empty pipe, socket or FIFO waits in one of three places:
//! - `plain`: the kernel armed a poll; a cancellation finds it (0).
//! - `async` (`IOSQE_ASYNC`): an io-wq worker takes the read and blocks in
//!   it (5.10: a cancellation answers `EALREADY` and interrupts it,
//!   `EINTR`), or tries it and arms a poll (6.1 and later): a cancellation
//!   that comes while the worker holds it answers `EALREADY` or `ENOENT`,
//!   and the read may stay armed until a cancellation is sent again.
//! - `linked` after an fsync: the fsync runs in io-wq, and the worker runs
//!   the read after it, blocking, without a poll. Until the read starts a
//!   cancellation finds nothing (`ENOENT`: a link member is not cancellable
//!   by `user_data` before it is issued); once it blocks, the cancellation
//!   answers `EALREADY` and interrupts it (`EINTR`). The read stays armed
//!   after every `ENOENT`, on every kernel.
//!
//! In every case a cancellation sent again until the read's own CQE comes
//! ends it: that is what this test asserts, with the counts of answers it
//! saw (`ring-note` lines). Measured (40 rounds each, first answers):
//! linked pipe reads got 9-33 `EALREADY` and 7-31 `ENOENT` on 5.10, 6.1 and
//! 6.18; `async` ones on 6.1 0-8 `ENOENT` and 0-4 `EALREADY`, on 5.10
//! 24-31 `EALREADY`.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ring_io_driver::Ring;
use ring_io_ops::{AsyncCancel, Fd, Fsync, Read};

/// Rounds per (file type, mode).
const ROUNDS: u32 = 40;

/// A FIFO opened read-write (so opening it does not wait for a writer),
/// and a second, write-only descriptor of it.
fn fifo() -> (OwnedFd, OwnedFd) {
    let path = std::env::temp_dir().join(format!("ring-cancel-race-{}", std::process::id()));
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: plain libc calls on a NUL-terminated path; the fds they return
    // are checked and owned here.
    unsafe {
        libc::unlink(c.as_ptr());
        assert_eq!(libc::mkfifo(c.as_ptr(), 0o600), 0, "mkfifo");
        let r = libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        assert!(r >= 0, "open the FIFO");
        let w = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        assert!(w >= 0, "open the FIFO");
        libc::unlink(c.as_ptr());
        (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w))
    }
}

/// What one (file type, mode) saw.
#[derive(Default)]
struct Counts {
    /// The first cancellation's result, by value.
    first: BTreeMap<i32, u32>,
    /// The read's result, by value.
    read: BTreeMap<i32, u32>,
    /// Cancellations sent again because the read's CQE had not come.
    retries: u32,
    /// The longest time from the first cancellation to the read's CQE.
    slowest: Duration,
}

/// Records the result of every CQE that is ready, by `user_data`.
fn take(ring: &mut Ring, seen: &mut BTreeMap<u64, i32>) {
    for cqe in ring.cq() {
        seen.insert(cqe.user_data(), cqe.res());
    }
}

const READ: u64 = 1;
const CANCEL: u64 = 2;
const FSYNC: u64 = 3;

fn round(kind: &str, mode: &str, delay: u32, synced: &std::fs::File, c: &mut Counts) {
    let (r, w) = match kind {
        "pipe" => common::pipe(),
        "socket" => {
            let (a, b) = UnixStream::pair().unwrap();
            (a.into(), b.into())
        }
        _ => fifo(),
    };
    let mut ring = Ring::new(8).unwrap();
    let mut buf = vec![0u8; 16];
    let mut read = Read::new(Fd(r.as_raw_fd()), buf.as_mut_ptr(), 16)
        .offset(u64::MAX)
        .build()
        .user_data(READ);
    if mode == "async" {
        read = read.force_async();
    }
    if mode == "linked" {
        let fsync = Fsync::new(Fd(synced.as_raw_fd())).build();
        // SAFETY: an fsync carries no pointers.
        unsafe { ring.sq().push(fsync.user_data(FSYNC).link()) }.unwrap();
    }
    // SAFETY: `buf` lives until the read's CQE has been reaped: this
    // function returns only after it (or panics, and leaks `buf`).
    unsafe { ring.sq().push(read) }.unwrap();
    ring.submitter().submit().unwrap();
    match delay {
        0 => {}
        1 => std::thread::yield_now(),
        2 => std::thread::sleep(Duration::from_micros(50)),
        _ => std::thread::sleep(Duration::from_millis(1)),
    }
    let start = Instant::now();
    let mut seen = BTreeMap::new();
    let mut attempt = 0;
    while !seen.contains_key(&READ) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{kind} {mode}: the read is still armed after {attempt} cancellations"
        );
        seen.remove(&CANCEL);
        // SAFETY: a cancellation carries no pointers.
        unsafe {
            ring.sq()
                .push(AsyncCancel::new(READ).build().user_data(CANCEL))
        }
        .unwrap();
        ring.submitter().submit_and_wait(1).unwrap();
        while !seen.contains_key(&CANCEL) {
            take(&mut ring, &mut seen);
            if !seen.contains_key(&CANCEL) {
                ring.submitter().submit_and_wait(1).unwrap();
            }
        }
        if attempt == 0 {
            *c.first.entry(seen[&CANCEL]).or_default() += 1;
        } else {
            c.retries += 1;
        }
        attempt += 1;
        // The read's CQE, if the cancellation ended it, comes soon after.
        let deadline = Instant::now() + Duration::from_millis(5);
        while !seen.contains_key(&READ) && Instant::now() < deadline {
            let _ = ring
                .submitter()
                .submit_and_wait_timeout(1, Duration::from_millis(1));
            take(&mut ring, &mut seen);
        }
    }
    c.slowest = c.slowest.max(start.elapsed());
    let res = seen[&READ];
    assert!(
        res == -libc::ECANCELED || res == -libc::EINTR,
        "{kind} {mode}: a cancelled read of an empty file ended with {res}"
    );
    *c.read.entry(res).or_default() += 1;
    if mode == "linked" {
        // The fsync's CQE too, before `synced` can be dropped.
        while !seen.contains_key(&FSYNC) {
            ring.submitter().submit_and_wait(1).unwrap();
            take(&mut ring, &mut seen);
        }
    }
    drop(w);
}

#[test]
fn a_read_a_cancellation_missed_ends_when_the_cancellation_is_sent_again() {
    let path = std::env::temp_dir().join(format!("ring-cancel-race-{}.f", std::process::id()));
    let synced = std::fs::File::create(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for kind in ["pipe", "socket", "fifo"] {
        for mode in ["plain", "async", "linked"] {
            let mut c = Counts::default();
            for i in 0..ROUNDS {
                round(kind, mode, i % 4, &synced, &mut c);
            }
            eprintln!(
                "ring-note: cancel of an idle {kind} read ({mode}), {ROUNDS} rounds: first \
                 answers {:?}, reads ended {:?}, {} cancellations sent again, slowest {:?}",
                c.first, c.read, c.retries, c.slowest
            );
        }
    }
}
