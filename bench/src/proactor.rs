//! The `proactor/*` rows: the Proactor's futures against the raw
//! [`Ring`](ring_io_driver::Ring) on the same work, and the echo example against an echo server
//! written on the raw ring.
//!
//! Depth 32 on the Proactor: 32 futures in flight, driven by [`drive`] on
//! `ring_io_proactor::block_on` (one waker that unparks the thread, every op in
//! flight polled at each wake-up), either refilling a slot with a new op as
//! soon as its op completes (`qd32`) or in batches of 32 (`batch32`). The
//! raw ring runs the loop of the `read4k` rows ([`file_io::ring_depth`]),
//! refilling or in batches.

use std::future::Future;
use std::future::poll_fn;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use ring_io_driver::Builder;
use ring_io_ops::{Fd, Nop};
use ring_io_proactor::{IoBuf, LocalProactor, MsgFlags, Op, Proactor, ProactorConfig, block_on};

use crate::io::{self as file_io, BLOCK, DEPTH, Reads, TestFile};
use crate::median;

#[path = "../../ring-proactor/examples/echo.rs"]
#[allow(dead_code, reason = "only `serve` is used here")]
mod echo;

/// Ops per timed sample in the NOP and read rows.
const OPS: u64 = 1 << 14;
/// Client threads of the echo rows.
const CLIENTS: usize = 4;
/// Bytes per echo round trip.
pub(crate) const MSG: usize = 64;

/// Runs `ops` Proactor ops, `depth` in flight, each slot refilled as soon
/// as its op completes (`batch`: in batches of `depth`, each submitted
/// whole and waited for whole): `make(state, k, slot)` creates op `k`,
/// `finish(state, k, slot, output)` takes its output. One future polls
/// every op in flight at each wake-up, like `join_all` (one waker per op,
/// polling only the woken ones, measured about 1.5-2x slower here: the
/// thread parks more often).
pub(crate) fn drive<S: ?Sized, O: 'static>(
    state: &mut S,
    depth: usize,
    batch: bool,
    ops: u64,
    make: impl FnMut(&mut S, u64, usize) -> Op<O>,
    finish: impl FnMut(&mut S, u64, usize, O),
) {
    drive_on(|f| block_on(f), state, depth, batch, ops, make, finish);
}

/// [`drive`] for any op future, the whole loop run by `run` (a
/// `block_on`).
pub(crate) fn drive_on<S: ?Sized, F: Future + Unpin>(
    run: impl FnOnce(Pin<&mut dyn Future<Output = ()>>),
    state: &mut S,
    depth: usize,
    batch: bool,
    ops: u64,
    mut make: impl FnMut(&mut S, u64, usize) -> F,
    mut finish: impl FnMut(&mut S, u64, usize, F::Output),
) {
    let mut slots: Vec<Option<(u64, F)>> = (0..depth).map(|_| None).collect();
    let (mut issued, mut done) = (0u64, 0u64);
    let all = poll_fn(|cx| {
        loop {
            // A batch starts only when the last one has completed.
            let start = !batch || done == issued;
            for (i, slot) in slots.iter_mut().enumerate() {
                if slot.is_none() && start && issued < ops {
                    *slot = Some((issued, make(state, issued, i)));
                    issued += 1;
                }
                while let Some((k, op)) = slot {
                    let k = *k;
                    match Pin::new(op).poll(cx) {
                        Poll::Ready(out) => {
                            *slot = None;
                            finish(state, k, i, out);
                            done += 1;
                            if !batch && issued < ops {
                                *slot = Some((issued, make(state, issued, i)));
                                issued += 1;
                            }
                        }
                        Poll::Pending => break,
                    }
                }
            }
            if done == ops {
                return Poll::Ready(());
            }
            if !(batch && done == issued) {
                return Poll::Pending;
            }
        }
    });
    let all: Pin<&mut dyn Future<Output = ()>> = std::pin::pin!(all);
    run(all);
}

