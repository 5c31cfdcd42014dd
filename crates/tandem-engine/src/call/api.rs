//! A live call modified through the REST API (`POST …/Calls/{CallSid}.json`,
//! docs/api.md "Modify a call"): the call's own event, handled like any
//! other.
//!
//! - `Twiml` or `Url`/`Method` on the parent: whatever it is doing stops
//!   (a prompt, a pause, a `<Gather>`, a `<Record>` — whose recording is
//!   kept, without its `action`), and the new document runs from its first
//!   verb. In a `<Dial>` the branches are cancelled or the bridged callee
//!   hung up; a `<Conference>` is left; a queue is left (or its bridge, or
//!   an agent's wait for a caller): the verb ends without requesting its
//!   `action`, as on Twilio. A `Url` is fetched first with the call's
//!   parameters; if that fails, the call goes on as it was (logged).
//! - `Status=completed`: the call is hung up (BYE once answered; 487 to a
//!   caller still ringing). `Status=canceled` does the same to a call not
//!   yet answered and nothing to one in progress (Twilio's rule).
//! - On a child call (a `<Dial>` branch): `canceled` (or `completed`) on a
//!   ringing branch cancels that branch alone; when no branch is left the
//!   `<Dial>` ends with `DialCallStatus=canceled`. `completed` on the
//!   bridged child hangs it up: the `<Dial>` ends `completed` and its
//!   `action` runs. `Twiml` or `Url` on the bridged child moves it out
//!   of the bridge to run the new document as a call of its own (its own
//!   task, [`Output::Spawn`]); the `<Dial>` ends `completed` and its
//!   `action` runs, as on Twilio. A child not yet answered cannot be
//!   redirected (Twilio's 21220).

use super::*;

/// What a call placed through the REST API keeps beyond the call itself.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    /// `TimeLimit`.
    pub time_limit: Option<Duration>,
    /// When `TimeLimit` hangs the call up (set once answered).
    pub ends_at: Option<Instant>,
    /// `AnsweredBy` and `MachineDetectionDuration`, for the first document
    /// requested once answered (`MachineDetection`).
    pub first_fetch: Vec<(String, String)>,
    /// `AnsweredBy`, for the history.
    pub answered_by: Option<String>,
    /// The next fetch is the call's first document: `FallbackUrl` serves it.
    pub first_document: bool,
    /// `AsyncAmd=true`: the detection running on the call's leg.
    pub amd: Option<Box<super::amd::BranchAmd>>,
    /// `Record=true`: the recording to make from the answer, and its
    /// `RecordingStatusCallback`.
    pub record: Option<ApiRecord>,
    /// That recording runs.
    pub recording: bool,
}

/// `Record=true` on a placed call (docs/api.md).
#[derive(Debug)]
pub(crate) struct ApiRecord {
    pub opts: crate::recording::RecordingOptions,
    pub callback: Option<super::dial::RecCallback>,
}

/// What the REST API asks of a live call.
#[derive(Debug)]
pub(crate) enum ApiAction {
    /// Run this document (`Twiml`, checked by the API) now.
    Twiml(String),
    /// Fetch this URL and run what it returns.
    Url(Url, tandem_twiml::Method),
    /// `Status=canceled`.
    Cancel,
    /// `Status=completed`.
    Complete,
}

/// Why a live call refused a modification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiRefusal {
    /// The call (or child) is over, or it is not this call's.
    #[error("Call is not in-progress. Cannot redirect.")]
    NotInProgress,
    /// Tandem cannot do this (yet).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A modification and where its result goes.
#[derive(Debug)]
pub(crate) struct ApiCommand {
    /// The parent's or a child's CallSid.
    pub sid: String,
    pub action: ApiAction,
    pub reply: Option<tokio::sync::oneshot::Sender<Result<(), ApiRefusal>>>,
}

impl Call {
    /// A modification from the REST API.
    pub(super) fn on_api(&mut self, mut cmd: ApiCommand) {
        let result = if cmd.sid == self.sid {
            self.api_parent(cmd.action)
        } else {
            self.api_child(&cmd.sid, cmd.action)
        };
        match &result {
            Ok(()) => tracing::info!(sid = %cmd.sid, "call modified through the REST API"),
            Err(e) => tracing::info!(sid = %cmd.sid, reason = %e, "REST API modification refused"),
        }
        if let Some(reply) = cmd.reply.take() {
            let _ = reply.send(result);
        }
    }

