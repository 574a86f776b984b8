//! Compile-time layout assertions: size, alignment and every field offset of
//! every struct, with the numbers read off the C header (x86_64/aarch64 LP64
//! layout, which the kernel ABI fixes: every field is naturally aligned).
//!
//! A mistake here fails the build. `tests/abi.rs` checks the same layouts a
//! second time against the independent bindgen output of `linux-raw-sys`.

use core::mem::{align_of, offset_of, size_of};
use static_assertions::const_assert_eq;

use crate::*;

/// `layout!(Type, size, align; field => offset, ...)`.
macro_rules! layout {
    ($ty:ty, $size:expr, $align:expr; $( $($field:ident).+ => $off:expr ),* $(,)?) => {
        const_assert_eq!(size_of::<$ty>(), $size);
        const_assert_eq!(align_of::<$ty>(), $align);
        $( const_assert_eq!(offset_of!($ty, $($field).+), $off); )*
    };
}

layout!(__kernel_timespec, 16, 8; tv_sec => 0, tv_nsec => 8);

layout!(io_uring_sqe, 64, 8;
    opcode => 0,
    flags => 1,
    ioprio => 2,
    fd => 4,
    off_addr2 => 8,
    off_addr2.off => 8,
    off_addr2.addr2 => 8,
    off_addr2.cmd_op => 8,
    off_addr2.cmd_op.cmd_op => 8,
    off_addr2.cmd_op.__pad1 => 12,
    addr_splice_off_in => 16,
    addr_splice_off_in.addr => 16,
    addr_splice_off_in.splice_off_in => 16,
    addr_splice_off_in.level_optname.level => 16,
    addr_splice_off_in.level_optname.optname => 20,
    len => 24,
    op_flags => 28,
    op_flags.rw_flags => 28,
    op_flags.fsync_flags => 28,
    op_flags.poll_events => 28,
    op_flags.poll32_events => 28,
    op_flags.sync_range_flags => 28,
    op_flags.msg_flags => 28,
    op_flags.timeout_flags => 28,
    op_flags.accept_flags => 28,
    op_flags.cancel_flags => 28,
    op_flags.open_flags => 28,
    op_flags.statx_flags => 28,
    op_flags.fadvise_advice => 28,
    op_flags.splice_flags => 28,
    op_flags.rename_flags => 28,
    op_flags.unlink_flags => 28,
    op_flags.hardlink_flags => 28,
    op_flags.xattr_flags => 28,
    op_flags.msg_ring_flags => 28,
    op_flags.uring_cmd_flags => 28,
    op_flags.waitid_flags => 28,
    op_flags.futex_flags => 28,
    op_flags.install_fd_flags => 28,
    op_flags.nop_flags => 28,
    op_flags.pipe_flags => 28,
    user_data => 32,
    buf_index_group => 40,
    buf_index_group.buf_index => 40,
    buf_index_group.buf_group => 40,
    personality => 42,
    splice_fd_in_file_index => 44,
    splice_fd_in_file_index.splice_fd_in => 44,
    splice_fd_in_file_index.file_index => 44,
    splice_fd_in_file_index.zcrx_ifq_idx => 44,
    splice_fd_in_file_index.optlen => 44,
    splice_fd_in_file_index.addr_len.addr_len => 44,
    splice_fd_in_file_index.addr_len.__pad3 => 46,
    splice_fd_in_file_index.write_stream.write_stream => 44,
    splice_fd_in_file_index.write_stream.__pad4 => 45,
    addr3_cmd => 48,
    addr3_cmd.addr3.addr3 => 48,
    addr3_cmd.addr3.__pad2 => 56,
    addr3_cmd.attr.attr_ptr => 48,
    addr3_cmd.attr.attr_type_mask => 56,
    addr3_cmd.optval => 48,
    addr3_cmd.cmd => 48,
);
layout!(sqe_off_addr2, 8, 8; off => 0, addr2 => 0, cmd_op => 0);
layout!(sqe_cmd_op, 8, 4; cmd_op => 0, __pad1 => 4);
layout!(sqe_addr_splice_off_in, 8, 8; addr => 0, splice_off_in => 0, level_optname => 0);
layout!(sqe_level_optname, 8, 4; level => 0, optname => 4);
layout!(sqe_op_flags, 4, 4; rw_flags => 0, poll_events => 0);
layout!(sqe_buf_index_group, 2, 2; buf_index => 0, buf_group => 0);
layout!(sqe_splice_fd_in_file_index, 4, 4; splice_fd_in => 0, addr_len => 0, write_stream => 0);
layout!(sqe_addr_len, 4, 2; addr_len => 0, __pad3 => 2);
layout!(sqe_write_stream, 4, 1; write_stream => 0, __pad4 => 1);
layout!(sqe_addr3_cmd, 16, 8; addr3 => 0, attr => 0, optval => 0, cmd => 0);
layout!(sqe_addr3, 16, 8; addr3 => 0, __pad2 => 8);
layout!(sqe_attr, 16, 8; attr_ptr => 0, attr_type_mask => 8);
layout!(io_uring_sqe128, 128, 8; sqe => 0, cmd_ext => 64);

layout!(io_uring_attr_pi, 32, 8;
    flags => 0, app_tag => 2, len => 4, addr => 8, seed => 16, rsvd => 24);

layout!(io_uring_cqe, 16, 8; user_data => 0, res => 8, flags => 12, big_cqe => 16);
layout!(io_uring_cqe32, 32, 8; cqe => 0, big_cqe => 16);

