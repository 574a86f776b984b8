//! Typed builders for every io_uring opcode of Linux 6.18.
//!
//! One builder per `IORING_OP_*` (NOP through PIPE, opcodes 0 to 62), each
//! encoding into a [`ring_io_sys::io_uring_sqe`], with per-op metadata
//! (opcode, name, first kernel, multishot capability) in [`ALL`].
//!
//! # What it does, and what it does not
//!
//! Building an entry is safe and does nothing: no syscall, no I/O, no
//! allocation (`#![no_std]`, `#![forbid(unsafe_code)]`). *Pushing* an entry
//! to a ring is the `unsafe` part, and belongs to `ring-io-driver`: the buffers
//! and pointers an entry names must stay valid until the kernel is done with
//! them, which no builder can promise.
//!
//! # Example
//!
//! ```
//! use ring_io_ops::{Accept, DirectSlot, Fd, Fixed, Read, Recv, Timeout};
//! use ring_io_sys::__kernel_timespec;
//!
//! let mut buf = [0u8; 4096];
//! // A read at offset 512 of fd 3, linked to the next entry.
//! let read = Read::new(Fd(3), buf.as_mut_ptr(), 4096).offset(512).build().user_data(1).link();
//! assert_eq!(read.opcode(), Read::CODE);
//!
//! // Multishot accept on registered file 0, into kernel-chosen direct slots.
//! let accept = Accept::new(Fixed(0)).multishot().direct(DirectSlot::ALLOC).build();
//! assert!(accept.sqe_flags().contains(ring_io_sys::SqeFlags::FIXED_FILE));
//!
//! // Multishot bundle receive from provided-buffer group 7.
//! let recv = Recv::select(Fd(4), 7, 0).multishot().bundle().build().user_data(2);
//! assert!(recv.selects_buffer());
//!
//! // A timeout on CLOCK_BOOTTIME; the version check the driver can make.
//! let ts = __kernel_timespec { tv_sec: 1, tv_nsec: 0 };
//! let timeout = Timeout::new(&ts).clock(ring_io_ops::Clock::Boottime).build();
//! assert_eq!(timeout.opcode(), Timeout::CODE);
//! let err = ring_io_ops::RecvZc::INFO.check(ring_io_ops::KernelVersion::new(6, 1, 0)).unwrap_err();
//! assert_eq!(err.to_string(), "RecvZc needs Linux 6.15; this kernel is 6.1");
//! ```
//!
//! # Design decisions
//!
//! - **One pattern for every builder**: required
//!   arguments in `new`, options as `const fn` setters (all but `pi`,
//!   which takes a reference), `pub const CODE`,
//!   `pub const INFO` (an [`OpInfo`]), `build()` (by value, to an [`Entry`])
//!   and `encode(&mut io_uring_sqe)` (in place). Each builder's doc names
//!   the syscall it stands for and its first kernel; options added later
//!   than the opcode name their own kernel.
//! - **Plain fd or fixed file is a type.** Ops on a file take
//!   `impl `[`Target`], which only [`Fd`] and [`Fixed`] implement (sealed);
//!   the builder sets `IOSQE_FIXED_FILE` from the type. Ops the kernel only
//!   runs on a plain fd (the `*at` family's `dirfd`) take [`Fd`]; ops that
//!   only take a fixed file ([`FixedFdInstall`], [`MsgRingSendFd`]'s
//!   source) take [`Fixed`].
//! - **Flags the kernel reads from `ioprio` are typed options on the op**,
//!   not new structs per combination (the `io-uring` crate's issue #344):
//!   `Recv::select(..).multishot().bundle().poll_first()`,
//!   `Accept::new(..).multishot().poll_first()`, `SendZc::report_usage`,
//!   `PollAdd::multishot`, `Timeout::multishot`, ... Options that only make
//!   sense together are set together: `RecvMsg::multishot(group)` also
//!   selects buffers, since the kernel requires it.
//! - **Buffer select** is an option with its group
//!   (`Read::buffer_select(group)`, [`Recv::select`], [`ReadMulti`]): the
//!   builder writes `buf_group` and `IOSQE_BUFFER_SELECT` together.
//! - **Direct descriptors**: ops that create a descriptor take a
//!   [`DirectSlot`] — a slot (encoded `slot + 1`) or [`DirectSlot::ALLOC`]
//!   (`IORING_FILE_INDEX_ALLOC`).
//! - **Common fields on the built [`Entry`]**: `user_data`, `personality`
//!   and the SQE flags (`link`, `hardlink`, `drain`, `force_async`,
//!   `skip_success`, or any [`ring_io_sys::SqeFlags`]) are `const fn` setters
//!   of [`Entry`] / [`Entry128`], so they read the same after every op:
//!   `op.build().user_data(7).link()`. They only add bits, never clear the
//!   ones the op set.
//! - **Variants with a different argument shape are separate builders**
//!   sharing the opcode: [`PollUpdate`] (POLL_REMOVE), [`TimeoutUpdate`]
//!   (TIMEOUT_REMOVE; `.linked()` for a link timeout), [`MsgRingSendFd`]
//!   (MSG_RING), [`UringCmd80`] (URING_CMD in a 128-byte entry) and
//!   [`SocketCmd`] (URING_CMD socket commands). [`AsyncCancel`] has one
//!   constructor per match criterion ([`AsyncCancel::by_fd`],
//!   [`AsyncCancel::any`], [`AsyncCancel::by_opcode`]) and `and_*`
//!   setters to combine them.
//! - **Pointers** to structs ring-sys does not define (`iovec`, `msghdr`,
//!   `sockaddr`, `statx`, `epoll_event`, `open_how`, `siginfo_t`,
//!   `futex_waitv`) are `*const c_void` / `*mut c_void`, since ring-ops
//!   depends on ring-sys only; pass `ptr.cast()`.
//! - **Fadvise and Madvise take a 32-bit `len`** in `sqe->len`, like the
//!   `io-uring` crate and liburing's `io_uring_prep_fadvise`/`_madvise`
//!   (the `*64` variants, which put a 64-bit length in `addr`, are not
//!   offered yet).
//! - **Ops without a file** write `fd = -1` where liburing and the `io-uring`
//!   crate do (NOP, timeouts, cancel, poll remove, files update, madvise),
//!   so entries are byte-identical to theirs.
//! - **Byte-identical to the `io-uring` crate**: `tests/oracle.rs` proptests
//!   every op the `io-uring` crate 0.7 has (all 63 opcodes) against its
//!   `build()`, byte for byte; `tests/liburing.rs` checks the variants it
//!   lacks against liburing's `io_uring_prep_*` field placement; the fuzz
//!   targets `sqe_encode` and `sqe128_encode` do the same with arbitrary
//!   inputs; `tests/kernel.rs` runs a sample of entries (linked I/O,
//!   timeouts, multishot poll and cancel, direct descriptors, provided
//!   buffers, MSG_RING, futex, pipe) on the running kernel.
//!
//! Found on the way: the oracle's `ReadMulti` drops `IOSQE_FIXED_FILE` for
//! a fixed file (io-uring 0.7.15 assigns `flags = BUFFER_SELECT` after
//! setting it); ring-ops keeps it. Of the `NOP` test flags only
//! `IORING_NOP_INJECT_RESULT` and `IORING_NOP_CQE32` have setters (not
//! `IORING_NOP_FILE`, `IORING_NOP_FIXED_FILE`, `IORING_NOP_FIXED_BUFFER`,
//! `IORING_NOP_TW`).
//!
//! # In place or by value
//!
//! Both exist: `build()` returns an [`Entry`] by value; `encode(&mut slot)`
//! zeroes a slot and writes the op into it.
//! **In place is faster, and is what a driver should use to push**
//! (`op.encode(slot)`, then set `user_data` / flags on the slot); `build()`
//! stays for entries that are stored or passed around before pushing.
//!
//! Measured with `examples/encode_bench.rs` (release build, alternating
//! `Read` and `Send` into a 256-slot array, `user_data` set on each), under
//! `valgrind --tool=callgrind`, instructions per entry as the slope between
//! 1 M and 2 M entries:
//!
//! | mode | instructions / entry | minus the bare loop (11.0) |
//! |---|---|---|
//! | by value: `*slot = op.build().user_data(i).into_sqe()` | 30.0 | 19.0 |
//! | in place: `op.encode(slot); slot.user_data = i` | 22.5 | **11.5** |
//!
//! The disassembly shows why: by value, the compiler stored the whole
//! 64-byte value field by field into the slot, zero fields included (here
//! choosing between the two ops without a branch); in place, it cleared the
//! slot with four 16-byte stores and then wrote only the fields the op
//! sets. Reproduce with `cargo build --release -p ring-io-ops --example
//! encode_bench` and `valgrind --tool=callgrind
//! target/release/examples/encode_bench in-place 1000000` (modes
//! `by-value`, `in-place`, `baseline`). Wall-clock time was within noise
//! (medians of five runs of 50 M entries on a loaded 2-core machine: 3.5 ns
//! by value, 3.3 ns in place, per entry).
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod entry;
mod meta;
mod ops;

