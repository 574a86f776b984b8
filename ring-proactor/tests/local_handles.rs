//! The typed handles on a `LocalProactor`, on the running kernel: files
//! written and read back, a TCP echo between a listener and a stream, the
//! stream of connections, UDP and Unix sockets, code written once for both
//! runtimes, and fds that close exactly once, however a handle or its op
//! ends (the LocalProactor dropped with an accept in flight included).

#[path = "../../ring-driver/tests/common/mod.rs"]
mod common;

use std::future::{Future, poll_fn};
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join;
use ring_io_proactor::fs::{File, FileType, OpenOptions};
use ring_io_proactor::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use ring_io_proactor::{
    CURRENT_POSITION, IoBuf, LocalProactor, MsgFlags, PollEvents, Proactor, ProactorConfig, Runtime,
};

fn local() -> LocalProactor {
    LocalProactor::new(ProactorConfig::new(32)).expect("a LocalProactor on this kernel")
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
    let path = std::env::temp_dir().join(format!(
        "ring-local-handles-{}-{n}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    Temp(path)
}

/// Bytes that differ at every offset within a period longer than a block.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
        .collect()
}

/// What the fd `raw` of this process names now (`None`: closed).
fn fd_target(raw: RawFd) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{raw}")).ok()
}

/// Polls `future` once (its ops are pushed into the SQ), then hands it
/// back.
fn poll_once<F: Future + Unpin>(p: &LocalProactor, mut future: F) -> F {
    p.block_on(poll_fn(|cx| {
        assert!(Pin::new(&mut future).poll(cx).is_pending());
        Poll::Ready(())
    }));
    future
}

#[test]
fn a_file_round_trips_through_write_all_at_and_read_exact_at() {
    let p = local();
    let path = temp("round-trip");
    // More than one write can take at a time on some filesystems, at an
    // offset that is no multiple of a block.
    let data = pattern((3 << 20) + 4321, 7);
    let file = File::create(&p, &path.0).wait().unwrap();
    let (res, back) = file.write_all_at(data.clone(), 1000).wait();
    res.unwrap();
    assert!(back == data, "the buffer comes back unchanged");
    file.sync_all().wait().unwrap();
    file.sync_data().wait().unwrap();
    let m = file.metadata().wait().unwrap();
    assert_eq!(m.len(), 1000 + data.len() as u64);
    assert_eq!(m.file_type(), FileType::File);
    let std_meta = std::fs::metadata(&path.0).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (m.ino(), m.dev(), m.mode(), m.uid(), m.gid()),
            (
                std_meta.ino(),
                std_meta.dev(),
                std_meta.mode(),
                std_meta.uid(),
                std_meta.gid()
            )
        );
    }
    assert_eq!(m.modified().unwrap(), std_meta.modified().unwrap());
    // The path's own statx agrees with the file's.
    let by_path = p
        .statx(&path.0, ring_io_proactor::StatxFlags::empty())
        .wait()
        .unwrap();
    assert_eq!((by_path.ino(), by_path.len()), (m.ino(), m.len()));
    file.close().wait().unwrap();
    // Read back by another handle: the bytes, then the hole before them.
    let file = File::open(&p, &path.0).wait().unwrap();
    let (res, got) = file
        .read_exact_at(Vec::with_capacity(data.len()), 1000)
        .wait();
    res.unwrap();
    assert!(got == data, "the bytes read differ");
    let (res, hole) = file.read_exact_at(vec![1u8; 1000], 0).wait();
    res.unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    // Past the end: the bytes there are, then UnexpectedEof, buffer back.
    let end = 1000 + data.len() as u64;
    let (res, tail) = file.read_exact_at(Vec::with_capacity(100), end - 10).wait();
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(&tail[..], &data[data.len() - 10..]);
    let (n, _) = file.read_at(vec![0u8; 16], end).wait();
    assert_eq!(n.unwrap(), 0, "at the end");
    // Into a slice of a buffer, from its start.
    let (n, slice) = file.read_at(vec![b'.'; 8].slice(2..6), 1000).wait();
    assert_eq!(n.unwrap(), 4);
    assert_eq!(
        &slice.into_inner()[..],
        [&b".."[..], &data[..4], b".."].concat()
    );
    // Writing to a read-only file fails, handing the buffer back.
    let (res, buf) = file.write_all_at(b"no".to_vec(), 0).wait();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(buf, b"no");
    let (res, buf) = file.write_at("no", 0).wait();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
    assert_eq!(buf, "no");
}

