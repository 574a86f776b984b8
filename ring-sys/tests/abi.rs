//! Cross-check of ring-sys against an independent binding: the bindgen output
//! of `linux-raw-sys` (0.12, generated from Linux 6.17 headers).
//!
//! Every struct: size, alignment, and each field's offset and size. Every
//! constant: its value. Items that are new in Linux 6.18 (so absent from
//! linux-raw-sys), or whose value 6.18 changed, are listed by name and checked
//! against the numbers of the 6.18 header instead; the test prints them.

use core::mem::{align_of, offset_of, size_of};

use linux_raw_sys::io_uring as lrs;

/// Size of a (possibly nested) field, computed from a raw place: nothing is read.
macro_rules! field_size {
    ($t:ty, $($f:tt)+) => {{
        let value = core::mem::MaybeUninit::<$t>::uninit();
        let p = value.as_ptr();
        fn size<F>(_: *const F) -> usize {
            size_of::<F>()
        }
        // SAFETY: `&raw const` computes the address of a field inside `value`
        // without creating a reference or reading it.
        size(unsafe { &raw const (*p).$($f)+ })
    }};
}

/// Asserts one field has the same offset and size in both bindings.
macro_rules! same_field {
    ($ours:ty, [$($of:tt)+], $theirs:ty, [$($tf:tt)+]) => {
        assert_eq!(
            offset_of!($ours, $($of)+),
            offset_of!($theirs, $($tf)+),
            "offset of {}.{}",
            stringify!($ours),
            stringify!($($of)+)
        );
        assert_eq!(
            field_size!($ours, $($of)+),
            field_size!($theirs, $($tf)+),
            "size of {}.{}",
            stringify!($ours),
            stringify!($($of)+)
        );
    };
}

/// Asserts size and alignment match, and every listed field (same name on
/// both sides) matches.
macro_rules! same_struct {
    ($name:ident { $($field:ident),* $(,)? }) => {{
        assert_eq!(size_of::<ring_io_sys::$name>(), size_of::<lrs::$name>(), "size of {}", stringify!($name));
        assert_eq!(align_of::<ring_io_sys::$name>(), align_of::<lrs::$name>(), "align of {}", stringify!($name));
        $( same_field!(ring_io_sys::$name, [$field], lrs::$name, [$field]); )*
    }};
}

#[test]
fn structs_match_linux_raw_sys() {
    same_struct!(__kernel_timespec { tv_sec, tv_nsec });
    same_struct!(io_uring_cqe {
        user_data,
        res,
        flags,
        big_cqe
    });
    same_struct!(io_sqring_offsets {
        head,
        tail,
        ring_mask,
        ring_entries,
        flags,
        dropped,
        array,
        resv1,
        user_addr
    });
    same_struct!(io_cqring_offsets {
        head,
        tail,
        ring_mask,
        ring_entries,
        overflow,
        cqes,
        flags,
        resv1,
        user_addr
    });
    same_struct!(io_uring_params {
        sq_entries,
        cq_entries,
        flags,
        sq_thread_cpu,
        sq_thread_idle,
        features,
        wq_fd,
        resv,
        sq_off,
        cq_off
    });
    same_struct!(io_uring_attr_pi {
        flags,
        app_tag,
        len,
        addr,
        seed,
        rsvd
    });
    same_struct!(io_uring_files_update { offset, resv, fds });
    same_struct!(io_uring_region_desc {
        user_addr,
        size,
        flags,
        id,
        mmap_offset,
        __resv
    });
    same_struct!(io_uring_mem_region_reg {
        region_uptr,
        flags,
        __resv
    });
    same_struct!(io_uring_rsrc_register {
        nr,
        flags,
        resv2,
        data,
        tags
    });
    same_struct!(io_uring_rsrc_update { offset, resv, data });
    same_struct!(io_uring_rsrc_update2 {
        offset,
        resv,
        data,
        tags,
        nr,
        resv2
    });
    same_struct!(io_uring_probe_op {
        op,
        resv,
        flags,
        resv2
    });
    same_struct!(io_uring_probe {
        last_op,
        ops_len,
        resv,
        resv2,
        ops
    });
    same_struct!(io_uring_clock_register { clockid, __resv });
    same_struct!(io_uring_clone_buffers {
        src_fd,
        flags,
        src_off,
        dst_off,
        nr,
        pad
    });
    same_struct!(io_uring_buf {
        addr,
        len,
        bid,
        resv
    });
    same_struct!(io_uring_buf_reg {
        ring_addr,
        ring_entries,
        bgid,
        flags,
        resv
    });
    same_struct!(io_uring_buf_status {
        buf_group,
        head,
        resv
    });
    same_struct!(io_uring_napi {
        busy_poll_to,
        prefer_busy_poll,
        opcode,
        pad,
        op_param,
        resv
    });
    same_struct!(io_uring_reg_wait {
        ts,
        min_wait_usec,
        flags,
        sigmask,
        sigmask_sz,
        pad,
        pad2
    });
    same_struct!(io_uring_getevents_arg {
        sigmask,
        sigmask_sz,
        min_wait_usec,
        ts
    });
    same_struct!(io_uring_sync_cancel_reg {
        addr,
        fd,
        flags,
        timeout,
        opcode,
        pad,
        pad2
    });
    same_struct!(io_uring_file_index_range { off, len, resv });
    same_struct!(io_uring_recvmsg_out {
        namelen,
        controllen,
        payloadlen,
        flags
    });
    same_struct!(io_timespec { tv_sec, tv_nsec });
    same_struct!(io_uring_zcrx_rqe { off, len, __pad });
    same_struct!(io_uring_zcrx_cqe { off, __pad });
    same_struct!(io_uring_zcrx_offsets {
        head,
        tail,
        rqes,
        __resv2,
        __resv
    });
    same_struct!(io_uring_zcrx_area_reg {
        addr,
        len,
        rq_area_token,
        flags,
        dmabuf_fd,
        __resv2
    });
    same_struct!(io_uring_zcrx_ifq_reg {
        if_idx,
        if_rxq,
        rq_entries,
        flags,
        area_ptr,
        region_ptr,
        offsets,
        zcrx_id,
        __resv2,
        __resv
    });
}

