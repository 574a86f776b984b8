//! Every opcode of ring-sys has a builder; every builder's constants,
//! metadata and encoded opcode agree; every builder's doc names its first
//! kernel, matching ring-sys's `IORING_OPS`.

use core::ptr::{null, null_mut};

use ring_io_ops::*;
use ring_io_sys::{__kernel_timespec, IORING_OP_LAST, IORING_OPS};

/// One row per builder: name, `CODE`, `INFO`, and the opcode its entry has.
struct Row {
    name: &'static str,
    code: u8,
    info: OpInfo,
    built: u8,
}

macro_rules! rows {
    ($( $Name:ident => $make:expr ),* $(,)?) => {
        vec![$( Row {
            name: stringify!($Name),
            code: $Name::CODE,
            info: $Name::INFO,
            built: { let op: $Name = $make; op.build().opcode() },
        } ),*]
    };
}

fn rows() -> Vec<Row> {
    let ts = __kernel_timespec::default();
    let f = Fd(3);
    rows![
        Nop => Nop::new(),
        Readv => Readv::new(f, null(), 1),
        Writev => Writev::new(f, null(), 1),
        Fsync => Fsync::new(f),
        ReadFixed => ReadFixed::new(f, null_mut(), 1, 0),
        WriteFixed => WriteFixed::new(f, null(), 1, 0),
        PollAdd => PollAdd::new(f, 1),
        PollRemove => PollRemove::new(1),
        PollUpdate => PollUpdate::new(1),
        SyncFileRange => SyncFileRange::new(f, 1),
        SendMsg => SendMsg::new(f, null()),
        RecvMsg => RecvMsg::new(f, null_mut()),
        Timeout => Timeout::new(&ts),
        TimeoutRemove => TimeoutRemove::new(1),
        TimeoutUpdate => TimeoutUpdate::new(1, &ts),
        Accept => Accept::new(f),
        AsyncCancel => AsyncCancel::new(1),
        LinkTimeout => LinkTimeout::new(&ts),
        Connect => Connect::new(f, null(), 0),
        Fallocate => Fallocate::new(f, 1),
        OpenAt => OpenAt::new(f, null()),
        Close => Close::new(f),
        FilesUpdate => FilesUpdate::new(null(), 0),
        Statx => Statx::new(f, null(), null_mut()),
        Read => Read::new(f, null_mut(), 1),
        Write => Write::new(f, null(), 1),
        Fadvise => Fadvise::new(f, 1, 0),
        Madvise => Madvise::new(null(), 1, 0),
        Send => Send::new(f, null(), 1),
        Recv => Recv::new(f, null_mut(), 1),
        OpenAt2 => OpenAt2::new(f, null(), null()),
        EpollCtl => EpollCtl::new(f, 4, 1, null()),
        Splice => Splice::new(f, -1, Fd(4), -1, 1),
        ProvideBuffers => ProvideBuffers::new(null_mut(), 1, 1, 0, 0),
        RemoveBuffers => RemoveBuffers::new(1, 0),
        Tee => Tee::new(f, Fd(4), 1),
        Shutdown => Shutdown::new(f, 0),
        RenameAt => RenameAt::new(f, null(), f, null()),
        UnlinkAt => UnlinkAt::new(f, null()),
        MkDirAt => MkDirAt::new(f, null()),
        SymlinkAt => SymlinkAt::new(f, null(), null()),
        LinkAt => LinkAt::new(f, null(), f, null()),
        MsgRingData => MsgRingData::new(f, 0, 1),
        MsgRingSendFd => MsgRingSendFd::new(f, Fixed(0), DirectSlot::ALLOC, 1),
        FSetXattr => FSetXattr::new(f, null(), null(), 0),
        SetXattr => SetXattr::new(null(), null(), null(), 0),
        FGetXattr => FGetXattr::new(f, null(), null_mut(), 0),
        GetXattr => GetXattr::new(null(), null(), null_mut(), 0),
        Socket => Socket::new(2, 1, 0),
        UringCmd16 => UringCmd16::new(f, 0),
        SocketCmd => SocketCmd::siocinq(f),
        SendZc => SendZc::new(f, null(), 1),
        SendMsgZc => SendMsgZc::new(f, null()),
        ReadMulti => ReadMulti::new(f, 0, 1),
        WaitId => WaitId::new(0, 0, 0),
        FutexWait => FutexWait::new(null(), 0, !0, 2),
        FutexWake => FutexWake::new(null(), 1, !0, 2),
        FutexWaitV => FutexWaitV::new(null(), 1),
        FixedFdInstall => FixedFdInstall::new(Fixed(0)),
        Ftruncate => Ftruncate::new(f, 0),
        Bind => Bind::new(f, null(), 0),
        Listen => Listen::new(f, 1),
        RecvZc => RecvZc::new(f, 0),
        EpollWait => EpollWait::new(f, null_mut(), 1),
        ReadvFixed => ReadvFixed::new(f, null(), 1, 0),
        WritevFixed => WritevFixed::new(f, null(), 1, 0),
        Pipe => Pipe::new(null_mut()),
    ]
}

