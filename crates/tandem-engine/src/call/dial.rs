//! `<Dial>` on the call state machine: branches and their INVITEs (digest
//! answers, `<Client>` contacts), the fork arbiter's decisions carried out in
//! one place, each branch's life (media, callbacks) ended by the arbiter's
//! `Ended`, the bridge and the Dial's recording.

use super::*;
use crate::dns::Name;
use crate::fork::{Action, DialResult, ForkArbiter, RingbackPolicy};
use crate::recording::{RecordFrom, RecordingInfo, RecordingOptions};
use tandem_sip::transaction::Transport;
use tandem_twiml::{CallProgressEvent, DialCallStatus, DialOutcome, Noun};
use tandem_webhook::CallStatus;

/// One branch: a child leg of the Dial (design §4 step 5). The arbiter owns
/// where it stands; this holds what the call needs to act on it.
#[derive(Debug)]
pub(super) struct Branch {
    pub sid: String,
    pub call_id: String,
    pub via_branch: String,
    pub invite: Request,
    pub peer: Peer,
    /// The other targets of the destination's name, tried in order when
    /// `peer` fails before any provisional response.
    pub alternates: Vec<Peer>,
    pub to: String,
    pub from: String,
    /// The confirmed (or early) dialog with the callee.
    pub dialog: Option<Dialog>,
    pub media: Option<LegId>,
    pub status_callback: Option<(Url, tandem_webhook::Method, Vec<CallProgressEvent>)>,
    pub answered_at: Option<Instant>,
    pub ringing_reported: bool,
    pub final_code: Option<u16>,
    /// The callee's SDP answer, kept to answer the caller when media is not anchored.
    pub answer_sdp: Option<Vec<u8>>,
    /// The noun's screening document (`url`), resolved.
    pub screen_url: Option<(Url, tandem_twiml::Method)>,
    /// `<Number machineDetection>`.
    pub amd: Option<Box<super::amd::BranchAmd>>,
    /// Digest credentials for 401/407 (trunk's or the `<Sip>` noun's).
    pub credentials: Option<(String, String)>,
    pub auth_tried: bool,
    /// The screening document running on this answered callee.
    pub screen: Option<Box<super::screen::Screen>>,
    /// `<Number sendDigits>`, played to the callee once bridged.
    pub send_digits: Option<String>,
    /// A 2xx was taken and its ACK is still to be sent (the arbiter decides
    /// whether a BYE follows).
    pub unacked: bool,
    /// Its Call-ID is routed to this call.
    pub routed: bool,
    /// The branch's life is over (its `completed` went out).
    pub ended: bool,
    /// `<sip:proxy;lr>` of the trunk a `<Number>` went out on: the route
    /// of its in-dialog requests when the 2xx brought none.
    pub trunk_route: Option<String>,
    /// Its session clock (RFC 4028), once answered with an interval.
    pub session: Option<Box<super::session::LegSession>>,
    /// The INVITE was re-sent once with the interval a 422 asked for.
    pub se_retried: bool,
    /// The RSeq of the last reliable provisional PRACKed (RFC 3262).
    pub rseq: Option<u32>,
    /// The 2xx to the callee's re-INVITE without SDP carried Tandem's
    /// offer: the callee's ACK brings the answer (RFC 3261 §14.2).
    pub offer_pending: bool,
}

#[derive(Debug)]
pub(super) struct DialState {
    pub spec: tandem_twiml::Dial,
    pub arbiter: ForkArbiter,
    pub branches: Vec<Branch>,
    pub bridged: Option<usize>,
    pub bridged_at: Option<Instant>,
    pub time_limit: Option<Instant>,
    /// `record` of this Dial.
    pub rec_opts: Option<RecordingOptions>,
    pub recording: bool,
    /// The finished recording, for the action and the child's `completed`.
    pub rec_info: Option<tandem_webhook::RecordingRef>,
    /// recordingStatusCallback, method and events.
    pub rec_callback: Option<RecCallback>,
    /// The outcome once the fork and any bridge are over.
    pub done: bool,
}

/// A `recordingStatusCallback`: URL, method and the events it wants.
pub(crate) type RecCallback = (
    Url,
    tandem_webhook::Method,
    Vec<tandem_twiml::RecordingStatus>,
);

impl DialState {
    pub(super) fn index(&self, call_id: &str) -> Option<usize> {
        self.branches.iter().position(|b| b.call_id == call_id)
    }
}

/// Where a branch's INVITE goes.
#[derive(Debug)]
struct Target {
    uri: String,
    peer: Peer,
    /// Where to go next if `peer` fails (RFC 3263 §4.3).
    alternates: Vec<Peer>,
    headers: Vec<(String, String)>,
    credentials: Option<(String, String)>,
    /// Through a trunk: its proxy as a loose route.
    route: Option<String>,
}

/// A destination before its name is looked up.
#[derive(Debug)]
enum Dest {
    Uri {
        uri: String,
        headers: Vec<(String, String)>,
        credentials: Option<(String, String)>,
        route: Option<String>,
    },
    Contacts(Vec<(String, Peer)>),
    Fail(u16),
}

fn noun_options(n: &Noun) -> Option<&tandem_twiml::NounOptions> {
    match n {
        Noun::Number(x) => Some(&x.options),
        Noun::Client(x) => Some(&x.options),
        Noun::Sip(x) => Some(&x.options),
        _ => None,
    }
}

/// Branch `b` failed at its current target before any provisional
/// response (a timeout, a refused connection, a 503): its INVITE goes to
/// the next target its name gave (RFC 3263 §4.3), as a new transaction
/// with Via branch `branch`. False when there is none left.
fn fail_over(b: &mut Branch, branch: String, why: &str, out: &mut VecDeque<Output>) -> bool {
    if b.alternates.is_empty() || b.ringing_reported || b.answered_at.is_some() {
        return false;
    }
    let next = b.alternates.remove(0);
    tracing::info!(from = %b.peer.addr, to = %next.addr, why, "branch fails over to the next target");
    b.peer = next;
    let invite = resent(&b.invite, &branch);
    resend(b, invite, branch, out);
    true
}

impl Call {
    fn dest(&self, noun: &Noun) -> Dest {
        match noun {
            Noun::Sip(s) => Dest::Uri {
                uri: s.uri.clone(),
                headers: s.headers.clone(),
                credentials: s.username.clone().zip(s.password.clone()),
                route: None,
            },
            Noun::Number(n) => {
                let number = n.number.to_string();
                let Some(trunk) = self.cfg.trunk_for(&number, n.byoc.as_deref()) else {
                    tracing::warn!(%number, "no trunk carries this number");
                    return Dest::Fail(404);
                };
                let (scheme, host) = trunk
                    .proxy
                    .split_once(':')
                    .unwrap_or(("sip", trunk.proxy.as_str()));
                Dest::Uri {
                    uri: format!("{scheme}:{number}@{host}"),
                    headers: Vec::new(),
                    credentials: trunk.username.clone().zip(trunk.password.clone()),
                    route: Some(format!("<{scheme}:{host};lr>")),
                }
            }
            Noun::Client(c) => {
                let contacts = self.env.contacts(&c.identity);
                if contacts.is_empty() {
                    tracing::info!(identity = %c.identity, "<Client> not registered: branch fails");
                    return Dest::Fail(480);
                }
                Dest::Contacts(contacts)
            }
            _ => Dest::Fail(488),
        }
    }

