//! The `peers/*` workloads on compio 0.19 (its io_uring driver), as its
//! docs write them: `Runtime::block_on`, `compio::runtime::spawn` for
//! concurrent tasks, owned buffers (`AsyncReadAt`, `AsyncRead`,
//! `AsyncWriteExt`), and for the NOP it lacks, its extension point: an
//! `OpCode` submitted with `compio::runtime::submit`.

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::mpsc::Sender;

use compio::BufResult;
use compio::driver::{OpCode, OpEntry};
use compio::fs::File;
use compio::io::{AsyncRead, AsyncReadAt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::Runtime;

use super::{check_read, share};
use crate::io::{BLOCK, Reads, TestFile};

/// IORING_OP_NOP as a compio operation.
struct Nop;

// SAFETY: the entry carries no pointers, so it stays valid for as long as
// the kernel holds it.
unsafe impl OpCode for Nop {
    type Control = ();

    fn create_entry(&mut self, _: &mut ()) -> OpEntry {
        io_uring::opcode::Nop::new().build().into()
    }
}

/// One NOP.
async fn nop() {
    let BufResult(res, _) = compio::runtime::submit(Nop).await;
    res.expect("nop");
}

/// `ops` NOPs, `depth` in flight.
pub(super) fn nops(rt: &Runtime, depth: usize, ops: u64) {
    rt.block_on(async {
        if depth == 1 {
            for _ in 0..ops {
                nop().await;
            }
            return;
        }
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                compio::runtime::spawn(async move {
                    for _ in share(t, depth, ops) {
                        nop().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
}

/// Reads `ks` of `f` (`what`: where they land) through `file`, one at a
/// time, into one buffer.
async fn read_each(file: &File, f: &TestFile, what: Reads, ks: impl Iterator<Item = u64>) {
    let mut buf = Vec::with_capacity(BLOCK);
    for k in ks {
        // compio reads into the spare capacity, after what the Vec holds.
        buf.clear();
        let BufResult(res, back) = file.read_at(buf, f.offset(what, k)).await;
        check_read(f, what, k, res, &back);
        buf = back;
    }
}

/// `ops` 4 KiB reads of `f` (`what`: where they land), `depth` in flight.
pub(super) fn reads(rt: &Runtime, f: &'static TestFile, what: Reads, depth: usize, ops: u64) {
    rt.block_on(async {
        let dup = f.file.try_clone().expect("dup");
        // SAFETY: the fd is a fresh dup that nothing else owns.
        let file = unsafe { File::from_raw_fd(dup.into_raw_fd()) };
        if depth == 1 {
            read_each(&file, f, what, 0..ops).await;
        } else {
            // A compio `File` is a shared handle: each task holds a clone.
            let tasks: Vec<_> = (0..depth)
                .map(|t| {
                    let file = file.clone();
                    compio::runtime::spawn(async move {
                        read_each(&file, f, what, share(t, depth, ops)).await
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
        }
        file.close().await.expect("close");
    });
}

/// Echoes one connection until the peer closes it; returns the bytes.
async fn echo(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut total = 0;
    loop {
        // compio reads into the spare capacity, after what the Vec holds.
        buf.clear();
        let BufResult(res, back) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(total);
        }
        let BufResult(res, back) = stream.write_all(back).await;
        res?;
        total += n as u64;
        buf = back;
    }
}

/// The echo server (see [`crate::proactor::EchoServer`]).
pub(super) fn echo_server(
    listener: TcpListener,
    conns: usize,
    ready: Sender<()>,
) -> io::Result<u64> {
    Runtime::new()?.block_on(async move {
        let listener = compio::net::TcpListener::from_std(listener)?;
        let _ = ready.send(());
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (stream, _) = listener.accept().await?;
            tasks.push(compio::runtime::spawn(echo(stream)));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("echo task")?;
        }
        Ok(total)
    })
}
