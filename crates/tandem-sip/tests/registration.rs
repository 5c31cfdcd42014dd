//! Trunk registration (RFC 3261 §10.2) on virtual time, against Tandem's own
//! registrar acting as the carrier and against scripted responses. Every
//! request goes through `to_bytes` and `parse` as it would on the wire.

use std::time::{Duration, Instant};

use tandem_sip::auth::{Algorithm, Secret};
use tandem_sip::builder::{IdGen, response_to};
use tandem_sip::message::{Header, HeadersExt, Method, Request, Response, SipMessage, to_bytes};
use tandem_sip::registrar::{Registrar, RegistrarConfig};
use tandem_sip::registration::{
    ConfigError, Registration, RegistrationConfig, RegistrationError, State,
};
use tandem_sip::transaction::{Peer, Transport};

const CONTACT: &str = "sip:tandem123@203.0.113.5:5060";

fn config() -> RegistrationConfig {
    let mut cfg = RegistrationConfig::new(
        "sip:carrier.example",
        "sip:tandem123@carrier.example",
        CONTACT,
    );
    cfg.password = "s3cret".into();
    cfg.jitter = false;
    cfg
}

fn start(t0: Instant, cfg: RegistrationConfig) -> Registration {
    Registration::new(t0, cfg, IdGen::seeded(3)).unwrap()
}

fn carrier(t0: Instant) -> Registrar {
    Registrar::new(
        RegistrarConfig::new("carrier.example"),
        [1; 32],
        t0,
        IdGen::seeded(5),
    )
}

fn trunk_account(user: &str, _: Algorithm) -> Option<Secret> {
    (user == "tandem123").then(|| Secret::Password("s3cret".into()))
}

fn tandem() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "203.0.113.5:5060".parse().unwrap(),
    }
}

