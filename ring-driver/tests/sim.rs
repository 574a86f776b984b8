//! The driver's loops against ring-core's simulated kernel, with faults the
//! real kernel produces rarely: EINTR, EBUSY, EAGAIN, short submits,
//! dropped completions, SQPOLL sleeping, indices crossing u32::MAX.

use std::io;

use ring_core::{Fault, Geometry, SimConfig, SimKernel};
use ring_driver::{Cqe, Ring, Sim};
use ring_ops::Nop;
use ring_sys::{Errno, Features, SetupFlags};

fn geometry(sq: u32, cq: u32, flags: SetupFlags, features: Features) -> Geometry {
    Geometry::new(sq, cq, flags, features).unwrap()
}

fn ring(sq: u32, cq: u32) -> Ring<Sim> {
    let g = geometry(sq, cq, SetupFlags::empty(), Features::NODROP);
    Ring::simulated(g, SimConfig::new(&g)).unwrap()
}

fn push(ring: &mut Ring<Sim>, ids: impl IntoIterator<Item = u64>) {
    let mut sq = ring.sq();
    for id in ids {
        // SAFETY: NOPs carry no pointers.
        unsafe { sq.push(Nop::new().build().user_data(id)) }.unwrap();
    }
}

fn ids(ring: &mut Ring<Sim>) -> Vec<u64> {
    ring.cq().map(|c: Cqe| c.user_data()).collect()
}

#[test]
fn eintr_is_retried() {
    let mut ring = ring(4, 8);
    for _ in 0..3 {
        ring.kernel_mut()
            .inner_mut()
            .inject(Fault::Error(Errno::EINTR));
    }
    push(&mut ring, [1, 2]);
    assert_eq!(ring.submitter().submit_and_wait(2).unwrap(), 2);
    assert_eq!(ids(&mut ring), [1, 2]);
    assert_eq!(
        ring.kernel().enters(),
        4,
        "three interrupted enters, then one that worked"
    );
}

#[test]
fn a_short_submit_leaves_the_rest_pending_then_submits_it() {
    let mut ring = ring(8, 16);
    ring.kernel_mut().inner_mut().inject(Fault::ShortSubmit(2));
    push(&mut ring, 0..5);
    assert_eq!(ring.submitter().submit().unwrap(), 2);
    assert_eq!(ring.submitter().pending(), 3);
    assert_eq!(ring.submitter().submit_and_wait(5).unwrap(), 3);
    assert_eq!(ids(&mut ring), [0, 1, 2, 3, 4]);
}

#[test]
fn ebusy_is_resolved_by_reaping_and_nothing_is_lost() {
    let mut ring = ring(4, 4);
    // Fill the CQ: 4 completions ready, not reaped.
    push(&mut ring, 0..4);
    ring.submitter().submit_and_wait(4).unwrap();
    // The kernel refuses the next enter until the CQ has room.
    ring.kernel_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EBUSY));
    push(&mut ring, 4..8);
    assert_eq!(ring.submitter().submit_and_wait(4).unwrap(), 4);
    // The moved completions come first, in order, then the new ones.
    assert_eq!(ids(&mut ring), (0..8).collect::<Vec<_>>());
    assert_eq!(ring.overflow(), 0);
}

#[test]
fn eagain_with_nothing_to_reap_is_reported() {
    let mut ring = ring(4, 8);
    ring.kernel_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EAGAIN));
    push(&mut ring, [1]);
    let err = ring.submitter().submit().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    // The entry is still pending, not lost: the next submit sends it.
    assert_eq!(ring.submitter().submit_and_wait(1).unwrap(), 1);
    assert_eq!(ids(&mut ring), [1]);
}

#[test]
fn without_nodrop_excess_completions_are_counted_as_overflow() {
    let g = geometry(8, 8, SetupFlags::empty(), Features::empty());
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            nodrop: false,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, 0..8);
    ring.submitter().submit_and_wait(8).unwrap();
    push(&mut ring, 8..12);
    ring.submitter().submit().unwrap();
    assert_eq!(ring.overflow(), 4, "four completions had no slot");
    assert_eq!(ids(&mut ring), (0..8).collect::<Vec<_>>());
}

#[test]
fn nodrop_backlog_is_flushed_into_the_cq() {
    let mut ring = ring(8, 8);
    push(&mut ring, 0..8);
    ring.submitter().submit().unwrap();
    push(&mut ring, 8..16);
    ring.submitter().submit().unwrap();
    let mut seen = ids(&mut ring);
    ring.submitter().flush().unwrap();
    seen.extend(ids(&mut ring));
    assert_eq!(seen, (0..16).collect::<Vec<_>>());
    assert_eq!(ring.overflow(), 0);
}

