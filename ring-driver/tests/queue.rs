//! The ring mechanics liburing's own tests cover, on the running kernel:
//! NOPs under every setup flag, a full SQ, a full CQ with and without
//! NODROP, links and hardlinks with a failing member, drain, timeouts,
//! poll, eventfd, fixed files and buffers, SQE128/CQE32, SQPOLL, IOPOLL,
//! single issuer and ops in flight at close.

mod common;

use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use ring_io_driver::{Builder, Cqe, Kernel as _, Ring};
use ring_io_ops::{
    Fd, Fixed, LinkTimeout, Nop, PollAdd, PollRemove, Read, ReadFixed, Timeout, TimeoutRemove,
    Write, WriteFixed,
};
use ring_io_sys::{__kernel_timespec, Errno};

/// A pipe as two `File`s, `(read end, write end)` (`std::io::pipe` needs
/// Rust 1.87, above this workspace's rust-version).
fn pipe_files() -> (std::fs::File, std::fs::File) {
    let (r, w) = common::pipe();
    (r.into(), w.into())
}

fn nop(user_data: u64) -> ring_io_ops::Entry {
    Nop::new().build().user_data(user_data)
}

/// Pushes NOPs with these user_data values (they carry no pointers). A full
/// SQ is waited out with `sq_wait`: under SQPOLL the kernel thread can post
/// the CQEs of a batch before it stores the SQ head that frees its slots.
fn push_nops(ring: &mut Ring, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        let mut entry = nop(id);
        loop {
            // SAFETY: a NOP carries no pointers.
            match unsafe { ring.sq().push(entry) } {
                Ok(()) => break,
                Err(full) => {
                    entry = full.0;
                    ring.submitter().sq_wait().expect("room in the SQ");
                }
            }
        }
    }
}

fn reap_all(ring: &mut Ring) -> Vec<Cqe> {
    ring.cq().collect()
}

fn ts(ms: u64) -> __kernel_timespec {
    __kernel_timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    }
}

#[test]
fn nop_under_every_setup_flag_combination_that_the_kernel_has() {
    let kernel = common::kernel();
    let options: Vec<(&str, Builder)> = vec![
        ("defaults", Builder::new(8)),
        ("no_defaults", Builder::new(8).no_defaults()),
        ("sqpoll", Builder::new(8).sqpoll(50)),
        ("cq_entries", Builder::new(8).cq_entries(64)),
        ("submit_all", Builder::new(8).submit_all()),
        (
            "coop_taskrun",
            Builder::new(8).coop_taskrun().taskrun_flag(),
        ),
        ("sqe128", Builder::new(8).sqe128()),
        ("cqe32", Builder::new(8).cqe32()),
        ("single_issuer", Builder::new(8).single_issuer()),
        ("defer_taskrun", Builder::new(8).defer_taskrun()),
        ("no_mmap", Builder::new(8).no_mmap()),
        ("registered_fd_only", Builder::new(8).registered_fd_only()),
        ("no_sqarray", Builder::new(8).no_sqarray()),
        ("cqe_mixed", Builder::new(8).cqe_mixed()),
    ];
    for (name, builder) in options {
        let mut ring = match builder.build() {
            Ok(ring) => ring,
            Err(ring_io_driver::SetupError::Unsupported(u)) => {
                eprintln!("ring-skip: nop_under_every_setup_flag/{name}: {u}");
                continue;
            }
            Err(e) => panic!("{name} on {kernel}: {e}"),
        };
        // Wrap the ring twice.
        for round in 0..3u64 {
            push_nops(&mut ring, (0..8).map(|i| round * 100 + i));
            ring.submitter()
                .submit_and_wait(8)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut got: Vec<u64> = Vec::new();
            while got.len() < 8 {
                let cqes = reap_all(&mut ring);
                assert!(cqes.iter().all(|c| c.result() == Ok(0)), "{name}: {cqes:?}");
                got.extend(cqes.iter().map(Cqe::user_data));
                if got.len() < 8 {
                    ring.submitter().submit_and_wait(1).unwrap();
                }
            }
            got.sort_unstable();
            assert_eq!(
                got,
                (0..8).map(|i| round * 100 + i).collect::<Vec<_>>(),
                "{name}"
            );
        }
        assert_eq!(ring.overflow(), 0, "{name}");
    }
}

#[test]
fn a_full_sq_hands_the_entry_back() {
    let mut ring = Ring::new(4).unwrap();
    push_nops(&mut ring, 0..4);
    {
        let mut sq = ring.sq();
        assert_eq!(sq.space(), 0);
        // SAFETY: a NOP carries no pointers.
        let refused = unsafe { sq.push(nop(99)) }.unwrap_err();
        assert_eq!(
            refused.0.get_user_data(),
            99,
            "the entry comes back unchanged"
        );
        // SAFETY: as above.
        let refused = unsafe { sq.push_batch(&[nop(1), nop(2)]) }.unwrap_err();
        assert_eq!(refused.0, 0, "no free slot");
    }
    assert_eq!(ring.submitter().submit().unwrap(), 4);
    ring.submitter().submit_and_wait(4).unwrap();
    // The kernel consumed the SQ: the next push finds room again.
    // SAFETY: as above.
    unsafe { ring.sq().push(nop(5)) }.unwrap();
    ring.submitter().submit_and_wait(5).unwrap();
    let ids: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    assert_eq!(ids, [0, 1, 2, 3, 5]);
}

