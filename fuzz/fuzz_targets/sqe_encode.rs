//! `sqe_encode`: an arbitrary op description is encoded by ring-ops (by value
//! with `build()`, and in place with `encode()` into a slot full of stale
//! bytes) and by the `io-uring` crate (the oracle); all three must be the
//! same 64 bytes. Covers every op the oracle has, with every typed option
//! that has an oracle counterpart.
#![no_main]

use core::ffi::c_void;

use arbitrary::Arbitrary;
use io_uring::{opcode as q, squeue, types};
use libfuzzer_sys::fuzz_target;
use ring_io_ops::{self as o, Clock, DirectSlot, OpCode};
use ring_io_sys::{SqeFlags, io_uring_sqe};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum T {
    Fd(i32),
    Fixed(u32),
}

/// The fields every entry has.
#[derive(Arbitrary, Debug)]
struct Common {
    user_data: u64,
    personality: u16,
    flags: u8,
    stale: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Clk {
    Monotonic,
    Boottime,
    Realtime,
}

/// A direct-descriptor choice: none, allocate, or a slot (reduced into range).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Slot {
    None,
    Alloc,
    At(u32),
}

#[derive(Arbitrary, Debug)]
enum Desc {
    Nop,
    Readv { t: T, iov: u64, n: u32, off: u64, rw: i32, prio: u16, group: Option<u16> },
    Writev { t: T, iov: u64, n: u32, off: u64, rw: i32, prio: u16, ws: u8 },
    Fsync { t: T, off: u64, len: u32, datasync: bool },
    ReadFixed { t: T, buf: u64, len: u32, idx: u16, off: u64, rw: i32, prio: u16 },
    WriteFixed { t: T, buf: u64, len: u32, idx: u16, off: u64, rw: i32, prio: u16, ws: u8 },
    PollAdd { t: T, events: u32, multi: bool },
    PollRemove { ud: u64 },
    SyncFileRange { t: T, len: u32, off: u64, flags: u32 },
    SendMsg { t: T, msg: u64, flags: u32, poll_first: bool },
    RecvMsg { t: T, msg: u64, flags: u32, poll_first: bool, group: Option<u16> },
    RecvMsgMulti { t: T, msg: u64, flags: u32, poll_first: bool, group: u16 },
    Timeout { ts: u64, count: u32, abs: bool, clock: Clk, etime: bool, multi: bool },
    TimeoutRemove { ud: u64 },
    TimeoutUpdate { ud: u64, ts: u64, abs: bool, clock: Clk, linked: bool },
    Accept { t: T, addr: u64, len: u64, flags: i32, slot: Slot },
    AcceptMulti { t: T, flags: i32, alloc: bool },
    AsyncCancel { ud: u64 },
    CancelUserData { ud: u64, all: bool },
    CancelAny { all: bool },
    CancelFd { t: T, all: bool },
    LinkTimeout { ts: u64, abs: bool, clock: Clk, etime: bool },
    Connect { t: T, addr: u64, len: u32 },
    Fallocate { t: T, len: u64, off: u64, mode: i32 },
    OpenAt { dirfd: i32, path: u64, flags: i32, mode: u32, slot: Slot },
    Close { t: T },
    FilesUpdate { fds: u64, len: u32, off: i32 },
    Statx { dirfd: i32, path: u64, buf: u64, flags: i32, mask: u32 },
    Read { t: T, buf: u64, len: u32, off: u64, rw: i32, prio: u16, group: Option<u16> },
    Write { t: T, buf: u64, len: u32, off: u64, rw: i32, prio: u16, ws: u8 },
    Fadvise { t: T, len: u32, advice: i32, off: u64 },
    Madvise { addr: u64, len: u32, advice: i32 },
    Send { t: T, buf: u64, len: u32, flags: i32, poll_first: bool, dest: Option<(u64, u16)> },
    SendBundle { t: T, group: u16, flags: i32, len: u32 },
    Recv { t: T, buf: u64, len: u32, flags: i32, poll_first: bool },
    RecvSelect { t: T, group: u16, flags: i32, len: u32, multi: bool },
    RecvBundle { t: T, group: u16, flags: i32, multi: bool },
    OpenAt2 { dirfd: i32, path: u64, how: u64, slot: Slot },
    EpollCtl { t: T, fd: i32, op: i32, ev: u64 },
    Splice { tin: T, off_in: i64, tout: T, off_out: i64, len: u32, flags: u32 },
    ProvideBuffers { addr: u64, len: u32, nbufs: u16, bgid: u16, bid: u16 },
    RemoveBuffers { nbufs: u16, bgid: u16 },
    Tee { tin: T, tout: T, len: u32, flags: u32 },
    Shutdown { t: T, how: i32 },
    RenameAt { od: i32, op: u64, nd: i32, np: u64, flags: u32 },
    UnlinkAt { dirfd: i32, path: u64, flags: i32 },
    MkDirAt { dirfd: i32, path: u64, mode: u32 },
    SymlinkAt { dirfd: i32, target: u64, link: u64 },
    LinkAt { od: i32, op: u64, nd: i32, np: u64, flags: i32 },
    MsgRingData { ring: i32, res: i32, ud: u64, cqe_flags: Option<u32> },
    MsgRingSendFd { ring: i32, src: u32, dest: Slot, ud: u64, skip: bool },
    FSetXattr { t: T, name: u64, value: u64, len: u32, flags: i32 },
    SetXattr { path: u64, name: u64, value: u64, len: u32, flags: i32 },
    FGetXattr { t: T, name: u64, value: u64, len: u32 },
    GetXattr { path: u64, name: u64, value: u64, len: u32 },
    Socket { domain: i32, ty: i32, proto: i32, flags: u32, slot: Slot },
    UringCmd16 { t: T, cmd_op: u32, cmd: [u8; 16], bi: Option<u16>, addr: Option<u64> },
    SetSockOpt { t: T, level: u32, optname: u32, optval: u64, optlen: u32 },
    SendZc { t: T, buf: u64, len: u32, flags: i32, report: bool, poll_first: bool, bi: Option<u16>, dest: Option<(u64, u16)> },
    SendMsgZc { t: T, msg: u64, flags: u32, report: bool, poll_first: bool },
    ReadMulti { t: T, len: u32, group: u16, off: u64 },
    WaitId { idtype: u32, id: u32, options: i32, infop: u64, flags: u32 },
    FutexWait { futex: u64, val: u64, mask: u64, ff: u32, flags: u32 },
    FutexWake { futex: u64, val: u64, mask: u64, ff: u32, flags: u32 },
    FutexWaitV { v: u64, nr: u32, flags: u32 },
    FixedFdInstall { idx: u32, no_cloexec: bool },
    Ftruncate { t: T, len: u64 },
    Bind { t: T, addr: u64, len: u32 },
    Listen { t: T, backlog: i32 },
    RecvZc { t: T, len: u32, ifq: u32 },
    EpollWait { t: T, events: u64, max: u32, flags: u32 },
    ReadvFixed { t: T, iov: u64, n: u32, idx: u16, off: u64, rw: i32, prio: u16 },
    WritevFixed { t: T, iov: u64, n: u32, idx: u16, off: u64, rw: i32, prio: u16, ws: u8 },
    Pipe { fds: u64, flags: u32, slot: Slot },
}

