//! The running kernel agrees: entries built by ring-ops are submitted to a
//! real ring (set up and driven by the `io-uring` crate, a dev-dependency)
//! and complete with the results the ops promise. Each test prints why and
//! returns early when io_uring or the op is unavailable here.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;

use io_uring::IoUring;
use ring_io_ops::*;
use ring_io_sys::{__kernel_timespec, io_uring_sqe};

/// Reports a skipped test the way `cargo xtask test-kernel` counts it:
/// `ring-skip: <test>: <reason>` on stderr (libtest names the test's thread
/// after the test).
fn skip(reason: std::fmt::Arguments<'_>) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("unknown-test");
    let test = test.rsplit("::").next().unwrap_or(test);
    eprintln!("ring-skip: {test}: {reason}");
}

/// A ring, or `None` (with the reason printed) where io_uring is unavailable.
fn ring() -> Option<IoUring> {
    match IoUring::new(16) {
        Ok(ring) => Some(ring),
        Err(err) => {
            skip(format_args!("io_uring_setup failed here: {err}"));
            None
        }
    }
}

/// Whether the kernel supports `op`, printing the reason when it does not.
fn supported(ring: &IoUring, info: OpInfo) -> bool {
    let mut probe = io_uring::Probe::new();
    if ring.submitter().register_probe(&mut probe).is_err() {
        skip(format_args!(
            "IORING_REGISTER_PROBE failed (for {})",
            info.name
        ));
        return false;
    }
    let ok = probe.is_supported(info.code);
    if !ok {
        skip(format_args!("{} needs Linux {}", info.name, info.since));
    }
    ok
}