/// `ops` NOPs through a LocalProactor's futures, `depth` in flight (at
/// depth 1, a loop awaiting each in `block_on`, as the peers' QD1 rows).
pub(crate) fn local_nops(p: &LocalProactor, depth: usize, ops: u64) {
    if depth == 1 {
        p.block_on(async {
            for _ in 0..ops {
                p.nop().await.expect("nop");
            }
        });
        return;
    }
    drive_on(
        |f| p.block_on(f),
        &mut (),
        depth,
        false,
        ops,
        |_, _, _| p.nop(),
        |_, _, _, res: io::Result<()>| res.expect("nop"),
    );
}

/// `ops` NOPs through a LocalProactor's futures awaited in spawned tasks:
/// `tasks` tasks, each awaiting its share of NOPs one after the other
/// (`block_on`'s own future only awaits their handles).
pub(crate) fn local_task_nops(p: &LocalProactor, tasks: usize, ops: u64) {
    let tasks = tasks.max(1) as u64;
    p.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                // Task `t`'s share: `ops / tasks`, and one more for the
                // first `ops % tasks`.
                let n = ops / tasks + u64::from(t < ops % tasks);
                let p2 = p.clone();
                p.spawn(async move {
                    for _ in 0..n {
                        p2.nop().await.expect("nop");
                    }
                })
            })
            .collect();
        for h in handles {
            h.await;
        }
    });
}

/// `ops` 4 KiB reads through a LocalProactor's futures, `depth` in
/// flight, into `bufs` (one per slot, allocated once); `what`: where they
/// land. At depth 1, a loop awaiting each in `block_on`, as the peers'
/// QD1 rows.
pub(crate) fn local_reads(
    p: &LocalProactor,
    f: &TestFile,
    bufs: &mut [Vec<u8>],
    what: Reads,
    depth: usize,
    ops: u64,
) {
    if depth == 1 {
        // One op at a time: a loop awaiting each op in `block_on`, as the
        // peers' QD1 rows run.
        let buf = std::mem::take(&mut bufs[0]);
        bufs[0] = p.block_on(async {
            let mut buf = buf;
            for k in 0..ops {
                let (res, back) = p.read(&f.file, buf, f.offset(what, k)).await;
                f.check(what, k, res.expect("read"), &back);
                buf = back;
            }
            buf
        });
        return;
    }
    drive_on(
        |fut| p.block_on(fut),
        bufs,
        depth,
        false,
        ops,
        |bufs, k, slot| p.read(&f.file, std::mem::take(&mut bufs[slot]), f.offset(what, k)),
        |bufs, k, slot, (res, buf): (io::Result<usize>, Vec<u8>)| {
            f.check(what, k, res.expect("read"), &buf);
            bufs[slot] = buf;
        },
    );
}

#[cfg_attr(not(feature = "peers"), allow(dead_code, reason = "the peers rows"))]
/// An echo server on a LocalProactor: accepts `conns` connections, each
/// served by a task spawned on the LocalProactor (recv into its 16 KiB
/// buffer, send it back, again), polled only when one of its ops completes,
/// as monoio's server spawns one task per connection
/// (`examples/echo_local.rs` does the same). Returns the bytes echoed.
pub(crate) fn local_echo_server(
    listener: TcpListener,
    conns: usize,
    ready: std::sync::mpsc::Sender<()>,
) -> io::Result<u64> {
    async fn conn(p: LocalProactor, fd: OwnedFd) -> io::Result<u64> {
        let fd = Arc::new(fd);
        let mut buf = vec![0u8; 16 << 10];
        let mut total = 0;
        loop {
            let (n, b) = p.recv(&fd, buf, MsgFlags::empty()).await;
            buf = b;
            let n = n?;
            if n == 0 {
                return Ok(total);
            }
            let mut sent = 0;
            while sent < n {
                let (m, b) = p.send(&fd, buf.slice(sent..n), MsgFlags::empty()).await;
                buf = b.into_inner();
                sent += m?;
            }
            total += n as u64;
        }
    }
    let p = LocalProactor::new(ProactorConfig::new(256))?;
    let _ = ready.send(());
    let listener = Arc::new(listener);
    p.block_on(async {
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let fd = p.accept(&listener).await?;
            tasks.push(p.spawn(conn(p.clone(), fd)));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await?;
        }
        Ok(total)
    })
}

