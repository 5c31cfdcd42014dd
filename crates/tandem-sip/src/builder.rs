//! Builders for requests (§8.1.1) and responses (§8.2.6), and the random
//! identifiers they carry (branch §8.1.1.7, tags §19.3, Call-ID §8.1.1.4).
//! Randomness is injected through [`IdGen`] so that tests can replay runs.

use rand::{Rng, SeedableRng, rngs::SmallRng};
use rsip::message::HasHeaders;

use crate::message::{Header, Headers, HeadersExt, Method, Request, Response, status};

/// Source of branches, tags and Call-IDs. Seeded for tests, from entropy in production.
#[derive(Debug)]
pub struct IdGen {
    rng: SmallRng,
    /// Unix seconds when made from entropy (0 when seeded): the head of
    /// every SID it makes.
    epoch: u32,
}

impl IdGen {
    /// A generator seeded from the operating system's entropy, through
    /// the thread's generator (seeded from the operating system and
    /// reseeded as it goes): a generator per call no longer costs a
    /// `getrandom` system call.
    pub fn from_entropy() -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        Self {
            rng: SmallRng::from_rng(rand::thread_rng())
                .unwrap_or_else(|_| SmallRng::from_entropy()),
            epoch,
        }
    }

    /// A deterministic generator for tests and replays.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            epoch: 0,
        }
    }

    fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(n + 8);
        let mut bits = 0u64;
        for i in 0..n {
            if i % 16 == 0 {
                bits = self.rng.r#gen();
            }
            s.push(HEX[(bits & 0xf) as usize] as char);
            bits >>= 4;
        }
        s
    }

    /// A branch with the RFC 3261 magic cookie.
    pub fn branch(&mut self) -> String {
        let mut s = String::from("z9hG4bK");
        s.push_str(&self.hex(16));
        s
    }

    /// A From/To tag.
    pub fn tag(&mut self) -> String {
        self.hex(12)
    }

    /// A Twilio-style SID: `prefix` (`CA`...), then 32 hex digits — the
    /// generator's creation time in Unix seconds (8 digits; 0 when seeded),
    /// then 96 random bits. SIDs made later sort later, so a database index
    /// on them grows at its end instead of touching a random page per
    /// insert (docs/benchmarks.md: the call history's writes halved).
    pub fn sid(&mut self, prefix: &str) -> String {
        let mut s = String::with_capacity(prefix.len() + 32);
        s.push_str(prefix);
        s.push_str(&format!("{:08x}", self.epoch));
        s.push_str(&self.hex(24));
        s
    }

    /// A Call-ID.
    pub fn call_id(&mut self) -> String {
        self.hex(24)
    }

    /// A random 32-bit number (initial CSeq, SSRC, ...).
    pub fn u32(&mut self) -> u32 {
        self.rng.r#gen()
    }
}

/// Builds a response to `req` per §8.2.6.2: Via, From, Call-ID, CSeq copied,
/// To copied with `to_tag` added when the request's To has none (never for
/// 100); Record-Route copied into a response that creates a dialog (§12.1.1).
pub fn response_to(
    req: &Request,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut headers = Headers::default();
    let creates_dialog = req.method == Method::Invite
        && (101..300).contains(&code)
        && req.headers.to_tag().is_none();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(v) => {
                let value = crate::message::header_value(h);
                let has_tag = req.headers.to_tag().is_some();
                match to_tag {
                    Some(tag) if !has_tag && code > 100 => {
                        headers.push(Header::To(format!("{value};tag={tag}").into()))
                    }
                    _ => headers.push(Header::To(v.clone())),
                }
            }
            Header::Timestamp(_) if code == 100 => headers.push(h.clone()),
            // A response that creates a dialog (1xx/2xx to an initial INVITE)
            // carries the request's Record-Route back, in order (§12.1.1):
            // the caller's route set, through the proxies that asked to stay.
            Header::RecordRoute(_) if creates_dialog => headers.push(h.clone()),
            _ => {}
        }
    }
    Response {
        status_code: status(code, reason),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Fluent construction of an out-of-dialog or in-dialog request.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    req: Request,
}

impl RequestBuilder {
    /// Starts a request with its method and Request-URI.
    pub fn new(method: Method, uri: rsip::Uri) -> Self {
        Self {
            req: Request {
                method,
                uri,
                version: rsip::Version::V2,
                headers: Headers::default(),
                body: Vec::new(),
            },
        }
    }

    /// Adds a Via `SIP/2.0/<transport> <sent_by>;branch=<branch>;rport`.
    pub fn via(mut self, transport: &str, sent_by: &str, branch: &str) -> Self {
        self.req.headers.push(Header::Via(
            format!("SIP/2.0/{transport} {sent_by};branch={branch};rport").into(),
        ));
        self
    }

    /// Max-Forwards.
    pub fn max_forwards(mut self, n: u8) -> Self {
        self.req
            .headers
            .push(Header::MaxForwards(n.to_string().into()));
        self
    }

    /// From, as a full value (`"Alice" <sip:a@h>;tag=x`).
    pub fn from(mut self, value: impl Into<String>) -> Self {
        self.req.headers.push(Header::From(value.into().into()));
        self
    }