    fn api_parent(&mut self, action: ApiAction) -> Result<(), ApiRefusal> {
        if self.finished || self.caller_gone {
            return Err(ApiRefusal::NotInProgress);
        }
        match action {
            ApiAction::Cancel if self.answered => Ok(()),
            ApiAction::Cancel | ApiAction::Complete => {
                self.hangup(487);
                Ok(())
            }
            ApiAction::Twiml(body) => match tandem_twiml::parse(&body) {
                Ok(document) => self.move_to(document, None),
                Err(_) => Err(ApiRefusal::Unsupported("the Twiml is not valid TwiML")),
            },
            ApiAction::Url(url, method) => {
                self.movable()?;
                let params = self.call_info(self.status()).voice_params();
                self.out.push_back(Output::Fetch {
                    screen: None,
                    req: tandem_twiml::FetchRequest {
                        url,
                        method,
                        params: Vec::new(),
                        reason: tandem_twiml::FetchReason::Modify,
                    },
                    params,
                    fallback: None,
                });
                Ok(())
            }
        }
    }

    fn api_child(&mut self, sid: &str, action: ApiAction) -> Result<(), ApiRefusal> {
        let now = self.now;
        let Some(d) = self.dial.as_mut().filter(|d| !d.done) else {
            return Err(ApiRefusal::NotInProgress);
        };
        let Some(i) = d.branches.iter().position(|b| b.sid == sid && !b.ended) else {
            return Err(ApiRefusal::NotInProgress);
        };
        match action {
            ApiAction::Twiml(body) if d.bridged == Some(i) => match tandem_twiml::parse(&body) {
                Ok(document) => {
                    self.move_child(
                        i,
                        Start {
                            interp: tandem_twiml::Interpreter::new(document, None),
                            document_url: None,
                            fallback: None,
                        },
                    );
                    Ok(())
                }
                Err(_) => Err(ApiRefusal::Unsupported("the Twiml is not valid TwiML")),
            },
            ApiAction::Url(url, method) if d.bridged == Some(i) => {
                self.move_child(
                    i,
                    Start {
                        interp: tandem_twiml::Interpreter::fetching(url.clone(), method),
                        document_url: Some(url),
                        fallback: None,
                    },
                );
                Ok(())
            }
            // Twilio redirects only a call in progress.
            ApiAction::Twiml(_) | ApiAction::Url(..) => Err(ApiRefusal::NotInProgress),
            ApiAction::Cancel | ApiAction::Complete if d.bridged == Some(i) => {
                if matches!(action, ApiAction::Cancel) {
                    // Twilio: canceled leaves a call in progress alone.
                    return Ok(());
                }
                self.end_bridge(true);
                Ok(())
            }
            ApiAction::Cancel | ApiAction::Complete => {
                if d.arbiter.on_branch_cancelled(now, i) {
                    self.apply_actions();
                    Ok(())
                } else {
                    Err(ApiRefusal::NotInProgress)
                }
            }
        }
    }

    /// The bridged child `i` leaves the bridge to run `start` as a call of
    /// its own (its own task, its leg, dialog and CallSid, its parent's
    /// CallSid as `ParentCallSid`); the `<Dial>` ends `completed` and its
    /// `action` runs, as when a callee hangs up.
    fn move_child(&mut self, i: usize, start: Start) {
        let recording_url = self.stop_dial_recording();
        if let Some(parent) = self.media {
            self.env.relay(parent, None);
        }
        let now = self.now;
        let Some(d) = self.dial.as_mut() else { return };
        let duration = d.bridged_at.map_or(0, |a| secs_between(a, now));
        let Some(callee) = transfer::CalleeLeg::take(&mut d.branches[i]) else {
            // No dialog left: nothing to move; the bridge ends as it is.
            tracing::warn!("REST API: the child's dialog is gone");
            self.end_bridge(false);
            return;
        };
        let sid = callee.sid.clone();
        let leg = callee.media.map(|m| self.env.detach_leg(m));
        d.done = true;
        d.arbiter.on_bridge_ended(i);
        tracing::info!(child = %sid, "REST API: the child call leaves the bridge for its own TwiML");
        self.out.push_back(Output::Spawn(Box::new(Spawn {
            callee,
            leg,
            start,
            parent_sid: self.sid.clone(),
        })));
        self.apply_actions();
        self.finish_dial(dial::bridged_outcome(sid, duration, recording_url));
    }

    /// A redirect can be carried out now.
    fn movable(&self) -> Result<(), ApiRefusal> {
        if self.transfer.is_some() {
            return Err(ApiRefusal::Unsupported(
                "the call is being transferred (REFER)",
            ));
        }
        Ok(())
    }

    /// The `Url` of a modification answered (or not).
    pub(super) fn on_api_fetched(&mut self, result: Fetched) {
        if self.finished || self.caller_gone {
            return;
        }
        match fetched_document(result) {
            Ok((document, url)) => {
                if let Err(e) = self.move_to(document, url) {
                    tracing::warn!(reason = %e, "REST API redirect not carried out");
                }
            }
            Err(reason) => {
                tracing::warn!(%reason, "REST API redirect: the Url failed; the call goes on as it was");
            }
        }
    }

