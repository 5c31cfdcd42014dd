//! An INVITE with `Replaces` (RFC 3891): a new dialog takes the place of
//! one of the call's, as in an attended transfer completed toward Tandem
//! (the party bridged with us hands its leg to the transfer target, who
//! INVITEs Tandem naming that leg's dialog).
//!
//! The engine routes such an INVITE to the call owning the named Call-ID
//! (after the same admission gates as any INVITE: a trunk's address or a
//! client's digest). Here it is matched against the call's dialogs as the
//! RFC says — Call-ID, `to-tag` our local tag, `from-tag` the peer's:
//!
//! - the caller's dialog or the bridged callee's, confirmed: the new INVITE
//!   is answered 200 (on a media leg of its own), the replaced party gets
//!   BYE, and the bridge goes on with the new party in its place; the
//!   call's CallSid and the child's stay, as the call does;
//! - `early-only` naming a confirmed dialog: 486 Busy Here (§3);
//! - a dialog of the call that is not bridged (ringing, screening, playing
//!   a verb, in a conference or a queue), or a bridge being recorded or
//!   transferred: 603, logged — Tandem replaces only a leg it can hand
//!   the other party's audio to without a gap in what it owes the
//!   document;
//! - no such dialog: 481.

use super::*;

/// The dialog a `Replaces` header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplacesTarget {
    pub call_id: String,
    /// The recipient's (Tandem's) tag.
    pub to_tag: String,
    /// The other party's tag.
    pub from_tag: String,
    pub early_only: bool,
}

/// Parses `call-id;to-tag=…;from-tag=…[;early-only]` (RFC 3891 §6.1).
pub(crate) fn parse_replaces(value: &str) -> Option<ReplacesTarget> {
    let mut parts = value.trim().split(';');
    let call_id = parts.next()?.trim();
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(v.trim()),
            "from-tag" => from_tag = Some(v.trim()),
            "early-only" => early_only = true,
            _ => {}
        }
    }
    let (to_tag, from_tag) = (to_tag?, from_tag?);
    if call_id.is_empty() || to_tag.is_empty() || from_tag.is_empty() {
        return None;
    }
    Some(ReplacesTarget {
        call_id: call_id.to_owned(),
        to_tag: to_tag.to_owned(),
        from_tag: from_tag.to_owned(),
        early_only,
    })
}

/// Which of the call's legs a `Replaces` named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Caller,
    Branch(usize),
}

