//! Tasks of a [`LocalProactor`]: [`LocalProactor::spawn`] and its join
//! handle, [`LocalTask`].
//!
//! A task's future sits in a slot of the LocalProactor's task table, on its
//! thread; its waker (`Send + Sync`) holds only the slot's id, a "queued"
//! flag and the ready queues. Waking a task that is not queued yet pushes
//! its id: on the LocalProactor's thread (the common case: a completion
//! reaped by a turn, a task waking another) onto a queue only that thread
//! touches (a `RefCell`, no lock), setting the thread's wake-up flag; from
//! another thread onto a `Mutex<VecDeque>`, noting it there for the thread
//! (which takes that lock only then) and unparking the thread as a
//! [`LocalUnparker`] does (a write to the eventfd only for the first
//! wake-up since the thread looked). Waking it again before it is polled
//! does nothing. `block_on`'s loop
//! polls its own future, then the tasks whose ids are queued (each once),
//! then turns the ring, waiting only if nothing was woken meanwhile: a
//! wake-up polls the one task it names, however many tasks wait.
//!
//! No user code (a task's poll or drop, a waker's wake or drop) runs with
//! the table or the ready queue borrowed: a task is taken out of its slot
//! to be polled (the slot marked running) and put back after; a dropped
//! task is taken out first. A `block_on` nested in a task (a `LocalOp::wait`
//! in it) polls the other woken tasks; one that finds the task that runs it
//! queued notes it, and the task is queued again once its poll returns.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::turn::Park;
use super::{Inner, LocalProactor, LocalUnparker};
use crate::driver::Wait;

mod join;
mod waker;

pub use join::LocalTask;
use join::{Completion, Join, JoinState};
use waker::{Ready, TaskWaker, task_waker};
pub(crate) use waker::{is_task_waker, wake_if_task};

/// A task's slot index (low 32 bits) and the slot's generation (high 32
/// bits): a waker of a task that ended names no later task of its slot (a
/// generation that wrapped around makes a spurious wake-up, no more).
type Id = u64;

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// The tasks of a LocalProactor.
pub(crate) struct Tasks {
    slab: RefCell<Slab>,
    /// Tasks alive (in a slot, idle or running): with none, `block_on`
    /// looks at no queue.
    live: Cell<usize>,
    /// How many ids at the front of `ready.own` the running pass of
    /// [`run_tasks`](Inner::run_tasks) has yet to poll (those queued
    /// before it began; a `block_on` nested in a task polls them too, with
    /// those queued since).
    round: Cell<usize>,
    ready: Arc<Ready>,
    /// How many `block_on`s of this LocalProactor run (nested) on its
    /// thread: the outermost drops the tasks left when it returns.
    pub(crate) depth: Cell<u32>,
}

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Slot {
    generation: u32,
    state: State,
}

enum State {
    Free,
    /// (Boxed: taking it out to poll it, and back, moves a pointer.)
    Idle(Box<Task>),
    /// Taken out to be polled, up the stack; `rewake`: a nested pass found
    /// it queued meanwhile (it is queued again after its poll).
    Running {
        rewake: bool,
    },
}

struct Task {
    future: BoxFuture,
    /// `task_waker(flag.clone())`, made once.
    waker: Waker,
    flag: Arc<TaskWaker>,
}

impl Inner {
    /// A `block_on` starts; the guard's drop ends it (dropping the tasks
    /// left if it is the outermost).
    pub(crate) fn enter(&self) -> Entered<'_> {
        self.tasks.depth.set(self.tasks.depth.get() + 1);
        Entered(self)
    }

    /// Polls each task woken since the last pass, once (those woken during
    /// the pass wait for the next: a task that wakes itself does not hold
    /// the thread).
    #[inline]
    pub(crate) fn run_tasks(&self) {
        // No task: nothing to look at (`block_on` without tasks pays this
        // test only).
        if self.tasks.live.get() != 0 {
            self.run_tasks_slow();
        }
    }

    #[inline(never)]
    fn run_tasks_slow(&self) {
        let enters = self.st.borrow().stats.enters;
        if self.tasks.run_ready() && self.st.borrow().stats.enters != enters {
            // A task turned the ring (a `park` in it): that may have taken
            // the thread's wake-up flag, set by a wake-up of this round (of
            // a task, or of `block_on`'s future) on the thread, without an
            // eventfd write. The turn after this pass must not wait.
            self.park.woken.set();
        }
    }
}

