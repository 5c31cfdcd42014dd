//! Fork arbitration of one `<Dial>` (sans-IO): which child leg wins, which
//! are cancelled or hung up, what the caller hears while they ring, and the
//! `DialCallStatus` the fork ends with (design §4 step 5, §5; issue 5 "Fork
//! arbitration" and "Screening"; rules and decisions in
//! `docs/fork-arbitration.md`).
//!
//! The arbiter decides and the call actor executes. It never reads the clock
//! and never does I/O: every input carries `now`, the one timer (the Dial
//! `timeout`) is data returned by [`ForkArbiter::poll_timeout`], and decisions
//! are drained with [`ForkArbiter::poll_action`]. After each input (and after
//! [`ForkArbiter::handle_timeout`]) the actor drains `poll_action` until
//! `None`, executes the actions in that order, then re-arms its sleep on
//! `poll_timeout`.
//!
//! A branch is one child leg (one INVITE client transaction), named by its
//! index `0..branches`. Inputs that do not fit a branch's state (a 1xx after
//! its final, a second 2xx, a 487 after our CANCEL) are absorbed: SIP races
//! make them normal, not errors. An index out of range is the actor's bug: it
//! is logged and ignored, never a panic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tandem_twiml::{DialCallStatus, ScreeningVerdict};
use tandem_webhook::CallStatus;

/// What the caller hears while the branches ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingbackPolicy {
    /// `ringTone` was given: always Tandem's ringback, early media ignored.
    RingTone,
    /// No `ringTone`: the early media of the first branch that sends 183
    /// with SDP, else Tandem's ringback (`us`).
    CalleeEarlyMedia,
}

/// How a fork ended, as far as the arbiter knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForkStatus {
    /// This branch was bridged to the caller. The actor reports `completed`
    /// once the bridge ends.
    Answered {
        /// The winning branch.
        branch: usize,
    },
    /// Every branch ended and at least one was busy (486, 600, 603) or
    /// declined its screening.
    Busy,
    /// The Dial `timeout` passed with nobody bridged, or every branch ended,
    /// none busy and at least one unanswered (408, 480).
    NoAnswer,
    /// Every branch ended, none busy or unanswered.
    Failed,
    /// The caller hung up or cancelled before a bridge.
    Canceled,
}

impl ForkStatus {
    /// The `DialCallStatus` to report: `completed` for an answered fork (sent
    /// once the bridge ends), otherwise the matching value.
    pub fn dial_call_status(self) -> DialCallStatus {
        match self {
            Self::Answered { .. } => DialCallStatus::Completed,
            Self::Busy => DialCallStatus::Busy,
            Self::NoAnswer => DialCallStatus::NoAnswer,
            Self::Failed => DialCallStatus::Failed,
            Self::Canceled => DialCallStatus::Canceled,
        }
    }
}

/// The outcome of one fork, emitted once in [`Action::Finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DialResult {
    /// How it ended.
    pub status: ForkStatus,
    /// The SIP final response that decided it: 200 when answered, the first
    /// busy (or, for `failed`, the first failure) response code; `None` for
    /// no-answer, canceled, and ends decided by a screening rather than SIP.
    pub sip_code: Option<u16>,
}

impl DialResult {
    /// The `DialCallStatus` to report (see [`ForkStatus::dial_call_status`]).
    pub fn dial_call_status(&self) -> DialCallStatus {
        self.status.dial_call_status()
    }
}

/// A decision for the call actor, drained with [`ForkArbiter::poll_action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// CANCEL this branch's INVITE (the transaction holds it until a 1xx).
    Cancel(usize),
    /// This branch's 2xx lost: ACK it, then BYE the dialog, in that order.
    AckThenBye(usize),
    /// Hang up this answered (screening) branch with BYE.
    Bye(usize),
    /// Run this answered branch's noun `url` document on the callee; report
    /// with [`ForkArbiter::on_screening_done`].
    StartScreening(usize),
    /// Connect the caller to this branch.
    Bridge(usize),
    /// The caller hears this branch's early media from now on.
    PlayEarlyMedia(usize),
    /// The caller hears Tandem's ringback (`ringTone`'s country, else `us`).
    PlayRingback,
    /// The fork is decided; emitted exactly once.
    Finished(DialResult),
    /// This branch's life is over: its media can close and its `completed`
    /// status callback carries `status`. Emitted exactly once per branch,
    /// the moment it ends (a cancelled branch ends when it is cancelled;
    /// its late 2xx is still ACKed then BYEd).
    Ended {
        /// The branch.
        branch: usize,
        /// Its final `CallStatus`.
        status: CallStatus,
    },
}

