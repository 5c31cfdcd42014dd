//! Session timers (RFC 4028): the `Session-Expires` and `Min-SE` headers,
//! what a UAS answers a session refresh request (an INVITE, re-INVITE or
//! UPDATE), and the clock of one dialog's session — when Tandem refreshes
//! it, and when it gives up on a peer that should have.
//!
//! Sans-IO like the rest of the crate: time enters as `Instant` arguments.

use std::time::{Duration, Instant};

use crate::message::{Header, Headers, HeadersExt as _, ParseError, lists};

/// The option tag of RFC 4028.
pub const TAG: &str = "timer";

/// Which side of the refreshing transaction refreshes the session
/// (`refresher=uac` or `refresher=uas`, §4). It names a role in the
/// transaction that carried it, not a party of the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The side that sent the request.
    Uac,
    /// The side that answered it.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Self::Uac => "uac",
            Self::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: the session interval in seconds and, when
/// given, who refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// Delta-seconds.
    pub secs: u32,
    /// The `refresher` parameter.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses `delta-seconds *(;se-params)` (§4). Unknown parameters are
    /// skipped; a `refresher` other than `uac`/`uas` is an error.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let secs = parts.next()?.trim().parse::<u32>().ok()?;
        let mut refresher = None;
        for p in parts {
            let (name, v) = p.split_once('=').unwrap_or((p, ""));
            if name.trim().eq_ignore_ascii_case("refresher") {
                refresher = Some(match v.trim() {
                    r if r.eq_ignore_ascii_case("uac") => Refresher::Uac,
                    r if r.eq_ignore_ascii_case("uas") => Refresher::Uas,
                    _ => return None,
                });
            }
        }
        Some(Self { secs, refresher })
    }

    /// The first `Session-Expires` of a message (the compact `x` is
    /// expanded by the parser): `Ok(None)` when there is none, `Err` when
    /// it does not parse.
    pub fn of(headers: &Headers) -> Result<Option<Self>, ParseError> {
        match headers.named("Session-Expires") {
            None => Ok(None),
            Some(v) => Self::parse(v)
                .map(Some)
                .ok_or(ParseError::BadHeader("Session-Expires")),
        }
    }

    /// The header as Tandem writes it.
    pub fn header(&self) -> Header {
        let value = match self.refresher {
            Some(r) => format!("{};refresher={}", self.secs, r.as_str()),
            None => self.secs.to_string(),
        };
        Header::Other("Session-Expires".into(), value)
    }
}

/// The value of a `Min-SE` header, if the message has a well-formed one.
pub fn min_se(headers: &Headers) -> Option<u32> {
    headers
        .named("Min-SE")?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A `Min-SE` header.
pub fn min_se_header(secs: u32) -> Header {
    Header::Other("Min-SE".into(), secs.to_string())
}

/// Whether the message's `Supported` or `Require` lists `timer`.
pub fn supported(headers: &Headers) -> bool {
    lists(
        headers,
        |h| matches!(h, Header::Supported(_) | Header::Require(_)),
        TAG,
    )
}

/// Tandem's session interval and the smallest one it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The interval Tandem asks for and answers with (at most), seconds.
    pub session_expires: u32,
    /// The smallest interval Tandem accepts (its `Min-SE`), seconds.
    /// RFC 4028 §4 puts the floor at 90; smaller values are for tests.
    pub min_se: u32,
}

impl Default for Policy {
    /// 30 minutes, and RFC 4028's floor of 90 s.
    fn default() -> Self {
        Self {
            session_expires: 1800,
            min_se: 90,
        }
    }
}

/// What a UAS answers a session refresh request (§9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasAnswer {
    /// `422 Session Interval Too Small` with `Min-SE`: the UAC asked for
    /// less than Tandem accepts and can retry with more.
    TooSmall {
        /// Tandem's `Min-SE`.
        min_se: u32,
    },
    /// A 2xx with this `Session-Expires` (its refresher always set) and,
    /// when `require`, `Require: timer`.
    Timer {
        /// What goes into the 2xx.
        se: SessionExpires,
        /// The UAC supports the extension: the 2xx requires it.
        require: bool,
    },
    /// No session timer: the request neither asked for one nor said it can
    /// refresh.
    None,
    /// The request's `Session-Expires` does not parse: 400.
    Malformed,
}

impl UasAnswer {
    /// Whether the UAS (the side answering) refreshes the session.
    pub fn uas_refreshes(&self) -> Option<(u32, bool)> {
        match self {
            Self::Timer { se, .. } => Some((se.secs, se.refresher == Some(Refresher::Uas))),
            _ => None,
        }
    }

    /// The headers the 2xx carries.
    pub fn headers(&self) -> Vec<Header> {
        match self {
            Self::Timer { se, require } => {
                let mut h = vec![se.header()];
                if *require {
                    h.push(Header::Require(TAG.into()));
                }
                h
            }
            _ => Vec::new(),
        }
    }
}