macro_rules! both {
    ($t:expr, |$ours:ident, $theirs:ident| $body:expr) => {
        match $t {
            T::Fd(fd) => {
                let $ours = o::Fd(fd);
                let $theirs = types::Fd(fd);
                $body
            }
            T::Fixed(i) => {
                let $ours = o::Fixed(i);
                let $theirs = types::Fixed(i);
                $body
            }
        }
    };
}

fn p<X>(a: u64) -> *const X {
    a as usize as *const X
}

fn mp<X>(a: u64) -> *mut X {
    a as usize as *mut X
}

fn bytes(sqe: io_uring_sqe) -> [u8; 64] {
    // SAFETY: io_uring_sqe is 64 bytes of integers and unions of integers,
    // no padding; every entry here was fully initialised.
    unsafe { core::mem::transmute::<io_uring_sqe, [u8; 64]>(sqe) }
}

/// Encodes `op` both ways, applies the common fields, and compares with the oracle.
fn run<O: OpCode>(op: O, theirs: squeue::Entry, c: &Common) {
    let flags = c.flags & 0b0101_1110;
    let theirs = theirs
        .user_data(c.user_data)
        .personality(c.personality)
        .flags(squeue::Flags::from_bits_retain(flags));
    // SAFETY: squeue::Entry is `#[repr(C)] struct Entry(io_uring_sqe)`, built
    // from mem::zeroed(), so 64 initialised bytes.
    let theirs = unsafe { core::mem::transmute::<squeue::Entry, [u8; 64]>(theirs) };
    let by_value = op
        .build()
        .user_data(c.user_data)
        .personality(c.personality)
        .flags(SqeFlags::from_bits_retain(flags));
    assert_eq!(bytes(by_value.into_sqe()), theirs, "build() differs from the oracle");

    // SAFETY: any 64 bytes are a valid io_uring_sqe (integers only).
    let mut slot = unsafe { core::mem::transmute::<[u8; 64], io_uring_sqe>([c.stale; 64]) };
    op.encode(&mut slot);
    slot.user_data = c.user_data;
    slot.personality = c.personality;
    slot.flags |= flags;
    assert_eq!(bytes(slot), theirs, "encode() differs from the oracle");
}

