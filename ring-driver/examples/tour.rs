//! A tour of ring on this kernel, in one screen: a submit/complete cycle, a
//! file read, a TCP echo over loopback, and what the kernel supports.
//!
//! Run: `cargo run --example tour`

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Instant;

use ring_io_driver::Ring;
use ring_io_ops::{Accept, Fd, Nop, Read, Recv, Send};
use ring_io_sys::Features;

#[path = "cli/mod.rs"]
#[allow(dead_code, reason = "each example uses part of it")]
mod cli;

use cli::{Context as _, Error};

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        return cli::usage("tour", "", "takes no arguments");
    }
    cli::exit("tour", tour())
}

fn tour() -> Result<(), Error> {
    let kernel = ring_io_driver::kernel_version().map_or("unknown".into(), |v| v.to_string());
    let mut ring = Ring::new(64).context("cannot set up a ring")?;
    println!("ring tour on Linux {kernel}");
    let defaults: Vec<&str> = ring.defaults().iter_names().map(|(name, _)| name).collect();
    println!(
        "  ring: {} SQ / {} CQ entries; defaults picked here: {}; registered ring fd: {}",
        ring.params().sq_entries(),
        ring.params().cq_entries(),
        if defaults.is_empty() {
            "none".to_string()
        } else {
            defaults.join(" ")
        },
        if ring.uses_registered_fd() {
            "yes"
        } else {
            "no"
        }
    );

    // 1. A submit/complete cycle: 32 NOPs, one enter, 32 completions.
    let start = Instant::now();
    {
        let mut sq = ring.sq();
        for i in 0..32 {
            // SAFETY: a NOP carries no pointers.
            unsafe { sq.push(Nop::new().build().user_data(i)) }.expect("64 free slots");
        }
    }
    let submitted = ring
        .submitter()
        .submit_and_wait(32)
        .context("cannot submit the NOPs")?;
    let sum: u64 = ring.cq().map(|cqe| cqe.user_data()).sum();
    println!(
        "\n1. submit/complete: {submitted} NOPs in one enter, 32 completions (user_data sum {sum}) in {:?}",
        start.elapsed()
    );

    // 2. A file read.
    let status = std::path::Path::new("/proc/self/status");
    let file = std::fs::File::open(status).map_err(|e| Error::at("cannot open", status, e))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: `buf` and `file` outlive the completion reaped just below.
    unsafe {
        ring.sq().push(
            Read::new(Fd(file.as_raw_fd()), buf.as_mut_ptr(), 256)
                .build()
                .user_data(100),
        )
    }
    .expect("room");
    ring.submitter()
        .submit_and_wait(1)
        .context("cannot submit the read")?;
    let cqe = ring.cq().next().expect("one completion");
    let n = cqe
        .result()
        .map_err(|e| Error::at("cannot read", status, e))? as usize;
    let first_line = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    println!("\n2. file read: {n} bytes of /proc/self/status, first line {first_line:?}");

    // 3. TCP echo over loopback: the server side runs on the ring.
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen on 127.0.0.1:0")?;
    let addr = listener
        .local_addr()
        .context("cannot read the listener's address")?;
    let client = std::thread::spawn(move || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.write_all(b"hello, ring")?;
        let mut back = [0u8; 11];
        stream.read_exact(&mut back)?;
        Ok(String::from_utf8_lossy(&back).into_owned())
    });
    // SAFETY: accept carries no buffer (no peer address asked for).
    unsafe {
        ring.sq()
            .push(Accept::new(Fd(listener.as_raw_fd())).build().user_data(200))
    }
    .expect("room");
    ring.submitter()
        .submit_and_wait(1)
        .context("cannot submit the accept")?;
    let conn = ring
        .cq()
        .next()
        .expect("accept")
        .result()
        .map_err(|e| Error::new(format!("cannot accept on {addr}: {e}")))? as i32;
    let mut msg = [0u8; 64];
    // SAFETY: `msg` outlives the recv completion reaped below.
    unsafe {
        ring.sq().push(
            Recv::new(Fd(conn), msg.as_mut_ptr(), 64)
                .build()
                .user_data(201),
        )
    }
    .expect("room");
    ring.submitter()
        .submit_and_wait(1)
        .context("cannot submit the recv")?;
    let got = ring
        .cq()
        .next()
        .expect("recv")
        .result()
        .map_err(|e| Error::new(format!("cannot receive on {addr}: {e}")))? as usize;
    // SAFETY: `msg` outlives the send completion reaped below.
    unsafe {
        ring.sq().push(
            Send::new(Fd(conn), msg.as_ptr(), got as u32)
                .build()
                .user_data(202),
        )
    }
    .expect("room");
    ring.submitter()
        .submit_and_wait(1)
        .context("cannot submit the send")?;
    let sent = ring
        .cq()
        .next()
        .expect("send")
        .result()
        .map_err(|e| Error::new(format!("cannot send on {addr}: {e}")))?;
    let echoed = client
        .join()
        .expect("client thread")
        .map_err(|e| Error::new(format!("the client of {addr} failed: {e}")))?;
    // SAFETY: closing the accepted connection, owned here.
    unsafe { libc::close(conn) };
    println!(
        "\n3. TCP echo on {addr}: accept, recv {got} bytes, send {sent} back; client read {echoed:?}"
    );

    // 4. What the kernel supports.
    let probe = ring.probe().context("cannot probe the opcodes")?;
    let features = ring.params().features();
    let names: Vec<&str> = Features::all()
        .iter_names()
        .filter(|(_, f)| features.contains(*f))
        .map(|(name, _)| name)
        .collect();
    let missing: Vec<String> = ring_io_ops::ALL
        .iter()
        .filter(|op| !probe.supports(op.code))
        .map(|op| format!("{} ({}.{})", op.builder, op.since.major, op.since.minor))
        .collect();
    println!(
        "\n4. this kernel: {} of {} opcodes supported",
        ring_io_ops::ALL.len() - missing.len(),
        ring_io_ops::ALL.len()
    );
    println!("   features: {}", names.join(" "));
    if missing.is_empty() {
        println!("   every opcode of Linux 6.18 is here");
    } else {
        println!("   missing: {}", missing.join(", "));
    }
    println!("\n(cargo run -p ring-io-driver --example probe prints the full table.)");
    Ok(())
}