    /// Starts a `<Dial>`: every branch's INVITE at once. Names not yet
    /// looked up are asked for first (`Output::Resolve`); the Dial starts
    /// when they are back.
    pub(super) fn start_dial(&mut self, spec: tandem_twiml::Dial) {
        match spec.nouns.first() {
            Some(Noun::Conference(_)) => return self.start_conference(spec),
            Some(Noun::Queue(_)) => return self.start_dequeue(spec),
            _ => {}
        }
        let dests: Vec<(usize, Dest)> = spec
            .nouns
            .iter()
            .enumerate()
            .map(|(i, n)| (i, self.dest(n)))
            .collect();
        let mut unknown = Vec::new();
        for (_, d) in &dests {
            if let Dest::Uri { uri, .. } = d
                && let Some(name) = Name::from_uri(uri)
                && name.literal().is_none()
                && !self.dns.contains_key(&name)
                && !unknown.contains(&name)
            {
                unknown.push(name);
            }
        }
        if !unknown.is_empty() {
            self.pending_dial = Some(spec);
            self.out.push_back(Output::Resolve(unknown));
            return;
        }
        let caller_id = spec
            .caller_id
            .clone()
            .unwrap_or_else(|| self.from_user.clone());
        let mut branches = Vec::new();
        let pstn_refusal = self.pstn_caller_id_refusal(spec.caller_id.as_deref(), &caller_id);
        for (n, dest) in dests {
            let noun = &spec.nouns[n];
            let dest = match (noun, pstn_refusal) {
                (Noun::Number(num), Some(why)) => {
                    tracing::warn!(number = %num.number, caller_id = %caller_id, why, "<Number> not dialed: caller ID refused (Twilio error 13214)");
                    Dest::Fail(403)
                }
                _ => dest,
            };
            let targets: Vec<Result<Target, u16>> = match dest {
                Dest::Fail(code) => vec![Err(code)],
                Dest::Contacts(c) => c
                    .into_iter()
                    .map(|(uri, peer)| {
                        Ok(Target {
                            uri,
                            peer,
                            alternates: Vec::new(),
                            headers: Vec::new(),
                            credentials: None,
                            route: None,
                        })
                    })
                    .collect(),
                Dest::Uri {
                    uri,
                    headers,
                    credentials,
                    route,
                } => vec![self.resolve(&uri).map(|(peer, alternates)| Target {
                    uri,
                    peer,
                    alternates,
                    headers,
                    credentials,
                    route,
                })],
            };
            for target in targets {
                let b = match target {
                    Ok(t) => self.build_branch(noun, t, &caller_id, spec.call_reason.as_deref()),
                    Err(code) => Err(code),
                };
                branches.push(match b {
                    Ok(b) => b,
                    Err(code) => self.dead_branch(noun, code),
                });
            }
        }
        // A Vec's first push reserves four ~1 KB branches: keep only what is used.
        branches.shrink_to_fit();
        if self.phantom
            && let Some(b) = branches.first_mut()
        {
            // A REST API call's (first) branch is the call itself.
            b.sid = self.sid.clone();
        }
        // A synchronous detection holds the callee like a screening does.
        let screening: Vec<bool> = branches
            .iter()
            .map(|b| b.screen_url.is_some() || b.amd.as_ref().is_some_and(|a| a.is_sync()))
            .collect();
        let policy = if spec.ring_tone.is_some() {
            RingbackPolicy::RingTone
        } else {
            RingbackPolicy::CalleeEarlyMedia
        };
        let arbiter = ForkArbiter::new(
            self.now,
            branches.len(),
            Duration::from_secs(u64::from(spec.timeout)),
            screening,
            policy,
        );
        let rec_opts = RecordingOptions::from_twiml(spec.record, spec.recording_track, spec.trim);
        let rec_callback = self.rec_callback_of(
            spec.recording_status_callback.as_ref(),
            spec.recording_status_callback_method,
            &spec.recording_status_callback_event,
        );
        self.dial = Some(DialState {
            spec,
            arbiter,
            branches,
            bridged: None,
            bridged_at: None,
            time_limit: None,
            rec_opts,
            recording: false,
            rec_info: None,
            rec_callback,
            done: false,
        });
        // Every INVITE at once; branches that failed before one end now.
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            let d = self.dial.as_mut().expect("just set");
            let b = &mut d.branches[i];
            match b.final_code {
                None => {
                    b.routed = true;
                    self.out.push_back(Output::Route {
                        call_id: b.call_id.clone(),
                    });
                    self.out.push_back(Output::Request {
                        request: b.invite.clone(),
                        peer: b.peer,
                    });
                    self.report(i, CallProgressEvent::Initiated, CallStatus::Initiated, None);
                }
                Some(code) => {
                    let now = self.now;
                    d.arbiter.on_unreachable(now, i, code);
                }
            }
        }
        if self
            .dial
            .as_ref()
            .and_then(|d| d.rec_opts.as_ref())
            .is_some_and(|o| o.from == RecordFrom::Ringing)
        {
            self.start_recording();
        }
        let answer_on_bridge = self.dial.as_ref().is_some_and(|d| d.spec.answer_on_bridge);
        if !self.answered && answer_on_bridge && !self.early_sent {
            // The caller rings until a callee is bridged; with anchored media it hears ringback
            // (not when Tandem's SDP is an offer: that goes in the 2xx).
            let sdp = self.answer_sdp.clone().filter(|_| !self.offer_pending);
            let code = if sdp.is_some() { 183 } else { 180 };
            let r = self.response(code, sdp.as_deref());
            self.respond_caller(r);
            self.early_sent = true;
        }
        self.apply_actions();
    }

    /// The address of a URI's host: a literal, or a name looked up already.
    /// Why a `<Number>` (a PSTN leg) may not go out with `caller_id`, for a
    /// call from a SIP endpoint or client (not from a trunk): the caller ID
    /// must be a phone number, and an explicit `callerId` may not be the
    /// call's own To or From (the reference pages' rule against spoofing).
    fn pstn_caller_id_refusal(
        &self,
        explicit: Option<&str>,
        caller_id: &str,
    ) -> Option<&'static str> {
        if self.cfg.source_trunk(self.source.addr.ip()).is_some() {
            return None;
        }
        let Some(number) = tandem_twiml::PhoneNumber::parse(caller_id) else {
            return Some(
                "a call from a SIP endpoint or client needs a phone number as caller ID for <Number>: set <Dial callerId>",
            );
        };
        let same = |user: &str| tandem_twiml::PhoneNumber::parse(user).is_some_and(|u| u == number);
        (explicit.is_some() && (same(&self.from_user) || same(&self.to_user)))
            .then_some("callerId may not be the To or From of a call from a SIP endpoint: use a number of Tandem's")
    }

    /// The targets of a URI, in the order to try them: the first, and the
    /// rest for failing over.
    fn resolve(&self, uri: &str) -> Result<(Peer, Vec<Peer>), u16> {
        let Some(name) = Name::from_uri(uri) else {
            tracing::warn!(%uri, "destination URI has no host");
            return Err(400);
        };
        let mut targets = match name.literal() {
            Some(p) => vec![p],
            None => self.dns.get(&name).cloned().unwrap_or_default(),
        };
        if targets.is_empty() {
            tracing::warn!(%uri, "cannot resolve the destination");
            return Err(404);
        }
        let first = targets.remove(0);
        Ok((first, targets))
    }

    /// A branch that failed before any INVITE (no trunk, not registered,
    /// no address, no media port): it still reports its `completed`.
    fn dead_branch(&mut self, noun: &Noun, code: u16) -> Branch {
        let to = match noun {
            Noun::Number(n) => n.number.to_string(),
            Noun::Client(c) => format!("client:{}", c.identity),
            Noun::Sip(s) => s.uri.clone(),
            _ => String::new(),
        };
        Branch {
            sid: call_sid(&mut self.ids),
            call_id: self.ids.call_id(),
            via_branch: String::new(),
            invite: self.invite.clone(),
            peer: self.source,
            alternates: Vec::new(),
            rseq: None,
            offer_pending: false,
            to,
            from: self.from_user.clone(),
            dialog: None,
            media: None,
            status_callback: self.status_callback_of(noun),
            answered_at: None,
            ringing_reported: false,
            final_code: Some(code),
            answer_sdp: None,
            screen_url: None,
            amd: None,
            credentials: None,
            auth_tried: false,
            screen: None,
            send_digits: None,
            unacked: false,
            routed: false,
            ended: false,
            session: None,
            se_retried: false,
            trunk_route: None,
        }
    }

    fn status_callback_of(
        &self,
        noun: &Noun,
    ) -> Option<(Url, tandem_webhook::Method, Vec<CallProgressEvent>)> {
        noun_options(noun).and_then(|o| {
            let url = self.resolve_url(o.status_callback.as_ref()?)?;
            let events = if o.status_callback_event.is_empty() {
                vec![CallProgressEvent::Completed]
            } else {
                o.status_callback_event.clone()
            };
            Some((url, o.status_callback_method, events))
        })
    }

    /// Builds a branch's INVITE toward a target, with its own media leg.
    fn build_branch(
        &mut self,
        noun: &Noun,
        target: Target,
        caller_id: &str,
        call_reason: Option<&str>,
    ) -> Result<Branch, u16> {
        let Target {
            uri,
            peer,
            alternates,
            headers: extra,
            credentials,
            route: trunk_route,
        } = target;
        let call_id = self.ids.call_id();
        let via_branch = self.ids.branch();
        let tag = self.ids.tag();
        let bare = uri.split('?').next().unwrap_or(&uri);
        let Ok(ruri) = tandem_sip::uri::parse(bare) else {
            return Err(400);
        };
        let host_port = &self.cfg.sip_host;
        let mut b = tandem_sip::builder::RequestBuilder::new(Method::Invite, ruri)
            .via(
                peer.transport.as_str(),
                self.cfg.host(peer.transport),
                &via_branch,
            )
            .max_forwards(70)
            .from(format!("<sip:{caller_id}@{host_port}>;tag={tag}"))
            .to(format!("<{bare}>"))
            .call_id(call_id.clone())
            .cseq(1)
            .contact(self.cfg.contact(peer.transport));
        for (k, v) in extra {
            b = b.header(Header::Other(k, v));
        }
        // `callReason`: RFC 3261's Subject ("the nature of the call"), which
        // phones show and filters read; validated to one line of ≤ 50.
        if let Some(reason) = call_reason {
            b = b.header(Header::Subject(reason.into()));
        }
        b = b.header(Header::Allow(super::ALLOW.into()));
        // Reliable provisionals (RFC 3262): Tandem PRACKs them.
        b = b.header(Header::Supported(
            if self.cfg.session_timers.is_some() {
                "100rel, timer"
            } else {
                "100rel"
            }
            .into(),
        ));
        if let Some(policy) = self.cfg.session_timers {
            for h in super::session::invite_headers(policy) {
                b = b.header(h);
            }
        }
        if let Noun::Client(c) = noun {
            for (k, v) in &c.parameters {
                b = b.header(Header::Other(format!("X-{k}"), v.clone()));
            }
        }
        // Media: a leg per branch, offered the caller's codecs (G.711 added
        // when it had none).
        let caller_offer = has_sdp(&self.invite.headers, &self.invite.body);
        let mut media = None;
        let mut body = None;
        if self.env.has_media() {
            let leg = self.env.open_leg(peer.addr.ip()).map_err(|e| e.status())?;
            // Keys go only where the signalling is encrypted (RFC 4568 §8.3).
            if peer.transport == Transport::Tls {
                self.env.offer_srtp(leg);
            }
            let offer = self
                .env
                .offer(leg, caller_offer.then_some(self.invite.body.as_slice()));
            match offer {
                Ok(sdp) => {
                    body = Some(sdp);
                    media = Some(leg);
                }
                Err(e) => {
                    self.env.close_leg(leg);
                    return Err(e.status());
                }
            }
        } else if caller_offer {
            body = Some(self.invite.body.clone());
        }
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let invite = b.build();
        let screen_url =
            noun_options(noun).and_then(|o| Some((self.resolve_url(o.url.as_ref()?)?, o.method)));
        Ok(Branch {
            sid: call_sid(&mut self.ids),
            call_id,
            via_branch,
            invite,
            peer,
            alternates,
            rseq: None,
            offer_pending: false,
            to: user_of(&uri),
            from: caller_id.to_owned(),
            dialog: None,
            media,
            status_callback: self.status_callback_of(noun),
            answered_at: None,
            ringing_reported: false,
            final_code: None,
            answer_sdp: None,
            screen_url,
            amd: self.amd_of(noun),
            credentials,
            auth_tried: false,
            screen: None,
            send_digits: match noun {
                Noun::Number(n) => n.send_digits.clone(),
                _ => None,
            },
            unacked: false,
            routed: false,
            ended: false,
            session: None,
            se_retried: false,
            trunk_route,
        })
    }

    /// A child leg's call parameters (Direction outbound-dial, ParentCallSid).
    pub(super) fn child_info(&self, b: &Branch, status: CallStatus) -> tandem_webhook::CallInfo {
        if self.phantom && b.sid == self.sid {
            // A REST API call's own leg.
            return self.call_info(status);
        }
        tandem_webhook::CallInfo {
            call_sid: b.sid.clone(),
            account_sid: self.cfg.account_sid.clone(),
            from: b.from.clone(),
            to: b.to.clone(),
            status,
            direction: tandem_webhook::Direction::OutboundDial,
            parent_call_sid: Some(self.sid.clone()),
            forwarded_from: self.forwarded_from.clone(),
            caller_name: self.caller_name.clone(),
        }
    }

    /// A callee's re-INVITE without SDP asks for an offer (RFC 3261
    /// §14.2, a delayed offer): Tandem's 2xx re-offers the leg's session
    /// and the callee's ACK answers. `None` when media is not anchored
    /// (the 2xx then carries no SDP, as before).
    fn reoffer_branch(&mut self, i: usize) -> Option<Vec<u8>> {
        if !self.env.has_media() {
            return None;
        }
        let leg = self.dial.as_ref()?.branches.get(i)?.media?;
        match self.env.reoffer(leg) {
            Ok(offer) => {
                self.dial.as_mut()?.branches[i].offer_pending = true;
                Some(offer)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no offer for the callee's re-INVITE without SDP");
                None
            }
        }
    }

    /// The callee's ACK to the 2xx of its re-INVITE: when that 2xx carried
    /// Tandem's offer, the answer it carries sets the leg's media. One
    /// without a usable answer leaves the leg as it was (the call goes on).
    pub(super) fn on_branch_ack(&mut self, call_id: &str, sdp: Option<&[u8]>) {
        let Some(b) = self
            .dial
            .as_mut()
            .and_then(|d| d.branches.iter_mut().find(|b| b.call_id == call_id))
        else {
            return;
        };
        if !std::mem::take(&mut b.offer_pending) {
            return;
        }
        let Some(leg) = b.media else { return };
        if let Err(why) = self.answer_in_ack(leg, sdp) {
            tracing::warn!(%why, call_id, "the callee's ACK does not answer Tandem's re-offer: its media stays as it was");
        }
    }

    /// Queues a status callback for branch `i` when its noun asked for `event`.
    fn report(
        &mut self,
        i: usize,
        event: CallProgressEvent,
        status: CallStatus,
        duration: Option<u64>,
    ) {
        let Some(d) = &self.dial else { return };
        let b = &d.branches[i];
        let info = self.child_info(b, status);
        if self.phantom && info.call_sid == self.sid && crate::history::is_final(status) {
            self.api_ended = true;
        }
        let record = branch_record(b, info, duration);
        self.out.push_back(Output::History(Box::new(record)));
        let Some(d) = &self.dial else { return };
        let b = &d.branches[i];
        let Some((url, method, events)) = &b.status_callback else {
            return;
        };
        if !events.contains(&event) {
            return;
        }
        let recording = if event == CallProgressEvent::Completed && d.bridged == Some(i) {
            d.rec_info.clone()
        } else {
            None
        };
        let ev = tandem_webhook::StatusEvent {
            call: self.child_info(b, status),
            duration_secs: duration,
            recording,
            sip_response_code: b.final_code,
            // The shell stamps the wall clock when it sends.
            timestamp: std::time::UNIX_EPOCH,
        };
        let (url, method) = (url.clone(), *method);
        self.out.push_back(Output::Status {
            url,
            method,
            event: Box::new(ev),
        });
    }

    pub(super) fn on_child_response(&mut self, response: Response, stray: Option<Peer>) {
        let cid = response.headers.call_id().unwrap_or("").to_owned();
        if let Some((_, Method::Update)) = response.headers.cseq() {
            // Tandem sends UPDATE only to refresh a session.
            let who = if cid == self.call_id {
                Some(None)
            } else {
                self.dial.as_ref().and_then(|d| d.index(&cid)).map(Some)
            };
            if let Some(who) = who {
                self.on_refresh_response(who, &response);
            }
            return;
        }
        let Some((seq, Method::Invite)) = response.headers.cseq() else {
            // Responses to BYE, CANCEL, INFO: the transactions did their part.
            return;
        };
        if cid == self.call_id {
            self.on_parent_reinvite_response(&response, seq);
            return;
        }
        // The current Dial's branch, or a finished Dial's.
        if let Some(i) = self.dial.as_ref().and_then(|d| d.index(&cid)) {
            self.branch_response(i, response, seq, stray);
            return;
        }
        let Some(p) = self.past.iter().position(|(_, d)| d.index(&cid).is_some()) else {
            return;
        };
        // Run it as the current Dial for the moment: same rules, same arbiter.
        let (until, past) = self.past.remove(p);
        let current = self.dial.replace(past);
        let i = self
            .dial
            .as_ref()
            .and_then(|d| d.index(&cid))
            .expect("found");
        self.branch_response(i, response, seq, stray);
        let past = std::mem::replace(&mut self.dial, current).expect("put back");
        self.past.push((until, past));
    }

    fn branch_response(&mut self, i: usize, response: Response, seq: u32, stray: Option<Peer>) {
        let reinvite = self
            .dial
            .as_ref()
            .and_then(|d| d.branches[i].dialog.as_ref())
            .is_some_and(|dl| seq > dl.invite_seq);
        if reinvite {
            self.on_child_reinvite_response(i, &response, seq);
            return;
        }
        let code = response.status_code.code();
        let now = self.now;
        let sdp = has_sdp(&response.headers, &response.body);
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        if (200..300).contains(&code) {
            let to_tag = response.headers.to_tag().unwrap_or("").to_owned();
            let confirmed = b.answered_at.is_some();
            match &mut b.dialog {
                Some(dl) if confirmed && dl.id.remote_tag == to_tag => {
                    // A retransmitted 2xx: ACK it again.
                    let _ = stray;
                    self.ack_branch(i);
                    return;
                }
                Some(_) if confirmed => {
                    // A second 2xx with another To tag (a forking proxy
                    // downstream): ACK then BYE that extra dialog only.
                    tracing::info!(
                        branch = i,
                        "second 2xx from another callee: ACK then BYE it"
                    );
                    let peer = b.peer;
                    if let Ok(mut extra) = Dialog::uac(&b.invite, &response) {
                        preload_route(&mut extra, b.trunk_route.as_deref());
                        self.ack_and_bye(&mut extra, peer);
                    }
                    return;
                }
                Some(dl) if dl.id.remote_tag == to_tag => dl.on_invite_response(&response),
                _ => match Dialog::uac(&b.invite, &response) {
                    Ok(dl) => b.dialog = Some(dl),
                    Err(_) => {
                        tracing::warn!("2xx without To tag from a callee: cannot ACK it");
                        return;
                    }
                },
            }
            if let Some(dl) = &mut b.dialog {
                preload_route(dl, b.trunk_route.as_deref());
            }
            if let (Some(leg), true) = (b.media, sdp)
                && let Err(e) = self.env.take_answer(leg, &response.body)
            {
                tracing::warn!(error = %e, "callee's SDP answer unusable");
            }
            if sdp && b.media.is_none() {
                b.answer_sdp = Some(response.body.clone());
            }
            b.session = super::session::branch_session(&self.cfg, now, &response, &b.invite.body);
            b.answered_at = Some(now);
            b.final_code = Some(code);
            b.unacked = true;
            // The offer in the INVITE is answered; later requests need only its headers.
            b.invite.body = Vec::new();
            if !b.ended {
                self.report(i, CallProgressEvent::Answered, CallStatus::InProgress, None);
            }
            if let Some(d) = &mut self.dial {
                d.arbiter.on_answered(now, i);
            }
            self.apply_actions();
            // The arbiter had no use for it (its branch already over): ACK then BYE.
            if self
                .dial
                .as_ref()
                .is_some_and(|d| d.branches.get(i).is_some_and(|b| b.unacked))
            {
                self.ack_then_bye(i);
            }
            return;
        }
        if code > 100 && code < 200 {
            if b.dialog.is_none() && response.headers.to_tag().is_some() {
                b.dialog = Dialog::uac(&b.invite, &response).ok();
                if let Some(dl) = &mut b.dialog {
                    preload_route(dl, b.trunk_route.as_deref());
                }
            }
            // A reliable provisional (RFC 3262 §4): PRACKed once, in its
            // early dialog; a retransmission, or one out of RSeq order, is
            // not processed again.
            if let Some(rseq) = super::prack::reliable_rseq(&response) {
                if b.rseq.is_some_and(|last| rseq <= last) {
                    return;
                }
                b.rseq = Some(rseq);
                let branch = self.ids.branch();
                let host = self.cfg.host(b.peer.transport);
                let to_tag = response.headers.to_tag().unwrap_or("");
                let mut other;
                let dialog = match &mut b.dialog {
                    Some(dl) if dl.id.remote_tag == to_tag => Some(dl),
                    // Another fork's early dialog: its PRACK in its own.
                    _ => {
                        other = Dialog::uac(&b.invite, &response).ok();
                        other.as_mut()
                    }
                };
                if let Some(dl) = dialog
                    && let Ok(mut prack) =
                        dl.request(Method::PRack, b.peer.transport.as_str(), host, &branch)
                {
                    prack
                        .headers
                        .push(Header::Other("RAck".into(), format!("{rseq} {seq} INVITE")));
                    self.out.push_back(Output::Request {
                        request: prack,
                        peer: b.peer,
                    });
                }
            }
            if let (Some(leg), true) = (b.media, sdp) {
                let _ = self.env.take_answer(leg, &response.body);
            }
            let first = !b.ringing_reported;
            b.ringing_reported = true;
            d.arbiter.on_provisional(now, i, code, sdp);
            if first {
                self.report(i, CallProgressEvent::Ringing, CallStatus::Ringing, None);
            }
        } else if matches!(code, 401 | 407) && b.credentials.is_some() && !b.auth_tried {
            // Answer the challenge once with the trunk's or the noun's credentials.
            b.auth_tried = true;
            let branch = self.ids.branch();
            let cnonce = self.ids.tag();
            match authorized_invite(
                &b.invite,
                &response,
                b.credentials.as_ref(),
                &branch,
                &cnonce,
            ) {
                Ok(invite) => resend(b, invite, branch, &mut self.out),
                Err(e) => {
                    tracing::warn!(error = %e, code, "cannot answer the callee's challenge");
                    b.final_code = Some(code);
                    d.arbiter.on_failed(now, i, code);
                }
            }
        } else if code == 422
            && !b.se_retried
            && let Some(min_se) = tandem_sip::session_timer::min_se(&response.headers)
            && self.cfg.session_timers.is_some()
        {
            // The callee (or a proxy) wants a longer interval (RFC 4028
            // §7.4): asked again once, with its Min-SE.
            b.se_retried = true;
            let branch = self.ids.branch();
            let invite = super::session::with_interval(&b.invite, min_se, &branch);
            resend(b, invite, branch, &mut self.out);
        } else if code == 503 && fail_over(b, self.ids.branch(), "503", &mut self.out) {
        } else if code >= 300 {
            if d.arbiter.awaits_final(i) && b.answered_at.is_none() {
                b.final_code = Some(code);
            }
            d.arbiter.on_failed(now, i, code);
        }
        self.apply_actions();
    }

    /// An INVITE client transaction of a branch timed out (Timer B, or a
    /// transport failure): 408 for that branch.
    pub(super) fn on_invite_timeout(&mut self, call_id: &str, via_branch: &str) {
        let hit = |d: &DialState| {
            d.index(call_id)
                .filter(|&i| d.branches[i].via_branch == via_branch)
        };
        if let Some(i) = self.dial.as_ref().and_then(hit) {
            let now = self.now;
            let branch = self.ids.branch();
            if let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i])
                && fail_over(b, branch, "no answer", &mut self.out)
            {
                return;
            }
            if let Some(d) = &mut self.dial {
                if d.branches[i].final_code.is_none() {
                    d.branches[i].final_code = Some(408);
                }
                d.arbiter.on_failed(now, i, 408);
            }
            self.apply_actions();
            return;
        }
        let now = self.now;
        for (_, d) in &mut self.past {
            if let Some(i) = hit(d) {
                d.arbiter.on_failed(now, i, 408);
                while d.arbiter.poll_action().is_some() {}
            }
        }
    }

    /// A request in a child leg's dialog.
    pub(super) fn on_branch_request(&mut self, stx: ServerTx, request: Request, cid: &str) {
        let ok = |r: &Request| response_to(r, 200, None, None);
        let Some(i) = self.dial.as_ref().and_then(|d| d.index(cid)) else {
            // A finished Dial's branch: BYE is answered, others 481.
            let code = if request.method == Method::Bye {
                200
            } else {
                481
            };
            self.out.push_back(Output::Respond {
                stx,
                response: response_to(&request, code, None, None),
            });
            return;
        };
        // In-dialog from the callee: its dialog's tags (and CSeq order), or
        // 481 — a Call-ID alone is not enough to end or re-INVITE a call.
        let checked = match self
            .dial
            .as_mut()
            .and_then(|d| d.branches[i].dialog.as_mut())
        {
            Some(dialog) => dialog.on_request(&request),
            None => Err(tandem_sip::dialog::DialogError::Unknown),
        };
        if let Err(e) = checked {
            tracing::warn!(call_id = cid, method = %request.method, error = %e, "callee request refused");
            self.out.push_back(Output::Respond {
                stx,
                response: response_to(&request, e.status(), None, None),
            });
            return;
        }
        match request.method {
            Method::Invite => {
                // A session refresh too short gets 422; else answered from
                // our leg and offered on; an offer Tandem cannot answer
                // gets 488 and the session goes on as it was.
                let before = self.session_snapshot(Some(i));
                let leg = self.dial.as_ref().and_then(|d| d.branches[i].media);
                let response = match self.refresh_by_peer(Some(i), &request) {
                    Err(r) => r,
                    Ok(session) => {
                        let offered = has_sdp(&request.headers, &request.body);
                        let answer = if offered {
                            self.relay_reinvite(Some(i), &request)
                        } else {
                            self.reoffer_branch(i)
                        };
                        if offered && answer.is_none() && self.env.has_media() && leg.is_some() {
                            self.restore_session(Some(i), before);
                            response_to(&request, 488, None, None)
                        } else {
                            let mut r = response_to(&request, 200, None, None);
                            r.headers
                                .push(Header::Contact(self.contact(Some(i)).into()));
                            r.headers.extend(session);
                            if let Some(sdp) = answer {
                                r.headers
                                    .push(Header::ContentType("application/sdp".into()));
                                r.body = sdp;
                            }
                            r
                        }
                    }
                };
                if let Some(dl) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].dialog.as_mut())
                {
                    dl.remote_reinvite_pending = false;
                }
                self.out.push_back(Output::Respond { stx, response });
            }
            Method::Info => {
                self.out.push_back(Output::Respond {
                    stx,
                    response: ok(&request),
                });
                if let Some(digit) = dtmf_from_info(&request) {
                    self.on_screen_digit(i, digit);
                }
            }
            Method::Bye => {
                self.out.push_back(Output::Respond {
                    stx,
                    response: ok(&request),
                });
                let bridged = self.dial.as_ref().is_some_and(|d| d.bridged == Some(i));
                if bridged {
                    tracing::info!("callee hung up");
                    self.end_bridge(false);
                } else {
                    let now = self.now;
                    if let Some(d) = &mut self.dial {
                        d.branches[i].screen = None;
                        d.arbiter.on_branch_hangup(now, i);
                    }
                    self.apply_actions();
                }
            }
            Method::Refer => self.on_branch_refer(stx, request, i),
            Method::Update => self.answer_update(stx, &request, Some(i)),
            Method::Subscribe => self.out.push_back(Output::Respond {
                stx,
                response: super::bad_event(&request),
            }),
            _ => self.out.push_back(Output::Respond {
                stx,
                response: ok(&request),
            }),
        }
    }

    /// A REFER (transfer) Tandem does not carry out (call/transfer.rs):
    /// declined (603), never answered 200 and ignored, which would make the
    /// referrer believe the transfer happened. Without `referUrl` this is
    /// Twilio's error 13802.
    pub(super) fn refuse_refer(&self, request: &Request, from: &str) -> Response {
        let target = other_header(&request.headers, "Refer-To").unwrap_or("");
        let refer_url = self.dial.as_ref().and_then(|d| d.spec.refer_url.as_deref());
        let bridged = self
            .dial
            .as_ref()
            .is_some_and(|d| d.bridged.is_some() && !d.done);
        let why = if !bridged {
            "no bridge to transfer"
        } else if refer_url.is_none() {
            "the <Dial> has no referUrl (error 13802)"
        } else if target.is_empty() {
            "no Refer-To"
        } else {
            "another transfer is under way"
        };
        tracing::warn!(from, target, why, "REFER declined (603)");
        response_to(request, 603, None, None)
    }

    /// The caller left (BYE or CANCEL) during a Dial.
    pub(super) fn caller_left(&mut self) {
        if self.queue_caller_left() {
            return;
        }
        if self.in_conference() {
            return self.conference_over(DialCallStatus::Answered, true);
        }
        if self.dial.as_ref().and_then(|d| d.bridged).is_some() {
            self.end_bridge(true);
            return;
        }
        self.pending_dial = None;
        let now = self.now;
        if let Some(d) = &mut self.dial {
            d.arbiter.on_caller_hangup(now);
        }
        self.apply_actions();
    }

    /// Sends the ACK for branch `i`'s 2xx.
    fn ack_branch(&mut self, i: usize) {
        let cfg = self.cfg.clone();
        let branch = self.ids.branch();
        let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
            return;
        };
        b.unacked = false;
        let host = cfg.host(b.peer.transport);
        if let Some(dialog) = &b.dialog
            && let Ok(ack) = dialog.ack(b.peer.transport.as_str(), host, &branch)
        {
            self.out.push_back(Output::Ack {
                request: ack,
                peer: b.peer,
            });
        }
    }

    /// Sends the ACK of branch `i`'s 2xx unless it went out already (a
    /// screened branch was ACKed when its screening started).
    fn ack_if_owed(&mut self, i: usize) {
        if self.dial.as_ref().is_some_and(|d| d.branches[i].unacked) {
            self.ack_branch(i);
        }
    }

    /// ACK then BYE for a dialog Tandem does not want (ACK first, RFC 3261 §13.2.2.4).
    fn ack_and_bye(&mut self, dialog: &mut Dialog, peer: Peer) {
        let cfg = self.cfg.clone();
        let host = cfg.host(peer.transport);
        let transport = peer.transport.as_str();
        if let Ok(ack) = dialog.ack(transport, host, &self.ids.branch()) {
            self.out.push_back(Output::Ack { request: ack, peer });
        }
        if let Ok(bye) = dialog.request(Method::Bye, transport, host, &self.ids.branch()) {
            self.out.push_back(Output::Request { request: bye, peer });
        }
    }

    fn ack_then_bye(&mut self, i: usize) {
        let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
            return;
        };
        b.unacked = false;
        let peer = b.peer;
        if let Some(mut dialog) = b.dialog.take() {
            self.ack_and_bye(&mut dialog, peer);
        }
    }

    pub(super) fn bye_branch(&mut self, i: usize) {
        let cfg = self.cfg.clone();
        let branch = self.ids.branch();
        let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
            return;
        };
        if let Some(dialog) = &mut b.dialog
            && let Ok(bye) = dialog.request(
                Method::Bye,
                b.peer.transport.as_str(),
                cfg.host(b.peer.transport),
                &branch,
            )
        {
            self.out.push_back(Output::Request {
                request: bye,
                peer: b.peer,
            });
        }
        b.dialog = None;
    }

    /// Carries out the arbiter's decisions, in its order: the one place they are done.
    pub(super) fn apply_actions(&mut self) {
        while let Some(action) = self.dial.as_mut().and_then(|d| d.arbiter.poll_action()) {
            match action {
                Action::Cancel(i) => {
                    let b = &self.dial.as_ref().expect("dial").branches[i];
                    let (call_id, branch) = (b.call_id.clone(), b.via_branch.clone());
                    self.out.push_back(Output::Cancel { call_id, branch });
                }
                Action::AckThenBye(i) => self.ack_then_bye(i),
                Action::Bye(i) => {
                    self.ack_if_owed(i);
                    self.bye_branch(i);
                }
                Action::StartScreening(i) => {
                    self.ack_if_owed(i);
                    self.start_screening(i);
                }
                Action::Bridge(i) => {
                    self.ack_if_owed(i);
                    self.bridge(i);
                }
                Action::PlayRingback => self.play_ringback(),
                Action::PlayEarlyMedia(i) => self.play_early_media(i),
                Action::Ended { branch, status } => self.branch_ended(branch, status),
                Action::Finished(result) => self.dial_finished(result),
            }
        }
    }

    /// A branch's life is over: its media leg closes, its screening stops,
    /// its `completed` goes out with the status the arbiter gave.
    fn branch_ended(&mut self, i: usize, status: CallStatus) {
        let now = self.now;
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        if b.ended {
            return;
        }
        b.ended = true;
        if let Some(s) = b.screen.take()
            && let Some(p) = s.playing
        {
            self.env.stop_play(p);
        }
        if let Some(leg) = b.media.take() {
            self.env.close_leg(leg);
        }
        let duration = b.answered_at.map(|a| secs_between(a, now));
        let status = if b.answered_at.is_some() && status != CallStatus::Canceled {
            CallStatus::Completed
        } else {
            status
        };
        tracing::debug!(branch = i, status = status.as_str(), "branch ended");
        self.report(i, CallProgressEvent::Completed, status, duration);
    }

    pub(super) fn play_ringback(&mut self) {
        let tone = self
            .dial
            .as_ref()
            .and_then(|d| d.spec.ring_tone)
            .unwrap_or_default();
        let Some(parent) = self.media else { return };
        // No branch's early media reaches the caller any more.
        if let Some(d) = &self.dial {
            for b in &d.branches {
                if let Some(leg) = b.media {
                    self.env.relay(leg, None);
                }
            }
        }
        self.env.ringback(parent, Some(tone));
    }

    pub(super) fn play_early_media(&mut self, i: usize) {
        if let (Some(parent), Some(d)) = (self.media, &self.dial)
            && let Some(child) = d.branches[i].media
        {
            self.env.ringback(parent, None);
            self.env.relay(child, Some(parent));
        }
    }

    pub(super) fn bridge(&mut self, i: usize) {
        if self.phantom {
            return self.api_answered(i);
        }
        self.start_async_amd(i);
        if self.dial.as_ref().is_some_and(|d| d.spec.hangup_on_star) {
            self.ensure_dtmf();
        }
        if !self.answered && !self.caller_gone {
            if !self.env.has_media() {
                // Signalling only: the caller gets the callee's own SDP answer.
                self.answer_sdp = self
                    .dial
                    .as_ref()
                    .and_then(|d| d.branches[i].answer_sdp.clone());
            }
            self.answer();
        }
        let now = self.now;
        let Some(d) = &mut self.dial else { return };
        d.bridged = Some(i);
        d.bridged_at = Some(now);
        if d.spec.time_limit > 0 {
            d.time_limit = Some(now + Duration::from_secs(u64::from(d.spec.time_limit)));
        }
        let child = d.branches[i].media;
        let digits = d.branches[i].send_digits.clone();
        let need_recording = !d.recording && d.rec_opts.is_some();
        if let (Some(parent), Some(child)) = (self.media, child) {
            self.env.ringback(parent, None);
            self.env.bridge(parent, child);
            self.env.expect_media(child, true);
        }
        if let (Some(child), Some(digits)) = (child, digits)
            && let Err(e) = self.env.send_digits(child, &digits)
        {
            tracing::warn!(error = %e, "sendDigits not played");
        }
        if need_recording {
            self.start_recording();
        }
        let recording = self.dial.as_ref().is_some_and(|d| d.recording) || self.placed_recording();
        if let (Some(child), true) = (child, recording) {
            self.env.record_child(child);
        }
        tracing::info!(branch = i, "bridged");
    }

    /// The bridge ended: `by_us` when the caller left, timeLimit, hangupOnStar
    /// or a media timeout (the callee gets BYE); else the callee hung up.
    pub(super) fn end_bridge(&mut self, by_us: bool) {
        let Some(i) = self.dial.as_ref().and_then(|d| d.bridged) else {
            return;
        };
        if self.dial.as_ref().is_some_and(|d| d.done) {
            return;
        }
        if by_us {
            self.bye_branch(i);
        } else if let Some(d) = &mut self.dial {
            d.branches[i].dialog = None;
        }
        let recording_url = self.stop_dial_recording();
        let now = self.now;
        let Some(d) = &mut self.dial else { return };
        d.done = true;
        let duration = d.bridged_at.map_or(0, |a| secs_between(a, now));
        d.arbiter.on_bridge_ended(i);
        let sid = d.branches[i].sid.clone();
        self.apply_actions();
        self.finish_dial(bridged_outcome(sid, duration, recording_url));
    }

    fn dial_finished(&mut self, result: DialResult) {
        let Some(d) = &mut self.dial else { return };
        if d.bridged.is_some() || d.done {
            // The bridge is up; the Dial ends when it does.
            return;
        }
        d.done = true;
        let status = result.status.dial_call_status();
        let call_sid = d.branches.first().map(|b| b.sid.clone());
        let recording_url = self.stop_dial_recording();
        let outcome = DialOutcome {
            status,
            call_sid,
            // Twilio sends DialCallDuration only for a call that was connected.
            duration: None,
            bridged: false,
            recording_url,
            extra: Vec::new(),
        };
        self.finish_dial(outcome);
    }

    /// Starts the Dial's recording: channel 1 the caller, channel 2 the callee.
    pub(super) fn start_recording(&mut self) {
        let Some(opts) = self.dial.as_ref().and_then(|d| d.rec_opts) else {
            return;
        };
        let cb = self.dial.as_ref().and_then(|d| d.rec_callback.clone());
        if self.record_caller(opts, cb.as_ref())
            && let Some(d) = &mut self.dial
        {
            d.recording = true;
        }
    }

    /// Starts a recording with the caller's leg on channel 1 and reports
    /// `in-progress` when `cb` asks for it; whether it runs.
    pub(super) fn record_caller(
        &mut self,
        opts: RecordingOptions,
        cb: Option<&RecCallback>,
    ) -> bool {
        let Some(parent) = self.media else {
            tracing::info!("no media on the caller's leg: nothing to record");
            return false;
        };
        match self.env.start_recording(&self.sid, opts, parent) {
            Ok(started) => {
                if let Some((url, method, events)) = cb
                    && events.contains(&tandem_twiml::RecordingStatus::InProgress)
                {
                    self.out.push_back(Output::Recording {
                        url: url.clone(),
                        method: *method,
                        event: Box::new(started.event.clone()),
                    });
                }
                tracing::info!(recording = %started.event.recording_sid, "recording started");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "recording not started");
                false
            }
        }
    }

    /// Stops the Dial's recording; its URL when it holds audio.
    pub(super) fn stop_dial_recording(&mut self) -> Option<String> {
        if !self.dial.as_ref().is_some_and(|d| d.recording) {
            return None;
        }
        let cb = self.dial.as_mut().and_then(|d| {
            d.recording = false;
            d.rec_callback.clone()
        });
        let info = self.end_recording(cb.as_ref())?;
        if let Some(d) = &mut self.dial {
            d.rec_info = Some(info.reference());
        }
        Some(info.url)
    }

    /// Stops the running recording and reports `completed` or `absent`
    /// when `cb` asks for it; the recording when it holds audio.
    pub(super) fn end_recording(&mut self, cb: Option<&RecCallback>) -> Option<RecordingInfo> {
        match self.env.stop_recording()? {
            Ok(info) => {
                let wanted = match info.status {
                    tandem_webhook::RecordingStatus::Absent => {
                        tandem_twiml::RecordingStatus::Absent
                    }
                    _ => tandem_twiml::RecordingStatus::Completed,
                };
                if let Some((url, method, events)) = cb
                    && events.contains(&wanted)
                {
                    self.out.push_back(Output::Recording {
                        url: url.clone(),
                        method: *method,
                        event: Box::new(info.event()),
                    });
                }
                (info.status == tandem_webhook::RecordingStatus::Completed).then_some(info)
            }
            Err(e) => {
                tracing::warn!(error = %e, "recording not finished");
                None
            }
        }
    }

    /// A `recordingStatusCallback` resolved against the document, with its
    /// method and events (`completed` when none are named).
    pub(super) fn rec_callback_of(
        &self,
        url: Option<&String>,
        method: tandem_twiml::Method,
        events: &[tandem_twiml::RecordingStatus],
    ) -> Option<RecCallback> {
        let url = self.resolve_url(url?)?;
        let events = if events.is_empty() {
            vec![tandem_twiml::RecordingStatus::Completed]
        } else {
            events.to_vec()
        };
        Some((url, method, events))
    }

    /// The Dial is over for the caller: the outcome goes to the document.
    /// The Dial is kept (as past) while a cancelled branch owes its final
    /// response.
    pub(super) fn finish_dial(&mut self, outcome: DialOutcome) {
        let Some(d) = self.dial.take() else {
            return;
        };
        self.env.dial_ended(outcome.status);
        if let Some(parent) = self.media {
            self.env.ringback(parent, None);
            self.env.relay(parent, None);
        }
        tracing::info!(status = %outcome.status, "dial finished");
        if d.arbiter.is_settled() {
            self.drop_dial(d);
        } else {
            self.past.push((self.now + LINGER, d));
        }
        self.transfer = None;
        self.outcome(Event::DialOutcome(outcome));
        if self.caller_gone {
            self.finish();
        }
    }

    /// Forgets a Dial: every branch's Call-ID unrouted, any leg left closed.
    pub(super) fn drop_dial(&mut self, d: DialState) {
        for b in d.branches {
            if b.routed {
                self.out.push_back(Output::Unroute { call_id: b.call_id });
            }
            if let Some(leg) = b.media {
                self.env.close_leg(leg);
            }
        }
    }
}

