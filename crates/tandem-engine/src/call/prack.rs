//! Reliable provisional responses (RFC 3262) to a caller that requires
//! them (`Require: 100rel`): Tandem's 180/183 carries `Require: 100rel` and
//! an `RSeq`, is sent again at T1, 2·T1, 4·T1… until the caller's PRACK
//! acknowledges it, and a caller that never does gets 500 after 64·T1.
//! One reliable provisional is in flight at a time (§3): a later one waits
//! for the PRACK; so does a 2xx while an unacknowledged one carries SDP.
//!
//! A caller that only *supports* 100rel gets plain provisionals (the RFC
//! leaves the choice to the UAS; they cost a round trip each).

use super::*;

/// RFC 3261's default T1, the first retransmission interval.
const T1: Duration = Duration::from_millis(500);

/// The reliable provisional response in flight, and what waits for it.
#[derive(Debug)]
pub(super) struct Reliable {
    rseq: u32,
    response: Response,
    sdp: bool,
    next: Instant,
    interval: Duration,
    give_up: Instant,
    /// A later provisional, sent reliably once this one is acknowledged.
    queued: Option<Response>,
    /// The 2xx to the INVITE, held while this one (with SDP) is unacknowledged.
    held: Option<Response>,
}

/// Whether an INVITE requires reliable provisional responses.
pub(super) fn required(invite: &Request) -> bool {
    tandem_sip::message::lists(
        &invite.headers,
        |h| matches!(h, Header::Require(_)),
        "100rel",
    )
}

/// The `RSeq` of a provisional response sent reliably (`Require: 100rel`
/// and an `RSeq`), to PRACK.
pub(super) fn reliable_rseq(response: &Response) -> Option<u32> {
    let required = tandem_sip::message::lists(
        &response.headers,
        |h| matches!(h, Header::Require(_)),
        "100rel",
    );
    if !required {
        return None;
    }
    super::other_header(&response.headers, "RSeq")?
        .trim()
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// `RAck: response-num CSeq-num Method` (RFC 3262 §7.2).
fn parse_rack(v: &str) -> Option<(u32, u32, &str)> {
    let mut it = v.split_ascii_whitespace();
    let rseq = it.next()?.parse().ok()?;
    let cseq = it.next()?.parse().ok()?;
    let method = it.next()?;
    it.next().is_none().then_some((rseq, cseq, method))
}

impl Call {
    /// A response to the caller's INVITE, through RFC 3262's rules when
    /// the caller requires them: `Some` is what to send now.
    pub(super) fn reliably(&mut self, mut response: Response) -> Option<Response> {
        let code = response.status_code.code();
        if code >= 200 {
            let hold = (200..300).contains(&code) && self.reliable.as_ref().is_some_and(|r| r.sdp);
            if hold {
                tracing::debug!("2xx held until the caller acknowledges the provisional with SDP");
                if let Some(r) = &mut self.reliable {
                    r.held = Some(response);
                }
                return None;
            }
            self.reliable = None;
            return Some(response);
        }
        if code == 100 {
            return Some(response);
        }
        if let Some(r) = &mut self.reliable {
            r.queued = Some(response);
            return None;
        }
        self.rseq = if self.rseq == 0 {
            1 + self.ids.u32() % (1 << 30)
        } else {
            self.rseq + 1
        };
        response.headers.push(Header::Require("100rel".into()));
        response
            .headers
            .push(Header::Other("RSeq".into(), self.rseq.to_string()));
        self.reliable = Some(Box::new(Reliable {
            rseq: self.rseq,
            sdp: !response.body.is_empty(),
            response: response.clone(),
            next: self.now + T1,
            interval: T1,
            give_up: self.now + 64 * T1,
            queued: None,
            held: None,
        }));
        Some(response)
    }

    /// A PRACK from the caller: 200 when it names the provisional in
    /// flight (which then stops; what waited for it goes out), else 481.
    pub(super) fn on_prack(&mut self, stx: ServerTx, request: &Request) {
        let invite_cseq = self.invite.headers.cseq().map(|c| c.0);
        let rack = other_header(&request.headers, "RAck").and_then(parse_rack);
        let matches = match (&self.reliable, rack) {
            (Some(r), Some((rseq, cseq, method))) => {
                rseq == r.rseq && Some(cseq) == invite_cseq && method.eq_ignore_ascii_case("INVITE")
            }
            _ => false,
        };
        if !matches {
            tracing::info!(rack = ?rack, "PRACK for no provisional in flight: 481");
            self.out.push_back(Output::Respond {
                stx,
                response: response_to(request, 481, None, None),
            });
            return;
        }
        self.out.push_back(Output::Respond {
            stx,
            response: response_to(request, 200, None, None),
        });
        let r = self.reliable.take().expect("matched");
        let Reliable { queued, held, .. } = *r;
        if let Some(held) = held {
            self.respond_caller(held);
        } else if let Some(next) = queued {
            self.respond_caller(next);
        }
    }

    /// When the provisional in flight is next sent again, or given up.
    pub(super) fn reliable_deadline(&self) -> Option<Instant> {
        self.reliable.as_ref().map(|r| r.next.min(r.give_up))
    }

    /// Retransmits the provisional in flight; after 64·T1 without a PRACK
    /// the INVITE is rejected with 500 (§3) and the call ends.
    pub(super) fn reliable_timers(&mut self, t: Instant) {
        let Some(r) = &mut self.reliable else { return };
        if r.give_up <= t {
            let held = r.held.is_some();
            self.reliable = None;
            tracing::warn!("no PRACK for a reliable provisional in 64*T1: 500, the call ends");
            if held {
                // The 2xx never went out: the call was not answered after all.
                self.answered = false;
                self.answered_at = None;
            }
            self.unanswered = tandem_webhook::CallStatus::Failed;
            let response = response_to(
                &self.invite,
                500,
                Some("Provisional Response Not Acknowledged"),
                Some(&self.local_tag),
            );
            self.out.push_back(Output::Respond {
                stx: self.invite_tx,
                response,
            });
            self.caller_gone = true;
            self.caller_left();
            self.feed(Event::CallerHangup);
            return;
        }
        if r.next <= t {
            r.interval *= 2;
            r.next = t + r.interval;
            let response = r.response.clone();
            self.out.push_back(Output::Respond {
                stx: self.invite_tx,
                response,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rack_is_three_fields() {
        assert_eq!(
            super::parse_rack("776656 1 INVITE"),
            Some((776656, 1, "INVITE"))
        );
        assert_eq!(super::parse_rack(" 1  2 INVITE "), Some((1, 2, "INVITE")));
        assert_eq!(super::parse_rack("1 INVITE"), None);
        assert_eq!(super::parse_rack("1 2 INVITE x"), None);
        assert_eq!(super::parse_rack("x 2 INVITE"), None);
    }
}