#[test]
fn sqe_and_its_unions_match_linux_raw_sys() {
    use lrs::io_uring_sqe as Theirs;
    use ring_io_sys::io_uring_sqe as Ours;
    assert_eq!(size_of::<Ours>(), size_of::<Theirs>());
    assert_eq!(align_of::<Ours>(), align_of::<Theirs>());
    same_field!(Ours, [opcode], Theirs, [opcode]);
    same_field!(Ours, [flags], Theirs, [flags]);
    same_field!(Ours, [ioprio], Theirs, [ioprio]);
    same_field!(Ours, [fd], Theirs, [fd]);
    same_field!(Ours, [off_addr2], Theirs, [__bindgen_anon_1]);
    same_field!(Ours, [off_addr2.off], Theirs, [__bindgen_anon_1.off]);
    same_field!(Ours, [off_addr2.addr2], Theirs, [__bindgen_anon_1.addr2]);
    same_field!(
        Ours,
        [off_addr2.cmd_op.cmd_op],
        Theirs,
        [__bindgen_anon_1.__bindgen_anon_1.cmd_op]
    );
    same_field!(
        Ours,
        [off_addr2.cmd_op.__pad1],
        Theirs,
        [__bindgen_anon_1.__bindgen_anon_1.__pad1]
    );
    same_field!(Ours, [addr_splice_off_in], Theirs, [__bindgen_anon_2]);
    same_field!(
        Ours,
        [addr_splice_off_in.addr],
        Theirs,
        [__bindgen_anon_2.addr]
    );
    same_field!(
        Ours,
        [addr_splice_off_in.splice_off_in],
        Theirs,
        [__bindgen_anon_2.splice_off_in]
    );
    same_field!(
        Ours,
        [addr_splice_off_in.level_optname.level],
        Theirs,
        [__bindgen_anon_2.__bindgen_anon_1.level]
    );
    same_field!(
        Ours,
        [addr_splice_off_in.level_optname.optname],
        Theirs,
        [__bindgen_anon_2.__bindgen_anon_1.optname]
    );
    same_field!(Ours, [len], Theirs, [len]);
    same_field!(Ours, [op_flags], Theirs, [__bindgen_anon_3]);
    macro_rules! op_flag {
        ($($f:ident),*) => { $( same_field!(Ours, [op_flags.$f], Theirs, [__bindgen_anon_3.$f]); )* };
    }
    op_flag!(
        rw_flags,
        fsync_flags,
        poll_events,
        poll32_events,
        sync_range_flags,
        msg_flags,
        timeout_flags,
        accept_flags,
        cancel_flags,
        open_flags,
        statx_flags,
        fadvise_advice,
        splice_flags,
        rename_flags,
        unlink_flags,
        hardlink_flags,
        xattr_flags,
        msg_ring_flags,
        uring_cmd_flags,
        waitid_flags,
        futex_flags,
        install_fd_flags,
        nop_flags,
        pipe_flags
    );
    same_field!(Ours, [user_data], Theirs, [user_data]);
    same_field!(Ours, [buf_index_group], Theirs, [__bindgen_anon_4]);
    same_field!(
        Ours,
        [buf_index_group.buf_index],
        Theirs,
        [__bindgen_anon_4.buf_index]
    );
    same_field!(
        Ours,
        [buf_index_group.buf_group],
        Theirs,
        [__bindgen_anon_4.buf_group]
    );
    same_field!(Ours, [personality], Theirs, [personality]);
    same_field!(Ours, [splice_fd_in_file_index], Theirs, [__bindgen_anon_5]);
    same_field!(
        Ours,
        [splice_fd_in_file_index.splice_fd_in],
        Theirs,
        [__bindgen_anon_5.splice_fd_in]
    );
    same_field!(
        Ours,
        [splice_fd_in_file_index.file_index],
        Theirs,
        [__bindgen_anon_5.file_index]
    );
    same_field!(
        Ours,
        [splice_fd_in_file_index.zcrx_ifq_idx],
        Theirs,
        [__bindgen_anon_5.zcrx_ifq_idx]
    );
    same_field!(
        Ours,
        [splice_fd_in_file_index.optlen],
        Theirs,
        [__bindgen_anon_5.optlen]
    );
    same_field!(
        Ours,
        [splice_fd_in_file_index.addr_len.addr_len],
        Theirs,
        [__bindgen_anon_5.__bindgen_anon_1.addr_len]
    );
    same_field!(
        Ours,
        [splice_fd_in_file_index.addr_len.__pad3],
        Theirs,
        [__bindgen_anon_5.__bindgen_anon_1.__pad3]
    );
    same_field!(
        Ours,
        [splice_fd_in_file_index.write_stream.write_stream],
        Theirs,
        [__bindgen_anon_5.__bindgen_anon_2.write_stream]
    );
    same_field!(
        Ours,
        [splice_fd_in_file_index.write_stream.__pad4],
        Theirs,
        [__bindgen_anon_5.__bindgen_anon_2.__pad4]
    );
    same_field!(Ours, [addr3_cmd], Theirs, [__bindgen_anon_6]);
    // bindgen turns the last union into a struct of zero-sized
    // `__BindgenUnionField`s (it holds a flexible array), so its alternatives
    // are compared as standalone structs at the union's offset, and the
    // scalar alternatives by offset (their sizes are the header's: 8 and 0).
    assert_eq!(
        offset_of!(Ours, addr3_cmd.optval),
        offset_of!(Theirs, __bindgen_anon_6.optval)
    );
    assert_eq!(
        offset_of!(Ours, addr3_cmd.cmd),
        offset_of!(Theirs, __bindgen_anon_6.cmd)
    );
    assert_eq!(field_size!(Ours, addr3_cmd.optval), 8);
    assert_eq!(field_size!(Ours, addr3_cmd.cmd), 0);
    same_field!(
        ring_io_sys::sqe_addr3,
        [addr3],
        lrs::io_uring_sqe__bindgen_ty_6__bindgen_ty_1,
        [addr3]
    );
    same_field!(
        ring_io_sys::sqe_addr3,
        [__pad2],
        lrs::io_uring_sqe__bindgen_ty_6__bindgen_ty_1,
        [__pad2]
    );
    same_field!(
        ring_io_sys::sqe_attr,
        [attr_ptr],
        lrs::io_uring_sqe__bindgen_ty_6__bindgen_ty_2,
        [attr_ptr]
    );
    same_field!(
        ring_io_sys::sqe_attr,
        [attr_type_mask],
        lrs::io_uring_sqe__bindgen_ty_6__bindgen_ty_2,
        [attr_type_mask]
    );
    assert_eq!(
        size_of::<ring_io_sys::sqe_addr3>(),
        size_of::<lrs::io_uring_sqe__bindgen_ty_6__bindgen_ty_1>()
    );
    assert_eq!(
        size_of::<ring_io_sys::sqe_attr>(),
        size_of::<lrs::io_uring_sqe__bindgen_ty_6__bindgen_ty_2>()
    );
    assert_eq!(
        size_of::<ring_io_sys::sqe_addr3_cmd>(),
        size_of::<lrs::io_uring_sqe__bindgen_ty_6>()
    );
}

