//! Session timers (RFC 4028) on each leg of the call: the caller's (Tandem
//! its UAS) and each answered branch's (Tandem its UAC). A B2BUA keeps one
//! session per leg: each is negotiated, refreshed and, when its peer stops
//! refreshing, ended on its own — the other leg then ends as it would if
//! that peer had hung up.
//!
//! Tandem refreshes by UPDATE when the peer allows it (no SDP to renegotiate),
//! else by a re-INVITE offering the SDP it last sent on that leg.

use tandem_sip::session_timer::{Due, Refresher, SessionExpires, SessionTimer, UasAnswer};

use super::*;

/// One leg's session clock and what a refresh of it needs.
/// A leg's session clock and whether its peer allows UPDATE, as they were
/// ([`Call::session_snapshot`]); `None`: the leg had no session.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionSnapshot(Option<(SessionTimer, bool)>);

#[derive(Debug)]
pub(super) struct LegSession {
    pub timer: SessionTimer,
    /// The peer's `Allow` lists UPDATE.
    pub update: bool,
    /// A branch's SDP offer, re-offered when refreshing by re-INVITE (the
    /// caller's leg uses the call's current answer).
    pub sdp: Option<Vec<u8>>,
}

impl LegSession {
    pub(super) fn new(now: Instant, secs: u32, we_refresh: bool, update: bool) -> Box<Self> {
        Box::new(Self {
            timer: SessionTimer::new(now, secs, we_refresh),
            update,
            sdp: None,
        })
    }
}

/// Whether a message's `Allow` lists UPDATE.
pub(super) fn allows_update(h: &tandem_sip::message::Headers) -> bool {
    tandem_sip::message::lists(h, |h| matches!(h, Header::Allow(_)), "UPDATE")
}

/// The answer, or the response that refuses the request instead: 422 with
/// Tandem's Min-SE for too short an interval, 400 for a malformed one.
fn refused(
    answer: UasAnswer,
    request: &Request,
    to_tag: Option<&str>,
) -> Result<UasAnswer, Response> {
    match answer {
        UasAnswer::TooSmall { min_se } => {
            let mut r = response_to(request, 422, Some("Session Interval Too Small"), to_tag);
            r.headers
                .push(tandem_sip::session_timer::min_se_header(min_se));
            Err(r)
        }
        UasAnswer::Malformed => Err(response_to(
            request,
            400,
            Some("Bad Request (malformed Session-Expires header)"),
            to_tag,
        )),
        a => Ok(a),
    }
}

/// The headers an INVITE Tandem sends a callee carries (beside `Supported:
/// timer`): the interval it asks for (the callee or a proxy may lower it
/// or 422).
pub(super) fn invite_headers(policy: tandem_sip::session_timer::Policy) -> [Header; 2] {
    [
        SessionExpires {
            secs: policy.session_expires,
            refresher: None,
        }
        .header(),
        tandem_sip::session_timer::min_se_header(policy.min_se),
    ]
}

/// A branch's session from the 2xx to its INVITE (`offer`: the SDP that
/// INVITE carried): none when the 2xx names no interval.
pub(super) fn branch_session(
    cfg: &EngineConfig,
    now: Instant,
    response: &Response,
    offer: &[u8],
) -> Option<Box<LegSession>> {
    cfg.session_timers?;
    let se = SessionExpires::of(&response.headers).ok().flatten()?;
    // Tandem sent the INVITE, so `uac` is Tandem; a 2xx that names no
    // refresher leaves it to Tandem, which asked.
    let we_refresh = se.refresher != Some(Refresher::Uas);
    let mut s = LegSession::new(now, se.secs, we_refresh, allows_update(&response.headers));
    s.sdp = Some(offer.to_vec()).filter(|s| !s.is_empty());
    Some(s)
}

/// A branch's INVITE sent again after a 422 (RFC 4028 §7.4): `secs` as
/// both its interval and its Min-SE.
pub(super) fn with_interval(invite: &Request, secs: u32, branch: &str) -> Request {
    let mut next = super::dial::resent(invite, branch);
    next.headers.retain(|h| {
        !matches!(h, Header::Other(n, _)
            if n.eq_ignore_ascii_case("Session-Expires") || n.eq_ignore_ascii_case("Min-SE"))
    });
    next.headers.push(
        SessionExpires {
            secs,
            refresher: None,
        }
        .header(),
    );
    next.headers
        .push(tandem_sip::session_timer::min_se_header(secs));
    next
}

impl Call {
    /// How a caller's INVITE (or one with Replaces) is answered as to
    /// session timers: `Err` is the response to send instead (422, or 400
    /// for a malformed `Session-Expires`), with Tandem's `to_tag`.
    pub(super) fn negotiate_caller(
        cfg: &EngineConfig,
        invite: &Request,
        to_tag: &str,
    ) -> Result<UasAnswer, Response> {
        let Some(policy) = cfg.session_timers else {
            return Ok(UasAnswer::None);
        };
        refused(
            tandem_sip::session_timer::uas_answer(&invite.headers, policy),
            invite,
            Some(to_tag),
        )
    }