#[test]
fn cq_overflow_with_nodrop_loses_nothing() {
    // CQ of 8, 40 NOPs without reaping: the kernel keeps the excess in its
    // backlog (IORING_FEAT_NODROP) and flushes it as the CQ is emptied.
    let mut ring = Builder::new(8).cq_entries(8).build().unwrap();
    if !ring.params().has(ring_io_sys::Features::NODROP) {
        skip!(
            "cq_overflow_with_nodrop_loses_nothing",
            "kernel lacks IORING_FEAT_NODROP (5.5)"
        );
    }
    for batch in 0..5u64 {
        push_nops(&mut ring, (0..8).map(|i| batch * 8 + i));
        ring.submitter().submit().unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.extend(reap_all(&mut ring).iter().map(Cqe::user_data));
        if seen.len() == 40 {
            break;
        }
        ring.submitter().flush().unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    assert_eq!(ring.overflow(), 0, "NODROP: nothing dropped");
}

#[test]
fn peek_does_not_consume_and_batches_reap_in_order() {
    let mut ring = Ring::new(8).unwrap();
    push_nops(&mut ring, 10..16);
    ring.submitter().submit_and_wait(6).unwrap();
    let mut cq = ring.cq();
    assert_eq!(cq.len(), 6);
    assert_eq!(cq.peek().map(|c| c.user_data()), Some(10));
    assert_eq!(
        cq.peek().map(|c| c.user_data()),
        Some(10),
        "peek consumes nothing"
    );
    let mut out = [Cqe::from(ring_io_sys::io_uring_cqe::default()); 4];
    assert_eq!(cq.reap_batch(&mut out), 4);
    assert_eq!(out.map(|c| c.user_data()), [10, 11, 12, 13]);
    assert_eq!(cq.map(|c| c.user_data()).collect::<Vec<_>>(), [14, 15]);
}

#[test]
fn a_failing_link_member_cancels_the_rest_but_a_hardlink_does_not() {
    let mut ring = Ring::new(8).unwrap();
    // A member that fails when it runs (not at submission, where kernels
    // before 5.17 fail a bad fd and with it the whole chain): a timeout's
    // -ETIME is a failure for links.
    let expire = ts(1);
    let failing = Timeout::new(&expire).build();
    {
        let mut sq = ring.sq();
        // SAFETY: `expire` outlives every completion, all reaped below.
        unsafe {
            sq.push(nop(1).link()).unwrap();
            sq.push(failing.user_data(2).link()).unwrap();
            sq.push(nop(3).link()).unwrap();
            sq.push(nop(4)).unwrap();
            // The same chain with a hardlink: the failure does not sever it.
            sq.push(failing.user_data(5).hardlink()).unwrap();
            sq.push(nop(6)).unwrap();
        }
    }
    ring.submitter().submit_and_wait(6).unwrap();
    let mut results: Vec<(u64, Result<u32, Errno>)> = reap_all(&mut ring)
        .iter()
        .map(|c| (c.user_data(), c.result()))
        .collect();
    results.sort_by_key(|r| r.0);
    assert_eq!(
        results,
        [
            (1, Ok(0)),
            (2, Err(Errno::ETIME)),
            (3, Err(Errno::ECANCELED)),
            (4, Err(Errno::ECANCELED)),
            (5, Err(Errno::ETIME)),
            (6, Ok(0)),
        ]
    );
}

#[test]
fn drain_waits_for_everything_before_it() {
    let mut ring = Ring::new(8).unwrap();
    let slow = ts(30);
    {
        let mut sq = ring.sq();
        // SAFETY: `slow` outlives the wait below, which reaps the timeout.
        unsafe {
            sq.push(Timeout::new(&slow).build().user_data(1)).unwrap();
            sq.push(nop(2).drain()).unwrap();
            sq.push(nop(3)).unwrap();
        }
    }
    // submit_and_wait returns only once all 3 are ready, even though the
    // kernel posts the drained ones late.
    ring.submitter().submit_and_wait(3).unwrap();
    let order: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    // The drained NOP starts only after the timeout before it completed;
    // the NOP after it may or may not wait too (it does since 6.x's
    // drain_active, not on 6.1).
    let pos = |id| order.iter().position(|&x| x == id).unwrap();
    assert_eq!(order.len(), 3);
    assert!(
        pos(1) < pos(2),
        "the drained NOP ran before the timeout completed: {order:?}"
    );
}

#[test]
fn timeouts_relative_count_remove_and_linked() {
    let mut ring = Ring::new(8).unwrap();
    let long = ts(10_000);
    let short = ts(20);
    {
        let mut sq = ring.sq();
        // SAFETY: the timespecs outlive every completion reaped below.
        unsafe {
            // Expires: -ETIME.
            sq.push(Timeout::new(&short).build().user_data(1)).unwrap();
            // Completes after 1 other completion: 0 (count).
            sq.push(Timeout::new(&long).count(1).build().user_data(2))
                .unwrap();
            sq.push(nop(3)).unwrap();
        }
    }
    ring.submitter().submit_and_wait(3).unwrap();
    let mut got: Vec<(u64, Result<u32, Errno>)> = Vec::new();
    while got.len() < 3 {
        got.extend(
            reap_all(&mut ring)
                .iter()
                .map(|c| (c.user_data(), c.result())),
        );
        if got.len() < 3 {
            ring.submitter().submit_and_wait(1).unwrap();
        }
    }
    got.sort_by_key(|g| g.0);
    assert_eq!(got, [(1, Err(Errno::ETIME)), (2, Ok(0)), (3, Ok(0))]);

    // Remove a pending timeout: it completes with -ECANCELED, the remove with 0.
    // SAFETY: `long` outlives both completions.
    unsafe {
        let mut sq = ring.sq();
        sq.push(Timeout::new(&long).build().user_data(10)).unwrap();
        sq.push(TimeoutRemove::new(10).build().user_data(11))
            .unwrap();
    }
    ring.submitter().submit_and_wait(2).unwrap();
    let mut got: Vec<(u64, Result<u32, Errno>)> = reap_all(&mut ring)
        .iter()
        .map(|c| (c.user_data(), c.result()))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, [(10, Err(Errno::ECANCELED)), (11, Ok(0))]);

    // A link timeout cancels a read that never completes.
    let (r, _w) = pipe_files();
    let mut buf = [0u8; 8];
    // SAFETY: `buf`, the pipe and `short` outlive both completions.
    unsafe {
        let mut sq = ring.sq();
        sq.push(
            Read::new(Fd(r.as_raw_fd()), buf.as_mut_ptr(), 8)
                .build()
                .user_data(20)
                .link(),
        )
        .unwrap();
        sq.push(LinkTimeout::new(&short).build().user_data(21))
            .unwrap();
    }
    ring.submitter().submit_and_wait(2).unwrap();
    let mut got: Vec<(u64, Result<u32, Errno>)> = Vec::new();
    while got.len() < 2 {
        got.extend(
            reap_all(&mut ring)
                .iter()
                .map(|c| (c.user_data(), c.result())),
        );
        if got.len() < 2 {
            ring.submitter().submit_and_wait(1).unwrap();
        }
    }
    got.sort_by_key(|g| g.0);
    assert_eq!(got, [(20, Err(Errno::ECANCELED)), (21, Err(Errno::ETIME))]);
}

