//! The registrar (RFC 3261 §10.3) driven by REGISTER requests written as text
//! and parsed with `tandem_sip::parse`, with phones answering the digest
//! challenges through `DigestClient`. Time is virtual.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tandem_sip::auth::{Algorithm, Challenge, DigestClient, DigestRequest, Secret};
use tandem_sip::builder::IdGen;
use tandem_sip::message::{Header, HeadersExt, Request, Response, SipMessage, header_value};
use tandem_sip::registrar::{RegisterError, RegisterOutcome, Registrar, RegistrarConfig};
use tandem_sip::transaction::{Peer, Transport};

const REALM: &str = "tandem.example";

fn clients(user: &str, _: Algorithm) -> Option<Secret> {
    match user {
        "joey" => Some(Secret::Password("joeys-pw".into())),
        "ann" => Some(Secret::Password("anns-pw".into())),
        _ => None,
    }
}

fn registrar_with(config: RegistrarConfig, t0: Instant) -> Registrar {
    Registrar::new(config, [7; 32], t0, IdGen::seeded(42))
}

fn registrar(t0: Instant) -> Registrar {
    registrar_with(RegistrarConfig::new(REALM), t0)
}

fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse::<SocketAddr>().unwrap(),
    }
}

fn parse_request(text: &str) -> Request {
    match tandem_sip::parse(text.replace('\n', "\r\n").as_bytes()).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("not a request"),
    }
}

fn headers_named(response: &Response, pred: impl Fn(&Header) -> bool) -> Vec<&str> {
    response
        .headers
        .iter()
        .filter(|h| pred(h))
        .map(header_value)
        .collect()
}

fn contacts_of(response: &Response) -> Vec<&str> {
    headers_named(response, |h| matches!(h, Header::Contact(_)))
}

/// A SIP phone: writes REGISTERs as text and answers 401s with `DigestClient`,
/// reusing the last challenge for later requests (nonce-count incrementing).
struct Phone {
    user: &'static str,
    password: &'static str,
    aor_user: &'static str,
    call_id: String,
    cseq: u32,
    source: Peer,
    digest: DigestClient,
    challenge: Option<Challenge>,
    /// Index of the offered challenge to answer (0 = SHA-256, 1 = MD5).
    pick: usize,
    /// The Request-URI, also the digest uri.
    request_uri: String,
}

impl Phone {
    fn new(user: &'static str, password: &'static str, source: &str) -> Self {
        Self {
            user,
            password,
            aor_user: user,
            call_id: format!("{user}-call-id@10.0.0.5"),
            cseq: 0,
            source: peer(source),
            digest: DigestClient::new(),
            challenge: None,
            pick: 0,
            request_uri: format!("sip:{REALM}"),
        }
    }

    fn text(&mut self, extra: &str) -> String {
        self.cseq += 1;
        let mut text = format!(
            "REGISTER {ruri} SIP/2.0\n\
             Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-{cseq}-{user};rport\n\
             Max-Forwards: 70\n\
             From: <sip:{aor}@{REALM}>;tag=ph1\n\
             To: <sip:{aor}@{REALM}>\n\
             Call-ID: {call_id}\n\
             CSeq: {cseq} REGISTER\n",
            ruri = self.request_uri,
            cseq = self.cseq,
            user = self.user,
            aor = self.aor_user,
            call_id = self.call_id,
        );
        for line in extra.lines().map(str::trim).filter(|l| !l.is_empty()) {
            text.push_str(line);
            text.push('\n');
        }
        if let Some(challenge) = &self.challenge {
            let request = DigestRequest {
                method: "REGISTER",
                uri: &self.request_uri,
                body: b"",
            };
            let credentials = self
                .digest
                .authorize(challenge, &request, self.user, self.password, "0a4f113b")
                .unwrap();
            text.push_str(&format!("Authorization: {credentials}\n"));
        }
        text.push_str("Content-Length: 0\n\n");
        text
    }