fn ours_slot(s: Slot) -> Option<DirectSlot> {
    match s {
        Slot::None => None,
        Slot::Alloc => Some(DirectSlot::ALLOC),
        Slot::At(i) => DirectSlot::at(i % (u32::MAX - 1)),
    }
}

fn their_slot(s: Slot) -> Option<types::DestinationSlot> {
    match s {
        Slot::None => None,
        Slot::Alloc => Some(types::DestinationSlot::auto_target()),
        Slot::At(i) => types::DestinationSlot::try_from_slot_target(i % (u32::MAX - 1)).ok(),
    }
}

fn clock(c: Clk) -> Clock {
    match c {
        Clk::Monotonic => Clock::Monotonic,
        Clk::Boottime => Clock::Boottime,
        Clk::Realtime => Clock::Realtime,
    }
}

fn tflags(abs: bool, c: Clk, etime: bool, multi: bool) -> types::TimeoutFlags {
    let mut f = types::TimeoutFlags::empty();
    f.set(types::TimeoutFlags::ABS, abs);
    f.set(types::TimeoutFlags::BOOTTIME, matches!(c, Clk::Boottime));
    f.set(types::TimeoutFlags::REALTIME, matches!(c, Clk::Realtime));
    f.set(types::TimeoutFlags::ETIME_SUCCESS, etime);
    f.set(types::TimeoutFlags::MULTISHOT, multi);
    f
}

fn pf(on: bool) -> u16 {
    if on { ring_io_sys::IORING_RECVSEND_POLL_FIRST } else { 0 }
}

fn sel(group: Option<u16>) -> squeue::Flags {
    if group.is_some() { squeue::Flags::BUFFER_SELECT } else { squeue::Flags::empty() }
}