/// Polls the request due at `now` and passes it over the wire format.
fn send(reg: &mut Registration, now: Instant) -> Request {
    let request = reg.poll_request(now).expect("a REGISTER is due");
    assert!(reg.poll_request(now).is_none(), "one REGISTER at a time");
    assert_eq!(
        reg.poll_timeout(),
        None,
        "the transaction times out, not us"
    );
    match tandem_sip::parse(&to_bytes(&SipMessage::Request(request))).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

fn reply(request: &Request, code: u16, extra: Vec<Header>) -> Response {
    let mut response = response_to(request, code, None, Some("reg-tag"));
    for h in extra {
        response.headers.push(h);
    }
    response
}

fn challenge(nonce: &str, stale: bool) -> Header {
    let c = format!(
        "Digest realm=\"carrier.example\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{}",
        if stale { ", stale=true" } else { "" }
    );
    Header::WwwAuthenticate(c.into())
}

fn expires_of(request: &Request) -> Option<&str> {
    request.headers.named("Expires")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn initial_register_answers_the_401_and_registers() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let mut carrier = carrier(t0);
    assert_eq!(reg.state(), &State::Registering);
    assert_eq!(reg.poll_timeout(), Some(t0));

    let first = send(&mut reg, t0);
    assert_eq!(first.method, Method::Register);
    assert_eq!(first.uri.to_string(), "sip:carrier.example");
    let h = &first.headers;
    assert_eq!(h.named("To"), Some("<sip:tandem123@carrier.example>"));
    assert!(
        h.named("From")
            .unwrap()
            .starts_with("<sip:tandem123@carrier.example>;tag=")
    );
    assert_eq!(h.named("Contact"), Some("<sip:tandem123@203.0.113.5:5060>"));
    assert_eq!(expires_of(&first), Some("3600"));
    assert_eq!(h.cseq(), Some((1, Method::Register)));
    assert_eq!(h.call_id(), Some(reg.call_id()));
    assert!(h.top_via().unwrap().unwrap().is_rfc3261());
    assert!(h.named("Authorization").is_none());

    let outcome = carrier.handle_register(t0, &first, tandem(), trunk_account);
    assert_eq!(outcome.response().status_code.code(), 401);
    reg.on_response(t0, outcome.response());
    assert_eq!(reg.state(), &State::Registering);

    let t1 = t0 + Duration::from_millis(40);
    let second = send(&mut reg, t1);
    assert_eq!(second.headers.cseq(), Some((2, Method::Register)));
    assert_eq!(second.headers.call_id(), first.headers.call_id());
    assert_ne!(
        second.headers.top_via().unwrap().unwrap().branch,
        first.headers.top_via().unwrap().unwrap().branch
    );
    assert!(second.headers.named("Authorization").is_some());

    let outcome = carrier.handle_register(t1, &second, tandem(), trunk_account);
    assert_eq!(outcome.response().status_code.code(), 200);
    reg.on_response(t1, outcome.response());
    assert_eq!(
        reg.state(),
        &State::Registered {
            until: t1 + secs(3600)
        }
    );
    // Refresh at half the granted time, measured from when the REGISTER left.
    assert_eq!(reg.poll_timeout(), Some(t1 + secs(1800)));
    assert_eq!(carrier.contacts(t1, "tandem123")[0].contact, CONTACT);
}

#[test]
fn refresh_follows_the_granted_expiry() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = send(&mut reg, t0);
    // The registrar grants 600 s in our Contact (and says 900 elsewhere: ours wins).
    let ok = reply(
        &first,
        200,
        vec![
            Header::Contact("<sip:other@198.51.100.1>;expires=60".to_owned().into()),
            Header::Contact(format!("<{CONTACT}>;expires=600").into()),
            Header::Expires("900".to_owned().into()),
        ],
    );
    reg.on_response(t0 + secs(1), &ok);
    assert_eq!(
        reg.state(),
        &State::Registered {
            until: t0 + secs(600)
        }
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + secs(300)));
    assert!(reg.poll_request(t0 + secs(299)).is_none());

    let t300 = t0 + secs(300);
    let refresh = send(&mut reg, t300);
    assert_eq!(refresh.headers.call_id(), first.headers.call_id());
    assert_eq!(refresh.headers.cseq(), Some((2, Method::Register)));
    assert_eq!(refresh.headers.named("From"), first.headers.named("From"));
    assert_eq!(expires_of(&refresh), Some("3600"));
    // Still registered while the refresh is outstanding.
    assert_eq!(
        reg.state(),
        &State::Registered {
            until: t0 + secs(600)
        }
    );

    // No Contact for us: the Expires header decides.
    reg.on_response(
        t300,
        &reply(
            &refresh,
            200,
            vec![Header::Expires("120".to_owned().into())],
        ),
    );
    assert_eq!(
        reg.state(),
        &State::Registered {
            until: t300 + secs(120)
        }
    );
    assert_eq!(reg.poll_timeout(), Some(t300 + secs(60)));

    // Neither: what we asked for.
    let t360 = t300 + secs(60);
    let refresh = send(&mut reg, t360);
    reg.on_response(t360, &reply(&refresh, 200, vec![]));
    assert_eq!(
        reg.state(),
        &State::Registered {
            until: t360 + secs(3600)
        }
    );
}

#[test]
fn a_second_challenge_with_the_same_nonce_fails_unless_stale() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = send(&mut reg, t0);
    reg.on_response(t0, &reply(&first, 401, vec![challenge("n1", false)]));
    let second = send(&mut reg, t0);
    assert!(
        second
            .headers
            .named("Authorization")
            .unwrap()
            .contains("nonce=\"n1\"")
    );

    // Stale: same nonce allowed (answered with the new one).
    reg.on_response(t0, &reply(&second, 401, vec![challenge("n2", false)]));
    let third = send(&mut reg, t0);
    reg.on_response(t0, &reply(&third, 401, vec![challenge("n2", true)]));
    let fourth = send(&mut reg, t0);
    assert!(
        fourth
            .headers
            .named("Authorization")
            .unwrap()
            .contains("nonce=\"n2\"")
    );

    // Not stale and the nonce just answered: the password is wrong.
    reg.on_response(t0, &reply(&fourth, 401, vec![challenge("n2", false)]));
    assert_eq!(
        reg.state(),
        &State::Failed {
            error: RegistrationError::AuthenticationFailed,
            retry_at: t0 + secs(30)
        }
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + secs(30)));
    // The retry starts afresh, without credentials.
    let retry = send(&mut reg, t0 + secs(30));
    assert!(retry.headers.named("Authorization").is_none());
    assert_eq!(reg.state(), &State::Registering);
}