#[test]
fn many_reads_of_one_file_run_at_once_in_one_task() {
    let p = local();
    let path = temp("at-once");
    let data = pattern(64 * 4096, 3);
    std::fs::write(&path.0, &data).unwrap();
    let file = File::open(&p, &path.0).wait().unwrap();
    let before = p.stats().enters;
    let blocks = p.block_on(async {
        let reads: Vec<_> = (0..64)
            .map(|i| file.read_at(Vec::with_capacity(4096), i * 4096))
            .collect();
        futures_util::future::join_all(reads).await
    });
    for (i, (n, buf)) in blocks.into_iter().enumerate() {
        assert_eq!(n.unwrap(), 4096);
        assert!(buf == data[i * 4096..][..4096], "block {i}");
    }
    // One turn submits them all: far fewer enters than reads.
    assert!(p.stats().enters - before < 32, "{:?}", p.stats());
}

#[test]
fn open_options_are_checked_as_on_the_proactor() {
    let p = local();
    let path = temp("options");
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p, &path.0)
        .wait()
        .unwrap();
    assert_eq!(file.metadata().wait().unwrap().mode() & 0o777, 0o600);
    let again = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p, &path.0)
        .wait();
    assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
    let none = OpenOptions::new().open(&p, &path.0).wait();
    assert_eq!(none.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    let missing = File::open(&p, "/no/such/file").wait();
    assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
    let nul = File::open(&p, "nul\0byte").wait();
    assert_eq!(nul.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    // Append: every write goes to the end.
    std::fs::write(&path.0, "log: ").unwrap();
    let log = OpenOptions::new()
        .append(true)
        .open(&p, &path.0)
        .wait()
        .unwrap();
    log.write_all_at("one", 0).wait().0.unwrap();
    assert_eq!(std::fs::read(&path.0).unwrap(), b"log: one");
}

#[test]
fn a_file_converts_from_and_into_std_and_serves_the_raw_ops() {
    let p = local();
    let path = temp("convert");
    std::fs::write(&path.0, b"0123456789").unwrap();
    let std_file = std::fs::File::open(&path.0).unwrap();
    let raw = std_file.as_raw_fd();
    let file = File::from_std(&p, std_file);
    assert_eq!((file.as_raw_fd(), file.as_fd().as_raw_fd()), (raw, raw));
    assert_eq!(file.as_std().metadata().unwrap().len(), 10);
    // `&File` goes to the LocalProactor's own ops.
    let (n, bufs) = p.readv(&file, vec![vec![0u8; 3], vec![0u8; 4]], 2).wait();
    assert_eq!(n.unwrap(), 7);
    assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"234"[..], &b"5678"[..]));
    let (n, buf) = file.read_at(vec![0u8; 4], CURRENT_POSITION).wait();
    assert_eq!(&buf[..n.unwrap()], b"0123", "at (and moving) the position");
    file.proactor().nop().wait().unwrap();
    let mut back = file.into_std().unwrap();
    assert_eq!(back.as_raw_fd(), raw, "the same descriptor");
    let mut rest = String::new();
    back.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "456789");
}

