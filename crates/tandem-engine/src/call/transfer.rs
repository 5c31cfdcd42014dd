//! Blind transfer by SIP REFER (RFC 3515) from a bridged callee, through
//! `<Dial referUrl>`, as Twilio's "Inbound SIP REFER" does:
//!
//! 1. The callee's REFER is accepted (202) and a NOTIFY with
//!    `message/sipfrag` `SIP/2.0 100 Trying` tells it so.
//! 2. `referUrl` (`referMethod`) is requested with the parent call's
//!    standard parameters and `ReferTransferTarget`, the Refer-To URI.
//! 3. A valid TwiML answer ends the transfer: NOTIFY `SIP/2.0 200 OK`
//!    (subscription terminated), BYE to the callee, the `<Dial>` ends
//!    without requesting its action, and the caller's call runs the
//!    answer from its first verb (typically a `<Dial>` to the target).
//!    A failed fetch or an invalid document: NOTIFY `SIP/2.0 503 Service
//!    Unavailable` (terminated), and the bridge goes on.
//!
//! A REFER Tandem cannot carry out is declined with 603: from the caller
//! (the other party, a callee, runs no TwiML of its own), with no bridge,
//! with no `referUrl` (Twilio's error 13802), without a Refer-To, or while
//! another transfer is under way.

use super::*;

/// A transfer waiting for its `referUrl` answer.
#[derive(Debug)]
pub(super) struct Transfer {
    /// The bridged branch that sent the REFER.
    branch: usize,
    /// Its Call-ID (the branch must still be the bridged one).
    call_id: String,
}

impl Call {
    /// A REFER from branch `i`.
    pub(super) fn on_branch_refer(&mut self, stx: ServerTx, request: Request, i: usize) {
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
            .is_some_and(|d| d.bridged == Some(i) && !d.done);
        let refer = self.dial.as_ref().and_then(|d| {
            let url = self.resolve_url(d.spec.refer_url.as_deref()?)?;
            Some((url, d.spec.refer_method))
        });
        let (Some(target), true, Some((url, method)), None) =
            (target, bridged, refer, self.transfer.as_ref())
        else {
            let response = self.refuse_refer(&request, "callee");
            self.out.push_back(Output::Respond { stx, response });
            return;
        };
        let call_id = request.headers.call_id().unwrap_or("").to_owned();
        tracing::info!(%target, %url, "REFER accepted: asking referUrl");
        let mut accepted = response_to(&request, 202, None, None);
        accepted
            .headers
            .push(Header::Contact(self.contact().into()));
        self.out.push_back(Output::Respond {
            stx,
            response: accepted,
        });
        self.notify_refer(i, "SIP/2.0 100 Trying", false);
        self.transfer = Some(Box::new(Transfer { branch: i, call_id }));
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
        let document = match result {
            Ok((body, url)) => match tandem_twiml::parse(&body) {
                Ok(doc) => Ok((doc, url)),
                Err(e) => Err(format!("invalid TwiML: {e}")),
            },
            Err(e) => Err(e),
        };
        match document {
            Ok((document, url)) => {
                tracing::info!("transfer: the caller moves to the referUrl's document");
                self.notify_refer(t.branch, "SIP/2.0 200 OK", true);
                self.redirect = Some(Box::new((document, url)));
                self.end_bridge(true);
            }
            Err(reason) => {
                tracing::warn!(%reason, "referUrl failed: transfer refused, the bridge goes on");
                self.notify_refer(t.branch, "SIP/2.0 503 Service Unavailable", true);
            }
        }
    }

    /// The REFER's implicit subscription (RFC 3515 §2.4.4): a NOTIFY in
    /// branch `i`'s dialog with the transfer's progress as a sipfrag.
    fn notify_refer(&mut self, i: usize, status_line: &str, last: bool) {
        let host = self.cfg.sip_host.clone();
        let via = self.ids.branch();
        let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
            return;
        };
        let Some(dialog) = &mut b.dialog else { return };
        let mut notify =
            match dialog.request(Method::Notify, b.peer.transport.as_str(), &host, &via) {
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
            peer: b.peer,
        });
    }
}