#[test]
fn wait_with_a_timeout_times_out() {
    // Since 5.11 the deadline rides on the enter (IORING_FEAT_EXT_ARG);
    // before, the driver queues an IORING_OP_TIMEOUT as liburing does, and
    // filters its CQE out. Both behave the same here.
    let mut ring = Ring::new(4).unwrap();
    let ext_arg = ring.params().has(ring_io_sys::Features::EXT_ARG);
    let start = std::time::Instant::now();
    let err = ring
        .submitter()
        .submit_and_wait_timeout(1, Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(
        err.kind(),
        io::ErrorKind::TimedOut,
        "ext_arg {ext_arg}: {err}"
    );
    assert!(start.elapsed() >= Duration::from_millis(15));
    // Completions that arrive in time end the wait at once, and only they
    // are reaped (no timeout CQE, now or later).
    push_nops(&mut ring, [1, 2]);
    let start = std::time::Instant::now();
    ring.submitter()
        .submit_and_wait_timeout(2, Duration::from_secs(5))
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(4));
    let got: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    assert_eq!(got, [1, 2], "ext_arg {ext_arg}");
    push_nops(&mut ring, [3]);
    ring.submitter().submit_and_wait(1).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    ring.submitter().flush().unwrap();
    let got: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    assert_eq!(got, [3], "ext_arg {ext_arg}: only the caller's CQEs");
    assert_eq!(ring.cq().peek().map(|c| c.user_data()), None);
    // A full SQ still leaves room for the timeout (it is submitted first).
    push_nops(&mut ring, [4, 5, 6, 7]);
    ring.submitter()
        .submit_and_wait_timeout(4, Duration::from_secs(5))
        .unwrap();
    let got: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    assert_eq!(got, [4, 5, 6, 7], "ext_arg {ext_arg}");
}

#[test]
fn poll_single_and_multishot() {
    let mut ring = Ring::new(8).unwrap();
    let (r, mut w) = pipe_files();
    let events = libc::POLLIN as u32;
    // SAFETY: poll entries carry no pointers; the pipe outlives them.
    unsafe {
        let mut sq = ring.sq();
        sq.push(PollAdd::new(Fd(r.as_raw_fd()), events).build().user_data(1))
            .unwrap();
        sq.push(
            PollAdd::new(Fd(r.as_raw_fd()), events)
                .multishot()
                .build()
                .user_data(2),
        )
        .unwrap();
    }
    ring.submitter().submit().unwrap();
    assert!(reap_all(&mut ring).is_empty(), "nothing to read yet");
    w.write_all(b"x").unwrap();
    ring.submitter().submit_and_wait(2).unwrap();
    let mut cqes = reap_all(&mut ring);
    cqes.sort_by_key(Cqe::user_data);
    assert_eq!(cqes.len(), 2);
    assert_eq!(cqes[0].result(), Ok(events));
    assert!(!cqes[0].more(), "single-shot poll is done");
    if common::kernel().at_least(5, 13) {
        assert!(cqes[1].more(), "multishot poll stays armed");
        // SAFETY: as above.
        unsafe { ring.sq().push(PollRemove::new(2).build().user_data(3)) }.unwrap();
        ring.submitter().submit_and_wait(2).unwrap();
        let mut last: Vec<(u64, bool)> = reap_all(&mut ring)
            .iter()
            .map(|c| (c.user_data(), c.more()))
            .collect();
        last.sort_unstable();
        assert_eq!(
            last,
            [(2, false), (3, false)],
            "the multishot ends with a CQE without MORE"
        );
    }
}

#[test]
fn eventfd_is_signalled_on_completion() {
    let mut ring = Ring::new(4).unwrap();
    // SAFETY: plain syscall.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    // SAFETY: a new fd that nothing else owns.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    ring.registrar().register_eventfd(&efd, false).unwrap();
    push_nops(&mut ring, [1]);
    ring.submitter().submit_and_wait(1).unwrap();
    let mut count = 0u64;
    // SAFETY: reading 8 bytes into a u64.
    let n = unsafe { libc::read(efd.as_raw_fd(), (&raw mut count).cast(), 8) };
    assert_eq!(n, 8);
    assert!(count >= 1);
}

