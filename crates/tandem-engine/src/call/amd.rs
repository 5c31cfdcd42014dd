//! Answering-machine detection on a `<Number machineDetection>` callee
//! (docs/amd.md, "In the engine").
//!
//! - **Synchronous** (no `amdStatusCallback`): when the callee answers,
//!   the fork arbiter is told to screen it; the screening first waits for
//!   the detector's decision (the caller keeps hearing ringback), then
//!   requests the noun's `url` with `AnsweredBy` and
//!   `MachineDetectionDuration`, or accepts the callee at once when there is
//!   no `url`.
//! - **Asynchronous** (`amdStatusCallback`): the callee is screened or
//!   bridged as without detection; the decision is posted to
//!   `amdStatusCallback` when it comes.
//!
//! The detector counts time in samples received; a callee that sends no
//! audio gets `unknown` from the call's own timer, one second after
//! `machineDetectionTimeout`.

use tandem_media::{AmdConfig, AmdMode, AmdResult, AnsweredBy};
use tandem_twiml::MachineDetection;

use super::*;
use crate::media_ops::AmdReport;

/// Extra time the call waits for a decision beyond `machineDetectionTimeout`
/// (the detector decides by then when audio flows).
const AMD_SLACK: Duration = Duration::from_secs(1);

/// One branch's detection.
#[derive(Debug)]
pub(crate) struct BranchAmd {
    cfg: AmdConfig,
    /// `amdStatusCallback`, resolved: the detection is asynchronous.
    callback: Option<(Url, tandem_webhook::Method)>,
    /// When the call stops waiting for the detector (set when it starts).
    until: Option<Instant>,
    /// The screening waits for the decision.
    waiting: bool,
    pub result: Option<AmdResult>,
}

impl BranchAmd {
    /// `AnsweredBy` and `MachineDetectionDuration` (ms), once decided.
    pub(super) fn params(&self) -> Vec<(String, String)> {
        self.result.map_or_else(Vec::new, |r| {
            vec![
                ("AnsweredBy".to_owned(), r.answered_by.as_str().to_owned()),
                (
                    "MachineDetectionDuration".to_owned(),
                    r.after_ms.to_string(),
                ),
            ]
        })
    }

    pub(super) fn is_sync(&self) -> bool {
        self.callback.is_none()
    }
}

impl Call {
    /// The detection a noun asks for, if any.
    pub(super) fn amd_of(&self, noun: &tandem_twiml::Noun) -> Option<Box<BranchAmd>> {
        let tandem_twiml::Noun::Number(n) = noun else {
            return None;
        };
        let o = &n.machine_detection;
        let mode = match o.mode? {
            MachineDetection::Enable => AmdMode::Enable,
            MachineDetection::DetectMessageEnd => AmdMode::DetectMessageEnd,
        };
        let callback = o
            .status_callback
            .as_deref()
            .and_then(|u| Some((self.resolve_url(u)?, o.status_callback_method)));
        if callback.is_none() && n.options.url.is_none() {
            tracing::warn!(number = %n.number, "machineDetection without url or amdStatusCallback: the result is only logged");
        }
        Some(Box::new(BranchAmd {
            cfg: AmdConfig {
                mode,
                timeout_ms: o.timeout * 1000,
                speech_threshold_ms: o.speech_threshold,
                speech_end_threshold_ms: o.speech_end_threshold,
                silence_timeout_ms: o.silence_timeout,
            },
            callback,
            until: None,
            waiting: false,
            result: None,
        }))
    }

    fn amd_mut(&mut self, i: usize) -> Option<&mut BranchAmd> {
        self.dial
            .as_mut()
            .and_then(|d| d.branches.get_mut(i))
            .and_then(|b| b.amd.as_deref_mut())
    }

    /// Starts listening on answered branch `i`'s leg (once).
    pub(super) fn start_amd(&mut self, i: usize) {
        let now = self.now;
        let leg = self.dial.as_ref().and_then(|d| d.branches[i].media);
        let Some(a) = self.amd_mut(i) else { return };
        if a.until.is_some() {
            return;
        }
        a.until = Some(now + Duration::from_millis(u64::from(a.cfg.timeout_ms)) + AMD_SLACK);
        let cfg = a.cfg;
        match leg {
            Some(leg) => {
                tracing::info!(branch = i, mode = ?cfg.mode, "answering-machine detection started");
                self.env.listen_amd(leg, cfg);
            }
            None => {
                tracing::info!(
                    branch = i,
                    "no media on the callee's leg: AnsweredBy unknown"
                );
                self.amd_decided(
                    i,
                    AmdResult {
                        answered_by: AnsweredBy::Unknown,
                        after_ms: 0,
                    },
                );
            }
        }
    }

    /// Starts an asynchronous detection on branch `i` (no-op otherwise).
    pub(super) fn start_async_amd(&mut self, i: usize) {
        if self.amd_mut(i).is_some_and(|a| !a.is_sync()) {
            self.start_amd(i);
        }
    }

    /// Whether branch `i`'s screening must wait for a synchronous
    /// detection (started now if it was not).
    pub(super) fn amd_holds_screening(&mut self, i: usize) -> bool {
        let Some(a) = self.amd_mut(i) else {
            return false;
        };
        if a.result.is_some() {
            return false;
        }
        if a.is_sync() {
            a.waiting = true;
            self.start_amd(i);
            // No media: decided (unknown) at once, and the screening went on.
            return self.amd_mut(i).is_some_and(|a| a.result.is_none());
        }
        self.start_amd(i);
        false
    }

