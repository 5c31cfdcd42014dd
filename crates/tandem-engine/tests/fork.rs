//! Fork arbitration of `<Dial>` on virtual time: each test is named after the
//! rule it proves (docs/fork-arbitration.md); the last one replays many seeded
//! random interleavings and checks the invariants.

use std::time::{Duration, Instant};

use tandem_engine::fork::{
    Action, DialResult, ForkArbiter, ForkStatus, RingbackPolicy, Screening, is_busy_code,
};
use tandem_twiml::{DialCallStatus, ScreeningVerdict};

const TIMEOUT: Duration = Duration::from_secs(30);
const MS: Duration = Duration::from_millis(1);

fn fork(t0: Instant, branches: usize) -> ForkArbiter {
    screened_fork(t0, &vec![false; branches])
}

fn screened_fork(t0: Instant, screened: &[bool]) -> ForkArbiter {
    let policy = RingbackPolicy::CalleeEarlyMedia;
    let mut a = ForkArbiter::new(t0, screened.len(), TIMEOUT, screened.to_vec(), policy);
    assert_eq!(drain(&mut a), [Action::PlayRingback]);
    a
}

/// The arbiter's decisions, without the per-branch `Ended` notices (their
/// own tests check those).
fn drain(a: &mut ForkArbiter) -> Vec<Action> {
    std::iter::from_fn(|| a.poll_action())
        .filter(|x| !matches!(x, Action::Ended { .. }))
        .collect()
}

/// Every decision, `Ended` included.
fn drain_all(a: &mut ForkArbiter) -> Vec<Action> {
    std::iter::from_fn(|| a.poll_action()).collect()
}

fn finished(status: ForkStatus, sip_code: Option<u16>) -> Action {
    Action::Finished(DialResult { status, sip_code })
}

#[test]
fn first_2xx_wins_and_every_other_pending_branch_is_cancelled_once() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_provisional(t0 + MS, 0, 180, false);
    a.on_provisional(t0 + MS, 2, 180, false);
    a.on_answered(t0 + 2 * MS, 1);
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(0),
            Action::Cancel(2),
            Action::Bridge(1),
            finished(ForkStatus::Answered { branch: 1 }, Some(200)),
        ]
    );
    // The 487s answering the CANCELs produce nothing more.
    a.on_failed(t0 + 3 * MS, 0, 487);
    a.on_failed(t0 + 3 * MS, 2, 487);
    assert!(drain(&mut a).is_empty());
    assert!(a.is_settled());
}

#[test]
fn a_2xx_arriving_after_the_winner_is_acked_then_byed() {
    let t0 = Instant::now();
    let mut a = fork(t0, 2);
    a.on_answered(t0 + MS, 0);
    assert_eq!(drain(&mut a)[..2], [Action::Cancel(1), Action::Bridge(0)]);
    a.on_answered(t0 + 2 * MS, 1);
    assert_eq!(drain(&mut a), [Action::AckThenBye(1)]);
    // Its BYE crossing ours, or a retransmitted 2xx, changes nothing.
    a.on_answered(t0 + 3 * MS, 1);
    a.on_branch_hangup(t0 + 3 * MS, 1);
    assert!(drain(&mut a).is_empty());
    assert!(a.is_settled());
}

#[test]
fn cancel_is_never_sent_to_a_branch_that_already_failed() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_failed(t0 + MS, 0, 404);
    assert!(drain(&mut a).is_empty());
    a.on_answered(t0 + 2 * MS, 2);
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(1),
            Action::Bridge(2),
            finished(ForkStatus::Answered { branch: 2 }, Some(200)),
        ]
    );
}

#[test]
fn cancel_is_never_sent_to_a_branch_that_already_answered() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false, false]);
    a.on_answered(t0 + MS, 0);
    assert_eq!(drain(&mut a), [Action::StartScreening(0)]);
    a.on_answered(t0 + 2 * MS, 1);
    // Branch 0 answered already: it is hung up, never cancelled.
    assert_eq!(
        drain(&mut a),
        [
            Action::Bye(0),
            Action::Cancel(2),
            Action::Bridge(1),
            finished(ForkStatus::Answered { branch: 1 }, Some(200)),
        ]
    );
}

#[test]
fn one_branch_busy_ends_only_that_branch() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    for (branch, code) in [(0, 486), (2, 503)] {
        a.on_failed(t0 + MS, branch, code);
    }
    assert!(drain(&mut a).is_empty());
    assert!(!a.is_finished());
    a.on_answered(t0 + 2 * MS, 1);
    assert_eq!(
        drain(&mut a),
        [
            Action::Bridge(1),
            finished(ForkStatus::Answered { branch: 1 }, Some(200)),
        ]
    );
    assert!(a.is_settled());
}

#[test]
fn all_branches_failing_with_one_busy_gives_busy() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_failed(t0 + MS, 0, 404);
    a.on_failed(t0 + 2 * MS, 1, 486);
    assert!(drain(&mut a).is_empty());
    a.on_failed(t0 + 3 * MS, 2, 408);
    assert_eq!(drain(&mut a), [finished(ForkStatus::Busy, Some(486))]);
    assert_eq!(ForkStatus::Busy.dial_call_status(), DialCallStatus::Busy);
    assert!(a.is_settled());
}