#[test]
fn handles_close_their_fds_exactly_once() {
    let p = local();
    let path = temp("close-once");
    std::fs::write(&path.0, b"contents").unwrap();
    let ours = |raw: RawFd| fd_target(raw).as_deref() == Some(path.0.as_path());
    // A number freed by a close is taken at once by a descriptor of our
    // own, which must outlive everything the LocalProactor does next: a
    // second close of the number would close it. (Another test's thread
    // may take the number first: then that check is skipped.)
    let guards = std::cell::RefCell::new(Vec::new());
    let template = std::fs::File::open(&path.0).unwrap();
    let guard = |raw: RawFd| {
        assert!(!ours(raw), "fd {raw} is still open");
        // SAFETY: F_DUPFD takes no pointers; the result is checked.
        let dup = unsafe { libc::fcntl(template.as_raw_fd(), libc::F_DUPFD_CLOEXEC, raw) };
        assert!(dup >= 0);
        // SAFETY: a new fd, owned here.
        let dup = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(dup) };
        if dup.as_raw_fd() == raw {
            guards.borrow_mut().push(dup);
        }
    };
    // Dropped.
    let file = File::open(&p, &path.0).wait().unwrap();
    let raw = file.as_raw_fd();
    assert!(ours(raw));
    drop(file);
    guard(raw);
    // Closed by the kernel, with its result.
    let file = File::open(&p, &path.0).wait().unwrap();
    let raw = file.as_raw_fd();
    file.close().wait().unwrap();
    guard(raw);
    // Closed while a dropped read still holds it: when the kernel is done.
    let (r, w) = common::pipe();
    let pipe = File::from_std(&p, std::fs::File::from(r));
    let raw = pipe.as_raw_fd();
    let read = poll_once(&p, pipe.read_at(vec![0u8; 8], CURRENT_POSITION));
    drop(read);
    pipe.close().wait().unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            p.drive();
            fd_target(raw).is_none_or(|to| !to.to_string_lossy().starts_with("pipe:"))
        }),
        "the pipe stayed open"
    );
    guard(raw);
    drop(w);
    // Sockets: dropped, and an accepted one dropped with its listener.
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, client) = p.block_on(join(listener.accept(), TcpStream::connect(&p, addr)));
    let (server, _) = accepted.unwrap();
    let client = client.unwrap();
    let raws = [listener.as_raw_fd(), server.as_raw_fd(), client.as_raw_fd()];
    drop((listener, server, client));
    for raw in raws {
        assert!(fd_target(raw).is_none_or(|to| !to.to_string_lossy().starts_with("socket:")));
        guard(raw);
    }
    // Everything the LocalProactor does next leaves our descriptors open.
    let socket = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    socket
        .send_to("self", socket.local_addr().unwrap())
        .wait()
        .0
        .unwrap();
    socket.recv(vec![0u8; 8]).wait().0.unwrap();
    drop(socket);
    p.nop().wait().unwrap();
    drop(p);
    let guards = guards.into_inner();
    eprintln!("{} of 6 closed numbers checked", guards.len());
    for g in &guards {
        assert!(ours(g.as_raw_fd()), "fd {} was closed twice", g.as_raw_fd());
    }
}

