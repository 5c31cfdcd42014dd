//! Blind transfer by SIP REFER (RFC 3515) from either party of a bridge,
//! through `<Dial referUrl>`, as Twilio's "Inbound SIP REFER" does:
//!
//! 1. The REFER is accepted (202) and a NOTIFY with `message/sipfrag`
//!    `SIP/2.0 100 Trying` tells the referrer so.
//! 2. `referUrl` (`referMethod`) is requested with the parent call's
//!    standard parameters and `ReferTransferTarget`, the Refer-To URI.
//! 3. A valid TwiML answer ends the transfer: NOTIFY `SIP/2.0 200 OK`
//!    (subscription terminated), BYE to the referrer, the `<Dial>` ends
//!    without requesting its action, and the other party runs the answer
//!    from its first verb (typically a `<Dial>` to the target):
//!    - the callee referred: the caller's call runs it;
//!    - the caller referred: the callee's call (the child, with its own
//!      CallSid, `Direction=outbound-dial` and `ParentCallSid`) runs it —
//!      the call hands its document over to the callee's leg ([`Call::hand_over`]),
//!      and the child's `completed` goes out when that leg ends.
//!
//!    A failed fetch or an invalid document: NOTIFY `SIP/2.0 503 Service
//!    Unavailable` (terminated), and the bridge goes on.
//!
//! A REFER Tandem cannot carry out is declined with 603: with no bridge,
//! with no `referUrl` (Twilio's error 13802), without a Refer-To, or while
//! another transfer is under way.

use super::*;
use tandem_twiml::CallProgressEvent;

/// A transfer waiting for its `referUrl` answer.
#[derive(Debug)]
pub(super) struct Transfer {
    /// The bridged branch.
    branch: usize,
    /// Its Call-ID (the branch must still be the bridged one).
    call_id: String,
    /// The caller sent the REFER (else the branch did).
    by_caller: bool,
}

/// The child call that took the call's document over from the caller
/// (a transfer by the caller): what its `completed` needs.
#[derive(Debug)]
pub(super) struct HandedOver {
    pub status_callback: Option<(Url, tandem_webhook::Method, Vec<CallProgressEvent>)>,
    pub answered_at: Option<Instant>,
}

/// A callee's leg taken from its `<Dial>` branch to go on as a call of
/// its own: a transfer by the caller, a REST API call answered, a child
/// call moved to new TwiML through the REST API.
#[derive(Debug)]
pub(crate) struct CalleeLeg {
    pub sid: String,
    pub call_id: String,
    peer: Peer,
    from: String,
    to: String,
    dialog: Dialog,
    pub media: Option<LegId>,
    /// The branch's INVITE with the callee's SDP answer as its body: what
    /// the callee can receive, standing for the offer a caller's INVITE
    /// brings (a later `<Dial>` offers its codecs).
    invite: Request,
    /// Our offer in that INVITE.
    offer: Option<Vec<u8>>,
    status_callback: Option<(Url, tandem_webhook::Method, Vec<CallProgressEvent>)>,
    answered_at: Option<Instant>,
    /// Its session clock, which goes on with the leg.
    session: Option<Box<super::session::LegSession>>,
}

impl CalleeLeg {
    /// Takes the leg out of branch `b` (whose life ends here without its
    /// `completed`, and whose Call-ID is no longer the Dial's to unroute);
    /// `None` without a dialog.
    pub(super) fn take(b: &mut super::dial::Branch) -> Option<Self> {
        b.ended = true;
        b.routed = false;
        let dialog = b.dialog.take()?;
        let mut invite = b.invite.clone();
        invite.body = b.answer_sdp.clone().unwrap_or_default();
        if invite.body.is_empty() {
            invite
                .headers
                .retain(|h| !matches!(h, Header::ContentType(_)));
        }
        Some(Self {
            sid: b.sid.clone(),
            call_id: b.call_id.clone(),
            peer: b.peer,
            from: b.from.clone(),
            to: b.to.clone(),
            dialog,
            media: b.media.take(),
            invite,
            offer: Some(b.invite.body.clone()).filter(|s| !s.is_empty()),
            status_callback: b.status_callback.take(),
            answered_at: b.answered_at,
            session: b.session.take(),
        })
    }
}

