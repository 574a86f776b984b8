//! Field placement of the variants the `io-uring` crate lacks, checked
//! against liburing's `io_uring_prep_*` encoding (src/include/liburing.h),
//! written here as facts: which value lands at which byte offset.
//!
//! Offsets of `struct io_uring_sqe`: opcode 0, flags 1, ioprio 2, fd 4,
//! off/addr2/cmd_op 8, addr/splice_off_in/level 16 (optname 20), len 24,
//! op_flags 28, user_data 32, buf_index/buf_group 40, personality 42,
//! file_index/optlen/addr_len 44, addr3/optval/cmd 48, __pad2 56.

mod common;

use common::{garbage_sqe, sqe_bytes, sqe128_bytes};
use proptest::prelude::*;
use ring_io_ops::*;
use ring_io_sys::*;

/// The fields of an encoded entry, decoded from its bytes.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct F {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: u32,
    addr3: u64,
    pad2: u64,
}

fn fields(e: Entry) -> F {
    let b = sqe_bytes(e.into_sqe());
    let u16_at = |i: usize| u16::from_ne_bytes(b[i..i + 2].try_into().unwrap());
    let u32_at = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap());
    let u64_at = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap());
    F {
        opcode: b[0],
        flags: b[1],
        ioprio: u16_at(2),
        fd: u32_at(4) as i32,
        off: u64_at(8),
        addr: u64_at(16),
        len: u32_at(24),
        op_flags: u32_at(28),
        user_data: u64_at(32),
        buf_index: u16_at(40),
        personality: u16_at(42),
        file_index: u32_at(44),
        addr3: u64_at(48),
        pad2: u64_at(56),
    }
}

fn p<T>(addr: u64) -> *const T {
    addr as usize as *const T
}

fn mp<T>(addr: u64) -> *mut T {
    addr as usize as *mut T
}

