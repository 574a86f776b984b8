//! Registration against the running kernel. Tests that need a submission
//! (fixed reads and writes, buffer rings) live with the queue tests.

mod common;

use std::io;
use std::os::fd::AsRawFd;

use ring_driver::{Builder, CancelTarget, Restriction, Ring};

fn unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
}

#[test]
fn files_register_sparse_update_and_unregister() {
    let ring = Ring::new(4).unwrap();
    let reg = ring.registrar();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    reg.register_files(&[file.as_raw_fd(), -1]).unwrap();
    // Registering twice is refused: the table is already there.
    assert_eq!(
        reg.register_files(&[file.as_raw_fd()])
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EBUSY)
    );
    assert_eq!(
        reg.register_files_update(1, &[file.as_raw_fd()]).unwrap(),
        1
    );
    // An update past the table is refused, not ignored.
    assert_eq!(
        reg.register_files_update(2, &[file.as_raw_fd()])
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
                reg.register_files_update(63, &[file.as_raw_fd()]).unwrap(),
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
    dst.registrar().clone_buffers_from(&src, false).unwrap();
    // Cloning again onto a ring that has buffers needs DST_REPLACE.
    assert!(dst.registrar().clone_buffers_from(&src, false).is_err());
    match dst.registrar().clone_buffers_from(&src, true) {
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
    // SAFETY: plain syscall; the fd is closed below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    reg.register_eventfd(efd, false).unwrap();
    assert_eq!(
        reg.register_eventfd(efd, false).unwrap_err().raw_os_error(),
        Some(libc::EBUSY)
    );
    reg.unregister_eventfd().unwrap();
    reg.register_eventfd(efd, true).unwrap();
    reg.unregister_eventfd().unwrap();
    // SAFETY: closing the eventfd created above.
    unsafe { libc::close(efd) };

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
        Restriction::SqeOp(ring_sys::IORING_OP_NOP),
        Restriction::RegisterOp(ring_sys::IORING_REGISTER_PROBE as u8),
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