impl Call {
    /// The call goes on as `callee`'s leg: its dialog, media leg and
    /// Call-ID (its From and To too with `addresses`); the callee's
    /// `completed` goes out when that leg ends.
    pub(super) fn become_callee(&mut self, callee: CalleeLeg, addresses: bool) {
        self.answered_at = callee.answered_at;
        self.handed = Some(Box::new(HandedOver {
            status_callback: callee.status_callback,
            answered_at: callee.answered_at,
        }));
        self.call_id = callee.call_id;
        self.source = callee.peer;
        self.local_tag = callee.dialog.id.local_tag.clone();
        self.dialog = callee.dialog;
        if addresses {
            self.from_user = callee.from;
            self.to_user = callee.to;
        }
        self.answer_sdp = callee.offer;
        self.invite = callee.invite;
        self.media = callee.media;
        self.session = callee.session;
        self.caller_se = tandem_sip::session_timer::UasAnswer::None;
        self.dtmf_on = false;
    }

    /// A REFER from branch `i`.
    pub(super) fn on_branch_refer(&mut self, stx: ServerTx, request: Request, i: usize) {
        self.on_refer(stx, request, Some(i));
    }

    /// A REFER from the caller.
    pub(super) fn on_caller_refer(&mut self, stx: ServerTx, request: Request) {
        self.on_refer(stx, request, None);
    }

