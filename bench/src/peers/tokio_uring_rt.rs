//! The `peers/*` workloads on tokio-uring 0.5, as its docs write them:
//! `block_on` (what `tokio_uring::start` runs), `tokio_uring::spawn` for
//! concurrent tasks, owned buffers.

use std::io;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::mpsc::Sender;

use tokio_uring::Runtime;
use tokio_uring::fs::File;
use tokio_uring::net::TcpStream;

use super::{check_read, share};
use crate::io::{BLOCK, Reads, TestFile};

/// `ops` NOPs (`tokio_uring::no_op`), `depth` in flight.
pub(super) fn nops(rt: &Runtime, depth: usize, ops: u64) {
    rt.block_on(async {
        if depth == 1 {
            for _ in 0..ops {
                tokio_uring::no_op().await.expect("nop");
            }
            return;
        }
        let tasks: Vec<_> = (0..depth)
            .map(|t| {
                tokio_uring::spawn(async move {
                    for _ in share(t, depth, ops) {
                        tokio_uring::no_op().await.expect("nop");
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
        buf.clear();
        let (res, back) = file.read_at(buf, f.offset(what, k)).await;
        check_read(f, what, k, res, &back);
        buf = back;
    }
}

/// `ops` 4 KiB reads of `f` (`what`: where they land), `depth` in flight.
pub(super) fn reads(rt: &Runtime, f: &'static TestFile, what: Reads, depth: usize, ops: u64) {
    rt.block_on(async {
        let file = Rc::new(File::from_std(f.file.try_clone().expect("dup")));
        if depth == 1 {
            read_each(&file, f, what, 0..ops).await;
        } else {
            let tasks: Vec<_> = (0..depth)
                .map(|t| {
                    let file = file.clone();
                    tokio_uring::spawn(async move {
                        read_each(&file, f, what, share(t, depth, ops)).await
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
        }
        Rc::try_unwrap(file)
            .unwrap_or_else(|_| panic!("a task still holds the file"))
            .close()
            .await
            .expect("close");
    });
}

/// Echoes one connection until the peer closes it; returns the bytes.
async fn echo(stream: TcpStream) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut total = 0;
    loop {
        buf.clear();
        let (res, back) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(total);
        }
        let (res, back) = stream.write_all(back).await;
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
    tokio_uring::start(async move {
        let listener = tokio_uring::net::TcpListener::from_std(listener);
        let _ = ready.send(());
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (stream, _) = listener.accept().await?;
            tasks.push(tokio_uring::spawn(echo(stream)));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("echo task")?;
        }
        Ok(total)
    })
}
