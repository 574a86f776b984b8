//! A TCP echo server: one task per connection, all on this thread, which
//! drives the ring while it waits (`block_on`). The server is [`echo`] and
//! [`serve`]; `main` reads the address and reports errors as every example
//! does. Run it with
//! `cargo run -p ring-io-proactor --example echo -- 127.0.0.1:7000`.
//! `tests/handles.rs` runs [`serve`] against 8 clients.

use std::cell::Cell;
use std::io;

use futures_util::StreamExt;
use ring_io_proactor::net::{TcpListener, TcpStream};
use ring_io_proactor::{IoBuf, Proactor, ProactorConfig, block_on};

/// Echoes `stream` until the peer closes it; returns the bytes echoed.
async fn echo(stream: TcpStream) -> io::Result<u64> {
    let (mut buf, mut echoed) = (vec![0u8; 16 * 1024], 0);
    loop {
        let (n, back) = stream.read(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(echoed);
        }
        let (res, back) = stream.write_all(back.slice(..n)).await;
        res?;
        (buf, echoed) = (back.into_inner(), echoed + n as u64);
    }
}

/// Serves `limit` connections (forever if `None`); returns the bytes echoed.
pub(crate) fn serve(listener: TcpListener, limit: Option<usize>) -> u64 {
    let echoed = Cell::new(0);
    let conns = listener.incoming().take(limit.unwrap_or(usize::MAX));
    block_on(conns.for_each_concurrent(None, |conn| async {
        match async { echo(conn?).await }.await {
            Ok(n) => echoed.set(echoed.get() + n),
            Err(e) => eprintln!("echo: {e}"),
        }
    }));
    echoed.get()
}

#[path = "../../ring-driver/examples/cli/mod.rs"]
#[allow(dead_code, reason = "each example uses part of it")]
mod cli;

#[allow(dead_code, reason = "the tests include this file for `serve`")]
fn main() -> std::process::ExitCode {
    use cli::Context as _;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.as_slice() {
        [] => "127.0.0.1:7000",
        [addr] => addr.as_str(),
        _ => {
            let why = format!("expected at most 1 argument, got {}", args.len());
            return cli::usage("echo", "[ADDRESS:PORT (default 127.0.0.1:7000)]", why);
        }
    };
    // Everything is set up before the first line says the server is on.
    let run = || -> Result<(), cli::Error> {
        let p = Proactor::new(ProactorConfig::new(256)).context("cannot start a Proactor")?;
        let listener = TcpListener::bind(&p, addr).context(format!("cannot listen on {addr}"))?;
        let local = listener
            .local_addr()
            .context(format!("cannot read the address of {addr}"))?;
        println!("echoing on {local}");
        serve(listener, None);
        Ok(())
    };
    cli::exit("echo", run())
}
