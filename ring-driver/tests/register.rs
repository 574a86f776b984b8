//! Registration against the running kernel. Tests that need a submission
//! (fixed reads and writes, buffer rings) live with the queue tests.

mod common;

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use ring_io_driver::{Builder, CancelTarget, Restriction, Ring};

fn unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
}

#[test]
fn files_register_sparse_update_and_unregister() {
    let ring = Ring::new(4).unwrap();
    let reg = ring.registrar();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    reg.register_files(&[Some(file.as_fd()), None]).unwrap();
    // Registering twice is refused: the table is already there.
    assert_eq!(
        reg.register_files(&[Some(file.as_fd())])
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EBUSY)
    );
    assert_eq!(
        reg.register_files_update(1, &[Some(file.as_fd())]).unwrap(),
        1
    );
    // An update past the table is refused, not ignored.
    assert_eq!(
        reg.register_files_update(2, &[Some(file.as_fd())])
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EINVAL)
    );
    reg.unregister_files().unwrap();
    assert_eq!(
        reg.unregister_files().unwrap_err().raw_os_error(),
        Some(libc::ENXIO)
    );
    match reg.register_files_sparse(64) {
        Ok(()) => {
            assert_eq!(
                reg.register_files_update(63, &[Some(file.as_fd())])
                    .unwrap(),
                1
            );
            match reg.register_file_alloc_range(8, 8) {
                Ok(()) => {}
                Err(e) if unsupported(&e) => eprintln!("ring-skip: file_alloc_range: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
        Err(e) if unsupported(&e) => {
            skip!("files_register_sparse_update_and_unregister/sparse", "{e}")
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn buffers_register_tags_sparse_and_unregister() {
    let ring = Ring::new(4).unwrap();
    let reg = ring.registrar();
    let mut a = vec![0u8; 4096];
    let mut b = vec![0u8; 8192];
    let iov = [
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ];
    // SAFETY: `a` and `b` outlive the registration (unregistered below).
    unsafe { reg.register_buffers(&iov) }.unwrap();
    reg.unregister_buffers().unwrap();
    assert_eq!(
        reg.unregister_buffers().unwrap_err().raw_os_error(),
        Some(libc::ENXIO)
    );
    match reg.register_buffers_sparse(8) {
        Ok(()) => {
            // SAFETY: as above.
            unsafe { reg.register_buffers_update(3, &iov[..1], &[]) }.unwrap();
            reg.unregister_buffers().unwrap();
        }
        Err(e) if unsupported(&e) => eprintln!("ring-skip: buffers_sparse: {e}"),
        Err(e) => panic!("{e}"),
    }
    // SAFETY: as above.
    unsafe { reg.register_buffers_tags(&iov, &[7, 8]) }.unwrap();
    // SAFETY: mismatched lengths are refused before the kernel sees them.
    let err = unsafe { reg.register_buffers_tags(&iov, &[7]) }.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    reg.unregister_buffers().unwrap();
    drop((a, b));
}

#[test]
fn buffers_clone_between_rings() {
    if !common::kernel().at_least(6, 12) {
        skip!(
            "buffers_clone_between_rings",
            "IORING_REGISTER_CLONE_BUFFERS needs Linux 6.12"
        );
    }
    let src = Ring::new(4).unwrap();
    let dst = Ring::new(4).unwrap();
    let mut a = vec![0u8; 4096];
    let iov = [libc::iovec {
        iov_base: a.as_mut_ptr().cast(),
        iov_len: a.len(),
    }];
    // SAFETY: `a` outlives both registrations (unregistered below).
    unsafe { src.registrar().register_buffers(&iov) }.unwrap();
    // SAFETY: `a` outlives the clone too (unregistered from `dst` below).
    unsafe { dst.registrar().clone_buffers_from(&src.registrar(), false) }.unwrap();
    // Cloning again onto a ring that has buffers needs DST_REPLACE.
    // SAFETY: as above.
    assert!(unsafe { dst.registrar().clone_buffers_from(&src.registrar(), false) }.is_err());
    // SAFETY: as above.
    match unsafe { dst.registrar().clone_buffers_from(&src.registrar(), true) } {
        Ok(()) => {}
        Err(e) if unsupported(&e) => {
            eprintln!("ring-skip: buffers_clone_between_rings/replace: {e}")
        }
        Err(e) => panic!("{e}"),
    }
    dst.registrar().unregister_buffers().unwrap();
    src.registrar().unregister_buffers().unwrap();
    drop(a);
}

#[test]
fn eventfd_and_personality() {
    let ring = Ring::new(4).unwrap();
    let reg = ring.registrar();
    // SAFETY: plain syscall.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    // SAFETY: a new fd that nothing else owns.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    reg.register_eventfd(&efd, false).unwrap();
    assert_eq!(
        reg.register_eventfd(&efd, false)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EBUSY)
    );
    reg.unregister_eventfd().unwrap();
    reg.register_eventfd(efd.as_fd(), true).unwrap();
    reg.unregister_eventfd().unwrap();

    let id = reg.register_personality().unwrap();
    assert!(id > 0);
    reg.unregister_personality(id).unwrap();
    assert_eq!(
        reg.unregister_personality(id).unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
}

#[test]
fn restrictions_then_enable() {
    let ring = Builder::new(4).r_disabled().build().unwrap();
    let reg = ring.registrar();
    reg.register_restrictions(&[
        Restriction::SqeOp(ring_io_sys::IORING_OP_NOP),
        Restriction::RegisterOp(ring_io_sys::IORING_REGISTER_PROBE as u8),
        Restriction::SqeFlagsAllowed(0),
    ])
    .unwrap();
    // Restrictions can be registered once.
    assert_eq!(
        reg.register_restrictions(&[]).unwrap_err().raw_os_error(),
        Some(libc::EBUSY)
    );
    reg.enable_rings().unwrap();
    // Allowed register op works; others are refused now.
    assert!(reg.probe().is_ok());
    assert_eq!(
        reg.register_personality().unwrap_err().raw_os_error(),
        Some(libc::EACCES)
    );
}

#[test]
fn iowq_max_workers_round_trip() {
    let ring = Ring::new(4).unwrap();
    let reg = ring.registrar();
    let before = reg.register_iowq_max_workers([0, 0]).unwrap();
    let old = reg.register_iowq_max_workers([2, 3]).unwrap();
    assert_eq!(old, before);
    assert_eq!(reg.register_iowq_max_workers([0, 0]).unwrap(), [2, 3]);
    reg.register_iowq_affinity(&[1]).unwrap();
    reg.unregister_iowq_affinity().unwrap();
}

#[test]
fn sync_cancel_with_nothing_in_flight_cancels_nothing() {
    if !common::kernel().at_least(6, 0) {
        skip!(
            "sync_cancel_with_nothing_in_flight_cancels_nothing",
            "IORING_REGISTER_SYNC_CANCEL needs Linux 6.0"
        );
    }
    let ring = Ring::new(4).unwrap();
    let err = ring
        .registrar()
        .cancel_sync(
            CancelTarget::UserData(42),
            false,
            Some(std::time::Duration::from_millis(10)),
        )
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(
        ring.registrar()
            .cancel_sync(CancelTarget::Any, true, None)
            .unwrap(),
        0
    );
    assert_eq!(
        ring.registrar()
            .cancel_sync(CancelTarget::Fd(0), true, None)
            .unwrap(),
        0
    );
    // The longest timeout is "forever", not a negative time (EINVAL).
    assert_eq!(
        ring.registrar()
            .cancel_sync(CancelTarget::Any, true, Some(std::time::Duration::MAX))
            .unwrap(),
        0
    );
    // A fixed slot that cannot exist is refused, not wrapped to -1.
    let err = ring
        .registrar()
        .cancel_sync(CancelTarget::FixedFd(u32::MAX), true, None)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn napi_register_and_unregister() {
    let ring = Ring::new(4).unwrap();
    match ring.registrar().register_napi(50, true) {
        Ok(()) => ring.registrar().unregister_napi().unwrap(),
        Err(e) if unsupported(&e) => skip!("napi_register_and_unregister", "{e}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn registered_fd_only_rings_are_unregistered_and_freed_on_drop() {
    let test = "registered_fd_only_rings_are_unregistered_and_freed_on_drop";
    // A fresh thread: its registered-ring table (16 slots) starts empty.
    std::thread::spawn(move || {
        // Each ring takes a slot of this thread's table; a ring that kept
        // its slot after the drop would make the 17th setup fail (EBUSY).
        for i in 0..40 {
            match Builder::new(4).registered_fd_only().build() {
                Ok(ring) => {
                    assert!(ring.fd().is_none(), "a REGISTERED_FD_ONLY ring has no fd");
                    assert!(ring.uses_registered_fd());
                }
                Err(e) if i == 0 && !common::kernel().at_least(6, 13) => {
                    eprintln!("ring-skip: {test}: {e}");
                    return;
                }
                Err(e) => panic!("ring {i}: {e}"),
            }
        }
        // And dropping it frees the ring: its teardown cancels a pending
        // read and posts the CQE into the (lent) ring memory.
        let Some((mut ring, base, params)) = common::lent_ring(test, true) else {
            return;
        };
        let (rd, _wr) = common::pipe();
        common::pending_read(&mut ring, rd.as_raw_fd(), 9);
        let tail = common::cq_tail(base, &params);
        drop(ring);
        assert!(
            common::wait_until(std::time::Duration::from_secs(2), || {
                tail.load(std::sync::atomic::Ordering::Acquire) == 1
            }),
            "the dropped ring was never freed"
        );
        let cqe = common::first_cqe(base, &params);
        assert_eq!((cqe.user_data, cqe.res), (9, -libc::ECANCELED));
    })
    .join()
    .unwrap();
}

#[test]
fn a_registered_fd_only_ring_is_used_by_its_index_and_only_on_its_thread() {
    let test = "a_registered_fd_only_ring_is_used_by_its_index_and_only_on_its_thread";
    use std::sync::mpsc;
    // Thread A makes a plain ring `other` with fd `c`, fills slots 0..c of
    // its table, then sets up the index-only ring `r`, which gets index `c`:
    // the same number as `other`'s fd. Any call that passed r's index as an
    // fd would act on `other`.
    let (to_test, from_a) = mpsc::channel();
    let (to_a, from_test) = mpsc::channel::<()>();
    let a = std::thread::spawn(move || {
        let other = Builder::new(4).register_ring_fd(false).build().unwrap();
        let c = other.fd().unwrap().as_raw_fd();
        if c >= 16 {
            let _ = to_test.send(Err(format!("fd {c} is past the 16-slot table")));
            return;
        }
        let mut fillers = Vec::new();
        for _ in 0..c {
            let filler = Ring::new(1).unwrap();
            if !filler.uses_registered_fd() {
                let _ = to_test.send(Err("no IORING_REGISTER_RING_FDS (5.18)".into()));
                return;
            }
            fillers.push(filler);
        }
        let Some((mut r, base, params)) = common::lent_ring(test, true) else {
            let _ = to_test.send(Err("no REGISTERED_FD_ONLY ring here".into()));
            return;
        };
        let (rd, wr) = common::pipe();
        common::pending_read(&mut r, rd.as_raw_fd(), 3);
        // On its own thread, registration reaches r, not `other`.
        let id = r.registrar().register_personality().unwrap();
        assert_eq!(
            other
                .registrar()
                .unregister_personality(id)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EINVAL),
            "a registration meant for the index-only ring reached the ring whose fd is its index"
        );
        r.registrar().unregister_personality(id).unwrap();
        assert!(r.probe().is_ok());
        // Hand r to the test thread; keep `other` and the fillers alive
        // (and this thread's table) until told to exit.
        to_test.send(Ok((r, base as usize, params))).unwrap();
        let _ = from_test.recv();
        drop((other, fillers, rd, wr));
    });
    let (mut r, base, params) = match from_a.recv().unwrap() {
        Ok(got) => got,
        Err(why) => {
            a.join().unwrap();
            skip!(test, "{why}");
        }
    };
    // On this thread the index names nothing of r's: every call is refused
    // here, none reaches the kernel (where fd `c` is `other`).
    assert!(r.fd().is_none());
    assert!(!r.uses_registered_fd());
    let (rd, _wr) = common::pipe();
    let read = ring_io_ops::Read::new(ring_io_ops::Fd(rd.as_raw_fd()), std::ptr::null_mut(), 0)
        .build()
        .user_data(1);
    // SAFETY: never submitted (refused below); a zero-length read anyway.
    unsafe { r.sq().push(read) }.unwrap();
    let err = r.submitter().submit().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    let err = r.probe().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("REGISTERED_FD_ONLY"), "{err}");
    assert!(r.registrar().register_personality().is_err());
    // Dropped here, it cannot be unregistered (only A's table holds it):
    // it lives on, its read pending, until A exits.
    let tail = common::cq_tail(base as *mut u8, &params);
    drop(r);
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_eq!(tail.load(std::sync::atomic::Ordering::Acquire), 0);
    to_a.send(()).unwrap();
    a.join().unwrap();
    // A exited: the kernel cancelled its requests and dropped its table,
    // and with it the ring.
    assert!(
        common::wait_until(std::time::Duration::from_secs(2), || {
            tail.load(std::sync::atomic::Ordering::Acquire) == 1
        }),
        "the ring outlived the thread whose table held it"
    );
}
