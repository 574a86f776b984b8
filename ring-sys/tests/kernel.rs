//! ring-sys against the running kernel: the raw syscalls, the params and
//! offsets the kernel fills in, and one NOP through hand-mapped rings.
//!
//! A test the running kernel cannot run prints `ring-skip: <test>: <reason>`
//! on stderr and returns; `cargo xtask test-kernel` counts those lines.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use ring_io_sys::*;

macro_rules! skip {
    ($test:literal, $($reason:tt)*) => {{
        eprintln!("ring-skip: {}: {}", $test, format_args!($($reason)*));
        return;
    }};
}

/// Sets up a ring, or says why io_uring is unavailable.
fn setup(entries: u32, params: &mut io_uring_params) -> Result<i32, Errno> {
    // SAFETY: `params` is a valid, exclusively borrowed io_uring_params.
    unsafe { io_uring_setup(entries, params) }
}

fn close(fd: i32) {
    // SAFETY: `fd` is an fd this test owns and closes once.
    unsafe { libc::close(fd) };
}

#[test]
fn setup_fills_in_geometry_and_features() {
    let mut p = io_uring_params::default();
    let fd = match setup(8, &mut p) {
        Ok(fd) => fd,
        Err(e) => skip!(
            "setup_fills_in_geometry_and_features",
            "io_uring_setup failed: {e}"
        ),
    };
    assert!(fd >= 0);
    assert_eq!(p.sq_entries, 8);
    assert_eq!(p.cq_entries, 16, "the CQ defaults to twice the SQ");
    let features = Features::from_bits_retain(p.features);
    assert!(
        features.contains(Features::SINGLE_MMAP),
        "every kernel since 5.4: {features:?}"
    );
    // The kernel's offsets must lie inside the ring it describes.
    assert!(p.sq_off.array == 0 || p.sq_off.array > p.sq_off.tail);
    assert!(p.cq_off.cqes > p.cq_off.tail);
    close(fd);
}

#[test]
fn setup_rejects_unknown_flags_with_einval() {
    let mut p = io_uring_params {
        flags: 1 << 31,
        ..Default::default()
    };
    match setup(4, &mut p) {
        Err(e) => assert_eq!(e, Errno::EINVAL),
        Ok(fd) => {
            close(fd);
            panic!("a kernel accepted IORING_SETUP bit 31");
        }
    }
}

#[test]
fn nop_round_trip_through_hand_mapped_rings() {
    let mut p = io_uring_params::default();
    let fd = match setup(4, &mut p) {
        Ok(fd) => fd,
        Err(e) => skip!(
            "nop_round_trip_through_hand_mapped_rings",
            "io_uring_setup failed: {e}"
        ),
    };
    if !Features::from_bits_retain(p.features).contains(Features::SINGLE_MMAP) {
        close(fd);
        skip!(
            "nop_round_trip_through_hand_mapped_rings",
            "kernel lacks IORING_FEAT_SINGLE_MMAP (5.4)"
        );
    }
    let sq_len = (p.sq_off.array + p.sq_entries * 4) as usize;
    let cq_len = (p.cq_off.cqes as usize) + p.cq_entries as usize * size_of::<io_uring_cqe>();
    let ring_len = sq_len.max(cq_len);
    let sqes_len = p.sq_entries as usize * size_of::<io_uring_sqe>();
    // SAFETY: mapping the ring fd at the documented offsets with the sizes
    // the kernel's params imply; the results are checked before use.
    let ring = unsafe {
        libc::mmap(
            ptr::null_mut(),
            ring_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            IORING_OFF_SQ_RING as i64,
        )
    };
    // SAFETY: as above, for the SQE array.
    let sqes = unsafe {
        libc::mmap(
            ptr::null_mut(),
            sqes_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            IORING_OFF_SQES as i64,
        )
    };
    assert_ne!(ring, libc::MAP_FAILED);
    assert_ne!(sqes, libc::MAP_FAILED);
    let at = |off: u32| -> &AtomicU32 {
        // SAFETY: every offset the kernel reports is a 4-aligned u32 inside
        // the ring mapping, which outlives this closure's uses.
        unsafe { &*ring.cast::<u8>().add(off as usize).cast::<AtomicU32>() }
    };
    let mask = at(p.sq_off.ring_mask).load(Ordering::Relaxed);
    let tail = at(p.sq_off.tail).load(Ordering::Relaxed);
    let index = tail & mask;
    let mut sqe = io_uring_sqe::zeroed();
    sqe.opcode = IORING_OP_NOP;
    sqe.user_data = 0x1234_5678_9abc_def0;
    // SAFETY: `index` < sq_entries, so the slot and the array entry are in
    // their mappings; the kernel does not read them until the tail moves.
    unsafe {
        sqes.cast::<io_uring_sqe>().add(index as usize).write(sqe);
        ring.cast::<u8>()
            .add(p.sq_off.array as usize)
            .cast::<u32>()
            .add(index as usize)
            .write(index);
    }
    // Release pairs with the kernel's smp_load_acquire of the SQ tail.
    at(p.sq_off.tail).store(tail.wrapping_add(1), Ordering::Release);
    // SAFETY: one fully written NOP is published; it carries no pointers.
    let submitted = unsafe { io_uring_enter(fd, 1, 1, IORING_ENTER_GETEVENTS, ptr::null()) };
    assert_eq!(submitted, Ok(1));
    // Acquire pairs with the kernel's smp_store_release of the CQ tail.
    let cq_tail = at(p.cq_off.tail).load(Ordering::Acquire);
    let cq_head = at(p.cq_off.head).load(Ordering::Relaxed);
    assert_eq!(cq_tail.wrapping_sub(cq_head), 1);
    let cq_mask = at(p.cq_off.ring_mask).load(Ordering::Relaxed);
    // SAFETY: the CQE at head is inside the mapping and was published by the tail.
    let cqe = unsafe {
        ring.cast::<u8>()
            .add(p.cq_off.cqes as usize)
            .cast::<io_uring_cqe>()
            .add((cq_head & cq_mask) as usize)
            .read()
    };
    at(p.cq_off.head).store(cq_head.wrapping_add(1), Ordering::Release);
    assert_eq!(cqe.user_data, 0x1234_5678_9abc_def0);
    assert_eq!(cqe.res, 0);
    assert_eq!(at(p.sq_off.dropped).load(Ordering::Relaxed), 0);
    // SAFETY: unmapping what was mapped above; nothing refers to it any more.
    unsafe {
        libc::munmap(ring, ring_len);
        libc::munmap(sqes, sqes_len);
    }
    close(fd);
}