#[test]
fn all_branches_failing_without_busy_gives_failed_with_the_first_code() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_failed(t0 + MS, 1, 404);
    a.on_failed(t0 + 2 * MS, 0, 503);
    a.on_failed(t0 + 3 * MS, 2, 500);
    assert_eq!(drain(&mut a), [finished(ForkStatus::Failed, Some(404))]);
}

/// One mapping from SIP to status (issue "Calls that last"): a callee that
/// did not answer (408, 480) makes the Dial `no-answer`, not `failed`,
/// unless another was busy; the child reports `no-answer` too.
#[test]
fn unanswered_callees_make_the_dial_no_answer_and_busy_wins_over_them() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_failed(t0 + MS, 1, 404);
    a.on_failed(t0 + 2 * MS, 0, 480);
    a.on_failed(t0 + 3 * MS, 2, 408);
    assert_eq!(drain(&mut a), [finished(ForkStatus::NoAnswer, Some(480))]);
    let mut a = fork(t0, 2);
    a.on_failed(t0 + MS, 0, 480);
    a.on_failed(t0 + 2 * MS, 1, 486);
    assert_eq!(drain(&mut a), [finished(ForkStatus::Busy, Some(486))]);
    use tandem_engine::fork::child_status;
    use tandem_webhook::CallStatus;
    for (code, status) in [
        (486, CallStatus::Busy),
        (600, CallStatus::Busy),
        (603, CallStatus::Busy),
        (408, CallStatus::NoAnswer),
        (480, CallStatus::NoAnswer),
        (487, CallStatus::Canceled),
        (404, CallStatus::Failed),
        (503, CallStatus::Failed),
    ] {
        assert_eq!(child_status(code), status, "{code}");
    }
}

/// Each branch ends the moment it is decided, with its own status: a busy
/// callee at its 486, the losers of the race `canceled` when cancelled.
#[test]
fn every_branch_reports_its_own_end_when_it_happens() {
    use tandem_webhook::CallStatus;
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    let _ = drain_all(&mut a);
    a.on_failed(t0 + MS, 0, 486);
    assert_eq!(
        drain_all(&mut a),
        [Action::Ended {
            branch: 0,
            status: CallStatus::Busy
        }]
    );
    a.on_answered(t0 + 2 * MS, 2);
    assert_eq!(
        drain_all(&mut a),
        [
            Action::Cancel(1),
            Action::Ended {
                branch: 1,
                status: CallStatus::Canceled
            },
            Action::Bridge(2),
            finished(ForkStatus::Answered { branch: 2 }, Some(200)),
        ]
    );
    // The cancelled branch's 487 ends nothing more; the bridge's end does.
    a.on_failed(t0 + 3 * MS, 1, 487);
    assert!(drain_all(&mut a).is_empty());
    a.on_bridge_ended(2);
    assert_eq!(
        drain_all(&mut a),
        [Action::Ended {
            branch: 2,
            status: CallStatus::Completed
        }]
    );
}

/// Branches still ringing at the Dial timeout end `no-answer`.
#[test]
fn branches_cancelled_by_the_timeout_end_no_answer() {
    use tandem_webhook::CallStatus;
    let t0 = Instant::now();
    let mut a = fork(t0, 1);
    let _ = drain_all(&mut a);
    a.handle_timeout(t0 + TIMEOUT);
    assert_eq!(
        drain_all(&mut a),
        [
            Action::Cancel(0),
            Action::Ended {
                branch: 0,
                status: CallStatus::NoAnswer
            },
            finished(ForkStatus::NoAnswer, None),
        ]
    );
}

#[test]
fn busy_everywhere_and_decline_count_as_busy() {
    assert!(is_busy_code(486) && is_busy_code(600) && is_busy_code(603));
    for code in [404, 408, 480, 487, 500, 503, 604, 302] {
        assert!(!is_busy_code(code), "{code}");
    }
    for code in [600, 603] {
        let t0 = Instant::now();
        let mut a = fork(t0, 2);
        a.on_failed(t0 + MS, 0, 404);
        a.on_failed(t0 + MS, 1, code);
        assert_eq!(drain(&mut a), [finished(ForkStatus::Busy, Some(code))]);
    }
}

#[test]
fn timeout_fires_exactly_at_the_deadline_not_a_microsecond_before() {
    let t0 = Instant::now();
    let mut a = fork(t0, 2);
    assert_eq!(a.poll_timeout(), Some(t0 + TIMEOUT));
    a.handle_timeout(t0 + TIMEOUT - Duration::from_micros(1));
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.poll_timeout(), Some(t0 + TIMEOUT));
    a.handle_timeout(t0 + TIMEOUT);
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(0),
            Action::Cancel(1),
            finished(ForkStatus::NoAnswer, None),
        ]
    );
    assert_eq!(a.poll_timeout(), None);
    assert!(!a.is_settled(), "the 487s are still due");
    a.on_failed(t0 + TIMEOUT + MS, 0, 487);
    a.on_failed(t0 + TIMEOUT + MS, 1, 487);
    assert!(drain(&mut a).is_empty());
    assert!(a.is_settled());
}