/// Branch `b`'s state for the history (with its `AnsweredBy` once detected).
pub(super) fn branch_record(
    b: &Branch,
    info: tandem_webhook::CallInfo,
    duration: Option<u64>,
) -> crate::history::CallRecord {
    let mut record = crate::history::CallRecord::of(info);
    record.duration = duration;
    record.answered_by = b
        .amd
        .as_ref()
        .and_then(|a| a.result)
        .map(|r| r.answered_by.as_str().to_owned());
    record
}

/// A Dial whose bridge with the child `sid` lasted `secs` (its recording's
/// URL, when one was made).
pub(super) fn bridged_outcome(
    sid: String,
    secs: u64,
    recording_url: Option<String>,
) -> DialOutcome {
    DialOutcome {
        status: DialCallStatus::Completed,
        call_sid: Some(sid),
        duration: Some(u32::try_from(secs).unwrap_or(u32::MAX)),
        bridged: true,
        recording_url,
        extra: Vec::new(),
    }
}

/// Branch `b`'s INVITE goes out again as `invite` (a new transaction,
/// Via branch `branch`), which it now is.
fn resend(b: &mut Branch, invite: Request, branch: String, out: &mut VecDeque<Output>) {
    b.invite = invite.clone();
    b.via_branch = branch;
    out.push_back(Output::Request {
        request: invite,
        peer: b.peer,
    });
}

