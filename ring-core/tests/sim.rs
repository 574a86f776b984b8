//! SimKernel driven through the state machines: each kernel behaviour the
//! simulator promises, observed from the application's side.

use ring_io_core::{
    CqCredit, CqState, EnterInput, Fault, FlagsRead, Geometry, SimCompletion, SimConfig, SimKernel,
    SqState, decide_enter,
};
use ring_io_sys::{
    EnterFlags, Errno, Features, IORING_CQE_F_MORE, IOSQE_CQE_SKIP_SUCCESS, SetupFlags, SqFlags,
};

/// The application side: the two state machines and the simulated kernel.
struct App {
    geo: Geometry,
    sq: SqState,
    cq: CqState,
    k: SimKernel,
}

impl App {
    fn new(sq: u32, cq: u32, setup: SetupFlags, features: Features) -> App {
        let geo = Geometry::new(sq, cq, setup, features).unwrap();
        Self::with(geo, SimConfig::new(&geo), 0)
    }

    fn with(geo: Geometry, cfg: SimConfig, start: u32) -> App {
        App {
            geo,
            sq: SqState::with_start(&geo, start),
            cq: CqState::with_start(&geo, start),
            k: SimKernel::with_start(geo, cfg, start).unwrap(),
        }
    }

    /// Reserve, fill and commit one SQE per user_data, then publish.
    fn push(&mut self, user_data: &[u64], sqe_flags: u8) {
        let r = self.sq.reserve(user_data.len() as u32).unwrap();
        for (idx, &ud) in r.indices().zip(user_data) {
            let sqe = self.k.sqe_mut(idx);
            *sqe = Default::default();
            sqe.user_data = ud;
            sqe.flags = sqe_flags;
        }
        self.sq.commit(r).unwrap();
        while let Some(t) = self.sq.poll_publish() {
            self.k.set_sq_tail(t);
        }
    }

    fn input(&mut self, wait_nr: u32) -> EnterInput {
        self.cq.handle_tail(self.k.cq_tail()).unwrap();
        EnterInput {
            to_submit: self.sq.pending(),
            wait_nr,
            cq_ready: self.cq.ready(),
            setup: self.geo.setup_flags(),
            sq_flags: self.k.sq_flags(),
            features: self.geo.features(),
            ..EnterInput::default()
        }
    }

    /// Enter as decide_enter says; returns the decision and the result.
    fn enter(&mut self, wait_nr: u32) -> Option<(EnterFlags, Result<u32, Errno>)> {
        let input = self.input(wait_nr);
        let e = decide_enter(&input)?;
        let r = self.k.enter(e.to_submit, e.min_complete, e.flags);
        self.sync();
        Some((e.flags, r))
    }

    fn sync(&mut self) {
        self.sq.handle_head(self.k.sq_head()).unwrap();
        self.sq.handle_dropped(self.k.sq_dropped());
        self.cq.handle_tail(self.k.cq_tail()).unwrap();
        self.cq.handle_overflow(self.k.cq_overflow());
        self.k.check_invariants().unwrap();
    }

    /// Reap everything ready: (user_data, res, flags).
    fn reap(&mut self) -> Vec<(u64, i32, u32)> {
        self.cq.handle_tail(self.k.cq_tail()).unwrap();
        let mut out = Vec::new();
        while let Some(i) = self.cq.reap() {
            let c = self.k.cqe(i);
            out.push((c.user_data, c.res, c.flags));
        }
        while let Some(h) = self.cq.poll_release_head() {
            self.k.set_cq_head(h);
        }
        out
    }

    fn user_data(v: &[(u64, i32, u32)]) -> Vec<u64> {
        v.iter().map(|c| c.0).collect()
    }
}

#[test]
fn submit_and_reap_across_the_wrap() {
    let geo = Geometry::new(4, 8, SetupFlags::empty(), Features::NODROP).unwrap();
    let mut app = App::with(geo, SimConfig::new(&geo), u32::MAX - 2);
    let mut all = Vec::new();
    for round in 0..5u64 {
        let uds: Vec<u64> = (0..3).map(|i| round * 10 + i).collect();
        app.push(&uds, 0);
        let (flags, r) = app.enter(3).unwrap();
        assert_eq!(flags, EnterFlags::GETEVENTS);
        assert_eq!(r, Ok(3));
        all.extend(App::user_data(&app.reap()));
    }
    let want: Vec<u64> = (0..5u64)
        .flat_map(|r| (0..3).map(move |i| r * 10 + i))
        .collect();
    assert_eq!(all, want);
    assert_eq!(app.k.consumed(), &want[..]);
}