#[test]
fn timeout_cancels_only_the_branches_still_pending_and_gives_no_answer() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_failed(t0 + MS, 1, 486);
    a.handle_timeout(t0 + TIMEOUT + Duration::from_secs(3));
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(0),
            Action::Cancel(2),
            finished(ForkStatus::NoAnswer, None),
        ]
    );
    assert_eq!(
        ForkStatus::NoAnswer.dial_call_status(),
        DialCallStatus::NoAnswer
    );
}

#[test]
fn a_2xx_processed_at_the_deadline_loses_to_the_timeout() {
    let t0 = Instant::now();
    let mut a = fork(t0, 1);
    // The actor has not run handle_timeout yet; the input's `now` does.
    a.on_answered(t0 + TIMEOUT, 0);
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(0),
            finished(ForkStatus::NoAnswer, None),
            Action::AckThenBye(0),
        ]
    );
    // One microsecond earlier it wins.
    let mut a = fork(t0, 1);
    a.on_answered(t0 + TIMEOUT - Duration::from_micros(1), 0);
    assert_eq!(drain(&mut a)[0], Action::Bridge(0));
}

#[test]
fn caller_hangup_cancels_pending_byes_screening_and_gives_canceled() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[false, true, false, false]);
    a.on_failed(t0 + MS, 3, 404);
    a.on_answered(t0 + MS, 1);
    assert_eq!(drain(&mut a), [Action::StartScreening(1)]);
    a.on_caller_hangup(t0 + 2 * MS);
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(0),
            Action::Bye(1),
            Action::Cancel(2),
            finished(ForkStatus::Canceled, None),
        ]
    );
    assert_eq!(
        ForkStatus::Canceled.dial_call_status(),
        DialCallStatus::Canceled
    );
    assert_eq!(a.poll_timeout(), None);
}

/// The REST API cancels one ringing branch of three: it alone is
/// cancelled and the others ring on; once the last one left is cancelled
/// too (the first was busy), the Dial ends `canceled`. A bridged branch is
/// not the arbiter's to cancel.
#[test]
fn branches_cancelled_by_the_api_end_the_dial_canceled_when_none_is_left() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    assert!(a.on_branch_cancelled(t0 + MS, 1));
    assert_eq!(
        drain_all(&mut a),
        [
            Action::Cancel(1),
            Action::Ended {
                branch: 1,
                status: tandem_types::CallStatus::Canceled
            }
        ]
    );
    assert!(!a.on_branch_cancelled(t0 + MS, 1), "already cancelled");
    a.on_failed(t0 + 2 * MS, 0, 486);
    assert!(drain(&mut a).is_empty(), "branch 2 still rings");
    assert!(a.on_branch_cancelled(t0 + 3 * MS, 2));
    assert_eq!(
        drain(&mut a),
        [Action::Cancel(2), finished(ForkStatus::Canceled, None)]
    );

    let mut b = fork(t0, 1);
    b.on_answered(t0 + MS, 0);
    drain(&mut b);
    assert!(
        !b.on_branch_cancelled(t0 + 2 * MS, 0),
        "bridged: a BYE ends it"
    );
    assert!(drain(&mut b).is_empty());
}

#[test]
fn caller_cancel_while_ringing_cancels_every_branch() {
    let t0 = Instant::now();
    let mut a = fork(t0, 2);
    a.on_provisional(t0 + MS, 0, 180, false);
    a.on_caller_cancel(t0 + 2 * MS);
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(0),
            Action::Cancel(1),
            finished(ForkStatus::Canceled, None),
        ]
    );
}

#[test]
fn caller_cancel_crossing_a_callee_200_acks_then_byes_it_and_never_bridges() {
    let t0 = Instant::now();
    let mut a = fork(t0, 1);
    a.on_provisional(t0 + MS, 0, 180, false);
    a.on_caller_cancel(t0 + 2 * MS);
    assert_eq!(
        drain(&mut a),
        [Action::Cancel(0), finished(ForkStatus::Canceled, None)]
    );
    // The callee's 200 was already on the wire when our CANCEL left.
    a.on_answered(t0 + 3 * MS, 0);
    assert_eq!(drain(&mut a), [Action::AckThenBye(0)]);
    assert_eq!(a.result().map(|r| r.status), Some(ForkStatus::Canceled));
    assert!(a.is_settled());
}

#[test]
fn two_callees_answering_at_the_same_instant_bridge_exactly_one() {
    let t0 = Instant::now();
    let now = t0 + Duration::from_secs(4);
    let mut a = fork(t0, 3);
    a.on_answered(now, 2);
    a.on_answered(now, 0);
    assert_eq!(
        drain(&mut a),
        [
            Action::Cancel(0),
            Action::Cancel(1),
            Action::Bridge(2),
            finished(ForkStatus::Answered { branch: 2 }, Some(200)),
            Action::AckThenBye(0),
        ]
    );
}