/// `ops` NOPs through the Proactor's futures, `depth` in flight (at depth
/// 1, a loop awaiting each in `block_on`, as the peers' QD1 rows).
pub(crate) fn proactor_nops(p: &Proactor, depth: usize, batch: bool, ops: u64) {
    if depth == 1 {
        block_on(async {
            for _ in 0..ops {
                p.nop().await.expect("nop");
            }
        });
        return;
    }
    drive(
        &mut (),
        depth,
        batch,
        ops,
        |_, _, _| p.nop(),
        |_, _, _, res: io::Result<()>| res.expect("nop"),
    );
}

/// `ops` NOPs on the raw ring, `depth` in flight (the loop of the read4k
/// rows).
fn ring_nops(ring: &mut ring_io_driver::Ring, depth: usize, batch: bool, ops: u64) {
    // SAFETY: a NOP carries no pointers.
    unsafe {
        file_io::ring_depth(
            ring,
            depth,
            batch,
            ops,
            |_, _| Nop::new().build(),
            |_, _, cqe| assert_eq!(cqe.res(), 0),
        );
    }
}

/// One Proactor read (the one place that names its signature).
fn read_op(
    p: &Proactor,
    f: &TestFile,
    buf: Vec<u8>,
    offset: u64,
) -> Op<(io::Result<usize>, Vec<u8>)> {
    p.read(&f.file, buf, offset)
}

/// `ops` 4 KiB reads through the Proactor's futures, `depth` in flight,
/// into `bufs` (one per slot, allocated once); `what`: where they land. At
/// depth 1, a loop awaiting each in `block_on`, as the peers' QD1 rows.
pub(crate) fn proactor_reads(
    p: &Proactor,
    f: &TestFile,
    bufs: &mut [Vec<u8>],
    what: Reads,
    depth: usize,
    batch: bool,
    ops: u64,
) {
    if depth == 1 {
        // One op at a time, as in `local_reads`.
        let buf = std::mem::take(&mut bufs[0]);
        bufs[0] = block_on(async {
            let mut buf = buf;
            for k in 0..ops {
                buf.clear();
                let (res, back) = read_op(p, f, buf, f.offset(what, k)).await;
                f.check(what, k, res.expect("read"), &back);
                buf = back;
            }
            buf
        });
        return;
    }
    drive(
        bufs,
        depth,
        batch,
        ops,
        |bufs, k, slot| {
            let mut buf = std::mem::take(&mut bufs[slot]);
            buf.clear();
            read_op(p, f, buf, f.offset(what, k))
        },
        |bufs, k, slot, (res, buf)| {
            f.check(what, k, res.expect("read"), &buf);
            bufs[slot] = buf;
        },
    );
}

/// Runs `conns` client threads against `addr`, each on its own connection
/// doing `trips` blocking write + read round trips of `MSG` bytes; returns
/// the time all took. The one client of every echo row (`proactor/echo`,
/// `peers/echo/*`), whatever the server.
pub(crate) fn clients(addr: SocketAddr, conns: usize, trips: usize) -> Duration {
    let start = Instant::now();
    thread::scope(|s| {
        for c in 0..conns {
            s.spawn(move || {
                let mut conn = TcpStream::connect(addr).expect("connect");
                conn.set_nodelay(true).expect("nodelay");
                let mut msg = [c as u8; MSG];
                let mut back = [0u8; MSG];
                for t in 0..trips {
                    msg[1] = t as u8;
                    conn.write_all(&msg).expect("write");
                    conn.read_exact(&mut back).expect("read");
                    assert_eq!(back, msg, "echoed back unchanged");
                }
            });
        }
    });
    start.elapsed()
}