#[test]
fn restriction_and_buf_ring_match_linux_raw_sys() {
    use lrs::io_uring_restriction as Theirs;
    use ring_io_sys::io_uring_restriction as Ours;
    assert_eq!(size_of::<Ours>(), size_of::<Theirs>());
    assert_eq!(align_of::<Ours>(), align_of::<Theirs>());
    same_field!(Ours, [opcode], Theirs, [opcode]);
    same_field!(Ours, [op_flags], Theirs, [__bindgen_anon_1]);
    same_field!(
        Ours,
        [op_flags.register_op],
        Theirs,
        [__bindgen_anon_1.register_op]
    );
    same_field!(Ours, [op_flags.sqe_op], Theirs, [__bindgen_anon_1.sqe_op]);
    same_field!(
        Ours,
        [op_flags.sqe_flags],
        Theirs,
        [__bindgen_anon_1.sqe_flags]
    );
    same_field!(Ours, [resv], Theirs, [resv]);
    same_field!(Ours, [resv2], Theirs, [resv2]);

    use lrs::io_uring_buf_ring__bindgen_ty_1__bindgen_ty_1 as TheirHdr;
    use ring_io_sys::buf_ring_hdr as Hdr;
    assert_eq!(
        size_of::<ring_io_sys::io_uring_buf_ring>(),
        size_of::<lrs::io_uring_buf_ring>()
    );
    assert_eq!(
        align_of::<ring_io_sys::io_uring_buf_ring>(),
        align_of::<lrs::io_uring_buf_ring>()
    );
    assert_eq!(size_of::<Hdr>(), size_of::<TheirHdr>());
    same_field!(Hdr, [resv1], TheirHdr, [resv1]);
    same_field!(Hdr, [resv2], TheirHdr, [resv2]);
    same_field!(Hdr, [resv3], TheirHdr, [resv3]);
    same_field!(Hdr, [tail], TheirHdr, [tail]);
    // The tail overlays entry 0's `resv`, as the header's comment says.
    assert_eq!(
        offset_of!(Hdr, tail),
        offset_of!(ring_io_sys::io_uring_buf, resv)
    );
}