#[test]
fn indices_cross_u32_max() {
    let g = geometry(4, 8, SetupFlags::empty(), Features::NODROP);
    let kernel = SimKernel::with_start(g, SimConfig::new(&g), u32::MAX - 5).unwrap();
    let mut ring = Ring::with_kernel(Sim::from_kernel(kernel));
    let mut next = 0u64;
    for _ in 0..6 {
        push(&mut ring, next..next + 4);
        ring.submitter().submit_and_wait(4).unwrap();
        assert_eq!(ids(&mut ring), (next..next + 4).collect::<Vec<_>>());
        next += 4;
    }
    assert!(
        ring.kernel().inner().sq_head() < 100,
        "the SQ head wrapped past u32::MAX"
    );
}

#[test]
fn sqpoll_needs_an_enter_only_to_wake_the_thread() {
    let g = geometry(4, 8, SetupFlags::SQPOLL, Features::NODROP);
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            sqpoll_idle: 2,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, [1]);
    // The thread is awake: publishing is enough; no enter to submit.
    assert_eq!(ring.submitter().submit().unwrap(), 0);
    assert_eq!(ring.kernel().enters(), 0);
    while ring.kernel_mut().inner_mut().step() {}
    assert_eq!(ids(&mut ring), [1]);
    // Now idle long enough to sleep: the next submit must wake it.
    assert!(
        ring.kernel()
            .inner()
            .sq_flags()
            .contains(ring_sys::SqFlags::NEED_WAKEUP)
    );
    push(&mut ring, [2]);
    ring.submitter().submit().unwrap();
    assert_eq!(ring.kernel().enters(), 1, "one enter, with SQ_WAKEUP");
    while ring.kernel_mut().inner_mut().step() {}
    assert_eq!(ids(&mut ring), [2]);
}

#[test]
fn a_full_sq_hands_back_and_a_reaped_head_frees_it() {
    let mut ring = ring(2, 4);
    push(&mut ring, [1, 2]);
    // SAFETY: a NOP carries no pointers.
    let back = unsafe { ring.sq().push(Nop::new().build().user_data(3)) }.unwrap_err();
    assert_eq!(back.0.get_user_data(), 3);
    let err: io::Error = back.into();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    ring.submitter().submit().unwrap();
    // SAFETY: as above.
    unsafe { ring.sq().push(Nop::new().build().user_data(3)) }.unwrap();
}

#[test]
fn a_completion_posted_since_the_last_look_satisfies_a_submit_and_wait() {
    // Entering to submit, the driver decides with the CQ tail it loaded
    // last (the kernel may have posted more since): GETEVENTS then counts
    // what is already there, and the wait ends at once.
    let g = geometry(4, 8, SetupFlags::empty(), Features::NODROP);
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            lag: 1,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, [1]);
    assert_eq!(ring.submitter().submit().unwrap(), 1);
    ring.kernel_mut().inner_mut().step();
    assert_eq!(ring.kernel().inner().cq_tail(), 1, "posted, not yet seen");
    push(&mut ring, [2]);
    assert_eq!(ring.submitter().submit_and_wait(1).unwrap(), 1);
    assert_eq!(ring.kernel().enters(), 2);
    assert_eq!(ids(&mut ring), [1], "2 is still in flight");
    // Nothing to submit: the tail is loaded before deciding to wait.
    assert_eq!(ring.submitter().submit_and_wait(1).unwrap(), 0);
    assert_eq!(ids(&mut ring), [2]);
    assert_eq!(ring.submitter().submit_and_wait(0).unwrap(), 0);
    assert_eq!(ring.kernel().enters(), 3, "no enter without work");
}

#[test]
fn stashed_completions_come_first_across_views_and_partial_reads() {
    let mut ring = ring(4, 4);
    push(&mut ring, 0..4);
    ring.submitter().submit_and_wait(4).unwrap();
    ring.kernel_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EBUSY));
    push(&mut ring, 4..8);
    assert_eq!(ring.submitter().submit_and_wait(4).unwrap(), 4);
    // Read part of the stash, drop the view, read on: nothing is lost or
    // repeated, and the order holds.
    let mut got: Vec<u64> = ring.cq().take(3).map(|c| c.user_data()).collect();
    {
        let mut cq = ring.cq();
        assert_eq!(cq.len(), 5);
        assert_eq!(cq.peek().map(|c| c.user_data()), Some(3));
        got.extend(cq.by_ref().take(2).map(|c| c.user_data()));
        cq.sync();
        got.extend(cq.map(|c| c.user_data()));
    }
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    // With the stash empty again, later completions read as usual.
    push(&mut ring, 8..12);
    ring.submitter().submit_and_wait(4).unwrap();
    assert_eq!(ids(&mut ring), (8..12).collect::<Vec<_>>());
    assert!(ring.cq().next().is_none());
}