    /// Sends one REGISTER; on 401 answers the challenge (at most twice).
    fn register(&mut self, reg: &mut Registrar, now: Instant, extra: &str) -> RegisterOutcome {
        for _ in 0..3 {
            let text = self.text(extra);
            let outcome = reg.handle_register(now, &parse_request(&text), self.source, clients);
            match &outcome {
                RegisterOutcome::Challenged { response, .. } => {
                    let offered =
                        headers_named(response, |h| matches!(h, Header::WwwAuthenticate(_)));
                    self.challenge = Some(Challenge::parse(offered[self.pick]).unwrap());
                }
                _ => return outcome,
            }
        }
        panic!("phone challenged three times in a row");
    }
}

fn expect_ok(outcome: &RegisterOutcome) -> &Response {
    match outcome {
        RegisterOutcome::Updated { response, .. } => {
            assert_eq!(response.status_code.code(), 200);
            response
        }
        other => panic!("expected 200, got {other:?}"),
    }
}

fn expect_error(outcome: &RegisterOutcome) -> (RegisterError, u16) {
    match outcome {
        RegisterOutcome::Rejected { error, response } => {
            (error.clone(), response.status_code.code())
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn digest_round_trip_creates_a_binding() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:40123");

    // Without credentials: 401 with one challenge per offered algorithm.
    let text = phone.text("Contact: <sip:joey@10.0.0.5:5062>");
    let outcome = reg.handle_register(t0, &parse_request(&text), phone.source, clients);
    let RegisterOutcome::Challenged { stale, response } = &outcome else {
        panic!("expected a challenge, got {outcome:?}");
    };
    assert!(!stale);
    assert_eq!(response.status_code.code(), 401);
    assert!(response.headers.to_tag().is_some());
    let offered = headers_named(response, |h| matches!(h, Header::WwwAuthenticate(_)));
    assert_eq!(offered.len(), 2);
    assert!(offered[0].contains("algorithm=SHA-256") && offered[1].contains("algorithm=MD5"));
    assert!(reg.contacts(t0, "joey").is_empty());

    // Answering either algorithm registers the contact.
    phone.challenge = Some(Challenge::parse(offered[0]).unwrap());
    let text = phone.text("Contact: <sip:joey@10.0.0.5:5062>");
    let outcome = reg.handle_register(t0, &parse_request(&text), phone.source, clients);
    let response = expect_ok(&outcome);
    assert!(matches!(&outcome, RegisterOutcome::Updated { identity, .. } if identity == "joey"));
    assert!(response.headers.to_tag().is_some());
    assert_eq!(
        contacts_of(response),
        ["<sip:joey@10.0.0.5:5062>;expires=3600"]
    );
    let bindings = reg.contacts(t0, "joey");
    assert_eq!(bindings.len(), 1);
    let b = &bindings[0];
    assert_eq!(b.contact, "sip:joey@10.0.0.5:5062");
    assert_eq!(
        b.source, phone.source,
        "requests go to where the REGISTER came from"
    );
    assert_eq!(b.call_id, "joey-call-id@10.0.0.5");
    assert_eq!(b.cseq, 2);
    assert_eq!(b.expires, t0 + Duration::from_secs(3600));

    let mut md5_phone = Phone::new("ann", "anns-pw", "198.51.100.8:5060");
    md5_phone.pick = 1;
    let outcome = md5_phone.register(&mut reg, t0, "Contact: <sip:ann@10.0.0.6>");
    expect_ok(&outcome);
    assert_eq!(reg.contacts(t0, "ann").len(), 1);
    assert_eq!(reg.len(), 2);
}

#[test]
fn wrong_password_and_unknown_identity_get_the_same_403() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut wrong = Phone::new("joey", "guess", "198.51.100.7:5060");
    let (error, status) = expect_error(&wrong.register(&mut reg, t0, "Contact: <sip:joey@h>"));
    assert_eq!(status, 403);
    assert!(matches!(error, RegisterError::BadCredentials(_)));

    let mut stranger = Phone::new("mallory", "x", "198.51.100.9:5060");
    let outcome = stranger.register(&mut reg, t0, "Contact: <sip:mallory@h>");
    let (error, status) = expect_error(&outcome);
    assert_eq!(status, 403);
    assert!(matches!(error, RegisterError::BadCredentials(_)));
    assert_eq!(
        outcome.response().status_code,
        wrong.register(&mut reg, t0, "").response().status_code,
        "same status line for both"
    );
    assert!(reg.is_empty());
}

#[test]
fn authenticated_user_may_only_register_itself() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut ann = Phone::new("ann", "anns-pw", "198.51.100.8:5060");
    ann.aor_user = "joey";
    let outcome = ann.register(&mut reg, t0, "Contact: <sip:ann@h>");
    let (error, status) = expect_error(&outcome);
    assert_eq!(status, 403);
    assert!(
        matches!(error, RegisterError::IdentityMismatch { authenticated, identity }
        if authenticated == "ann" && identity == "joey")
    );
    assert!(reg.contacts(t0, "joey").is_empty());

    // A To without a user part names no identity.
    let mut nobody = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    nobody.aor_user = "";
    let outcome = nobody.register(&mut reg, t0, "Contact: <sip:joey@h>");
    assert_eq!(expect_error(&outcome), (RegisterError::NoIdentity, 404));
}