pub use entry::{Clock, DirectSlot, Entry, Entry128, Fd, Fixed, OpCode, Target};
pub use meta::{ALL, KernelVersion, OP_COUNT, OpInfo, Unsupported, info_of};
pub use ops::{
    Accept, AsyncCancel, Bind, Close, Connect, EpollCtl, EpollWait, FGetXattr, FSetXattr, Fadvise,
    Fallocate, FilesUpdate, FixedFdInstall, Fsync, Ftruncate, FutexWait, FutexWaitV, FutexWake,
    GetXattr, LinkAt, LinkTimeout, Listen, Madvise, MkDirAt, MsgRingData, MsgRingSendFd, Nop,
    OPEN_HOW_SIZE, OpenAt, OpenAt2, Pipe, PollAdd, PollRemove, PollUpdate, ProvideBuffers, Read,
    ReadFixed, ReadMulti, Readv, ReadvFixed, Recv, RecvMsg, RecvZc, RemoveBuffers, RenameAt, Send,
    SendMsg, SendMsgZc, SendZc, SetXattr, Shutdown, Socket, SocketCmd, Splice, Statx, SymlinkAt,
    SyncFileRange, Tee, Timeout, TimeoutRemove, TimeoutUpdate, UnlinkAt, UringCmd16, UringCmd80,
    WaitId, Write, WriteFixed, Writev, WritevFixed,
};
