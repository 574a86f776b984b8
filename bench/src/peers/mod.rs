//! The `peers/*` rows (the bench crate's feature `peers`, which
//! `cargo xtask bench` turns on): the same workloads on the raw io-uring
//! crate (the baseline), ring's Proactor and three io_uring runtimes,
//! tokio-uring, monoio (its io_uring driver) and compio, each written as
//! its own users would write it (one module per runtime).
//!
//! Every system runs in the same process, in rounds that rotate which one
//! goes first; each number is the median of its rounds, and the table
//! shows ratio = io-uring time / system time (above 1: faster than the raw
//! crate), with the 1-minute load average.
//!
//! - NOP and read rows: QD1 is one op at a time (a loop awaiting each op
//!   in the runtime's `block_on`); QD32 keeps 32 ops in flight: 32
//!   spawned tasks, each awaiting its share of the ops in turn, on the
//!   runtimes; on the Proactor, 32 op futures polled by one future on
//!   ring's `block_on` (each slot refilled as its op completes, as in the
//!   `proactor/*` rows); on the io-uring crate, 32 SQEs, each slot
//!   refilled as its completion is reaped. monoio has no NOP: its nop
//!   cells are n/a. The read rows: 4 KiB reads of the read4k rows' file,
//!   at its offsets (`read4k`) or all at its end (`read0`: each returns 0
//!   bytes, the same request from every system, monoio included).
//! - Echo rows: a loopback TCP echo server on each system, and the same
//!   std-thread client for all ([`proactor::clients`]).

mod compio_rt;
mod monoio_rt;
mod tokio_uring_rt;

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::Sender;
use std::time::Instant;

use io_uring::{IoUring, opcode, types};
use ring_io_proactor::{LocalProactor, Proactor, ProactorConfig};

use crate::io::{self as file_io, BLOCK, DEPTH, Reads, TestFile};
use crate::median;
use crate::proactor::{self, EchoServer, MSG};

/// Ops per timed sample in the NOP and read rows.
const OPS: u64 = 1 << 13;
/// Echo round trips per connection per timed sample, by connections.
const TRIPS: [(usize, u64); 2] = [(1, 2000), (16, 250)];

/// The columns after the baseline's ns/op: each system's ratio.
const SYSTEMS: [&str; 5] = [
    "Proactor",
    "LocalProactor",
    "tokio-uring",
    "monoio",
    "compio",
];

/// The 1-minute load average, as `/proc/loadavg` shows it.
fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Warms each contender up with `n / 8`, then runs `rounds` rounds of all
/// of them with `n`, rotating which goes first. Each call returns its own
/// ns/op; returns each contender's median.
fn rotate(rounds: usize, n: u64, fs: &mut [&mut dyn FnMut(u64) -> f64]) -> Vec<f64> {
    for f in fs.iter_mut() {
        f((n / 8).max(1));
    }
    let mut times = vec![Vec::with_capacity(rounds); fs.len()];
    for round in 0..rounds {
        for i in 0..fs.len() {
            let c = (round + i) % fs.len();
            times[c].push(fs[c](n));
        }
    }
    times.into_iter().map(median).collect()
}

