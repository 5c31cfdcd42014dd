//! Outbound registration of Tandem to a carrier trunk (RFC 3261 §10.2): one
//! [`Registration`] per trunk builds the REGISTER requests (§10.2.1), answers
//! digest challenges (§22.2, RFC 7616), refreshes before the granted expiry
//! (§10.2.4), raises its expiry on 423 (§10.2.8), backs off after failures
//! and removes its binding on shutdown (§10.2.2).
//!
//! Sans-IO, driven like the transaction layer. After every input
//! ([`Registration::new`], [`Registration::on_response`],
//! [`Registration::on_timeout`], [`Registration::unregister`], or reaching
//! [`Registration::poll_timeout`]) call [`Registration::poll_request`] with
//! the current time; a request it returns goes out in a new client
//! transaction to the trunk, whose final response comes back through
//! `on_response` and whose Timer F through `on_timeout`. At most one REGISTER
//! is outstanding at any time (§10.2: no new registration before the previous
//! one got its final response or timed out).

use std::time::{Duration, Instant};

use crate::auth::{AuthError, Challenge, DigestClient, DigestRequest};
use crate::builder::{IdGen, RequestBuilder};
use crate::header::{NameAddr, uri_host_port};
use crate::message::{Header, HeadersExt, Method, Request, Response, Uri, header_value};
use crate::registrar::{parse_delta, uri_matches};
use crate::transaction::Transport;

/// Settings of one trunk registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// Request-URI: the registrar's domain (`sip:carrier.example`), no user part.
    pub registrar: String,
    /// Address-of-record, sent in From and To (`sip:tandem123@carrier.example`).
    pub aor: String,
    /// Tandem's Contact URI (`sip:tandem123@203.0.113.5:5060`).
    pub contact: String,
    /// Digest user name.
    pub username: String,
    /// Digest password.
    pub password: String,
    /// Expiry asked for, in seconds (raised by a 423's Min-Expires).
    pub expires: u32,
    /// Transport written into Via.
    pub transport: Transport,
    /// Via sent-by (`203.0.113.5:5060`).
    pub sent_by: String,
    /// User-Agent header, if any.
    pub user_agent: Option<String>,
    /// Wait after the first failure; doubles with each further one.
    pub retry_base: Duration,
    /// Longest wait between attempts (also caps a Retry-After).
    pub retry_max: Duration,
    /// Randomise each wait to 50–100 % of its value (RFC 5626 §4.5) so that
    /// registrations do not all return at once after a carrier outage.
    pub jitter: bool,
    /// Most challenges answered in one attempt (protects against a registrar
    /// that answers wrong credentials with a new nonce each time).
    pub max_challenges: u32,
}

impl RegistrationConfig {
    /// Defaults: user name = AOR user, empty password, 3600 s, UDP, sent-by =
    /// the Contact's host and port, retries from 30 s doubling up to 30 min
    /// with jitter, at most 3 challenges per attempt.
    pub fn new(
        registrar: impl Into<String>,
        aor: impl Into<String>,
        contact: impl Into<String>,
    ) -> Self {
        let aor = aor.into();
        let contact = contact.into();
        let sent_by = contact
            .split_once(':')
            .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, h)| h))
            .map(|h| h.split([';', '?']).next().unwrap_or(h).to_owned())
            .unwrap_or_default();
        Self {
            registrar: registrar.into(),
            username: crate::registrar::uri_user(&aor)
                .unwrap_or_default()
                .to_owned(),
            aor,
            contact,
            password: String::new(),
            expires: 3600,
            transport: Transport::Udp,
            sent_by,
            user_agent: None,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
            jitter: true,
            max_challenges: 3,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URI does not parse.
    #[error("{field} is not a SIP URI: {value:?}")]
    InvalidUri {
        /// Which setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// `sent_by` is empty.
    #[error("Via sent-by is empty")]
    NoSentBy,
}

/// Why an attempt failed (kept in [`State::Failed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The registrar answered with this final status (403, 404, 5xx, ...).
    #[error("registrar answered {0}")]
    Rejected(u16),
    /// The registrar challenged again with the nonce just answered, not stale:
    /// the credentials are wrong.
    #[error("credentials rejected")]
    AuthenticationFailed,
    /// More than `max_challenges` challenges in one attempt.
    #[error("too many challenges")]
    TooManyChallenges,
    /// A 401/407 without a challenge Tandem can answer.
    #[error("cannot answer the challenge: {0}")]
    Unanswerable(AuthError),
    /// A 401/407 without any challenge header.
    #[error("401/407 without a challenge")]
    NoChallenge,
    /// A 423 whose Min-Expires is missing or not above the expiry asked for.
    #[error("423 without a usable Min-Expires")]
    IntervalTooBrief,
    /// A 2xx that granted an expiry of zero.
    #[error("registrar granted no time")]
    NotGranted,
    /// No final response before the transaction timed out.
    #[error("no response")]
    Timeout,
}