/// Structs linux-raw-sys 0.12 does not have (new in 6.18, or with no C
/// struct of their own): checked against the header's numbers.
#[test]
fn structs_new_in_6_18_match_the_header() {
    eprintln!(
        "note: linux-raw-sys lacks io_uring_query_hdr and io_uring_query_opcode (Linux 6.18); \
         checked against linux/io_uring/query.h instead"
    );
    assert_eq!(size_of::<ring_io_sys::io_uring_query_hdr>(), 40);
    assert_eq!(offset_of!(ring_io_sys::io_uring_query_hdr, query_op), 16);
    assert_eq!(offset_of!(ring_io_sys::io_uring_query_hdr, result), 24);
    assert_eq!(size_of::<ring_io_sys::io_uring_query_opcode>(), 48);
    assert_eq!(
        offset_of!(ring_io_sys::io_uring_query_opcode, sqe_flags),
        32
    );
    assert_eq!(
        offset_of!(ring_io_sys::io_uring_query_opcode, nr_query_opcodes),
        40
    );
    // The big entries are the base entry plus the header's extra bytes.
    assert_eq!(
        size_of::<ring_io_sys::io_uring_sqe128>(),
        2 * size_of::<lrs::io_uring_sqe>()
    );
    assert_eq!(
        size_of::<ring_io_sys::io_uring_cqe32>(),
        size_of::<lrs::io_uring_cqe>() + 16
    );
    assert_eq!(
        offset_of!(ring_io_sys::io_uring_cqe32, big_cqe),
        offset_of!(lrs::io_uring_cqe, big_cqe)
    );
}

macro_rules! same_consts {
    ($($name:ident),* $(,)?) => {
        $( assert_eq!(ring_io_sys::$name as u64, lrs::$name as u64, "{}", stringify!($name)); )*
    };
}

macro_rules! same_enum_consts {
    ($($enum:ident :: $name:ident),* $(,)?) => {
        $( assert_eq!(ring_io_sys::$name as u64, lrs::$enum::$name as u64, "{}", stringify!($name)); )*
    };
}