#[test]
fn fixed_files_and_buffers_read_and_write() {
    let dir = std::env::temp_dir().join(format!("ring-fixed-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&dir)
        .unwrap();
    let mut ring = Ring::new(8).unwrap();
    ring.registrar()
        .register_files(&[Some(file.as_fd())])
        .unwrap();
    let mut bufs = vec![vec![0u8; 4096], vec![0u8; 4096]];
    let iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: `bufs` outlives the registration (unregistered below).
    unsafe { ring.registrar().register_buffers(&iov) }.unwrap();
    bufs[0][..5].copy_from_slice(b"hello");
    // SAFETY: the fixed buffers and the file outlive the completions.
    unsafe {
        ring.sq()
            .push(
                WriteFixed::new(Fixed(0), bufs[0].as_ptr(), 5, 0)
                    .build()
                    .user_data(1)
                    .link(),
            )
            .unwrap();
        ring.sq()
            .push(
                ReadFixed::new(Fixed(0), bufs[1].as_mut_ptr(), 5, 1)
                    .build()
                    .user_data(2),
            )
            .unwrap();
    }
    ring.submitter().submit_and_wait(2).unwrap();
    let results: Vec<_> = reap_all(&mut ring)
        .iter()
        .map(|c| (c.user_data(), c.result()))
        .collect();
    assert_eq!(results, [(1, Ok(5)), (2, Ok(5))]);
    assert_eq!(&bufs[1][..5], b"hello");
    // Plain fd write through the ring too.
    let data = *b"world";
    // SAFETY: `data` outlives the completion.
    unsafe {
        ring.sq().push(
            Write::new(Fd(file.as_raw_fd()), data.as_ptr(), 5)
                .offset(5)
                .build()
                .user_data(3),
        )
    }
    .unwrap();
    ring.submitter().submit_and_wait(1).unwrap();
    assert_eq!(reap_all(&mut ring)[0].result(), Ok(5));
    assert_eq!(std::fs::read(&dir).unwrap(), b"helloworld");
    ring.registrar().unregister_buffers().unwrap();
    drop(bufs);
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn cqe32_rings_carry_big_completions() {
    let mut ring = match Builder::new(4).cqe32().build() {
        Ok(ring) => ring,
        Err(e) => skip!("cqe32_rings_carry_big_completions", "{e}"),
    };
    push_nops(&mut ring, [7]);
    ring.submitter().submit_and_wait(1).unwrap();
    let cqe = reap_all(&mut ring)[0];
    assert_eq!(
        (cqe.user_data(), cqe.result(), cqe.big()),
        (7, Ok(0), [0, 0])
    );
}

#[test]
fn cqe_mixed_rings_carry_small_and_big_completions_and_hide_padding() {
    // A 16-slot CQ of mixed 16- and 32-byte CQEs, wrapped many times: the
    // kernel pads with a SKIP slot where a big CQE would wrap. Every CQE
    // comes out once, in order, with its extra words; no padding does.
    let mut ring = match Builder::new(8).cq_entries(16).cqe_mixed().build() {
        Ok(ring) => ring,
        Err(e) => skip!(
            "cqe_mixed_rings_carry_small_and_big_completions_and_hide_padding",
            "{e}"
        ),
    };
    let big = |i: u64| i % 3 != 0;
    let mut next = 0u64;
    let mut seen = 0u64;
    for round in 0..40u64 {
        // Five per round (at most ten slots, plus padding): 3 rounds' worth
        // wraps the ring.
        for _ in 0..5 {
            let op = if big(next) {
                ring_io_ops::Nop::new().cqe32(next, !next)
            } else {
                ring_io_ops::Nop::new()
            };
            // SAFETY: a NOP carries no pointers.
            unsafe { ring.sq().push(op.build().user_data(next)) }.expect("room for five");
            next += 1;
        }
        ring.submitter().submit_and_wait(5).unwrap();
        let peeked = ring.cq().peek().map(|c| c.user_data());
        assert_eq!(peeked, Some(seen), "round {round}: peek sees the next CQE");
        for cqe in ring.cq() {
            assert_eq!(cqe.user_data(), seen, "round {round}");
            assert_eq!(cqe.result(), Ok(0));
            let flagged = cqe.flags().contains(ring_io_sys::CqeFlags::BIG);
            assert_eq!(flagged, big(seen), "CQE {seen}: {cqe:?}");
            let extra = if big(seen) { [seen, !seen] } else { [0, 0] };
            assert_eq!(cqe.big(), extra, "CQE {seen}");
            seen += 1;
        }
        assert_eq!(seen, next, "round {round}: every CQE, nothing more");
    }
    assert_eq!(ring.overflow(), 0);
}

#[test]
fn sqpoll_submits_without_enter_and_wakes_after_idle() {
    let mut ring = match Builder::new(8).sqpoll(10).build() {
        Ok(ring) => ring,
        Err(e) => skip!("sqpoll_submits_without_enter_and_wakes_after_idle", "{e}"),
    };
    for round in 0..3u64 {
        push_nops(&mut ring, [round]);
        ring.submitter().submit_and_wait(1).unwrap();
        let cqes = reap_all(&mut ring);
        assert_eq!(cqes.iter().map(Cqe::user_data).collect::<Vec<_>>(), [round]);
        // Let the thread go idle (10 ms) so the next round must wake it.
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn iopoll_on_a_file_that_cannot_poll_is_a_clear_error() {
    let mut ring = Builder::new(4).iopoll().build().unwrap();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: `buf` and `file` outlive the completion.
    unsafe {
        ring.sq().push(
            Read::new(Fd(file.as_raw_fd()), buf.as_mut_ptr(), 16)
                .build()
                .user_data(1),
        )
    }
    .unwrap();
    ring.submitter().submit_and_wait(1).unwrap();
    let cqe = reap_all(&mut ring)[0];
    // Not O_DIRECT on a pollable block device: the kernel refuses.
    assert!(
        matches!(cqe.result(), Err(Errno::EOPNOTSUPP) | Err(Errno::EINVAL)),
        "{cqe:?}"
    );
}

#[test]
fn single_issuer_refuses_a_second_thread() {
    let mut ring = match Builder::new(4).single_issuer().build() {
        Ok(ring) => ring,
        Err(e) => skip!("single_issuer_refuses_a_second_thread", "{e}"),
    };
    push_nops(&mut ring, [1]);
    ring.submitter().submit_and_wait(1).unwrap();
    reap_all(&mut ring);
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            push_nops(&mut ring, [2]);
            ring.submitter().submit()
        })
        .join()
        .unwrap()
    });
    assert_eq!(err.unwrap_err().raw_os_error(), Some(libc::EEXIST));
}

#[test]
fn defer_taskrun_completes_only_when_the_issuer_waits() {
    let mut ring = match Builder::new(4).defer_taskrun().build() {
        Ok(ring) => ring,
        Err(e) => skip!("defer_taskrun_completes_only_when_the_issuer_waits", "{e}"),
    };
    let (r, mut w) = pipe_files();
    let mut buf = [0u8; 4];
    // SAFETY: `buf` and the pipe outlive the completion.
    unsafe {
        ring.sq().push(
            Read::new(Fd(r.as_raw_fd()), buf.as_mut_ptr(), 4)
                .build()
                .user_data(1),
        )
    }
    .unwrap();
    ring.submitter().submit().unwrap();
    w.write_all(b"ping").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        reap_all(&mut ring).is_empty(),
        "task work is deferred until the issuer enters"
    );
    ring.submitter().submit_and_wait(1).unwrap();
    assert_eq!(reap_all(&mut ring)[0].result(), Ok(4));
    assert_eq!(&buf, b"ping");
}

#[test]
fn closing_a_ring_with_ops_in_flight_cancels_them() {
    let (r, w) = pipe_files();
    let mut buf = [0u8; 8];
    {
        let mut ring = Ring::new(4).unwrap();
        // SAFETY: `buf` outlives the ring: dropping the ring cancels the read
        // and the kernel waits for it before releasing the ring.
        unsafe {
            ring.sq().push(
                Read::new(Fd(r.as_raw_fd()), buf.as_mut_ptr(), 8)
                    .build()
                    .user_data(1),
            )
        }
        .unwrap();
        ring.submitter().submit().unwrap();
    }
    drop(w);
    // The pipe's reader is not consumed by a zombie request: a plain read
    // now sees EOF.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut &r, &mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(buf, [0; 8]);
}