#[test]
fn wrong_password_against_a_real_registrar_backs_off() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.password = "wrong".into();
    let mut reg = start(t0, cfg);
    let mut carrier = carrier(t0);
    let first = send(&mut reg, t0);
    reg.on_response(
        t0,
        carrier
            .handle_register(t0, &first, tandem(), trunk_account)
            .response(),
    );
    let second = send(&mut reg, t0);
    let outcome = carrier.handle_register(t0, &second, tandem(), trunk_account);
    assert_eq!(outcome.response().status_code.code(), 403);
    reg.on_response(t0, outcome.response());
    assert!(matches!(
        reg.state(),
        State::Failed {
            error: RegistrationError::Rejected(403),
            ..
        }
    ));
}

#[test]
fn proxy_challenge_is_answered_with_proxy_authorization() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = send(&mut reg, t0);
    let c = "Digest realm=\"proxy.example\", nonce=\"p1\", qop=\"auth\"".to_owned();
    reg.on_response(
        t0,
        &reply(&first, 407, vec![Header::ProxyAuthenticate(c.into())]),
    );
    let second = send(&mut reg, t0);
    assert!(
        second
            .headers
            .named("Proxy-Authorization")
            .unwrap()
            .contains("realm=\"proxy.example\"")
    );
    // Then the registrar challenges too: both credentials go in the next request.
    reg.on_response(t0, &reply(&second, 401, vec![challenge("r1", false)]));
    let third = send(&mut reg, t0);
    assert!(third.headers.named("Proxy-Authorization").is_some());
    assert!(third.headers.named("Authorization").is_some());
}

#[test]
fn interval_too_brief_retries_with_min_expires() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.expires = 30;
    let mut reg = start(t0, cfg);
    let mut carrier = carrier(t0);
    let mut now = t0;
    let mut sent = Vec::new();
    while !matches!(reg.state(), State::Registered { .. }) {
        assert!(sent.len() < 4, "{:?}", reg.state());
        let request = send(&mut reg, now);
        sent.push(expires_of(&request).unwrap().to_owned());
        let outcome = carrier.handle_register(now, &request, tandem(), trunk_account);
        reg.on_response(now, outcome.response());
        now += Duration::from_millis(20);
    }
    // 401, then 423 (Min-Expires: 60), then 200.
    assert_eq!(sent, ["30", "30", "60"]);
    assert_eq!(reg.requested_expires(), 60);
    let sent_at = now - Duration::from_millis(20);
    assert_eq!(
        reg.state(),
        &State::Registered {
            until: sent_at + secs(60)
        }
    );
    assert_eq!(reg.poll_timeout(), Some(sent_at + secs(30)));

    // A 423 that does not raise the expiry cannot be satisfied.
    let mut reg = start(t0, config());
    let first = send(&mut reg, t0);
    reg.on_response(
        t0,
        &reply(
            &first,
            423,
            vec![Header::MinExpires("60".to_owned().into())],
        ),
    );
    assert!(matches!(
        reg.state(),
        State::Failed {
            error: RegistrationError::IntervalTooBrief,
            ..
        }
    ));
}