#[test]
fn screened_answer_starts_screening_while_others_keep_ringing_and_caller_hears_ringback() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false]);
    a.on_provisional(t0 + MS, 1, 180, false);
    a.on_answered(t0 + 2 * MS, 0);
    assert_eq!(drain(&mut a), [Action::StartScreening(0)]);
    assert!(!a.is_finished());
    assert_eq!(a.poll_timeout(), Some(t0 + TIMEOUT));
}

#[test]
fn screening_declined_drops_that_branch_only() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, true]);
    a.on_answered(t0 + MS, 0);
    a.on_screening_done(t0 + 2 * MS, 0, ScreeningVerdict::Declined);
    assert_eq!(drain(&mut a), [Action::StartScreening(0), Action::Bye(0)]);
    assert!(!a.is_finished());
    a.on_answered(t0 + 3 * MS, 1);
    a.on_screening_done(t0 + 4 * MS, 1, ScreeningVerdict::Accepted);
    assert_eq!(
        drain(&mut a),
        [
            Action::StartScreening(1),
            Action::Bridge(1),
            finished(ForkStatus::Answered { branch: 1 }, Some(200)),
        ]
    );
}

#[test]
fn screening_declined_on_the_last_branch_ends_the_dial_as_busy() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false]);
    a.on_failed(t0 + MS, 1, 404);
    a.on_answered(t0 + 2 * MS, 0);
    a.on_screening_done(t0 + 3 * MS, 0, ScreeningVerdict::Declined);
    assert_eq!(
        drain(&mut a),
        [
            Action::StartScreening(0),
            Action::Bye(0),
            finished(ForkStatus::Busy, None),
        ]
    );
}

#[test]
fn screening_that_fails_to_run_ends_the_dial_as_failed() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true]);
    a.on_answered(t0 + MS, 0);
    a.on_screening_done(t0 + 2 * MS, 0, ScreeningVerdict::Failed);
    assert_eq!(
        drain(&mut a),
        [
            Action::StartScreening(0),
            Action::Bye(0),
            finished(ForkStatus::Failed, None),
        ]
    );
}

#[test]
fn callee_hanging_up_during_screening_drops_that_branch_without_a_bye() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, true]);
    a.on_answered(t0 + MS, 0);
    a.on_branch_hangup(t0 + 2 * MS, 0);
    assert_eq!(drain(&mut a), [Action::StartScreening(0)]);
    assert!(!a.is_finished());
    // A late verdict for the gone branch is absorbed.
    a.on_screening_done(t0 + 3 * MS, 0, ScreeningVerdict::Accepted);
    assert!(drain(&mut a).is_empty());
    a.on_failed(t0 + 4 * MS, 1, 480);
    assert_eq!(drain(&mut a), [finished(ForkStatus::Busy, None)]);
}

#[test]
fn first_branch_to_finish_screening_wins_and_the_rest_are_cancelled_or_hung_up() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, true, true]);
    a.on_answered(t0 + MS, 0);
    a.on_answered(t0 + 2 * MS, 1);
    assert_eq!(
        drain(&mut a),
        [Action::StartScreening(0), Action::StartScreening(1)]
    );
    // Branch 1 answered later but finished its screening first.
    a.on_screening_done(t0 + 5 * MS, 1, ScreeningVerdict::Accepted);
    assert_eq!(
        drain(&mut a),
        [
            Action::Bye(0),
            Action::Cancel(2),
            Action::Bridge(1),
            finished(ForkStatus::Answered { branch: 1 }, Some(200)),
        ]
    );
    a.on_screening_done(t0 + 6 * MS, 0, ScreeningVerdict::Accepted);
    assert!(drain(&mut a).is_empty());
}

#[test]
fn unscreened_answer_during_a_screening_wins_at_once() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false]);
    a.on_answered(t0 + MS, 0);
    a.on_answered(t0 + 2 * MS, 1);
    assert_eq!(
        drain(&mut a),
        [
            Action::StartScreening(0),
            Action::Bye(0),
            Action::Bridge(1),
            finished(ForkStatus::Answered { branch: 1 }, Some(200)),
        ]
    );
}

#[test]
fn timeout_lets_a_screening_in_progress_finish_and_cancels_ringing_branches() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false]);
    a.on_answered(t0 + Duration::from_secs(25), 0);
    assert_eq!(drain(&mut a), [Action::StartScreening(0)]);
    a.handle_timeout(t0 + TIMEOUT);
    assert_eq!(drain(&mut a), [Action::Cancel(1)]);
    assert!(!a.is_finished());
    assert_eq!(a.poll_timeout(), None, "no second timer");
    a.on_screening_done(t0 + Duration::from_secs(40), 0, ScreeningVerdict::Accepted);
    assert_eq!(
        drain(&mut a),
        [
            Action::Bridge(0),
            finished(ForkStatus::Answered { branch: 0 }, Some(200)),
        ]
    );
}

