//! A TCP echo server on a `LocalProactor`: one thread, no executor crate.
//! Each connection is a task (`LocalProactor::spawn`) on a
//! `net::TcpStream` of the LocalProactor, polled only when one of its ops
//! completes; the LocalProactor's `block_on` runs the accept loop and the
//! tasks, and submits and reaps for all of them in one `io_uring_enter`
//! per turn.
//!
//! `cargo run --release -p ring-io-proactor --example echo_local [ADDR]`

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use futures_util::StreamExt;
use ring_io_proactor::net::{TcpListener, TcpStream};
use ring_io_proactor::{IoBuf, LocalProactor, ProactorConfig};

/// Echoes what arrives on `conn` until the peer closes; returns the bytes.
async fn echo(conn: TcpStream<LocalProactor>) -> io::Result<u64> {
    let (mut buf, mut total) = (vec![0u8; 16 << 10], 0);
    loop {
        let (n, b) = conn.read(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(total);
        }
        let (res, b) = conn.write_all(b.slice(..n)).await;
        res?;
        buf = b.into_inner();
        total += n as u64;
    }
}

/// Serves `listener` (`conns` connections, or forever): returns the bytes
/// echoed.
pub(crate) fn serve(listener: std::net::TcpListener, conns: Option<usize>) -> io::Result<u64> {
    let p = LocalProactor::new(ProactorConfig::new(256))?;
    let listener = TcpListener::from_std(&p, listener)?;
    let total = Rc::new(Cell::new(0));
    p.block_on(async {
        // One multishot accept for every connection (Linux 5.19; before,
        // one accept at a time).
        let mut incoming = listener.incoming().take(conns.unwrap_or(usize::MAX));
        let mut tasks = Vec::new();
        while let Some(conn) = incoming.next().await {
            let (conn, total) = (conn?, total.clone());
            let task = p.spawn(async move {
                match echo(conn).await {
                    Ok(n) => total.set(total.get() + n),
                    Err(e) => eprintln!("a connection failed: {e}"),
                }
            });
            if conns.is_some() {
                tasks.push(task);
            } // else detached: it runs until its client leaves.
        }
        // Every connection served (the tasks not awaited would be dropped
        // when `block_on` returns).
        for task in tasks {
            task.await;
        }
        Ok(total.get())
    })
}

#[allow(dead_code, reason = "the tests include this file for `serve`")]
fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7878".into());
    let listener = std::net::TcpListener::bind(&addr)?;
    eprintln!("echoing on {} (one thread)", listener.local_addr()?);
    serve(listener, None).map(drop)
}
