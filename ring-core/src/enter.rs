//! When to call `io_uring_enter(2)`, and with what.

use ring_io_sys::{EnterFlags, Features, SetupFlags, SqFlags};

/// How the caller must read the SQ ring's flags word (`sq.flags`) before
/// calling [`decide_enter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagsRead {
    /// A plain atomic load (`READ_ONCE`, `Ordering::Relaxed`): the flags are
    /// hints whose staleness costs at most one extra or one later enter.
    Load,
    /// A full fence (`fence(SeqCst)`, the kernel's `smp_mb()`) after the
    /// store of the SQ tail and before the load of the flags. Under SQPOLL
    /// the kernel thread sets `IORING_SQ_NEED_WAKEUP`, then
    /// `smp_mb__after_atomic()`, then re-reads the SQ tail before sleeping
    /// (`io_sq_thread`); with the fence on both sides either the thread sees
    /// the new tail or the application sees `NEED_WAKEUP`. Without it both
    /// can miss, and the entries sit unsubmitted with the thread asleep.
    /// liburing: `io_uring_smp_mb()` in `sq_ring_needs_enter`.
    FullFenceThenLoad,
}

/// What the caller wants from the kernel now, and what it sees of the ring.
/// The input of [`decide_enter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EnterInput {
    /// SQEs published and not yet consumed ([`SqState::pending`](crate::SqState::pending)).
    pub to_submit: u32,
    /// Completions the caller wants to be ready before returning (0: none,
    /// do not wait).
    pub wait_nr: u32,
    /// Completions already ready in the CQ ([`CqState::ready`](crate::CqState::ready)).
    pub cq_ready: u32,
    /// The caller needs SQ space (the SQ is full); only meaningful under
    /// SQPOLL, where the kernel thread frees it.
    pub want_sq_space: bool,
    /// The ring's setup flags.
    pub setup: SetupFlags,
    /// The SQ flags word (`sq.flags`), read as [`flags_read`](Self::flags_read) says.
    pub sq_flags: SqFlags,
    /// The kernel's features.
    pub features: Features,
    /// The caller wants the wait bounded by a timeout.
    pub timeout: bool,
    /// The ring fd is registered (`IORING_REGISTER_RING_FDS`): enter with
    /// the index.
    pub registered_ring: bool,
}

/// The arguments of one `io_uring_enter(2)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Enter {
    /// `to_submit`.
    pub to_submit: u32,
    /// `min_complete` (0 unless `GETEVENTS`).
    pub min_complete: u32,
    /// `flags`.
    pub flags: EnterFlags,
    /// Pass an `io_uring_getevents_arg` carrying the timeout (the flags
    /// include `IORING_ENTER_EXT_ARG`); otherwise pass no argument (or a
    /// plain sigmask).
    pub ext_arg: bool,
}

impl EnterInput {
    /// How to read `sq.flags` for this input: under SQPOLL with something to
    /// submit, a full fence must separate the SQ tail store from the flags
    /// load (see [`FlagsRead::FullFenceThenLoad`]).
    #[inline]
    pub fn flags_read(&self) -> FlagsRead {
        if self.to_submit > 0 && self.setup.contains(SetupFlags::SQPOLL) {
            FlagsRead::FullFenceThenLoad
        } else {
            FlagsRead::Load
        }
    }
}

/// Whether a timeout can be passed to `io_uring_enter` (`IORING_FEAT_EXT_ARG`,
/// Linux 5.11). Without it, liburing queues an `IORING_OP_TIMEOUT` SQE
/// instead (`__io_uring_submit_timeout`): the caller must reserve and fill
/// that SQE itself before deciding; [`decide_enter`] then ignores `timeout`.
#[inline]
pub fn timeout_needs_sqe(features: Features) -> bool {
    !features.contains(Features::EXT_ARG)
}