    /// To, as a full value.
    pub fn to(mut self, value: impl Into<String>) -> Self {
        self.req.headers.push(Header::To(value.into().into()));
        self
    }

    /// Call-ID.
    pub fn call_id(mut self, id: impl Into<String>) -> Self {
        self.req.headers.push(Header::CallId(id.into().into()));
        self
    }

    /// CSeq with the request's own method.
    pub fn cseq(mut self, n: u32) -> Self {
        let v = format!("{n} {}", self.req.method);
        self.req.headers.push(Header::CSeq(v.into()));
        self
    }

    /// Contact, as a full value.
    pub fn contact(mut self, value: impl Into<String>) -> Self {
        self.req.headers.push(Header::Contact(value.into().into()));
        self
    }

    /// One Route header per entry, in order.
    pub fn routes<'a>(mut self, routes: impl IntoIterator<Item = &'a str>) -> Self {
        for r in routes {
            self.req.headers.push(Header::Route(r.to_owned().into()));
        }
        self
    }

    /// Any header.
    pub fn header(mut self, h: Header) -> Self {
        self.req.headers.push(h);
        self
    }

    /// A body with its Content-Type.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.req
            .headers
            .push(Header::ContentType(content_type.to_owned().into()));
        self.req.body = body;
        self
    }

    /// The finished request.
    pub fn build(self) -> Request {
        self.req
    }
}

/// Replaces the value of the first header matching `pred`, or appends `new`.
pub fn set_header(msg: &mut impl HasHeaders, pred: impl Fn(&Header) -> bool, new: Header) {
    let headers = msg.headers_mut();
    if let Some(h) = headers.iter_mut().find(|h| pred(h)) {
        *h = new;
    } else {
        headers.push(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{self, HeadersExt};

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let req = RequestBuilder::new(Method::Invite, "sip:bob@example.com".try_into().unwrap())
            .via("UDP", "192.0.2.1:5060", "z9hG4bKabc")
            .via("UDP", "192.0.2.2:5060", "z9hG4bKdef")
            .max_forwards(70)
            .from("<sip:alice@example.com>;tag=a1")
            .to("<sip:bob@example.com>")
            .call_id("cid-1")
            .cseq(7)
            .build();
        let resp = response_to(&req, 180, None, Some("b2"));
        assert_eq!(resp.headers.to_tag(), Some("b2"));
        assert_eq!(resp.headers.from_tag(), Some("a1"));
        assert_eq!(resp.headers.call_id(), Some("cid-1"));
        assert_eq!(resp.headers.cseq(), Some((7, Method::Invite)));
        assert_eq!(
            resp.headers
                .iter()
                .filter(|h| matches!(h, Header::Via(_)))
                .count(),
            2
        );
        let trying = response_to(&req, 100, None, Some("b2"));
        assert_eq!(trying.headers.to_tag(), None);
        let bytes = message::to_bytes(&resp.into());
        let back = message::parse(&bytes).unwrap();
        assert_eq!(back.headers().to_tag(), Some("b2"));
    }

    /// Regression (found against Kamailio, scripts/interop): Tandem's 200
    /// to a record-routed INVITE carried no Record-Route, so the caller's
    /// ACK and BYE bypassed the proxy, which answered them 404.
    #[test]
    fn a_dialog_creating_response_carries_the_record_route_back() {
        let rr = |v: &str| Header::RecordRoute(v.into());
        let req = RequestBuilder::new(Method::Invite, "sip:bob@example.com".try_into().unwrap())
            .via("UDP", "192.0.2.1:5060", "z9hG4bKabc")
            .from("<sip:alice@example.com>;tag=a1")
            .to("<sip:bob@example.com>")
            .call_id("cid-1")
            .cseq(1)
            .header(rr("<sip:p1.example.com;lr>"))
            .header(rr("<sip:p2.example.com;lr>"))
            .build();
        let routes = |r: &Response| -> Vec<String> {
            r.headers
                .iter()
                .filter(|h| matches!(h, Header::RecordRoute(_)))
                .map(|h| message::header_value(h).to_owned())
                .collect()
        };
        let both = ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"];
        assert_eq!(routes(&response_to(&req, 200, None, Some("b"))), both);
        assert_eq!(routes(&response_to(&req, 183, None, Some("b"))), both);
        assert!(routes(&response_to(&req, 100, None, None)).is_empty());
        assert!(routes(&response_to(&req, 486, None, Some("b"))).is_empty());
        // In a dialog (a re-INVITE) the route set is fixed: not copied.
        let mut re = req.clone();
        for h in re.headers.iter_mut() {
            if let Header::To(_) = h {
                *h = Header::To("<sip:bob@example.com>;tag=b".into());
            }
        }
        assert!(routes(&response_to(&re, 200, None, None)).is_empty());
    }

    #[test]
    fn seeded_ids_replay() {
        let mut a = IdGen::seeded(7);
        let mut b = IdGen::seeded(7);
        assert_eq!(a.branch(), b.branch());
        assert!(a.branch().starts_with("z9hG4bK"));
        assert_eq!(a.tag().len(), 12);
    }
}