    /// The detector decided on one of the branches' legs (or on a placed
    /// call's own leg).
    pub(super) fn on_amd(&mut self, report: AmdReport) {
        let i = self.dial.as_ref().and_then(|d| {
            d.branches
                .iter()
                .position(|b| b.media == Some(report.leg) && !b.ended)
        });
        if let Some(i) = i {
            self.amd_decided(i, report.result);
        } else if self.media == Some(report.leg) {
            self.placed_amd_decided(report.result);
        }
    }

    /// A placed call's asynchronous detection (`AsyncAmd=true`): it goes
    /// on on the call's own leg once its callee took the call over.
    pub(super) fn placed_amd_start(&mut self, mut a: Box<BranchAmd>) {
        let Some(leg) = self.media else {
            tracing::info!("no media on the callee's leg: AnsweredBy unknown");
            self.placed.get_or_insert_with(Box::default).amd = Some(a);
            return self.placed_amd_decided(AmdResult {
                answered_by: AnsweredBy::Unknown,
                after_ms: 0,
            });
        };
        a.until = Some(self.now + Duration::from_millis(u64::from(a.cfg.timeout_ms)) + AMD_SLACK);
        tracing::info!(mode = ?a.cfg.mode, "answering-machine detection started (asynchronous)");
        self.env.listen_amd(leg, a.cfg);
        self.placed.get_or_insert_with(Box::default).amd = Some(a);
    }

    /// The placed call's detection decided: `amdStatusCallback` (the
    /// API's `AsyncAmdStatusCallback`) and the history learn it.
    fn placed_amd_decided(&mut self, result: AmdResult) {
        let Some(p) = self.placed.as_mut() else {
            return;
        };
        let Some(a) = p.amd.as_mut().filter(|a| a.result.is_none()) else {
            return;
        };
        a.result = Some(result);
        a.until = None;
        p.answered_by = Some(result.answered_by.as_str().to_owned());
        let (callback, params) = (a.callback.clone(), a.params());
        tracing::info!(answered_by = %result.answered_by, ms = result.after_ms, "AnsweredBy");
        self.record_history(self.call_info(tandem_webhook::CallStatus::InProgress), None);
        if let Some((url, method)) = callback {
            self.post_amd(self.sid.clone(), url, method, params);
        }
    }

    /// `amdStatusCallback` (`AsyncAmdStatusCallback`) for call `sid`.
    fn post_amd(
        &mut self,
        sid: String,
        url: Url,
        method: tandem_webhook::Method,
        result: Vec<(String, String)>,
    ) {
        let mut p = tandem_webhook::Params::new();
        p.push("CallSid", sid.as_str());
        p.push("AccountSid", self.cfg.account_sid.as_str());
        for (k, v) in result {
            p.push(k, v);
        }
        self.out.push_back(Output::Callback {
            sid,
            url,
            method,
            params: p,
        });
    }

    fn amd_decided(&mut self, i: usize, result: AmdResult) {
        let Some(a) = self.amd_mut(i) else { return };
        if a.result.is_some() {
            return;
        }
        a.result = Some(result);
        a.until = None;
        tracing::info!(branch = i, answered_by = %result.answered_by, ms = result.after_ms, "AnsweredBy");
        let waiting = std::mem::take(&mut a.waiting);
        let callback = a.callback.clone();
        let params = a.params();
        // The child's history row gets its AnsweredBy now.
        if let Some(b) = self.dial.as_ref().map(|d| &d.branches[i]) {
            let info = self.child_info(b, tandem_webhook::CallStatus::InProgress);
            let record = super::dial::branch_record(b, info, None);
            self.out.push_back(Output::History(Box::new(record)));
        }
        if let Some((url, method)) = callback {
            let Some(sid) = self.dial.as_ref().map(|d| d.branches[i].sid.clone()) else {
                return;
            };
            self.post_amd(sid, url, method, params);
        }
        if waiting {
            self.start_screening(i);
            // Without a url the arbiter accepts the callee now: bridge it.
            self.apply_actions();
        }
    }

    /// When the call gives up waiting for a detector.
    pub(super) fn amd_deadlines(&self) -> impl Iterator<Item = Instant> + '_ {
        let placed = self
            .placed
            .as_ref()
            .and_then(|p| p.amd.as_ref())
            .and_then(|a| a.until);
        self.dial
            .iter()
            .flat_map(|d| {
                d.branches
                    .iter()
                    .filter(|b| !b.ended)
                    .filter_map(|b| b.amd.as_ref().and_then(|a| a.until))
            })
            .chain(placed)
    }

    pub(super) fn amd_timers(&mut self, now: Instant) {
        let placed = self
            .placed
            .as_ref()
            .and_then(|p| p.amd.as_ref())
            .and_then(|a| a.until.filter(|u| *u <= now).map(|_| a.cfg.timeout_ms));
        if let Some(timeout_ms) = placed {
            tracing::info!("no decision from the callee's audio by machineDetectionTimeout");
            self.placed_amd_decided(AmdResult {
                answered_by: AnsweredBy::Unknown,
                after_ms: timeout_ms,
            });
        }
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            let ended = self.dial.as_ref().is_none_or(|d| d.branches[i].ended);
            let due = self
                .amd_mut(i)
                .and_then(|a| a.until.filter(|u| *u <= now).map(|_| a.cfg));
            let due = due.filter(|_| !ended);
            if let Some(cfg) = due {
                tracing::info!(
                    branch = i,
                    "no decision from the callee's audio by machineDetectionTimeout"
                );
                self.amd_decided(
                    i,
                    AmdResult {
                        answered_by: AnsweredBy::Unknown,
                        after_ms: cfg.timeout_ms,
                    },
                );
            }
        }
    }
}
