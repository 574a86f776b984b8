//! A TCP echo server on tokio's multi-thread runtime: each connection is a
//! tokio task, each accept, read and write an io_uring request of one
//! [`Proactor`], which a drive task on the runtime drives
//! ([`ring_io_proactor::tokio`]): no other thread.
//!
//! ```text
//! cargo run -p ring-io-proactor --features tokio --example echo_tokio -- 127.0.0.1:7000
//! ```
//!
//! `tests/tokio.rs` includes this file and runs [`serve`] against clients.

use std::io;

use ring_io_proactor::net::{TcpListener, TcpStream};
use ring_io_proactor::{IoBuf, Proactor, ProactorConfig};

/// Echoes one connection until the peer closes it.
async fn echo(stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (n, back) = stream.read(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(());
        }
        let (res, back) = stream.write_all(back.slice(..n)).await;
        res?;
        buf = back.into_inner();
    }
}

/// Serves `listener`, a task per connection, until `n` connections have been
/// served (forever if `None`) or one fails.
pub(crate) async fn serve(listener: TcpListener, n: Option<usize>) -> io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n.unwrap_or(usize::MAX) {
        let (stream, _peer) = listener.accept().await?;
        tasks.spawn(echo(stream));
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
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7000".into());
    let runtime = tokio::runtime::Runtime::new()?;
    let proactor = Proactor::new(ProactorConfig::new(256))?;
    let listener = TcpListener::bind(&proactor, &addr)?;
    println!("echoing on {}", listener.local_addr()?);
    runtime.block_on(async {
        let _driver = ring_io_proactor::tokio::spawn_driver(&proactor)?;
        serve(listener, None).await
    })
}