#[test]
fn registered_ring_fd_is_used_on_the_building_thread_only() {
    let mut ring = Ring::new(4).unwrap();
    let kernel = common::kernel();
    assert_eq!(ring.uses_registered_fd(), kernel.at_least(5, 18));
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(!ring.uses_registered_fd());
            push_nops(&mut ring, [1]);
            ring.submitter().submit_and_wait(1).unwrap();
            assert_eq!(reap_all(&mut ring)[0].user_data(), 1);
        });
    });
    assert_eq!(ring.uses_registered_fd(), kernel.at_least(5, 18));
}

/// A ring set up without registering its fd, and this thread's
/// registration of it put to use; `None` (the test skips) before 5.18.
fn ring_registered_here(test: &str) -> Option<(Ring, ring_io_driver::ThreadRegistration)> {
    let mut ring = Builder::new(4).register_ring_fd(false).build().unwrap();
    assert!(!ring.uses_registered_fd());
    match ring.register_thread() {
        Ok(reg) => {
            assert!(ring.use_thread_registration(&reg));
            Some((ring, reg))
        }
        Err(e) if !common::kernel().at_least(5, 18) => {
            eprintln!("ring-skip: {test}: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_thread_registration_names_the_ring_on_its_thread_while_it_lives() {
    let test = "a_thread_registration_names_the_ring_on_its_thread_while_it_lives";
    let Some((mut ring, reg)) = ring_registered_here(test) else {
        return;
    };
    assert!(ring.uses_registered_fd());
    // The ring's fd now names a pipe: an enter by fd fails (not a ring),
    // an enter by this thread's index reaches the ring (whose file the
    // registration keeps alive).
    let fd = ring.fd().unwrap().as_raw_fd();
    let (rd, _wr) = common::pipe();
    // SAFETY: `fd` stays open (now on the pipe); the ring's OwnedFd closes
    // it, once, when the ring drops.
    assert_eq!(unsafe { libc::dup2(rd.as_raw_fd(), fd) }, fd);
    push_nops(&mut ring, [1]);
    ring.submitter().submit_and_wait(1).unwrap();
    assert_eq!(reap_all(&mut ring)[0].user_data(), 1);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Another thread: its table does not hold the ring, so the fd
            // is used, which is a pipe now.
            assert!(!ring.uses_registered_fd());
            push_nops(&mut ring, [2]);
            assert!(ring.submitter().submit().is_err(), "entered by the fd");
        });
    });
    // Back on its thread, the entry pushed over there goes in by the index.
    assert_eq!(ring.submitter().submit_and_wait(1).unwrap(), 1);
    assert_eq!(reap_all(&mut ring)[0].user_data(), 2);
    drop(reg);
    // Unregistered: by the fd again (the pipe), so the enter fails.
    assert!(!ring.uses_registered_fd());
    push_nops(&mut ring, [3]);
    assert!(ring.submitter().submit().is_err(), "entered by the fd");
}

#[test]
fn a_dropped_thread_registration_frees_its_slot_and_names_nothing() {
    let test = "a_dropped_thread_registration_frees_its_slot_and_names_nothing";
    // A fresh thread: its registered-ring table (16 slots) starts empty.
    std::thread::spawn(move || {
        let Some((mut a, reg)) = ring_registered_here(test) else {
            return;
        };
        let index = reg.index();
        drop(reg);
        // Slots come back: 40 registrations, each dropped (some after
        // their ring), never run out of the 16.
        for i in 0..40 {
            let ring = Builder::new(1).register_ring_fd(false).build().unwrap();
            let reg = ring
                .register_thread()
                .unwrap_or_else(|e| panic!("{i}: {e}"));
            if i % 2 == 0 {
                drop(ring);
            }
            drop(reg);
        }
        // Ring `b` takes `a`'s old slot: `a` must not enter `b` through it.
        let mut b = Builder::new(4).register_ring_fd(false).build().unwrap();
        let b_reg = b.register_thread().unwrap();
        assert_eq!(b_reg.index(), index, "the lowest free slot is reused");
        assert!(b.use_thread_registration(&b_reg));
        assert!(!a.uses_registered_fd());
        push_nops(&mut a, [7]);
        // Had `a` entered `b`, nothing of `a`'s would be submitted.
        assert_eq!(a.submitter().submit().unwrap(), 1);
        let got = common::wait_until(Duration::from_secs(2), || !a.cq().is_empty());
        assert!(got, "a's NOP completed on a");
        assert_eq!(reap_all(&mut a)[0].user_data(), 7);
        assert!(b.cq().is_empty());
    })
    .join()
    .unwrap();
}

#[test]
fn a_thread_registration_serves_only_its_own_ring_and_keeps_a_setup_registration() {
    let test = "a_thread_registration_serves_only_its_own_ring_and_keeps_a_setup_registration";
    let Some((_ring, reg)) = ring_registered_here(test) else {
        return;
    };
    let mut other = Builder::new(4).register_ring_fd(false).build().unwrap();
    assert!(!other.use_thread_registration(&reg), "another ring's");
    assert!(!other.uses_registered_fd());
    // A ring registered at setup keeps that registration.
    let mut set_up = Ring::new(4).unwrap();
    assert!(set_up.uses_registered_fd());
    let mine = set_up.register_thread().unwrap();
    assert!(!set_up.use_thread_registration(&mine));
    drop(mine);
    assert!(set_up.uses_registered_fd());
    push_nops(&mut set_up, [1]);
    set_up.submitter().submit_and_wait(1).unwrap();
    assert_eq!(reap_all(&mut set_up)[0].user_data(), 1);
}