    /// Stops what the caller is doing and runs `document`.
    fn move_to(
        &mut self,
        document: tandem_twiml::Document,
        url: Option<Url>,
    ) -> Result<(), ApiRefusal> {
        self.movable()?;
        self.pending_dial = None;
        if self.in_conference() {
            // Out of the room; the <Dial> ends without its action.
            self.redirect = Some(Box::new((document, url)));
            self.conference_over(tandem_types::DialCallStatus::Completed, true);
            return Ok(());
        }
        if self.queue.is_some() {
            // Out of the queue (or its bridge, or an agent's wait); the
            // <Enqueue> or <Dial><Queue> ends without its action.
            self.redirect = Some(Box::new((document, url)));
            self.queue_caller_left();
            return Ok(());
        }
        if let Some(d) = self.dial.as_mut().filter(|d| !d.done) {
            // The Dial ends without its action; the new document follows.
            self.redirect = Some(Box::new((document, url)));
            if d.bridged.is_some() {
                self.end_bridge(true);
            } else {
                d.arbiter.on_caller_hangup(self.now);
                self.apply_actions();
            }
            return Ok(());
        }
        self.stop_caller_verb();
        if let Some(u) = &url {
            self.document_url = Some(u.clone());
        }
        self.feed(Event::Redirected { document, url });
        Ok(())
    }

    /// The caller's current verb stops where it is: its audio, its pause,
    /// its gathering, its recording (the file is kept; no `action`).
    fn stop_caller_verb(&mut self) {
        if let Some(p) = self.playing.take() {
            self.env.stop_play(p);
        }
        self.caller_seq = 0;
        self.pause_until = None;
        self.prompt_queue.clear();
        self.pending_gather = None;
        self.end_gathering();
        self.drop_record();
    }

    /// A placed call's `TimeLimit` (hung up that long after the answer)
    /// and `Record` (recorded from the answer to its end).
    pub(crate) fn place(&mut self, limit: Option<Duration>, record: Option<ApiRecord>) {
        if limit.is_some() || record.is_some() {
            let p = self.placed.get_or_insert_with(Box::default);
            p.time_limit = limit;
            p.record = record;
        }
    }

    /// Starts a placed call's `Record` on its leg (channel 1: the callee;
    /// channel 2: whoever a `<Dial>` of its TwiML bridges it to).
    fn start_placed_recording(&mut self) {
        let Some(r) = self.placed.as_ref().and_then(|p| p.record.as_ref()) else {
            return;
        };
        let (opts, cb) = (r.opts, r.callback.clone());
        let on = self.record_caller(opts, cb.as_ref());
        if let Some(p) = self.placed.as_mut() {
            p.recording = on;
        }
    }

    /// Whether a placed call's own recording runs.
    pub(super) fn placed_recording(&self) -> bool {
        self.placed.as_ref().is_some_and(|p| p.recording)
    }

    /// Stops a placed call's recording (its end): `completed` or `absent`
    /// to its `RecordingStatusCallback`.
    pub(super) fn stop_placed_recording(&mut self) {
        if !self.placed_recording() {
            return;
        }
        let cb = self.placed.as_mut().and_then(|p| {
            p.recording = false;
            p.record.take().and_then(|r| r.callback)
        });
        self.end_recording(cb.as_ref());
    }

    /// A REST API call's callee answered: the call becomes that leg and
    /// runs its document (`Twiml`, or its `Url` fetched now, with
    /// `AnsweredBy` when its callee was screened by `MachineDetection`).
    pub(super) fn api_answered(&mut self, i: usize) {
        let Some(doc) = self.api_doc.take() else {
            tracing::warn!("REST API call answered twice");
            return;
        };
        let send_digits = self
            .dial
            .as_mut()
            .and_then(|d| d.branches[i].send_digits.take());
        // Asynchronous detection goes on once the call is this leg.
        let async_amd = self
            .dial
            .as_mut()
            .and_then(|d| d.branches[i].amd.take_if(|a| !a.is_sync()));
        let amd = self
            .dial
            .as_ref()
            .and_then(|d| d.branches[i].amd.as_ref())
            .and_then(|a| Some((a.result?.answered_by, a.params())));
        if let Some((by, params)) = amd {
            let p = self.placed.get_or_insert_with(Box::default);
            p.answered_by = Some(by.as_str().to_owned());
            p.first_fetch = params;
        }
        if self.fallback.is_some() {
            self.placed.get_or_insert_with(Box::default).first_document = true;
        }
        let now = self.now;
        if let Some(p) = self.placed.as_mut() {
            p.ends_at = p.time_limit.map(|l| now + l);
        }
        let (document, url) = *doc;
        tracing::info!("REST API call answered: its document runs");
        self.hand_over(i, document, url);
        if let Some(a) = async_amd {
            self.placed_amd_start(a);
        }
        self.start_placed_recording();
        if let Some(leg) = self.media {
            self.env.expect_media(leg, true);
            if let Some(digits) = send_digits
                && let Err(e) = self.env.send_digits(leg, &digits)
            {
                tracing::warn!(error = %e, "SendDigits not played");
            }
        }
    }
}