/// The end of a screening document, for [`ForkArbiter::on_screening_done`]:
/// `true`/`false` or the interpreter's [`ScreeningVerdict`] convert into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screening {
    /// The document ended without `<Hangup>`: this callee takes the call.
    Accepted,
    /// `<Hangup>` ran (or the callee hung up): counts like a 603 decline.
    Declined,
    /// The document could not be fetched or run: counts as a failure.
    Failed,
}

impl From<bool> for Screening {
    fn from(accepted: bool) -> Self {
        if accepted {
            Self::Accepted
        } else {
            Self::Declined
        }
    }
}

impl From<ScreeningVerdict> for Screening {
    fn from(verdict: ScreeningVerdict) -> Self {
        match verdict {
            ScreeningVerdict::Accepted => Self::Accepted,
            ScreeningVerdict::Declined => Self::Declined,
            ScreeningVerdict::Failed => Self::Failed,
        }
    }
}

/// Where a branch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE sent, no final response.
    Pending,
    /// 2xx processed, screening document running.
    Screening,
    /// CANCEL sent, final response not yet seen (487, or a crossing 2xx).
    Cancelling,
    /// Bridged to the caller.
    Bridged,
    /// Ended by its own final failure response.
    Failed,
    /// Ended by us or the callee: ACK+BYE, BYE, 487 after CANCEL, screening
    /// hangup.
    Ended,
}

/// What the caller hears now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// Tandem's ringback; `may_switch` until the one switch to early media.
    Ringback { may_switch: bool },
    /// This branch's early media.
    EarlyMedia(usize),
}

/// Which way a branch that ended on its own pushes the Dial status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Busy,
    NoAnswer,
    Failed,
}

/// The one mapping from a child INVITE's final failure to the child's
/// `CallStatus` (docs/webhooks.md): 486, 600, 603 `busy`; 408, 480
/// `no-answer`; 487 `canceled`; any other `failed`. The Dial status follows
/// from the same classes.
pub fn child_status(code: u16) -> CallStatus {
    match code {
        c if is_busy_code(c) => CallStatus::Busy,
        408 | 480 => CallStatus::NoAnswer,
        487 => CallStatus::Canceled,
        _ => CallStatus::Failed,
    }
}

/// The arbiter of one `<Dial>`'s branches.
#[derive(Debug)]
pub struct ForkArbiter {
    branches: Vec<(State, bool)>,
    /// `None` only if `now + timeout` overflows `Instant`: no timeout then.
    deadline: Option<Instant>,
    timed_out: bool,
    heard: Heard,
    first_busy: Option<Option<u16>>,
    first_no_answer: Option<Option<u16>>,
    first_failure: Option<Option<u16>>,
    /// A branch was cancelled through the REST API.
    cancelled: bool,
    result: Option<DialResult>,
    actions: VecDeque<Action>,
}

/// Whether a final response code counts as busy: 486 Busy Here, 600 Busy
/// Everywhere, 603 Decline.
pub fn is_busy_code(code: u16) -> bool {
    matches!(code, 486 | 600 | 603)
}

impl ForkArbiter {
    /// A fork of `branches` child legs whose INVITEs went out at `now`.
    /// `screening[i]` tells whether branch `i`'s noun has a `url` (missing
    /// entries: no). The first action is [`Action::PlayRingback`]; a fork of
    /// no branch at all finishes at once as `failed`.
    pub fn new(
        now: Instant,
        branches: usize,
        timeout: Duration,
        screening: Vec<bool>,
        ringback: RingbackPolicy,
    ) -> Self {
        let deadline = now.checked_add(timeout);
        let may_switch = ringback == RingbackPolicy::CalleeEarlyMedia;
        let mut arbiter = Self {
            branches: (0..branches)
                .map(|i| (State::Pending, screening.get(i).copied().unwrap_or(false)))
                .collect(),
            deadline,
            timed_out: false,
            heard: Heard::Ringback { may_switch },
            first_busy: None,
            first_no_answer: None,
            first_failure: None,
            cancelled: false,
            result: None,
            actions: VecDeque::new(),
        };
        if branches == 0 {
            arbiter.finish(ForkStatus::Failed, None);
        } else {
            arbiter.actions.push_back(Action::PlayRingback);
        }
        arbiter
    }