#[test]
fn min_wait_returns_with_what_is_ready_once_it_has_passed() {
    let mut ring = Ring::new(4).unwrap();
    if !ring.params().has(ring_io_sys::Features::MIN_TIMEOUT) {
        let err = ring
            .submitter()
            .submit_and_wait_min(1, Duration::from_millis(1), None)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        skip!(
            "min_wait_returns_with_what_is_ready_once_it_has_passed",
            "{err}"
        );
    }
    let long = ts(5_000);
    // SAFETY: `long` outlives the timeout, cancelled when the ring drops.
    unsafe {
        let mut sq = ring.sq();
        sq.push(Timeout::new(&long).build().user_data(1)).unwrap();
        sq.push(nop(2)).unwrap();
    }
    let start = std::time::Instant::now();
    ring.submitter()
        .submit_and_wait_min(2, Duration::from_millis(20), Some(Duration::from_secs(3)))
        .unwrap();
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "returned after min_wait, not the 5 s timeout: {waited:?}"
    );
    assert_eq!(
        reap_all(&mut ring)
            .iter()
            .map(Cqe::user_data)
            .collect::<Vec<_>>(),
        [2]
    );
}

#[test]
fn msg_ring_posts_a_completion_on_another_ring() {
    let mut a = Ring::new(4).unwrap();
    let mut b = Ring::new(4).unwrap();
    if let Err(e) = a.probe().unwrap().check(ring_io_sys::IORING_OP_MSG_RING) {
        skip!("msg_ring_posts_a_completion_on_another_ring", "{e}");
    }
    let msg = ring_io_ops::MsgRingData::new(
        Fd(b.fd().expect("a ring with an fd").as_raw_fd()),
        42,
        0xfeed,
    )
    .build()
    .user_data(1);
    // SAFETY: MSG_RING data carries no pointers; ring `b` outlives it.
    unsafe { a.sq().push(msg) }.unwrap();
    a.submitter().submit_and_wait(1).unwrap();
    assert_eq!(reap_all(&mut a)[0].result(), Ok(0));
    b.submitter().submit_and_wait(1).unwrap();
    let got = reap_all(&mut b);
    assert_eq!((got[0].user_data(), got[0].res()), (0xfeed, 42));
}

#[test]
fn sq_wait_under_sqpoll_returns_once_there_is_room() {
    let mut ring = match Builder::new(4).sqpoll(100).build() {
        Ok(ring) => ring,
        Err(e) => skip!("sq_wait_under_sqpoll_returns_once_there_is_room", "{e}"),
    };
    push_nops(&mut ring, 0..4);
    ring.submitter().sq_wait().unwrap();
    assert!(ring.sq().space() > 0);
    ring.submitter().submit_and_wait(4).unwrap();
    let mut got: Vec<u64> = Vec::new();
    while got.len() < 4 {
        got.extend(reap_all(&mut ring).iter().map(Cqe::user_data));
        if got.len() < 4 {
            ring.submitter().submit_and_wait(1).unwrap();
        }
    }
    assert_eq!(got, [0, 1, 2, 3]);
}

#[test]
fn buffer_ring_feeds_a_multishot_recv_and_recycles() {
    use ring_io_driver::BufRing;
    let mut ring = Ring::new(8).unwrap();
    // SAFETY: the multishot recv using group 3 is cancelled and its last
    // completion reaped before `bufs` drops (end of the test).
    let mut bufs = match unsafe { BufRing::new(&ring.fd().expect("a ring with an fd"), 3, 4, 16) } {
        Ok(bufs) => bufs,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            skip!("buffer_ring_feeds_a_multishot_recv_and_recycles", "{e}")
        }
        Err(e) => panic!("{e}"),
    };
    let multishot = ring.probe().unwrap().supports(ring_io_sys::IORING_OP_RECV)
        && common::kernel().at_least(6, 0);
    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let recv = ring_io_ops::Recv::select(Fd(b.as_raw_fd()), bufs.bgid(), 0);
    let recv = if multishot { recv.multishot() } else { recv };
    // SAFETY: the buffers come from the group, alive until the end.
    unsafe { ring.sq().push(recv.build().user_data(9)) }.unwrap();
    ring.submitter().submit().unwrap();
    // Ten messages through four 16-byte buffers: recycling is required.
    let mut received = Vec::new();
    for i in 0..10u8 {
        let msg = [b'a' + i; 10];
        a.write_all(&msg).unwrap();
        ring.submitter().submit_and_wait(1).unwrap();
        let cqes: Vec<Cqe> = ring.cq().collect();
        for cqe in cqes {
            assert_eq!(cqe.user_data(), 9);
            // SAFETY: the kernel posted `cqe` for the receive on group 3,
            // and it is taken once.
            let data = unsafe { bufs.take(&cqe) }
                .unwrap()
                .expect("recv picked a buffer");
            received.extend_from_slice(&data.to_vec());
            if !multishot {
                drop(data);
                // SAFETY: as above.
                unsafe { ring.sq().push(recv.build().user_data(9)) }.unwrap();
                ring.submitter().submit().unwrap();
            } else {
                assert!(cqe.more(), "multishot recv stays armed: {cqe:?}");
            }
        }
    }
    let want: Vec<u8> = (0..10u8).flat_map(|i| [b'a' + i; 10]).collect();
    assert_eq!(received, want);
    assert_eq!(bufs.available(), 4, "every buffer is back in the ring");
    // Stop the receive and reap its last completion before dropping `bufs`.
    drop(a);
    drop(b);
    let mut last = None;
    for _ in 0..10 {
        ring.submitter().submit_and_wait(1).unwrap();
        last = ring.cq().last();
        if last.is_some_and(|c| !c.more()) {
            break;
        }
    }
    assert!(
        last.is_some_and(|c| !c.more()),
        "the receive ended: {last:?}"
    );
    if !multishot {
        eprintln!(
            "ring-skip: buffer_ring_feeds_a_multishot_recv_and_recycles/multishot: multishot recv needs Linux 6.0"
        );
    }
}

fn monotonic_now() -> __kernel_timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is valid and writable.
    let res = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(res, 0);
    __kernel_timespec {
        tv_sec: now.tv_sec,
        tv_nsec: now.tv_nsec,
    }
}