layout!(io_sqring_offsets, 40, 8;
    head => 0, tail => 4, ring_mask => 8, ring_entries => 12, flags => 16,
    dropped => 20, array => 24, resv1 => 28, user_addr => 32);
layout!(io_cqring_offsets, 40, 8;
    head => 0, tail => 4, ring_mask => 8, ring_entries => 12, overflow => 16,
    cqes => 20, flags => 24, resv1 => 28, user_addr => 32);
layout!(io_uring_params, 120, 8;
    sq_entries => 0, cq_entries => 4, flags => 8, sq_thread_cpu => 12,
    sq_thread_idle => 16, features => 20, wq_fd => 24, resv => 28,
    sq_off => 40, cq_off => 80);

layout!(io_uring_getevents_arg, 24, 8;
    sigmask => 0, sigmask_sz => 8, min_wait_usec => 12, ts => 16);
layout!(io_uring_reg_wait, 64, 8;
    ts => 0, min_wait_usec => 16, flags => 20, sigmask => 24, sigmask_sz => 32,
    pad => 36, pad2 => 48);

layout!(io_uring_files_update, 16, 8; offset => 0, resv => 4, fds => 8);
layout!(io_uring_region_desc, 64, 8;
    user_addr => 0, size => 8, flags => 16, id => 20, mmap_offset => 24, __resv => 32);
layout!(io_uring_mem_region_reg, 32, 8; region_uptr => 0, flags => 8, __resv => 16);
layout!(io_uring_rsrc_register, 32, 8;
    nr => 0, flags => 4, resv2 => 8, data => 16, tags => 24);
layout!(io_uring_rsrc_update, 16, 8; offset => 0, resv => 4, data => 8);
layout!(io_uring_rsrc_update2, 32, 8;
    offset => 0, resv => 4, data => 8, tags => 16, nr => 24, resv2 => 28);
layout!(io_uring_probe_op, 8, 4; op => 0, resv => 1, flags => 2, resv2 => 4);
layout!(io_uring_probe, 16, 4;
    last_op => 0, ops_len => 1, resv => 2, resv2 => 4, ops => 16);
layout!(io_uring_restriction, 16, 4;
    opcode => 0, op_flags => 2, op_flags.register_op => 2, op_flags.sqe_op => 2,
    op_flags.sqe_flags => 2, resv => 3, resv2 => 4);
layout!(restriction_op_flags, 1, 1; register_op => 0, sqe_op => 0, sqe_flags => 0);
layout!(io_uring_clock_register, 16, 4; clockid => 0, __resv => 4);
layout!(io_uring_clone_buffers, 32, 4;
    src_fd => 0, flags => 4, src_off => 8, dst_off => 12, nr => 16, pad => 20);
layout!(io_uring_buf, 16, 8; addr => 0, len => 8, bid => 12, resv => 14);
layout!(io_uring_buf_ring, 16, 8;
    hdr => 0, hdr.resv1 => 0, hdr.resv2 => 8, hdr.resv3 => 12, hdr.tail => 14, bufs => 0);
layout!(buf_ring_hdr, 16, 8; resv1 => 0, resv2 => 8, resv3 => 12, tail => 14);
layout!(io_uring_buf_reg, 40, 8;
    ring_addr => 0, ring_entries => 8, bgid => 12, flags => 14, resv => 16);
layout!(io_uring_buf_status, 40, 4; buf_group => 0, head => 4, resv => 8);
layout!(io_uring_napi, 16, 4;
    busy_poll_to => 0, prefer_busy_poll => 4, opcode => 5, pad => 6, op_param => 8, resv => 12);
layout!(io_uring_sync_cancel_reg, 64, 8;
    addr => 0, fd => 8, flags => 12, timeout => 16, opcode => 32, pad => 33, pad2 => 40);
layout!(io_uring_file_index_range, 16, 8; off => 0, len => 4, resv => 8);
layout!(io_uring_recvmsg_out, 16, 4;
    namelen => 0, controllen => 4, payloadlen => 8, flags => 12);
layout!(io_timespec, 16, 8; tv_sec => 0, tv_nsec => 8);

layout!(io_uring_zcrx_rqe, 16, 8; off => 0, len => 8, __pad => 12);
layout!(io_uring_zcrx_cqe, 16, 8; off => 0, __pad => 8);
layout!(io_uring_zcrx_offsets, 32, 8;
    head => 0, tail => 4, rqes => 8, __resv2 => 12, __resv => 16);
layout!(io_uring_zcrx_area_reg, 48, 8;
    addr => 0, len => 8, rq_area_token => 16, flags => 24, dmabuf_fd => 28, __resv2 => 32);
layout!(io_uring_zcrx_ifq_reg, 96, 8;
    if_idx => 0, if_rxq => 4, rq_entries => 8, flags => 12, area_ptr => 16,
    region_ptr => 24, offsets => 32, zcrx_id => 64, __resv2 => 68, __resv => 72);

layout!(io_uring_query_hdr, 40, 8;
    next_entry => 0, query_data => 8, query_op => 16, size => 20, result => 24, __resv => 28);
layout!(io_uring_query_opcode, 48, 8;
    nr_request_opcodes => 0, nr_register_opcodes => 4, feature_flags => 8,
    ring_setup_flags => 16, enter_flags => 24, sqe_flags => 32,
    nr_query_opcodes => 40, __pad => 44);

// The opcode table covers 0..IORING_OP_LAST with no gap (checked again, entry
// by entry, in the unit tests).
const_assert_eq!(IORING_OPS.len(), IORING_OP_LAST as usize);