/// The echo example (`examples/echo.rs`, `serve`) on a new Proactor
/// (`ProactorConfig::new(256)`): says `ready` once the Proactor runs, then
/// serves `conns` connections; returns the bytes echoed.
pub(crate) fn proactor_echo_server(
    listener: TcpListener,
    conns: usize,
    ready: std::sync::mpsc::Sender<()>,
) -> io::Result<u64> {
    let p = Proactor::new(ProactorConfig::new(256))?;
    let listener = ring_io_proactor::net::TcpListener::from_std(&p, listener)?;
    let _ = ready.send(());
    Ok(echo::serve(listener, Some(conns)))
}

/// Round trips per second of the echo example (`examples/echo.rs`,
/// `serve`) on a Proactor.
fn proactor_echo(trips: usize) -> f64 {
    let took = echo_round(CLIENTS, trips, proactor_echo_server);
    (CLIENTS * trips) as f64 / took.as_secs_f64()
}

/// An echo server for [`echo_round`]: serves `conns` connections on the
/// listener after saying `ready`, returns the bytes echoed.
pub(crate) type EchoServer = fn(TcpListener, usize, std::sync::mpsc::Sender<()>) -> io::Result<u64>;

/// One echo round: starts `serve` on a new thread with a new loopback
/// listener, waits until it is ready (its setup is not timed), then runs
/// [`clients`] (`conns` connections, `trips` round trips each); checks
/// that every byte came back and returns the clients' time.
pub(crate) fn echo_round(conns: usize, trips: usize, serve: EchoServer) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || serve(listener, conns, tx));
    if rx.recv().is_err() {
        // It ended before it was ready: show why.
        let outcome = server.join().expect("server");
        panic!("the echo server did not start: {outcome:?}");
    }
    let took = clients(addr, conns, trips);
    let echoed = server.join().expect("server").expect("echo");
    assert_eq!(echoed, (conns * trips * MSG) as u64);
    took
}