    /// How many branches the fork has.
    pub fn branch_count(&self) -> usize {
        self.branches.len()
    }

    /// The result, once [`Action::Finished`] has been queued.
    pub fn result(&self) -> Option<DialResult> {
        self.result
    }

    /// Whether the fork is decided.
    pub fn is_finished(&self) -> bool {
        self.result.is_some()
    }

    /// Whether the fork is decided and no branch still awaits a final
    /// response or a screening: the actor may drop the arbiter.
    pub fn is_settled(&self) -> bool {
        self.is_finished()
            && self
                .branches
                .iter()
                .all(|(s, _)| !matches!(s, State::Pending | State::Screening | State::Cancelling))
    }

    /// The Dial deadline while it can still fire.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
            .filter(|_| self.result.is_none() && !self.timed_out)
    }

    /// The next decision, in the order it must be executed.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The Dial `timeout` fires at the deadline (not before): pending branches
    /// are cancelled; a screening in progress may still finish.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// A 1xx on `branch`. A 183 with SDP may switch the caller to that
    /// branch's early media (once, and only without `ringTone`).
    pub fn on_provisional(&mut self, now: Instant, branch: usize, code: u16, has_sdp: bool) {
        if !self.known(branch) {
            return;
        }
        self.expire(now);
        if self.result.is_some() || self.branches[branch].0 != State::Pending {
            return;
        }
        if code == 183 && has_sdp && self.heard == (Heard::Ringback { may_switch: true }) {
            tracing::debug!(branch, "fork: caller hears this branch's early media");
            self.heard = Heard::EarlyMedia(branch);
            self.actions.push_back(Action::PlayEarlyMedia(branch));
        }
    }

    /// A 2xx on `branch` was processed. The first wins (or starts screening
    /// when the branch has a `url`); a 2xx that lost is ACKed then BYEd.
    pub fn on_answered(&mut self, now: Instant, branch: usize) {
        if !self.known(branch) {
            return;
        }
        self.expire(now);
        match self.branches[branch].0 {
            State::Pending if self.branches[branch].1 => {
                tracing::debug!(branch, "fork: answered, screening");
                self.branches[branch].0 = State::Screening;
                self.leave_early_media(branch);
                self.actions.push_back(Action::StartScreening(branch));
            }
            State::Pending => self.win(branch),
            State::Cancelling => self.ack_then_bye(branch),
            // A retransmitted 2xx, or one after the branch's end: the
            // transaction layer and dialog own those.
            State::Screening | State::Bridged | State::Failed | State::Ended => {}
        }
    }

    /// A final failure on `branch`: a 3xx–6xx response, or a transport
    /// failure / Timer B reported as 408 (or 503). Ends that branch only.
    pub fn on_failed(&mut self, now: Instant, branch: usize, code: u16) {
        self.fail(now, branch, code, child_status(code));
    }

    /// `branch` could not even be tried (no trunk, `<Client>` not
    /// registered, no address, no media port; `code` says why): it ends
    /// `failed`, whatever the code, like a 5xx for the Dial status.
    pub fn on_unreachable(&mut self, now: Instant, branch: usize, code: u16) {
        self.fail(now, branch, code, CallStatus::Failed);
    }

    fn fail(&mut self, now: Instant, branch: usize, code: u16, status: CallStatus) {
        if !self.known(branch) {
            return;
        }
        self.expire(now);
        match self.branches[branch].0 {
            State::Pending => {
                tracing::debug!(branch, code, "fork: branch failed");
                self.branches[branch].0 = State::Failed;
                let class = match status {
                    CallStatus::Busy => Class::Busy,
                    CallStatus::NoAnswer => Class::NoAnswer,
                    _ => Class::Failed,
                };
                self.record(class, Some(code));
                self.ended(branch, status);
                self.branch_left(branch);
            }
            // Usually the 487 answering our CANCEL.
            State::Cancelling => self.branches[branch].0 = State::Ended,
            State::Screening | State::Bridged | State::Failed | State::Ended => {}
        }
    }

    /// The screening document of `branch` ended. Accepted: the first wins.
    /// Declined (`<Hangup>`) or failed (document unusable): that branch is
    /// hung up and the Dial goes on.
    pub fn on_screening_done(
        &mut self,
        now: Instant,
        branch: usize,
        verdict: impl Into<Screening>,
    ) {
        if !self.known(branch) {
            return;
        }
        self.expire(now);
        if self.branches[branch].0 != State::Screening {
            return;
        }
        let verdict = verdict.into();
        match verdict {
            Screening::Accepted => self.win(branch),
            Screening::Declined | Screening::Failed => {
                tracing::debug!(branch, ?verdict, "fork: screening dropped the branch");
                self.branches[branch].0 = State::Ended;
                self.actions.push_back(Action::Bye(branch));
                self.ended(branch, CallStatus::Completed);
                let class = if verdict == Screening::Declined {
                    Class::Busy
                } else {
                    Class::Failed
                };
                self.record(class, None);
                self.branch_left(branch);
            }
        }
    }

    /// The callee of `branch` sent BYE. While screening it declines the
    /// branch (no BYE back); after the bridge the actor owns the dialog.
    pub fn on_branch_hangup(&mut self, now: Instant, branch: usize) {
        if !self.known(branch) {
            return;
        }
        self.expire(now);
        if self.branches[branch].0 == State::Screening {
            tracing::debug!(branch, "fork: callee hung up while screening");
            self.branches[branch].0 = State::Ended;
            self.ended(branch, CallStatus::Completed);
            self.record(Class::Busy, None);
            self.branch_left(branch);
        }
    }

    /// The bridge with `branch` ended (either side hung up, `timeLimit`,
    /// `hangupOnStar`): the branch's life is over, `completed`.
    pub fn on_bridge_ended(&mut self, branch: usize) {
        if !self.known(branch) {
            return;
        }
        if self.branches[branch].0 == State::Bridged {
            self.branches[branch].0 = State::Ended;
            self.ended(branch, CallStatus::Completed);
        }
    }

    /// Whether `branch` still waits for its INVITE's final response (ringing,
    /// or cancelled and owing the 487).
    pub fn awaits_final(&self, branch: usize) -> bool {
        self.branches
            .get(branch)
            .is_some_and(|(s, _)| matches!(s, State::Pending | State::Cancelling))
    }

    /// The REST API cancelled `branch` (`Status=canceled`, or `completed`
    /// before a bridge): a ringing branch is cancelled (`canceled`), a
    /// screening one hung up (`completed`). When it was the last branch
    /// left, the Dial ends `canceled`. Returns whether anything changed.
    pub fn on_branch_cancelled(&mut self, now: Instant, branch: usize) -> bool {
        if !self.known(branch) {
            return false;
        }
        self.expire(now);
        if self.result.is_some() {
            return false;
        }
        let state = &mut self.branches[branch].0;
        match *state {
            State::Pending => {
                *state = State::Cancelling;
                self.actions.push_back(Action::Cancel(branch));
                self.ended(branch, CallStatus::Canceled);
            }
            State::Screening => {
                *state = State::Ended;
                self.actions.push_back(Action::Bye(branch));
                self.ended(branch, CallStatus::Completed);
            }
            _ => return false,
        }
        tracing::debug!(branch, "fork: branch cancelled by the REST API");
        self.cancelled = true;
        self.branch_left(branch);
        true
    }

    /// The caller hung up before a bridge: every pending branch is
    /// cancelled, every screening branch hung up, and the Dial is `canceled`.
    pub fn on_caller_hangup(&mut self, now: Instant) {
        self.expire(now);
        if self.result.is_some() {
            return;
        }
        tracing::debug!("fork: caller gone");
        self.drop_all_but(None, CallStatus::Canceled);
        self.finish(ForkStatus::Canceled, None);
    }

    /// The caller's CANCEL: the same outcome as [`Self::on_caller_hangup`].
    pub fn on_caller_cancel(&mut self, now: Instant) {
        self.on_caller_hangup(now);
    }

    fn known(&self, branch: usize) -> bool {
        let known = branch < self.branches.len();
        if !known {
            tracing::warn!(
                branch,
                branches = self.branches.len(),
                "fork: no such branch"
            );
        }
        known
    }

    /// Fires the Dial timeout if `now` reached it; every input runs this
    /// first, so a 2xx processed at the deadline loses to the timeout.
    fn expire(&mut self, now: Instant) {
        if self.result.is_some() || self.timed_out || self.deadline.is_none_or(|d| now < d) {
            return;
        }
        tracing::debug!("fork: dial timeout");
        self.timed_out = true;
        let mut source_cancelled = false;
        for (i, (state, _)) in self.branches.iter_mut().enumerate() {
            if *state == State::Pending {
                *state = State::Cancelling;
                self.actions.push_back(Action::Cancel(i));
                self.actions.push_back(Action::Ended {
                    branch: i,
                    status: CallStatus::NoAnswer,
                });
                source_cancelled |= self.heard == Heard::EarlyMedia(i);
            }
        }
        self.settle();
        if source_cancelled {
            self.fall_back_to_ringback();
        }
    }

    fn ended(&mut self, branch: usize, status: CallStatus) {
        self.actions.push_back(Action::Ended { branch, status });
    }

    fn ack_then_bye(&mut self, branch: usize) {
        tracing::debug!(branch, "fork: late 2xx, ACK then BYE");
        self.branches[branch].0 = State::Ended;
        self.actions.push_back(Action::AckThenBye(branch));
    }

    fn win(&mut self, branch: usize) {
        tracing::debug!(branch, "fork: winner");
        self.branches[branch].0 = State::Bridged;
        // The losers are cancelled first: their CANCELs leave before the
        // work of bridging (the SIPp fork3 case measures the gap).
        self.drop_all_but(Some(branch), CallStatus::Canceled);
        self.actions.push_back(Action::Bridge(branch));
        self.finish(ForkStatus::Answered { branch }, Some(200));
    }

    /// Cancels every pending branch (which ends `status`) and hangs up every
    /// screening one (answered: `completed`).
    fn drop_all_but(&mut self, keep: Option<usize>, status: CallStatus) {
        for (i, (state, _)) in self.branches.iter_mut().enumerate() {
            if Some(i) == keep {
                continue;
            }
            match state {
                State::Pending => {
                    *state = State::Cancelling;
                    self.actions.push_back(Action::Cancel(i));
                    self.actions.push_back(Action::Ended { branch: i, status });
                }
                State::Screening => {
                    *state = State::Ended;
                    self.actions.push_back(Action::Bye(i));
                    self.actions.push_back(Action::Ended {
                        branch: i,
                        status: CallStatus::Completed,
                    });
                }
                State::Cancelling | State::Bridged | State::Failed | State::Ended => {}
            }
        }
    }

    fn record(&mut self, class: Class, code: Option<u16>) {
        let slot = match class {
            Class::Busy => &mut self.first_busy,
            Class::NoAnswer => &mut self.first_no_answer,
            Class::Failed => &mut self.first_failure,
        };
        slot.get_or_insert(code);
    }

    /// A branch stopped ringing without winning: end the Dial if it was the
    /// last, else take the caller off its early media.
    fn branch_left(&mut self, branch: usize) {
        self.settle();
        self.leave_early_media(branch);
    }

    fn leave_early_media(&mut self, branch: usize) {
        if self.heard == Heard::EarlyMedia(branch) {
            self.fall_back_to_ringback();
        }
    }

    fn fall_back_to_ringback(&mut self) {
        self.heard = Heard::Ringback { may_switch: false };
        if self.result.is_none() {
            tracing::debug!("fork: early media gone, back to ringback");
            self.actions.push_back(Action::PlayRingback);
        }
    }

    /// Ends the Dial once no branch is pending or screening.
    fn settle(&mut self) {
        if self.result.is_some()
            || self
                .branches
                .iter()
                .any(|(s, _)| matches!(s, State::Pending | State::Screening))
        {
            return;
        }
        let (status, code) = if self.timed_out {
            (ForkStatus::NoAnswer, None)
        } else if self.cancelled {
            (ForkStatus::Canceled, None)
        } else if let Some(code) = self.first_busy {
            (ForkStatus::Busy, code)
        } else if let Some(code) = self.first_no_answer {
            (ForkStatus::NoAnswer, code)
        } else {
            (ForkStatus::Failed, self.first_failure.flatten())
        };
        self.finish(status, code);
    }

    fn finish(&mut self, status: ForkStatus, sip_code: Option<u16>) {
        let result = DialResult { status, sip_code };
        tracing::debug!(?status, ?sip_code, "fork: finished");
        self.result = Some(result);
        self.actions.push_back(Action::Finished(result));
    }
}