#[test]
fn old_nonce_gets_a_stale_challenge_and_a_foreign_one_a_fresh_challenge() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    expect_ok(&phone.register(&mut reg, t0, "Contact: <sip:joey@h>"));

    // Ten minutes later the nonce is past its 300 s lifetime.
    let later = t0 + Duration::from_secs(600);
    let text = phone.text("Contact: <sip:joey@h>");
    let outcome = reg.handle_register(later, &parse_request(&text), phone.source, clients);
    let RegisterOutcome::Challenged {
        stale: true,
        response,
    } = &outcome
    else {
        panic!("expected a stale challenge, got {outcome:?}");
    };
    let offered = headers_named(response, |h| matches!(h, Header::WwwAuthenticate(_)));
    assert!(offered.iter().all(|c| c.contains("stale=true")));
    // The phone answers the new nonce without asking its user.
    phone.challenge = Some(Challenge::parse(offered[0]).unwrap());
    let text = phone.text("Contact: <sip:joey@h>");
    expect_ok(&reg.handle_register(later, &parse_request(&text), phone.source, clients));

    // A nonce minted by another key (a registrar restarted with a new key).
    let mut other = Registrar::new(RegistrarConfig::new(REALM), [9; 32], t0, IdGen::seeded(1));
    let mut phone2 = Phone::new("ann", "anns-pw", "198.51.100.8:5060");
    expect_ok(&phone2.register(&mut other, t0, "Contact: <sip:ann@h>"));
    let text = phone2.text("Contact: <sip:ann@h>");
    let outcome = reg.handle_register(t0, &parse_request(&text), phone2.source, clients);
    assert!(matches!(
        outcome,
        RegisterOutcome::Challenged { stale: false, .. }
    ));
}

#[test]
fn replayed_request_is_challenged_not_accepted() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    phone.register(&mut reg, t0, "");
    let text = phone.text("Contact: <sip:joey@h>");
    expect_ok(&reg.handle_register(t0, &parse_request(&text), phone.source, clients));
    // The same bytes again (same nonce-count): replay detection answers 401.
    let outcome = reg.handle_register(t0, &parse_request(&text), phone.source, clients);
    assert!(matches!(outcome, RegisterOutcome::Challenged { .. }));
}

#[test]
fn foreign_domain_gets_404_and_require_gets_420() {
    let t0 = Instant::now();
    let mut config = RegistrarConfig::new(REALM);
    config.domains = vec!["pbx.example".into()];
    let mut reg = registrar_with(config, t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    let (error, status) = expect_error(&phone.register(&mut reg, t0, "Contact: <sip:joey@h>"));
    assert_eq!(status, 404);
    assert_eq!(error, RegisterError::DomainNotServed(REALM.into()));

    let mut reg = registrar(t0);
    let outcome = phone.register(&mut reg, t0, "Contact: <sip:joey@h>\nRequire: gruu, path");
    let (error, status) = expect_error(&outcome);
    assert_eq!(status, 420);
    assert_eq!(
        error,
        RegisterError::UnsupportedExtension("gruu, path".into())
    );
    assert_eq!(
        outcome.response().headers.named("Unsupported"),
        Some("gruu, path")
    );
}

#[test]
fn expiry_from_contact_param_then_expires_header_then_default_and_clamped() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    let outcome = phone.register(
        &mut reg,
        t0,
        "Contact: <sip:joey@10.0.0.5:5062>;expires=120, <sip:joey@10.0.0.5:5063>\n\
         Contact: <sip:joey@10.0.0.5:5064>;expires=86400\n\
         Expires: 600",
    );
    let response = expect_ok(&outcome);
    let mut listed = contacts_of(response);
    listed.sort();
    assert_eq!(
        listed,
        [
            "<sip:joey@10.0.0.5:5062>;expires=120",
            "<sip:joey@10.0.0.5:5063>;expires=600",
            "<sip:joey@10.0.0.5:5064>;expires=3600",
        ]
    );
    // No Expires at all: the default, 3600 s.
    let mut ann = Phone::new("ann", "anns-pw", "198.51.100.8:5060");
    ann.register(&mut reg, t0, "Contact: <sip:ann@10.0.0.6>");
    assert_eq!(
        reg.contacts(t0, "ann")[0].expires,
        t0 + Duration::from_secs(3600)
    );
    // The 200 of a later request reports the time left, rounded up.
    let later = t0 + Duration::from_millis(100_500);
    let response = expect_ok(&phone.register(&mut reg, later, "")).clone();
    let mut listed = contacts_of(&response);
    listed.sort();
    assert_eq!(listed[0], "<sip:joey@10.0.0.5:5062>;expires=20");
}