/// Where the registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// No binding yet; a REGISTER is outstanding or about to go out.
    Registering,
    /// The registrar granted a binding valid until `until` (measured from
    /// when the REGISTER was sent); a refresh goes out at half that time.
    Registered {
        /// End of the granted binding.
        until: Instant,
    },
    /// The last attempt failed; the next one goes out at `retry_at`.
    Failed {
        /// Why.
        error: RegistrationError,
        /// When the next attempt is sent.
        retry_at: Instant,
    },
    /// Removing the binding (Expires: 0) after [`Registration::unregister`].
    Unregistering,
    /// Stopped: the binding was removed (or never made); nothing more is sent.
    Unregistered,
}

#[derive(Debug, Clone)]
struct InFlight {
    cseq: u32,
    expires: u32,
    sent_at: Instant,
    /// Nonces of the challenges this request answered.
    answered: Vec<String>,
}

/// The client side of REGISTER for one trunk.
#[derive(Debug)]
pub struct Registration {
    cfg: RegistrationConfig,
    registrar: Uri,
    ids: IdGen,
    digest: DigestClient,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: u32,
    state: State,
    next_send: Option<Instant>,
    in_flight: Option<InFlight>,
    /// Challenges to answer in the next request: (407?, challenge).
    challenges: Vec<(bool, Challenge)>,
    rounds: u32,
    failures: u32,
    stopping: bool,
    sent_any: bool,
}

impl Registration {
    /// A registration whose first REGISTER is due at `now`. The Call-ID and
    /// From tag come from `ids` and stay the same for every refresh (§10.2.4).
    pub fn new(now: Instant, cfg: RegistrationConfig, mut ids: IdGen) -> Result<Self, ConfigError> {
        for (field, value) in [
            ("registrar", &cfg.registrar),
            ("aor", &cfg.aor),
            ("contact", &cfg.contact),
        ] {
            if !is_sip_uri(value) {
                return Err(ConfigError::InvalidUri {
                    field,
                    value: value.clone(),
                });
            }
        }
        let registrar =
            crate::uri::parse(cfg.registrar.as_str()).map_err(|_| ConfigError::InvalidUri {
                field: "registrar",
                value: cfg.registrar.clone(),
            })?;
        if cfg.sent_by.is_empty() {
            return Err(ConfigError::NoSentBy);
        }
        Ok(Self {
            call_id: ids.call_id(),
            from_tag: ids.tag(),
            expires: cfg.expires,
            cfg,
            registrar,
            ids,
            digest: DigestClient::new(),
            cseq: 0,
            state: State::Registering,
            next_send: Some(now),
            in_flight: None,
            challenges: Vec::new(),
            rounds: 0,
            failures: 0,
            stopping: false,
            sent_any: false,
        })
    }

    /// Where the registration stands.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The Call-ID shared by every REGISTER of this registration.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The expiry currently asked for (the configured one, or a 423's Min-Expires).
    pub fn requested_expires(&self) -> u32 {
        self.expires
    }

