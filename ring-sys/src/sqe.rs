//! `struct io_uring_sqe`, its unions, and the 128-byte entry of `IORING_SETUP_SQE128`.
//!
//! The C struct has six anonymous unions; each becomes a named `#[repr(C)]`
//! union whose name lists its alternatives. Writing a union field is safe;
//! reading one is `unsafe` (the reader must know which alternative was
//! written). [`io_uring_sqe::default`] zeroes every byte, so an entry built
//! from it and then assigned field by field never holds uninitialised bytes.

/// `struct io_uring_sqe`: a submission queue entry, 64 bytes. Since Linux 5.1.
///
/// Build one with [`io_uring_sqe::default`] (all zero) and assign the fields an
/// op reads; `ring-io-ops` does this for every opcode.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct io_uring_sqe {
    /// `opcode`: the operation, an `IORING_OP_*` value. Since Linux 5.1.
    pub opcode: u8,
    /// `flags`: `IOSQE_*` bits ([`SqeFlags`](crate::SqeFlags)). Since Linux 5.1.
    pub flags: u8,
    /// `ioprio`: the I/O priority, or per-op flags for send/recv/accept
    /// ([`RecvSendFlags`](crate::RecvSendFlags), [`AcceptFlags`](crate::AcceptFlags)).
    /// Since Linux 5.1.
    pub ioprio: u16,
    /// `fd`: the file descriptor, or a fixed-file index with `IOSQE_FIXED_FILE`.
    /// Since Linux 5.1.
    pub fd: i32,
    /// `union { off; addr2; { cmd_op; __pad1 } }`.
    pub off_addr2: sqe_off_addr2,
    /// `union { addr; splice_off_in; { level; optname } }`.
    pub addr_splice_off_in: sqe_addr_splice_off_in,
    /// `len`: buffer size or number of iovecs. Since Linux 5.1.
    pub len: u32,
    /// The per-op flags union: `union { rw_flags; fsync_flags; poll_events; ... }`.
    pub op_flags: sqe_op_flags,
    /// `user_data`: passed back unchanged in the completion. Since Linux 5.1.
    pub user_data: u64,
    /// `union { buf_index; buf_group } __attribute__((packed))`.
    pub buf_index_group: sqe_buf_index_group,
    /// `personality`: a credential id from `IORING_REGISTER_PERSONALITY`.
    /// Since Linux 5.6.
    pub personality: u16,
    /// `union { splice_fd_in; file_index; zcrx_ifq_idx; optlen; { addr_len; __pad3 }; { write_stream; __pad4 } }`.
    pub splice_fd_in_file_index: sqe_splice_fd_in_file_index,
    /// `union { { addr3; __pad2 }; { attr_ptr; attr_type_mask }; optval; cmd[] }`.
    pub addr3_cmd: sqe_addr3_cmd,
}

impl io_uring_sqe {
    /// An entry with every byte zero: `IORING_OP_NOP`, no flags, `user_data` 0.
    ///
    /// Each union is initialised through its widest alternative, so all 64
    /// bytes are initialised.
    pub const fn zeroed() -> Self {
        Self {
            opcode: 0,
            flags: 0,
            ioprio: 0,
            fd: 0,
            off_addr2: sqe_off_addr2 { off: 0 },
            addr_splice_off_in: sqe_addr_splice_off_in { addr: 0 },
            len: 0,
            op_flags: sqe_op_flags { rw_flags: 0 },
            user_data: 0,
            buf_index_group: sqe_buf_index_group { buf_index: 0 },
            personality: 0,
            splice_fd_in_file_index: sqe_splice_fd_in_file_index { file_index: 0 },
            addr3_cmd: sqe_addr3_cmd {
                addr3: sqe_addr3 {
                    addr3: 0,
                    __pad2: [0],
                },
            },
        }
    }
}

impl Default for io_uring_sqe {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl core::fmt::Debug for io_uring_sqe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Unions are shown through their widest alternative. This reads
        // bytes that may never have been written if the entry was built by a
        // union literal naming a narrower field, so it is only done for
        // entries whose every byte is initialised: the ones `zeroed()` makes.
        // We cannot know that here, so print the non-union fields only.
        f.debug_struct("io_uring_sqe")
            .field("opcode", &self.opcode)
            .field("flags", &self.flags)
            .field("ioprio", &self.ioprio)
            .field("fd", &self.fd)
            .field("len", &self.len)
            .field("user_data", &self.user_data)
            .field("personality", &self.personality)
            .finish_non_exhaustive()
    }
}