fuzz_target!(|input: (Desc, Common)| {
    let (desc, c) = input;
    let c = &c;
    match desc {
        Desc::Nop => run(o::Nop::new(), q::Nop::new().build(), c),
        Desc::Readv { t, iov, n, off, rw, prio, group } => both!(t, |f, g| {
            let mut op = o::Readv::new(f, p(iov), n).offset(off).rw_flags(rw).ioprio(prio);
            if let Some(gr) = group {
                op = op.buffer_select(gr);
            }
            let th = q::Readv::new(g, p(iov), n).offset(off).rw_flags(rw).ioprio(prio);
            run(op, th.buf_group(group.unwrap_or(0)).build().flags(sel(group)), c)
        }),
        Desc::Writev { t, iov, n, off, rw, prio, ws } => both!(t, |f, g| run(
            o::Writev::new(f, p(iov), n).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws),
            q::Writev::new(g, p(iov), n).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws).build(),
            c
        )),
        Desc::Fsync { t, off, len, datasync } => {
            let ours = if datasync { ring_io_sys::FsyncFlags::DATASYNC } else { ring_io_sys::FsyncFlags::empty() };
            let theirs = if datasync { types::FsyncFlags::DATASYNC } else { types::FsyncFlags::empty() };
            both!(t, |f, g| run(
                o::Fsync::new(f).offset(off).len(len).flags(ours),
                q::Fsync::new(g).offset(off).len(len).flags(theirs).build(),
                c
            ))
        }
        Desc::ReadFixed { t, buf, len, idx, off, rw, prio } => both!(t, |f, g| run(
            o::ReadFixed::new(f, mp(buf), len, idx).offset(off).rw_flags(rw).ioprio(prio),
            q::ReadFixed::new(g, mp(buf), len, idx).offset(off).rw_flags(rw).ioprio(prio).build(),
            c
        )),
        Desc::WriteFixed { t, buf, len, idx, off, rw, prio, ws } => both!(t, |f, g| run(
            o::WriteFixed::new(f, p(buf), len, idx).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws),
            q::WriteFixed::new(g, p(buf), len, idx).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws).build(),
            c
        )),
        Desc::PollAdd { t, events, multi } => both!(t, |f, g| {
            let op = o::PollAdd::new(f, events);
            let op = if multi { op.multishot() } else { op };
            run(op, q::PollAdd::new(g, events).multi(multi).build(), c)
        }),
        Desc::PollRemove { ud } => run(o::PollRemove::new(ud), q::PollRemove::new(ud).build(), c),
        Desc::SyncFileRange { t, len, off, flags } => both!(t, |f, g| run(
            o::SyncFileRange::new(f, len).offset(off).flags(flags),
            q::SyncFileRange::new(g, len).offset(off).flags(flags).build(),
            c
        )),
        Desc::SendMsg { t, msg, flags, poll_first } => both!(t, |f, g| {
            let op = o::SendMsg::new(f, p(msg)).flags(flags);
            let op = if poll_first { op.poll_first() } else { op };
            run(op, q::SendMsg::new(g, p(msg)).flags(flags).ioprio(pf(poll_first)).build(), c)
        }),
        Desc::RecvMsg { t, msg, flags, poll_first, group } => both!(t, |f, g| {
            let mut op = o::RecvMsg::new(f, mp(msg)).flags(flags);
            if poll_first {
                op = op.poll_first();
            }
            if let Some(gr) = group {
                op = op.buffer_select(gr);
            }
            let th = q::RecvMsg::new(g, mp(msg)).flags(flags).ioprio(pf(poll_first));
            run(op, th.buf_group(group.unwrap_or(0)).build().flags(sel(group)), c)
        }),
        Desc::RecvMsgMulti { t, msg, flags, poll_first, group } => both!(t, |f, g| {
            let op = o::RecvMsg::new(f, mp(msg)).flags(flags).multishot(group);
            let op = if poll_first { op.poll_first() } else { op };
            run(op, q::RecvMsgMulti::new(g, p(msg), group).flags(flags).ioprio(pf(poll_first)).build(), c)
        }),
        Desc::Timeout { ts, count, abs, clock: k, etime, multi } => {
            let mut op = o::Timeout::new(p(ts)).count(count).clock(clock(k));
            if abs {
                op = op.absolute();
            }
            if etime {
                op = op.etime_success();
            }
            if multi {
                op = op.multishot();
            }
            run(op, q::Timeout::new(p(ts)).count(count).flags(tflags(abs, k, etime, multi)).build(), c)
        }
        Desc::TimeoutRemove { ud } => run(o::TimeoutRemove::new(ud), q::TimeoutRemove::new(ud).build(), c),
        Desc::TimeoutUpdate { ud, ts, abs, clock: k, linked } => {
            let mut op = o::TimeoutUpdate::new(ud, p(ts)).clock(clock(k));
            if abs {
                op = op.absolute();
            }
            if linked {
                op = op.linked();
            }
            let mut fl = tflags(abs, k, false, false);
            fl.set(types::TimeoutFlags::LINK_TIMEOUT_UPDATE, linked);
            run(op, q::TimeoutUpdate::new(ud, p(ts)).flags(fl).build(), c)
        }
        Desc::Accept { t, addr, len, flags, slot } => both!(t, |f, g| {
            let mut op = o::Accept::new(f).peer_addr(mp(addr), mp(len)).flags(flags);
            if let Some(s) = ours_slot(slot) {
                op = op.direct(s);
            }
            run(op, q::Accept::new(g, mp(addr), mp(len)).flags(flags).file_index(their_slot(slot)).build(), c)
        }),
        Desc::AcceptMulti { t, flags, alloc } => both!(t, |f, g| {
            let op = o::Accept::new(f).flags(flags).multishot();
            let op = if alloc { op.direct(DirectSlot::ALLOC) } else { op };
            run(op, q::AcceptMulti::new(g).flags(flags).allocate_file_index(alloc).build(), c)
        }),
        Desc::AsyncCancel { ud } => run(o::AsyncCancel::new(ud), q::AsyncCancel::new(ud).build(), c),
        Desc::CancelUserData { ud, all } => {
            let (op, b) = (o::AsyncCancel::new(ud), types::CancelBuilder::user_data(ud));
            let (op, b) = if all { (op.all(), b.all()) } else { (op, b) };
            run(op, q::AsyncCancel2::new(b).build(), c)
        }
        Desc::CancelAny { all } => {
            let (op, b) = (o::AsyncCancel::any(), types::CancelBuilder::any());
            let (op, b) = if all { (op.all(), b.all()) } else { (op, b) };
            run(op, q::AsyncCancel2::new(b).build(), c)
        }
        Desc::CancelFd { t, all } => both!(t, |f, g| {
            let (op, b) = (o::AsyncCancel::by_fd(f), types::CancelBuilder::fd(g));
            let (op, b) = if all { (op.all(), b.all()) } else { (op, b) };
            run(op, q::AsyncCancel2::new(b).build(), c)
        }),
        Desc::LinkTimeout { ts, abs, clock: k, etime } => {
            let mut op = o::LinkTimeout::new(p(ts)).clock(clock(k));
            if abs {
                op = op.absolute();
            }
            if etime {
                op = op.etime_success();
            }
            run(op, q::LinkTimeout::new(p(ts)).flags(tflags(abs, k, etime, false)).build(), c)
        }
        Desc::Connect { t, addr, len } => both!(t, |f, g| run(
            o::Connect::new(f, p(addr), len),
            q::Connect::new(g, p(addr), len).build(),
            c
        )),
        Desc::Fallocate { t, len, off, mode } => both!(t, |f, g| run(
            o::Fallocate::new(f, len).offset(off).mode(mode),
            q::Fallocate::new(g, len).offset(off).mode(mode).build(),
            c
        )),
        Desc::OpenAt { dirfd, path, flags, mode, slot } => {
            let mut op = o::OpenAt::new(o::Fd(dirfd), p(path)).flags(flags).mode(mode);
            if let Some(s) = ours_slot(slot) {
                op = op.direct(s);
            }
            let th = q::OpenAt::new(types::Fd(dirfd), p(path)).flags(flags).mode(mode);
            run(op, th.file_index(their_slot(slot)).build(), c)
        }
        Desc::Close { t } => {
            // The oracle computes `idx + 1` and overflows (panics) on u32::MAX.
            let t = match t {
                T::Fixed(u32::MAX) => T::Fixed(0),
                other => other,
            };
            both!(t, |f, g| run(o::Close::new(f), q::Close::new(g).build(), c))
        }
        Desc::FilesUpdate { fds, len, off } => run(
            o::FilesUpdate::new(p(fds), len).offset(off),
            q::FilesUpdate::new(p(fds), len).offset(off).build(),
            c,
        ),
        Desc::Statx { dirfd, path, buf, flags, mask } => run(
            o::Statx::new(o::Fd(dirfd), p(path), mp(buf)).flags(flags).mask(mask),
            q::Statx::new(types::Fd(dirfd), p(path), mp(buf)).flags(flags).mask(mask).build(),
            c,
        ),
        Desc::Read { t, buf, len, off, rw, prio, group } => both!(t, |f, g| {
            let mut op = o::Read::new(f, mp(buf), len).offset(off).rw_flags(rw).ioprio(prio);
            if let Some(gr) = group {
                op = op.buffer_select(gr);
            }
            let th = q::Read::new(g, mp(buf), len).offset(off).rw_flags(rw).ioprio(prio);
            run(op, th.buf_group(group.unwrap_or(0)).build().flags(sel(group)), c)
        }),
        Desc::Write { t, buf, len, off, rw, prio, ws } => both!(t, |f, g| run(
            o::Write::new(f, p(buf), len).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws),
            q::Write::new(g, p(buf), len).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws).build(),
            c
        )),
        Desc::Fadvise { t, len, advice, off } => both!(t, |f, g| run(
            o::Fadvise::new(f, len, advice).offset(off),
            q::Fadvise::new(g, i64::from(len), advice).offset(off).build(),
            c
        )),
        Desc::Madvise { addr, len, advice } => run(
            o::Madvise::new(p(addr), len, advice),
            q::Madvise::new(p(addr), i64::from(len), advice).build(),
            c,
        ),
        Desc::Send { t, buf, len, flags, poll_first, dest } => both!(t, |f, g| {
            let mut op = o::Send::new(f, p(buf), len).flags(flags);
            let mut th = q::Send::new(g, p(buf), len).flags(flags).ioprio(pf(poll_first));
            if poll_first {
                op = op.poll_first();
            }
            if let Some((a, l)) = dest {
                op = op.dest_addr(p(a), l);
                th = th.dest_addr(p(a)).dest_addr_len(u32::from(l));
            }
            run(op, th.build(), c)
        }),
        Desc::SendBundle { t, group, flags, len } => both!(t, |f, g| run(
            o::Send::select(f, group, len).flags(flags).bundle(),
            q::SendBundle::new(g, group).flags(flags).len(len).build(),
            c
        )),
        Desc::Recv { t, buf, len, flags, poll_first } => both!(t, |f, g| {
            let op = o::Recv::new(f, mp(buf), len).flags(flags);
            let op = if poll_first { op.poll_first() } else { op };
            run(op, q::Recv::new(g, mp(buf), len).flags(flags).ioprio(pf(poll_first)).build(), c)
        }),
        Desc::RecvSelect { t, group, flags, len, multi } => both!(t, |f, g| {
            let op = o::Recv::select(f, group, len).flags(flags);
            if multi {
                run(op.multishot(), q::RecvMulti::new(g, group).flags(flags).len(len).build(), c)
            } else {
                let th = q::Recv::new(g, core::ptr::null_mut(), len).flags(flags).buf_group(group);
                run(op, th.build().flags(squeue::Flags::BUFFER_SELECT), c)
            }
        }),
        Desc::RecvBundle { t, group, flags, multi } => both!(t, |f, g| {
            let op = o::Recv::select(f, group, 0).flags(flags).bundle();
            if multi {
                run(op.multishot(), q::RecvMultiBundle::new(g, group).flags(flags).build(), c)
            } else {
                run(op, q::RecvBundle::new(g, group).flags(flags).build(), c)
            }
        }),
        Desc::OpenAt2 { dirfd, path, how, slot } => {
            let mut op = o::OpenAt2::new(o::Fd(dirfd), p(path), p(how));
            if let Some(s) = ours_slot(slot) {
                op = op.direct(s);
            }
            let th = q::OpenAt2::new(types::Fd(dirfd), p(path), p(how));
            run(op, th.file_index(their_slot(slot)).build(), c)
        }
        Desc::EpollCtl { t, fd, op, ev } => both!(t, |f, g| run(
            o::EpollCtl::new(f, fd, op, p(ev)),
            q::EpollCtl::new(g, types::Fd(fd), op, p(ev)).build(),
            c
        )),
        Desc::Splice { tin, off_in, tout, off_out, len, flags } => both!(tin, |fi, gi| both!(tout, |fo, go| run(
            o::Splice::new(fi, off_in, fo, off_out, len).flags(flags),
            q::Splice::new(gi, off_in, go, off_out, len).flags(flags).build(),
            c
        ))),
        Desc::ProvideBuffers { addr, len, nbufs, bgid, bid } => run(
            o::ProvideBuffers::new(mp(addr), len, u32::from(nbufs), bgid, bid),
            q::ProvideBuffers::new(mp(addr), len as i32, nbufs, bgid, bid).build(),
            c,
        ),
        Desc::RemoveBuffers { nbufs, bgid } => run(
            o::RemoveBuffers::new(u32::from(nbufs), bgid),
            q::RemoveBuffers::new(nbufs, bgid).build(),
            c,
        ),
        Desc::Tee { tin, tout, len, flags } => both!(tin, |fi, gi| both!(tout, |fo, go| run(
            o::Tee::new(fi, fo, len).flags(flags),
            q::Tee::new(gi, go, len).flags(flags).build(),
            c
        ))),
        Desc::Shutdown { t, how } => both!(t, |f, g| run(o::Shutdown::new(f, how), q::Shutdown::new(g, how).build(), c)),
        Desc::RenameAt { od, op, nd, np, flags } => run(
            o::RenameAt::new(o::Fd(od), p(op), o::Fd(nd), p(np)).flags(flags),
            q::RenameAt::new(types::Fd(od), p(op), types::Fd(nd), p(np)).flags(flags).build(),
            c,
        ),
        Desc::UnlinkAt { dirfd, path, flags } => run(
            o::UnlinkAt::new(o::Fd(dirfd), p(path)).flags(flags),
            q::UnlinkAt::new(types::Fd(dirfd), p(path)).flags(flags).build(),
            c,
        ),
        Desc::MkDirAt { dirfd, path, mode } => run(
            o::MkDirAt::new(o::Fd(dirfd), p(path)).mode(mode),
            q::MkDirAt::new(types::Fd(dirfd), p(path)).mode(mode).build(),
            c,
        ),
        Desc::SymlinkAt { dirfd, target, link } => run(
            o::SymlinkAt::new(o::Fd(dirfd), p(target), p(link)),
            q::SymlinkAt::new(types::Fd(dirfd), p(target), p(link)).build(),
            c,
        ),
        Desc::LinkAt { od, op, nd, np, flags } => run(
            o::LinkAt::new(o::Fd(od), p(op), o::Fd(nd), p(np)).flags(flags),
            q::LinkAt::new(types::Fd(od), p(op), types::Fd(nd), p(np)).flags(flags).build(),
            c,
        ),
        Desc::MsgRingData { ring, res, ud, cqe_flags } => {
            let op = o::MsgRingData::new(o::Fd(ring), res, ud);
            let op = match cqe_flags {
                Some(fl) => op.cqe_flags(fl),
                None => op,
            };
            run(op, q::MsgRingData::new(types::Fd(ring), res, ud, cqe_flags).build(), c)
        }
        Desc::MsgRingSendFd { ring, src, dest, ud, skip } => {
            let (ours, theirs) = match (ours_slot(dest), their_slot(dest)) {
                (Some(a), Some(b)) => (a, b),
                _ => (DirectSlot::ALLOC, types::DestinationSlot::auto_target()),
            };
            let op = o::MsgRingSendFd::new(o::Fd(ring), o::Fixed(src), ours, ud);
            let op = if skip { op.skip_target_cqe() } else { op };
            let fl = if skip { ring_io_sys::IORING_MSG_RING_CQE_SKIP } else { 0 };
            let th = q::MsgRingSendFd::new(types::Fd(ring), types::Fixed(src), theirs, ud).opcode_flags(fl);
            run(op, th.build(), c)
        }
        Desc::FSetXattr { t, name, value, len, flags } => both!(t, |f, g| run(
            o::FSetXattr::new(f, p(name), p(value), len).flags(flags),
            q::FSetXattr::new(g, p(name), p(value), len).flags(flags).build(),
            c
        )),
        Desc::SetXattr { path, name, value, len, flags } => run(
            o::SetXattr::new(p(path), p(name), p(value), len).flags(flags),
            q::SetXattr::new(p(name), p(value), p(path), len).flags(flags).build(),
            c,
        ),
        Desc::FGetXattr { t, name, value, len } => both!(t, |f, g| run(
            o::FGetXattr::new(f, p(name), mp(value), len),
            q::FGetXattr::new(g, p(name), mp(value), len).build(),
            c
        )),
        Desc::GetXattr { path, name, value, len } => run(
            o::GetXattr::new(p(path), p(name), mp(value), len),
            q::GetXattr::new(p(name), mp(value), p(path), len).build(),
            c,
        ),
        Desc::Socket { domain, ty, proto, flags, slot } => {
            let mut op = o::Socket::new(domain, ty, proto).flags(flags);
            if let Some(s) = ours_slot(slot) {
                op = op.direct(s);
            }
            let th = q::Socket::new(domain, ty, proto).flags(flags as i32);
            run(op, th.file_index(their_slot(slot)).build(), c)
        }
        Desc::UringCmd16 { t, cmd_op, cmd, bi, addr } => both!(t, |f, g| {
            let mut op = o::UringCmd16::new(f, cmd_op).cmd(cmd);
            if let Some(b) = bi {
                op = op.fixed_buffer(b);
            }
            if let Some(a) = addr {
                op = op.addr(a);
            }
            run(op, q::UringCmd16::new(g, cmd_op).cmd(cmd).buf_index(bi).addr(addr).build(), c)
        }),
        Desc::SetSockOpt { t, level, optname, optval, optlen } => both!(t, |f, g| run(
            o::SocketCmd::setsockopt(f, level, optname, p(optval), optlen),
            q::SetSockOpt::new(g, level, optname, p::<c_void>(optval), optlen).build(),
            c
        )),
        Desc::SendZc { t, buf, len, flags, report, poll_first, bi, dest } => both!(t, |f, g| {
            let mut op = o::SendZc::new(f, p(buf), len).flags(flags);
            let mut zc = pf(poll_first);
            if poll_first {
                op = op.poll_first();
            }
            if report {
                op = op.report_usage();
                zc |= ring_io_sys::IORING_SEND_ZC_REPORT_USAGE;
            }
            if let Some(b) = bi {
                op = op.fixed_buffer(b);
            }
            let mut th = q::SendZc::new(g, p(buf), len).flags(flags).zc_flags(zc).buf_index(bi);
            if let Some((a, l)) = dest {
                op = op.dest_addr(p(a), l);
                th = th.dest_addr(p(a)).dest_addr_len(u32::from(l));
            }
            run(op, th.build(), c)
        }),
        Desc::SendMsgZc { t, msg, flags, report, poll_first } => both!(t, |f, g| {
            let mut op = o::SendMsgZc::new(f, p(msg)).flags(flags);
            let mut prio = pf(poll_first);
            if poll_first {
                op = op.poll_first();
            }
            if report {
                op = op.report_usage();
                prio |= ring_io_sys::IORING_SEND_ZC_REPORT_USAGE;
            }
            run(op, q::SendMsgZc::new(g, p(msg)).flags(flags).ioprio(prio).build(), c)
        }),
        Desc::ReadMulti { t, len, group, off } => {
            // Oracle defect (io-uring 0.7.15): ReadMulti overwrites
            // IOSQE_FIXED_FILE with `flags = BUFFER_SELECT`; add it back.
            let fixed = if matches!(t, T::Fixed(_)) { squeue::Flags::FIXED_FILE } else { squeue::Flags::empty() };
            both!(t, |f, g| run(
                o::ReadMulti::new(f, len, group).offset(off),
                q::ReadMulti::new(g, len, group).offset(off).build().flags(fixed),
                c
            ))
        }
        Desc::WaitId { idtype, id, options, infop, flags } => run(
            o::WaitId::new(idtype, id, options).infop(mp(infop)).flags(flags),
            q::WaitId::new(idtype, id, options).infop(p(infop)).flags(flags).build(),
            c,
        ),
        Desc::FutexWait { futex, val, mask, ff, flags } => run(
            o::FutexWait::new(p(futex), val, mask, ff).flags(flags),
            q::FutexWait::new(p(futex), val, mask, ff).flags(flags).build(),
            c,
        ),
        Desc::FutexWake { futex, val, mask, ff, flags } => run(
            o::FutexWake::new(p(futex), val, mask, ff).flags(flags),
            q::FutexWake::new(p(futex), val, mask, ff).flags(flags).build(),
            c,
        ),
        Desc::FutexWaitV { v, nr, flags } => run(
            o::FutexWaitV::new(p(v), nr).flags(flags),
            q::FutexWaitV::new(p(v), nr).flags(flags).build(),
            c,
        ),
        Desc::FixedFdInstall { idx, no_cloexec } => {
            let op = o::FixedFdInstall::new(o::Fixed(idx));
            let op = if no_cloexec { op.no_cloexec() } else { op };
            let fl = if no_cloexec { ring_io_sys::IORING_FIXED_FD_NO_CLOEXEC } else { 0 };
            run(op, q::FixedFdInstall::new(types::Fixed(idx), fl).build(), c)
        }
        Desc::Ftruncate { t, len } => both!(t, |f, g| run(o::Ftruncate::new(f, len), q::Ftruncate::new(g, len).build(), c)),
        Desc::Bind { t, addr, len } => both!(t, |f, g| run(o::Bind::new(f, p(addr), len), q::Bind::new(g, p(addr), len).build(), c)),
        Desc::Listen { t, backlog } => both!(t, |f, g| run(o::Listen::new(f, backlog), q::Listen::new(g, backlog).build(), c)),
        Desc::RecvZc { t, len, ifq } => both!(t, |f, g| run(o::RecvZc::new(f, len).ifq(ifq), q::RecvZc::new(g, len).ifq(ifq).build(), c)),
        Desc::EpollWait { t, events, max, flags } => both!(t, |f, g| run(
            o::EpollWait::new(f, mp(events), max).flags(flags),
            q::EpollWait::new(g, mp(events), max).flags(flags).build(),
            c
        )),
        Desc::ReadvFixed { t, iov, n, idx, off, rw, prio } => both!(t, |f, g| run(
            o::ReadvFixed::new(f, p(iov), n, idx).offset(off).rw_flags(rw).ioprio(prio),
            q::ReadvFixed::new(g, p(iov), n, idx).offset(off).rw_flags(rw).ioprio(prio).build(),
            c
        )),
        Desc::WritevFixed { t, iov, n, idx, off, rw, prio, ws } => both!(t, |f, g| run(
            o::WritevFixed::new(f, p(iov), n, idx).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws),
            q::WritevFixed::new(g, p(iov), n, idx).offset(off).rw_flags(rw).ioprio(prio).write_stream(ws).build(),
            c
        )),
        Desc::Pipe { fds, flags, slot } => {
            let mut op = o::Pipe::new(mp(fds)).flags(flags);
            if let Some(s) = ours_slot(slot) {
                op = op.direct(s);
            }
            run(op, q::Pipe::new(mp(fds)).flags(flags).file_index(their_slot(slot)).build(), c)
        }
    }
});