#[test]
fn constants_match_linux_raw_sys() {
    same_consts![
        IORING_CQE_BUFFER_SHIFT,
        IORING_TIMESTAMP_HW_SHIFT,
        IORING_TIMESTAMP_TYPE_SHIFT,
        IORING_NOTIF_USAGE_ZC_COPIED,
        IORING_TIMEOUT_CLOCK_MASK,
        IORING_TIMEOUT_UPDATE_MASK,
        IORING_REGISTER_FILES_SKIP,
        IORING_SETUP_IOPOLL,
        IORING_SETUP_SQPOLL,
        IORING_SETUP_SQ_AFF,
        IORING_SETUP_CQSIZE,
        IORING_SETUP_CLAMP,
        IORING_SETUP_ATTACH_WQ,
        IORING_SETUP_R_DISABLED,
        IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SQE128,
        IORING_SETUP_CQE32,
        IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_NO_MMAP,
        IORING_SETUP_REGISTERED_FD_ONLY,
        IORING_SETUP_NO_SQARRAY,
        IORING_SETUP_HYBRID_IOPOLL,
        IORING_FEAT_SINGLE_MMAP,
        IORING_FEAT_NODROP,
        IORING_FEAT_SUBMIT_STABLE,
        IORING_FEAT_RW_CUR_POS,
        IORING_FEAT_CUR_PERSONALITY,
        IORING_FEAT_FAST_POLL,
        IORING_FEAT_POLL_32BITS,
        IORING_FEAT_SQPOLL_NONFIXED,
        IORING_FEAT_EXT_ARG,
        IORING_FEAT_NATIVE_WORKERS,
        IORING_FEAT_RSRC_TAGS,
        IORING_FEAT_CQE_SKIP,
        IORING_FEAT_LINKED_FILE,
        IORING_FEAT_REG_REG_RING,
        IORING_FEAT_RECVSEND_BUNDLE,
        IORING_FEAT_MIN_TIMEOUT,
        IORING_FEAT_RW_ATTR,
        IORING_FEAT_NO_IOWAIT,
        IORING_ENTER_GETEVENTS,
        IORING_ENTER_SQ_WAKEUP,
        IORING_ENTER_SQ_WAIT,
        IORING_ENTER_EXT_ARG,
        IORING_ENTER_REGISTERED_RING,
        IORING_ENTER_ABS_TIMER,
        IORING_ENTER_EXT_ARG_REG,
        IORING_ENTER_NO_IOWAIT,
        IORING_SQ_NEED_WAKEUP,
        IORING_SQ_CQ_OVERFLOW,
        IORING_SQ_TASKRUN,
        IORING_CQ_EVENTFD_DISABLED,
        IORING_CQE_F_BUFFER,
        IORING_CQE_F_MORE,
        IORING_CQE_F_SOCK_NONEMPTY,
        IORING_CQE_F_NOTIF,
        IORING_CQE_F_BUF_MORE,
        IORING_FSYNC_DATASYNC,
        IORING_TIMEOUT_ABS,
        IORING_TIMEOUT_UPDATE,
        IORING_TIMEOUT_BOOTTIME,
        IORING_TIMEOUT_REALTIME,
        IORING_LINK_TIMEOUT_UPDATE,
        IORING_TIMEOUT_ETIME_SUCCESS,
        IORING_TIMEOUT_MULTISHOT,
        SPLICE_F_FD_IN_FIXED,
        IORING_POLL_ADD_MULTI,
        IORING_POLL_UPDATE_EVENTS,
        IORING_POLL_UPDATE_USER_DATA,
        IORING_POLL_ADD_LEVEL,
        IORING_ASYNC_CANCEL_ALL,
        IORING_ASYNC_CANCEL_FD,
        IORING_ASYNC_CANCEL_ANY,
        IORING_ASYNC_CANCEL_FD_FIXED,
        IORING_ASYNC_CANCEL_USERDATA,
        IORING_ASYNC_CANCEL_OP,
        IORING_RECVSEND_POLL_FIRST,
        IORING_RECV_MULTISHOT,
        IORING_RECVSEND_FIXED_BUF,
        IORING_SEND_ZC_REPORT_USAGE,
        IORING_RECVSEND_BUNDLE,
        IORING_SEND_VECTORIZED,
        IORING_ACCEPT_MULTISHOT,
        IORING_ACCEPT_DONTWAIT,
        IORING_ACCEPT_POLL_FIRST,
        IORING_MSG_RING_CQE_SKIP,
        IORING_MSG_RING_FLAGS_PASS,
        IORING_FIXED_FD_NO_CLOEXEC,
        IORING_NOP_INJECT_RESULT,
        IORING_NOP_FILE,
        IORING_NOP_FIXED_FILE,
        IORING_NOP_FIXED_BUFFER,
        IORING_NOP_TW,
        IORING_URING_CMD_FIXED,
        IORING_RW_ATTR_FLAG_PI,
        IORING_RSRC_REGISTER_SPARSE,
        IO_URING_OP_SUPPORTED,
        IORING_REGISTER_SRC_REGISTERED,
        IORING_REGISTER_DST_REPLACE,
        IORING_REG_WAIT_TS,
        IORING_MEM_REGION_TYPE_USER,
        IORING_MEM_REGION_REG_WAIT_ARG,
        IORING_OFF_SQ_RING,
        IORING_OFF_CQ_RING,
        IORING_OFF_SQES,
        IORING_OFF_PBUF_RING,
        IORING_OFF_PBUF_SHIFT,
        IORING_OFF_MMAP_MASK,
        IORING_ZCRX_AREA_SHIFT,
    ];
    same_enum_consts![
        io_uring_sqe_flags_bit::IOSQE_FIXED_FILE_BIT,
        io_uring_sqe_flags_bit::IOSQE_IO_DRAIN_BIT,
        io_uring_sqe_flags_bit::IOSQE_IO_LINK_BIT,
        io_uring_sqe_flags_bit::IOSQE_IO_HARDLINK_BIT,
        io_uring_sqe_flags_bit::IOSQE_ASYNC_BIT,
        io_uring_sqe_flags_bit::IOSQE_BUFFER_SELECT_BIT,
        io_uring_sqe_flags_bit::IOSQE_CQE_SKIP_SUCCESS_BIT,
        io_uring_msg_ring_flags::IORING_MSG_DATA,
        io_uring_msg_ring_flags::IORING_MSG_SEND_FD,
        io_uring_register_pbuf_ring_flags::IOU_PBUF_RING_MMAP,
        io_uring_register_pbuf_ring_flags::IOU_PBUF_RING_INC,
        io_uring_zcrx_area_flags::IORING_ZCRX_AREA_DMABUF,
        io_uring_op::IORING_OP_LAST,
        io_uring_op::IORING_OP_NOP,
        io_uring_op::IORING_OP_READV,
        io_uring_op::IORING_OP_WRITEV,
        io_uring_op::IORING_OP_FSYNC,
        io_uring_op::IORING_OP_READ_FIXED,
        io_uring_op::IORING_OP_WRITE_FIXED,
        io_uring_op::IORING_OP_POLL_ADD,
        io_uring_op::IORING_OP_POLL_REMOVE,
        io_uring_op::IORING_OP_SYNC_FILE_RANGE,
        io_uring_op::IORING_OP_SENDMSG,
        io_uring_op::IORING_OP_RECVMSG,
        io_uring_op::IORING_OP_TIMEOUT,
        io_uring_op::IORING_OP_TIMEOUT_REMOVE,
        io_uring_op::IORING_OP_ACCEPT,
        io_uring_op::IORING_OP_ASYNC_CANCEL,
        io_uring_op::IORING_OP_LINK_TIMEOUT,
        io_uring_op::IORING_OP_CONNECT,
        io_uring_op::IORING_OP_FALLOCATE,
        io_uring_op::IORING_OP_OPENAT,
        io_uring_op::IORING_OP_CLOSE,
        io_uring_op::IORING_OP_FILES_UPDATE,
        io_uring_op::IORING_OP_STATX,
        io_uring_op::IORING_OP_READ,
        io_uring_op::IORING_OP_WRITE,
        io_uring_op::IORING_OP_FADVISE,
        io_uring_op::IORING_OP_MADVISE,
        io_uring_op::IORING_OP_SEND,
        io_uring_op::IORING_OP_RECV,
        io_uring_op::IORING_OP_OPENAT2,
        io_uring_op::IORING_OP_EPOLL_CTL,
        io_uring_op::IORING_OP_SPLICE,
        io_uring_op::IORING_OP_PROVIDE_BUFFERS,
        io_uring_op::IORING_OP_REMOVE_BUFFERS,
        io_uring_op::IORING_OP_TEE,
        io_uring_op::IORING_OP_SHUTDOWN,
        io_uring_op::IORING_OP_RENAMEAT,
        io_uring_op::IORING_OP_UNLINKAT,
        io_uring_op::IORING_OP_MKDIRAT,
        io_uring_op::IORING_OP_SYMLINKAT,
        io_uring_op::IORING_OP_LINKAT,
        io_uring_op::IORING_OP_MSG_RING,
        io_uring_op::IORING_OP_FSETXATTR,
        io_uring_op::IORING_OP_SETXATTR,
        io_uring_op::IORING_OP_FGETXATTR,
        io_uring_op::IORING_OP_GETXATTR,
        io_uring_op::IORING_OP_SOCKET,
        io_uring_op::IORING_OP_URING_CMD,
        io_uring_op::IORING_OP_SEND_ZC,
        io_uring_op::IORING_OP_SENDMSG_ZC,
        io_uring_op::IORING_OP_READ_MULTISHOT,
        io_uring_op::IORING_OP_WAITID,
        io_uring_op::IORING_OP_FUTEX_WAIT,
        io_uring_op::IORING_OP_FUTEX_WAKE,
        io_uring_op::IORING_OP_FUTEX_WAITV,
        io_uring_op::IORING_OP_FIXED_FD_INSTALL,
        io_uring_op::IORING_OP_FTRUNCATE,
        io_uring_op::IORING_OP_BIND,
        io_uring_op::IORING_OP_LISTEN,
        io_uring_op::IORING_OP_RECV_ZC,
        io_uring_op::IORING_OP_EPOLL_WAIT,
        io_uring_op::IORING_OP_READV_FIXED,
        io_uring_op::IORING_OP_WRITEV_FIXED,
        io_uring_op::IORING_OP_PIPE,
        io_uring_register_op::IORING_REGISTER_BUFFERS,
        io_uring_register_op::IORING_UNREGISTER_BUFFERS,
        io_uring_register_op::IORING_REGISTER_FILES,
        io_uring_register_op::IORING_UNREGISTER_FILES,
        io_uring_register_op::IORING_REGISTER_EVENTFD,
        io_uring_register_op::IORING_UNREGISTER_EVENTFD,
        io_uring_register_op::IORING_REGISTER_FILES_UPDATE,
        io_uring_register_op::IORING_REGISTER_EVENTFD_ASYNC,
        io_uring_register_op::IORING_REGISTER_PROBE,
        io_uring_register_op::IORING_REGISTER_PERSONALITY,
        io_uring_register_op::IORING_UNREGISTER_PERSONALITY,
        io_uring_register_op::IORING_REGISTER_RESTRICTIONS,
        io_uring_register_op::IORING_REGISTER_ENABLE_RINGS,
        io_uring_register_op::IORING_REGISTER_FILES2,
        io_uring_register_op::IORING_REGISTER_FILES_UPDATE2,
        io_uring_register_op::IORING_REGISTER_BUFFERS2,
        io_uring_register_op::IORING_REGISTER_BUFFERS_UPDATE,
        io_uring_register_op::IORING_REGISTER_IOWQ_AFF,
        io_uring_register_op::IORING_UNREGISTER_IOWQ_AFF,
        io_uring_register_op::IORING_REGISTER_IOWQ_MAX_WORKERS,
        io_uring_register_op::IORING_REGISTER_RING_FDS,
        io_uring_register_op::IORING_UNREGISTER_RING_FDS,
        io_uring_register_op::IORING_REGISTER_PBUF_RING,
        io_uring_register_op::IORING_UNREGISTER_PBUF_RING,
        io_uring_register_op::IORING_REGISTER_SYNC_CANCEL,
        io_uring_register_op::IORING_REGISTER_FILE_ALLOC_RANGE,
        io_uring_register_op::IORING_REGISTER_PBUF_STATUS,
        io_uring_register_op::IORING_REGISTER_NAPI,
        io_uring_register_op::IORING_UNREGISTER_NAPI,
        io_uring_register_op::IORING_REGISTER_CLOCK,
        io_uring_register_op::IORING_REGISTER_CLONE_BUFFERS,
        io_uring_register_op::IORING_REGISTER_SEND_MSG_RING,
        io_uring_register_op::IORING_REGISTER_ZCRX_IFQ,
        io_uring_register_op::IORING_REGISTER_RESIZE_RINGS,
        io_uring_register_op::IORING_REGISTER_MEM_REGION,
        io_uring_register_op::IORING_REGISTER_USE_REGISTERED_RING,
        io_wq_type::IO_WQ_BOUND,
        io_wq_type::IO_WQ_UNBOUND,
        io_uring_register_restriction_op::IORING_RESTRICTION_REGISTER_OP,
        io_uring_register_restriction_op::IORING_RESTRICTION_SQE_OP,
        io_uring_register_restriction_op::IORING_RESTRICTION_SQE_FLAGS_ALLOWED,
        io_uring_register_restriction_op::IORING_RESTRICTION_SQE_FLAGS_REQUIRED,
        io_uring_register_restriction_op::IORING_RESTRICTION_LAST,
        io_uring_napi_op::IO_URING_NAPI_REGISTER_OP,
        io_uring_napi_op::IO_URING_NAPI_STATIC_ADD_ID,
        io_uring_napi_op::IO_URING_NAPI_STATIC_DEL_ID,
        io_uring_napi_tracking_strategy::IO_URING_NAPI_TRACKING_DYNAMIC,
        io_uring_napi_tracking_strategy::IO_URING_NAPI_TRACKING_STATIC,
        io_uring_napi_tracking_strategy::IO_URING_NAPI_TRACKING_INACTIVE,
        io_uring_socket_op::SOCKET_URING_OP_SIOCINQ,
        io_uring_socket_op::SOCKET_URING_OP_SIOCOUTQ,
        io_uring_socket_op::SOCKET_URING_OP_GETSOCKOPT,
        io_uring_socket_op::SOCKET_URING_OP_SETSOCKOPT,
        io_uring_socket_op::SOCKET_URING_OP_TX_TIMESTAMP,
    ];
}