/// How a UAS answers a session refresh request under `policy` (§9, with
/// erratum 1687 for a UAC that does not support the extension).
pub fn uas_answer(headers: &Headers, policy: Policy) -> UasAnswer {
    let supports = supported(headers);
    let Ok(asked) = SessionExpires::of(headers) else {
        return UasAnswer::Malformed;
    };
    let floor = min_se(headers).unwrap_or(0).max(policy.min_se);
    match asked {
        Some(se) if se.secs < policy.min_se && supports => UasAnswer::TooSmall {
            min_se: policy.min_se,
        },
        Some(se) => {
            // Too small from a UAC that cannot retry: raised, not refused
            // (erratum 1687). Otherwise it may be lowered to ours, never
            // below the request's Min-SE, never raised.
            let asked = se.secs.max(policy.min_se);
            let secs = asked.min(policy.session_expires.max(floor));
            let refresher = se.refresher.unwrap_or(if supports {
                Refresher::Uac
            } else {
                Refresher::Uas
            });
            UasAnswer::Timer {
                se: SessionExpires {
                    secs,
                    refresher: Some(refresher),
                },
                require: supports,
            }
        }
        // It can refresh but asked for no interval: Tandem sets one and
        // leaves the refreshing to the UAC.
        None if supports => UasAnswer::Timer {
            se: SessionExpires {
                secs: policy.session_expires.max(floor),
                refresher: Some(Refresher::Uac),
            },
            require: true,
        },
        None => UasAnswer::None,
    }
}

/// What a session's clock asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Tandem is the refresher and half the interval has passed: send a
    /// re-INVITE or UPDATE.
    Refresh,
    /// No refresh came (or Tandem's got no answer) in time: the session is
    /// over; send BYE.
    Expired,
}

/// One dialog's session clock (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval, seconds.
    pub secs: u32,
    /// Tandem refreshes.
    pub we_refresh: bool,
    refresh_at: Option<Instant>,
    expires_at: Instant,
}

impl SessionTimer {
    /// A session refreshed at `now` for `secs` seconds.
    pub fn new(now: Instant, secs: u32, we_refresh: bool) -> Self {
        let interval = Duration::from_secs(u64::from(secs.max(1)));
        // The refresher refreshes at half the interval; the other side
        // gives up the smaller of 32 s and a third of it before the end
        // (§10), and so does the refresher whose refresh went unanswered.
        let guard = (interval / 3).min(Duration::from_secs(32));
        Self {
            secs,
            we_refresh,
            refresh_at: we_refresh.then(|| now + interval / 2),
            expires_at: now + interval - guard,
        }
    }

    /// The session was refreshed at `now` (a 2xx to a re-INVITE or UPDATE
    /// either way), for `secs` with `we_refresh` from that exchange.
    pub fn refreshed(&mut self, now: Instant, secs: u32, we_refresh: bool) {
        *self = Self::new(now, secs, we_refresh);
    }

    /// Tandem's refresh failed with a response that does not end the
    /// dialog (491, 500...): try again halfway to the end, if there is
    /// time; otherwise the session expires when it does.
    pub fn refresh_failed(&mut self, now: Instant) {
        let left = self.expires_at.saturating_duration_since(now);
        if self.we_refresh && left > Duration::from_secs(2) {
            self.refresh_at = Some(now + left / 2);
        }
    }

    /// The next instant something is due.
    pub fn deadline(&self) -> Instant {
        self.refresh_at
            .map_or(self.expires_at, |r| r.min(self.expires_at))
    }

    /// What is due at `now`, if anything; a refresh is asked for once.
    pub fn poll(&mut self, now: Instant) -> Option<Due> {
        if self.refresh_at.is_some_and(|r| r <= now) {
            self.refresh_at = None;
            return Some(Due::Refresh);
        }
        (self.expires_at <= now).then_some(Due::Expired)
    }

    /// The `Session-Expires` of a refresh Tandem sends (it is the UAC of
    /// that request).
    pub fn refresh_header(&self) -> Header {
        self.header(Refresher::Uac)
    }

    /// The `Session-Expires` of Tandem's 2xx to a peer's refresh (Tandem
    /// its UAS).
    pub fn answer_header(&self) -> Header {
        self.header(Refresher::Uas)
    }

