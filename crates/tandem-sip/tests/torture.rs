//! RFC 4475 torture messages (fixtures/sip/torture, described by its
//! manifest.toml): valid ones parse, invalid ones get the answer the RFC
//! names or are dropped, and none panics.

use std::path::PathBuf;

use serde::Deserialize;
use tandem_sip::message::{error_response, parse};

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

/// Where Tandem deliberately answers differently from the manifest, and why.
const DEVIATIONS: &[(&str, u16, &str)] = &[
    (
        "intmeth",
        501,
        "rsip's Method enum is closed: an unknown method cannot be represented, so the \
         parser answers 501 Not Implemented, which is what a UAS answers to it anyway",
    ),
    (
        "esc02",
        501,
        "the method RE%47IST%45R is not REGISTER (escapes are not decoded in methods): \
         an unknown method, answered 501 as for intmeth",
    ),
    (
        "semiuri",
        400,
        "rsip 0.4 cannot parse a Request-URI whose user part holds ';' \
         (sip:user;par=u%40example.net@example.com): answered 400 rather than misrouted",
    ),
];

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
        if let Some((_, status, why)) = DEVIATIONS.iter().find(|(n, _, _)| *n == e.name) {
            let err = result.expect_err(why);
            assert_eq!(
                answer_status(&raw, &err),
                Some(*status),
                "{}: {why}",
                e.name
            );
            continue;
        }
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