/// Constants linux-raw-sys lacks (new in 6.18, or `#define`s bindgen cannot
/// evaluate), or whose value 6.18 changed: checked against the 6.18 header.
#[test]
fn constants_absent_from_linux_raw_sys_match_the_header() {
    let from_header: &[(&str, u64, u64)] = &[
        // bindgen cannot evaluate `(1U << IOSQE_*_BIT)`; check against the bits it has.
        (
            "IOSQE_FIXED_FILE",
            ring_io_sys::IOSQE_FIXED_FILE as u64,
            1 << lrs::io_uring_sqe_flags_bit::IOSQE_FIXED_FILE_BIT as u64,
        ),
        (
            "IOSQE_IO_DRAIN",
            ring_io_sys::IOSQE_IO_DRAIN as u64,
            1 << lrs::io_uring_sqe_flags_bit::IOSQE_IO_DRAIN_BIT as u64,
        ),
        (
            "IOSQE_IO_LINK",
            ring_io_sys::IOSQE_IO_LINK as u64,
            1 << lrs::io_uring_sqe_flags_bit::IOSQE_IO_LINK_BIT as u64,
        ),
        (
            "IOSQE_IO_HARDLINK",
            ring_io_sys::IOSQE_IO_HARDLINK as u64,
            1 << lrs::io_uring_sqe_flags_bit::IOSQE_IO_HARDLINK_BIT as u64,
        ),
        (
            "IOSQE_ASYNC",
            ring_io_sys::IOSQE_ASYNC as u64,
            1 << lrs::io_uring_sqe_flags_bit::IOSQE_ASYNC_BIT as u64,
        ),
        (
            "IOSQE_BUFFER_SELECT",
            ring_io_sys::IOSQE_BUFFER_SELECT as u64,
            1 << lrs::io_uring_sqe_flags_bit::IOSQE_BUFFER_SELECT_BIT as u64,
        ),
        (
            "IOSQE_CQE_SKIP_SUCCESS",
            ring_io_sys::IOSQE_CQE_SKIP_SUCCESS as u64,
            1 << lrs::io_uring_sqe_flags_bit::IOSQE_CQE_SKIP_SUCCESS_BIT as u64,
        ),
        (
            "IORING_CQE_F_TSTAMP_HW",
            ring_io_sys::IORING_CQE_F_TSTAMP_HW as u64,
            1 << 16,
        ),
        (
            "IORING_ZCRX_AREA_MASK",
            ring_io_sys::IORING_ZCRX_AREA_MASK,
            0xffff_0000_0000_0000,
        ),
        // New in Linux 6.18.
        (
            "IORING_SETUP_CQE_MIXED",
            ring_io_sys::IORING_SETUP_CQE_MIXED as u64,
            1 << 18,
        ),
        (
            "IORING_CQE_F_SKIP",
            ring_io_sys::IORING_CQE_F_SKIP as u64,
            1 << 5,
        ),
        (
            "IORING_CQE_F_32",
            ring_io_sys::IORING_CQE_F_32 as u64,
            1 << 15,
        ),
        (
            "IORING_NOP_CQE32",
            ring_io_sys::IORING_NOP_CQE32 as u64,
            1 << 5,
        ),
        (
            "IORING_URING_CMD_MULTISHOT",
            ring_io_sys::IORING_URING_CMD_MULTISHOT as u64,
            1 << 1,
        ),
        (
            "IORING_REGISTER_QUERY",
            ring_io_sys::IORING_REGISTER_QUERY as u64,
            35,
        ),
        (
            "IO_URING_QUERY_OPCODES",
            ring_io_sys::IO_URING_QUERY_OPCODES as u64,
            0,
        ),
        (
            "__IO_URING_QUERY_MAX",
            ring_io_sys::__IO_URING_QUERY_MAX as u64,
            1,
        ),
        // Changed by 6.18: one more register opcode, one more uring_cmd flag.
        (
            "IORING_REGISTER_LAST",
            ring_io_sys::IORING_REGISTER_LAST as u64,
            lrs::io_uring_register_op::IORING_REGISTER_LAST as u64 + 1,
        ),
        (
            "IORING_URING_CMD_MASK",
            ring_io_sys::IORING_URING_CMD_MASK as u64,
            lrs::IORING_URING_CMD_MASK as u64 | 2,
        ),
        // linux-raw-sys types it `i32` (-1); the field it goes in is a `__u32`.
        (
            "IORING_FILE_INDEX_ALLOC",
            ring_io_sys::IORING_FILE_INDEX_ALLOC as u64,
            lrs::IORING_FILE_INDEX_ALLOC as u32 as u64,
        ),
        // Syscall numbers, against libc.
        (
            "SYS_IO_URING_SETUP",
            ring_io_sys::SYS_IO_URING_SETUP as u64,
            libc::SYS_io_uring_setup as u64,
        ),
        (
            "SYS_IO_URING_ENTER",
            ring_io_sys::SYS_IO_URING_ENTER as u64,
            libc::SYS_io_uring_enter as u64,
        ),
        (
            "SYS_IO_URING_REGISTER",
            ring_io_sys::SYS_IO_URING_REGISTER as u64,
            libc::SYS_io_uring_register as u64,
        ),
    ];
    for &(name, ours, header) in from_header {
        eprintln!(
            "note: {name} checked against the 6.18 header (absent from or changed since linux-raw-sys 0.12)"
        );
        assert_eq!(ours, header, "{name}");
    }
}
