//! The typed handles on the running kernel: `fs::File` (and its
//! `OpenOptions` against std's), the sockets of `net` (TCP, UDP, Unix), their
//! conversions from and into std, the examples built on them (the echo
//! server with 8 clients, the hasher), and a Proactor shared by clones.

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

#[path = "../examples/echo.rs"]
mod echo;

#[path = "../examples/hash_file.rs"]
mod hash_file;

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use ring_io_proactor::fs::{File, FileType, OpenOptions};
use ring_io_proactor::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use ring_io_proactor::{
    CURRENT_POSITION, IoBuf, MsgFlags, PollEvents, Proactor, ProactorConfig, block_on,
};

fn proactor() -> Proactor {
    Proactor::new(ProactorConfig::new(32)).expect("a proactor on this kernel")
}

/// A path in the temporary directory, removed when dropped.
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp(name: &str) -> Temp {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("ring-handles-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Temp(path)
}

/// Bytes that differ at every offset within a period longer than a block.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
        .collect()
}

#[test]
fn echo_example_returns_every_byte_to_8_clients() {
    const CLIENTS: usize = 8;
    const BYTES: usize = 256 * 1024;
    // A small ring: 8 clients' requests outnumber its 8 SQ entries.
    let p = Proactor::new(ProactorConfig::new(8).cq_entries(32)).unwrap();
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || echo::serve(listener, Some(CLIENTS)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let data = pattern(BYTES, c as u32);
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let mut r = s.try_clone().unwrap();
                let reader = thread::spawn(move || {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).unwrap();
                    got
                });
                // Odd-sized writes so reads and writes interleave.
                for chunk in data.chunks(7919) {
                    s.write_all(chunk).unwrap();
                }
                s.shutdown(Shutdown::Write).unwrap();
                let got = reader.join().unwrap();
                assert_eq!(got.len(), data.len(), "client {c}");
                assert!(got == data, "client {c}: the bytes differ");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let echoed = server.join().unwrap();
    assert_eq!(echoed, (CLIENTS * BYTES) as u64);
    let stats = p.stats();
    assert_eq!(stats.cq_overflow, 0);
}

#[test]
fn a_file_round_trips_through_write_all_at_and_read_exact_at() {
    let p = proactor();
    let path = temp("round-trip");
    // More than one write can take at a time on some filesystems, at an
    // offset that is no multiple of a block.
    let data = pattern((3 << 20) + 4321, 7);
    let file = File::create(&p, &path.0).wait().unwrap();
    let (res, back) = block_on(file.write_all_at(data.clone(), 1000));
    res.unwrap();
    assert!(back == data, "the buffer comes back unchanged");
    file.sync_all().wait().unwrap();
    file.sync_data().wait().unwrap();
    let m = file.metadata().wait().unwrap();
    assert_eq!(m.len(), 1000 + data.len() as u64);
    assert_eq!(m.file_type(), FileType::File);
    assert!(m.is_file() && !m.is_dir() && !m.is_symlink());
    let std_meta = std::fs::metadata(&path.0).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (m.ino(), m.dev(), m.mode(), m.nlink(), m.uid(), m.gid()),
            (
                std_meta.ino(),
                std_meta.dev(),
                std_meta.mode(),
                std_meta.nlink() as u32,
                std_meta.uid(),
                std_meta.gid()
            )
        );
        assert_eq!(m.blocks(), std_meta.blocks());
        assert_eq!(u64::from(m.blksize()), std_meta.blksize());
    }
    assert_eq!(m.modified().unwrap(), std_meta.modified().unwrap());
    assert_eq!(m.accessed().unwrap(), std_meta.accessed().unwrap());
    let age = SystemTime::now().duration_since(m.modified().unwrap());
    assert!(age.unwrap() < Duration::from_secs(60));
    assert_eq!(m.permissions(), std_meta.permissions());
    file.close().wait().unwrap();
    // Read back by another handle: the bytes, then the hole before them.
    let file = File::open(&p, &path.0).wait().unwrap();
    let (res, got) = block_on(file.read_exact_at(Vec::with_capacity(data.len()), 1000));
    res.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes read differ");
    let (res, hole) = block_on(file.read_exact_at(vec![1u8; 1000], 0));
    res.unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    // Past the end: the bytes there are, then UnexpectedEof, buffer back.
    let end = 1000 + data.len() as u64;
    let (res, tail) = block_on(file.read_exact_at(Vec::with_capacity(100), end - 10));
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(&tail[..], &data[data.len() - 10..]);
    let (n, _) = file.read_at(vec![0u8; 16], end).wait();
    assert_eq!(n.unwrap(), 0, "at the end");
    // Writing to a read-only file fails, handing the buffer back.
    let (res, buf) = block_on(file.write_all_at(b"no".to_vec(), 0));
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(buf, b"no");
}