#[test]
fn screening_declined_after_the_timeout_gives_no_answer() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false]);
    a.on_failed(t0 + MS, 1, 486);
    a.on_answered(t0 + Duration::from_secs(29), 0);
    a.handle_timeout(t0 + TIMEOUT);
    a.on_screening_done(t0 + Duration::from_secs(35), 0, ScreeningVerdict::Declined);
    assert_eq!(
        drain(&mut a),
        [
            Action::StartScreening(0),
            Action::Bye(0),
            finished(ForkStatus::NoAnswer, None),
        ]
    );
}

#[test]
fn ring_tone_always_plays_tandem_ringback_even_with_early_media() {
    let t0 = Instant::now();
    let mut a = ForkArbiter::new(t0, 2, TIMEOUT, vec![], RingbackPolicy::RingTone);
    assert_eq!(drain(&mut a), [Action::PlayRingback]);
    a.on_provisional(t0 + MS, 1, 183, true);
    a.on_failed(t0 + 2 * MS, 1, 486);
    a.on_provisional(t0 + 3 * MS, 0, 183, true);
    assert!(drain(&mut a).is_empty());
}

#[test]
fn without_ring_tone_the_first_183_with_sdp_is_played_to_the_caller() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_provisional(t0 + MS, 0, 180, true);
    a.on_provisional(t0 + MS, 1, 183, false);
    assert!(drain(&mut a).is_empty(), "only a 183 with SDP counts");
    a.on_provisional(t0 + 2 * MS, 2, 183, true);
    assert_eq!(drain(&mut a), [Action::PlayEarlyMedia(2)]);
}

#[test]
fn early_media_switches_only_once() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_provisional(t0 + MS, 0, 183, true);
    a.on_provisional(t0 + 2 * MS, 1, 183, true);
    a.on_provisional(t0 + 3 * MS, 0, 183, true);
    assert_eq!(drain(&mut a), [Action::PlayEarlyMedia(0)]);
}

#[test]
fn early_media_branch_failing_falls_back_to_ringback_for_good() {
    let t0 = Instant::now();
    let mut a = fork(t0, 3);
    a.on_provisional(t0 + MS, 0, 183, true);
    a.on_failed(t0 + 2 * MS, 1, 486);
    assert_eq!(drain(&mut a), [Action::PlayEarlyMedia(0)]);
    a.on_failed(t0 + 3 * MS, 0, 503);
    assert_eq!(drain(&mut a), [Action::PlayRingback]);
    a.on_provisional(t0 + 4 * MS, 2, 183, true);
    assert!(drain(&mut a).is_empty(), "no second switch");
}

#[test]
fn early_media_branch_failing_last_just_finishes() {
    let t0 = Instant::now();
    let mut a = fork(t0, 1);
    a.on_provisional(t0 + MS, 0, 183, true);
    a.on_failed(t0 + 2 * MS, 0, 486);
    assert_eq!(
        drain(&mut a),
        [
            Action::PlayEarlyMedia(0),
            finished(ForkStatus::Busy, Some(486)),
        ]
    );
}

#[test]
fn early_media_branch_entering_screening_puts_the_caller_back_on_ringback() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false]);
    a.on_provisional(t0 + MS, 0, 183, true);
    a.on_answered(t0 + 2 * MS, 0);
    assert_eq!(
        drain(&mut a),
        [
            Action::PlayEarlyMedia(0),
            Action::PlayRingback,
            Action::StartScreening(0),
        ]
    );
}

#[test]
fn early_media_branch_cancelled_by_the_timeout_during_a_screening_gives_ringback() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[true, false]);
    a.on_provisional(t0 + MS, 1, 183, true);
    a.on_answered(t0 + 2 * MS, 0);
    a.handle_timeout(t0 + TIMEOUT);
    assert_eq!(
        drain(&mut a),
        [
            Action::PlayEarlyMedia(1),
            Action::StartScreening(0),
            Action::Cancel(1),
            Action::PlayRingback,
        ]
    );
}

#[test]
fn after_finished_inputs_are_ignored_and_finished_is_emitted_once() {
    let t0 = Instant::now();
    let mut a = screened_fork(t0, &[false, false, true]);
    a.on_answered(t0 + MS, 0);
    let first = drain(&mut a);
    assert_eq!(
        first
            .iter()
            .filter(|x| matches!(x, Action::Finished(_)))
            .count(),
        1
    );
    let result = a.result();
    a.on_caller_hangup(t0 + 2 * MS);
    a.on_caller_cancel(t0 + 2 * MS);
    a.handle_timeout(t0 + TIMEOUT * 2);
    a.on_failed(t0 + 3 * MS, 0, 486);
    a.on_provisional(t0 + 3 * MS, 1, 183, true);
    a.on_screening_done(t0 + 3 * MS, 2, ScreeningVerdict::Accepted);
    a.on_branch_hangup(t0 + 3 * MS, 0);
    a.on_failed(t0 + 3 * MS, 1, 487);
    a.on_failed(t0 + 3 * MS, 1, 487);
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.result(), result);
    // The one exception: a 2xx that crossed our CANCEL must still be cleaned up.
    a.on_answered(t0 + 4 * MS, 2);
    assert_eq!(drain(&mut a), [Action::AckThenBye(2)]);
    assert_eq!(a.result(), result);
}