/// Decide whether to call `io_uring_enter(2)` and with which arguments.
/// `None` means there is nothing the kernel must do now.
///
/// This is liburing's logic (`__io_uring_submit`, `_io_uring_get_cqe`,
/// `sq_ring_needs_enter`, `cq_ring_needs_flush`, `io_uring_sqring_wait`,
/// `io_uring_wait_cqes_new`), as one pure function:
///
/// - submission: entries are consumed only inside `io_uring_enter`
///   (`io_submit_sqes`) unless an SQPOLL thread polls the ring; under SQPOLL
///   an enter is needed only to wake a sleeping thread (`NEED_WAKEUP`, with
///   `IORING_ENTER_SQ_WAKEUP`), and the flags must have been read after a
///   full fence ([`EnterInput::flags_read`]);
/// - `IORING_ENTER_SQ_WAIT` under SQPOLL when the caller waits for SQ space
///   (`io_sqpoll_wait_sq`);
/// - `IORING_ENTER_GETEVENTS` with `min_complete = wait_nr` when fewer than
///   `wait_nr` completions are ready (`io_cqring_wait` sleeps until the CQ
///   holds `min_complete`); and also, whenever the call is made anyway or
///   the CQ is empty, when completions can only appear through the kernel:
///   `IORING_SETUP_IOPOLL` without SQPOLL (completions are found by polling
///   in `io_iopoll_check`), `IORING_SQ_CQ_OVERFLOW` (the backlog is flushed
///   by `io_cqring_overflow_flush` on GETEVENTS) or `IORING_SQ_TASKRUN`
///   (task work runs on the way out of the syscall);
/// - `IORING_ENTER_EXT_ARG` when waiting with a timeout and the kernel has
///   `IORING_FEAT_EXT_ARG`;
/// - `IORING_ENTER_REGISTERED_RING` on every call when the fd is registered.
///
/// The common case is decided first, in a few compares: no SQPOLL, no
/// IOPOLL, no SQ wait, no timeout, and nothing only the kernel can flush
/// (`CQ_OVERFLOW`, `TASKRUN`). Everything else goes through the general
/// rules below; both give the same answer (a proptest checks).
#[must_use]
#[inline]
pub fn decide_enter(input: &EnterInput) -> Option<Enter> {
    let plain = !input
        .setup
        .intersects(SetupFlags::SQPOLL | SetupFlags::IOPOLL)
        && !input
            .sq_flags
            .intersects(SqFlags::CQ_OVERFLOW | SqFlags::TASKRUN)
        && !input.want_sq_space
        && !input.timeout;
    if !plain {
        return decide_enter_general(input);
    }
    // Entries are consumed only inside io_uring_enter (io_submit_sqes);
    // GETEVENTS with min_complete = wait_nr when fewer are ready.
    let must_wait = input.wait_nr > input.cq_ready;
    if !must_wait && input.to_submit == 0 {
        return None;
    }
    let mut flags = EnterFlags::empty();
    if must_wait {
        flags |= EnterFlags::GETEVENTS;
    }
    if input.registered_ring {
        flags |= EnterFlags::REGISTERED_RING;
    }
    Some(Enter {
        to_submit: input.to_submit,
        min_complete: if must_wait { input.wait_nr } else { 0 },
        flags,
        ext_arg: false,
    })
}