/// The echo server on the raw ring: accepts `conns` connections (accept
/// SQEs, one at a time), then per connection a recv SQE into its own 16 KiB
/// buffer, a send SQE of what arrived (again for the rest of a short send),
/// and a recv again; closes a connection when its recv returns 0. Returns
/// the bytes echoed.
fn ring_echo_server(
    listener: TcpListener,
    conns: usize,
    ready: std::sync::mpsc::Sender<()>,
) -> io::Result<u64> {
    struct Conn {
        fd: OwnedFd,
        buf: Vec<u8>,
        len: usize,
        sent: usize,
    }
    const ACCEPT: u64 = u64::MAX;
    let recv = |i: usize, c: &mut Conn| {
        ring_io_ops::Recv::new(Fd(c.fd.as_raw_fd()), c.buf.as_mut_ptr(), c.buf.len() as u32)
            .build()
            .user_data((i as u64) << 1)
    };
    let send = |i: usize, c: &Conn| {
        ring_io_ops::Send::new(
            Fd(c.fd.as_raw_fd()),
            c.buf[c.sent..c.len].as_ptr(),
            (c.len - c.sent) as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(((i as u64) << 1) | 1)
    };
    let accept = ring_io_ops::Accept::new(Fd(listener.as_raw_fd()))
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(ACCEPT);
    let mut ring = Builder::new(256).build()?;
    let _ = ready.send(());
    // Each connection has one request in flight at a time, and its buffer
    // (on the heap, so it stays put when `all` grows) lives until its recv
    // returns 0, or forever after an error.
    let mut all: Vec<Option<Conn>> = Vec::with_capacity(conns);
    // SAFETY: an accept without a peer address carries no pointers.
    unsafe { ring.sq().push(accept) }.expect("fits the SQ");
    let (mut accepted, mut open, mut total) = (0, 0, 0u64);
    let mut cqes = Vec::with_capacity(256);
    let result = (|| {
        while accepted < conns || open > 0 {
            ring.submitter().submit_and_wait(1)?;
            cqes.clear();
            // `result()`: an error as an errno (`i32::MIN` too, whose
            // negation would overflow), a count or fd as a `u32`.
            cqes.extend(ring.cq().map(|c| (c.user_data(), c.result())));
            let mut sq = ring.sq();
            for &(ud, res) in &cqes {
                let res = res.map_err(io::Error::from)?;
                if ud == ACCEPT {
                    // SAFETY: the accept returned a new fd that nothing else
                    // owns (a non-negative `i32`: the cast is exact).
                    let fd = unsafe { OwnedFd::from_raw_fd(res as i32) };
                    let i = all.len();
                    all.push(Some(Conn {
                        fd,
                        buf: vec![0; 16 * 1024],
                        len: 0,
                        sent: 0,
                    }));
                    let c = all[i].as_mut().expect("just pushed");
                    // SAFETY: the recv targets the connection's own buffer
                    // (see `all`).
                    unsafe { sq.push(recv(i, c)) }.expect("fits the SQ");
                    accepted += 1;
                    open += 1;
                    if accepted < conns {
                        // SAFETY: as above.
                        unsafe { sq.push(accept) }.expect("fits the SQ");
                    }
                    continue;
                }
                let i = (ud >> 1) as usize;
                let c = all[i].as_mut().expect("a live connection");
                if ud & 1 == 0 {
                    if res == 0 {
                        all[i] = None;
                        open -= 1;
                        continue;
                    }
                    (c.len, c.sent) = (res as usize, 0);
                } else {
                    c.sent += res as usize;
                    total += res as u64;
                }
                let next = if c.sent < c.len {
                    send(i, c)
                } else {
                    recv(i, c)
                };
                // SAFETY: the connection's previous request has completed;
                // the next targets its own buffer (see `all`).
                unsafe { sq.push(next) }.expect("fits the SQ");
            }
        }
        Ok(total)
    })();
    if result.is_err() {
        // Requests may still be in flight: their buffers must not be freed.
        std::mem::forget(all);
    }
    result
}

/// Round trips per second of [`ring_echo_server`].
fn ring_echo(trips: usize) -> f64 {
    let took = echo_round(CLIENTS, trips, ring_echo_server);
    (CLIENTS * trips) as f64 / took.as_secs_f64()
}

/// Prints the Proactor tables.
pub(crate) fn rows(rounds: usize, quick: bool, want: &dyn Fn(&str) -> bool) {
    // (name, (reads, in batches, with ProactorConfig::spin)).
    let rows = [
        ("proactor/nop/qd32", (false, false, false)),
        ("proactor/nop/batch32", (false, true, false)),
        ("proactor/read4k/qd32", (true, false, false)),
        ("proactor/read4k/batch32", (true, true, false)),
        ("proactor/nop/qd32/spin50us", (false, false, true)),
        ("proactor/read4k/qd32/spin50us", (true, false, true)),
    ];
    let names = rows.map(|(n, _)| n);
    if names.iter().any(|n| want(n)) {
        // The default configuration, sized for 32 in flight.
        let config = ProactorConfig::new(DEPTH as u32);
        let plain = Proactor::new(config.clone()).expect("proactor");
        let spinning = Proactor::new(config.spin(Duration::from_micros(50))).expect("proactor");
        let mut ring = Builder::new(DEPTH as u32).build().expect("ring setup");
        let raw_bufs = file_io::Buffers::new();
        let mut bufs: Vec<Vec<u8>> = (0..DEPTH).map(|_| Vec::with_capacity(BLOCK)).collect();
        println!("table\tThe Proactor's futures against the raw ring");
        println!("row\tProactor ns/op\tring ns/op\tratio ring/Proactor");
        for (name, (read, batch, spin)) in rows {
            if !want(name) {
                continue;
            }
            let p = if spin { &spinning } else { &plain };
            let t = if read {
                let f = file_io::test_file();
                file_io::alternate_n(
                    rounds,
                    OPS,
                    &mut [
                        &mut |n| proactor_reads(p, f, &mut bufs, Reads::Blocks, DEPTH, batch, n),
                        &mut |n| file_io::ring_reads(&mut ring, f, &raw_bufs, DEPTH, batch, n),
                    ],
                )
            } else {
                file_io::alternate_n(
                    rounds,
                    OPS,
                    &mut [&mut |n| proactor_nops(p, DEPTH, batch, n), &mut |n| {
                        ring_nops(&mut ring, DEPTH, batch, n)
                    }],
                )
            };
            println!("{name}\t{:.1}\t{:.1}\t{:.3}", t[0], t[1], t[1] / t[0]);
        }
        println!(
            "note\tNOPs and 4 KiB reads (the read4k file and offsets): on the Proactor, futures \
             (`nop()`, `read(&Arc<File>, Vec, offset)` with one buffer per slot, reused) polled by a \
             minimal block_on that polls every op in flight at each wake-up (like \
             join_all); on the raw ring, the loop of the read4k \
             rows. qd{DEPTH}: {DEPTH} in flight, each refilled as it completes (the ring waits \
             for one completion per enter); batch{DEPTH}: {DEPTH} submitted, all waited for, \
             then the next {DEPTH}. Both with the fast defaults. ratio = ring time / Proactor \
             time, the Proactor's share of the raw ring's ops/s (target: at least 0.5)."
        );
        println!(
            "note\tWhat bounds the NOP rows: the caller that waits drives the ring itself \
             (one io_uring_enter per batch, no thread wake-up), so what is left is each op's \
             bookkeeping (slot, queue, the Proactor's mutex taken once per op and once per \
             turn, dispatch, wakers): the Proactors' callgrind table below has its \
             user-space instructions per NOP against the raw ring's; a NOP is all \
             bookkeeping, a read much less so. The /spin50us rows run the same with \
             ProactorConfig::spin(50 us), which \
             only matters for work the fallback thread drives (nobody waits on it): here the \
             caller drives, so they match the rows without it."
        );
    }
    let name = "proactor/echo";
    if want(name) {
        let (echo_rounds, trips) = if quick { (3, 500) } else { (7, 2000) };
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        proactor_echo(trips / 8);
        ring_echo(trips / 8);
        for round in 0..echo_rounds {
            if round % 2 == 0 {
                ours.push(proactor_echo(trips));
                raw.push(ring_echo(trips));
            } else {
                raw.push(ring_echo(trips));
                ours.push(proactor_echo(trips));
            }
        }
        let (ours, raw) = (median(ours), median(raw));
        println!("table\tEcho round trips");
        println!("row\tProactor round trips/s\tring round trips/s\tratio Proactor/ring");
        println!(
            "{name}/{CLIENTS}x{MSG}B\t{ours:.0}\t{raw:.0}\t{:.3}",
            ours / raw
        );
        println!(
            "note\tA loopback TCP echo server: the echo example (`examples/echo.rs`: a \
             Proactor's TcpListener, its incoming connections one task each under \
             `for_each_concurrent` in `block_on`, TcpStream read and write_all futures) against \
             a single-threaded loop on the raw ring (accept, recv and send SQEs, one request in \
             flight per connection). The same driver for both: {CLIENTS} client threads, each \
             doing {trips} blocking write + read round trips of {MSG} bytes; round trips/s = \
             all round trips / time from the first connect to the last close. Median of \
             {echo_rounds} alternating rounds, each with a new server. ratio = Proactor / ring \
             (target: at least 0.5)."
        );
    }
}