#[test]
fn backoff_after_403_doubles_up_to_the_cap() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..9 {
        let request = send(&mut reg, now);
        reg.on_response(now, &reply(&request, 403, vec![]));
        let State::Failed { error, retry_at } = reg.state().clone() else {
            panic!("{:?}", reg.state());
        };
        assert_eq!(error, RegistrationError::Rejected(403));
        assert_eq!(reg.poll_timeout(), Some(retry_at));
        assert!(
            reg.poll_request(retry_at - Duration::from_millis(1))
                .is_none()
        );
        waits.push((retry_at - now).as_secs());
        now = retry_at;
    }
    assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);

    // A success resets the backoff.
    let request = send(&mut reg, now);
    reg.on_response(now, &reply(&request, 200, vec![]));
    let refresh_at = reg.poll_timeout().unwrap();
    let request = send(&mut reg, refresh_at);
    reg.on_response(refresh_at, &reply(&request, 503, vec![]));
    assert!(
        matches!(reg.state(), State::Failed { retry_at, .. } if *retry_at == refresh_at + secs(30))
    );
}

#[test]
fn jittered_backoff_stays_within_half_to_full_wait() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.jitter = true;
    let mut reg = start(t0, cfg);
    let mut now = t0;
    let mut nominal = 30;
    for _ in 0..8 {
        send(&mut reg, now);
        reg.on_timeout(now + secs(32));
        now += secs(32);
        let State::Failed { error, retry_at } = reg.state().clone() else {
            panic!("{:?}", reg.state());
        };
        assert_eq!(error, RegistrationError::Timeout);
        let wait = (retry_at - now).as_secs_f64();
        assert!(
            wait >= nominal as f64 / 2.0 && wait <= nominal as f64,
            "{wait} vs {nominal}"
        );
        nominal = (nominal * 2).min(1800);
        now = retry_at;
    }
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = send(&mut reg, t0);
    reg.on_response(
        t0,
        &reply(
            &first,
            503,
            vec![Header::RetryAfter("120 (maintenance)".to_owned().into())],
        ),
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + secs(120)));
    let second = send(&mut reg, t0 + secs(120));
    reg.on_response(
        t0 + secs(120),
        &reply(
            &second,
            503,
            vec![Header::RetryAfter("86400".to_owned().into())],
        ),
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + secs(120 + 1800)));
}

#[test]
fn stray_and_provisional_responses_are_ignored() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = send(&mut reg, t0);
    reg.on_response(t0, &reply(&first, 100, vec![]));
    let mut other = first.clone();
    other.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    other
        .headers
        .push(Header::CSeq("7 REGISTER".to_owned().into()));
    reg.on_response(t0, &reply(&other, 200, vec![]));
    assert_eq!(reg.state(), &State::Registering);
    reg.on_response(t0, &reply(&first, 200, vec![]));
    assert!(matches!(reg.state(), State::Registered { .. }));
}

#[test]
fn unregister_sends_expires_zero_and_stops() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let mut carrier = carrier(t0);
    let mut now = t0;
    while !matches!(reg.state(), State::Registered { .. }) {
        let request = send(&mut reg, now);
        reg.on_response(
            now,
            carrier
                .handle_register(now, &request, tandem(), trunk_account)
                .response(),
        );
    }
    assert_eq!(carrier.contacts(now, "tandem123").len(), 1);

    now += secs(100);
    reg.unregister(now);
    assert_eq!(reg.state(), &State::Unregistering);
    assert_eq!(reg.poll_timeout(), Some(now));
    let mut requests = 0;
    while reg.state() != &State::Unregistered {
        let request = send(&mut reg, now);
        assert_eq!(expires_of(&request), Some("0"));
        assert_eq!(
            request.headers.named("Contact"),
            Some("<sip:tandem123@203.0.113.5:5060>")
        );
        reg.on_response(
            now,
            carrier
                .handle_register(now, &request, tandem(), trunk_account)
                .response(),
        );
        requests += 1;
        assert!(requests < 3);
    }
    assert!(carrier.contacts(now, "tandem123").is_empty());
    assert_eq!(reg.poll_timeout(), None);
    assert!(reg.poll_request(now + secs(10_000)).is_none());
}