impl Tasks {
    /// The tasks of the LocalProactor that `park` parks (made on its
    /// thread).
    pub(crate) fn new(park: Arc<Park>) -> Tasks {
        Tasks {
            slab: RefCell::default(),
            live: Cell::new(0),
            round: Cell::new(0),
            ready: Arc::new(Ready {
                owner: crate::drive::me(),
                own: RefCell::default(),
                foreign: Mutex::default(),
                foreign_pending: AtomicBool::new(false),
                unparker: LocalUnparker::new(park),
            }),
            depth: Cell::new(0),
        }
    }

    /// Puts `future` in a slot and queues it (it is first polled by the
    /// running `block_on`'s next pass).
    fn insert(&self, future: BoxFuture) {
        let id = {
            let mut slab = self.slab.borrow_mut();
            let index = match slab.free.pop() {
                Some(index) => index,
                None => {
                    let index = u32::try_from(slab.slots.len()).expect("fewer than 2^32 tasks");
                    slab.slots.push(Slot {
                        generation: 0,
                        state: State::Free,
                    });
                    index
                }
            };
            let slot = &mut slab.slots[index as usize];
            let id = u64::from(slot.generation) << 32 | u64::from(index);
            let flag = Arc::new(TaskWaker {
                id,
                queued: AtomicBool::new(true),
                ready: self.ready.clone(),
            });
            let waker = task_waker(flag.clone());
            slot.state = State::Idle(Box::new(Task {
                future,
                waker,
                flag,
            }));
            id
        };
        self.live.set(self.live.get() + 1);
        self.ready.push_own(id);
    }

    /// Frees the slot of a task taken out of it.
    fn free(&self, index: usize) {
        let mut slab = self.slab.borrow_mut();
        let slot = &mut slab.slots[index];
        slot.state = State::Free;
        slot.generation = slot.generation.wrapping_add(1);
        slab.free.push(index as u32);
        drop(slab);
        self.live.set(self.live.get() - 1);
    }

    /// Whether a task was woken on the thread and waits for a pass of
    /// [`run_tasks`](Inner::run_tasks): the thread must not sleep. (One
    /// woken from another thread has set the thread's wake-up flag.)
    #[inline]
    pub(crate) fn queued(&self) -> bool {
        self.live.get() != 0 && !self.ready.own.borrow().is_empty()
    }

    /// Polls the tasks queued (see [`Inner::run_tasks`]); true if it
    /// looked at any.
    fn run_ready(&self) -> bool {
        self.ready.take_foreign();
        // Every id queued now: if this pass is nested in a task's poll,
        // those the outer pass has yet to poll (at the front) are polled
        // here, and the outer one ends when this one does.
        let queued = self.ready.own.borrow().len();
        if queued == 0 {
            return false;
        }
        self.round.set(queued);
        while self.round.get() > 0 {
            self.round.set(self.round.get() - 1);
            let next = self.ready.own.borrow_mut().pop_front();
            let Some(id) = next else { break };
            self.poll(id);
        }
        true
    }

    /// Polls the task `id` names, if it is still there.
    fn poll(&self, id: Id) {
        let index = id as u32 as usize;
        let task = {
            let mut slab = self.slab.borrow_mut();
            let Some(slot) = slab
                .slots
                .get_mut(index)
                .filter(|s| s.generation == (id >> 32) as u32)
            else {
                return;
            };
            match &mut slot.state {
                State::Idle(_) => {}
                State::Running { rewake } => {
                    // Polled up the stack (this is a nested pass): again
                    // once that poll returns.
                    *rewake = true;
                    return;
                }
                State::Free => return,
            }
            let State::Idle(task) =
                std::mem::replace(&mut slot.state, State::Running { rewake: false })
            else {
                unreachable!("matched above");
            };
            task
        };
        task.flag.queued.swap(false, Ordering::Acquire);
        let mut running = Running {
            tasks: self,
            index,
            task: Some(task),
        };
        let task = running.task.as_mut().expect("just put");
        let poll = task
            .future
            .as_mut()
            .poll(&mut Context::from_waker(&task.waker));
        let task = running.task.take().expect("still there");
        match poll {
            Poll::Ready(()) => {
                task.flag.queued.store(true, Ordering::Release);
                // A finished `async` block: dropping it runs no user code
                // (its captures went when it returned).
                drop(task);
                self.free(index);
            }
            Poll::Pending => {
                let mut slab = self.slab.borrow_mut();
                let State::Running { rewake } =
                    std::mem::replace(&mut slab.slots[index].state, State::Idle(task))
                else {
                    unreachable!("a running task's slot is left alone");
                };
                drop(slab);
                if rewake {
                    // Its `queued` flag is still set: nobody else queues it.
                    self.ready.push_own(id);
                }
            }
        }
    }