    /// The caller is answered: its session's clock starts; the headers go
    /// into the 200.
    pub(super) fn start_caller_session(&mut self) -> Vec<Header> {
        let answer = std::mem::replace(&mut self.caller_se, UasAnswer::None);
        if let Some((secs, we_refresh)) = answer.uas_refreshes() {
            self.session = Some(LegSession::new(
                self.now,
                secs,
                we_refresh,
                allows_update(&self.invite.headers),
            ));
        }
        answer.headers()
    }

    fn leg_session(&mut self, who: Option<usize>) -> Option<&mut Option<Box<LegSession>>> {
        match who {
            None => Some(&mut self.session),
            Some(i) => self
                .dial
                .as_mut()
                .and_then(|d| d.branches.get_mut(i))
                .map(|b| &mut b.session),
        }
    }

    /// The session clock of the caller's leg (`None`) or branch `i` as it
    /// is, to put back ([`Call::restore_session`]) when the request that
    /// refreshed it is refused after all: only a 2xx refreshes (§10).
    pub(super) fn session_snapshot(&mut self, who: Option<usize>) -> SessionSnapshot {
        SessionSnapshot(
            self.leg_session(who)
                .and_then(|s| s.as_ref().map(|s| (s.timer, s.update))),
        )
    }

    /// Puts back the session clock [`Call::session_snapshot`] took.
    pub(super) fn restore_session(&mut self, who: Option<usize>, snapshot: SessionSnapshot) {
        let Some(slot) = self.leg_session(who) else {
            return;
        };
        match (snapshot.0, slot.as_mut()) {
            (Some((timer, update)), Some(s)) => {
                s.timer = timer;
                s.update = update;
            }
            // The refused request started the leg's session: none again.
            (None, Some(_)) => *slot = None,
            _ => {}
        }
    }

    /// A re-INVITE or UPDATE from the caller (`None`) or branch `i` is a
    /// session refresh (§9): `Ok` with the headers its 2xx carries (the
    /// leg's clock restarts), or `Err` with the 422 to answer instead.
    pub(super) fn refresh_by_peer(
        &mut self,
        who: Option<usize>,
        request: &Request,
    ) -> Result<Vec<Header>, Response> {
        let Some(policy) = self.cfg.session_timers else {
            return Ok(Vec::new());
        };
        let now = self.now;
        let answer = refused(
            tandem_sip::session_timer::uas_answer(&request.headers, policy),
            request,
            None,
        )?;
        let update = allows_update(&request.headers);
        let Some(slot) = self.leg_session(who) else {
            return Ok(Vec::new());
        };
        match (answer.uas_refreshes(), slot.as_mut()) {
            (Some((secs, we_refresh)), Some(s)) => {
                s.timer.refreshed(now, secs, we_refresh);
                s.update |= update;
            }
            (Some((secs, we_refresh)), None) => {
                *slot = Some(LegSession::new(now, secs, we_refresh, update));
            }
            // A peer that does not do session timers refreshed anyway
            // (hold, resume): the session runs on as negotiated.
            (None, Some(s)) => {
                let (secs, we_refresh) = (s.timer.secs, s.timer.we_refresh);
                s.timer.refreshed(now, secs, we_refresh);
                return Ok(vec![s.timer.answer_header()]);
            }
            (None, None) => {}
        }
        Ok(answer.headers())
    }

    /// A final response to a re-INVITE or UPDATE Tandem sent on a leg
    /// (a refresh, or a change relayed from the other leg: any 2xx
    /// refreshes, §10). 408 or 481 mean the peer's dialog is gone (RFC 5057):
    /// the leg ends.
    pub(super) fn on_refresh_response(&mut self, who: Option<usize>, response: &Response) {
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let now = self.now;
        let se = SessionExpires::of(&response.headers).ok().flatten();
        if let Some(Some(s)) = self.leg_session(who) {
            if (200..300).contains(&code) {
                let secs = se.map_or(s.timer.secs, |se| se.secs);
                let we_refresh = se
                    .and_then(|se| se.refresher)
                    .map_or(s.timer.we_refresh, |r| r == Refresher::Uac);
                s.timer.refreshed(now, secs, we_refresh);
                s.update |= allows_update(&response.headers);
            } else if code == 422 {
                // Our interval is below the peer's new minimum: retried at once.
                if let Some(min) = tandem_sip::session_timer::min_se(&response.headers) {
                    s.timer.secs = s.timer.secs.max(min);
                }
                s.timer.refresh_failed(now);
            } else if !matches!(code, 408 | 481) {
                s.timer.refresh_failed(now);
            }
        }
        if matches!(code, 408 | 481) {
            tracing::warn!(
                code,
                leg = ?who,
                "a re-INVITE or UPDATE on the leg failed: its dialog is gone, the leg ends"
            );
            self.end_leg(who);
        }
    }

