//! Every flag family of the header: each constant under its C name, and a
//! `bitflags` type for the family, defined together so they cannot disagree.
//!
//! Flags the kernel writes (CQE flags, ring flags, features) should be read
//! with `from_bits_retain`, which keeps bits a newer kernel may set.

/// Defines a family's constants and its `bitflags` type from one list.
macro_rules! flag_family {
    (
        $(#[doc = $type_doc:literal])*
        $Type:ident: $ty:ty {
            $( $(#[doc = $doc:literal])* $CONST:ident => $Name:ident = $val:expr; )*
        }
    ) => {
        $( $(#[doc = $doc])* pub const $CONST: $ty = $val; )*

        bitflags::bitflags! {
            $(#[doc = $type_doc])*
            #[repr(transparent)]
            #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub struct $Type: $ty {
                $( $(#[doc = $doc])* const $Name = $CONST; )*
            }
        }
    };
}

// ---------------------------------------------------------------- sqe->flags

/// `IOSQE_FIXED_FILE_BIT` (`enum io_uring_sqe_flags_bit`). Since Linux 5.1.
pub const IOSQE_FIXED_FILE_BIT: u8 = 0;
/// `IOSQE_IO_DRAIN_BIT`. Since Linux 5.2.
pub const IOSQE_IO_DRAIN_BIT: u8 = 1;
/// `IOSQE_IO_LINK_BIT`. Since Linux 5.3.
pub const IOSQE_IO_LINK_BIT: u8 = 2;
/// `IOSQE_IO_HARDLINK_BIT`. Since Linux 5.5.
pub const IOSQE_IO_HARDLINK_BIT: u8 = 3;
/// `IOSQE_ASYNC_BIT`. Since Linux 5.6.
pub const IOSQE_ASYNC_BIT: u8 = 4;
/// `IOSQE_BUFFER_SELECT_BIT`. Since Linux 5.7.
pub const IOSQE_BUFFER_SELECT_BIT: u8 = 5;
/// `IOSQE_CQE_SKIP_SUCCESS_BIT`. Since Linux 5.17.
pub const IOSQE_CQE_SKIP_SUCCESS_BIT: u8 = 6;

flag_family! {
    /// `sqe->flags`: the `IOSQE_*` bits every entry carries.
    SqeFlags: u8 {
        /// `IOSQE_FIXED_FILE`: `fd` is an index into the registered files. Since Linux 5.1.
        IOSQE_FIXED_FILE => FIXED_FILE = 1 << IOSQE_FIXED_FILE_BIT;
        /// `IOSQE_IO_DRAIN`: issue after all earlier entries complete. Since Linux 5.2.
        IOSQE_IO_DRAIN => IO_DRAIN = 1 << IOSQE_IO_DRAIN_BIT;
        /// `IOSQE_IO_LINK`: the next entry starts after this one succeeds. Since Linux 5.3.
        IOSQE_IO_LINK => IO_LINK = 1 << IOSQE_IO_LINK_BIT;
        /// `IOSQE_IO_HARDLINK`: like `IO_LINK`, but the chain survives failure. Since Linux 5.5.
        IOSQE_IO_HARDLINK => IO_HARDLINK = 1 << IOSQE_IO_HARDLINK_BIT;
        /// `IOSQE_ASYNC`: always issue from the async worker pool. Since Linux 5.6.
        IOSQE_ASYNC => ASYNC = 1 << IOSQE_ASYNC_BIT;
        /// `IOSQE_BUFFER_SELECT`: pick a buffer from `buf_group`. Since Linux 5.7.
        IOSQE_BUFFER_SELECT => BUFFER_SELECT = 1 << IOSQE_BUFFER_SELECT_BIT;
        /// `IOSQE_CQE_SKIP_SUCCESS`: post no CQE if the request succeeds. Since Linux 5.17.
        IOSQE_CQE_SKIP_SUCCESS => CQE_SKIP_SUCCESS = 1 << IOSQE_CQE_SKIP_SUCCESS_BIT;
    }
}

// ------------------------------------------------------------- setup flags

flag_family! {
    /// `io_uring_params::flags`: the `IORING_SETUP_*` bits of `io_uring_setup(2)`.
    SetupFlags: u32 {
        /// `IORING_SETUP_IOPOLL`: busy-poll for completions (O_DIRECT on pollable devices). Since Linux 5.1.
        IORING_SETUP_IOPOLL => IOPOLL = 1 << 0;
        /// `IORING_SETUP_SQPOLL`: a kernel thread polls the SQ. Since Linux 5.1.
        IORING_SETUP_SQPOLL => SQPOLL = 1 << 1;
        /// `IORING_SETUP_SQ_AFF`: `sq_thread_cpu` is valid. Since Linux 5.1.
        IORING_SETUP_SQ_AFF => SQ_AFF = 1 << 2;
        /// `IORING_SETUP_CQSIZE`: the application sets `cq_entries`. Since Linux 5.5.
        IORING_SETUP_CQSIZE => CQSIZE = 1 << 3;
        /// `IORING_SETUP_CLAMP`: clamp too-large sizes instead of failing. Since Linux 5.6.
        IORING_SETUP_CLAMP => CLAMP = 1 << 4;
        /// `IORING_SETUP_ATTACH_WQ`: share the io-wq of `wq_fd`. Since Linux 5.6.
        IORING_SETUP_ATTACH_WQ => ATTACH_WQ = 1 << 5;
        /// `IORING_SETUP_R_DISABLED`: start disabled until `IORING_REGISTER_ENABLE_RINGS`. Since Linux 5.10.
        IORING_SETUP_R_DISABLED => R_DISABLED = 1 << 6;
        /// `IORING_SETUP_SUBMIT_ALL`: keep submitting after an entry fails to prep. Since Linux 5.18.
        IORING_SETUP_SUBMIT_ALL => SUBMIT_ALL = 1 << 7;
        /// `IORING_SETUP_COOP_TASKRUN`: run task work at the next kernel transition, no IPI. Since Linux 5.19.
        IORING_SETUP_COOP_TASKRUN => COOP_TASKRUN = 1 << 8;
        /// `IORING_SETUP_TASKRUN_FLAG`: set `IORING_SQ_TASKRUN` when task work waits. Since Linux 5.19.
        IORING_SETUP_TASKRUN_FLAG => TASKRUN_FLAG = 1 << 9;
        /// `IORING_SETUP_SQE128`: 128-byte SQEs. Since Linux 5.19.
        IORING_SETUP_SQE128 => SQE128 = 1 << 10;
        /// `IORING_SETUP_CQE32`: 32-byte CQEs. Since Linux 5.19.
        IORING_SETUP_CQE32 => CQE32 = 1 << 11;
        /// `IORING_SETUP_SINGLE_ISSUER`: only one task submits. Since Linux 6.0.
        IORING_SETUP_SINGLE_ISSUER => SINGLE_ISSUER = 1 << 12;
        /// `IORING_SETUP_DEFER_TASKRUN`: run task work only when the issuer waits for events. Since Linux 6.1.
        IORING_SETUP_DEFER_TASKRUN => DEFER_TASKRUN = 1 << 13;
        /// `IORING_SETUP_NO_MMAP`: the application provides the ring memory. Since Linux 6.5.
        IORING_SETUP_NO_MMAP => NO_MMAP = 1 << 14;
        /// `IORING_SETUP_REGISTERED_FD_ONLY`: return a registered ring index, not an fd. Since Linux 6.5.
        IORING_SETUP_REGISTERED_FD_ONLY => REGISTERED_FD_ONLY = 1 << 15;
        /// `IORING_SETUP_NO_SQARRAY`: no SQ index array; SQEs are consumed in order. Since Linux 6.6.
        IORING_SETUP_NO_SQARRAY => NO_SQARRAY = 1 << 16;
        /// `IORING_SETUP_HYBRID_IOPOLL`: sleep before polling under IOPOLL. Since Linux 6.13.
        IORING_SETUP_HYBRID_IOPOLL => HYBRID_IOPOLL = 1 << 17;
        /// `IORING_SETUP_CQE_MIXED`: 16- and 32-byte CQEs in one ring (`IORING_CQE_F_32`). Since Linux 6.18.
        IORING_SETUP_CQE_MIXED => CQE_MIXED = 1 << 18;
    }
}

// ---------------------------------------------------------------- features

flag_family! {
    /// `io_uring_params::features`: the `IORING_FEAT_*` bits the kernel reports.
    Features: u32 {
        /// `IORING_FEAT_SINGLE_MMAP`: SQ and CQ rings share one mmap. Since Linux 5.4.
        IORING_FEAT_SINGLE_MMAP => SINGLE_MMAP = 1 << 0;
        /// `IORING_FEAT_NODROP`: completions are never dropped; they overflow to a backlog. Since Linux 5.5.
        IORING_FEAT_NODROP => NODROP = 1 << 1;
        /// `IORING_FEAT_SUBMIT_STABLE`: submitted data need not stay valid after submit. Since Linux 5.5.
        IORING_FEAT_SUBMIT_STABLE => SUBMIT_STABLE = 1 << 2;
        /// `IORING_FEAT_RW_CUR_POS`: offset -1 means the current file position. Since Linux 5.6.
        IORING_FEAT_RW_CUR_POS => RW_CUR_POS = 1 << 3;
        /// `IORING_FEAT_CUR_PERSONALITY`: requests use the submitter's credentials. Since Linux 5.6.
        IORING_FEAT_CUR_PERSONALITY => CUR_PERSONALITY = 1 << 4;
        /// `IORING_FEAT_FAST_POLL`: internal poll instead of async workers. Since Linux 5.7.
        IORING_FEAT_FAST_POLL => FAST_POLL = 1 << 5;
        /// `IORING_FEAT_POLL_32BITS`: 32-bit poll masks. Since Linux 5.9.
        IORING_FEAT_POLL_32BITS => POLL_32BITS = 1 << 6;
        /// `IORING_FEAT_SQPOLL_NONFIXED`: SQPOLL works with plain fds. Since Linux 5.11.
        IORING_FEAT_SQPOLL_NONFIXED => SQPOLL_NONFIXED = 1 << 7;
        /// `IORING_FEAT_EXT_ARG`: `IORING_ENTER_EXT_ARG` is supported. Since Linux 5.11.
        IORING_FEAT_EXT_ARG => EXT_ARG = 1 << 8;
        /// `IORING_FEAT_NATIVE_WORKERS`: io-wq workers are native threads. Since Linux 5.12.
        IORING_FEAT_NATIVE_WORKERS => NATIVE_WORKERS = 1 << 9;
        /// `IORING_FEAT_RSRC_TAGS`: registered resources carry tags. Since Linux 5.13.
        IORING_FEAT_RSRC_TAGS => RSRC_TAGS = 1 << 10;
        /// `IORING_FEAT_CQE_SKIP`: `IOSQE_CQE_SKIP_SUCCESS` is supported. Since Linux 5.17.
        IORING_FEAT_CQE_SKIP => CQE_SKIP = 1 << 11;
        /// `IORING_FEAT_LINKED_FILE`: linked requests resolve files at issue time. Since Linux 5.17.
        IORING_FEAT_LINKED_FILE => LINKED_FILE = 1 << 12;
        /// `IORING_FEAT_REG_REG_RING`: `io_uring_register` accepts a registered ring fd. Since Linux 6.3.
        IORING_FEAT_REG_REG_RING => REG_REG_RING = 1 << 13;
        /// `IORING_FEAT_RECVSEND_BUNDLE`: `IORING_RECVSEND_BUNDLE` is supported. Since Linux 6.10.
        IORING_FEAT_RECVSEND_BUNDLE => RECVSEND_BUNDLE = 1 << 14;
        /// `IORING_FEAT_MIN_TIMEOUT`: `min_wait_usec` is honoured. Since Linux 6.12.
        IORING_FEAT_MIN_TIMEOUT => MIN_TIMEOUT = 1 << 15;
        /// `IORING_FEAT_RW_ATTR`: read/write attributes (`attr_ptr`). Since Linux 6.14.
        IORING_FEAT_RW_ATTR => RW_ATTR = 1 << 16;
        /// `IORING_FEAT_NO_IOWAIT`: `IORING_ENTER_NO_IOWAIT` is supported. Since Linux 6.15.
        IORING_FEAT_NO_IOWAIT => NO_IOWAIT = 1 << 17;
    }
}

// ------------------------------------------------------------- enter flags

flag_family! {
    /// The `flags` argument of `io_uring_enter(2)`: `IORING_ENTER_*`.
    EnterFlags: u32 {
        /// `IORING_ENTER_GETEVENTS`: wait for `min_complete` completions. Since Linux 5.1.
        IORING_ENTER_GETEVENTS => GETEVENTS = 1 << 0;
        /// `IORING_ENTER_SQ_WAKEUP`: wake the sleeping SQPOLL thread. Since Linux 5.1.
        IORING_ENTER_SQ_WAKEUP => SQ_WAKEUP = 1 << 1;
        /// `IORING_ENTER_SQ_WAIT`: wait until the SQ has free space (SQPOLL). Since Linux 5.10.
        IORING_ENTER_SQ_WAIT => SQ_WAIT = 1 << 2;
        /// `IORING_ENTER_EXT_ARG`: `arg` is an `io_uring_getevents_arg`. Since Linux 5.11.
        IORING_ENTER_EXT_ARG => EXT_ARG = 1 << 3;
        /// `IORING_ENTER_REGISTERED_RING`: `fd` is a registered ring index. Since Linux 5.18.
        IORING_ENTER_REGISTERED_RING => REGISTERED_RING = 1 << 4;
        /// `IORING_ENTER_ABS_TIMER`: the timeout is absolute. Since Linux 6.12.
        IORING_ENTER_ABS_TIMER => ABS_TIMER = 1 << 5;
        /// `IORING_ENTER_EXT_ARG_REG`: `arg` is an offset into a registered wait region. Since Linux 6.13.
        IORING_ENTER_EXT_ARG_REG => EXT_ARG_REG = 1 << 6;
        /// `IORING_ENTER_NO_IOWAIT`: do not account the wait as iowait. Since Linux 6.15.
        IORING_ENTER_NO_IOWAIT => NO_IOWAIT = 1 << 7;
    }
}

// ------------------------------------------------------- ring flag words

flag_family! {
    /// The SQ ring's flags word (`sq_off.flags`), written by the kernel: `IORING_SQ_*`.
    SqFlags: u32 {
        /// `IORING_SQ_NEED_WAKEUP`: the SQPOLL thread sleeps; enter with `SQ_WAKEUP`. Since Linux 5.1.
        IORING_SQ_NEED_WAKEUP => NEED_WAKEUP = 1 << 0;
        /// `IORING_SQ_CQ_OVERFLOW`: completions wait in the overflow backlog. Since Linux 5.8.
        IORING_SQ_CQ_OVERFLOW => CQ_OVERFLOW = 1 << 1;
        /// `IORING_SQ_TASKRUN`: task work is pending; enter the kernel to run it. Since Linux 5.19.
        IORING_SQ_TASKRUN => TASKRUN = 1 << 2;
    }
}

flag_family! {
    /// The CQ ring's flags word (`cq_off.flags`), written by the application: `IORING_CQ_*`.
    CqFlags: u32 {
        /// `IORING_CQ_EVENTFD_DISABLED`: suppress eventfd notifications. Since Linux 5.8.
        IORING_CQ_EVENTFD_DISABLED => EVENTFD_DISABLED = 1 << 0;
    }
}

// --------------------------------------------------------------- cqe->flags

flag_family! {
    /// `cqe->flags`: the `IORING_CQE_F_*` bits. The upper 16 bits hold a buffer
    /// id when `BUFFER` is set (shift by [`IORING_CQE_BUFFER_SHIFT`]); read
    /// with `from_bits_retain` or mask them off.
    CqeFlags: u32 {
        /// `IORING_CQE_F_BUFFER`: the upper 16 bits are a provided buffer's id. Since Linux 5.7.
        IORING_CQE_F_BUFFER => BUFFER = 1 << 0;
        /// `IORING_CQE_F_MORE`: the request will post more CQEs (multishot). Since Linux 5.13.
        IORING_CQE_F_MORE => MORE = 1 << 1;
        /// `IORING_CQE_F_SOCK_NONEMPTY`: more data is waiting on the socket. Since Linux 5.19.
        IORING_CQE_F_SOCK_NONEMPTY => SOCK_NONEMPTY = 1 << 2;
        /// `IORING_CQE_F_NOTIF`: a zero-copy send's buffer-release notification. Since Linux 6.0.
        IORING_CQE_F_NOTIF => NOTIF = 1 << 3;
        /// `IORING_CQE_F_BUF_MORE`: the incrementally consumed buffer will be used again. Since Linux 6.12.
        IORING_CQE_F_BUF_MORE => BUF_MORE = 1 << 4;
        /// `IORING_CQE_F_SKIP`: padding in a mixed-size CQ; ignore this CQE. Since Linux 6.18.
        IORING_CQE_F_SKIP => SKIP = 1 << 5;
        /// `IORING_CQE_F_32`: a 32-byte CQE in an `IORING_SETUP_CQE_MIXED` ring. Since Linux 6.18.
        IORING_CQE_F_32 => BIG = 1 << 15;
    }
}

/// `IORING_CQE_BUFFER_SHIFT`: shift of the buffer id in `cqe->flags`. Since Linux 5.7.
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;

/// `IORING_TIMESTAMP_HW_SHIFT`: `cqe->flags` bit of a hardware timestamp
/// (`SOCKET_URING_OP_TX_TIMESTAMP`). Since Linux 6.17.
pub const IORING_TIMESTAMP_HW_SHIFT: u32 = 16;
/// `IORING_TIMESTAMP_TYPE_SHIFT`: `cqe->flags` bit from which the timestamp
/// type is stored. Since Linux 6.17.
pub const IORING_TIMESTAMP_TYPE_SHIFT: u32 = IORING_TIMESTAMP_HW_SHIFT + 1;
/// `IORING_CQE_F_TSTAMP_HW`: the timestamp CQE holds a hardware timestamp.
/// Shares bits with the buffer id, so it is not part of [`CqeFlags`].
/// Since Linux 6.17.
pub const IORING_CQE_F_TSTAMP_HW: u32 = 1 << IORING_TIMESTAMP_HW_SHIFT;

/// `IORING_NOTIF_USAGE_ZC_COPIED`: in `cqe.res` of a `IORING_CQE_F_NOTIF`
/// completion with `IORING_SEND_ZC_REPORT_USAGE`, the data was copied.
/// Since Linux 6.2.
pub const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

// -------------------------------------------------------- per-op flag families

flag_family! {
    /// `sqe->fsync_flags` of `IORING_OP_FSYNC`.
    FsyncFlags: u32 {
        /// `IORING_FSYNC_DATASYNC`: `fdatasync` rather than `fsync`. Since Linux 5.1.
        IORING_FSYNC_DATASYNC => DATASYNC = 1 << 0;
    }
}

flag_family! {
    /// `sqe->timeout_flags` of `IORING_OP_TIMEOUT`, `TIMEOUT_REMOVE` and `LINK_TIMEOUT`.
    TimeoutFlags: u32 {
        /// `IORING_TIMEOUT_ABS`: the timespec is absolute. Since Linux 5.5.
        IORING_TIMEOUT_ABS => ABS = 1 << 0;
        /// `IORING_TIMEOUT_UPDATE`: `TIMEOUT_REMOVE` updates a timeout instead. Since Linux 5.11.
        IORING_TIMEOUT_UPDATE => UPDATE = 1 << 1;
        /// `IORING_TIMEOUT_BOOTTIME`: measure on `CLOCK_BOOTTIME`. Since Linux 5.15.
        IORING_TIMEOUT_BOOTTIME => BOOTTIME = 1 << 2;
        /// `IORING_TIMEOUT_REALTIME`: measure on `CLOCK_REALTIME`. Since Linux 5.15.
        IORING_TIMEOUT_REALTIME => REALTIME = 1 << 3;
        /// `IORING_LINK_TIMEOUT_UPDATE`: `TIMEOUT_REMOVE` updates a linked timeout. Since Linux 5.15.
        IORING_LINK_TIMEOUT_UPDATE => LINK_TIMEOUT_UPDATE = 1 << 4;
        /// `IORING_TIMEOUT_ETIME_SUCCESS`: expiry counts as success for links. Since Linux 5.16.
        IORING_TIMEOUT_ETIME_SUCCESS => ETIME_SUCCESS = 1 << 5;
        /// `IORING_TIMEOUT_MULTISHOT`: fire repeatedly (`len` times, 0 = forever). Since Linux 6.4.
        IORING_TIMEOUT_MULTISHOT => MULTISHOT = 1 << 6;
    }
}

/// `IORING_TIMEOUT_CLOCK_MASK`: the clock-selecting timeout flags. Since Linux 5.15.
pub const IORING_TIMEOUT_CLOCK_MASK: u32 = IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME;
/// `IORING_TIMEOUT_UPDATE_MASK`: the update-selecting timeout flags. Since Linux 5.15.
pub const IORING_TIMEOUT_UPDATE_MASK: u32 = IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE;

flag_family! {
    /// `sqe->splice_flags` of `IORING_OP_SPLICE` and `IORING_OP_TEE`, beyond `splice(2)`'s own.
    SpliceFlags: u32 {
        /// `SPLICE_F_FD_IN_FIXED`: `splice_fd_in` is a fixed file. Since Linux 5.7.
        SPLICE_F_FD_IN_FIXED => FD_IN_FIXED = 1 << 31;
    }
}

flag_family! {
    /// `IORING_OP_POLL_ADD` / `POLL_REMOVE` command flags, stored in `sqe->len`.
    PollFlags: u32 {
        /// `IORING_POLL_ADD_MULTI`: multishot poll. Since Linux 5.13.
        IORING_POLL_ADD_MULTI => ADD_MULTI = 1 << 0;
        /// `IORING_POLL_UPDATE_EVENTS`: update the events of an existing poll. Since Linux 5.13.
        IORING_POLL_UPDATE_EVENTS => UPDATE_EVENTS = 1 << 1;
        /// `IORING_POLL_UPDATE_USER_DATA`: update the user_data of an existing poll. Since Linux 5.13.
        IORING_POLL_UPDATE_USER_DATA => UPDATE_USER_DATA = 1 << 2;
        /// `IORING_POLL_ADD_LEVEL`: level-triggered poll. Since Linux 6.0.
        IORING_POLL_ADD_LEVEL => ADD_LEVEL = 1 << 3;
    }
}

flag_family! {
    /// `sqe->cancel_flags` of `IORING_OP_ASYNC_CANCEL` and `io_uring_sync_cancel_reg::flags`.
    AsyncCancelFlags: u32 {
        /// `IORING_ASYNC_CANCEL_ALL`: cancel every match, not just the first. Since Linux 5.19.
        IORING_ASYNC_CANCEL_ALL => ALL = 1 << 0;
        /// `IORING_ASYNC_CANCEL_FD`: match on `fd` rather than `user_data`. Since Linux 5.19.
        IORING_ASYNC_CANCEL_FD => FD = 1 << 1;
        /// `IORING_ASYNC_CANCEL_ANY`: match any request. Since Linux 5.19.
        IORING_ASYNC_CANCEL_ANY => ANY = 1 << 2;
        /// `IORING_ASYNC_CANCEL_FD_FIXED`: the `fd` is a fixed file. Since Linux 6.0.
        IORING_ASYNC_CANCEL_FD_FIXED => FD_FIXED = 1 << 3;
        /// `IORING_ASYNC_CANCEL_USERDATA`: match on `user_data` (the default). Since Linux 6.6.
        IORING_ASYNC_CANCEL_USERDATA => USERDATA = 1 << 4;
        /// `IORING_ASYNC_CANCEL_OP`: match on opcode. Since Linux 6.6.
        IORING_ASYNC_CANCEL_OP => OP = 1 << 5;
    }
}

flag_family! {
    /// Send/recv flags carried in `sqe->ioprio` by `SEND`, `RECV`, `SENDMSG`,
    /// `RECVMSG`, `SEND_ZC` and `SENDMSG_ZC`.
    RecvSendFlags: u16 {
        /// `IORING_RECVSEND_POLL_FIRST`: arm poll before trying the transfer. Since Linux 5.19.
        IORING_RECVSEND_POLL_FIRST => POLL_FIRST = 1 << 0;
        /// `IORING_RECV_MULTISHOT`: multishot recv/recvmsg. Since Linux 6.0.
        IORING_RECV_MULTISHOT => RECV_MULTISHOT = 1 << 1;
        /// `IORING_RECVSEND_FIXED_BUF`: use the registered buffer `buf_index`. Since Linux 6.0.
        IORING_RECVSEND_FIXED_BUF => FIXED_BUF = 1 << 2;
        /// `IORING_SEND_ZC_REPORT_USAGE`: report in the notification whether data was copied. Since Linux 6.2.
        IORING_SEND_ZC_REPORT_USAGE => SEND_ZC_REPORT_USAGE = 1 << 3;
        /// `IORING_RECVSEND_BUNDLE`: send or receive many provided buffers at once. Since Linux 6.10.
        IORING_RECVSEND_BUNDLE => BUNDLE = 1 << 4;
        /// `IORING_SEND_VECTORIZED`: `SEND[_ZC]` takes an iovec array. Since Linux 6.17.
        IORING_SEND_VECTORIZED => SEND_VECTORIZED = 1 << 5;
    }
}

flag_family! {
    /// Accept flags carried in `sqe->ioprio` by `IORING_OP_ACCEPT`.
    AcceptFlags: u16 {
        /// `IORING_ACCEPT_MULTISHOT`: accept repeatedly. Since Linux 5.19.
        IORING_ACCEPT_MULTISHOT => MULTISHOT = 1 << 0;
        /// `IORING_ACCEPT_DONTWAIT`: fail with `EAGAIN` rather than wait. Since Linux 6.10.
        IORING_ACCEPT_DONTWAIT => DONTWAIT = 1 << 1;
        /// `IORING_ACCEPT_POLL_FIRST`: arm poll before trying to accept. Since Linux 6.10.
        IORING_ACCEPT_POLL_FIRST => POLL_FIRST = 1 << 2;
    }
}

/// `IORING_MSG_DATA` (`enum io_uring_msg_ring_flags`): `IORING_OP_MSG_RING`
/// command in `sqe->addr`: post `len` as `res` and `off` as `user_data`.
/// Since Linux 5.18.
pub const IORING_MSG_DATA: u64 = 0;
/// `IORING_MSG_SEND_FD`: `IORING_OP_MSG_RING` command: pass a fixed file to
/// another ring. Since Linux 6.0.
pub const IORING_MSG_SEND_FD: u64 = 1;

flag_family! {
    /// `sqe->msg_ring_flags` of `IORING_OP_MSG_RING`.
    MsgRingFlags: u32 {
        /// `IORING_MSG_RING_CQE_SKIP`: post no CQE to the target ring (not for `IORING_MSG_DATA`). Since Linux 6.2.
        IORING_MSG_RING_CQE_SKIP => CQE_SKIP = 1 << 0;
        /// `IORING_MSG_RING_FLAGS_PASS`: pass `file_index` as the target CQE's flags. Since Linux 6.3.
        IORING_MSG_RING_FLAGS_PASS => FLAGS_PASS = 1 << 1;
    }
}

flag_family! {
    /// `sqe->install_fd_flags` of `IORING_OP_FIXED_FD_INSTALL`.
    FixedFdInstallFlags: u32 {
        /// `IORING_FIXED_FD_NO_CLOEXEC`: do not mark the new fd close-on-exec. Since Linux 6.8.
        IORING_FIXED_FD_NO_CLOEXEC => NO_CLOEXEC = 1 << 0;
    }
}

flag_family! {
    /// `sqe->nop_flags` of `IORING_OP_NOP`.
    NopFlags: u32 {
        /// `IORING_NOP_INJECT_RESULT`: complete with `sqe->len` as the result. Since Linux 6.10.
        IORING_NOP_INJECT_RESULT => INJECT_RESULT = 1 << 0;
        /// `IORING_NOP_FILE`: resolve `fd` as a file. Since Linux 6.13.
        IORING_NOP_FILE => FILE = 1 << 1;
        /// `IORING_NOP_FIXED_FILE`: resolve `fd` as a fixed file. Since Linux 6.13.
        IORING_NOP_FIXED_FILE => FIXED_FILE = 1 << 2;
        /// `IORING_NOP_FIXED_BUFFER`: resolve `buf_index` as a registered buffer. Since Linux 6.13.
        IORING_NOP_FIXED_BUFFER => FIXED_BUFFER = 1 << 3;
        /// `IORING_NOP_TW`: complete through task work. Since Linux 6.16.
        IORING_NOP_TW => TW = 1 << 4;
        /// `IORING_NOP_CQE32`: post a 32-byte CQE (in a `CQE_MIXED` ring). Since Linux 6.18.
        IORING_NOP_CQE32 => CQE32 = 1 << 5;
    }
}

flag_family! {
    /// `sqe->uring_cmd_flags` of `IORING_OP_URING_CMD` (the top 8 bits are the kernel's).
    UringCmdFlags: u32 {
        /// `IORING_URING_CMD_FIXED`: use the registered buffer `buf_index`. Since Linux 6.1.
        IORING_URING_CMD_FIXED => FIXED = 1 << 0;
        /// `IORING_URING_CMD_MULTISHOT`: multishot command; needs buffer select. Since Linux 6.18.
        IORING_URING_CMD_MULTISHOT => MULTISHOT = 1 << 1;
    }
}

/// `IORING_URING_CMD_MASK`: every valid `uring_cmd_flags` bit. Since Linux 6.1.
pub const IORING_URING_CMD_MASK: u32 = IORING_URING_CMD_FIXED | IORING_URING_CMD_MULTISHOT;

flag_family! {
    /// `sqe->attr_type_mask`: which attributes `attr_ptr` points to.
    RwAttrFlags: u64 {
        /// `IORING_RW_ATTR_FLAG_PI`: an [`io_uring_attr_pi`](crate::io_uring_attr_pi). Since Linux 6.14.
        IORING_RW_ATTR_FLAG_PI => PI = 1 << 0;
    }
}

/// `IORING_FILE_INDEX_ALLOC`: in `sqe->file_index`, let the kernel pick a
/// free fixed-file slot and return it in `cqe->res`. Since Linux 5.19.
pub const IORING_FILE_INDEX_ALLOC: u32 = !0;

// ---------------------------------------------------- registration flags

flag_family! {
    /// `io_uring_rsrc_register::flags`.
    RsrcRegisterFlags: u32 {
        /// `IORING_RSRC_REGISTER_SPARSE`: register `nr` empty slots. Since Linux 5.19.
        IORING_RSRC_REGISTER_SPARSE => SPARSE = 1 << 0;
    }
}

/// `IORING_REGISTER_FILES_SKIP`: in a files update, leave this slot as is.
/// Since Linux 5.12.
pub const IORING_REGISTER_FILES_SKIP: i32 = -2;

flag_family! {
    /// `io_uring_probe_op::flags`.
    ProbeOpFlags: u16 {
        /// `IO_URING_OP_SUPPORTED`: the kernel supports this opcode. Since Linux 5.6.
        IO_URING_OP_SUPPORTED => SUPPORTED = 1 << 0;
    }
}

flag_family! {
    /// `io_uring_clone_buffers::flags` (anonymous enum).
    CloneBuffersFlags: u32 {
        /// `IORING_REGISTER_SRC_REGISTERED`: `src_fd` is a registered ring index. Since Linux 6.12.
        IORING_REGISTER_SRC_REGISTERED => SRC_REGISTERED = 1 << 0;
        /// `IORING_REGISTER_DST_REPLACE`: replace buffers already in the destination. Since Linux 6.13.
        IORING_REGISTER_DST_REPLACE => DST_REPLACE = 1 << 1;
    }
}

flag_family! {
    /// `io_uring_buf_reg::flags` (`enum io_uring_register_pbuf_ring_flags`).
    PbufRingFlags: u16 {
        /// `IOU_PBUF_RING_MMAP`: the kernel allocates the ring; mmap it. Since Linux 6.4.
        IOU_PBUF_RING_MMAP => MMAP = 1;
        /// `IOU_PBUF_RING_INC`: buffers are consumed incrementally. Since Linux 6.12.
        IOU_PBUF_RING_INC => INC = 2;
    }
}

flag_family! {
    /// `io_uring_reg_wait::flags` (anonymous enum).
    RegWaitFlags: u32 {
        /// `IORING_REG_WAIT_TS`: the `ts` field is valid. Since Linux 6.13.
        IORING_REG_WAIT_TS => TS = 1 << 0;
    }
}

flag_family! {
    /// `io_uring_region_desc::flags` (anonymous enum).
    RegionDescFlags: u32 {
        /// `IORING_MEM_REGION_TYPE_USER`: use the memory at `user_addr`. Since Linux 6.13.
        IORING_MEM_REGION_TYPE_USER => TYPE_USER = 1;
    }
}

flag_family! {
    /// `io_uring_mem_region_reg::flags` (anonymous enum).
    MemRegionRegFlags: u64 {
        /// `IORING_MEM_REGION_REG_WAIT_ARG`: expose the region as registered wait arguments. Since Linux 6.13.
        IORING_MEM_REGION_REG_WAIT_ARG => REG_WAIT_ARG = 1;
    }
}

flag_family! {
    /// `io_uring_zcrx_area_reg::flags` (`enum io_uring_zcrx_area_flags`).
    ZcrxAreaFlags: u32 {
        /// `IORING_ZCRX_AREA_DMABUF`: the area is a dma-buf (`dmabuf_fd`). Since Linux 6.16.
        IORING_ZCRX_AREA_DMABUF => DMABUF = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each family's bits are distinct powers of two (a copy-paste slip in a
    /// shift would make two flags equal).
    fn distinct_single_bits<T: bitflags::Flags>()
    where
        T::Bits: Into<u64>,
    {
        let mut seen = 0u64;
        for flag in T::FLAGS {
            let bits: u64 = flag.value().bits().into();
            assert_eq!(bits.count_ones(), 1, "{} is not a single bit", flag.name());
            assert_eq!(seen & bits, 0, "{} repeats a bit", flag.name());
            seen |= bits;
        }
    }

    #[test]
    fn every_family_has_distinct_single_bits() {
        distinct_single_bits::<SqeFlags>();
        distinct_single_bits::<SetupFlags>();
        distinct_single_bits::<Features>();
        distinct_single_bits::<EnterFlags>();
        distinct_single_bits::<SqFlags>();
        distinct_single_bits::<CqFlags>();
        distinct_single_bits::<CqeFlags>();
        distinct_single_bits::<FsyncFlags>();
        distinct_single_bits::<TimeoutFlags>();
        distinct_single_bits::<SpliceFlags>();
        distinct_single_bits::<PollFlags>();
        distinct_single_bits::<AsyncCancelFlags>();
        distinct_single_bits::<RecvSendFlags>();
        distinct_single_bits::<AcceptFlags>();
        distinct_single_bits::<MsgRingFlags>();
        distinct_single_bits::<FixedFdInstallFlags>();
        distinct_single_bits::<NopFlags>();
        distinct_single_bits::<UringCmdFlags>();
        distinct_single_bits::<RwAttrFlags>();
        distinct_single_bits::<RsrcRegisterFlags>();
        distinct_single_bits::<ProbeOpFlags>();
        distinct_single_bits::<CloneBuffersFlags>();
        distinct_single_bits::<PbufRingFlags>();
        distinct_single_bits::<RegWaitFlags>();
        distinct_single_bits::<RegionDescFlags>();
        distinct_single_bits::<MemRegionRegFlags>();
        distinct_single_bits::<ZcrxAreaFlags>();
    }

    #[test]
    fn families_are_contiguous_from_bit_zero_where_the_header_is() {
        assert_eq!(
            SetupFlags::all().bits(),
            (1 << 19) - 1,
            "IORING_SETUP_* of 6.18 are bits 0..=18"
        );
        assert_eq!(
            Features::all().bits(),
            (1 << 18) - 1,
            "IORING_FEAT_* of 6.18 are bits 0..=17"
        );
        assert_eq!(EnterFlags::all().bits(), 0xff);
        assert_eq!(SqeFlags::all().bits(), 0x7f);
    }

    #[test]
    fn unknown_kernel_bits_are_retained_not_lost() {
        let flags = CqeFlags::from_bits_retain(IORING_CQE_F_MORE | (7 << IORING_CQE_BUFFER_SHIFT));
        assert!(flags.contains(CqeFlags::MORE));
        assert_eq!(flags.bits() >> IORING_CQE_BUFFER_SHIFT, 7);
    }
}
