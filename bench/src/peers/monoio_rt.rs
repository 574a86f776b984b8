//! The `peers/*` workloads on monoio 0.2 with its io_uring driver
//! (`RuntimeBuilder::<IoUringDriver>`), as its docs write them:
//! `block_on`, `monoio::spawn` for concurrent tasks, owned buffers
//! (`AsyncReadRent`, `AsyncWriteRentExt`).

use std::io;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::mpsc::Sender;

use monoio::fs::File;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::{IoUringDriver, Runtime, RuntimeBuilder};

use super::{check_read, share};
use crate::io::{BLOCK, Reads, TestFile};

/// A monoio runtime on its io_uring driver, default settings.
pub(super) fn runtime() -> io::Result<Runtime<IoUringDriver>> {
    RuntimeBuilder::<IoUringDriver>::new().build()
}

/// Runs `depth` tasks, task `t` running `task(file, t)`, on `rt` with a
/// monoio `File` of `f` (opened from a dup of its fd), and waits for all.
fn with_tasks<Fut: Future<Output = ()> + 'static>(
    rt: &mut Runtime<IoUringDriver>,
    f: &TestFile,
    depth: usize,
    task: impl Fn(Rc<File>, usize) -> Fut,
) {
    rt.block_on(async {
        let file = Rc::new(File::from_std(f.file.try_clone().expect("dup")).expect("file"));
        if depth == 1 {
            task(file.clone(), 0).await;
        } else {
            let tasks: Vec<_> = (0..depth)
                .map(|t| monoio::spawn(task(file.clone(), t)))
                .collect();
            for t in tasks {
                t.await;
            }
        }
        Rc::try_unwrap(file)
            .unwrap_or_else(|_| panic!("a task still holds the file"))
            .close()
            .await
            .expect("close");
    });
}

/// `ops` 4 KiB reads of `f` (`what`: where they land), `depth` in flight.
pub(super) fn reads(
    rt: &mut Runtime<IoUringDriver>,
    f: &'static TestFile,
    what: Reads,
    depth: usize,
    ops: u64,
) {
    with_tasks(rt, f, depth, |file, t| async move {
        let mut buf = Vec::with_capacity(BLOCK);
        for k in share(t, depth, ops) {
            buf.clear();
            let (res, back) = file.read_at(buf, f.offset(what, k)).await;
            check_read(f, what, k, res, &back);
            buf = back;
        }
    });
}

/// Echoes one connection until the peer closes it; returns the bytes.
async fn echo(mut stream: TcpStream) -> io::Result<u64> {
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
    runtime()?.block_on(async move {
        let listener = monoio::net::TcpListener::from_std(listener)?;
        let _ = ready.send(());
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (stream, _) = listener.accept().await?;
            tasks.push(monoio::spawn(echo(stream)));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await?;
        }
        Ok(total)
    })
}