#[test]
fn unregister_waits_for_the_outstanding_register() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let first = send(&mut reg, t0);
    reg.unregister(t0);
    assert!(
        reg.poll_request(t0).is_none(),
        "never two REGISTERs at once"
    );
    reg.on_response(t0, &reply(&first, 200, vec![]));
    let bye = send(&mut reg, t0);
    assert_eq!(expires_of(&bye), Some("0"));
    assert_eq!(bye.headers.cseq(), Some((2, Method::Register)));
    // The unregister times out: give up, nothing more to send.
    reg.on_timeout(t0 + secs(32));
    assert_eq!(reg.state(), &State::Unregistered);
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn unregister_before_anything_was_sent_sends_nothing() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    reg.unregister(t0);
    assert_eq!(reg.state(), &State::Unregistered);
    assert!(reg.poll_request(t0).is_none());
}

#[test]
fn endless_fresh_challenges_are_cut_off() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    for i in 0..4 {
        let request = send(&mut reg, t0);
        reg.on_response(
            t0,
            &reply(&request, 401, vec![challenge(&format!("n{i}"), false)]),
        );
    }
    assert!(matches!(
        reg.state(),
        State::Failed {
            error: RegistrationError::TooManyChallenges,
            ..
        }
    ));
}

#[test]
fn unanswerable_challenge_fails() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    let request = send(&mut reg, t0);
    let c = "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256".to_owned();
    reg.on_response(
        t0,
        &reply(&request, 401, vec![Header::WwwAuthenticate(c.into())]),
    );
    assert!(matches!(
        reg.state(),
        State::Failed {
            error: RegistrationError::Unanswerable(_),
            ..
        }
    ));
    let request = send(&mut reg, t0 + secs(30));
    reg.on_response(t0, &reply(&request, 401, vec![]));
    assert!(matches!(
        reg.state(),
        State::Failed {
            error: RegistrationError::NoChallenge,
            ..
        }
    ));
}

#[test]
fn bad_configuration_is_refused() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.registrar = "not a uri".into();
    assert!(matches!(
        Registration::new(t0, cfg, IdGen::seeded(1)),
        Err(ConfigError::InvalidUri {
            field: "registrar",
            ..
        })
    ));
    let cfg = RegistrationConfig::new(
        "sip:carrier.example",
        "sip:t@carrier.example",
        "sip:t@198.51.100.4:5070;transport=tcp",
    );
    assert_eq!(cfg.sent_by, "198.51.100.4:5070");
    assert_eq!(cfg.username, "t");
}

/// A timed-out or refused attempt can be retried at once (the engine does
/// so toward the next DNS target); the failure still counts toward the
/// back-off, and nothing happens when nothing failed.
#[test]
fn a_failed_attempt_is_retried_now_when_asked() {
    let t0 = Instant::now();
    let mut reg = start(t0, config());
    reg.retry_now(t0);
    let first = send(&mut reg, t0);
    reg.retry_now(t0);
    assert!(
        reg.poll_request(t0).is_none(),
        "in flight: nothing to retry"
    );
    reg.on_timeout(t0 + secs(32));
    let State::Failed { retry_at, .. } = reg.state().clone() else {
        panic!("{:?}", reg.state());
    };
    assert!(retry_at > t0 + secs(32), "backed off first");
    reg.retry_now(t0 + secs(32));
    assert_eq!(reg.poll_timeout(), Some(t0 + secs(32)));
    let second = send(&mut reg, t0 + secs(32));
    assert_ne!(
        second.headers.cseq(),
        first.headers.cseq(),
        "a new attempt, not a retransmission"
    );
    // The second failure backs off twice as long as the first did.
    reg.on_timeout(t0 + secs(64));
    let State::Failed { retry_at, .. } = reg.state().clone() else {
        panic!("{:?}", reg.state());
    };
    assert_eq!(retry_at - (t0 + secs(64)), config().retry_base * 2);
}