/// Submits `entries` and waits for `want` completions: user_data -> (res, flags).
fn run(ring: &mut IoUring, entries: &[Entry], want: usize) -> HashMap<u64, (i32, u32)> {
    for entry in entries {
        let sqe: io_uring_sqe = entry.into_sqe();
        // SAFETY: io_uring::squeue::Entry is #[repr(C)] over the same 64-byte
        // io_uring_sqe, every byte initialised by ring-ops.
        let theirs = unsafe { core::mem::transmute::<io_uring_sqe, io_uring::squeue::Entry>(sqe) };
        // SAFETY: every buffer and pointer the entries name outlives this
        // function's wait for their completions (the callers keep them alive).
        unsafe { ring.submission().push(&theirs).expect("queue has room") };
    }
    ring.submit_and_wait(want).expect("io_uring_enter");
    let mut out = HashMap::new();
    while out.len() < want {
        for cqe in ring.completion() {
            out.insert(cqe.user_data(), (cqe.result(), cqe.flags()));
        }
        if out.len() < want {
            ring.submit_and_wait(want - out.len())
                .expect("io_uring_enter");
        }
    }
    out
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid 2-element array for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

fn close(fd: i32) {
    // SAFETY: `fd` was opened by this test and is closed once.
    unsafe { libc::close(fd) };
}

#[test]
fn nop_write_read_through_a_pipe() {
    let Some(mut ring) = ring() else { return };
    let (r, w) = pipe();
    let msg = *b"hello";
    let mut buf = [0u8; 5];
    let out = run(
        &mut ring,
        &[
            Nop::new().build().user_data(1),
            Write::new(Fd(w), msg.as_ptr(), 5)
                .offset(u64::MAX)
                .build()
                .user_data(2)
                .link(),
            Read::new(Fd(r), buf.as_mut_ptr(), 5)
                .offset(u64::MAX)
                .build()
                .user_data(3),
        ],
        3,
    );
    assert_eq!(out[&1].0, 0);
    assert_eq!(out[&2].0, 5);
    assert_eq!(out[&3].0, 5);
    assert_eq!(&buf, b"hello");
    close(r);
    close(w);
}

#[test]
fn nop_injects_its_result() {
    let Some(mut ring) = ring() else { return };
    if running_kernel() < KernelVersion::new(6, 10, 0) {
        skip(format_args!("IORING_NOP_INJECT_RESULT needs Linux 6.10"));
        return;
    }
    let out = run(
        &mut ring,
        &[Nop::new().inject_result(-42).build().user_data(7)],
        1,
    );
    assert_eq!(out[&7].0, -42);
}

#[test]
fn timeouts_expire_and_link_timeouts_cancel() {
    let Some(mut ring) = ring() else { return };
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    let (r, w) = pipe();
    let mut buf = [0u8; 8];
    // Clock choice needs Linux 5.15; older kernels run the monotonic default.
    let clock = if running_kernel() >= KernelVersion::new(5, 15, 0) {
        Clock::Boottime
    } else {
        println!("note: Linux < 5.15, the timeout runs on the default clock");
        Clock::Monotonic
    };
    let out = run(
        &mut ring,
        &[
            Timeout::new(&ts).clock(clock).build().user_data(1),
            // A read of an empty pipe, cut short by its linked timeout.
            Read::new(Fd(r), buf.as_mut_ptr(), 8)
                .offset(u64::MAX)
                .build()
                .user_data(2)
                .link(),
            LinkTimeout::new(&ts).build().user_data(3),
        ],
        3,
    );
    assert_eq!(out[&1].0, -libc::ETIME);
    assert_eq!(out[&2].0, -libc::ECANCELED);
    assert!(
        out[&3].0 == -libc::ETIME || out[&3].0 == -libc::EALREADY,
        "{:?}",
        out[&3]
    );
    close(r);
    close(w);
}

#[test]
fn multishot_poll_is_cancelled_by_user_data() {
    let Some(mut ring) = ring() else { return };
    if running_kernel() < KernelVersion::new(5, 13, 0) {
        skip(format_args!("multishot poll needs Linux 5.13"));
        return;
    }
    let (r, w) = pipe();
    let out = run(
        &mut ring,
        &[PollAdd::new(Fd(r), libc::POLLIN as u32)
            .multishot()
            .build()
            .user_data(1)],
        0,
    );
    assert!(out.is_empty());
    let out = run(&mut ring, &[AsyncCancel::new(1).build().user_data(2)], 2);
    assert_eq!(out[&2].0, 0);
    assert_eq!(out[&1].0, -libc::ECANCELED);
    close(r);
    close(w);
}

#[test]
fn openat_statx_close_and_socket() {
    let Some(mut ring) = ring() else { return };
    let path = CString::new("/dev/null").unwrap();
    let out = run(
        &mut ring,
        &[OpenAt::new(Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(libc::O_RDONLY)
            .build()
            .user_data(1)],
        1,
    );
    let fd = out[&1].0;
    assert!(fd >= 0, "openat: {fd}");
    let mut statx = [0u64; 32]; // 256 bytes, the size of struct statx
    let out = run(
        &mut ring,
        &[
            Statx::new(Fd(libc::AT_FDCWD), path.as_ptr(), statx.as_mut_ptr().cast())
                .mask(libc::STATX_TYPE)
                .build()
                .user_data(2),
            Close::new(Fd(fd)).build().user_data(3),
        ],
        2,
    );
    assert_eq!(out[&2].0, 0);
    assert_eq!(out[&3].0, 0);

    if !supported(&ring, Socket::INFO) {
        return;
    }
    let out = run(
        &mut ring,
        &[Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .build()
            .user_data(4)],
        1,
    );
    let sock = out[&4].0;
    assert!(sock >= 0, "socket: {sock}");
    close(sock);
}

#[test]
fn msg_ring_posts_to_a_ring() {
    let Some(mut ring) = ring() else { return };
    if !supported(&ring, MsgRingData::INFO) {
        return;
    }
    let fd = ring.as_raw_fd();
    let out = run(
        &mut ring,
        &[MsgRingData::new(Fd(fd), 1234, 99).build().user_data(1)],
        2,
    );
    assert_eq!(out[&1].0, 0);
    assert_eq!(out[&99].0, 1234);
}

#[test]
fn futex_wake_without_waiters_wakes_none() {
    let Some(mut ring) = ring() else { return };
    if !supported(&ring, FutexWake::INFO) {
        return;
    }
    // FUTEX2_SIZE_U32 | FUTEX2_PRIVATE from linux/futex.h.
    const FUTEX2_SIZE_U32: u32 = 0x02;
    const FUTEX2_PRIVATE: u32 = 128;
    let word = 0u32;
    let op = FutexWake::new(
        &word,
        1,
        u64::from(u32::MAX),
        FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
    );
    let out = run(&mut ring, &[op.build().user_data(1)], 1);
    assert_eq!(out[&1].0, 0);
}

#[test]
fn pipe_op_creates_two_fds() {
    let Some(mut ring) = ring() else { return };
    if !supported(&ring, Pipe::INFO) {
        return;
    }
    let mut fds = [-1i32; 2];
    let out = run(
        &mut ring,
        &[Pipe::new(fds.as_mut_ptr()).build().user_data(1)],
        1,
    );
    assert_eq!(out[&1].0, 0);
    assert!(fds[0] >= 0 && fds[1] >= 0 && fds[0] != fds[1], "{fds:?}");
    close(fds[0]);
    close(fds[1]);
}

/// The running kernel's version, from uname(2).
fn running_kernel() -> KernelVersion {
    // SAFETY: utsname is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `uts` is a valid, exclusively borrowed utsname.
    assert_eq!(unsafe { libc::uname(&mut uts) }, 0);
    let release: String = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    KernelVersion::new(major, minor, 0)
}

#[test]
fn direct_descriptors_and_fixed_files() {
    let Some(mut ring) = ring() else { return };
    if !supported(&ring, FixedFdInstall::INFO) {
        return;
    }
    ring.submitter()
        .register_files_sparse(4)
        .expect("sparse file table");
    let path = CString::new("/dev/null").unwrap();
    let out = run(
        &mut ring,
        &[
            // Kernel-chosen slot, returned in res.
            Socket::new(libc::AF_INET, libc::SOCK_DGRAM, 0)
                .direct(DirectSlot::ALLOC)
                .build()
                .user_data(1),
            // Slot 3, chosen here: res 0.
            OpenAt::new(Fd(libc::AT_FDCWD), path.as_ptr())
                .direct(DirectSlot::at(3).unwrap())
                .build()
                .user_data(2),
        ],
        2,
    );
    let slot = out[&1].0;
    assert!((0..3).contains(&slot), "allocated slot {slot}");
    assert_eq!(out[&2].0, 0);
    let mut buf = [1u8; 4];
    let out = run(
        &mut ring,
        &[
            // Reading /dev/null through fixed file 3: end of file.
            Read::new(Fixed(3), buf.as_mut_ptr(), 4)
                .build()
                .user_data(3),
            FixedFdInstall::new(Fixed(3)).build().user_data(4),
            Close::new(Fixed(slot as u32)).build().user_data(5),
        ],
        3,
    );
    assert_eq!(out[&3].0, 0);
    let installed = out[&4].0;
    assert!(installed >= 0, "installed fd {installed}");
    close(installed);
    assert_eq!(out[&5].0, 0);
}

#[test]
fn provided_buffers_are_selected_by_group() {
    let Some(mut ring) = ring() else { return };
    let (r, w) = pipe();
    let mut pool = [0u8; 4 * 16];
    let msg = *b"provided";
    let out = run(
        &mut ring,
        &[
            ProvideBuffers::new(pool.as_mut_ptr(), 16, 4, 7, 100)
                .build()
                .user_data(1),
            Write::new(Fd(w), msg.as_ptr(), 8)
                .offset(u64::MAX)
                .build()
                .user_data(2),
        ],
        2,
    );
    assert_eq!(out[&1].0, 0);
    assert_eq!(out[&2].0, 8);
    let out = run(
        &mut ring,
        &[Read::new(Fd(r), core::ptr::null_mut(), 16)
            .offset(u64::MAX)
            .buffer_select(7)
            .build()
            .user_data(3)],
        1,
    );
    let (res, flags) = out[&3];
    assert_eq!(res, 8);
    assert_ne!(flags & ring_io_sys::IORING_CQE_F_BUFFER, 0);
    let bid = (flags >> ring_io_sys::IORING_CQE_BUFFER_SHIFT) as usize;
    assert!((100..104).contains(&bid), "buffer id {bid}");
    let start = (bid - 100) * 16;
    assert_eq!(&pool[start..start + 8], b"provided");
    let out = run(
        &mut ring,
        &[RemoveBuffers::new(4, 7).build().user_data(4)],
        1,
    );
    assert_eq!(out[&4].0, 3, "the three unused buffers are removed");
    close(r);
    close(w);
}