#[test]
fn invalid_sq_array_index_is_dropped_and_ends_the_submission() {
    let mut app = App::new(4, 8, SetupFlags::empty(), Features::empty());
    app.k.sq_array_mut()[1] = 99;
    app.push(&[1, 2, 3], 0);
    let (_, r) = app.enter(0).unwrap();
    assert_eq!(r, Ok(1), "stops at the dropped entry");
    assert_eq!(app.sq.dropped(), 1);
    assert_eq!(app.sq.pending(), 1, "the dropped entry is consumed");
    app.k.sq_array_mut()[1] = 1;
    let (_, r) = app.enter(0).unwrap();
    assert_eq!(r, Ok(1));
    assert_eq!(App::user_data(&app.reap()), [1, 3]);
}

#[test]
fn no_sq_array_consumes_in_order() {
    let mut app = App::new(2, 4, SetupFlags::NO_SQARRAY, Features::empty());
    assert!(app.k.sq_array_mut().is_empty());
    for round in 0..3u64 {
        app.push(&[round, round + 100], 0);
        assert_eq!(app.enter(2).unwrap().1, Ok(2));
        assert_eq!(App::user_data(&app.reap()), [round, round + 100]);
    }
}

#[test]
fn nodrop_backlog_sets_cq_overflow_and_flushes_on_getevents() {
    let mut app = App::new(4, 4, SetupFlags::empty(), Features::NODROP);
    app.push(&[1, 2, 3, 4], 0);
    assert_eq!(app.enter(0).unwrap().1, Ok(4));
    app.push(&[5, 6], 0);
    assert_eq!(app.enter(0).unwrap().1, Ok(2));
    assert!(app.k.sq_flags().contains(SqFlags::CQ_OVERFLOW));
    assert_eq!(app.k.backlog(), 2);
    assert_eq!(App::user_data(&app.reap()), [1, 2, 3, 4]);
    // CQ empty, overflow flagged: the decision is to enter for a flush.
    let (flags, r) = app.enter(0).unwrap();
    assert_eq!((flags, r), (EnterFlags::GETEVENTS, Ok(0)));
    assert!(!app.k.sq_flags().contains(SqFlags::CQ_OVERFLOW));
    assert_eq!(App::user_data(&app.reap()), [5, 6]);
    assert_eq!(app.cq.overflow(), 0);
}

#[test]
fn without_nodrop_overflow_is_counted() {
    let mut app = App::new(4, 4, SetupFlags::empty(), Features::empty());
    app.push(&[1, 2, 3, 4], 0);
    app.enter(0);
    app.push(&[5], 0);
    app.enter(0);
    assert_eq!(app.cq.overflow(), 1);
    assert!(!app.k.sq_flags().contains(SqFlags::CQ_OVERFLOW));
    assert_eq!(App::user_data(&app.reap()), [1, 2, 3, 4]);
}

#[test]
fn credit_prevents_overflow() {
    let mut app = App::new(4, 4, SetupFlags::empty(), Features::empty());
    let mut credit = CqCredit::for_geometry(&app.geo);
    let mut next = 0u64;
    let mut refused = 0;
    for round in 0..20 {
        // Submit as much as credit allows, reaping every other round.
        for _ in 0..3 {
            match credit.acquire(next) {
                Ok(ud) => {
                    app.push(&[ud], 0);
                    next += 1;
                }
                Err(r) => {
                    assert_eq!(r.into_inner(), next);
                    refused += 1;
                }
            }
        }
        app.enter(0);
        if round % 2 == 1 {
            for (_, _, flags) in app.reap() {
                assert!(credit.handle_cqe(flags).unwrap());
            }
        }
    }
    assert!(refused > 0);
    assert_eq!(app.cq.overflow(), 0);
}