#[test]
fn write_all_at_reports_write_zero_and_read_exact_fills_slices() {
    let p = proactor();
    // An empty write of an empty buffer is done at once.
    let null = OpenOptions::new()
        .write(true)
        .open(&p, "/dev/null")
        .wait()
        .unwrap();
    let (res, _) = block_on(null.write_all_at(Vec::new(), 0));
    res.unwrap();
    // A slice of a buffer is filled from its start.
    let zero = File::open(&p, "/dev/zero").wait().unwrap();
    let (res, slice) = block_on(zero.read_exact_at(vec![9u8; 10].slice(3..8), 0));
    res.unwrap();
    assert_eq!(slice.into_inner(), [9, 9, 9, 0, 0, 0, 0, 0, 9, 9]);
    // A full device: ENOSPC, the buffer back.
    if let Ok(full) = OpenOptions::new().write(true).open(&p, "/dev/full").wait() {
        let (res, buf) = block_on(full.write_all_at(vec![1u8; 100], 0));
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(buf.len(), 100);
    }
}

#[test]
fn open_options_agree_with_std() {
    let p = proactor();
    // Every combination, on a missing file and on an existing one.
    for bits in 0..64u32 {
        for exists in [false, true] {
            let path = temp("options");
            if exists {
                std::fs::write(&path.0, b"contents").unwrap();
            }
            let flag = |i: u32| bits & (1 << i) != 0;
            let mut ours = OpenOptions::new();
            ours.read(flag(0))
                .write(flag(1))
                .append(flag(2))
                .truncate(flag(3))
                .create(flag(4))
                .create_new(flag(5));
            let mut std = std::fs::OpenOptions::new();
            std.read(flag(0))
                .write(flag(1))
                .append(flag(2))
                .truncate(flag(3))
                .create(flag(4))
                .create_new(flag(5));
            let got = ours.open(&p, &path.0).wait();
            let len_after_ours = std::fs::metadata(&path.0).map(|m| m.len()).ok();
            // Put things back before std tries.
            let _ = std::fs::remove_file(&path.0);
            if exists {
                std::fs::write(&path.0, b"contents").unwrap();
            }
            let want = std.open(&path.0);
            let len_after_std = std::fs::metadata(&path.0).map(|m| m.len()).ok();
            let case = format!("bits {bits:06b}, exists {exists}");
            match (&got, &want) {
                (Ok(_), Ok(_)) => {}
                (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "{case}: {a} / {b}"),
                _ => panic!("{case}: ours {got:?}, std {want:?}"),
            }
            assert_eq!(len_after_ours, len_after_std, "{case}");
        }
    }
}