#[test]
fn tcp_echo_between_a_listener_and_a_stream() {
    let p = local();
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, client) = p.block_on(join(listener.accept(), TcpStream::connect(&p, addr)));
    let (server, peer) = accepted.unwrap();
    let client = client.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), peer);
    assert_eq!(client.peer_addr().unwrap(), addr);
    // The server echoes each read back; the client writes more than the
    // socket buffers hold, reading the echo at the same time.
    let big = pattern(4 << 20, 3);
    let echo = async {
        let (mut buf, mut total) = (vec![0u8; 64 << 10], 0);
        loop {
            let (n, back) = server.read(buf).await;
            let n = n.unwrap();
            if n == 0 {
                return total;
            }
            let (res, back) = server.write_all(back.slice(..n)).await;
            res.unwrap();
            buf = back.into_inner();
            total += n;
        }
    };
    let talk = async {
        let (sent, got) = join(
            client.write_all(big.clone()),
            client.read_exact(Vec::with_capacity(big.len())),
        )
        .await;
        sent.0.unwrap();
        got.0.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        got.1
    };
    let (echoed, got) = p.block_on(join(echo, talk));
    assert_eq!(echoed, big.len());
    assert!(got == big, "the bytes echoed differ");
    // The shut-down write side: the server read the end; the other way
    // still works.
    let (n, _) = server.write("pong").wait();
    assert_eq!(n.unwrap(), 4);
    let (n, buf) = client.read(vec![0u8; 16]).wait();
    assert_eq!(&buf[..n.unwrap()], b"pong");
    // The LocalProactor's flag ops take `&TcpStream`.
    p.send(&server, "peek", MsgFlags::NOSIGNAL)
        .wait()
        .0
        .unwrap();
    let ready = p.poll(&client, PollEvents::IN).wait().unwrap();
    assert!(ready.contains(PollEvents::IN));
    let (n, _) = p.recv(&client, vec![0u8; 4], MsgFlags::PEEK).wait();
    assert_eq!(n.unwrap(), 4);
    let (res, buf) = client.read_exact(vec![0u8; 4]).wait();
    res.unwrap();
    assert_eq!(buf, b"peek");
    // The end of the stream before a read_exact is full.
    server.shutdown(Shutdown::Write).unwrap();
    let (res, buf) = client.read_exact(vec![0u8; 8]).wait();
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(buf.len(), 8);
    // The peer gone: a write fails with EPIPE (no SIGPIPE) or a reset.
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
fn tcp_connect_is_refused_and_times_out_with_its_op() {
    let p = local();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = TcpStream::connect(&p, addr).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(&p, listener.local_addr().unwrap())
        .timeout(Duration::from_secs(10))
        .wait();
    assert!(matches!(connected, Ok(Ok(_))));
    // An accept nobody connects to, ended by its time limit: the kernel
    // cancelled it.
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let elapsed = listener
        .accept()
        .timeout(Duration::from_millis(10))
        .wait()
        .unwrap_err();
    let err = elapsed.into_inner().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn tcp_incoming_yields_every_connection_in_order() {
    let p = local();
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
    let seen = p.block_on(async {
        let mut seen = Vec::new();
        for _ in 0..clients.len() {
            let stream = incoming.next().await.unwrap().unwrap();
            let (res, buf) = stream.read_exact(vec![0u8; 1]).await;
            res.unwrap();
            seen.push((buf[0], stream.peer_addr().unwrap()));
        }
        seen
    });
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(seen[i], (i as u8, c.local_addr().unwrap()));
    }
    // Cancelled, it ends, and loses no connection: one that arrives
    // meanwhile comes from it or stays for the next accept.
    let late = std::net::TcpStream::connect(addr).unwrap();
    incoming.cancel();
    let rest: Vec<_> = p.block_on(incoming.collect());
    let peer = match &rest[..] {
        [] => listener.accept().wait().unwrap().1,
        [stream] => stream.as_ref().unwrap().peer_addr().unwrap(),
        more => panic!("{} connections from one client", more.len()),
    };
    assert_eq!(peer, late.local_addr().unwrap());
}

#[test]
fn an_accept_in_flight_when_the_local_proactor_goes_is_released() {
    // The accept's output makes a stream of the LocalProactor: dropped in
    // flight, the op must not keep the LocalProactor alive (nothing would
    // reap the accept, nor close what it accepted, nor the listener).
    let p = local();
    let listener = TcpListener::bind(&p, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = poll_once(&p, listener.accept());
    p.drive(); // submitted
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    drop(accept);
    drop((listener, p));
    // The connection, accepted or still in the backlog, is closed or
    // reset: the client's read ends, it does not time out.
    match client.read(&mut [0u8; 1]) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn udp_send_to_recv_from_and_connected() {
    let p = local();
    let a = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // A round trip: to b, and back to where it came from.
    let (got, sent) = p.block_on(join(
        b.recv_from(Vec::with_capacity(64)),
        a.send_to("ping", b_addr),
    ));
    assert_eq!(sent.0.unwrap(), 4);
    let ((n, from), buf) = (got.0.unwrap(), got.1);
    assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));
    b.send_to(buf, from).wait().0.unwrap();
    let (res, buf) = a.recv_from(vec![0u8; 64]).wait();
    let (n, from) = res.unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], b_addr));
    // Datagrams keep their bounds; a long one is cut to the buffer.
    for msg in [&b"one"[..], b"two two", &[7u8; 1000]] {
        assert_eq!(a.send_to(msg.to_vec(), b_addr).wait().0.unwrap(), msg.len());
    }
    for msg in [&b"one"[..], b"two two", &[7u8; 100]] {
        let (res, buf) = b.recv_from(Vec::with_capacity(100)).wait();
        let (n, from) = res.unwrap();
        assert_eq!((&buf[..n], from), (msg, a_addr));
    }
    // Connected.
    a.connect(b_addr).wait().unwrap();
    b.connect(a_addr).wait().unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
    let (got, sent) = p.block_on(join(b.recv(vec![0u8; 16]), a.send("connected")));
    sent.0.unwrap();
    assert_eq!(&got.1[..got.0.unwrap()], b"connected");
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
    let std = a.into_std().unwrap();
    assert_eq!(std.local_addr().unwrap(), a_addr);
}

