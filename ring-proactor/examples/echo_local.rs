//! A TCP echo server on a `LocalProactor`: one thread, no executor crate.
//! Each connection is a task (an `async` block); one future polls them
//! all on the LocalProactor's `block_on`, which submits and reaps for all
//! of them in one `io_uring_enter` per turn.
//!
//! `cargo run --release -p ring-io-proactor --example echo_local [ADDR]`

use std::future::{Future, poll_fn};
use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use ring_io_proactor::{IoBuf, LocalProactor, MsgFlags, ProactorConfig};

/// Echoes what arrives on `conn` until the peer closes; returns the bytes.
async fn echo(p: &LocalProactor, conn: OwnedFd) -> io::Result<u64> {
    // Shared with the kernel while an op uses it.
    let conn = Arc::new(conn);
    let (mut buf, mut total) = (vec![0u8; 16 << 10], 0);
    loop {
        let (n, b) = p.recv(&conn, buf, MsgFlags::empty()).await;
        let n = n?;
        buf = b;
        if n == 0 {
            return Ok(total);
        }
        let mut sent = 0;
        while sent < n {
            let (m, slice) = p.send(&conn, buf.slice(sent..n), MsgFlags::empty()).await;
            buf = slice.into_inner();
            sent += m?;
        }
        total += n as u64;
    }
}

/// Serves `listener` (`conns` connections, or forever): returns the bytes
/// echoed.
pub(crate) fn serve(listener: TcpListener, conns: Option<usize>) -> io::Result<u64> {
    let p = LocalProactor::new(ProactorConfig::new(256))?;
    let listener = Arc::new(listener);
    let (mut tasks, mut accept, mut accepted, mut total) = (Vec::new(), None, 0, 0);
    p.block_on(poll_fn(|cx| {
        while conns.is_none_or(|c| accepted < c) {
            let op = accept.get_or_insert_with(|| p.accept(&listener));
            let Poll::Ready(conn) = Pin::new(op).poll(cx) else {
                break;
            };
            accept = None;
            accepted += 1;
            tasks.push(Box::pin(echo(&p, conn?)));
        }
        // Every task is polled at each wake-up; those that end go.
        tasks.retain_mut(|t| match t.as_mut().poll(cx) {
            Poll::Ready(Ok(n)) => {
                total += n;
                false
            }
            Poll::Ready(Err(e)) => {
                eprintln!("a connection failed: {e}");
                false
            }
            Poll::Pending => true,
        });
        if conns.is_some_and(|c| accepted == c) && tasks.is_empty() {
            Poll::Ready(Ok(total))
        } else {
            Poll::Pending
        }
    }))
}

#[allow(dead_code, reason = "the tests include this file for `serve`")]
fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7878".into());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echoing on {} (one thread)", listener.local_addr()?);
    serve(listener, None).map(drop)
}