#[test]
fn probe_reports_every_opcode_up_to_its_last() {
    let mut p = io_uring_params::default();
    let fd = match setup(2, &mut p) {
        Ok(fd) => fd,
        Err(e) => skip!(
            "probe_reports_every_opcode_up_to_its_last",
            "io_uring_setup failed: {e}"
        ),
    };
    #[repr(C)]
    struct Probe {
        head: io_uring_probe,
        ops: [io_uring_probe_op; 256],
    }
    // SAFETY: all-zero is a valid value of these plain-integer structs.
    let mut probe: Probe = unsafe { core::mem::zeroed() };
    // SAFETY: the buffer has room for 256 ops, as `nr_args` says.
    let res = unsafe {
        io_uring_register(
            fd,
            IORING_REGISTER_PROBE,
            (&raw mut probe).cast::<c_void>(),
            256,
        )
    };
    close(fd);
    match res {
        Err(Errno::EINVAL) => skip!(
            "probe_reports_every_opcode_up_to_its_last",
            "IORING_REGISTER_PROBE needs Linux 5.6"
        ),
        other => assert_eq!(other, Ok(0)),
    }
    let last = probe.head.last_op;
    assert_eq!(usize::from(probe.head.ops_len), usize::from(last) + 1);
    for (i, op) in probe.ops[..=usize::from(last)].iter().enumerate() {
        assert_eq!(usize::from(op.op), i);
    }
    let supported = |op: u8| {
        ProbeOpFlags::from_bits_retain(probe.ops[usize::from(op)].flags)
            .contains(ProbeOpFlags::SUPPORTED)
    };
    assert!(supported(IORING_OP_NOP));
    assert!(supported(IORING_OP_READV));
    if last >= IORING_OP_LAST {
        eprintln!(
            "note: this kernel knows {} opcodes, more than the {} of Linux 6.18",
            last + 1,
            IORING_OP_LAST
        );
    }
}

#[test]
fn enter_with_ext_arg_times_out_with_etime() {
    let mut p = io_uring_params::default();
    let fd = match setup(2, &mut p) {
        Ok(fd) => fd,
        Err(e) => skip!(
            "enter_with_ext_arg_times_out_with_etime",
            "io_uring_setup failed: {e}"
        ),
    };
    if !Features::from_bits_retain(p.features).contains(Features::EXT_ARG) {
        close(fd);
        skip!(
            "enter_with_ext_arg_times_out_with_etime",
            "kernel lacks IORING_FEAT_EXT_ARG (5.11)"
        );
    }
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 5_000_000,
    };
    let arg = io_uring_getevents_arg {
        ts: (&raw const ts) as u64,
        ..Default::default()
    };
    // SAFETY: nothing is submitted; `arg` and the timespec outlive the call.
    let res = unsafe {
        io_uring_enter2(
            fd,
            0,
            1,
            IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
            (&raw const arg).cast::<c_void>(),
            size_of::<io_uring_getevents_arg>(),
        )
    };
    close(fd);
    assert_eq!(res, Err(Errno::ETIME));
}

#[test]
fn query_opcodes_agrees_with_probe() {
    let mut out = io_uring_query_opcode::default();
    let mut hdr = io_uring_query_hdr {
        query_data: (&raw mut out) as u64,
        query_op: IO_URING_QUERY_OPCODES,
        size: size_of::<io_uring_query_opcode>() as u32,
        ..Default::default()
    };
    // SAFETY: `hdr` points at `out`, both valid for the call; no ring is needed.
    let res = unsafe {
        io_uring_register(
            -1,
            IORING_REGISTER_QUERY,
            (&raw mut hdr).cast::<c_void>(),
            0,
        )
    };
    match res {
        Err(Errno::EINVAL) | Err(Errno::EBADF) => {
            skip!(
                "query_opcodes_agrees_with_probe",
                "IORING_REGISTER_QUERY needs Linux 6.18 ({})",
                res.unwrap_err()
            )
        }
        other => assert_eq!(other, Ok(0)),
    }
    assert_eq!(hdr.result, 0);
    assert!(
        out.nr_request_opcodes >= u32::from(IORING_OP_LAST),
        "6.18 has {} opcodes",
        IORING_OP_LAST
    );
    assert!(out.nr_register_opcodes >= IORING_REGISTER_LAST);
    assert_eq!(
        out.ring_setup_flags & u64::from(SetupFlags::all().bits()),
        u64::from(SetupFlags::all().bits())
    );
    assert_eq!(out.sqe_flags, u64::from(SqeFlags::all().bits()));
}
