//! RFC 4475 torture messages (fixtures/sip/torture, described by its
//! manifest.toml): valid ones parse, invalid ones get the answer the RFC
//! names or are dropped, and none panics.

use std::path::PathBuf;

use serde::Deserialize;
use tandem_sip::message::{Method, SipMessage, error_response, parse, to_bytes};

#[derive(Deserialize)]
struct Manifest {
    message: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    kind: String,
    expect: String,
    status: Option<u16>,
    layer: String,
    alternative: Option<String>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sip/torture")
}

fn answer_status(raw: &[u8], err: &tandem_sip::ParseError) -> Option<u16> {
    let resp = error_response(raw, err)?;
    let text = std::str::from_utf8(&resp).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

#[test]
fn rfc4475_torture_messages() {
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(dir().join("manifest.toml")).unwrap()).unwrap();
    assert!(
        manifest.message.len() >= 45,
        "the whole RFC 4475 set is present"
    );
    let mut failures = Vec::new();
    for e in &manifest.message {
        let raw = std::fs::read(dir().join(format!("{}.sip", e.name))).unwrap();
        let result = std::panic::catch_unwind(|| parse(&raw));
        let Ok(result) = result else {
            failures.push(format!("{}: parser panicked", e.name));
            continue;
        };
        let alt_parse = e.alternative.as_deref() == Some("parse");
        let alt_400 = e.alternative.as_deref() == Some("reject-400");
        let verdict = match (e.expect.as_str(), e.layer.as_str(), &result) {
            ("parse", "parser" | "transaction", Ok(_)) => Ok(()),
            ("parse", "application", Ok(_)) => Ok(()),
            ("parse", "application", Err(err)) if alt_400 => match answer_status(&raw, err) {
                Some(400) => Ok(()),
                other => Err(format!("rejected with {other:?} ({err})")),
            },
            ("parse", _, Err(err)) => Err(format!("should parse, got {err}")),
            ("reject-400", "parser", Ok(_)) if alt_parse => Ok(()),
            ("reject-400", "parser", Ok(_)) => Err("should be rejected, parsed".into()),
            ("reject-400", "application", Ok(_)) => Ok(()),
            ("reject-400", _, Err(err)) => {
                let got = answer_status(&raw, err);
                if got == e.status || (alt_400 && got == Some(400)) {
                    Ok(())
                } else {
                    Err(format!("answered {got:?} ({err}), want {:?}", e.status))
                }
            }
            ("drop", _, Err(err)) => match error_response(&raw, err) {
                None => Ok(()),
                Some(_) => Err(format!("should be dropped, answered ({err})")),
            },
            ("drop", _, Ok(_)) => Err("should be dropped, parsed".into()),
            (x, l, _) => Err(format!("unknown expectation {x}/{l}")),
        };
        if let Err(why) = verdict {
            failures.push(format!("{} ({}): {why}", e.name, e.kind));
        }
    }
    assert!(
        failures.is_empty(),
        "torture failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn truncated_prefixes_never_panic() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "sip") {
            let raw = std::fs::read(&path).unwrap();
            for n in (0..raw.len()).step_by(7) {
                let r = parse(&raw[..n]);
                if let Err(e) = r {
                    let _ = error_response(&raw[..n], &e);
                }
            }
        }
    }
}

/// The three messages rsip's own parser could not read: any token is a
/// method, escapes are not decoded in a method, and a user part may hold
/// `;` (RFC 4475 §3.1.1.2, §3.1.1.5, §3.1.1.9).
#[test]
fn extension_methods_and_semicolons_in_user_parts_parse() {
    let read = |name: &str| std::fs::read(dir().join(format!("{name}.sip"))).unwrap();
    let request = |name: &str| match parse(&read(name)).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("{name} is a request"),
    };
    let intmeth = request("intmeth");
    assert_eq!(
        intmeth.method,
        Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    assert_eq!(
        intmeth.uri.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    let esc02 = request("esc02");
    assert_eq!(esc02.method, Method::Other("RE%47IST%45R".into()));
    let semiuri = request("semiuri");
    assert_eq!(semiuri.method, Method::Options);
    assert_eq!(semiuri.uri.user(), Some("user;par=u%40example.net"));
    assert_eq!(semiuri.uri.host().to_string(), "example.com");
    // And it prints back as it came.
    let text = String::from_utf8(to_bytes(&SipMessage::Request(semiuri)).to_vec()).unwrap();
    assert!(
        text.starts_with("OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"),
        "{text}"
    );
}

/// An IPv6 reference in the Request-URI (RFC 5118 §4.1) is read and
/// printed back in brackets.
#[test]
fn ipv6_request_uris_parse() {
    let raw = "OPTIONS sip:[2001:db8::10]:5070;transport=udp SIP/2.0\r\n\
               Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\r\n\
               To: <sip:[2001:db8::10]:5070>\r\nFrom: <sip:user@example.net>;tag=81x2\r\n\
               Call-ID: SSG9559905523997077@hlau_4100\r\nCSeq: 1 OPTIONS\r\n\
               Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let SipMessage::Request(r) = parse(raw.as_bytes()).unwrap() else {
        panic!("a request")
    };
    assert_eq!(
        r.uri.host(),
        &rsip::Host::IpAddr("2001:db8::10".parse().unwrap())
    );
    assert_eq!(r.uri.port().map(|p| *p.value()), Some(5070));
    let text = String::from_utf8(to_bytes(&SipMessage::Request(r)).to_vec()).unwrap();
    assert!(
        text.starts_with("OPTIONS sip:[2001:db8::10]:5070;transport=UDP SIP/2.0\r\n"),
        "{text}"
    );
}
