//! What the call inspector shows of a call (docs/inspector.md): every SIP
//! message the call task sent or received on each of its legs, and every
//! webhook it made with the TwiML answers, kept in memory while the call
//! lasts (bounded) and written to the history once when it ends.
//!
//! Only what passes through the call task is seen: retransmissions, `100
//! Trying` and the transaction layer's own answers (the `200` to a CANCEL,
//! the ACK of a failure response) are not in the ladder.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// SIP lines kept per call; later ones are counted, not kept.
const MAX_SIP: usize = 256;
/// Webhook entries kept per call.
const MAX_HOOKS: usize = 64;
/// Bytes of a TwiML answer kept.
const MAX_BODY: usize = 8 * 1024;

#[derive(Debug, Serialize)]
struct Leg {
    call_id: String,
    who: String,
    peer: Option<SocketAddr>,
}

#[derive(Debug, Serialize)]
struct SipLine {
    #[serde(rename = "t")]
    ms: u32,
    leg: u16,
    #[serde(rename = "dir", serialize_with = "dir")]
    out: bool,
    what: String,
}

fn dir<S: serde::Serializer>(out: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *out { "out" } else { "in" })
}

#[derive(Debug, Serialize)]
struct Hook {
    #[serde(rename = "t")]
    ms: u32,
    kind: &'static str,
    url: String,
    method: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<(String, String)>,
    /// The TwiML answer (`kind` twiml) or why the fetch failed (`error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One call task's trace.
#[derive(Debug)]
pub(crate) struct Trace {
    t0: Instant,
    wall0: SystemTime,
    legs: Vec<Leg>,
    sip: Vec<SipLine>,
    sip_dropped: u32,
    hooks: Vec<Hook>,
    hooks_dropped: u32,
}

impl Trace {
    pub(crate) fn new(t0: Instant) -> Self {
        Trace {
            t0,
            wall0: SystemTime::now(),
            legs: Vec::new(),
            sip: Vec::new(),
            sip_dropped: 0,
            hooks: Vec::new(),
            hooks_dropped: 0,
        }
    }

    fn ms(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.t0).as_millis()).unwrap_or(u32::MAX)
    }

    fn leg(&mut self, call_id: &str, who: Option<&str>, peer: Option<SocketAddr>) -> u16 {
        if let Some(i) = self.legs.iter().position(|l| l.call_id == call_id) {
            let l = &mut self.legs[i];
            if l.peer.is_none() {
                l.peer = peer;
            }
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        self.legs.push(Leg {
            call_id: call_id.to_owned(),
            who: who.unwrap_or("callee").to_owned(),
            peer,
        });
        u16::try_from(self.legs.len() - 1).unwrap_or(u16::MAX)
    }

    /// A SIP message on the leg with `call_id` (`who` names a new leg).
    pub(crate) fn sip(
        &mut self,
        now: Instant,
        call_id: &str,
        who: Option<&str>,
        peer: Option<SocketAddr>,
        out: bool,
        what: String,
    ) {
        let leg = self.leg(call_id, who, peer);
        if self.sip.len() >= MAX_SIP {
            self.sip_dropped += 1;
            return;
        }
        let ms = self.ms(now);
        self.sip.push(SipLine { ms, leg, out, what });
    }

    fn hook(&mut self, h: Hook) {
        if self.hooks.len() >= MAX_HOOKS {
            self.hooks_dropped += 1;
        } else {
            self.hooks.push(h);
        }
    }

    /// A request to the application (a document fetch, a callback).
    pub(crate) fn request(
        &mut self,
        now: Instant,
        kind: &'static str,
        url: &str,
        method: &'static str,
        params: Vec<(String, String)>,
    ) {
        let ms = self.ms(now);
        self.hook(Hook {
            ms,
            kind,
            url: url.to_owned(),
            method,
            params,
            body: None,
            error: None,
        });
    }

    /// A document fetch answered: the TwiML, or why it failed.
    pub(crate) fn answer(
        &mut self,
        now: Instant,
        result: &Result<(String, Option<url::Url>), String>,
    ) {
        let ms = self.ms(now);
        let (kind, body, error, url) = match result {
            Ok((body, url)) => {
                let mut end = body.len().min(MAX_BODY);
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                let url = url.as_ref().map(|u| u.to_string());
                ("twiml", Some(body[..end].to_owned()), None, url)
            }
            Err(e) => ("error", None, Some(e.clone()), None),
        };
        self.hook(Hook {
            ms,
            kind,
            url: url.unwrap_or_default(),
            method: "",
            params: Vec::new(),
            body,
            error,
        });
    }

    /// The trace as the inspector reads it (JSON, written straight from
    /// the fields: no value tree per call).
    pub(crate) fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            start_ms: u128,
            legs: &'a [Leg],
            sip: &'a [SipLine],
            sip_dropped: u32,
            hooks: &'a [Hook],
            hooks_dropped: u32,
        }
        let out = Out {
            start_ms: self
                .wall0
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            legs: &self.legs,
            sip: &self.sip,
            sip_dropped: self.sip_dropped,
            hooks: &self.hooks,
            hooks_dropped: self.hooks_dropped,
        };
        serde_json::to_string(&out).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "call trace not serialised");
            String::from("{}")
        })
    }
}