#[test]
fn a_file_converts_from_and_into_std_and_serves_the_proactors_ops() {
    let p = proactor();
    let path = temp("convert");
    std::fs::write(&path.0, b"0123456789").unwrap();
    let std_file = std::fs::File::open(&path.0).unwrap();
    let raw = std_file.as_raw_fd();
    let file = File::from_std(&p, std_file);
    assert_eq!(file.as_raw_fd(), raw);
    assert_eq!(file.as_fd().as_raw_fd(), raw);
    assert_eq!(file.as_std().metadata().unwrap().len(), 10);
    // `&File` goes to the Proactor's own ops.
    let (n, bufs) = p.readv(&file, vec![vec![0u8; 3], vec![0u8; 4]], 2).wait();
    assert_eq!(n.unwrap(), 7);
    assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"234"[..], &b"5678"[..]));
    let (n, buf) = file.read_at(vec![0u8; 4], CURRENT_POSITION).wait();
    assert_eq!(&buf[..n.unwrap()], b"0123", "at (and moving) the position");
    // Back to std, the same descriptor when nothing else holds it.
    let mut back = file.into_std().unwrap();
    assert_eq!(back.as_raw_fd(), raw);
    let mut rest = String::new();
    back.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "456789");
    // With an op in flight holding it: a new descriptor of the same file.
    let (r, w) = common::pipe();
    let pipe = File::from_std(&p, std::fs::File::from(r));
    let raw = pipe.as_raw_fd();
    let pending = pipe.read_at(vec![0u8; 8], CURRENT_POSITION).start();
    let mut dup = pipe.into_std().unwrap();
    assert_ne!(dup.as_raw_fd(), raw, "a dup: the op holds the original");
    std::fs::File::from(w).write_all(b"ab").unwrap();
    let (n, buf) = pending.wait();
    assert_eq!(&buf[..n.unwrap()], b"ab");
    let mut none = [0u8; 1];
    drop(p);
    assert_eq!(dup.read(&mut none).unwrap(), 0, "the writer closed");
}

#[test]
fn close_reports_and_a_dropped_op_keeps_the_file_open() {
    let p = proactor();
    let (r, w) = common::pipe();
    let file = File::from_std(&p, std::fs::File::from(r));
    // A read in flight, dropped: it holds the file until its CQE.
    let read = file.read_at(vec![0u8; 8], CURRENT_POSITION).start();
    let raw = file.as_raw_fd();
    drop(read);
    file.close().wait().unwrap();
    // Closed once the kernel is done with the cancelled read.
    let closed = || {
        std::fs::read_link(format!("/proc/self/fd/{raw}"))
            .map_or(true, |to| !to.to_string_lossy().starts_with("pipe:"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !closed() {
        assert!(std::time::Instant::now() < deadline, "the pipe stayed open");
        thread::sleep(Duration::from_millis(1));
    }
    drop(w);
    // Nothing holds it: the close op closes it (a second close of the
    // number would fail, or close another test's file: not tried).
    let file = File::open(&p, "/dev/null").wait().unwrap();
    file.close().wait().unwrap();
}

#[test]
fn tcp_accept_connect_read_write_shutdown() {
    let p = proactor();
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = listener.accept().start();
    let client = TcpStream::connect(&p, addr).wait().unwrap();
    let (server, peer) = accepting.wait().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), peer);
    assert_eq!(server.local_addr().unwrap(), addr);
    assert_eq!(client.peer_addr().unwrap(), addr);
    // A write larger than the socket buffers, read back exactly, while a
    // second task writes the other way: both at once on one thread.
    let big = pattern(4 << 20, 3);
    let (sent, got) = block_on(futures_util::future::join(
        client.write_all(big.clone()),
        server.read_exact(Vec::with_capacity(big.len())),
    ));
    sent.0.unwrap();
    got.0.unwrap();
    assert!(got.1 == big, "the bytes read differ");
    let (n, _) = server.write("pong").wait();
    assert_eq!(n.unwrap(), 4);
    let (n, buf) = client.read(vec![0u8; 16]).wait();
    assert_eq!(&buf[..n.unwrap()], b"pong");
    // The Proactor's flag ops take `&TcpStream`.
    let (n, _) = p.send(&server, "peek", MsgFlags::NOSIGNAL).wait();
    n.unwrap();
    let ready = p.poll(&client, PollEvents::IN).wait().unwrap();
    assert!(ready.contains(PollEvents::IN));
    let (n, _) = p.recv(&client, vec![0u8; 4], MsgFlags::PEEK).wait();
    assert_eq!(n.unwrap(), 4);
    let (res, buf) = client.read_exact(vec![0u8; 4]).wait();
    res.unwrap();
    assert_eq!(buf, b"peek");
    // Shut down writing: the peer reads the end.
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server.read(vec![0u8; 8]).wait().0.unwrap(), 0);
    let (res, buf) = server.read_exact(vec![0u8; 8]).wait();
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(buf.len(), 8);
    // The peer gone: a write fails with EPIPE, and no SIGPIPE.
    drop(client);
    let mut failed = None;
    for _ in 0..100 {
        if let (Err(e), _) = server.write(vec![0u8; 1024]).wait() {
            failed = Some(e);
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let e = failed.expect("writes to a closed peer fail");
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{e}"
    );
}

#[test]
fn tcp_connect_to_nothing_is_refused_and_times_out_with_its_op() {
    let p = proactor();
    // A port nobody listens on: bound, never listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = TcpStream::connect(&p, addr).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // Connect has the op's timeout.
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(&p, listener.local_addr().unwrap())
        .timeout(Duration::from_secs(10))
        .wait();
    assert!(matches!(connected, Ok(Ok(_))));
}

#[test]
fn tcp_incoming_yields_every_connection_in_order() {
    let p = proactor();
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let multishot = common::kernel().at_least(5, 19);
    let mut incoming = listener.incoming();
    assert_eq!(
        format!("{incoming:?}").contains("multishot"),
        multishot,
        "{incoming:?}"
    );
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(&[i]).unwrap();
            c
        })
        .collect();
    let mut seen = Vec::new();
    block_on(async {
        for _ in 0..clients.len() {
            let stream = incoming.next().await.unwrap().unwrap();
            let (res, buf) = stream.read_exact(vec![0u8; 1]).await;
            res.unwrap();
            seen.push((buf[0], stream.peer_addr().unwrap()));
        }
    });
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(seen[i], (i as u8, c.local_addr().unwrap()));
    }
    // Cancelled, it ends, and loses no connection: one that arrives
    // meanwhile comes from it or stays for the next accept.
    let late = std::net::TcpStream::connect(addr).unwrap();
    incoming.cancel();
    let rest: Vec<_> = block_on(incoming.collect());
    let peer = match &rest[..] {
        [] => listener.accept().wait().unwrap().1,
        [stream] => stream.as_ref().unwrap().peer_addr().unwrap(),
        more => panic!("{} connections from one client", more.len()),
    };
    assert_eq!(peer, late.local_addr().unwrap());
    // A connection after the end waits for the next accept.
    let later = std::net::TcpStream::connect(addr).unwrap();
    let (_, peer) = listener.accept().wait().unwrap();
    assert_eq!(peer, later.local_addr().unwrap());
}

