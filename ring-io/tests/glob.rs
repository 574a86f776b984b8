//! One name, one concept: glob imports of the facade, and of all five layers
//! at once, compile without an ambiguity. Rust reports an ambiguous glob
//! import only where the name is used, so every name that two layers once
//! shared (`Op`, `KernelVersion`, `Unsupported`, `BufRing`,
//! `SubmissionQueue`, `CompletionQueue`) and the facade's top level are used
//! below.
#![deny(ambiguous_glob_imports, ambiguous_glob_reexports)]

use std::any::type_name;

/// `use ring_io::*;`, as a program writes it.
mod facade {
    use super::type_name;
    use ring_io::*;

    #[test]
    fn the_top_level_names_resolve() {
        let names = [
            type_name::<Ring>(),
            type_name::<Builder>(),
            type_name::<Params>(),
            type_name::<Entry>(),
            type_name::<Entry128>(),
            type_name::<Cqe>(),
            type_name::<SubmissionQueue<'static>>(),
            type_name::<CompletionQueue<'static>>(),
            type_name::<Submitter<'static>>(),
            type_name::<SharedRing>(),
            type_name::<BufRing>(),
            type_name::<Proactor>(),
            type_name::<ProactorConfig>(),
            type_name::<ProactorStats>(),
            type_name::<Op<()>>(),
            type_name::<Multi<()>>(),
            type_name::<FixedBuf>(),
            type_name::<Slice<Vec<u8>>>(),
            type_name::<BufResult<usize, Vec<u8>>>(),
            type_name::<buf::Slice<Box<[u8]>>>(),
            type_name::<OpFd>(),
            type_name::<Probe>(),
            type_name::<KernelVersion>(),
            type_name::<Unsupported>(),
            type_name::<SetupError>(),
            type_name::<PushError<Entry>>(),
            type_name::<Full<Entry>>(),
            type_name::<Errno>(),
            type_name::<OpInfo>(),
            type_name::<Read>(),
            type_name::<Write>(),
            type_name::<Recv>(),
            type_name::<Send>(),
            type_name::<Accept>(),
            type_name::<Nop>(),
            type_name::<Timeout>(),
            type_name::<Fd>(),
            type_name::<Fixed>(),
            type_name::<SqeFlags>(),
            type_name::<CqeFlags>(),
            type_name::<SetupFlags>(),
            type_name::<Features>(),
            type_name::<Sim>(),
            type_name::<Linux>(),
        ];
        assert!(names[0].starts_with("ring_io_driver::"), "{}", names[0]);
        assert_eq!(Nop::CODE, <Nop as OpCode>::CODE);
        fn takes_op_code<O: OpCode>(_: O) {}
        takes_op_code(Nop::new());
        let _: fn(Op<()>) -> () = block_on::<Op<()>>;
        fn takes_bufs<R: IoBufMut, W: IoBuf>() {}
        takes_bufs::<Vec<u8>, &'static str>();
        let _ = kernel_version;
        let _ = TIMEOUT_USER_DATA;
        let _ = SETUP_FLAGS;
        // The layers as modules.
        let _ = type_name::<sys::io_uring_sqe>();
        let _ = type_name::<protocol::SqState>();
        let _ = type_name::<ops::OpInfo>();
        let _ = type_name::<driver::Ring>();
        let _ = type_name::<proactor::Proactor>();
        // The Proactor's typed flags, and its handles in their modules.
        let _ = (MsgFlags::PEEK, PollEvents::IN, StatxFlags::empty());
        let _ = (
            Domain::IPV4,
            SocketType::STREAM,
            Protocol::TCP,
            CURRENT_POSITION,
        );
        let _ = type_name::<fs::File>();
        let _ = type_name::<fs::OpenOptions>();
        let _ = type_name::<fs::Metadata>();
        let _ = type_name::<net::TcpStream>();
        let _ = type_name::<net::Incoming<net::UnixStream>>();
        // The handles of either runtime.
        fn takes_runtime<R: Runtime>(_: &fs::File<R>) {}
        let _ = takes_runtime::<LocalProactor>;
        let _ = type_name::<net::TcpStream<LocalProactor>>();
    }
}

/// The five layers globbed into one module: what `use ring_io_driver::*;
/// use ring_io_ops::*;` used to make ambiguous now resolves, each name to
/// one concept.
mod layers {
    use super::type_name;
    use ring_io::driver::*;
    use ring_io::ops::*;
    use ring_io::proactor::*;
    use ring_io::protocol::*;
    use ring_io::sys::*;

    #[test]
    fn the_names_two_layers_shared_now_name_one_concept_each() {
        // One KernelVersion and one Unsupported, shared by ops and driver.
        let v: KernelVersion = ring_io::ops::KernelVersion::new(6, 1, 0);
        assert_eq!(v, ring_io::driver::KernelVersion::new(6, 1, 0));
        let e: Unsupported = RecvZc::INFO.check(v).unwrap_err();
        let _: ring_io::driver::Unsupported = e;
        // The Proactor's future and the ops' trait.
        assert_eq!(
            type_name::<Op<()>>(),
            type_name::<ring_io::proactor::Op<()>>()
        );
        fn takes_op_code<O: OpCode>(_: O) {}
        takes_op_code(Nop::new());
        // The driver's queues and buffer ring, the protocol's state machines.
        assert!(type_name::<SubmissionQueue<'static>>().starts_with("ring_io_driver::"));
        assert!(type_name::<CompletionQueue<'static>>().starts_with("ring_io_driver::"));
        assert!(type_name::<BufRing>().starts_with("ring_io_driver::"));
        assert!(type_name::<SqState>().starts_with("ring_io_core::"));
        assert!(type_name::<CqState>().starts_with("ring_io_core::"));
        assert!(type_name::<BufRingState>().starts_with("ring_io_core::"));
        let _ = type_name::<Errno>();
        let _ = type_name::<Entry>();
        let _ = (MsgFlags::PEEK, PollEvents::IN, StatxFlags::empty());
        let _ = (
            Domain::IPV4,
            SocketType::STREAM,
            Protocol::TCP,
            CURRENT_POSITION,
        );
        let _ = (type_name::<fs::File>(), type_name::<net::UdpSocket>());
    }
}