#[test]
fn thirty_two_byte_cqes_are_read_whole() {
    let g = geometry(4, 8, SetupFlags::CQE32, Features::NODROP);
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    for round in 0..3u64 {
        push(&mut ring, (0..4).map(|i| round * 10 + i));
        ring.submitter().submit_and_wait(4).unwrap();
        let cqes: Vec<Cqe> = ring.cq().collect();
        let ids: Vec<u64> = cqes.iter().map(Cqe::user_data).collect();
        assert_eq!(ids, (0..4).map(|i| round * 10 + i).collect::<Vec<_>>());
        assert!(
            cqes.iter()
                .all(|c| c.big() == [0, 0] && c.result() == Ok(0))
        );
    }
}

#[test]
fn a_full_view_reloads_the_head_once_the_sqpoll_thread_consumed() {
    let g = geometry(4, 8, SetupFlags::SQPOLL, Features::NODROP);
    let mut ring = Ring::simulated(g, SimConfig::new(&g)).unwrap();
    push(&mut ring, 0..4);
    // Awake, the thread takes the entries without an enter; the ring has
    // not looked at the head since.
    assert_eq!(ring.submitter().submit().unwrap(), 0);
    ring.kernel_mut().inner_mut().step();
    assert_eq!(ring.kernel().inner().sq_head(), 4, "consumed by the thread");
    {
        let mut sq = ring.sq();
        assert_eq!(sq.space(), 0, "as last known");
        // Full as far as the view knows: it reads the head and finds room,
        // for single entries and for a batch that fits.
        // SAFETY: NOPs carry no pointers.
        unsafe { sq.push(Nop::new().build().user_data(4)) }.unwrap();
        let batch = [
            Nop::new().build().user_data(5),
            Nop::new().build().user_data(6),
        ];
        // SAFETY: as above.
        unsafe { sq.push_batch(&batch) }.unwrap();
        assert_eq!(sq.space(), 1);
        // SAFETY: as above.
        let refused = unsafe { sq.push_batch(&[batch[0], batch[1]]) }.unwrap_err();
        assert_eq!(refused.0, 1, "one slot left: all or nothing");
    }
    assert_eq!(ring.submitter().submit().unwrap(), 0);
    while ring.kernel_mut().inner_mut().step() {}
    let mut got = ids(&mut ring);
    got.sort_unstable();
    assert_eq!(got, (0..7).collect::<Vec<_>>());
}

#[test]
fn a_leaked_sq_view_pushes_nothing_and_the_ring_goes_on() {
    let mut ring = ring(4, 8);
    {
        let mut sq = ring.sq();
        // SAFETY: a NOP carries no pointers.
        unsafe { sq.push(Nop::new().build().user_data(1)) }.unwrap();
        std::mem::forget(sq);
    }
    assert_eq!(
        ring.submitter().submit().unwrap(),
        0,
        "nothing was committed"
    );
    push(&mut ring, [2, 3]);
    assert_eq!(ring.submitter().submit_and_wait(2).unwrap(), 2);
    assert_eq!(ids(&mut ring), [2, 3]);
}

#[test]
fn a_wait_counts_stashed_completions_and_asks_the_kernel_only_for_the_rest() {
    // Requests complete a step after they are consumed, so a wait really
    // waits.
    let g = geometry(4, 8, SetupFlags::empty(), Features::NODROP);
    let mut ring = Ring::simulated(
        g,
        SimConfig {
            lag: 1,
            ..SimConfig::new(&g)
        },
    )
    .unwrap();
    push(&mut ring, [0, 1]);
    ring.submitter().submit_and_wait(2).unwrap();
    // EBUSY on the next enter moves the two ready CQEs into the stash.
    ring.kernel_mut()
        .inner_mut()
        .inject(Fault::Error(Errno::EBUSY));
    push(&mut ring, [2]);
    assert_eq!(ring.submitter().submit().unwrap(), 1);
    // Three wanted: two stashed, one in flight. The kernel must be asked
    // for one, not three (which it could never reach: a real kernel would
    // sleep forever, the simulated one reports ETIME).
    ring.submitter().submit_and_wait(3).unwrap();
    assert_eq!(ids(&mut ring), [0, 1, 2]);
}
