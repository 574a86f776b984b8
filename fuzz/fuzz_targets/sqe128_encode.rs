//! `sqe128_encode`: 128-byte entries (`IORING_SETUP_SQE128`). An arbitrary
//! `IORING_OP_URING_CMD` with an 80-byte payload, or a 64-byte op widened
//! into a 128-byte slot, is encoded by ring-ops (by value and in place into
//! a slot full of stale bytes) and by the `io-uring` crate; all must be the
//! same 128 bytes.
#![no_main]

use arbitrary::Arbitrary;
use io_uring::{opcode as q, squeue, types};
use libfuzzer_sys::fuzz_target;
use ring_io_ops::{self as o, Entry128};
use ring_io_sys::{SqeFlags, io_uring_sqe128};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum T {
    Fd(i32),
    Fixed(u32),
}

#[derive(Arbitrary, Debug)]
enum Desc {
    UringCmd80 { t: T, cmd_op: u32, cmd: [[u8; 16]; 5], bi: Option<u16>, addr: Option<u64> },
    /// A 64-byte entry in a 128-byte slot: the second half must be zero.
    Widened { t: T, buf: u64, len: u32, off: u64 },
}

#[derive(Arbitrary, Debug)]
struct Common {
    user_data: u64,
    personality: u16,
    flags: u8,
    stale: u8,
}

fn bytes(sqe: io_uring_sqe128) -> [u8; 128] {
    // SAFETY: io_uring_sqe128 is 128 bytes of integers and unions of
    // integers, no padding; every entry here was fully initialised.
    unsafe { core::mem::transmute::<io_uring_sqe128, [u8; 128]>(sqe) }
}

fn oracle(e: squeue::Entry128, c: &Common, flags: u8) -> [u8; 128] {
    let e = e
        .user_data(c.user_data)
        .personality(c.personality)
        .flags(squeue::Flags::from_bits_retain(flags));
    // SAFETY: Entry128 is `#[repr(C)] struct Entry128(Entry, [u8; 64])`, 128
    // initialised bytes.
    unsafe { core::mem::transmute::<squeue::Entry128, [u8; 128]>(e) }
}

fn ours(e: Entry128, c: &Common, flags: u8) -> [u8; 128] {
    bytes(
        e.user_data(c.user_data)
            .personality(c.personality)
            .flags(SqeFlags::from_bits_retain(flags))
            .into_sqe128(),
    )
}

fuzz_target!(|input: (Desc, Common)| {
    let (desc, c) = input;
    let flags = c.flags & 0b0101_1110;
    match desc {
        Desc::UringCmd80 { t, cmd_op, cmd, bi, addr } => {
            let cmd: [u8; 80] = cmd.concat().try_into().unwrap();
            let (op, theirs) = match t {
                T::Fd(fd) => (
                    o::UringCmd80::new(o::Fd(fd), cmd_op),
                    q::UringCmd80::new(types::Fd(fd), cmd_op),
                ),
                T::Fixed(i) => (
                    o::UringCmd80::new(o::Fixed(i), cmd_op),
                    q::UringCmd80::new(types::Fixed(i), cmd_op),
                ),
            };
            let mut op = op.cmd(cmd);
            if let Some(b) = bi {
                op = op.fixed_buffer(b);
            }
            if let Some(a) = addr {
                op = op.addr(a);
            }
            let theirs = oracle(theirs.cmd(cmd).buf_index(bi).addr(addr).build(), &c, flags);
            assert_eq!(ours(op.build(), &c, flags), theirs, "build() differs from the oracle");

            // SAFETY: any 128 bytes are a valid io_uring_sqe128.
            let mut slot = unsafe { core::mem::transmute::<[u8; 128], io_uring_sqe128>([c.stale; 128]) };
            op.encode(&mut slot);
            slot.sqe.user_data = c.user_data;
            slot.sqe.personality = c.personality;
            slot.sqe.flags |= flags;
            assert_eq!(bytes(slot), theirs, "encode() differs from the oracle");
        }
        Desc::Widened { t, buf, len, off } => {
            let ptr = buf as usize as *mut u8;
            let (mine, theirs) = match t {
                T::Fd(fd) => (
                    o::Read::new(o::Fd(fd), ptr, len).offset(off).build(),
                    q::Read::new(types::Fd(fd), ptr, len).offset(off).build(),
                ),
                T::Fixed(i) => (
                    o::Read::new(o::Fixed(i), ptr, len).offset(off).build(),
                    q::Read::new(types::Fixed(i), ptr, len).offset(off).build(),
                ),
            };
            let theirs = oracle(squeue::Entry128::from(theirs), &c, flags);
            let mine = ours(Entry128::from(mine), &c, flags);
            assert_eq!(mine, theirs, "widened entry differs from the oracle");
            assert_eq!(mine[64..], [0u8; 64]);
        }
    }
});