#[test]
fn too_brief_expiry_gets_423_with_min_expires_and_changes_nothing() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    let outcome = phone.register(
        &mut reg,
        t0,
        "Contact: <sip:joey@a>;expires=3600, <sip:joey@b>\nExpires: 30",
    );
    let (error, status) = expect_error(&outcome);
    assert_eq!(status, 423);
    assert_eq!(
        error,
        RegisterError::IntervalTooBrief {
            requested: 30,
            min: 60
        }
    );
    assert_eq!(outcome.response().headers.named("Min-Expires"), Some("60"));
    assert!(reg.is_empty(), "the update is atomic: no contact was bound");
    // Retrying with Min-Expires succeeds; 60 s is allowed.
    expect_ok(&phone.register(&mut reg, t0, "Contact: <sip:joey@b>\nExpires: 60"));
    assert_eq!(
        reg.contacts(t0, "joey")[0].expires,
        t0 + Duration::from_secs(60)
    );
}

#[test]
fn wildcard_with_expires_zero_removes_every_binding() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut desk = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    let mut mobile = Phone::new("joey", "joeys-pw", "203.0.113.9:3000");
    mobile.call_id = "mobile-call-id".into();
    desk.register(&mut reg, t0, "Contact: <sip:joey@desk>");
    mobile.register(&mut reg, t0, "Contact: <sip:joey@mobile>");
    assert_eq!(reg.contacts(t0, "joey").len(), 2);

    for bad in [
        "Contact: *\nExpires: 10",
        "Contact: *",
        "Contact: *, <sip:joey@x>\nExpires: 0",
    ] {
        let (error, status) = expect_error(&desk.register(&mut reg, t0, bad));
        assert_eq!(
            (error, status),
            (RegisterError::WildcardMisuse, 400),
            "{bad}"
        );
    }
    assert_eq!(reg.contacts(t0, "joey").len(), 2);

    let response = expect_ok(&desk.register(&mut reg, t0, "Contact: *\nExpires: 0")).clone();
    assert!(contacts_of(&response).is_empty());
    assert!(reg.contacts(t0, "joey").is_empty());
    assert!(reg.is_empty());
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn same_call_id_with_cseq_not_above_the_stored_one_gets_500() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    phone.register(&mut reg, t0, "Contact: <sip:joey@a>\nExpires: 600");
    let stored = reg.contacts(t0, "joey")[0].cseq;

    // A reordered, older REGISTER of the same Call-ID arrives late.
    for cseq in [stored, stored - 1] {
        phone.cseq = cseq - 1;
        let outcome = phone.register(&mut reg, t0, "Contact: <sip:joey@a>\nExpires: 0");
        let (error, status) = expect_error(&outcome);
        assert_eq!(status, 500);
        assert_eq!(error, RegisterError::OutOfOrder { cseq, stored });
    }
    // Also for `*`.
    phone.cseq = stored - 1;
    let (_, status) = expect_error(&phone.register(&mut reg, t0, "Contact: *\nExpires: 0"));
    assert_eq!(status, 500);
    assert_eq!(reg.contacts(t0, "joey").len(), 1, "nothing removed");

    // Another Call-ID (the phone rebooted) may use any CSeq: it replaces the binding.
    let mut rebooted = Phone::new("joey", "joeys-pw", "198.51.100.7:5070");
    rebooted.call_id = "after-reboot".into();
    rebooted.register(&mut reg, t0, "Contact: <sip:joey@a>\nExpires: 900");
    let bindings = reg.contacts(t0, "joey");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].call_id, "after-reboot");
    assert_eq!(bindings[0].source, rebooted.source);
    assert_eq!(bindings[0].expires, t0 + Duration::from_secs(900));
}