#[test]
fn a_cancelled_incoming_stream_hands_over_every_connection() {
    let p = proactor();
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for round in 0..20 {
        let mut incoming = listener.incoming();
        // Armed, then connections race the cancellation.
        let first = std::net::TcpStream::connect(addr).unwrap();
        let first_in = block_on(incoming.next()).unwrap().unwrap();
        assert_eq!(first_in.peer_addr().unwrap(), first.local_addr().unwrap());
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        if round % 2 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        incoming.cancel();
        let mut got: Vec<SocketAddr> = block_on(incoming.collect::<Vec<_>>())
            .into_iter()
            .map(|s| s.unwrap().peer_addr().unwrap())
            .collect();
        while got.len() < clients.len() {
            let accepted = listener.accept().timeout(Duration::from_secs(5)).wait();
            got.push(accepted.expect("a connection was lost").unwrap().1);
        }
        let mut want: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "round {round}");
    }
}

#[test]
fn sockets_convert_from_nonblocking_std_and_back() {
    let p = proactor();
    // A non-blocking std listener: put in blocking mode, so the accept
    // waits instead of failing with WouldBlock.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let raw = std_listener.as_raw_fd();
    let listener = TcpListener::from_std(&p, std_listener).unwrap();
    assert_eq!(listener.as_raw_fd(), raw);
    let addr = listener.local_addr().unwrap();
    let accepting = listener.accept().start();
    thread::sleep(Duration::from_millis(20));
    let std_client = std::net::TcpStream::connect(addr).unwrap();
    let (server, _) = accepting.wait().unwrap();
    // The same for a stream.
    std_client.set_nonblocking(true).unwrap();
    let client = TcpStream::from_std(&p, std_client).unwrap();
    let reading = client.read(vec![0u8; 8]).start();
    thread::sleep(Duration::from_millis(20));
    server.write("late").wait().0.unwrap();
    let (n, buf) = reading.wait();
    assert_eq!(&buf[..n.unwrap()], b"late");
    assert_eq!(
        p.recv(&client, vec![0u8; 1], MsgFlags::DONTWAIT)
            .wait()
            .0
            .unwrap_err()
            .kind(),
        io::ErrorKind::WouldBlock
    );
    let mut std_server = server.into_std().unwrap();
    std_server.write_all(b"std").unwrap();
    let (n, buf) = client.read(vec![0u8; 8]).wait();
    assert_eq!(&buf[..n.unwrap()], b"std");
    client.as_std().set_nodelay(true).unwrap();
    assert!(client.as_std().nodelay().unwrap());
    let std_listener = listener.into_std().unwrap();
    assert_eq!(std_listener.local_addr().unwrap(), addr);
    // UDP and Unix the same way.
    let std_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    std_udp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::from_std(&p, std_udp).unwrap();
    let receiving = udp.recv_from(vec![0u8; 8]).start();
    thread::sleep(Duration::from_millis(20));
    let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    other.send_to(b"dgram", udp.local_addr().unwrap()).unwrap();
    let (res, buf) = receiving.wait();
    let (n, from) = res.unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"dgram"[..], other.local_addr().unwrap())
    );
    assert!(!udp.into_std().unwrap().broadcast().unwrap());
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let a = UnixStream::from_std(&p, a).unwrap();
    let reading = a.read(vec![0u8; 8]).start();
    thread::sleep(Duration::from_millis(20));
    (&b).write_all(b"unix").unwrap();
    let (n, buf) = reading.wait();
    assert_eq!(&buf[..n.unwrap()], b"unix");
    let mut a = a.into_std().unwrap();
    a.write_all(b"back").unwrap();
    let mut got = [0u8; 4];
    (&b).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"back");
}