impl Call {
    /// An INVITE with `Replaces` for one of the call's dialogs.
    pub(super) fn on_replaces(&mut self, stx: ServerTx, request: Request, source: Peer) {
        let refuse = |this: &mut Self, code: u16, why: &str| {
            tracing::warn!(code, why, "INVITE with Replaces refused");
            this.out.push_back(Output::Respond {
                stx,
                response: response_to(&request, code, None, Some("tandem")),
            });
        };
        let Some(t) = other_header(&request.headers, "Replaces").and_then(parse_replaces) else {
            return refuse(self, 400, "malformed Replaces");
        };
        let named = if t.call_id == self.call_id
            && t.to_tag == self.dialog.id.local_tag
            && t.from_tag == self.dialog.id.remote_tag
        {
            Some((Named::Caller, self.answered && !self.caller_gone))
        } else {
            self.dial.as_ref().and_then(|d| {
                let i = d.index(&t.call_id)?;
                let dialog = d.branches[i].dialog.as_ref()?;
                (dialog.id.local_tag == t.to_tag && dialog.id.remote_tag == t.from_tag)
                    .then(|| (Named::Branch(i), d.branches[i].answered_at.is_some()))
            })
        };
        let Some((named, confirmed)) = named else {
            return refuse(self, 481, "no such dialog");
        };
        if t.early_only && confirmed {
            return refuse(self, 486, "early-only, and the dialog is confirmed");
        }
        let bridged = self
            .dial
            .as_ref()
            .filter(|d| !d.done)
            .and_then(|d| d.bridged);
        let recording = self.dial.as_ref().is_some_and(|d| d.recording);
        let Some(b) = bridged.filter(|_| confirmed && !recording && self.transfer.is_none()) else {
            return refuse(
                self,
                603,
                "only a bridged leg that is neither recorded nor being transferred is replaced",
            );
        };
        if named != Named::Caller && named != Named::Branch(b) {
            return refuse(self, 603, "the named callee is not the bridged one");
        }
        // The new party's dialog and media leg.
        let tag = self.ids.tag();
        let contact = self.cfg.contact(source.transport);
        let Ok(mut dialog) = Dialog::uas(&request, &tag, &contact) else {
            return refuse(self, 400, "the INVITE cannot form a dialog");
        };
        let mut media = None;
        let mut sdp = None;
        if self.env.has_media() && has_sdp(&request.headers, &request.body) {
            match sdp_on_new_leg(&mut *self.env, source, Some(&request.body)) {
                Ok((leg, answer)) => {
                    media = Some(leg);
                    sdp = Some(answer);
                }
                Err(e) => return refuse(self, e.status(), &e.to_string()),
            }
        }
        // The new party's session (RFC 4028), negotiated as for a caller.
        let se = match Self::negotiate_caller(&self.cfg, &request, &tag) {
            Ok(a) => a,
            Err(r) => {
                if let Some(leg) = media {
                    self.env.close_leg(leg);
                }
                self.out.push_back(Output::Respond { stx, response: r });
                return;
            }
        };
        let session = se.uas_refreshes().map(|(secs, we_refresh)| {
            super::session::LegSession::new(
                self.now,
                secs,
                we_refresh,
                super::session::allows_update(&request.headers),
            )
        });
        let cid = request.headers.call_id().unwrap_or("").to_owned();
        let mut ok = response_to(&request, 200, None, Some(&tag));
        ok.headers.push(Header::Contact(contact.into()));
        ok.headers.extend(se.headers());
        if let Some(sdp) = &sdp {
            ok.headers
                .push(Header::ContentType("application/sdp".into()));
            ok.body = sdp.clone();
        }
        dialog.confirm();
        self.out.push_back(Output::Route {
            call_id: cid.clone(),
        });
        self.out.push_back(Output::Respond { stx, response: ok });
        tracing::info!(replaced = ?named, call_id = %cid, "INVITE with Replaces: the new party takes the leg");
        match named {
            Named::Caller => {
                self.send_bye_caller();
                if let Some(leg) = self.media.take() {
                    self.env.close_leg(leg);
                }
                self.dialog = dialog;
                self.call_id = cid;
                self.source = source;
                self.invite = request;
                self.invite_tx = stx;
                self.local_tag = tag;
                self.media = media;
                self.answer_sdp = sdp;
                self.session = session;
                self.dtmf_on = false;
                if self.dial.as_ref().is_some_and(|d| d.spec.hangup_on_star) {
                    self.ensure_dtmf();
                }
            }
            Named::Branch(i) => {
                self.bye_branch(i);
                let Some(d) = &mut self.dial else { return };
                let br = &mut d.branches[i];
                if let Some(leg) = br.media.take() {
                    self.env.close_leg(leg);
                }
                let old = std::mem::replace(&mut br.call_id, cid);
                self.out.push_back(Output::Unroute { call_id: old });
                br.dialog = Some(dialog);
                br.peer = source;
                br.session = session;
                // As for an answered branch: the offer is answered, only
                // the headers are kept; the peer's SDP only when media is
                // not anchored.
                br.answer_sdp = media
                    .is_none()
                    .then(|| request.body.clone())
                    .filter(|b| !b.is_empty());
                br.media = media;
                let mut invite = request;
                invite.body = Vec::new();
                br.invite = invite;
            }
        }
        let child = self.dial.as_ref().and_then(|d| d.branches[b].media);
        if let (Some(parent), Some(child)) = (self.media, child) {
            self.env.bridge(parent, child);
            self.env.expect_media(parent, true);
            self.env.expect_media(child, true);
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn replaces_is_read_in_any_order_and_needs_both_tags() {
        assert_eq!(
            parse_replaces("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff"),
            Some(ReplacesTarget {
                call_id: "98732@sip.example.com".into(),
                to_tag: "ff87ff".into(),
                from_tag: "r33th4x0r".into(),
                early_only: false,
            })
        );
        assert!(parse_replaces("a;to-tag=x;from-tag=y;early-only").is_some_and(|t| t.early_only));
        assert_eq!(parse_replaces("a;to-tag=x"), None);
        assert_eq!(parse_replaces(";to-tag=x;from-tag=y"), None);
        assert_eq!(parse_replaces("a;to-tag=;from-tag=y"), None);
    }
}