#[test]
fn expires_zero_removes_one_contact_and_a_query_lists_the_rest() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    phone.register(&mut reg, t0, "Contact: <sip:joey@a>, <sip:joey@b>");
    // URI comparison per §19.1.4: host case-insensitive.
    let response =
        expect_ok(&phone.register(&mut reg, t0, "Contact: <sip:joey@A>;expires=0")).clone();
    assert_eq!(contacts_of(&response), ["<sip:joey@b>;expires=3600"]);
    // No Contact: a query, nothing changes.
    let response = expect_ok(&phone.register(&mut reg, t0, "")).clone();
    assert_eq!(contacts_of(&response), ["<sip:joey@b>;expires=3600"]);
    assert_eq!(reg.len(), 1);
}

#[test]
fn bindings_expire_on_time() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut joey = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    let mut ann = Phone::new("ann", "anns-pw", "198.51.100.8:5060");
    joey.register(
        &mut reg,
        t0,
        "Contact: <sip:joey@a>;expires=60, <sip:joey@b>;expires=120",
    );
    ann.register(
        &mut reg,
        t0 + Duration::from_secs(10),
        "Contact: <sip:ann@a>;expires=60",
    );
    assert_eq!(reg.len(), 3);
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(60)));

    let at60 = t0 + Duration::from_secs(60);
    // At its expiry instant a binding is no longer offered, even before `expire`.
    assert_eq!(reg.contacts(at60, "joey").len(), 1);
    assert_eq!(reg.expire(at60 - Duration::from_millis(1)), 0);
    assert_eq!(reg.expire(at60), 1);
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(70)));
    assert_eq!(reg.expire(t0 + Duration::from_secs(200)), 2);
    assert!(reg.is_empty());
    assert!(reg.contacts(t0, "joey").is_empty());
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn refresh_moves_the_expiry_in_the_timer_index() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    phone.register(&mut reg, t0, "Contact: <sip:joey@a>;expires=60");
    let t30 = t0 + Duration::from_secs(30);
    phone.register(&mut reg, t30, "Contact: <sip:joey@a>;expires=60");
    assert_eq!(reg.len(), 1);
    assert_eq!(reg.poll_timeout(), Some(t30 + Duration::from_secs(60)));
    assert_eq!(reg.expire(t0 + Duration::from_secs(61)), 0);
    assert_eq!(reg.contacts(t0 + Duration::from_secs(61), "joey").len(), 1);
}

