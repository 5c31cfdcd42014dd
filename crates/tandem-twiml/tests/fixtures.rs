//! The example documents in `fixtures/twiml/` that the default config points
//! at parse, and run as their comments say.

use std::path::PathBuf;

use tandem_twiml::{
    Command, Event, Interpreter, Method, Noun, Outcome, RecordMode, ScreeningVerdict, Verb, parse,
    parse_screening,
};
use url::Url;

fn fixture_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/twiml");
    let dir = std::fs::canonicalize(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn file_url(name: &str) -> Url {
    let path = fixture_path(name);
    Url::from_file_path(&path).unwrap_or_else(|()| panic!("{} is not absolute", path.display()))
}

fn drain(i: &mut Interpreter) -> Vec<Command> {
    std::iter::from_fn(|| i.poll_command()).collect()
}

#[test]
fn simultaneous_ring_dials_three_branches() {
    let doc = parse(&read("simultaneous-ring.xml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(doc.notices.is_empty(), "{:?}", doc.notices);
    let Some(Verb::Dial(dial)) = doc.verbs.first() else {
        panic!("{:?}", doc.verbs)
    };
    assert_eq!(dial.timeout, 20);
    let kinds: Vec<_> = dial
        .nouns
        .iter()
        .map(|n| match n {
            Noun::Sip(s) => s.uri.clone(),
            Noun::Client(c) => format!("client:{}", c.identity),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "sip:alice@127.0.0.1:5081",
            "sip:bob@127.0.0.1:5082",
            "client:carol"
        ]
    );
}

#[test]
fn recorded_call_records_dual_channel() {
    let doc = parse(&read("recorded-call.xml")).unwrap_or_else(|e| panic!("{e}"));
    let Some(Verb::Dial(dial)) = doc.verbs.first() else {
        panic!("{:?}", doc.verbs)
    };
    assert_eq!(dial.record, RecordMode::RecordFromAnswerDual);
    assert_eq!(dial.time_limit, 3600);
}

#[test]
fn screened_ring_runs_screen_xml_on_the_callee_and_accepts_on_a_key() {
    let doc = parse(&read("screened-ring.xml")).unwrap_or_else(|e| panic!("{e}"));
    let mut call = Interpreter::new(doc, Some(file_url("screened-ring.xml")));
    let cmds = drain(&mut call);
    // answerOnBridge: the caller keeps ringing, no Answer.
    let [Command::Dial(dial)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    let screen_url = dial.nouns[0]
        .options()
        .and_then(|o| o.url.clone())
        .unwrap_or_default();
    assert_eq!(screen_url, file_url("screen.xml").as_str());

    // The engine screens the answered branch.
    let mut screen = Interpreter::screening(
        Url::parse(&screen_url).unwrap_or_else(|e| panic!("{e}")),
        Method::Post,
    );
    assert_eq!(drain(&mut screen).len(), 1);
    screen
        .handle(Event::Fetched {
            body: read("screen.xml"),
            final_url: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&drain(&mut screen)[..], [Command::Gather(_)]));
    screen
        .handle(Event::Digits {
            digits: "1".into(),
            finished_on_key: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let cmds = drain(&mut screen);
    let [Command::Fetch(f)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(f.url, file_url("screen-accept.xml"));
    screen
        .handle(Event::Fetched {
            body: read("screen-accept.xml"),
            final_url: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&drain(&mut screen)[..], [Command::Say(_)]));
    screen
        .handle(Event::VerbDone)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        drain(&mut screen),
        vec![Command::Screened(ScreeningVerdict::Accepted)]
    );
    assert_eq!(
        screen.outcome(),
        Some(Outcome::Screened(ScreeningVerdict::Accepted))
    );
}

#[test]
fn screen_xml_declines_without_input() {
    let doc = parse_screening(&read("screen.xml")).unwrap_or_else(|e| panic!("{e}"));
    let mut screen = Interpreter::screening_document(doc, Some(file_url("screen.xml")));
    drain(&mut screen);
    screen
        .handle(Event::GatherTimeout)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        drain(&mut screen),
        vec![Command::Screened(ScreeningVerdict::Declined)]
    );
}

#[test]
fn every_fixture_parses() {
    let dir = fixture_path("");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut seen = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".xml") {
            continue;
        }
        let text = read(&name);
        let parsed = if name.starts_with("screen") && name != "screened-ring.xml" {
            parse_screening(&text)
        } else {
            parse(&text)
        };
        parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} fixtures found");
}

#[test]
fn voicemail_records_after_the_greeting_and_says_goodbye_when_empty() {
    let doc = parse(&read("voicemail.xml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(doc.notices.is_empty(), "{:?}", doc.notices);
    let mut i = Interpreter::new(doc, Some(Url::parse("http://app.example/vm.xml").unwrap()));
    let cmds = drain(&mut i);
    assert!(
        matches!(&cmds[..], [Command::Answer, Command::Say(_)]),
        "{cmds:?}"
    );
    i.handle(Event::VerbDone).unwrap();
    let cmds = drain(&mut i);
    let [Command::Record(r)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        r.action.as_deref(),
        Some("http://app.example/voicemail/done")
    );
    assert_eq!(
        (r.finish_on_key.as_str(), r.timeout, r.max_length),
        ("#", 3, 120)
    );
    i.handle(Event::Recorded(tandem_twiml::RecordOutcome::default()))
        .unwrap();
    let cmds = drain(&mut i);
    assert!(
        matches!(&cmds[..], [Command::Say(s)] if s.text.starts_with("No message")),
        "{cmds:?}"
    );
}
