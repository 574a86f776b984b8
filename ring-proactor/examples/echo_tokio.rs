//! A TCP echo server on tokio's multi-thread runtime: each connection is a
//! tokio task, each accept, recv and send an io_uring request of one
//! [`Proactor`], which a drive task on the runtime drives
//! ([`ring_io_proactor::tokio`]): no other thread.
//!
//! ```text
//! cargo run -p ring-io-proactor --features tokio --example echo_tokio -- 127.0.0.1:7000
//! ```
//!
//! `tests/tokio.rs` includes this file and runs [`serve`] against clients.

use std::{io, net::TcpListener, os::fd::OwnedFd, sync::Arc};

use ring_io_proactor::{MsgFlags, Proactor, ProactorConfig};

/// Echoes one connection until the peer closes it.
async fn echo(p: Arc<Proactor>, conn: OwnedFd) -> io::Result<()> {
    let (conn, mut buf) = (Arc::new(conn), Vec::with_capacity(16 * 1024));
    loop {
        buf.clear();
        let (n, back) = p.recv(&conn, buf, MsgFlags::empty()).await;
        buf = back;
        if n? == 0 {
            return Ok(());
        }
        while !buf.is_empty() {
            let (n, back) = p.send(&conn, buf, MsgFlags::NOSIGNAL).await;
            buf = back;
            buf.drain(..n?);
        }
    }
}

/// Serves `listener`, a task per connection, until `n` connections have been
/// served (forever if `None`) or one fails.
pub(crate) async fn serve(
    p: Arc<Proactor>,
    listener: TcpListener,
    n: Option<usize>,
) -> io::Result<()> {
    let (listener, mut tasks) = (Arc::new(listener), tokio::task::JoinSet::new());
    for _ in 0..n.unwrap_or(usize::MAX) {
        tasks.spawn(echo(p.clone(), p.accept(&listener).await?));
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[allow(dead_code, reason = "the tests include this file for `serve`")]
fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let runtime = tokio::runtime::Runtime::new()?;
    let proactor = Arc::new(Proactor::new(ProactorConfig::new(256))?);
    let listener = TcpListener::bind(&addr)?;
    println!("echoing on {}", listener.local_addr()?);
    runtime.block_on(async {
        let _driver = ring_io_proactor::tokio::spawn_driver(&proactor)?;
        serve(proactor, listener, None).await
    })
}