#[test]
fn sqpoll_sleeps_sets_need_wakeup_and_is_woken() {
    let geo = Geometry::new(4, 8, SetupFlags::SQPOLL, Features::NODROP).unwrap();
    let cfg = SimConfig {
        sqpoll_idle: 3,
        ..SimConfig::new(&geo)
    };
    let mut app = App::with(geo, cfg, 0);
    app.push(&[1, 2], 0);
    let input = app.input(0);
    assert_eq!(input.flags_read(), FlagsRead::FullFenceThenLoad);
    assert_eq!(decide_enter(&input), None, "the awake thread polls");
    assert!(app.k.step());
    app.sync();
    assert_eq!(app.sq.pending(), 0);
    let mut steps = 0;
    while app.k.step() {
        steps += 1;
    }
    assert_eq!(steps, 2, "idle for sqpoll_idle steps, then asleep");
    assert!(!app.k.sqpoll_awake());
    assert!(app.k.sq_flags().contains(SqFlags::NEED_WAKEUP));
    app.push(&[3], 0);
    assert!(!app.k.step(), "a sleeping thread consumes nothing");
    app.sync();
    assert_eq!(app.sq.pending(), 1);
    let (flags, r) = app.enter(0).unwrap();
    assert_eq!((flags, r), (EnterFlags::SQ_WAKEUP, Ok(1)));
    assert!(app.k.sqpoll_awake());
    app.k.step();
    app.sync();
    assert_eq!(App::user_data(&app.reap()), [1, 2, 3]);
}

#[test]
fn sqpoll_sq_wait_frees_space() {
    let geo = Geometry::new(2, 4, SetupFlags::SQPOLL, Features::empty()).unwrap();
    let mut app = App::with(geo, SimConfig::new(&geo), 0);
    app.push(&[1, 2], 0);
    assert!(app.sq.reserve(1).is_err());
    let input = EnterInput {
        want_sq_space: true,
        ..app.input(0)
    };
    let e = decide_enter(&input).unwrap();
    assert!(e.flags.contains(EnterFlags::SQ_WAIT));
    app.k.enter(e.to_submit, e.min_complete, e.flags).unwrap();
    app.sync();
    assert_eq!(app.sq.space(), 2);
}

#[test]
fn taskrun_flag_holds_completions_until_enter() {
    let flags = SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG;
    let geo = Geometry::new(4, 8, flags, Features::empty()).unwrap();
    let cfg = SimConfig {
        lag: 1,
        ..SimConfig::new(&geo)
    };
    let mut app = App::with(geo, cfg, 0);
    app.push(&[7], 0);
    assert_eq!(app.enter(0).unwrap().1, Ok(1));
    while app.k.step() {}
    assert!(app.k.sq_flags().contains(SqFlags::TASKRUN));
    assert_eq!(app.k.task_work(), 1);
    assert!(app.reap().is_empty());
    let (flags, _) = app.enter(0).unwrap();
    assert_eq!(flags, EnterFlags::GETEVENTS);
    assert!(!app.k.sq_flags().contains(SqFlags::TASKRUN));
    assert_eq!(App::user_data(&app.reap()), [7]);
}

#[test]
fn defer_taskrun_posts_only_on_getevents() {
    let flags = SetupFlags::DEFER_TASKRUN | SetupFlags::SINGLE_ISSUER;
    let mut app = App::new(4, 8, flags, Features::empty());
    app.push(&[1], 0);
    let e = decide_enter(&app.input(0)).unwrap();
    assert_eq!(app.k.enter(e.to_submit, 0, e.flags), Ok(1));
    assert_eq!(app.k.task_work(), 1);
    assert_eq!(app.k.sq_flags(), SqFlags::empty(), "no TASKRUN_FLAG");
    assert_eq!(app.k.enter(0, 0, EnterFlags::empty()), Ok(0));
    assert!(app.reap().is_empty());
    assert_eq!(app.k.enter(0, 1, EnterFlags::GETEVENTS), Ok(0));
    assert_eq!(App::user_data(&app.reap()), [1]);
}

#[test]
fn iopoll_completes_only_when_polled() {
    let geo = Geometry::new(4, 8, SetupFlags::IOPOLL, Features::empty()).unwrap();
    let cfg = SimConfig {
        lag: 3,
        ..SimConfig::new(&geo)
    };
    let mut app = App::with(geo, cfg, 0);
    app.push(&[1, 2], 0);
    let (flags, r) = app.enter(0).unwrap();
    assert_eq!((flags, r), (EnterFlags::GETEVENTS, Ok(2)));
    assert!(!app.k.step(), "time alone completes nothing under IOPOLL");
    assert!(app.reap().is_empty());
    let (flags, r) = app.enter(2).unwrap();
    assert_eq!((flags, r), (EnterFlags::GETEVENTS, Ok(0)));
    assert_eq!(App::user_data(&app.reap()), [1, 2]);
}