#[test]
fn a_fork_of_no_branch_fails_at_once() {
    let t0 = Instant::now();
    let mut a = ForkArbiter::new(t0, 0, TIMEOUT, vec![], RingbackPolicy::RingTone);
    assert_eq!(drain(&mut a), [finished(ForkStatus::Failed, None)]);
    assert!(a.is_settled());
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn missing_screening_flags_mean_no_screening() {
    let t0 = Instant::now();
    let policy = RingbackPolicy::CalleeEarlyMedia;
    let mut a = ForkArbiter::new(t0, 3, TIMEOUT, vec![true], policy);
    assert_eq!(a.branch_count(), 3);
    a.on_answered(t0 + MS, 2);
    assert_eq!(
        drain(&mut a)[..4],
        [
            Action::PlayRingback,
            Action::Cancel(0),
            Action::Cancel(1),
            Action::Bridge(2)
        ]
    );
}

#[test]
fn an_unknown_branch_is_ignored() {
    let t0 = Instant::now();
    let mut a = fork(t0, 2);
    a.on_answered(t0 + MS, 2);
    a.on_failed(t0 + MS, 2, 486);
    a.on_provisional(t0 + MS, 2, 183, true);
    a.on_screening_done(t0 + MS, 2, true);
    a.on_branch_hangup(t0 + MS, 2);
    assert!(drain(&mut a).is_empty());
    assert!(!a.is_finished());
}

#[test]
fn screening_verdicts_convert_from_bool_and_the_interpreter() {
    assert_eq!(Screening::from(true), Screening::Accepted);
    assert_eq!(Screening::from(false), Screening::Declined);
    assert_eq!(Screening::from(ScreeningVerdict::Failed), Screening::Failed);
    assert_eq!(
        Screening::from(ScreeningVerdict::Declined),
        Screening::Declined
    );
    let status = DialResult {
        status: ForkStatus::Answered { branch: 0 },
        sip_code: Some(200),
    };
    assert_eq!(status.dial_call_status(), DialCallStatus::Completed);
}

// ---------------------------------------------------------------------------
// Random interleavings.

/// SplitMix64: small, seeded, good enough to shuffle events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What the simulated callee of one branch has done and seen.
#[derive(Debug, Default, Clone)]
struct Callee {
    screened: bool,
    /// Sent its 2xx (the arbiter processed it).
    answered: bool,
    /// Sent a failure final.
    failed: bool,
    /// Has a final response of any kind.
    final_sent: bool,
    /// Hung up during screening.
    hung_up: bool,
    /// Screening verdict delivered.
    screened_done: bool,
    cancel: u32,
    ack_then_bye: u32,
    bye: u32,
    bridge: u32,
    start_screening: u32,
    /// Cancel seen before any final from this branch.
    cancel_before_final: bool,
    /// `Ended` notices for this branch.
    ended: u32,
}

#[derive(Debug, Clone, Copy)]
enum Input {
    Provisional(usize, u16, bool),
    Answered(usize),
    Failed(usize, u16),
    Screening(usize, ScreeningVerdict),
    BranchHangup(usize),
    CallerHangup,
    CallerCancel,
    Advance(Duration),
}

struct Sim {
    a: ForkArbiter,
    now: Instant,
    callees: Vec<Callee>,
    finished: Vec<DialResult>,
    after_finish: Vec<Action>,
    caller_gone_before_finish: bool,
    log: Vec<(Input, Vec<Action>)>,
}

impl Sim {
    fn apply(&mut self, input: Input) {
        let now = self.now;
        let a = &mut self.a;
        match input {
            Input::Provisional(b, code, sdp) => a.on_provisional(now, b, code, sdp),
            Input::Answered(b) => {
                self.callees[b].answered = true;
                self.callees[b].final_sent = true;
                a.on_answered(now, b);
            }
            Input::Failed(b, code) => {
                self.callees[b].failed = true;
                self.callees[b].final_sent = true;
                a.on_failed(now, b, code);
            }
            Input::Screening(b, v) => {
                self.callees[b].screened_done = true;
                a.on_screening_done(now, b, v);
            }
            Input::BranchHangup(b) => {
                self.callees[b].hung_up = true;
                a.on_branch_hangup(now, b);
            }
            Input::CallerHangup | Input::CallerCancel => {
                if self.finished.is_empty() {
                    self.caller_gone_before_finish = true;
                }
                if matches!(input, Input::CallerHangup) {
                    a.on_caller_hangup(now);
                } else {
                    a.on_caller_cancel(now);
                }
            }
            Input::Advance(d) => {
                self.now += d;
                if a.poll_timeout().is_some_and(|t| t <= self.now) {
                    a.handle_timeout(self.now);
                }
            }
        }
        let actions: Vec<Action> = std::iter::from_fn(|| self.a.poll_action()).collect();
        for &action in &actions {
            self.observe(action);
        }
        self.log.push((input, actions));
    }

    fn observe(&mut self, action: Action) {
        if !self.finished.is_empty() {
            self.after_finish.push(action);
        }
        let last = self.log.len();
        let ctx = || format!("{action:?} at step {last}");
        match action {
            Action::Cancel(b) => {
                let c = &mut self.callees[b];
                assert!(!c.final_sent, "CANCEL after a final: {}", ctx());
                c.cancel += 1;
                c.cancel_before_final = true;
            }
            Action::AckThenBye(b) => {
                let c = &mut self.callees[b];
                assert!(c.answered, "ACK+BYE without a 2xx: {}", ctx());
                c.ack_then_bye += 1;
            }
            Action::Bye(b) => {
                let c = &mut self.callees[b];
                assert!(
                    c.start_screening == 1,
                    "BYE of an unscreened branch: {}",
                    ctx()
                );
                assert!(!c.hung_up, "BYE to a callee that hung up: {}", ctx());
                c.bye += 1;
            }
            Action::StartScreening(b) => {
                let c = &mut self.callees[b];
                assert!(c.screened && c.answered, "{}", ctx());
                c.start_screening += 1;
            }
            Action::Bridge(b) => {
                let c = &mut self.callees[b];
                assert!(c.answered && !c.hung_up, "{}", ctx());
                c.bridge += 1;
            }
            Action::PlayEarlyMedia(_) | Action::PlayRingback => {}
            Action::Finished(r) => self.finished.push(r),
            Action::Ended { branch, .. } => {
                let c = &mut self.callees[branch];
                c.ended += 1;
                assert_eq!(c.ended, 1, "a branch ended twice: {}", ctx());
                assert_eq!(
                    c.bridge,
                    0,
                    "the bridged branch ended by the fork: {}",
                    ctx()
                );
            }
        }
    }

    /// Inputs that fit what each simulated party has done so far.
    fn possible(&self) -> Vec<Input> {
        let mut v = vec![Input::Advance(Duration::from_millis(1))];
        v.push(Input::Advance(Duration::from_secs(7)));
        v.push(Input::CallerHangup);
        v.push(Input::CallerCancel);
        for (b, c) in self.callees.iter().enumerate() {
            if !c.final_sent {
                v.push(Input::Provisional(b, 180, false));
                v.push(Input::Provisional(b, 183, true));
                v.push(Input::Answered(b));
                v.push(Input::Failed(b, 486));
                v.push(Input::Failed(b, 404));
                v.push(Input::Failed(b, 603));
                v.push(Input::Failed(b, 408));
                if c.cancel > 0 {
                    // Most cancelled branches answer 487.
                    for _ in 0..4 {
                        v.push(Input::Failed(b, 487));
                    }
                }
            }
            if c.start_screening == 1 && c.bye == 0 && c.ack_then_bye == 0 {
                if !c.screened_done && !c.hung_up {
                    v.push(Input::Screening(b, ScreeningVerdict::Accepted));
                    v.push(Input::Screening(b, ScreeningVerdict::Declined));
                    v.push(Input::Screening(b, ScreeningVerdict::Failed));
                }
                if !c.hung_up && c.bridge == 0 {
                    v.push(Input::BranchHangup(b));
                }
            }
        }
        v
    }

    /// Brings every party to an end (after the deadline first, or not): finals for the branches still without
    /// one, verdicts for screenings still running, time past the deadline.
    fn wind_down(&mut self, timeout_first: bool) {
        if timeout_first {
            self.apply(Input::Advance(TIMEOUT));
        }
        for _ in 0..3 {
            for b in 0..self.callees.len() {
                let c = &self.callees[b];
                if !c.final_sent {
                    let code = if c.cancel > 0 { 487 } else { 480 };
                    self.apply(Input::Failed(b, code));
                }
                let c = &self.callees[b];
                if c.start_screening == 1
                    && c.bye == 0
                    && !c.screened_done
                    && !c.hung_up
                    && c.bridge == 0
                {
                    self.apply(Input::Screening(b, ScreeningVerdict::Declined));
                }
            }
            self.apply(Input::Advance(TIMEOUT));
        }
    }

    fn check(&self, seed: u64) {
        let ctx = || format!("seed {seed}: {:#?}", self.log);
        assert_eq!(self.finished.len(), 1, "Finished exactly once: {}", ctx());
        assert!(self.a.is_settled(), "settled: {}", ctx());
        for (b, c) in self.callees.iter().enumerate() {
            let want = u32::from(c.bridge == 0);
            assert_eq!(
                c.ended,
                want,
                "branch {b} ended {} times: {}",
                c.ended,
                ctx()
            );
        }
        let result = self.finished[0];
        assert_eq!(self.a.result(), Some(result));
        let bridged: Vec<usize> = (0..self.callees.len())
            .filter(|&b| self.callees[b].bridge > 0)
            .collect();
        assert!(bridged.len() <= 1, "at most one Bridge: {}", ctx());
        match result.status {
            ForkStatus::Answered { branch } => assert_eq!(bridged, [branch], "{}", ctx()),
            _ => assert!(bridged.is_empty(), "{}", ctx()),
        }
        assert_eq!(
            result.status == ForkStatus::Canceled,
            self.caller_gone_before_finish,
            "canceled exactly when the caller left first: {}",
            ctx()
        );
        for action in &self.after_finish {
            assert!(
                matches!(action, Action::AckThenBye(_)),
                "after Finished only clean-up of crossing 2xx: {action:?} {}",
                ctx()
            );
        }
        for (b, c) in self.callees.iter().enumerate() {
            let ctx = || format!("branch {b} {c:?} {}", ctx());
            assert!(c.cancel <= 1, "{}", ctx());
            assert!(c.bridge <= 1 && c.start_screening <= 1, "{}", ctx());
            assert!(c.ack_then_bye + c.bye <= 1, "{}", ctx());
            // No call left up: every answered callee is bridged, hung up
            // by us, or hung up by itself.
            if c.answered {
                assert_eq!(
                    c.bridge + c.ack_then_bye + c.bye + u32::from(c.hung_up),
                    1,
                    "answered callee must end exactly once: {}",
                    ctx()
                );
            }
            // Exactly one terminal treatment.
            let own_failure = c.failed && !c.cancel_before_final;
            let treatments = u32::from(c.cancel > 0 && !c.answered)
                + c.ack_then_bye
                + c.bye
                + c.bridge
                + u32::from(own_failure)
                + u32::from(c.hung_up && c.bye == 0);
            assert_eq!(treatments, 1, "one terminal treatment: {}", ctx());
        }
    }
}

#[test]
fn random_interleavings_keep_the_invariants() {
    // How often each outcome and race was reached: the generator must reach
    // them all, or the invariants prove little.
    let mut statuses = std::collections::HashMap::new();
    let (mut crossing, mut screen_won, mut screen_lost, mut early) = (0, 0, 0, 0);
    for seed in 0..3000u64 {
        let mut rng = Rng(seed);
        let n = 1 + rng.below(10);
        let screened: Vec<bool> = (0..n).map(|_| rng.chance(30)).collect();
        let policy = if rng.chance(50) {
            RingbackPolicy::RingTone
        } else {
            RingbackPolicy::CalleeEarlyMedia
        };
        let t0 = Instant::now();
        let mut sim = Sim {
            a: ForkArbiter::new(t0, n, TIMEOUT, screened.clone(), policy),
            now: t0,
            callees: screened
                .iter()
                .map(|&s| Callee {
                    screened: s,
                    ..Callee::default()
                })
                .collect(),
            finished: Vec::new(),
            after_finish: Vec::new(),
            caller_gone_before_finish: false,
            log: Vec::new(),
        };
        let first: Vec<Action> = std::iter::from_fn(|| sim.a.poll_action()).collect();
        assert_eq!(first, [Action::PlayRingback]);
        let steps = rng.below(40);
        for _ in 0..steps {
            let options = sim.possible();
            let pick = options[rng.below(options.len())];
            // The caller leaves rarely, so most runs reach a callee's verdict.
            if matches!(pick, Input::CallerHangup | Input::CallerCancel) && !rng.chance(15) {
                continue;
            }
            sim.apply(pick);
        }
        let timeout_first = rng.chance(30);
        sim.wind_down(timeout_first);
        sim.check(seed);
        let status = match sim.finished[0].status {
            ForkStatus::Answered { .. } => "answered",
            other => other.dial_call_status().as_str(),
        };
        *statuses.entry(status).or_insert(0) += 1;
        crossing += sim
            .callees
            .iter()
            .filter(|c| c.cancel > 0 && c.ack_then_bye > 0)
            .count();
        screen_won += sim
            .callees
            .iter()
            .filter(|c| c.start_screening > 0 && c.bridge > 0)
            .count();
        screen_lost += sim
            .callees
            .iter()
            .filter(|c| c.start_screening > 0 && c.bye > 0)
            .count();
        early += sim
            .log
            .iter()
            .filter(|(_, actions)| {
                actions
                    .iter()
                    .any(|a| matches!(a, Action::PlayEarlyMedia(_)))
            })
            .count();
    }
    for status in ["answered", "busy", "no-answer", "failed", "canceled"] {
        assert!(
            statuses.get(status).copied().unwrap_or(0) > 30,
            "{statuses:?}"
        );
    }
    for (what, n) in [
        ("crossing 2xx", crossing),
        ("screening won", screen_won),
        ("screening lost", screen_lost),
        ("early media", early),
    ] {
        assert!(n > 30, "{what}: {n}");
    }
    eprintln!(
        "{statuses:?} crossing={crossing} screen_won={screen_won} screen_lost={screen_lost} early={early}"
    );
}