    /// A REFER from branch `from` (or the caller: `None`).
    fn on_refer(&mut self, stx: ServerTx, request: Request, from: Option<usize>) {
        let target = other_header(&request.headers, "Refer-To")
            .map(|v| {
                v.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
            .filter(|t| !t.is_empty());
        let bridged = self
            .dial
            .as_ref()
            .filter(|d| !d.done)
            .and_then(|d| d.bridged)
            .filter(|b| from.is_none_or(|i| i == *b));
        let refer = self.dial.as_ref().and_then(|d| {
            let url = self.resolve_url(d.spec.refer_url.as_deref()?)?;
            Some((url, d.spec.refer_method))
        });
        let (Some(target), Some(i), Some((url, method)), None) =
            (target, bridged, refer, self.transfer.as_ref())
        else {
            let who = if from.is_some() { "callee" } else { "caller" };
            let response = self.refuse_refer(&request, who);
            self.out.push_back(Output::Respond { stx, response });
            return;
        };
        let by_caller = from.is_none();
        let call_id = self
            .dial
            .as_ref()
            .map(|d| d.branches[i].call_id.clone())
            .unwrap_or_default();
        tracing::info!(%target, %url, by_caller, "REFER accepted: asking referUrl");
        let mut accepted = response_to(&request, 202, None, None);
        accepted
            .headers
            .push(Header::Contact(self.contact(from).into()));
        self.out.push_back(Output::Respond {
            stx,
            response: accepted,
        });
        let referrer = from.map_or(Referrer::Caller, Referrer::Branch);
        self.notify_refer(referrer, "SIP/2.0 100 Trying", false);
        self.transfer = Some(Box::new(Transfer {
            branch: i,
            call_id,
            by_caller,
        }));
        let mut params = self.call_info(self.status()).voice_params();
        params.push("ReferTransferTarget", &target);
        self.out.push_back(Output::Fetch {
            screen: None,
            req: tandem_twiml::FetchRequest {
                url,
                method,
                params: vec![("ReferTransferTarget".to_owned(), target)],
                reason: tandem_twiml::FetchReason::Refer,
            },
            params,
            fallback: None,
        });
    }

    /// The `referUrl` answered (or not).
    pub(super) fn on_refer_fetched(&mut self, result: Fetched) {
        let Some(t) = self.transfer.take() else {
            return;
        };
        let still = self.dial.as_ref().is_some_and(|d| {
            d.bridged == Some(t.branch) && !d.done && d.branches[t.branch].call_id == t.call_id
        });
        if !still {
            tracing::info!("referUrl answered after the bridge ended: transfer dropped");
            return;
        }
        let document = fetched_document(result);
        let referrer = if t.by_caller {
            Referrer::Caller
        } else {
            Referrer::Branch(t.branch)
        };
        match document {
            Ok((document, url)) if t.by_caller => {
                tracing::info!("transfer by the caller: the callee runs the referUrl's document");
                self.notify_refer(referrer, "SIP/2.0 200 OK", true);
                self.hand_over(t.branch, document, url);
            }
            Ok((document, url)) => {
                tracing::info!("transfer: the caller moves to the referUrl's document");
                self.notify_refer(referrer, "SIP/2.0 200 OK", true);
                self.redirect = Some(Box::new((document, url)));
                self.end_bridge(true);
            }
            Err(reason) => {
                tracing::warn!(%reason, "referUrl failed: transfer refused, the bridge goes on");
                self.notify_refer(referrer, "SIP/2.0 503 Service Unavailable", true);
            }
        }
    }

    /// The caller transferred the callee: the caller's leg ends (BYE), the
    /// Dial ends without its action, and the call goes on as the callee's
    /// — its dialog, media leg, CallSid, From and To — running `document`.
    pub(super) fn hand_over(
        &mut self,
        i: usize,
        document: tandem_twiml::Document,
        url: Option<Url>,
    ) {
        let phantom = self.phantom;
        if !phantom {
            self.send_bye_caller();
            // The caller's call ends here; the call goes on as the callee's.
            let talked = self.answered_at.map(|a| secs_between(a, self.now));
            self.record_history(
                self.call_info(tandem_webhook::CallStatus::Completed),
                talked,
            );
        }
        let recording_url = self.stop_dial_recording();
        if let Some(leg) = self.media.take() {
            self.env.close_leg(leg);
        }
        let Some(d) = &mut self.dial else { return };
        let duration = d.bridged_at.map_or(0, |a| secs_between(a, self.now));
        // Its life goes on as the call's: no `completed` now, its Call-ID
        // stays routed here, its leg and dialog are the call's.
        let Some(callee) = CalleeLeg::take(&mut d.branches[i]) else {
            tracing::warn!("transfer by the caller: the callee's dialog is gone");
            return;
        };
        let sid = callee.sid.clone();
        if phantom {
            // A REST API call: its branch had its CallSid all along.
            self.phantom = false;
            self.answered = true;
        } else {
            self.parent_sid = Some(std::mem::replace(&mut self.sid, callee.sid.clone()));
            self.direction = tandem_webhook::Direction::OutboundDial;
        }
        // (A REST API call keeps its To and From as the API gave them.)
        self.become_callee(callee, !phantom);
        let Some(d) = &mut self.dial else { return };
        d.done = true;
        d.arbiter.on_bridge_ended(i);
        self.apply_actions();
        self.redirect = Some(Box::new((document, url)));
        self.finish_dial(super::dial::bridged_outcome(sid, duration, recording_url));
    }

    /// The `completed` of a child call that took the document over, when
    /// its leg ends.
    pub(super) fn handed_over_completed(&mut self) {
        let Some(h) = self.handed.take() else { return };
        let Some((url, method, events)) = h.status_callback else {
            return;
        };
        if !events.contains(&CallProgressEvent::Completed) {
            return;
        }
        let ev = tandem_webhook::StatusEvent {
            call: self.call_info(tandem_webhook::CallStatus::Completed),
            duration_secs: h.answered_at.map(|a| secs_between(a, self.now)),
            recording: None,
            sip_response_code: Some(200),
            timestamp: std::time::UNIX_EPOCH,
        };
        self.out.push_back(Output::Status {
            url,
            method,
            event: Box::new(ev),
        });
    }

    /// The REFER's implicit subscription (RFC 3515 §2.4.4): a NOTIFY in
    /// the referrer's dialog with the transfer's progress as a sipfrag.
    fn notify_refer(&mut self, to: Referrer, status_line: &str, last: bool) {
        let cfg = self.cfg.clone();
        let via = self.ids.branch();
        let (dialog, peer) = match to {
            Referrer::Caller => (&mut self.dialog, self.source),
            Referrer::Branch(i) => {
                let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
                    return;
                };
                let Some(dialog) = &mut b.dialog else { return };
                (dialog, b.peer)
            }
        };
        let mut notify = match dialog.request(
            Method::Notify,
            peer.transport.as_str(),
            cfg.host(peer.transport),
            &via,
        ) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the REFER's NOTIFY");
                return;
            }
        };
        notify
            .headers
            .push(Header::Other("Event".into(), "refer".into()));
        let state = if last {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        notify
            .headers
            .push(Header::Other("Subscription-State".into(), state.into()));
        notify
            .headers
            .push(Header::ContentType("message/sipfrag;version=2.0".into()));
        notify.body = format!("{status_line}\r\n").into_bytes();
        self.out.push_back(Output::Request {
            request: notify,
            peer,
        });
    }
}

/// Who sent a REFER.
#[derive(Debug, Clone, Copy)]
enum Referrer {
    Caller,
    Branch(usize),
}