    /// The next instant a leg's session clock wants attention.
    pub(super) fn session_deadlines(&self) -> impl Iterator<Item = Instant> + '_ {
        let caller = self.session.as_ref().map(|s| s.timer.deadline());
        let branches = self.dial.iter().flat_map(|d| {
            d.branches
                .iter()
                .filter(|b| b.dialog.is_some() && !b.ended)
                .filter_map(|b| b.session.as_ref().map(|s| s.timer.deadline()))
        });
        caller.into_iter().chain(branches)
    }

    /// Session clocks due at `t`: refreshes sent, expired legs ended.
    pub(super) fn session_timers(&mut self, t: Instant) {
        if self.caller_gone || self.finished {
            self.session = None;
        }
        let due = self.session.as_mut().and_then(|s| s.timer.poll(t));
        self.on_due(None, due);
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            let due = self
                .dial
                .as_mut()
                .map(|d| &mut d.branches[i])
                .filter(|b| b.dialog.is_some() && !b.ended)
                .and_then(|b| b.session.as_mut())
                .and_then(|s| s.timer.poll(t));
            self.on_due(Some(i), due);
        }
    }

    fn on_due(&mut self, who: Option<usize>, due: Option<Due>) {
        match due {
            None => {}
            Some(Due::Refresh) => self.send_refresh(who),
            Some(Due::Expired) => {
                tracing::warn!(leg = ?who, "session expired: no refresh in time (RFC 4028), the leg ends");
                self.end_leg(who);
            }
        }
    }

    /// A leg is over without its peer's BYE: the caller's ends the call (BYE
    /// sent), a bridged callee's ends the bridge as a hangup would, another
    /// answered branch is hung up.
    fn end_leg(&mut self, who: Option<usize>) {
        match who {
            None => {
                self.session = None;
                if !self.caller_gone {
                    self.hangup(408);
                }
            }
            Some(i) => {
                if let Some(b) = self.dial.as_mut().and_then(|d| d.branches.get_mut(i)) {
                    b.session = None;
                }
                if self.dial.as_ref().is_some_and(|d| d.bridged == Some(i)) {
                    self.end_bridge(true);
                } else if self
                    .dial
                    .as_ref()
                    .is_some_and(|d| d.branches[i].dialog.is_some())
                {
                    self.bye_branch(i);
                    let now = self.now;
                    if let Some(d) = &mut self.dial {
                        d.branches[i].screen = None;
                        d.arbiter.on_branch_hangup(now, i);
                    }
                    self.apply_actions();
                }
            }
        }
    }

    /// Tandem refreshes a leg's session: UPDATE when the peer allows it,
    /// else a re-INVITE re-offering the leg's SDP. A re-INVITE already
    /// under way on the leg puts the refresh off (it refreshes anyway).
    fn send_refresh(&mut self, who: Option<usize>) {
        let cfg = self.cfg.clone();
        let branch = self.ids.branch();
        let now = self.now;
        let caller_sdp = self.answer_sdp.clone();
        let (dialog, peer, session) = match who {
            None => (&mut self.dialog, self.source, self.session.as_mut()),
            Some(i) => {
                let Some(b) = self.dial.as_mut().and_then(|d| d.branches.get_mut(i)) else {
                    return;
                };
                let Some(dialog) = b.dialog.as_mut() else {
                    return;
                };
                (dialog, b.peer, b.session.as_mut())
            }
        };
        let Some(s) = session else { return };
        if dialog.local_reinvite_pending || dialog.remote_reinvite_pending {
            s.timer.refresh_failed(now);
            return;
        }
        // A branch's own offer; the caller's current answer, or the offer
        // of the callee leg the call took over.
        let sdp = s
            .sdp
            .clone()
            .or(if who.is_none() { caller_sdp } else { None });
        let method = if s.update || sdp.is_none() {
            Method::Update
        } else {
            Method::Invite
        };
        let Ok(mut request) = dialog.request(
            method.clone(),
            peer.transport.as_str(),
            cfg.host(peer.transport),
            &branch,
        ) else {
            return;
        };
        request
            .headers
            .push(Header::Supported(tandem_sip::session_timer::TAG.into()));
        request.headers.push(s.timer.refresh_header());
        if method == Method::Invite
            && let Some(sdp) = sdp
        {
            request
                .headers
                .push(Header::ContentType("application/sdp".into()));
            request.body = sdp;
        }
        tracing::debug!(leg = ?who, %method, secs = s.timer.secs, "session refresh");
        self.out.push_back(Output::Request { request, peer });
    }

    /// The `Session-Expires` a re-INVITE Tandem relays onto a leg carries
    /// while that leg has a session clock (§7.4: every refresh names it).
    pub(super) fn session_header(&self, who: Option<usize>) -> Option<Header> {
        let s = match who {
            None => self.session.as_ref(),
            Some(i) => self.dial.as_ref()?.branches.get(i)?.session.as_ref(),
        }?;
        Some(s.timer.refresh_header())
    }
}
