//! A TCP echo server on the [`Proactor`]: every connection is a task of a
//! tiny single-threaded executor written below (the Proactor's futures need
//! nothing but the std `Waker`), and every accept, recv and send is an
//! io_uring request with an owned buffer. With no task ready, the executor
//! parks on the Proactor ([`Proactor::park`]), which drives the ring on
//! this thread: completions are reaped here, with no other thread woken.
//!
//! ```text
//! cargo run -p ring-io-proactor --example echo -- 127.0.0.1:7000
//! ```
//!
//! `tests/proactor.rs` includes this file and runs [`serve`] against
//! several client threads.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

use ring_io_proactor::{IoBuf, Proactor, ProactorConfig, Unparker};

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Tasks spawned while the executor runs, picked up on its next turn.
#[derive(Clone, Default)]
struct Spawner(Rc<RefCell<Vec<Task>>>);

impl Spawner {
    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.0.borrow_mut().push(Box::pin(task));
    }
}

/// The indices of the tasks to poll, filled by their wakers.
struct Ready {
    queue: Mutex<VecDeque<usize>>,
    unparker: Unparker,
}

struct TaskWaker(Arc<Ready>, usize);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.0.queue.lock().unwrap().push_back(self.1);
        self.0.unparker.unpark();
    }
}

/// Runs `first` and every task it spawns until all have finished.
fn run(proactor: &Proactor, spawner: &Spawner, first: impl Future<Output = ()> + 'static) {
    let ready = Arc::new(Ready {
        queue: Mutex::new(VecDeque::new()),
        unparker: proactor.unparker(),
    });
    let mut tasks: Vec<Option<(Task, Waker)>> = Vec::new();
    let mut live = 0;
    spawner.spawn(first);
    loop {
        for task in spawner.0.borrow_mut().drain(..) {
            let index = tasks.len();
            let waker = Waker::from(Arc::new(TaskWaker(ready.clone(), index)));
            tasks.push(Some((task, waker)));
            ready.queue.lock().unwrap().push_back(index);
            live += 1;
        }
        if live == 0 {
            return;
        }
        let Some(index) = ready.queue.lock().unwrap().pop_front() else {
            // Every task waits: run the ring here until one is woken.
            proactor.park(None);
            continue;
        };
        let Some((task, waker)) = tasks[index].as_mut() else {
            continue;
        };
        if task
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_ready()
        {
            tasks[index] = None;
            live -= 1;
        }
    }
}

/// Echoes one connection until the peer closes it: recv into a buffer,
/// send it back whole, reuse it.
async fn echo(proactor: Arc<Proactor>, conn: std::os::fd::OwnedFd) -> io::Result<u64> {
    // Each op holds a clone of the `Arc` until the kernel is done with the
    // socket (see `OpFd`).
    let conn = Arc::new(conn);
    // One buffer per connection: each receive fills it from its start.
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let (n, back) = proactor.recv(&conn, buf, 0).await;
        buf = back;
        let n = n?;
        if n == 0 {
            // Every op on it has finished: this is the last handle.
            let conn = Arc::try_unwrap(conn).expect("no op holds the socket now");
            proactor.close(conn).await?;
            return Ok(total);
        }
        // Send the `n` bytes back (after a short send, the rest: a slice).
        let mut sent = 0;
        while sent < n {
            let slice = buf.slice(sent..n);
            let (k, back) = proactor.send(&conn, slice, libc::MSG_NOSIGNAL).await;
            buf = back.into_inner();
            let k = k?;
            sent += k;
            total += k as u64;
        }
    }
}

/// Serves `listener`: accepts connections and echoes each. Returns after
/// `connections` connections have been served (forever if `None`), with the
/// bytes echoed.
pub(crate) fn serve(
    proactor: Arc<Proactor>,
    listener: TcpListener,
    connections: Option<usize>,
) -> io::Result<u64> {
    let listener = Arc::new(listener);
    let spawner = Spawner::default();
    let result = Rc::new(RefCell::new(Ok(0u64)));
    let (s, r) = (spawner.clone(), result.clone());
    let driver = proactor.clone();
    run(&driver, &spawner, async move {
        let mut accepted = 0;
        while connections.is_none_or(|n| accepted < n) {
            let conn = match proactor.accept(&listener).await {
                Ok(conn) => conn,
                Err(e) => {
                    *r.borrow_mut() = Err(e);
                    return;
                }
            };
            accepted += 1;
            let (p, r) = (proactor.clone(), r.clone());
            s.spawn(async move {
                let echoed = echo(p, conn).await;
                let mut r = r.borrow_mut();
                match (echoed, &mut *r) {
                    (Ok(n), Ok(total)) => *total += n,
                    (Err(e), r @ Ok(_)) => *r = Err(e),
                    (_, Err(_)) => {}
                }
            });
        }
    });
    Rc::try_unwrap(result)
        .map_err(|_| io::Error::other("tasks still hold the result"))?
        .into_inner()
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
        let proactor =
            Proactor::new(ProactorConfig::new(256)).context("cannot start a Proactor")?;
        let listener = TcpListener::bind(addr).context(format!("cannot listen on {addr}"))?;
        let local = listener
            .local_addr()
            .context(format!("cannot read the address of {addr}"))?;
        println!("echoing on {local}");
        serve(Arc::new(proactor), listener, None).context(format!("serving {local}"))?;
        Ok(())
    };
    cli::exit("echo", run())
}