/// The enter of a submit on a ring without SQPOLL or IOPOLL, with entries
/// to submit, no SQ wait and no timeout: liburing's `__io_uring_submit`,
/// the common case of [`decide_enter`] decided in a few instructions.
///
/// The call is always made (entries are consumed only inside it), with
/// `to_submit` entries, and with `IORING_ENTER_GETEVENTS` and
/// `min_complete = wait_nr` whenever `wait_nr > 0`: where [`decide_enter`]
/// leaves GETEVENTS out because `wait_nr` completions are already ready,
/// this asks the kernel, which counts them in the CQ before it sleeps and
/// returns at once, so nothing needs the CQ's state here. Only without a
/// wait can the SQ flags add GETEVENTS (`IORING_SQ_CQ_OVERFLOW`,
/// `IORING_SQ_TASKRUN`: completions only the kernel can make visible), so
/// `sq_flags` (the flags word, read as a plain load,
/// [`FlagsRead::Load`]) is called only then, as liburing reads it only
/// then. `IORING_ENTER_REGISTERED_RING` is never set here: the caller's
/// enter names the ring.
#[must_use]
#[inline]
pub fn decide_submit(to_submit: u32, wait_nr: u32, sq_flags: impl FnOnce() -> SqFlags) -> Enter {
    let getevents = wait_nr > 0 || sq_flags().intersects(SqFlags::CQ_OVERFLOW | SqFlags::TASKRUN);
    Enter {
        to_submit,
        min_complete: wait_nr,
        flags: if getevents {
            EnterFlags::GETEVENTS
        } else {
            EnterFlags::empty()
        },
        ext_arg: false,
    }
}