    /// When [`Registration::poll_request`] next has something to send; `None`
    /// while a REGISTER is outstanding (its transaction times out instead) or
    /// after the registration stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        self.next_send
    }

    /// The REGISTER to send now, if one is due. Send it in a new non-INVITE
    /// client transaction to the trunk.
    pub fn poll_request(&mut self, now: Instant) -> Option<Request> {
        if self.in_flight.is_some() || self.next_send.is_none_or(|t| t > now) {
            return None;
        }
        self.next_send = None;
        let expires = if self.stopping { 0 } else { self.expires };
        self.cseq = self.cseq.wrapping_add(1) & 0x7fff_ffff;
        let branch = self.ids.branch();
        let mut builder = RequestBuilder::new(Method::Register, self.registrar.clone())
            .via(self.cfg.transport.as_str(), &self.cfg.sent_by, &branch)
            .max_forwards(70)
            .from(format!("<{}>;tag={}", self.cfg.aor, self.from_tag))
            .to(format!("<{}>", self.cfg.aor))
            .call_id(self.call_id.clone())
            .cseq(self.cseq)
            .contact(format!("<{}>", self.cfg.contact))
            .header(Header::Expires(expires.to_string().into()));
        if let Some(ua) = &self.cfg.user_agent {
            builder = builder.header(Header::UserAgent(ua.clone().into()));
        }
        let mut request = builder.build();
        let uri = request.uri.to_string();
        let digest_request = DigestRequest {
            method: "REGISTER",
            uri: &uri,
            body: &[],
        };
        let mut answered = Vec::new();
        for (proxy, challenge) in &self.challenges {
            let cnonce = format!("{}{}", self.ids.tag(), self.ids.tag());
            match self.digest.authorize(
                challenge,
                &digest_request,
                &self.cfg.username,
                &self.cfg.password,
                &cnonce,
            ) {
                Ok(credentials) => {
                    let value = credentials.to_string();
                    request.headers.push(if *proxy {
                        Header::ProxyAuthorization(value.into())
                    } else {
                        Header::Authorization(value.into())
                    });
                    answered.push(challenge.nonce.clone());
                }
                Err(e) => tracing::warn!(error = %e, "cannot answer registrar challenge"),
            }
        }
        self.in_flight = Some(InFlight {
            cseq: self.cseq,
            expires,
            sent_at: now,
            answered,
        });
        self.sent_any = true;
        match self.state {
            State::Registered { .. } if !self.stopping => {}
            _ if self.stopping => self.state = State::Unregistering,
            _ => self.state = State::Registering,
        }
        Some(request)
    }

    /// A response from the REGISTER's client transaction. Provisional
    /// responses and responses to other requests are ignored.
    pub fn on_response(&mut self, now: Instant, response: &Response) {
        let Some(inflight) = &self.in_flight else {
            return;
        };
        let h = &response.headers;
        if h.call_id() != Some(self.call_id.as_str())
            || h.cseq() != Some((inflight.cseq, Method::Register))
        {
            return;
        }
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let Some(inflight) = self.in_flight.take() else {
            return;
        };
        match code {
            200..=299 => self.on_success(now, &inflight, response),
            401 | 407 => self.on_challenge(now, &inflight, response, code == 407),
            423 => {
                let min = h
                    .value_of(|h| matches!(h, Header::MinExpires(_)))
                    .and_then(parse_delta);
                match min {
                    Some(min) if min > u64::from(inflight.expires) && inflight.expires != 0 => {
                        self.expires = u32::try_from(min).unwrap_or(u32::MAX);
                        self.next_send = Some(now);
                    }
                    _ => self.fail(now, &inflight, RegistrationError::IntervalTooBrief, None),
                }
            }
            _ => {
                let retry_after = h
                    .value_of(|h| matches!(h, Header::RetryAfter(_)))
                    .and_then(|v| parse_delta(v.split(['(', ';']).next().unwrap_or(v)));
                self.fail(
                    now,
                    &inflight,
                    RegistrationError::Rejected(code),
                    retry_after,
                );
            }
        }
    }

    /// The REGISTER's client transaction timed out (Timer F) or failed at the transport.
    pub fn on_timeout(&mut self, now: Instant) {
        if let Some(inflight) = self.in_flight.take() {
            self.fail(now, &inflight, RegistrationError::Timeout, None);
        }
    }

    /// After a failed attempt, sends the next REGISTER now instead of after
    /// the back-off: the caller has another server of the registrar's name
    /// to try (RFC 3263 §4.3). The failure still counts toward the next
    /// back-off. Does nothing unless the last attempt failed.
    pub fn retry_now(&mut self, now: Instant) {
        if self.stopping || self.in_flight.is_some() {
            return;
        }
        if let State::Failed { retry_at, .. } = &mut self.state {
            *retry_at = now;
            self.next_send = Some(now);
        }
    }

    /// Removes the binding (REGISTER with Expires: 0, §10.2.2), as soon as no
    /// other REGISTER is outstanding. Nothing is sent if no REGISTER ever was.
    pub fn unregister(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.challenges.clear();
        self.rounds = 0;
        if !self.sent_any {
            self.finish();
            return;
        }
        self.state = State::Unregistering;
        if self.in_flight.is_none() {
            self.next_send = Some(now);
        }
    }

    fn on_success(&mut self, now: Instant, inflight: &InFlight, response: &Response) {
        self.failures = 0;
        self.rounds = 0;
        self.challenges.clear();
        if inflight.expires == 0 {
            self.finish();
            return;
        }
        let h = &response.headers;
        let ours = h
            .iter()
            .filter(|h| matches!(h, Header::Contact(_)))
            .filter_map(|h| NameAddr::parse(header_value(h)).ok())
            .find(|na| uri_matches(na.uri, &self.cfg.contact))
            .and_then(|na| na.param("expires").flatten().and_then(parse_delta));
        let granted = ours
            .or_else(|| {
                h.value_of(|h| matches!(h, Header::Expires(_)))
                    .and_then(parse_delta)
            })
            .unwrap_or(u64::from(inflight.expires));
        if granted == 0 {
            self.fail(now, inflight, RegistrationError::NotGranted, None);
            return;
        }
        let granted = Duration::from_secs(granted.min(u64::from(u32::MAX)));
        self.state = State::Registered {
            until: inflight.sent_at + granted,
        };
        self.next_send = Some(if self.stopping {
            now
        } else {
            inflight.sent_at + granted / 2
        });
    }

    fn on_challenge(
        &mut self,
        now: Instant,
        inflight: &InFlight,
        response: &Response,
        proxy: bool,
    ) {
        let mut last_error = None;
        let uri = self.registrar.to_string();
        let probe = DigestRequest {
            method: "REGISTER",
            uri: &uri,
            body: &[],
        };
        let challenge = response
            .headers
            .iter()
            .filter(|h| {
                if proxy {
                    matches!(h, Header::ProxyAuthenticate(_))
                } else {
                    matches!(h, Header::WwwAuthenticate(_))
                }
            })
            .map(|h| Challenge::parse(header_value(h)))
            .find_map(|parsed| {
                // Answerable: parses, and the digest can be computed.
                let checked = parsed
                    .and_then(|c| crate::auth::respond(&c, &probe, "u", "p", "c", 1).map(|_| c));
                checked.map_err(|e| last_error = Some(e)).ok()
            });
        let Some(challenge) = challenge else {
            let error = last_error.map_or(RegistrationError::NoChallenge, |e| {
                RegistrationError::Unanswerable(e)
            });
            self.fail(now, inflight, error, None);
            return;
        };
        if !challenge.stale && inflight.answered.contains(&challenge.nonce) {
            self.fail(now, inflight, RegistrationError::AuthenticationFailed, None);
            return;
        }
        self.rounds += 1;
        if self.rounds > self.cfg.max_challenges {
            self.fail(now, inflight, RegistrationError::TooManyChallenges, None);
            return;
        }
        self.challenges
            .retain(|(p, c)| !(*p == proxy && c.realm == challenge.realm));
        self.challenges.push((proxy, challenge));
        self.next_send = Some(now);
    }

    fn fail(
        &mut self,
        now: Instant,
        inflight: &InFlight,
        error: RegistrationError,
        retry_after: Option<u64>,
    ) {
        tracing::debug!(%error, "trunk REGISTER failed");
        self.challenges.clear();
        self.rounds = 0;
        if self.stopping {
            if inflight.expires == 0 {
                // The unregister itself failed: nothing more to do.
                self.finish();
            } else {
                // A registration failed while shutting down: still try to remove it.
                self.state = State::Unregistering;
                self.next_send = Some(now);
            }
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let wait = match retry_after {
            Some(secs) => Duration::from_secs(secs).min(self.cfg.retry_max),
            None => self.backoff(),
        };
        let retry_at = now + wait;
        self.state = State::Failed { error, retry_at };
        self.next_send = Some(retry_at);
    }

    /// `retry_base × 2^(failures − 1)`, capped at `retry_max`, then jittered
    /// down to 50–100 % when configured.
    fn backoff(&mut self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(20);
        let wait = self
            .cfg
            .retry_base
            .saturating_mul(1 << exp)
            .min(self.cfg.retry_max);
        if !self.cfg.jitter {
            return wait;
        }
        let r = f64::from(self.ids.u32()) / f64::from(u32::MAX);
        wait.mul_f64(0.5 + 0.5 * r)
    }

    fn finish(&mut self) {
        self.state = State::Unregistered;
        self.next_send = None;
        self.in_flight = None;
        self.challenges.clear();
    }
}

/// `sip:` or `sips:` with a readable host and no whitespace.
fn is_sip_uri(uri: &str) -> bool {
    let scheme = uri.split(':').next().unwrap_or("");
    (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
        && !uri.contains(char::is_whitespace)
        && uri_host_port(uri).is_some()
}