#[test]
fn unix_streams_listen_connect_pair_and_shut_down() {
    let p = local();
    let path = temp("unix.sock");
    let listener = UnixListener::bind(&p, &path.0).unwrap();
    assert_eq!(
        listener.local_addr().unwrap().as_pathname(),
        Some(path.0.as_path())
    );
    let (accepted, client) = p.block_on(join(listener.accept(), UnixStream::connect(&p, &path.0)));
    let (server, peer) = accepted.unwrap();
    let client = client.unwrap();
    assert!(peer.is_unnamed());
    assert_eq!(
        client.peer_addr().unwrap().as_pathname(),
        Some(path.0.as_path())
    );
    let big = pattern(1 << 20, 11);
    let (sent, got) = p.block_on(join(
        server.write_all(big.clone()),
        client.read_exact(Vec::with_capacity(big.len())),
    ));
    sent.0.unwrap();
    got.0.unwrap();
    assert!(got.1 == big);
    server.shutdown(Shutdown::Write).unwrap();
    assert_eq!(client.read(vec![0u8; 4]).wait().0.unwrap(), 0);
    // Several at once through the stream of connections.
    let (accepted, connected) = p.block_on(join(
        listener.incoming().take(5).collect::<Vec<_>>(),
        futures_util::future::join_all((0..5).map(|_| UnixStream::connect(&p, &path.0))),
    ));
    assert!(accepted.iter().all(|s| s.is_ok()));
    assert!(connected.iter().all(|s| s.is_ok()));
    // A pair, and a peer that went away.
    let (a, b) = UnixStream::pair(&p).unwrap();
    a.write_all("pair").wait().0.unwrap();
    let (n, buf) = b.read(vec![0u8; 8]).wait();
    assert_eq!(&buf[..n.unwrap()], b"pair");
    drop(b);
    let (res, buf) = a.write("gone").wait();
    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(buf, "gone");
    // Paths the address cannot hold, and a missing one.
    let long = std::env::temp_dir().join("x".repeat(120));
    let err = UnixStream::connect(&p, &long).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let missing = temp("no-such.sock");
    let err = UnixStream::connect(&p, &missing.0).wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    // From a std stream put in blocking mode, and back.
    let (std_a, mut std_b) = std::os::unix::net::UnixStream::pair().unwrap();
    std_a.set_nonblocking(true).unwrap();
    let a = UnixStream::from_std(&p, std_a).unwrap();
    let (got, ()) = p.block_on(join(a.read(vec![0u8; 8]), async {
        std_b.write_all(b"unix").unwrap();
    }));
    assert_eq!(&got.1[..got.0.unwrap()], b"unix");
    a.into_std().unwrap().write_all(b"back").unwrap();
    let mut back = [0u8; 4];
    std_b.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"back");
}

