//! A TCP echo server on a `LocalProactor`: one thread, no executor crate.
//! Each connection is a task (an `async` block) on a `net::TcpStream` of
//! the LocalProactor; one future polls them all on the LocalProactor's
//! `block_on`, which submits and reaps for all of them in one
//! `io_uring_enter` per turn.
//!
//! `cargo run --release -p ring-io-proactor --example echo_local [ADDR]`

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::Poll;

use futures_core::Stream;
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
    // One multishot accept for every connection (Linux 5.19; before, one
    // accept at a time).
    let mut incoming = listener.incoming();
    let (mut tasks, mut accepted, mut total) = (Vec::new(), 0, 0);
    p.block_on(poll_fn(|cx| {
        while conns.is_none_or(|c| accepted < c) {
            let Poll::Ready(Some(conn)) = Pin::new(&mut incoming).poll_next(cx) else {
                break;
            };
            accepted += 1;
            tasks.push(Box::pin(echo(conn?)));
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
    let listener = std::net::TcpListener::bind(&addr)?;
    eprintln!("echoing on {} (one thread)", listener.local_addr()?);
    serve(listener, None).map(drop)
}