#[test]
fn lag_and_max_submit() {
    let geo = Geometry::new(8, 8, SetupFlags::empty(), Features::empty()).unwrap();
    let cfg = SimConfig {
        lag: 2,
        max_submit: Some(2),
        ..SimConfig::new(&geo)
    };
    let mut app = App::with(geo, cfg, 0);
    app.push(&[1, 2, 3, 4, 5], 0);
    assert_eq!(app.enter(0).unwrap().1, Ok(2));
    assert_eq!(app.sq.pending(), 3);
    assert_eq!(app.k.in_flight(), 2);
    assert!(app.k.step());
    assert!(app.reap().is_empty());
    assert!(!app.k.step());
    assert_eq!(App::user_data(&app.reap()), [1, 2]);
    // A short submit (2 of 3) does not wait.
    assert_eq!(app.enter(3).unwrap().1, Ok(2));
    assert_eq!(app.k.in_flight(), 2);
    assert!(app.reap().is_empty());
    // A full submit waits, letting time pass until enough completed.
    assert_eq!(app.enter(3).unwrap().1, Ok(1));
    assert_eq!(App::user_data(&app.reap()), [3, 4, 5]);
}

#[test]
fn injected_faults() {
    let mut app = App::new(4, 8, SetupFlags::empty(), Features::empty());
    app.push(&[1, 2, 3], 0);
    for e in [Errno::EINTR, Errno::EAGAIN, Errno::EBUSY] {
        app.k.inject(Fault::Error(e));
        assert_eq!(app.enter(0).unwrap().1, Err(e));
        assert_eq!(app.sq.pending(), 3, "a failed enter consumes nothing");
    }
    app.k.inject(Fault::ShortSubmit(1));
    assert_eq!(app.enter(3).unwrap().1, Ok(1));
    assert_eq!(app.enter(0).unwrap().1, Ok(2));
    assert_eq!(App::user_data(&app.reap()), [1, 2, 3]);
    // Waiting for what will never come: ETIME instead of sleeping forever.
    assert_eq!(app.k.enter(0, 1, EnterFlags::GETEVENTS), Err(Errno::ETIME));
}

#[test]
fn scripted_multishot_skip_success_and_cqe32() {
    let geo = Geometry::new(4, 8, SetupFlags::CQE32, Features::NODROP).unwrap();
    let mut app = App::with(geo, SimConfig::new(&geo), 0);
    let more = SimCompletion::new(5, IORING_CQE_F_MORE);
    let last = SimCompletion {
        res: -125,
        flags: 0,
        big: [0xdead_beef, 0x1234_5678_9abc_def0],
    };
    app.k.script(9, [more, more, last]);
    app.k.script(8, [SimCompletion::new(-22, 0)]);
    app.push(&[9, 8], 0);
    app.push(&[7], IOSQE_CQE_SKIP_SUCCESS);
    let mut credit = CqCredit::for_geometry(&geo);
    credit.acquire_n(3, ()).unwrap();
    // user_data 7 skips its successful CQE: give its credit back by hand.
    credit.release(1).unwrap();
    app.enter(0);
    app.cq.handle_tail(app.k.cq_tail()).unwrap();
    let mut got = Vec::new();
    while let Some(i) = app.cq.reap() {
        let c = app.k.cqe32(i);
        assert_eq!(c.cqe, app.k.cqe(i));
        got.push((c.cqe.user_data, c.cqe.res, c.big_cqe));
        credit.handle_cqe(c.cqe.flags).unwrap();
    }
    assert_eq!(
        got,
        [
            (9, 5, [0, 0]),
            (9, 5, [0, 0]),
            (9, -125, [0xdead_beef, 0x1234_5678_9abc_def0]),
            (8, -22, [0, 0]),
        ]
    );
    assert_eq!(credit.in_flight(), 0);
    assert_eq!(app.k.consumed(), &[9, 8, 7]);
}

#[test]
fn cqe_mixed_is_refused() {
    let geo = Geometry::new(4, 8, SetupFlags::CQE_MIXED, Features::empty()).unwrap();
    assert!(SimKernel::new(geo, SimConfig::new(&geo)).is_err());
}

#[test]
fn reorder_posts_a_batch_in_reverse() {
    let geo = Geometry::new(4, 8, SetupFlags::empty(), Features::empty()).unwrap();
    let cfg = SimConfig {
        reorder: true,
        ..SimConfig::new(&geo)
    };
    let mut app = App::with(geo, cfg, 0);
    app.push(&[1, 2, 3], 0);
    assert_eq!(app.enter(3).unwrap().1, Ok(3));
    assert_eq!(App::user_data(&app.reap()), [3, 2, 1]);
    assert_eq!(app.k.consumed(), &[1, 2, 3], "consumed in order");
}