/// `io_uring_prep_rw(op, sqe, fd, addr, len, off)`: the base of most preps.
fn prep_rw(op: u8, fd: i32, addr: u64, len: u32, off: u64) -> F {
    F {
        opcode: op,
        fd,
        addr,
        len,
        off,
        ..F::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// `io_uring_prep_nop`, then `nop_flags = IORING_NOP_INJECT_RESULT` and
    /// `len = res` (liburing test/nop.c).
    #[test]
    fn nop_inject_result(res: i32) {
        let want = F { op_flags: IORING_NOP_INJECT_RESULT, ..prep_rw(IORING_OP_NOP, -1, 0, res as u32, 0) };
        prop_assert_eq!(fields(Nop::new().inject_result(res).build()), want);
    }

    /// liburing test/nop32.c: `io_uring_prep_nop`, then `nop_flags =
    /// IORING_NOP_CQE32`, `off` and `addr` the CQE's two extra words (the
    /// kernel's `io_nop_prep` reads them there); with an injected result
    /// both flags and `len`.
    #[test]
    fn nop_cqe32(extra1: u64, extra2: u64, inject: Option<i32>) {
        let mut op = Nop::new().cqe32(extra1, extra2);
        let mut want = F { op_flags: IORING_NOP_CQE32, ..prep_rw(IORING_OP_NOP, -1, extra2, 0, extra1) };
        if let Some(res) = inject {
            op = op.inject_result(res);
            want.op_flags |= IORING_NOP_INJECT_RESULT;
            want.len = res as u32;
        }
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_poll_multishot`: `len = IORING_POLL_ADD_MULTI`; level
    /// triggering adds `IORING_POLL_ADD_LEVEL` to `len`.
    #[test]
    fn poll_add_multishot_level(fd: i32, mask: u32, multi: bool, level: bool) {
        let mut op = PollAdd::new(Fd(fd), mask);
        let mut len = 0;
        if multi { op = op.multishot(); len |= IORING_POLL_ADD_MULTI; }
        if level { op = op.level_triggered(); len |= IORING_POLL_ADD_LEVEL; }
        let want = F { op_flags: mask, ..prep_rw(IORING_OP_POLL_ADD, fd, 0, len, 0) };
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_poll_update(sqe, old, new, mask, flags)`:
    /// `prep_rw(POLL_REMOVE, -1, NULL, flags, new)`, `addr = old`,
    /// `poll32_events = mask`.
    #[test]
    fn poll_update(old: u64, new: Option<u64>, mask: Option<u32>, multi: bool) {
        let mut op = PollUpdate::new(old);
        let mut flags = 0;
        if let Some(mask) = mask { op = op.events(mask); flags |= IORING_POLL_UPDATE_EVENTS; }
        if let Some(new) = new { op = op.user_data(new); flags |= IORING_POLL_UPDATE_USER_DATA; }
        if multi { op = op.multishot(); flags |= IORING_POLL_ADD_MULTI; }
        let want = F {
            op_flags: mask.unwrap_or(0),
            ..prep_rw(IORING_OP_POLL_REMOVE, -1, old, flags, new.unwrap_or(0))
        };
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_timeout_update(sqe, ts, ud, IORING_LINK_TIMEOUT_UPDATE)`:
    /// `prep_rw(TIMEOUT_REMOVE, -1, NULL, 0, ts)`, `addr = ud`,
    /// `timeout_flags = flags | IORING_TIMEOUT_UPDATE`.
    #[test]
    fn link_timeout_update(ud: u64, ts: u64, abs: bool) {
        let mut op = TimeoutUpdate::new(ud, p(ts)).linked();
        let mut flags = IORING_LINK_TIMEOUT_UPDATE | IORING_TIMEOUT_UPDATE;
        if abs { op = op.absolute(); flags |= IORING_TIMEOUT_ABS; }
        let want = F { op_flags: flags, ..prep_rw(IORING_OP_TIMEOUT_REMOVE, -1, ud, 0, ts) };
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_timeout(sqe, ts, count, IORING_TIMEOUT_MULTISHOT)`.
    #[test]
    fn timeout_multishot(ts: u64, count: u32) {
        let want = F {
            op_flags: IORING_TIMEOUT_MULTISHOT,
            ..prep_rw(IORING_OP_TIMEOUT, -1, ts, 1, u64::from(count))
        };
        prop_assert_eq!(fields(Timeout::new(p(ts)).count(count).multishot().build()), want);
    }

    /// `io_uring_prep_multishot_accept_direct`: `ioprio |= ACCEPT_MULTISHOT`,
    /// `file_index = IORING_FILE_INDEX_ALLOC`; `IORING_ACCEPT_POLL_FIRST` and
    /// `IORING_ACCEPT_DONTWAIT` are ioprio bits too (io_uring.h).
    #[test]
    fn accept_ioprio_options(fd: i32, flags: i32, poll_first: bool, dontwait: bool) {
        let mut op = Accept::new(Fd(fd)).flags(flags).multishot().direct(DirectSlot::ALLOC);
        let mut ioprio = IORING_ACCEPT_MULTISHOT;
        if poll_first { op = op.poll_first(); ioprio |= IORING_ACCEPT_POLL_FIRST; }
        if dontwait { op = op.dontwait(); ioprio |= IORING_ACCEPT_DONTWAIT; }
        let want = F {
            ioprio,
            op_flags: flags as u32,
            file_index: IORING_FILE_INDEX_ALLOC,
            ..prep_rw(IORING_OP_ACCEPT, fd, 0, 0, 0)
        };
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_cancel_fd(sqe, fd, flags)`: `prep_rw(ASYNC_CANCEL, fd,
    /// NULL, 0, 0)`, `cancel_flags = flags | IORING_ASYNC_CANCEL_FD`; for an
    /// opcode match the kernel reads the opcode from `len`
    /// (`IORING_ASYNC_CANCEL_OP`), and `IORING_ASYNC_CANCEL_USERDATA` marks
    /// `addr` as an added criterion.
    #[test]
    fn async_cancel_combined(fd: i32, fixed: bool, opcode: u8, ud: Option<u64>, all: bool) {
        let mut op = if fixed {
            AsyncCancel::by_fd(Fixed(fd as u32))
        } else {
            AsyncCancel::by_fd(Fd(fd))
        }
        .and_opcode(opcode);
        let mut flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_OP;
        if fixed { flags |= IORING_ASYNC_CANCEL_FD_FIXED; }
        if let Some(ud) = ud { op = op.and_user_data(ud); flags |= IORING_ASYNC_CANCEL_USERDATA; }
        if all { op = op.all(); flags |= IORING_ASYNC_CANCEL_ALL; }
        let want = F {
            op_flags: flags,
            ..prep_rw(IORING_OP_ASYNC_CANCEL, fd, ud.unwrap_or(0), u32::from(opcode), 0)
        };
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_msg_ring(sqe, fd, len, data, flags)` and
    /// `io_uring_prep_msg_ring_cqe_flags`: `prep_rw(MSG_RING, fd, NULL
    /// (= IORING_MSG_DATA), len, data)`, `msg_ring_flags`, and with flags
    /// passing `file_index = cqe_flags`. A registered ring fd is a fixed file.
    #[test]
    fn msg_ring_data(ring: i32, fixed: bool, len: i32, data: u64, cqe_flags: Option<u32>, skip: bool) {
        let mut op = if fixed {
            MsgRingData::new(Fixed(ring as u32), len, data)
        } else {
            MsgRingData::new(Fd(ring), len, data)
        };
        let mut flags = 0;
        if skip { op = op.skip_target_cqe(); flags |= IORING_MSG_RING_CQE_SKIP; }
        if let Some(f) = cqe_flags { op = op.cqe_flags(f); flags |= IORING_MSG_RING_FLAGS_PASS; }
        let want = F {
            flags: if fixed { IOSQE_FIXED_FILE } else { 0 },
            op_flags: flags,
            file_index: cqe_flags.unwrap_or(0),
            ..prep_rw(IORING_OP_MSG_RING, ring, IORING_MSG_DATA, len as u32, data)
        };
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_sendmsg_zc_fixed`: `ioprio |= IORING_RECVSEND_FIXED_BUF`,
    /// `buf_index`.
    #[test]
    fn fixed_buffer_sends(fd: i32, msg: u64, flags: u32, idx: u16) {
        let want = F {
            ioprio: IORING_RECVSEND_FIXED_BUF,
            op_flags: flags,
            buf_index: idx,
            ..prep_rw(IORING_OP_SENDMSG_ZC, fd, msg, 1, 0)
        };
        prop_assert_eq!(fields(SendMsgZc::new(Fd(fd), p(msg)).flags(flags).fixed_buffer(idx).build()), want);
    }

    /// `io_uring_prep_send(sqe, fd, NULL, len, flags)` with
    /// `IOSQE_BUFFER_SELECT` and `buf_group` (liburing test/recvsend_bundle.c,
    /// without and with `IORING_RECVSEND_BUNDLE`).
    #[test]
    fn send_select(fd: i32, group: u16, len: u32, flags: i32, bundle: bool) {
        let op = Send::select(Fd(fd), group, len).flags(flags);
        let (op, ioprio) = if bundle { (op.bundle(), IORING_RECVSEND_BUNDLE) } else { (op, 0) };
        let want = F {
            flags: IOSQE_BUFFER_SELECT,
            ioprio,
            op_flags: flags as u32,
            buf_index: group,
            ..prep_rw(IORING_OP_SEND, fd, 0, len, 0)
        };
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `IORING_SEND_VECTORIZED` (io_uring_prep_send.3): `addr` is an iovec
    /// array and `len` its length, the flag in `ioprio`; for SEND and SEND_ZC.
    #[test]
    fn send_vectored(fd: i32, iov: u64, n: u32, flags: i32) {
        let want = |op| F {
            ioprio: IORING_SEND_VECTORIZED,
            op_flags: flags as u32,
            ..prep_rw(op, fd, iov, n, 0)
        };
        prop_assert_eq!(fields(Send::vectored(Fd(fd), p(iov), n).flags(flags).build()), want(IORING_OP_SEND));
        prop_assert_eq!(fields(SendZc::vectored(Fd(fd), p(iov), n).flags(flags).build()), want(IORING_OP_SEND_ZC));
    }

    /// Read/write attributes (io_uring.h, Linux 6.14): `attr_ptr` at 48 and
    /// `attr_type_mask = IORING_RW_ATTR_FLAG_PI` at 56, on every read/write
    /// op, next to the other fields (the write stream at 44 included).
    #[test]
    fn rw_protection_information(fd: i32, buf: u64, len: u32, off: u64, idx: u16, ws: u8) {
        let pi = io_uring_attr_pi::default();
        let at = &pi as *const io_uring_attr_pi as usize as u64;
        let with_pi = |f: F| F { addr3: at, pad2: IORING_RW_ATTR_FLAG_PI, ..f };
        prop_assert_eq!(
            fields(Read::new(Fd(fd), mp(buf), len).offset(off).pi(&pi).build()),
            with_pi(fields(Read::new(Fd(fd), mp(buf), len).offset(off).build()))
        );
        prop_assert_eq!(
            fields(Writev::new(Fd(fd), p(buf), len).offset(off).write_stream(ws).pi(&pi).build()),
            with_pi(fields(Writev::new(Fd(fd), p(buf), len).offset(off).write_stream(ws).build()))
        );
        prop_assert_eq!(
            fields(WriteFixed::new(Fd(fd), p(buf), len, idx).pi(&pi).build()),
            with_pi(fields(WriteFixed::new(Fd(fd), p(buf), len, idx).build()))
        );
        prop_assert_eq!(
            fields(ReadvFixed::new(Fd(fd), p(buf), len, idx).pi(&pi).build()),
            with_pi(fields(ReadvFixed::new(Fd(fd), p(buf), len, idx).build()))
        );
        let base = fields(Readv::new(Fd(fd), p(buf), len).build());
        prop_assert_eq!((base.addr3, base.pad2), (0, 0));
    }

    /// `io_uring_prep_cmd_sock(sqe, cmd_op, fd, level, optname, optval, optlen)`:
    /// `cmd_op` at 8 (`__pad1` 0), `level`/`optname` at 16/20, `len` 0,
    /// `optlen` at 44, `optval` at 48.
    #[test]
    fn socket_commands(fd: i32, level: u32, optname: u32, optval: u64, optlen: u32) {
        let sock = |cmd_op: u32, level: u32, optname: u32, optval: u64, optlen: u32| F {
            opcode: IORING_OP_URING_CMD,
            fd,
            off: u64::from(cmd_op),
            addr: {
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&level.to_ne_bytes());
                b[4..].copy_from_slice(&optname.to_ne_bytes());
                u64::from_ne_bytes(b)
            },
            file_index: optlen,
            addr3: optval,
            ..F::default()
        };
        prop_assert_eq!(
            fields(SocketCmd::getsockopt(Fd(fd), level, optname, mp(optval), optlen).build()),
            sock(SOCKET_URING_OP_GETSOCKOPT, level, optname, optval, optlen)
        );
        prop_assert_eq!(
            fields(SocketCmd::setsockopt(Fd(fd), level, optname, p(optval), optlen).build()),
            sock(SOCKET_URING_OP_SETSOCKOPT, level, optname, optval, optlen)
        );
        prop_assert_eq!(fields(SocketCmd::siocinq(Fd(fd)).build()), sock(SOCKET_URING_OP_SIOCINQ, 0, 0, 0, 0));
        prop_assert_eq!(fields(SocketCmd::siocoutq(Fd(fd)).build()), sock(SOCKET_URING_OP_SIOCOUTQ, 0, 0, 0, 0));
        prop_assert_eq!(
            fields(SocketCmd::tx_timestamp(Fd(fd)).build()),
            sock(SOCKET_URING_OP_TX_TIMESTAMP, 0, 0, 0, 0)
        );
    }

    /// A multishot uring command (Linux 6.18): `uring_cmd_flags =
    /// IORING_URING_CMD_MULTISHOT`, with buffer select from `buf_group`.
    #[test]
    fn uring_cmd_multishot(fd: i32, cmd_op: u32, group: u16, cmd: [u8; 16]) {
        let want = F {
            opcode: IORING_OP_URING_CMD,
            flags: IOSQE_BUFFER_SELECT,
            fd,
            off: u64::from(cmd_op),
            op_flags: IORING_URING_CMD_MULTISHOT,
            buf_index: group,
            addr3: u64::from_ne_bytes(cmd[..8].try_into().unwrap()),
            pad2: u64::from_ne_bytes(cmd[8..].try_into().unwrap()),
            ..F::default()
        };
        prop_assert_eq!(fields(UringCmd16::new(Fd(fd), cmd_op).cmd(cmd).multishot(group).build()), want);
    }

    /// `io_uring_prep_pipe_direct(sqe, fds, flags, slot)`: `prep_rw(PIPE, 0,
    /// fds, 0, 0)`, `pipe_flags`, `file_index = slot + 1`.
    #[test]
    fn pipe_direct(fds: u64, flags: u32, slot in 0..=u32::MAX - 2) {
        let want = F { op_flags: flags, file_index: slot + 1, ..prep_rw(IORING_OP_PIPE, 0, fds, 0, 0) };
        let op = Pipe::new(mp(fds)).flags(flags).direct(DirectSlot::at(slot).unwrap());
        prop_assert_eq!(fields(op.build()), want);
    }

    /// `io_uring_prep_close_direct(sqe, idx)`: `fd = 0`, `file_index = idx + 1`,
    /// no `IOSQE_FIXED_FILE`.
    #[test]
    fn close_direct(idx in 0..u32::MAX) {
        let want = F { file_index: idx + 1, ..prep_rw(IORING_OP_CLOSE, 0, 0, 0, 0) };
        prop_assert_eq!(fields(Close::new(Fixed(idx)).build()), want);
    }

    /// Entry setters only add SQE flags: the op's `IOSQE_FIXED_FILE` and
    /// `IOSQE_BUFFER_SELECT` survive `link`, `drain`, ... and `flags`.
    #[test]
    fn entry_setters_keep_the_ops_flags(idx: u32, group: u16, ud: u64, pers: u16) {
        let e = Read::new(Fixed(idx), core::ptr::null_mut(), 0)
            .buffer_select(group)
            .build()
            .user_data(ud)
            .personality(pers)
            .link()
            .hardlink()
            .drain()
            .force_async()
            .skip_success();
        let f = fields(e);
        prop_assert_eq!(f.flags, 0x7f);
        prop_assert_eq!(f.user_data, ud);
        prop_assert_eq!(f.personality, pers);
        prop_assert_eq!(e.get_user_data(), ud);
        prop_assert_eq!(e.info().map(|i| i.builder), Some("Read"));
        prop_assert_eq!(e.sqe_flags(), SqeFlags::all());
        prop_assert!(e.selects_buffer());
    }
}

#[test]
fn entry128_from_entry_has_a_zero_second_half() {
    let e = Nop::new().build().user_data(9);
    let big = Entry128::from(e);
    let bytes = sqe128_bytes(big.into_sqe128());
    assert_eq!(bytes[..64], sqe_bytes(e.into_sqe()));
    assert_eq!(bytes[64..], [0u8; 64]);
    assert_eq!(big.get_user_data(), 9);
}

#[test]
fn encode_overwrites_every_byte_of_a_used_slot() {
    let mut slot = garbage_sqe();
    Nop::new().encode(&mut slot);
    let mut want = [0u8; 64];
    want[4..8].copy_from_slice(&(-1i32).to_ne_bytes());
    assert_eq!(sqe_bytes(slot), want);
}

#[test]
fn direct_slots_are_encoded_plus_one() {
    assert_eq!(DirectSlot::at(0).map(DirectSlot::kernel_value), Some(1));
    assert_eq!(
        DirectSlot::at(u32::MAX - 2).map(DirectSlot::kernel_value),
        Some(u32::MAX - 1)
    );
    assert_eq!(DirectSlot::at(u32::MAX - 1), None);
    assert_eq!(DirectSlot::at(u32::MAX), None);
    assert_eq!(DirectSlot::ALLOC.kernel_value(), IORING_FILE_INDEX_ALLOC);
}

#[test]
fn fixed_targets_set_the_fixed_file_bit_and_index() {
    let f = fields(Read::new(Fixed(u32::MAX), core::ptr::null_mut(), 1).build());
    assert_eq!(f.flags, IOSQE_FIXED_FILE);
    assert_eq!(f.fd as u32, u32::MAX);
    let f = fields(Read::new(Fd(-1), core::ptr::null_mut(), 1).build());
    assert_eq!(f.flags, 0);
    assert_eq!(f.fd, -1);
}

#[test]
fn clock_choice_sets_exactly_one_clock_bit() {
    let ts = __kernel_timespec::default();
    for (clock, bits) in [
        (Clock::Monotonic, 0),
        (Clock::Boottime, IORING_TIMEOUT_BOOTTIME),
        (Clock::Realtime, IORING_TIMEOUT_REALTIME),
    ] {
        // Choosing twice keeps only the last clock.
        let op = Timeout::new(&ts).clock(Clock::Realtime).clock(clock);
        assert_eq!(fields(op.build()).op_flags, bits);
        let op = LinkTimeout::new(&ts).clock(Clock::Boottime).clock(clock);
        assert_eq!(fields(op.build()).op_flags, bits);
        let op = TimeoutUpdate::new(1, &ts)
            .clock(Clock::Boottime)
            .clock(clock);
        assert_eq!(fields(op.build()).op_flags, bits | IORING_TIMEOUT_UPDATE);
    }
}