    /// Drops every task left (and those spawned by the drops); returns the
    /// first panic of a drop. None is polled meanwhile, unless a drop runs
    /// a `block_on`: that one runs the tasks as any nested `block_on` (it
    /// may wait for a task it spawns).
    fn drop_all(&self) -> Option<Box<dyn std::any::Any + Send>> {
        let mut panic = None;
        while self.live.get() > 0 {
            let mut dropped = false;
            let mut index = 0;
            loop {
                let task = {
                    let mut slab = self.slab.borrow_mut();
                    let Some(slot) = slab.slots.get_mut(index) else {
                        break;
                    };
                    match std::mem::replace(&mut slot.state, State::Free) {
                        State::Idle(task) => Some(task),
                        other => {
                            slot.state = other;
                            None
                        }
                    }
                };
                if let Some(task) = task {
                    self.free(index);
                    task.flag.queued.store(true, Ordering::Release);
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(task))) {
                        panic.get_or_insert(p);
                    }
                    dropped = true;
                }
                index += 1;
            }
            if !dropped {
                // Only running tasks are left (which cannot be: the
                // outermost `block_on` returns with none running).
                break;
            }
        }
        self.round.set(0);
        self.ready.own.borrow_mut().clear();
        self.ready.lock().clear();
        panic
    }
}

/// A task taken out of its slot to be polled: dropped (and its slot freed)
/// if the poll panics.
struct Running<'a> {
    tasks: &'a Tasks,
    index: usize,
    task: Option<Box<Task>>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // The task panicked: it goes (its ops are cancelled, its
            // `LocalTask` learns it was dropped), and the panic goes on
            // out of `block_on`. A panic of its drop now is dropped.
            task.flag.queued.store(true, Ordering::Release);
            let _ = catch_unwind(AssertUnwindSafe(|| drop(task)));
            self.tasks.free(self.index);
        }
    }
}

/// A running `block_on` (see [`Inner::enter`]).
pub(crate) struct Entered<'a>(&'a Inner);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let tasks = &self.0.tasks;
        let panic = if tasks.depth.get() == 1 && tasks.live.get() > 0 {
            let panic = tasks.drop_all();
            // The cancellations of their ops go to the kernel now, and
            // what it cancels at once is released (the rest is released
            // by later turns, or by the LocalProactor's drop).
            // (Two turns: under DEFER_TASKRUN the kernel posts the
            // cancelled requests' completions as task work, which the
            // second runs.)
            for _ in 0..2 {
                self.0.turn(Wait::No);
            }
            panic
        } else {
            None
        };
        tasks.depth.set(tasks.depth.get() - 1);
        if let Some(panic) = panic {
            // Already unwinding (from the main future or a task): that
            // panic goes on; this one is dropped.
            if !std::thread::panicking() {
                resume_unwind(panic);
            }
        }
    }
}