#[test]
fn udp_send_to_recv_from_and_connected() {
    let p = proactor();
    let a = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // Datagrams keep their bounds; a long one is cut to the buffer.
    for msg in [&b"one"[..], b"two two", &[7u8; 1000]] {
        let (n, _) = a.send_to(msg.to_vec(), b_addr).wait();
        assert_eq!(n.unwrap(), msg.len());
    }
    for msg in [&b"one"[..], b"two two", &[7u8; 100]] {
        let (res, buf) = b.recv_from(Vec::with_capacity(100)).wait();
        let (n, from) = res.unwrap();
        assert_eq!((&buf[..n], from), (msg, a_addr));
    }
    assert_eq!(
        a.peer_addr().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    a.connect(b_addr).wait().unwrap();
    b.connect(a_addr).wait().unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
    let receiving = b.recv(vec![0u8; 16]).start();
    a.send("connected").wait().0.unwrap();
    let (n, buf) = receiving.wait();
    assert_eq!(&buf[..n.unwrap()], b"connected");
    // A connected socket takes nothing from others.
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"stranger", b_addr).unwrap();
    a.send("friend").wait().0.unwrap();
    let (n, buf) = b.recv(vec![0u8; 16]).wait();
    assert_eq!(&buf[..n.unwrap()], b"friend");
    // IPv6, where the host has it.
    if let Ok(v6) = UdpSocket::bind(&p, "[::1]:0") {
        let to: SocketAddr = v6.local_addr().unwrap();
        let from = UdpSocket::bind(&p, "[::1]:0").unwrap();
        from.send_to("six", to).wait().0.unwrap();
        let (res, buf) = v6.recv_from(vec![0u8; 8]).wait();
        let (n, sender) = res.unwrap();
        assert_eq!(
            (&buf[..n], sender),
            (&b"six"[..], from.local_addr().unwrap())
        );
    }
}