/// `union { __u64 off; __u64 addr2; struct { __u32 cmd_op; __u32 __pad1; }; }`
/// at byte 8 of [`io_uring_sqe`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union sqe_off_addr2 {
    /// `off`: file offset. Since Linux 5.1.
    pub off: u64,
    /// `addr2`: a second address (accept's addrlen pointer, ...). Since Linux 5.5.
    pub addr2: u64,
    /// `{ cmd_op; __pad1 }`: the `IORING_OP_URING_CMD` sub-command. Since Linux 5.19.
    pub cmd_op: sqe_cmd_op,
}

/// `struct { __u32 cmd_op; __u32 __pad1; }` inside [`sqe_off_addr2`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct sqe_cmd_op {
    /// `cmd_op`: the command for `IORING_OP_URING_CMD`. Since Linux 5.19.
    pub cmd_op: u32,
    #[doc(hidden)]
    pub __pad1: u32,
}

/// `union { __u64 addr; __u64 splice_off_in; struct { __u32 level; __u32 optname; }; }`
/// at byte 16 of [`io_uring_sqe`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union sqe_addr_splice_off_in {
    /// `addr`: pointer to the buffer or iovecs. Since Linux 5.1.
    pub addr: u64,
    /// `splice_off_in`: input offset of `IORING_OP_SPLICE`. Since Linux 5.7.
    pub splice_off_in: u64,
    /// `{ level; optname }`: socket option of `SOCKET_URING_OP_[GS]ETSOCKOPT`.
    /// Since Linux 6.7.
    pub level_optname: sqe_level_optname,
}

/// `struct { __u32 level; __u32 optname; }` inside [`sqe_addr_splice_off_in`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct sqe_level_optname {
    /// `level`: `SOL_*`. Since Linux 6.7.
    pub level: u32,
    /// `optname`: `SO_*`. Since Linux 6.7.
    pub optname: u32,
}

/// The per-op flags union at byte 28 of [`io_uring_sqe`]: every member is a
/// 32-bit word but `poll_events`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union sqe_op_flags {
    /// `rw_flags`: `RWF_*` for read/write. Since Linux 5.1.
    pub rw_flags: u32,
    /// `fsync_flags`: [`FsyncFlags`](crate::FsyncFlags). Since Linux 5.1.
    pub fsync_flags: u32,
    /// `poll_events`: 16-bit poll mask (compatibility). Since Linux 5.1.
    pub poll_events: u16,
    /// `poll32_events`: 32-bit poll mask, word-reversed on big endian. Since Linux 5.9.
    pub poll32_events: u32,
    /// `sync_range_flags`: `SYNC_FILE_RANGE_*`. Since Linux 5.2.
    pub sync_range_flags: u32,
    /// `msg_flags`: `MSG_*` for send/recv. Since Linux 5.3.
    pub msg_flags: u32,
    /// `timeout_flags`: [`TimeoutFlags`](crate::TimeoutFlags). Since Linux 5.4.
    pub timeout_flags: u32,
    /// `accept_flags`: `SOCK_*` flags of accept4. Since Linux 5.5.
    pub accept_flags: u32,
    /// `cancel_flags`: [`AsyncCancelFlags`](crate::AsyncCancelFlags). Since Linux 5.5.
    pub cancel_flags: u32,
    /// `open_flags`: `O_*` of openat. Since Linux 5.6.
    pub open_flags: u32,
    /// `statx_flags`: `AT_*` of statx. Since Linux 5.6.
    pub statx_flags: u32,
    /// `fadvise_advice`: `POSIX_FADV_*`. Since Linux 5.6.
    pub fadvise_advice: u32,
    /// `splice_flags`: [`SpliceFlags`](crate::SpliceFlags). Since Linux 5.7.
    pub splice_flags: u32,
    /// `rename_flags`: `RENAME_*`. Since Linux 5.11.
    pub rename_flags: u32,
    /// `unlink_flags`: `AT_REMOVEDIR`. Since Linux 5.11.
    pub unlink_flags: u32,
    /// `hardlink_flags`: `AT_*` of linkat. Since Linux 5.15.
    pub hardlink_flags: u32,
    /// `xattr_flags`: `XATTR_*`. Since Linux 5.19.
    pub xattr_flags: u32,
    /// `msg_ring_flags`: [`MsgRingFlags`](crate::MsgRingFlags). Since Linux 6.0.
    pub msg_ring_flags: u32,
    /// `uring_cmd_flags`: [`UringCmdFlags`](crate::UringCmdFlags). Since Linux 6.0.
    pub uring_cmd_flags: u32,
    /// `waitid_flags`: reserved, must be 0. Since Linux 6.7.
    pub waitid_flags: u32,
    /// `futex_flags`: `FUTEX2_*` (waitv: must be 0). Since Linux 6.7.
    pub futex_flags: u32,
    /// `install_fd_flags`: [`FixedFdInstallFlags`](crate::FixedFdInstallFlags). Since Linux 6.8.
    pub install_fd_flags: u32,
    /// `nop_flags`: [`NopFlags`](crate::NopFlags). Since Linux 6.10.
    pub nop_flags: u32,
    /// `pipe_flags`: `O_*` flags of pipe2. Since Linux 6.16.
    pub pipe_flags: u32,
}