impl LocalProactor {
    /// Runs `future` as a task of this LocalProactor, on its thread: the
    /// task is polled by the running [`block_on`](LocalProactor::block_on)
    /// (the outermost, or one nested in it) when it is woken, and only
    /// then. Its output comes through the returned [`LocalTask`]; dropping
    /// that detaches the task, which runs on. The future need not be
    /// `Send`.
    ///
    /// How tasks run:
    ///
    /// - Each `block_on` round polls its own future (if its waker was used
    ///   since it was last polled), then each task woken since the last
    ///   round, once, in the order of their wake-ups (a new task counts as
    ///   woken), then turns the ring (submits, reaps), waiting in the
    ///   kernel only if nothing was woken meanwhile. A completion, or any
    ///   other wake-up, polls only the task it wakes, however many tasks
    ///   wait: a server's ten thousand idle connections cost nothing when
    ///   one of them wakes (nor does `block_on`'s own future, when it only
    ///   awaits them).
    /// - Each task has its own waker (`Send + Sync`): woken from another
    ///   thread, it queues the task and ends the thread's wait in the
    ///   kernel; woken on the thread, it queues the task only (no system
    ///   call). Waking it again before it is polled does nothing more.
    /// - A `block_on` nested in a task (a [`LocalOp::wait`](crate::LocalOp::wait),
    ///   say) runs the other tasks while it waits, so it may wait for one
    ///   of them; the task that runs it is polled again after, if woken
    ///   meanwhile.
    /// - Tasks belong to the LocalProactor's outermost `block_on`, as those
    ///   of `tokio_uring::start`: when it returns (or unwinds), the tasks
    ///   not finished are dropped (and those their drops spawn) and their
    ///   ops cancelled: `block_on` submits the cancellations before it
    ///   returns, and releases the buffers and fds of the requests the
    ///   kernel ended at once (those of the others go as later turns, or the
    ///   LocalProactor's drop, reap their completions, as for any dropped
    ///   op). So a task that holds a clone of the LocalProactor (an `Rc`
    ///   cycle) cannot keep the ring alive. A [`LocalTask`] of a dropped
    ///   task panics when awaited.
    /// - A task that panics is dropped, and the panic propagates out of
    ///   `block_on`, as one of `block_on`'s own future does (the tasks are
    ///   then dropped as above, if it was the outermost). The LocalProactor
    ///   stays usable. (A panic of a task's drop at the end propagates too,
    ///   once every task is dropped.)
    ///
    /// # Panics
    ///
    /// If called outside `block_on` (no task would ever run, and one left
    /// in the LocalProactor could keep it alive through a cycle).
    ///
    /// ```
    /// use ring_io_proactor::{LocalProactor, MsgFlags, ProactorConfig};
    /// use std::os::unix::net::UnixStream;
    /// use std::{io::Write, sync::Arc};
    ///
    /// let p = LocalProactor::new(ProactorConfig::new(64))?;
    /// let sum = p.block_on(async {
    ///     // One task per socket, each holding a clone of the LocalProactor.
    ///     let mut peers = Vec::new();
    ///     let tasks: Vec<_> = (0..8)
    ///         .map(|_| {
    ///             let (a, b) = UnixStream::pair().unwrap();
    ///             peers.push(b);
    ///             let (p2, a) = (p.clone(), Arc::new(a));
    ///             p.spawn(async move {
    ///                 let (n, _buf) = p2.recv(&a, vec![0u8; 16], MsgFlags::empty()).await;
    ///                 n.unwrap()
    ///             })
    ///         })
    ///         .collect();
    ///     // Each write wakes (and polls again) the one task of its socket.
    ///     for (i, mut peer) in peers.into_iter().enumerate() {
    ///         peer.write_all(&b"hello, tasks"[..i + 1]).unwrap();
    ///     }
    ///     let mut sum = 0;
    ///     for task in tasks {
    ///         sum += task.await;
    ///     }
    ///     // Detached: dropped, unfinished, when this `block_on` returns.
    ///     let p2 = p.clone();
    ///     drop(p.spawn(async move { p2.timeout(std::time::Duration::from_secs(3600)).await }));
    ///     sum
    /// });
    /// assert_eq!(sum, 36);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> LocalTask<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let tasks = &self.inner.tasks;
        assert!(
            tasks.depth.get() > 0,
            "LocalProactor::spawn outside block_on: tasks run in, and belong to, the \
             LocalProactor's block_on; spawn them from its future"
        );
        let join = Rc::new(Join {
            state: Cell::new(JoinState::Running),
            waker: Cell::new(None),
        });
        let completion = Completion {
            join: join.clone(),
            done: false,
        };
        tasks.insert(Box::pin(async move {
            let out = future.await;
            completion.complete(out);
        }));
        LocalTask { join }
    }
}