    /// Tandem named as `us` when it refreshes, the other role when not.
    fn header(&self, us: Refresher) -> Header {
        let them = match us {
            Refresher::Uac => Refresher::Uas,
            Refresher::Uas => Refresher::Uac,
        };
        SessionExpires {
            secs: self.secs,
            refresher: Some(if self.we_refresh { us } else { them }),
        }
        .header()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::header_value;

    fn headers(lines: &[(&str, &str)]) -> Headers {
        let mut h = Headers::default();
        for (n, v) in lines {
            h.push(match *n {
                "Supported" => Header::Supported((*v).into()),
                "Require" => Header::Require((*v).into()),
                _ => Header::Other((*n).into(), (*v).into()),
            });
        }
        h
    }

    const P: Policy = Policy {
        session_expires: 1800,
        min_se: 90,
    };

    #[test]
    fn session_expires_parses_with_and_without_refresher() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=uas"),
            Some(SessionExpires {
                secs: 1800,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 90 ; foo=bar ; REFRESHER=UAC"),
            Some(SessionExpires {
                secs: 90,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(SessionExpires::parse("4").unwrap().refresher, None);
        assert_eq!(SessionExpires::parse("x"), None);
        assert_eq!(SessionExpires::parse("90;refresher=me"), None);
        let h = headers(&[("Session-Expires", "nope")]);
        assert_eq!(
            SessionExpires::of(&h),
            Err(ParseError::BadHeader("Session-Expires"))
        );
        assert_eq!(uas_answer(&h, P), UasAnswer::Malformed);
    }

    #[test]
    fn too_small_is_refused_only_to_a_uac_that_can_retry() {
        let h = headers(&[("Supported", "replaces, timer"), ("Session-Expires", "60")]);
        assert_eq!(uas_answer(&h, P), UasAnswer::TooSmall { min_se: 90 });
        // Without support a 422 would only fail the call: raised instead.
        let h = headers(&[("Session-Expires", "60")]);
        assert_eq!(
            uas_answer(&h, P),
            UasAnswer::Timer {
                se: SessionExpires {
                    secs: 90,
                    refresher: Some(Refresher::Uas)
                },
                require: false
            }
        );
    }

    #[test]
    fn the_interval_is_lowered_to_ours_but_never_below_the_requests_min_se() {
        let h = headers(&[("Supported", "timer"), ("Session-Expires", "7200")]);
        let UasAnswer::Timer { se, require } = uas_answer(&h, P) else {
            panic!()
        };
        assert_eq!(
            (se.secs, se.refresher, require),
            (1800, Some(Refresher::Uac), true)
        );
        let h = headers(&[
            ("Supported", "timer"),
            ("Session-Expires", "7200;refresher=uas"),
            ("Min-SE", "3600"),
        ]);
        let UasAnswer::Timer { se, .. } = uas_answer(&h, P) else {
            panic!()
        };
        assert_eq!((se.secs, se.refresher), (3600, Some(Refresher::Uas)));
        // Never raised above what was asked.
        let h = headers(&[("Supported", "timer"), ("Session-Expires", "120")]);
        assert_eq!(uas_answer(&h, P).uas_refreshes(), Some((120, false)));
    }

    #[test]
    fn a_uac_that_supports_timers_without_asking_gets_ours() {
        let h = headers(&[("Supported", "timer")]);
        assert_eq!(uas_answer(&h, P).uas_refreshes(), Some((1800, false)));
        assert_eq!(uas_answer(&headers(&[]), P), UasAnswer::None);
        assert!(UasAnswer::None.headers().is_empty());
    }

    #[test]
    fn the_refresher_refreshes_at_half_and_the_other_side_gives_up_before_the_end() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, 1800, true);
        assert_eq!(t.deadline(), t0 + Duration::from_secs(900));
        assert_eq!(t.poll(t0 + Duration::from_secs(899)), None);
        assert_eq!(t.poll(t0 + Duration::from_secs(900)), Some(Due::Refresh));
        // Asked once; unanswered, it expires 32 s before the end.
        assert_eq!(t.deadline(), t0 + Duration::from_secs(1768));
        assert_eq!(t.poll(t0 + Duration::from_secs(1000)), None);
        assert_eq!(t.poll(t0 + Duration::from_secs(1768)), Some(Due::Expired));

        let mut t = SessionTimer::new(t0, 90, false);
        assert_eq!(t.deadline(), t0 + Duration::from_secs(60));
        assert_eq!(t.poll(t0 + Duration::from_secs(59)), None);
        t.refreshed(t0 + Duration::from_secs(59), 90, false);
        assert_eq!(t.poll(t0 + Duration::from_secs(60)), None);
        assert_eq!(t.deadline(), t0 + Duration::from_secs(119));
    }

    #[test]
    fn a_failed_refresh_is_tried_again_while_there_is_time() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, 90, true);
        assert_eq!(t.poll(t0 + Duration::from_secs(45)), Some(Due::Refresh));
        t.refresh_failed(t0 + Duration::from_secs(46));
        assert_eq!(t.deadline(), t0 + Duration::from_secs(53));
        assert_eq!(t.poll(t0 + Duration::from_secs(53)), Some(Due::Refresh));
        t.refresh_failed(t0 + Duration::from_secs(59));
        assert_eq!(t.poll(t0 + Duration::from_secs(60)), Some(Due::Expired));
    }

    #[test]
    fn refreshes_name_the_refresher_from_the_senders_side() {
        let t = SessionTimer::new(Instant::now(), 600, true);
        let h = t.refresh_header();
        assert_eq!(header_value(&h), "600;refresher=uac");
        let t = SessionTimer::new(Instant::now(), 600, false);
        assert_eq!(header_value(&t.refresh_header()), "600;refresher=uas");
        assert_eq!(header_value(&t.answer_header()), "600;refresher=uac");
    }
}