#[test]
fn absolute_timeouts_and_timeout_updates() {
    let mut ring = Ring::new(8).unwrap();
    // Absolute: 30 ms from now on CLOCK_MONOTONIC.
    let mut at = monotonic_now();
    at.tv_nsec += 30_000_000;
    if at.tv_nsec >= 1_000_000_000 {
        at.tv_sec += 1;
        at.tv_nsec -= 1_000_000_000;
    }
    let start = std::time::Instant::now();
    // SAFETY: `at` outlives the completion reaped below.
    unsafe {
        ring.sq()
            .push(Timeout::new(&at).absolute().build().user_data(1))
    }
    .unwrap();
    ring.submitter().submit_and_wait(1).unwrap();
    assert_eq!(reap_all(&mut ring)[0].result(), Err(Errno::ETIME));
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "{:?}",
        start.elapsed()
    );

    if !common::kernel().at_least(5, 11) {
        skip!(
            "absolute_timeouts_and_timeout_updates/update",
            "IORING_TIMEOUT_UPDATE needs Linux 5.11"
        );
    }
    // Update: a 10 s timeout shortened to 10 ms.
    let long = ts(10_000);
    let short = ts(10);
    let start = std::time::Instant::now();
    // SAFETY: both timespecs outlive the completions reaped below.
    unsafe {
        let mut sq = ring.sq();
        sq.push(Timeout::new(&long).build().user_data(2)).unwrap();
        sq.push(
            ring_io_ops::TimeoutUpdate::new(2, &short)
                .build()
                .user_data(3),
        )
        .unwrap();
    }
    ring.submitter().submit_and_wait(2).unwrap();
    let mut got: Vec<(u64, Result<u32, Errno>)> = reap_all(&mut ring)
        .iter()
        .map(|c| (c.user_data(), c.result()))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, [(2, Err(Errno::ETIME)), (3, Ok(0))]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the update took effect"
    );
}

#[test]
fn sqe128_rings_take_128_byte_entries() {
    let mut ring = match Builder::new(4).sqe128().build() {
        Ok(ring) => ring,
        Err(e) => skip!("sqe128_rings_take_128_byte_entries", "{e}"),
    };
    // A 64-byte entry in a 128-byte slot, and a 64-byte push on this ring.
    // SAFETY: NOPs carry no pointers.
    unsafe {
        ring.sq()
            .push128(ring_io_ops::Entry128::from(nop(1)))
            .unwrap();
        ring.sq().push(nop(2)).unwrap();
    }
    ring.submitter().submit_and_wait(2).unwrap();
    let results: Vec<_> = reap_all(&mut ring)
        .iter()
        .map(|c| (c.user_data(), c.result()))
        .collect();
    assert_eq!(results, [(1, Ok(0)), (2, Ok(0))]);
    // An 80-byte socket command: SIOCINQ on a socket pair with 5 bytes queued.
    if !common::kernel().at_least(6, 7) {
        skip!(
            "sqe128_rings_take_128_byte_entries/socket_cmd",
            "socket uring_cmd needs Linux 6.7"
        );
    }
    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.write_all(b"12345").unwrap();
    let cmd = ring_io_ops::UringCmd80::new(Fd(b.as_raw_fd()), ring_io_sys::SOCKET_URING_OP_SIOCINQ)
        .build()
        .user_data(3);
    // SAFETY: SIOCINQ carries no pointers; the socket outlives the completion.
    unsafe { ring.sq().push128(cmd) }.unwrap();
    ring.submitter().submit_and_wait(1).unwrap();
    let cqe = reap_all(&mut ring)[0];
    match cqe.result() {
        Ok(n) => assert_eq!(n, 5),
        // AF_UNIX sockets gained SIOCINQ through uring_cmd later than TCP.
        Err(Errno::EOPNOTSUPP) => eprintln!(
            "ring-skip: sqe128_rings_take_128_byte_entries/socket_cmd: SIOCINQ on AF_UNIX unsupported here"
        ),
        Err(e) => panic!("{e}"),
    }
    // A 128-byte entry on a 64-byte ring is handed back, with the reason.
    let mut plain = Ring::new(4).unwrap();
    // SAFETY: never submitted.
    let back = unsafe { plain.sq().push128(cmd) }.unwrap_err();
    assert!(matches!(back, ring_io_driver::Push128Error::NotSqe128(_)));
    assert_eq!(back.into_inner().get_user_data(), 3);
}

#[test]
fn no_mmap_with_caller_provided_memory() {
    if !common::kernel().at_least(6, 5) {
        skip!(
            "no_mmap_with_caller_provided_memory",
            "IORING_SETUP_NO_MMAP needs Linux 6.5"
        );
    }
    let builder = Builder::new(8);
    let (rings_len, sqes_len) = builder.no_mmap_sizes().expect("an 8-entry ring has sizes");
    let (rings, sqes) = (common::lend(rings_len), common::lend(sqes_len));
    // Too small: refused before the kernel sees it.
    // SAFETY: the regions outlive every ring built here (unmapped at the end).
    let small = unsafe { Builder::new(8).no_mmap_memory((rings, 4096 / 2), (sqes, sqes_len)) };
    assert!(matches!(
        small.build(),
        Err(ring_io_driver::SetupError::Invalid(_))
    ));
    {
        // SAFETY: as above.
        let mut ring = unsafe { builder.no_mmap_memory((rings, rings_len), (sqes, sqes_len)) }
            .build()
            .unwrap();
        assert!(
            ring.params()
                .flags()
                .contains(ring_io_sys::SetupFlags::NO_MMAP)
        );
        push_nops(&mut ring, 0..8);
        ring.submitter().submit_and_wait(8).unwrap();
        assert_eq!(reap_all(&mut ring).len(), 8);
    }
    // The ring did not unmap the caller's memory: it is still writable.
    // SAFETY: both regions are still mapped and ours again.
    unsafe {
        rings.as_ptr().write_bytes(0xab, rings_len);
        sqes.as_ptr().write_bytes(0xcd, sqes_len);
        libc::munmap(rings.as_ptr().cast(), rings_len);
        libc::munmap(sqes.as_ptr().cast(), sqes_len);
    }
}

/// Runs `f` on another thread and fails, instead of hanging, if it has not
/// returned within `limit` (a loop around enter that makes no progress).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("no return within {limit:?}: a loop around enter makes no progress")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the call panicked"),
    }
}