/// A branch's dialog through a trunk whose answer brought no Record-Route:
/// its in-dialog requests carry the trunk's proxy as a loose route, as the
/// INVITE's first hop (a pre-existing route set, RFC 3261 §8.1.2), so the
/// proxy takes them as its own (a proxy answers an in-dialog request
/// without a Route naming it 404).
fn preload_route(dialog: &mut Dialog, route: Option<&str>) {
    if let Some(r) = route
        && dialog.route_set.is_empty()
    {
        dialog.route_set.push(r.to_owned());
    }
}

/// An INVITE to send again after a final response asked for a change
/// (a challenge, a longer session interval): a new transaction, so a new
/// branch and the next CSeq (RFC 3261 §8.1.3.5).
pub(super) fn resent(invite: &Request, branch: &str) -> Request {
    let mut next = invite.clone();
    let seq = next.headers.cseq().map_or(1, |c| c.0) + 1;
    let mut via_done = false;
    for h in next.headers.iter_mut() {
        match h {
            Header::Via(_) if !via_done => {
                via_done = true;
                let v = tandem_sip::message::header_value(h);
                let rewritten = match v.split_once(";branch=") {
                    Some((head, rest)) => {
                        let tail = rest
                            .split_once(';')
                            .map_or(String::new(), |(_, t)| format!(";{t}"));
                        format!("{head};branch={branch}{tail}")
                    }
                    None => format!("{v};branch={branch}"),
                };
                *h = Header::Via(rewritten.into());
            }
            Header::CSeq(_) => *h = Header::CSeq(format!("{seq} INVITE").into()),
            _ => {}
        }
    }
    next
}