#[test]
fn per_identity_cap_evicts_the_soonest_expiring_and_the_total_cap_answers_503() {
    let t0 = Instant::now();
    let mut config = RegistrarConfig::new(REALM);
    config.max_bindings_per_identity = 2;
    config.max_bindings = 3;
    let mut reg = registrar_with(config, t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    phone.register(&mut reg, t0, "Contact: <sip:joey@a>;expires=600");
    phone.register(&mut reg, t0, "Contact: <sip:joey@b>;expires=300");
    phone.register(&mut reg, t0, "Contact: <sip:joey@c>;expires=900");
    let mut left: Vec<String> = reg
        .contacts(t0, "joey")
        .into_iter()
        .map(|b| b.contact)
        .collect();
    left.sort();
    assert_eq!(left, ["sip:joey@a", "sip:joey@c"]);
    assert_eq!(reg.len(), 2);

    let outcome = phone.register(
        &mut reg,
        t0,
        "Contact: <sip:joey@x>, <sip:joey@y>, <sip:joey@z>",
    );
    let (error, status) = expect_error(&outcome);
    assert_eq!((error, status), (RegisterError::TooManyContacts(2), 403));

    let mut ann = Phone::new("ann", "anns-pw", "198.51.100.8:5060");
    ann.register(&mut reg, t0, "Contact: <sip:ann@a>");
    let outcome = ann.register(&mut reg, t0, "Contact: <sip:ann@b>");
    let (error, status) = expect_error(&outcome);
    assert_eq!((error, status), (RegisterError::StoreFull, 503));
    assert!(outcome.response().headers.named("Retry-After").is_some());
    // Refreshing an existing binding still works when the store is full.
    expect_ok(&ann.register(&mut reg, t0, "Contact: <sip:ann@a>;expires=120"));
    assert_eq!(reg.len(), 3);
}

#[test]
fn same_instance_replaces_the_binding_and_q_orders_contacts() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    let instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
    phone.register(
        &mut reg,
        t0,
        &format!("Contact: <sip:joey@10.0.0.5:5062>;+sip.instance=\"{instance}\";q=0.5"),
    );
    phone.register(&mut reg, t0, "Contact: <sip:joey@desk>;q=0.9");
    // The phone moved networks: same instance, new contact.
    let response = expect_ok(&phone.register(
        &mut reg,
        t0,
        &format!("Contact: <sip:joey@10.1.0.9:5062>;+sip.instance=\"{instance}\";q=0.5"),
    ))
    .clone();
    let bindings = reg.contacts(t0, "joey");
    assert_eq!(bindings.len(), 2);
    assert_eq!(bindings[0].contact, "sip:joey@desk");
    assert_eq!(bindings[0].q, Some(900));
    assert_eq!(bindings[1].contact, "sip:joey@10.1.0.9:5062");
    assert_eq!(bindings[1].instance.as_deref(), Some(instance));
    assert!(contacts_of(&response).contains(&&*format!(
        "<sip:joey@10.1.0.9:5062>;expires=3600;q=0.500;+sip.instance=\"{instance}\""
    )));
}

#[test]
fn malformed_requests_get_400_or_405() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    for bad in ["Contact: <tel:+15551234567>", "Contact: <sip:joey@a"] {
        let (error, status) = expect_error(&phone.register(&mut reg, t0, bad));
        assert_eq!(
            (error, status),
            (RegisterError::Malformed("Contact"), 400),
            "{bad}"
        );
    }
    let options = parse_request(
        "OPTIONS sip:tandem.example SIP/2.0\n\
         Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-o\n\
         From: <sip:joey@tandem.example>;tag=1\n\
         To: <sip:joey@tandem.example>\n\
         Call-ID: o1\n\
         CSeq: 1 OPTIONS\n\
         Content-Length: 0\n\n",
    );
    let outcome = reg.handle_register(t0, &options, phone.source, clients);
    let (error, status) = expect_error(&outcome);
    assert_eq!((error, status), (RegisterError::NotRegister, 405));
    assert_eq!(outcome.response().headers.named("Allow"), Some("REGISTER"));
    assert!(reg.is_empty());
}

#[test]
fn source_peer_is_kept_per_binding_for_tcp_too() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    phone.source = Peer {
        transport: Transport::Tcp,
        addr: "198.51.100.7:50111".parse().unwrap(),
    };
    phone.register(
        &mut reg,
        t0,
        "Contact: <sip:joey@192.168.1.20:5060;transport=tcp>",
    );
    let b = &reg.contacts(t0, "joey")[0];
    assert_eq!(b.source.transport, Transport::Tcp);
    assert_eq!(b.source.addr.port(), 50111);
    assert_eq!(b.contact, "sip:joey@192.168.1.20:5060;transport=tcp");
}

#[test]
fn digest_uri_as_written_by_the_phone_is_accepted() {
    // rsip renders `transport=udp` as `transport=UDP`; the phone hashed its own spelling.
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut phone = Phone::new("joey", "joeys-pw", "198.51.100.7:5060");
    phone.request_uri = format!("sip:{REALM}:5060;transport=udp");
    expect_ok(&phone.register(&mut reg, t0, "Contact: <sip:joey@10.0.0.5>"));
    // A digest uri naming another resource is still refused (challenged again).
    let mut other = Phone::new("ann", "anns-pw", "198.51.100.8:5060");
    other.register(&mut reg, t0, "");
    other.request_uri = "sip:elsewhere.example".into();
    let text = other.text("Contact: <sip:ann@h>").replace(
        "REGISTER sip:elsewhere.example SIP/2.0",
        &format!("REGISTER sip:{REALM} SIP/2.0"),
    );
    let outcome = reg.handle_register(t0, &parse_request(&text), other.source, clients);
    assert!(matches!(outcome, RegisterOutcome::Challenged { .. }));
}