#[test]
fn every_opcode_of_ring_sys_has_a_builder() {
    let rows = rows();
    assert_eq!(IORING_OPS.len(), usize::from(IORING_OP_LAST));
    for &(code, name, _) in IORING_OPS {
        assert!(
            rows.iter().any(|r| r.code == code) || code == UringCmd80::CODE,
            "{name} ({code}) has no builder"
        );
        // The main builder named by ALL exists and has this opcode.
        let main = ALL[usize::from(code)].builder;
        assert!(
            rows.iter().any(|r| r.name == main && r.code == code),
            "ALL[{code}] names builder {main}, which is not a builder of {name}"
        );
    }
    assert_eq!(UringCmd80::CODE, ring_io_sys::IORING_OP_URING_CMD);
    assert_eq!(
        UringCmd80::new(Fd(0), 0).build().opcode(),
        ring_io_sys::IORING_OP_URING_CMD
    );
}

#[test]
fn builder_constants_metadata_and_entries_agree() {
    for r in rows() {
        assert_eq!(r.info.code, r.code, "{}", r.name);
        assert_eq!(r.info, ALL[usize::from(r.code)], "{}", r.name);
        assert_eq!(r.built, r.code, "{}: build() writes another opcode", r.name);
        assert_eq!(r.info.name, IORING_OPS[usize::from(r.code)].1, "{}", r.name);
    }
}

#[test]
fn multishot_column_lists_the_ops_that_can_post_many_completions() {
    let multishot: Vec<&str> = ALL.iter().filter(|i| i.multishot).map(|i| i.name).collect();
    assert_eq!(
        multishot,
        [
            "IORING_OP_POLL_ADD",
            "IORING_OP_RECVMSG",
            "IORING_OP_TIMEOUT",
            "IORING_OP_ACCEPT",
            "IORING_OP_RECV",
            "IORING_OP_URING_CMD",
            "IORING_OP_READ_MULTISHOT",
            "IORING_OP_RECV_ZC",
        ]
    );
}

/// Each builder's doc block in the source says "Since Linux X.Y": for the
/// main builder of an opcode exactly the opcode's first kernel in
/// `IORING_OPS`, for a variant a kernel no older than that.
#[test]
fn every_builder_doc_names_its_first_kernel() {
    let src = include_str!("../src/ops.rs");
    let lines: Vec<&str> = src.lines().collect();
    let mut seen = 0;
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("pub struct ") else {
            continue;
        };
        let name = rest.split([' ', '{', ';']).next().unwrap();
        if name.starts_with('$') {
            continue; // the macro's own pattern
        }
        let code = match rest.split(" = ").nth(1) {
            Some(c) => {
                let c = c.trim_end_matches(" {");
                IORING_OPS.iter().find(|o| o.1 == c).expect(c).0
            }
            None if name == "UringCmd80" => UringCmd80::CODE,
            None => continue,
        };
        // The doc block directly above (skipping attributes).
        let mut doc = String::new();
        for l in lines[..i].iter().rev() {
            let l = l.trim();
            if let Some(d) = l.strip_prefix("///") {
                doc.insert_str(0, d);
                doc.insert(0, ' ');
            } else if !l.starts_with("#[") {
                break;
            }
        }
        let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        let since = doc
            .split("Since Linux ")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: doc names no first kernel: {doc}"));
        let version: String = since
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let version = version.trim_end_matches('.');
        let (major, minor) = version.split_once('.').expect(version);
        let doc_kernel = KernelVersion::new(major.parse().unwrap(), minor.parse().unwrap(), 0);
        let info = ALL[usize::from(code)];
        if info.builder == name {
            assert_eq!(doc_kernel, info.since, "{name}: doc says {doc_kernel}");
        } else {
            assert!(doc_kernel >= info.since, "{name}: doc says {doc_kernel}");
        }
        // The equivalent syscall, as a man-page reference, unless the op is
        // io_uring's own and has none.
        const NO_SYSCALL: &[&str] = &[
            "Nop",
            "PollRemove",
            "PollUpdate",
            "Timeout",
            "TimeoutRemove",
            "TimeoutUpdate",
            "AsyncCancel",
            "LinkTimeout",
            "FilesUpdate",
            "ProvideBuffers",
            "RemoveBuffers",
            "MsgRingData",
            "MsgRingSendFd",
            "UringCmd16",
            "UringCmd80",
            "ReadMulti",
            "FixedFdInstall",
            "RecvZc",
        ];
        assert!(
            doc.contains("(2)") || NO_SYSCALL.contains(&name),
            "{name}: doc names no syscall: {doc}"
        );
        seen += 1;
    }
    assert_eq!(
        seen,
        rows().len() + 1,
        "every builder (and UringCmd80) was checked"
    );
}