/// Runs `run(ops)` and returns its ns per op.
fn per_op(ops: u64, run: impl FnOnce(u64)) -> f64 {
    let start = Instant::now();
    run(ops);
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// The op numbers task `task` of `tasks` runs, of `ops` in all: every
/// `tasks`-th from `task` (so together they run each once).
fn share(task: usize, tasks: usize, ops: u64) -> impl Iterator<Item = u64> {
    (task as u64..ops).step_by(tasks)
}

/// `ops` reads of the test file on a new monoio runtime (`what`: where
/// they land), `depth` in flight: for `ring-bench --callgrind read0-monoio`.
pub(crate) fn monoio_reads(what: Reads, depth: usize, ops: u64) {
    let mut rt = monoio_rt::runtime().expect("monoio");
    monoio_rt::reads(&mut rt, file_io::test_file(), what, depth, ops);
}

/// Asserts that read `k` of `f` (`what`: where it landed) returned what it
/// should (see [`TestFile::check`]).
fn check_read(f: &TestFile, what: Reads, k: u64, res: io::Result<usize>, buf: &[u8]) {
    f.check(what, k, res.expect("read"), buf);
}

/// `ops` NOPs on the io-uring crate, `depth` in flight.
fn uring_nops(ring: &mut IoUring, depth: usize, ops: u64) {
    // SAFETY: a NOP carries no pointers.
    unsafe {
        file_io::uring_depth(
            ring,
            depth,
            ops,
            |_, _| opcode::Nop::new().build(),
            |_, _, res| assert_eq!(res, 0),
        );
    }
}

/// The echo server on the io-uring crate: the raw ring's server of the
/// `proactor/echo` row (accept SQEs one at a time, then per connection a
/// recv into its own 16 KiB buffer, a send of what arrived, again for the
/// rest of a short send, and a recv again; a recv of 0 closes it), with the
/// fast setup flags of the other io-uring rows.
fn uring_echo_server(listener: TcpListener, conns: usize, ready: Sender<()>) -> io::Result<u64> {
    struct Conn {
        fd: OwnedFd,
        buf: Vec<u8>,
        len: usize,
        sent: usize,
    }
    const ACCEPT: u64 = u64::MAX;
    let recv = |i: usize, c: &mut Conn| {
        opcode::Recv::new(
            types::Fd(c.fd.as_raw_fd()),
            c.buf.as_mut_ptr(),
            c.buf.len() as u32,
        )
        .build()
        .user_data((i as u64) << 1)
    };
    let send = |i: usize, c: &Conn| {
        opcode::Send::new(
            types::Fd(c.fd.as_raw_fd()),
            c.buf[c.sent..c.len].as_ptr(),
            (c.len - c.sent) as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(((i as u64) << 1) | 1)
    };
    let accept = opcode::Accept::new(
        types::Fd(listener.as_raw_fd()),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
    .flags(libc::SOCK_CLOEXEC)
    .build()
    .user_data(ACCEPT);
    let mut ring = file_io::uring(256);
    let _ = ready.send(());
    // Each connection has one request in flight at a time, and its buffer
    // (on the heap, so it stays put when `all` grows) lives until its recv
    // returns 0, or forever after an error.
    let mut all: Vec<Option<Conn>> = Vec::with_capacity(conns);
    // SAFETY: an accept without a peer address carries no pointers.
    unsafe { ring.submission().push(&accept) }.expect("fits the SQ");
    let (mut accepted, mut open, mut total) = (0, 0, 0u64);
    let mut cqes = Vec::with_capacity(256);
    let result = (|| {
        while accepted < conns || open > 0 {
            ring.submit_and_wait(1)?;
            cqes.clear();
            cqes.extend(ring.completion().map(|c| (c.user_data(), c.result())));
            let mut sq = ring.submission();
            for &(ud, res) in &cqes {
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res));
                }
                if ud == ACCEPT {
                    // SAFETY: the accept returned a new fd that nothing else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(res) };
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
                    unsafe { sq.push(&recv(i, c)) }.expect("fits the SQ");
                    accepted += 1;
                    open += 1;
                    if accepted < conns {
                        // SAFETY: as above.
                        unsafe { sq.push(&accept) }.expect("fits the SQ");
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
                unsafe { sq.push(&next) }.expect("fits the SQ");
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

/// One echo sample: ns per round trip of `serve` with `conns` connections
/// of `trips` round trips each.
fn echo_ns(conns: usize, trips: u64, serve: EchoServer) -> f64 {
    let took = proactor::echo_round(conns, trips as usize, serve);
    took.as_nanos() as f64 / (conns as u64 * trips) as f64
}

/// CPU-bound processes (this binary with `--burn`) that run while the
/// loaded table is measured; killed when dropped.
struct Burners(Vec<std::process::Child>);

impl Burners {
    fn start(n: usize) -> Burners {
        let exe = std::env::current_exe().expect("the bench's own path");
        Burners(
            (0..n)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .arg("--burn")
                        .spawn()
                        .expect("a CPU-bound process")
                })
                .collect(),
        )
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the monoio column shows on the nop rows: monoio has no NOP (the
/// table's first note says so and points at the read0 rows).
const NO_NOP: &str = "n/a\u{b9}";

/// Prints the `peers/*` table: `rounds` rounds per row (`quick`: fewer).
/// With `load` > 0, the same rows measured beside `load` CPU-bound
/// processes, as the `peers-loaded/*` table.
pub(crate) fn rows(quick: bool, load: usize, want: &dyn Fn(&str) -> bool) {
    let names = [
        "peers/nop/qd1",
        "peers/nop/qd32",
        "peers/read0/qd1",
        "peers/read0/qd32",
        "peers/read4k/qd1",
        "peers/read4k/qd32",
        "peers/echo/1conn",
        "peers/echo/16conn",
    ];
    if !names.iter().any(|n| want(n)) {
        return;
    }
    // The loaded table's rows: named apart, so nothing judges them as the
    // quiet table's.
    let prefix = if load > 0 { "peers-loaded" } else { "peers" };
    let row_name = |name: &str| name.replacen("peers", prefix, 1);
    let burners = Burners::start(load);
    if load > 0 {
        // The burners reach the run queue before the first sample.
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let rounds = if quick { 3 } else { 11 };
    let (ops, trip_scale) = if quick { (OPS / 4, 4) } else { (OPS, 1) };
    let load_before = load1();
    let start = Instant::now();
    // Every system's runtime (or ring) is made once, outside the timing.
    let mut raw = file_io::uring(DEPTH as u32);
    // The default configuration, sized for 32 in flight.
    let p = Proactor::new(ProactorConfig::new(DEPTH as u32)).expect("proactor");
    let mut bufs: Vec<Vec<u8>> = (0..DEPTH).map(|_| Vec::with_capacity(BLOCK)).collect();
    let local = LocalProactor::new(ProactorConfig::new(DEPTH as u32)).expect("LocalProactor");
    let mut local_bufs: Vec<Vec<u8>> = (0..DEPTH).map(|_| Vec::with_capacity(BLOCK)).collect();
    let tokio_uring = tokio_uring::Runtime::new(&tokio_uring::builder()).expect("tokio-uring");
    let mut monoio = monoio_rt::runtime().expect("monoio");
    let compio = compio::runtime::Runtime::new().expect("compio");
    let f = file_io::test_file();

    // The table's lines and the note's ns/op, row by row.
    let mut lines = Vec::new();
    let mut times = Vec::new();
    // A row: the io-uring crate's ns/op `base`, then each of `SYSTEMS`' ns/op
    // (`None`: it cannot run the row), shown as ratio = base / its time.
    let mut push = |name: &str, base: f64, each: [Option<f64>; SYSTEMS.len()]| {
        let ratios: Vec<String> = each
            .iter()
            .map(|t| t.map_or_else(|| NO_NOP.to_string(), |t| format!("{:.3}", base / t)))
            .collect();
        lines.push(format!(
            "{}\t{base:.1}\t{}",
            row_name(name),
            ratios.join("\t")
        ));
        let ns: Vec<String> = SYSTEMS
            .iter()
            .zip(each)
            .map(|(s, t)| t.map_or_else(|| format!("{s} n/a"), |t| format!("{s} {t:.0}")))
            .collect();
        times.push(format!(
            "{}: io-uring {base:.0}, {}",
            row_name(name),
            ns.join(", ")
        ));
    };
    for depth in [1, DEPTH] {
        let name = format!("peers/nop/qd{depth}");
        if !want(&name) {
            continue;
        }
        // monoio has no NOP (see NO_NOP): the read0 rows compare it.
        let t = rotate(
            rounds,
            ops,
            &mut [
                &mut |n| per_op(n, |n| uring_nops(&mut raw, depth, n)),
                &mut |n| per_op(n, |n| proactor::proactor_nops(&p, depth, false, n)),
                &mut |n| per_op(n, |n| proactor::local_nops(&local, depth, n)),
                &mut |n| per_op(n, |n| tokio_uring_rt::nops(&tokio_uring, depth, n)),
                &mut |n| per_op(n, |n| compio_rt::nops(&compio, depth, n)),
            ],
        );
        push(
            &name,
            t[0],
            [Some(t[1]), Some(t[2]), Some(t[3]), None, Some(t[4])],
        );
    }
    let raw_bufs = file_io::Buffers::new();
    for (label, what) in [("read0", Reads::AtEnd), ("read4k", Reads::Blocks)] {
        for depth in [1, DEPTH] {
            let name = format!("peers/{label}/qd{depth}");
            if !want(&name) {
                continue;
            }
            let t = rotate(
                rounds,
                ops,
                &mut [
                    &mut |n| {
                        per_op(n, |n| {
                            file_io::uring_reads(&mut raw, f, &raw_bufs, what, depth, n)
                        })
                    },
                    &mut |n| {
                        per_op(n, |n| {
                            proactor::proactor_reads(&p, f, &mut bufs, what, depth, false, n)
                        })
                    },
                    &mut |n| {
                        per_op(n, |n| {
                            proactor::local_reads(&local, f, &mut local_bufs, what, depth, n)
                        })
                    },
                    &mut |n| {
                        per_op(n, |n| {
                            tokio_uring_rt::reads(&tokio_uring, f, what, depth, n)
                        })
                    },
                    &mut |n| per_op(n, |n| monoio_rt::reads(&mut monoio, f, what, depth, n)),
                    &mut |n| per_op(n, |n| compio_rt::reads(&compio, f, what, depth, n)),
                ],
            );
            push(&name, t[0], [1, 2, 3, 4, 5].map(|i| Some(t[i])));
        }
    }
    for (conns, trips) in TRIPS {
        let name = format!("peers/echo/{conns}conn");
        if !want(&name) {
            continue;
        }
        let servers: [EchoServer; 6] = [
            uring_echo_server,
            proactor::proactor_echo_server,
            proactor::local_echo_server,
            tokio_uring_rt::echo_server,
            monoio_rt::echo_server,
            compio_rt::echo_server,
        ];
        let mut runs: Vec<Box<dyn FnMut(u64) -> f64>> = servers
            .into_iter()
            .map(|serve| Box::new(move |n| echo_ns(conns, n, serve)) as Box<dyn FnMut(u64) -> f64>)
            .collect();
        let mut fs: Vec<&mut dyn FnMut(u64) -> f64> = runs
            .iter_mut()
            .map(|r| &mut **r as &mut dyn FnMut(u64) -> f64)
            .collect();
        let t = rotate(rounds, trips / trip_scale, &mut fs);
        push(&name, t[0], [1, 2, 3, 4, 5].map(|i| Some(t[i])));
    }
    let load_after = load1();
    drop(burners);
    let split = (load == 0 && want("peers/read0/qd1")).then(|| {
        split_rows(
            quick,
            &mut [
                ("io-uring", &mut |n| {
                    file_io::uring_reads(&mut raw, f, &raw_bufs, Reads::AtEnd, 1, n)
                }),
                ("Proactor", &mut |n| {
                    proactor::proactor_reads(&p, f, &mut bufs, Reads::AtEnd, 1, false, n)
                }),
                ("LocalProactor", &mut |n| {
                    proactor::local_reads(&local, f, &mut local_bufs, Reads::AtEnd, 1, n)
                }),
                ("monoio", &mut |n| {
                    monoio_rt::reads(&mut monoio, f, Reads::AtEnd, 1, n)
                }),
            ],
        )
    });
    let beside = if load > 0 {
        format!(", beside {load} CPU-bound processes")
    } else {
        String::new()
    };
    println!(
        "table\tPeer runtimes against the io-uring crate{beside} (1-minute load average \
         {load_before} before the table, {load_after} after)"
    );
    println!("row\tio-uring ns/op\t{}", SYSTEMS.join("\t"));
    for l in &lines {
        println!("{l}");
    }
    println!(
        "note\t{NO_NOP} monoio has no NOP, and no public way to submit an op of one's own: \
         the read0 rows, where every system does the same reads, compare it on the cheapest op \
         it has."
    );
    println!(
        "note\tEach system in the same process, {rounds} rounds rotating which goes first, \
         medians; ratio = io-uring time / the system's time: above 1.00 means faster than the \
         raw io-uring crate (0.7, with the fast setup flags of the rows above: COOP_TASKRUN, \
         TASKRUN_FLAG, SUBMIT_ALL, NO_SQARRAY, registered ring fd). tokio-uring 0.5, monoio \
         0.2 (`RuntimeBuilder::<IoUringDriver>`) and compio 0.19 with their default setup; \
         each runtime is built once per run, outside the timing (`tokio_uring::start` is \
         `Runtime::new` + `block_on`), and every sample is one `block_on`. nop, read0 and \
         read4k: {ops} ops per sample. qd1: a loop awaiting one op at a time in `block_on`; qd{DEPTH}: \
         {DEPTH} ops in flight: {DEPTH} spawned tasks, each awaiting its share of the ops \
         in turn, on the runtimes; {DEPTH} op futures polled by one future on ring's \
         `block_on`, each refilled as it completes, on the Proactor \
         (`ProactorConfig::new({DEPTH})`, the default configuration), and the same on a \
         `LocalProactor` (one thread: `LocalProactor::block_on`); {DEPTH} SQEs, each slot refilled as its \
         completion is reaped, on the io-uring crate. NOPs: `Proactor::nop`, \
         `tokio_uring::no_op`, compio through its documented extension point (an `OpCode` \
         building IORING_OP_NOP, `compio::runtime::submit`); monoio: none ({NO_NOP}). read4k: \
         the file, offsets and checks of the read4k rows, one 4 KiB `Vec` per task (per slot) \
         reused, each peer's `File` opened from a dup of the file's fd. read0: the same reads \
         (4 KiB asked for, the same buffers and fds) with every offset at the file's end \
         ({end} MiB), so each returns 0 bytes: one IORING_OP_READ per op from every system, \
         the io-uring crate's included, with no page to look up and nothing to copy, what \
         read4k costs less the kernel's copy (reads of length 0 would not do: ring's \
         Proactors refuse a read into a buffer with no room without submitting it). echo: a loopback TCP echo server per system, started anew for every sample (its \
         setup not timed): accept, then a task (a state machine on the io-uring crate) per \
         connection that reads into a 16 KiB buffer and writes back what arrived, until the \
         peer closes (the Proactor: the echo example, `examples/echo.rs`; the LocalProactor: \
         a task per connection spawned on it (`LocalProactor::spawn`), as on monoio); the same client \
         for all: N std threads, one connection each, {MSG}-byte blocking write + read round \
         trips ({} per connection per sample for 1conn, {} for 16conn); ns/op = the clients' \
         time / round trips. {} s for the table.",
        TRIPS[0].1 / trip_scale,
        TRIPS[1].1 / trip_scale,
        start.elapsed().as_secs(),
        end = f.offset(Reads::AtEnd, 0) >> 20,
    );
    println!("note\tns/op (medians) in this run: {}.", times.join("; "));
    if let Some(split) = split {
        print!("{split}");
    }
    if load > 0 {
        println!(
            "note\tThe same rows, rounds and systems as the table above, measured while {load} \
             processes (this bench with `--burn`: a loop of arithmetic, no I/O) keep the CPUs \
             busy: each system shares the machine's {} CPUs with them, as a server does with \
             other work. Reported, not judged (the targets are judged on the quiet table).",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
}

/// This thread's user and kernel CPU time so far, in ns (`getrusage`).
fn thread_times() -> (f64, f64) {
    // SAFETY: `getrusage` writes the `rusage` it is given, nothing else.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
        ru
    };
    let ns = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

/// The read0/qd1 loop of each system run long enough for the kernel's
/// tick-sampled accounting to split its time between user space and the
/// kernel: rounds rotating which goes first, each system's user and
/// kernel time summed over its rounds (all of it on this thread: every
/// system drives the ring on the thread that awaits). Returns the table.
fn split_rows(quick: bool, systems: &mut [(&str, &mut dyn FnMut(u64))]) -> String {
    let (rounds, ops) = if quick { (2, 150_000) } else { (3, 1_500_000) };
    let mut sums = vec![(0.0, 0.0, 0.0); systems.len()];
    for (_, run) in systems.iter_mut() {
        run(ops / 10);
    }
    for round in 0..rounds {
        for i in 0..systems.len() {
            let c = (round + i) % systems.len();
            let (u0, k0) = thread_times();
            let start = Instant::now();
            (systems[c].1)(ops);
            let wall = start.elapsed().as_nanos() as f64;
            let (u1, k1) = thread_times();
            sums[c].0 += wall;
            sums[c].1 += u1 - u0;
            sums[c].2 += k1 - k0;
        }
    }
    let n = (rounds as u64 * ops) as f64;
    // The split's standard error: each tick samples the thread in user
    // space or in the kernel, a binomial draw.
    let hz = config_hz();
    let mut out = String::from(
        "table\tWhere a QD1 read's time goes: user space and the kernel (read0/qd1)\n\
         row\tns/op\tuser ns/op\tkernel ns/op\tsplit's std. error ns/op\n",
    );
    for ((name, _), (wall, user, kernel)) in systems.iter().zip(&sums) {
        let error = hz.map_or_else(
            || "-".to_string(),
            |hz| {
                let samples = (user + kernel) / 1e9 * hz;
                let p = user / (user + kernel);
                let ns_per_tick = 1e9 / hz;
                format!("{:.1}", ns_per_tick * (samples * p * (1.0 - p)).sqrt() / n)
            },
        );
        out += &format!(
            "split/read0/qd1/{name}\t{:.1}\t{:.1}\t{:.1}\t{error}\n",
            wall / n,
            user / n,
            kernel / n
        );
    }
    out += &format!(
        "note\tThe read0/qd1 loop of the peers table, {rounds} rounds of {ops} reads per system, \
         rotating which goes first; the user and kernel time of the thread that runs it \
         (getrusage RUSAGE_THREAD: every system drives the ring on the thread that awaits, \
         so its work is there), summed over the rounds, per op. The kernel splits a thread's \
         time between user space and the kernel by sampling it at each tick \
         (CONFIG_TICK_CPU_ACCOUNTING; {} ticks per second here), so the split is an \
         estimate, with the standard error shown, and the sum exact. The io-uring crate, the \
         LocalProactor and monoio each keep their ring to one thread. The Proactor's ring is \
         set up for any thread to submit: no COOP_TASKRUN, no DEFER_TASKRUN. The \
         LocalProactor's has DEFER_TASKRUN and SINGLE_ISSUER, the io-uring crate's \
         COOP_TASKRUN, and monoio's none of these (nor an eventfd: its `sync` feature is off \
         here).\n",
        hz.map_or_else(|| "unknown".to_string(), |hz| format!("{hz:.0}"))
    );
    out
}

/// The kernel's tick rate (`CONFIG_HZ`), from `/proc/config.gz` if the
/// kernel exposes its configuration (read with `zcat`).
fn config_hz() -> Option<f64> {
    let out = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))?
        .trim()
        .parse()
        .ok()
}