fn client_invite(authorization: Option<&str>) -> Request {
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\n"));
    parse_request(&format!(
        "INVITE sip:+15550001000@tandem.example:5080 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bKci1
Max-Forwards: 70
From: <sip:joey@tandem.example>;tag=j1
To: <sip:+15550001000@tandem.example>
Call-ID: client-invite-1
CSeq: 2 INVITE
Contact: <sip:joey@192.0.2.50:5062>
{auth}Content-Length: 0

"
    ))
}

/// The digest of an INVITE's credentials, computed with `digest_uri`.
fn invite_credentials(
    client: &mut DigestClient,
    challenge: &Response,
    password: &str,
    digest_uri: &str,
) -> String {
    let www = headers_named(challenge, |h| matches!(h, Header::WwwAuthenticate(_)));
    let challenge = Challenge::parse(www[0]).unwrap();
    client
        .authorize(
            &challenge,
            &DigestRequest {
                method: "INVITE",
                uri: digest_uri,
                body: b"",
            },
            "joey",
            password,
            "c0ffee",
        )
        .unwrap()
        .to_string()
}

#[test]
fn client_invite_is_challenged_then_authenticated_with_request_or_domain_uri() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let challenge = reg
        .authenticate(t0, &client_invite(None), clients)
        .unwrap_err();
    assert_eq!(challenge.status_code.code(), 401);
    let mut phone = DigestClient::new();
    for uri in [
        "sip:+15550001000@tandem.example:5080",
        "sip:tandem.example:5080",
    ] {
        let creds = invite_credentials(&mut phone, &challenge, "joeys-pw", uri);
        let who = reg.authenticate(t0, &client_invite(Some(&creds)), clients);
        assert_eq!(
            who.map_err(|r| r.status_code.code()),
            Ok("joey".to_owned()),
            "{uri}"
        );
    }
    // A digest over another host's URI is not accepted.
    let creds = invite_credentials(&mut phone, &challenge, "joeys-pw", "sip:elsewhere.example");
    assert!(
        reg.authenticate(t0, &client_invite(Some(&creds)), clients)
            .is_err()
    );
}

#[test]
fn client_invite_with_a_wrong_password_gets_403() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let challenge = reg
        .authenticate(t0, &client_invite(None), clients)
        .unwrap_err();
    let creds = invite_credentials(
        &mut DigestClient::new(),
        &challenge,
        "guess",
        "sip:+15550001000@tandem.example:5080",
    );
    let r = reg
        .authenticate(t0, &client_invite(Some(&creds)), clients)
        .unwrap_err();
    assert_eq!(r.status_code.code(), 403);
}

/// Regression (review of the issue "Hostile networks and overload"): a
/// throttle of failed attempts counted the first `Authorization` header's
/// username, so a decoy header in front (another realm, a made-up user)
/// took the blame while the real header tested a client's password. The
/// username to count is the one the registrar verifies.
#[test]
fn the_username_to_count_is_the_one_verified_not_a_decoy() {
    let t0 = Instant::now();
    let reg = registrar(t0);
    let request = parse_request(&format!(
        "REGISTER sip:{REALM} SIP/2.0\n\
         Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-decoy\n\
         Max-Forwards: 70\n\
         From: <sip:joey@{REALM}>;tag=ph1\n\
         To: <sip:joey@{REALM}>\n\
         Call-ID: decoy@10.0.0.5\n\
         CSeq: 1 REGISTER\n\
         Authorization: Digest username=\"decoy-1\", realm=\"elsewhere\", nonce=\"n\", uri=\"sip:{REALM}\", response=\"00\"\n\
         Authorization: Digest username=\"joey\", realm=\"{REALM}\", nonce=\"n\", uri=\"sip:{REALM}\", response=\"00\"\n\
         Content-Length: 0\n\n"
    ));
    assert_eq!(
        reg.authorization_username(&request).as_deref(),
        Some("joey")
    );
}