#[test]
fn a_wait_for_more_than_the_cq_holds_returns_once_it_is_full() {
    // Twelve NOPs into an 8-entry CQ: eight in the CQ, four in the
    // kernel's overflow backlog (NODROP). The kernel clamps min_complete to
    // the CQ size and returns 0 at once; the driver used to enter again
    // and again at 100% CPU. Now the wait ends when the CQ is full.
    let mut ring = Ring::new(4).unwrap();
    if !ring.params().has(ring_io_sys::Features::NODROP) {
        skip!(
            "a_wait_for_more_than_the_cq_holds_returns_once_it_is_full",
            "no IORING_FEAT_NODROP"
        );
    }
    assert_eq!(ring.params().cq_entries(), 8);
    for batch in 0..3 {
        push_nops(&mut ring, batch * 4..batch * 4 + 4);
        ring.submitter().submit().unwrap();
    }
    let mut ring = within(Duration::from_secs(10), move || {
        let start = std::time::Instant::now();
        ring.submitter().submit_and_wait(12).unwrap();
        ring.submitter()
            .submit_and_wait_timeout(12, Duration::from_secs(5))
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(4));
        ring
    });
    let mut got: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    assert_eq!(got.len(), 8, "the CQ was full");
    ring.submitter().flush().unwrap();
    got.extend(reap_all(&mut ring).iter().map(Cqe::user_data));
    assert_eq!(got, (0..12).collect::<Vec<_>>(), "nothing lost");
}

#[test]
fn a_timed_wait_that_submits_times_out_when_fewer_are_ready_and_keeps_them() {
    // io_uring_enter returns the number it submitted even when the wait
    // that follows timed out, and 0 instead of ETIME when the CQ is not
    // empty: the driver must look at what is ready. Before 5.11 it queues
    // an IORING_OP_TIMEOUT instead; the outcome is the same.
    let mut ring = Ring::new(4).unwrap();
    push_nops(&mut ring, [1]);
    let start = std::time::Instant::now();
    let err = ring
        .submitter()
        .submit_and_wait_timeout(2, Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(25));
    assert_eq!(ring.submitter().pending(), 0, "the NOP was submitted");
    let got: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    assert_eq!(got, [1], "what arrived stays in the CQ");
    // Nothing to submit, one ready, two wanted.
    push_nops(&mut ring, [2]);
    ring.submitter().submit().unwrap();
    let start = std::time::Instant::now();
    let err = ring
        .submitter()
        .submit_and_wait_timeout(2, Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(25));
    let got: Vec<u64> = reap_all(&mut ring).iter().map(Cqe::user_data).collect();
    assert_eq!(got, [2]);
    // The minimum-wait variant, with an entry that posts nothing
    // (IOSQE_CQE_SKIP_SUCCESS): no CQE at all when the time is up.
    if !ring.params().has(ring_io_sys::Features::MIN_TIMEOUT) {
        skip!(
            "a_timed_wait_that_submits_times_out_when_fewer_are_ready_and_keeps_them/min_wait",
            "no IORING_FEAT_MIN_TIMEOUT"
        );
    }
    // SAFETY: a NOP carries no pointers.
    unsafe { ring.sq().push(nop(3).skip_success()) }.unwrap();
    let err = ring
        .submitter()
        .submit_and_wait_min(1, Duration::from_millis(5), Some(Duration::from_millis(30)))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert_eq!(ring.submitter().pending(), 0);
}

#[test]
fn a_timeout_too_long_for_the_kernel_clock_waits_as_if_unbounded() {
    // Duration::MAX (and any deadline past the kernel's 64-bit nanosecond
    // clock) used to become a negative or overflowing timespec: EINVAL, or
    // a deadline in the past. Saturated, it waits for the completions.
    let mut ring = Ring::new(4).unwrap();
    let short = ts(20);
    for (n, timeout) in [
        Duration::MAX,
        Duration::from_secs(i64::MAX as u64),
        Duration::from_secs(1 << 40),
    ]
    .into_iter()
    .enumerate()
    {
        let n = n as u64 * 10;
        // SAFETY: `short` outlives the timeout, whose CQE is reaped below.
        unsafe {
            let mut sq = ring.sq();
            sq.push(Timeout::new(&short).build().user_data(n)).unwrap();
            sq.push(nop(n + 1)).unwrap();
        }
        let start = std::time::Instant::now();
        let r = ring.submitter().submit_and_wait_timeout(2, timeout);
        assert!(r.is_ok(), "{timeout:?}: {r:?}");
        assert!(
            start.elapsed() >= Duration::from_millis(15),
            "{timeout:?}: returned before the 20 ms timeout completed"
        );
        let mut got: Vec<_> = reap_all(&mut ring)
            .iter()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        got.sort_unstable();
        assert_eq!(got, [(n, Err(Errno::ETIME)), (n + 1, Ok(0))], "{timeout:?}");
    }
    // Nothing to submit, a wait bounded by Duration::MAX.
    // SAFETY: as above.
    unsafe { ring.sq().push(Timeout::new(&short).build().user_data(99)) }.unwrap();
    ring.submitter().submit().unwrap();
    ring.submitter()
        .submit_and_wait_timeout(1, Duration::MAX)
        .unwrap();
    assert_eq!(reap_all(&mut ring)[0].user_data(), 99);
    if ring.params().has(ring_io_sys::Features::MIN_TIMEOUT) {
        // SAFETY: as above.
        unsafe { ring.sq().push(Timeout::new(&short).build().user_data(98)) }.unwrap();
        ring.submitter()
            .submit_and_wait_min(1, Duration::MAX, Some(Duration::MAX))
            .unwrap();
        assert_eq!(reap_all(&mut ring)[0].user_data(), 98);
    }
}

#[test]
fn entries_of_the_wrong_size_are_errors_not_panics() {
    // Reading a 32-byte CQE from a 16-byte ring, or writing a 128-byte SQE
    // into a 64-byte one, used to assert!.
    let mut ring = Ring::new(4).unwrap();
    push_nops(&mut ring, [1]);
    ring.submitter().submit_and_wait(1).unwrap();
    // SAFETY: index 0 holds a posted CQE, not reaped (no view was made);
    // nothing is written (the size is refused), and the borrow neither
    // replaces the kernel nor moves its tail or head.
    unsafe {
        assert_eq!(
            ring.kernel().cqe32(0).unwrap_err(),
            ring_io_driver::WrongRing::NotCqe32
        );
        let kernel = ring.kernel_mut();
        let sqe = ring_io_sys::io_uring_sqe128::default();
        let err = kernel.write_sqe128(1, &sqe).unwrap_err();
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
    }
    assert_eq!(reap_all(&mut ring)[0].user_data(), 1);
}