/// A file copied through a Unix pair and a TCP connection, written once
/// for both runtimes.
async fn relay<R: Runtime>(p: &R, from: &Path, to: &Path) -> io::Result<u64> {
    let src = File::open(p, from).await?;
    let dst = File::create(p, to).await?;
    let (tx, rx) = UnixStream::pair(p)?;
    let listener = TcpListener::bind(p, "127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (accepted, out) = join(listener.accept(), TcpStream::connect(p, addr)).await;
    let ((tcp_in, _), tcp_out) = (accepted?, out?);
    let len = src.metadata().await?.len() as usize;
    let (res, data) = src.read_exact_at(Vec::with_capacity(len), 0).await;
    res?;
    let forward = async {
        let (res, _) = tx.write_all(data).await;
        res?;
        tx.shutdown(Shutdown::Write)?;
        io::Result::Ok(())
    };
    let relay = async {
        let (res, data) = rx.read_exact(Vec::with_capacity(len)).await;
        res?;
        let (res, _) = tcp_out.write_all(data).await;
        res?;
        tcp_out.shutdown(Shutdown::Write)?;
        io::Result::Ok(())
    };
    let land = async {
        let (res, data) = tcp_in.read_exact(Vec::with_capacity(len)).await;
        res?;
        let (res, _) = dst.write_all_at(data, 0).await;
        res?;
        dst.sync_data().await?;
        io::Result::Ok(dst.metadata().await?.len())
    };
    let ((forwarded, relayed), landed) = join(join(forward, relay), land).await;
    forwarded?;
    relayed?;
    landed
}

#[test]
fn code_generic_over_the_runtime_runs_on_both() {
    let data = pattern(300_000, 9);
    let from = temp("relay-from");
    std::fs::write(&from.0, &data).unwrap();
    let shared = Proactor::new(ProactorConfig::new(32)).unwrap();
    let to = temp("relay-shared");
    assert_eq!(
        shared.block_on(relay(&shared, &from.0, &to.0)).unwrap(),
        data.len() as u64
    );
    assert!(std::fs::read(&to.0).unwrap() == data);
    let p = local();
    let to = temp("relay-local");
    assert_eq!(
        p.block_on(relay(&p, &from.0, &to.0)).unwrap(),
        data.len() as u64
    );
    assert!(std::fs::read(&to.0).unwrap() == data);
}

#[test]
fn a_local_proactor_lives_while_a_handle_does() {
    let p = local();
    let socket = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    let clone = p.clone();
    drop(p);
    clone.nop().wait().unwrap();
    drop(clone);
    // The socket's clone keeps it running.
    let to = socket.local_addr().unwrap();
    socket.send_to("self", to).wait().0.unwrap();
    let (n, _) = socket.recv(vec![0u8; 8]).wait();
    assert_eq!(n.unwrap(), 4);
    let last = socket.proactor().clone();
    drop(socket);
    last.nop().wait().unwrap();
}

#[test]
fn constructors_take_the_runtime_or_anything_that_refers_to_it() {
    // As before the handles were generic: `&Arc<Proactor>` and
    // `&&Proactor` (deref coercions then) as well as `&Proactor`.
    let shared = std::sync::Arc::new(Proactor::new(ProactorConfig::new(8)).unwrap());
    let by_arc: UdpSocket = UdpSocket::bind(&shared, "127.0.0.1:0").unwrap();
    let p: &Proactor = &shared;
    let by_ref_ref: UdpSocket = UdpSocket::bind(&p, "127.0.0.1:0").unwrap();
    let by_value: UdpSocket = UdpSocket::bind(p, "127.0.0.1:0").unwrap();
    let to = by_value.local_addr().unwrap();
    by_arc.send_to("a", to).wait().0.unwrap();
    by_ref_ref.send_to("b", to).wait().0.unwrap();
    let mut got = [
        by_value.recv(vec![0u8; 1]).wait(),
        by_value.recv(vec![0u8; 1]).wait(),
    ]
    .map(|(n, buf)| (n.unwrap(), buf[0]));
    got.sort();
    assert_eq!(got, [(1, b'a'), (1, b'b')]);
    // The same for a LocalProactor behind an `Rc`.
    let local = std::rc::Rc::new(local());
    let socket: UdpSocket<LocalProactor> = UdpSocket::bind(&local, "127.0.0.1:0").unwrap();
    let (a, _b) = UnixStream::pair(&*local).unwrap();
    let _: &UnixStream<LocalProactor> = &a;
    socket
        .send_to("self", socket.local_addr().unwrap())
        .wait()
        .0
        .unwrap();
    assert_eq!(socket.recv(vec![0u8; 8]).wait().0.unwrap(), 4);
}