/// The first line of a response as the ladder shows it: `180 Ringing`,
/// `487 Request Terminated` (the phrase the wire carries).
pub(crate) fn response_line(r: &tandem_sip::message::Response) -> String {
    format!(
        "{} {}",
        r.status_code.code(),
        tandem_sip::message::reason_phrase(&r.status_code)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::time::Duration;

    #[test]
    fn legs_come_in_order_and_lines_are_bounded() {
        let t0 = Instant::now();
        let mut t = Trace::new(t0);
        t.sip(t0, "caller", Some("caller"), None, false, "INVITE".into());
        t.sip(
            t0 + Duration::from_millis(3),
            "b1",
            Some("alice@h"),
            None,
            true,
            "INVITE".into(),
        );
        t.sip(
            t0 + Duration::from_millis(9),
            "caller",
            None,
            None,
            true,
            "200 OK".into(),
        );
        for _ in 0..MAX_SIP {
            t.sip(t0, "b1", None, None, false, "INFO".into());
        }
        let v: Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(v["legs"][1]["who"], "alice@h");
        assert_eq!(v["sip"][1]["leg"], 1);
        assert_eq!(v["sip"][2]["t"], 9);
        assert_eq!(v["sip"][2]["dir"], "out");
        assert_eq!(v["sip"].as_array().unwrap().len(), MAX_SIP);
        assert_eq!(v["sip_dropped"], 3);
    }

    #[test]
    fn responses_read_as_on_the_wire() {
        let invite = tandem_sip::builder::RequestBuilder::new(
            tandem_sip::message::Method::Invite,
            rsip::Uri::try_from("sip:a@127.0.0.1").unwrap(),
        )
        .via("UDP", "127.0.0.1:5060", "z9hG4bK1")
        .from("<sip:b@127.0.0.1>;tag=1")
        .to("<sip:a@127.0.0.1>")
        .call_id("c")
        .cseq(1)
        .build();
        let line =
            |code| response_line(&tandem_sip::builder::response_to(&invite, code, None, None));
        assert_eq!(line(180), "180 Ringing");
        assert_eq!(line(487), "487 Request Terminated");
        assert_eq!(line(200), "200 OK");
    }

    #[test]
    fn long_answers_are_cut_on_a_character_boundary() {
        let t0 = Instant::now();
        let mut t = Trace::new(t0);
        let body = "é".repeat(MAX_BODY);
        t.answer(t0, &Ok((body, None)));
        t.answer(t0, &Err("timeout".into()));
        let v: Value = serde_json::from_str(&t.to_json()).unwrap();
        assert!(v["hooks"][0]["body"].as_str().unwrap().len() <= MAX_BODY);
        assert_eq!(v["hooks"][1]["error"], "timeout");
    }
}