/// `union { __u16 buf_index; __u16 buf_group; } __attribute__((packed))` at
/// byte 40 of [`io_uring_sqe`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union sqe_buf_index_group {
    /// `buf_index`: index into the registered (fixed) buffers. Since Linux 5.1.
    pub buf_index: u16,
    /// `buf_group`: buffer group id for `IOSQE_BUFFER_SELECT`. Since Linux 5.7.
    pub buf_group: u16,
}

/// The union at byte 44 of [`io_uring_sqe`]:
/// `union { __s32 splice_fd_in; __u32 file_index; __u32 zcrx_ifq_idx; __u32 optlen;
/// struct { __u16 addr_len; __u16 __pad3[1]; }; struct { __u8 write_stream; __u8 __pad4[3]; }; }`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union sqe_splice_fd_in_file_index {
    /// `splice_fd_in`: input fd of splice/tee. Since Linux 5.7.
    pub splice_fd_in: i32,
    /// `file_index`: fixed-file slot + 1 for ops that install a direct
    /// descriptor, or [`IORING_FILE_INDEX_ALLOC`](crate::IORING_FILE_INDEX_ALLOC).
    /// Since Linux 5.15.
    pub file_index: u32,
    /// `zcrx_ifq_idx`: zero-copy receive interface queue. Since Linux 6.15.
    pub zcrx_ifq_idx: u32,
    /// `optlen`: socket option length. Since Linux 6.7.
    pub optlen: u32,
    /// `{ addr_len; __pad3 }`: destination address length of send/send_zc.
    /// Since Linux 6.0.
    pub addr_len: sqe_addr_len,
    /// `{ write_stream; __pad4 }`: write stream of a write. Since Linux 6.16.
    pub write_stream: sqe_write_stream,
}

/// `struct { __u16 addr_len; __u16 __pad3[1]; }` inside [`sqe_splice_fd_in_file_index`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct sqe_addr_len {
    /// `addr_len`: length of the address at `addr2`. Since Linux 6.0.
    pub addr_len: u16,
    #[doc(hidden)]
    pub __pad3: [u16; 1],
}

/// `struct { __u8 write_stream; __u8 __pad4[3]; }` inside [`sqe_splice_fd_in_file_index`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct sqe_write_stream {
    /// `write_stream`: the write stream (data placement hint). Since Linux 6.16.
    pub write_stream: u8,
    #[doc(hidden)]
    pub __pad4: [u8; 3],
}