#[test]
fn unix_streams_listen_connect_pair_and_shut_down() {
    let p = proactor();
    let path = temp("unix.sock");
    let listener = UnixListener::bind(&p, &path.0).unwrap();
    assert_eq!(
        listener.local_addr().unwrap().as_pathname(),
        Some(path.0.as_path())
    );
    let accepting = listener.accept().start();
    let client = UnixStream::connect(&p, &path.0).wait().unwrap();
    let (server, peer) = accepting.wait().unwrap();
    assert!(peer.is_unnamed());
    assert_eq!(
        client.peer_addr().unwrap().as_pathname(),
        Some(path.0.as_path())
    );
    assert!(client.local_addr().unwrap().is_unnamed());
    let big = pattern(1 << 20, 11);
    let (sent, got) = block_on(futures_util::future::join(
        server.write_all(big.clone()),
        client.read_exact(Vec::with_capacity(big.len())),
    ));
    sent.0.unwrap();
    got.0.unwrap();
    assert!(got.1 == big);
    server.shutdown(Shutdown::Write).unwrap();
    assert_eq!(client.read(vec![0u8; 4]).wait().0.unwrap(), 0);
    // Several at once through the stream of connections.
    let clients: Vec<_> = (0..5)
        .map(|_| UnixStream::connect(&p, &path.0).start())
        .collect();
    let accepted: Vec<_> = block_on(listener.incoming().take(5).collect());
    assert!(accepted.iter().all(|s| s.is_ok()));
    for c in clients {
        c.wait().unwrap();
    }
    // A pair, and a peer that went away.
    let (a, b) = UnixStream::pair(&p).unwrap();
    a.write_all("pair").wait().0.unwrap();
    let (n, buf) = b.read(vec![0u8; 8]).wait();
    assert_eq!(&buf[..n.unwrap()], b"pair");
    drop(b);
    let (res, buf) = a.write("gone").wait();
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(buf, "gone");
    // Paths the address cannot hold.
    let long = std::env::temp_dir().join("x".repeat(120));
    let err = UnixStream::connect(&p, &long).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let missing = temp("no-such.sock");
    let err = UnixStream::connect(&p, &missing.0).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn a_proactor_lives_while_a_clone_or_a_handle_does() {
    let p = proactor();
    let socket = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    let clone = p.clone();
    drop(p);
    clone.nop().wait().unwrap();
    let op = clone.nop();
    drop(clone);
    // The socket's clone keeps it running: its ops, and others', complete.
    op.wait().unwrap();
    let to = socket.local_addr().unwrap();
    let sent = thread::spawn(move || {
        socket.send_to("self", to).wait().0.unwrap();
        let (n, _) = socket.recv(vec![0u8; 8]).wait();
        (n.unwrap(), socket.proactor().clone())
    });
    let (n, last) = sent.join().unwrap();
    assert_eq!(n, 4);
    // The last clone gone: ops made before fail.
    let late = last.nop();
    drop(last);
    assert_eq!(late.wait().unwrap_err().kind(), io::ErrorKind::NotConnected);
}

#[test]
fn hash_file_example_hashes_every_byte_with_32_reads_in_flight() {
    let p = Proactor::new(ProactorConfig::new(hash_file::IN_FLIGHT as u32)).unwrap();
    let path = temp("hash");
    // Not a multiple of the block, many more blocks than reads in flight.
    let data = pattern(100 * hash_file::BLOCK + 777, 5);
    std::fs::write(&path.0, &data).unwrap();
    let file = File::open(&p, &path.0).wait().unwrap();
    let (hash, len) = block_on(hash_file::hash(&file)).unwrap();
    assert_eq!(len, data.len() as u64);
    assert_eq!(hash, hash_file::fnv1a(hash_file::FNV_OFFSET, &data));
    assert!(
        p.stats().max_in_ring >= hash_file::IN_FLIGHT as u32,
        "{:?}",
        p.stats()
    );
    // A file whose size says nothing: read to its end all the same.
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    let file = File::open(&p, "/proc/self/cmdline").wait().unwrap();
    assert_eq!(file.metadata().wait().unwrap().len(), 0);
    let (hash, len) = block_on(hash_file::hash(&file)).unwrap();
    assert_eq!(len, cmdline.len() as u64);
    assert_eq!(hash, hash_file::fnv1a(hash_file::FNV_OFFSET, &cmdline));
    // FNV-1a's published values.
    assert_eq!(
        hash_file::fnv1a(hash_file::FNV_OFFSET, b""),
        0xcbf2_9ce4_8422_2325
    );
    assert_eq!(
        hash_file::fnv1a(hash_file::FNV_OFFSET, b"a"),
        0xaf63_dc4c_8601_ec8c
    );
    assert_eq!(
        hash_file::fnv1a(hash_file::FNV_OFFSET, b"foobar"),
        0x8594_4171_f739_67e8
    );
}