/// The INVITE re-sent with credentials for a 401/407 (RFC 3261 §22.2): new
/// branch, next CSeq, Authorization or Proxy-Authorization.
fn authorized_invite(
    invite: &Request,
    challenge: &Response,
    credentials: Option<&(String, String)>,
    branch: &str,
    cnonce: &str,
) -> Result<Request, tandem_sip::auth::AuthError> {
    use tandem_sip::auth::{Challenge, DigestClient, DigestRequest};
    let proxy = challenge.status_code.code() == 407;
    let value = challenge
        .headers
        .iter()
        .find(|h| {
            if proxy {
                matches!(h, Header::ProxyAuthenticate(_))
            } else {
                matches!(h, Header::WwwAuthenticate(_))
            }
        })
        .map(tandem_sip::message::header_value)
        .unwrap_or("");
    let parsed = Challenge::parse(value)?;
    let (user, pass) = credentials
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .unwrap_or(("", ""));
    let uri = invite.uri.to_string();
    let creds = DigestClient::new().authorize(
        &parsed,
        &DigestRequest {
            method: "INVITE",
            uri: &uri,
            body: &invite.body,
        },
        user,
        pass,
        cnonce,
    )?;
    let mut next = resent(invite, branch);
    next.headers
        .retain(|h| !matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)));
    let value = creds.to_string();
    next.headers.push(if proxy {
        Header::ProxyAuthorization(value.into())
    } else {
        Header::Authorization(value.into())
    });
    Ok(next)
}