/// The union at byte 48 of [`io_uring_sqe`]:
/// `union { struct { __u64 addr3; __u64 __pad2[1]; }; struct { __u64 attr_ptr; __u64 attr_type_mask; }; __u64 optval; __u8 cmd[0]; }`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union sqe_addr3_cmd {
    /// `{ addr3; __pad2 }`: a third address. Since Linux 6.0.
    pub addr3: sqe_addr3,
    /// `{ attr_ptr; attr_type_mask }`: read/write attributes such as
    /// [`io_uring_attr_pi`]. Since Linux 6.14.
    pub attr: sqe_attr,
    /// `optval`: pointer to a socket option value. Since Linux 6.7.
    pub optval: u64,
    /// `cmd[0]`: start of the `IORING_OP_URING_CMD` payload: 16 bytes in a
    /// 64-byte entry, 80 in a 128-byte one (see [`io_uring_sqe128`]).
    /// Since Linux 5.19.
    pub cmd: [u8; 0],
}

/// `struct { __u64 addr3; __u64 __pad2[1]; }` inside [`sqe_addr3_cmd`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct sqe_addr3 {
    /// `addr3`. Since Linux 6.0.
    pub addr3: u64,
    #[doc(hidden)]
    pub __pad2: [u64; 1],
}

/// `struct { __u64 attr_ptr; __u64 attr_type_mask; }` inside [`sqe_addr3_cmd`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct sqe_attr {
    /// `attr_ptr`: pointer to attribute information. Since Linux 6.14.
    pub attr_ptr: u64,
    /// `attr_type_mask`: [`RwAttrFlags`](crate::RwAttrFlags). Since Linux 6.14.
    pub attr_type_mask: u64,
}

/// A 128-byte submission entry, the slot size of a ring set up with
/// `IORING_SETUP_SQE128` (Linux 5.19). No C struct: the header describes it
/// as `io_uring_sqe` followed by 64 more bytes of `cmd`, so that
/// `IORING_OP_URING_CMD` carries 80 bytes of payload.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct io_uring_sqe128 {
    /// The first 64 bytes: an ordinary entry.
    pub sqe: io_uring_sqe,
    /// The second 64 bytes, continuing `cmd`.
    pub cmd_ext: [u8; 64],
}

impl io_uring_sqe128 {
    /// An entry with every byte zero.
    pub const fn zeroed() -> Self {
        Self {
            sqe: io_uring_sqe::zeroed(),
            cmd_ext: [0; 64],
        }
    }
}

impl Default for io_uring_sqe128 {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// `struct io_uring_attr_pi`: protection-information attribute, pointed to by
/// `attr_ptr` with [`IORING_RW_ATTR_FLAG_PI`](crate::IORING_RW_ATTR_FLAG_PI).
/// Since Linux 6.14.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct io_uring_attr_pi {
    /// `flags`.
    pub flags: u16,
    /// `app_tag`.
    pub app_tag: u16,
    /// `len`: length of the PI buffer.
    pub len: u32,
    /// `addr`: address of the PI buffer.
    pub addr: u64,
    /// `seed`.
    pub seed: u64,
    #[doc(hidden)]
    pub rsvd: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_entries_are_zero_in_every_byte() {
        let sqe = io_uring_sqe::zeroed();
        // SAFETY: `zeroed` initialises every union through its widest member
        // and the struct has no padding (asserted in layout.rs), so all 64
        // bytes are initialised.
        let bytes: [u8; 64] = unsafe { core::mem::transmute(sqe) };
        assert_eq!(bytes, [0; 64]);
        let big = io_uring_sqe128::default();
        // SAFETY: as above, plus 64 zeroed bytes of `cmd_ext`.
        let bytes: [u8; 128] = unsafe { core::mem::transmute(big) };
        assert_eq!(bytes, [0; 128]);
    }

    #[test]
    fn union_members_alias_the_same_bytes() {
        let mut sqe = io_uring_sqe::zeroed();
        sqe.off_addr2.cmd_op = sqe_cmd_op {
            cmd_op: 0xdead_beef,
            __pad1: 0,
        };
        // SAFETY: the union was fully initialised by `zeroed`; reading the
        // wider member sees the bytes the narrower one wrote (little endian).
        assert_eq!(unsafe { sqe.off_addr2.off } & 0xffff_ffff, 0xdead_beef);
        sqe.op_flags.poll_events = 0x1234;
        // SAFETY: as above.
        assert_eq!(unsafe { sqe.op_flags.poll32_events } & 0xffff, 0x1234);
    }
}