/// [`decide_enter`] for every input (inline too: taking the input's
/// address for an out-of-line call would keep it in memory on the fast
/// path).
#[inline]
fn decide_enter_general(input: &EnterInput) -> Option<Enter> {
    let sqpoll = input.setup.contains(SetupFlags::SQPOLL);
    let mut flags = EnterFlags::empty();
    let mut enter = false;

    if input.to_submit > 0 {
        if !sqpoll {
            // Without SQPOLL the kernel reads the SQ only in io_submit_sqes,
            // called from io_uring_enter.
            enter = true;
        } else if input.sq_flags.contains(SqFlags::NEED_WAKEUP) {
            // The SQPOLL thread set IORING_SQ_NEED_WAKEUP and sleeps on
            // sqd->wait; io_uring_enter wakes it for IORING_ENTER_SQ_WAKEUP.
            // Read after smp_mb() (FlagsRead::FullFenceThenLoad).
            enter = true;
            flags |= EnterFlags::SQ_WAKEUP;
        }
        // Otherwise the awake SQPOLL thread picks the new tail up itself.
    }

    if input.want_sq_space && sqpoll {
        // io_sqpoll_wait_sq: sleep until the SQPOLL thread consumed an entry.
        // Without SQPOLL, submitting is what frees space.
        enter = true;
        flags |= EnterFlags::SQ_WAIT;
        if input.sq_flags.contains(SqFlags::NEED_WAKEUP) {
            // A sleeping thread frees nothing: wake it too.
            flags |= EnterFlags::SQ_WAKEUP;
        }
    }

    let must_wait = input.wait_nr > input.cq_ready;
    // Completions that only the kernel can make visible:
    // - IOPOLL without SQPOLL: io_iopoll_check polls the device only inside
    //   io_uring_enter with GETEVENTS (liburing's INT_FLAG_CQ_ENTER);
    // - IORING_SQ_CQ_OVERFLOW: io_cqring_overflow_flush moves the backlog to
    //   the CQ only on GETEVENTS;
    // - IORING_SQ_TASKRUN: pending task work posts its CQEs when it runs,
    //   on return from the syscall (io_run_task_work / io_run_local_work).
    let kernel_has_more = (input.setup.contains(SetupFlags::IOPOLL) && !sqpoll)
        || input
            .sq_flags
            .intersects(SqFlags::CQ_OVERFLOW | SqFlags::TASKRUN);
    // liburing's submit path adds GETEVENTS whenever cq_ring_needs_enter;
    // its peek path enters for it only when the CQ is empty.
    let flush = kernel_has_more && (enter || input.cq_ready == 0 || must_wait);
    if must_wait || flush {
        enter = true;
        flags |= EnterFlags::GETEVENTS;
    }

    if !enter {
        return None;
    }

    let getevents = flags.contains(EnterFlags::GETEVENTS);
    let min_complete = if getevents { input.wait_nr } else { 0 };
    // The timeout only bounds a wait (io_cqring_wait reads ext_arg->ts), and
    // needs IORING_FEAT_EXT_ARG (io_get_ext_arg); see timeout_needs_sqe.
    let ext_arg = input.timeout && must_wait && input.features.contains(Features::EXT_ARG);
    if ext_arg {
        flags |= EnterFlags::EXT_ARG;
    }
    if input.registered_ring {
        // io_uring_enter looks the fd up in current->io_uring->registered_rings.
        flags |= EnterFlags::REGISTERED_RING;
    }
    Some(Enter {
        to_submit: input.to_submit,
        min_complete,
        flags,
        ext_arg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> EnterInput {
        EnterInput::default()
    }

    #[test]
    fn nothing_to_do() {
        assert_eq!(decide_enter(&input()), None);
        let i = EnterInput {
            wait_nr: 2,
            cq_ready: 2,
            ..input()
        };
        assert_eq!(decide_enter(&i), None);
    }

    #[test]
    fn submit_without_sqpoll() {
        let i = EnterInput {
            to_submit: 3,
            ..input()
        };
        assert_eq!(i.flags_read(), FlagsRead::Load);
        assert_eq!(
            decide_enter(&i),
            Some(Enter {
                to_submit: 3,
                min_complete: 0,
                flags: EnterFlags::empty(),
                ext_arg: false
            })
        );
    }

    #[test]
    fn submit_and_wait() {
        let i = EnterInput {
            to_submit: 1,
            wait_nr: 1,
            registered_ring: true,
            ..input()
        };
        let e = decide_enter(&i).unwrap();
        assert_eq!(e.min_complete, 1);
        assert_eq!(e.flags, EnterFlags::GETEVENTS | EnterFlags::REGISTERED_RING);
    }

    #[test]
    fn sqpoll_awake_and_asleep() {
        let awake = EnterInput {
            to_submit: 4,
            setup: SetupFlags::SQPOLL,
            ..input()
        };
        assert_eq!(awake.flags_read(), FlagsRead::FullFenceThenLoad);
        assert_eq!(decide_enter(&awake), None);
        let asleep = EnterInput {
            sq_flags: SqFlags::NEED_WAKEUP,
            ..awake
        };
        let e = decide_enter(&asleep).unwrap();
        assert_eq!(e.flags, EnterFlags::SQ_WAKEUP);
        assert_eq!(e.to_submit, 4);
        let nothing = EnterInput {
            to_submit: 0,
            ..asleep
        };
        assert_eq!(nothing.flags_read(), FlagsRead::Load);
        assert_eq!(decide_enter(&nothing), None);
    }

    #[test]
    fn sq_wait_only_under_sqpoll() {
        let i = EnterInput {
            want_sq_space: true,
            ..input()
        };
        assert_eq!(decide_enter(&i), None);
        let i = EnterInput {
            setup: SetupFlags::SQPOLL,
            sq_flags: SqFlags::NEED_WAKEUP,
            ..i
        };
        assert_eq!(
            decide_enter(&i).unwrap().flags,
            EnterFlags::SQ_WAIT | EnterFlags::SQ_WAKEUP
        );
    }

    #[test]
    fn flush_and_iopoll() {
        for (setup, sq_flags) in [
            (SetupFlags::IOPOLL, SqFlags::empty()),
            (SetupFlags::empty(), SqFlags::CQ_OVERFLOW),
            (SetupFlags::empty(), SqFlags::TASKRUN),
        ] {
            let empty_cq = EnterInput {
                setup,
                sq_flags,
                ..input()
            };
            assert_eq!(
                decide_enter(&empty_cq).unwrap().flags,
                EnterFlags::GETEVENTS,
                "{setup:?} {sq_flags:?}"
            );
            let has_cqes = EnterInput {
                cq_ready: 1,
                ..empty_cq
            };
            assert_eq!(decide_enter(&has_cqes), None);
            let submitting = EnterInput {
                to_submit: 1,
                ..has_cqes
            };
            assert_eq!(
                decide_enter(&submitting).unwrap().flags,
                EnterFlags::GETEVENTS
            );
        }
        // IOPOLL with SQPOLL: the SQPOLL thread polls.
        let both = EnterInput {
            setup: SetupFlags::IOPOLL | SetupFlags::SQPOLL,
            ..input()
        };
        assert_eq!(decide_enter(&both), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: if cfg!(miri) { 16 } else { 4096 },
            failure_persistence: None,
            ..Default::default()
        })]

        /// The fast path of `decide_enter` answers as the general rules do.
        #[test]
        fn fast_path_agrees_with_general(
            to_submit in 0u32..4, wait_nr in 0u32..4, cq_ready in 0u32..4,
            want_sq_space: bool, timeout: bool, registered_ring: bool,
            setup: u32, sq_flags: u8, features: u32,
        ) {
            let input = EnterInput {
                to_submit, wait_nr, cq_ready, want_sq_space, timeout, registered_ring,
                setup: SetupFlags::from_bits_retain(setup),
                sq_flags: SqFlags::from_bits_retain(u32::from(sq_flags)),
                features: Features::from_bits_retain(features),
            };
            proptest::prop_assert_eq!(decide_enter(&input), decide_enter_general(&input));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: if cfg!(miri) { 16 } else { 4096 },
            failure_persistence: None,
            ..Default::default()
        })]

        /// Where it applies, `decide_submit` enters as `decide_enter` does,
        /// except that it may ask for GETEVENTS with `min_complete` already
        /// ready (the kernel then returns at once); it reads the SQ flags
        /// only when not waiting.
        #[test]
        fn submit_agrees_with_decide_enter(
            to_submit in 1u32..4, wait_nr in 0u32..4, cq_ready in 0u32..4,
            setup: u32, sq_flags: u8, features: u32,
        ) {
            let setup = SetupFlags::from_bits_retain(setup)
                - (SetupFlags::SQPOLL | SetupFlags::IOPOLL);
            let sq_flags = SqFlags::from_bits_retain(u32::from(sq_flags));
            let input = EnterInput {
                to_submit, wait_nr, cq_ready, setup, sq_flags,
                features: Features::from_bits_retain(features),
                ..EnterInput::default()
            };
            let general = decide_enter(&input).expect("entries to submit need an enter");
            let mut read = false;
            let fast = decide_submit(to_submit, wait_nr, || {
                read = true;
                sq_flags
            });
            proptest::prop_assert_eq!(read, wait_nr == 0);
            proptest::prop_assert_eq!(fast.to_submit, general.to_submit);
            proptest::prop_assert!(!fast.ext_arg);
            if general.flags.contains(EnterFlags::GETEVENTS) {
                proptest::prop_assert_eq!(fast.flags, general.flags);
                proptest::prop_assert_eq!(fast.min_complete, general.min_complete);
            } else if fast.flags.contains(EnterFlags::GETEVENTS) {
                // Asked of the kernel, already there: no wait.
                proptest::prop_assert!(fast.min_complete <= cq_ready);
                proptest::prop_assert_eq!(fast.flags, EnterFlags::GETEVENTS);
            } else {
                proptest::prop_assert_eq!(fast, general);
            }
        }
    }

    #[test]
    fn timeout_uses_ext_arg_only_when_waiting_and_supported() {
        let i = EnterInput {
            wait_nr: 1,
            timeout: true,
            features: Features::EXT_ARG,
            ..input()
        };
        let e = decide_enter(&i).unwrap();
        assert!(e.ext_arg);
        assert_eq!(e.flags, EnterFlags::GETEVENTS | EnterFlags::EXT_ARG);
        let old = EnterInput {
            features: Features::empty(),
            ..i
        };
        assert!(timeout_needs_sqe(old.features));
        assert!(!timeout_needs_sqe(i.features));
        assert!(!decide_enter(&old).unwrap().ext_arg);
        let no_wait = EnterInput {
            wait_nr: 0,
            to_submit: 1,
            ..i
        };
        assert!(!decide_enter(&no_wait).unwrap().ext_arg);
    }
}
