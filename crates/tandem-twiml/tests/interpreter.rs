//! The interpreter's call flows, driven event by event: Dial with and
//! without action, answerOnBridge, Reject, Redirect and its loop bound,
//! Gather with and without input, screening, and broken applications.

use std::time::Duration;

use tandem_twiml::{
    APPLICATION_ERROR_TEXT, Command, DialCallStatus, DialOutcome, Event, FetchReason, FetchRequest,
    InterpretError, Interpreter, MAX_CONSECUTIVE_REDIRECTS, Method, Noun, Outcome, RecordOutcome,
    RejectReason, Say, ScreeningVerdict, Trim, parse,
};
use url::Url;

const BASE: &str = "http://app.example/voice.xml";

fn url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn start(xml: &str) -> Interpreter {
    let doc = parse(xml).unwrap_or_else(|e| panic!("{e}"));
    Interpreter::new(doc, Some(url(BASE)))
}

fn drain(i: &mut Interpreter) -> Vec<Command> {
    std::iter::from_fn(|| i.poll_command()).collect()
}

fn feed(i: &mut Interpreter, event: Event) -> Vec<Command> {
    i.handle(event).unwrap_or_else(|e| panic!("{e}"));
    drain(i)
}

fn say(text: &str) -> Command {
    Command::Say(Say {
        text: text.into(),
        ..Say::default()
    })
}

fn outcome(status: DialCallStatus, bridged: bool) -> Event {
    Event::DialOutcome(DialOutcome {
        status,
        call_sid: Some("CA0123456789abcdef0123456789abcdef".into()),
        duration: Some(if bridged { 42 } else { 0 }),
        bridged,
        recording_url: None,
        extra: Vec::new(),
    })
}

fn fetched(xml: &str) -> Event {
    Event::Fetched {
        body: xml.into(),
        final_url: None,
    }
}

fn names(cmds: &[Command]) -> Vec<&'static str> {
    cmds.iter()
        .map(|c| match c {
            Command::Answer => "Answer",
            Command::Say(_) => "Say",
            Command::Play(_) => "Play",
            Command::Pause { .. } => "Pause",
            Command::Gather(_) => "Gather",
            Command::Dial(_) => "Dial",
            Command::Record(_) => "Record",
            Command::Enqueue(_) => "Enqueue",
            Command::Hangup => "Hangup",
            Command::Reject { .. } => "Reject",
            Command::Fetch(_) => "Fetch",
            Command::Screened(_) => "Screened",
        })
        .collect()
}

fn fetch_of(cmds: &[Command]) -> FetchRequest {
    match cmds {
        [Command::Fetch(f)] => f.clone(),
        other => panic!("expected one Fetch, got {other:?}"),
    }
}

#[test]
fn dial_without_action_continues_with_the_next_verb_then_hangs_up() {
    let mut i = start("<Response><Dial>415-123-4567</Dial><Say>Goodbye</Say></Response>");
    let cmds = drain(&mut i);
    assert_eq!(names(&cmds), ["Answer", "Dial"]);
    let Command::Dial(dial) = &cmds[1] else {
        panic!()
    };
    assert!(matches!(&dial.nouns[..], [Noun::Number(n)] if n.number.as_str() == "+14151234567"));
    assert_eq!(
        feed(&mut i, outcome(DialCallStatus::Busy, false)),
        vec![say("Goodbye")]
    );
    assert_eq!(feed(&mut i, Event::VerbDone), vec![Command::Hangup]);
    assert_eq!(i.outcome(), Some(Outcome::HungUp));
}

#[test]
fn dial_with_action_fetches_it_with_the_dial_parameters_and_replaces_the_document() {
    let mut i = start(
        r#"<Response><Dial action="/handleDialCallStatus" method="GET">415-123-4567</Dial><Say>I am unreachable</Say></Response>"#,
    );
    assert_eq!(names(&drain(&mut i)), ["Answer", "Dial"]);
    let event = Event::DialOutcome(DialOutcome {
        status: DialCallStatus::Completed,
        call_sid: Some("CAchild".into()),
        duration: Some(42),
        bridged: true,
        recording_url: Some("http://tandem.local/rec/RE1.wav".into()),
        extra: Vec::new(),
    });
    let fetch = fetch_of(&feed(&mut i, event));
    assert_eq!(
        fetch.url.as_str(),
        "http://app.example/handleDialCallStatus"
    );
    assert_eq!(fetch.method, Method::Get);
    assert_eq!(fetch.reason, FetchReason::DialAction);
    let params: Vec<(&str, &str)> = fetch
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        params,
        [
            ("DialCallStatus", "completed"),
            ("DialCallSid", "CAchild"),
            ("DialCallDuration", "42"),
            ("DialBridged", "true"),
            ("RecordingUrl", "http://tandem.local/rec/RE1.wav"),
        ]
    );
    // The action's response runs; the <Say> after the <Dial> never does.
    assert_eq!(
        feed(&mut i, fetched("<Response><Say>Thanks</Say></Response>")),
        vec![say("Thanks")]
    );
    assert_eq!(
        i.document_url().map(Url::as_str),
        Some("http://app.example/handleDialCallStatus")
    );
    assert_eq!(feed(&mut i, Event::VerbDone), vec![Command::Hangup]);
}

#[test]
fn action_response_that_itself_dials() {
    let mut i =
        start(r#"<Response><Dial action="flows/first" timeout="5">+14155551212</Dial></Response>"#);
    drain(&mut i);
    let first = fetch_of(&feed(&mut i, outcome(DialCallStatus::NoAnswer, false)));
    assert_eq!(first.url.as_str(), "http://app.example/flows/first");
    assert_eq!(
        first.params[0],
        ("DialCallStatus".to_owned(), "no-answer".to_owned())
    );
    let cmds = feed(
        &mut i,
        fetched(
            r#"<Response><Dial action="second"><Number statusCallback="events">+14155550000</Number></Dial></Response>"#,
        ),
    );
    // Already answered: no second Answer. URLs resolve against the action's URL.
    let [Command::Dial(dial)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        dial.action.as_deref(),
        Some("http://app.example/flows/second")
    );
    let Some(Noun::Number(n)) = dial.nouns.first() else {
        panic!()
    };
    assert_eq!(
        n.options.status_callback.as_deref(),
        Some("http://app.example/flows/events")
    );
    let second = fetch_of(&feed(&mut i, outcome(DialCallStatus::Completed, true)));
    assert_eq!(second.url.as_str(), "http://app.example/flows/second");
    assert_eq!(feed(&mut i, fetched("<Response/>")), vec![Command::Hangup]);
}

#[test]
fn answer_on_bridge_as_first_verb_leaves_the_caller_ringing() {
    let mut i = start(
        r#"<Response><Dial answerOnBridge="true">+14155551212</Dial><Say>Bye</Say></Response>"#,
    );
    assert_eq!(names(&drain(&mut i)), ["Dial"]);
    assert!(!i.answered());
    // The bridge answered the caller: the next verb needs no Answer.
    assert_eq!(
        feed(&mut i, outcome(DialCallStatus::Completed, true)),
        vec![say("Bye")]
    );
    assert!(i.answered());
}

#[test]
fn unbridged_answer_on_bridge_dial_answers_only_for_a_later_verb() {
    let mut i = start(
        r#"<Response><Dial answerOnBridge="true">+14155551212</Dial><Say>Sorry</Say></Response>"#,
    );
    drain(&mut i);
    assert_eq!(
        names(&feed(&mut i, outcome(DialCallStatus::Busy, false))),
        ["Answer", "Say"]
    );

    let mut j = start(r#"<Response><Dial answerOnBridge="true">+14155551212</Dial></Response>"#);
    drain(&mut j);
    // Nothing left: the never-answered caller is hung up without an Answer.
    assert_eq!(
        feed(&mut j, outcome(DialCallStatus::NoAnswer, false)),
        vec![Command::Hangup]
    );
}

#[test]
fn reject_as_first_verb_never_answers() {
    let mut i = start(r#"<Response><Reject reason="busy"/><Say>never</Say></Response>"#);
    assert_eq!(
        drain(&mut i),
        vec![Command::Reject {
            reason: RejectReason::Busy
        }]
    );
    assert_eq!(i.outcome(), Some(Outcome::Rejected(RejectReason::Busy)));
    assert_eq!(
        i.handle(Event::VerbDone),
        Err(InterpretError::Finished { event: "VerbDone" })
    );

    let mut j = start("<Response><Reject/></Response>");
    assert_eq!(
        drain(&mut j),
        vec![Command::Reject {
            reason: RejectReason::Rejected
        }]
    );
}

#[test]
fn reject_after_answer_hangs_up() {
    let mut i = start("<Response><Say>Hi</Say><Reject/></Response>");
    assert_eq!(names(&drain(&mut i)), ["Answer", "Say"]);
    assert_eq!(feed(&mut i, Event::VerbDone), vec![Command::Hangup]);
}

#[test]
fn hangup_and_empty_documents_answer_then_hang_up() {
    assert_eq!(
        drain(&mut start("<Response><Hangup/></Response>")),
        vec![Command::Answer, Command::Hangup]
    );
    assert_eq!(
        drain(&mut start("<Response></Response>")),
        vec![Command::Answer, Command::Hangup]
    );
}

#[test]
fn pause_and_play_carry_duration_and_resolved_url() {
    let mut i =
        start(r#"<Response><Pause length="3"/><Play loop="2">audio/hello.wav</Play></Response>"#);
    assert_eq!(
        drain(&mut i),
        vec![
            Command::Answer,
            Command::Pause {
                duration: Duration::from_secs(3)
            }
        ]
    );
    let cmds = feed(&mut i, Event::VerbDone);
    let [Command::Play(play)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        play.url.as_deref(),
        Some("http://app.example/audio/hello.wav")
    );
}

#[test]
fn redirect_fetches_the_next_document() {
    let mut i = start(
        r#"<Response><Redirect method="GET">/next?step=2</Redirect><Say>skipped</Say></Response>"#,
    );
    let fetch = fetch_of(&drain(&mut i));
    assert_eq!(fetch.url.as_str(), "http://app.example/next?step=2");
    assert_eq!(
        (fetch.method, fetch.reason),
        (Method::Get, FetchReason::Redirect)
    );
    assert!(fetch.params.is_empty());
    assert_eq!(
        names(&feed(
            &mut i,
            fetched("<Response><Say>Step two</Say></Response>")
        )),
        ["Answer", "Say"]
    );
}

#[test]
fn redirect_loop_is_bounded() {
    let looping = "<Response><Redirect>/loop</Redirect></Response>";
    let mut i = start(looping);
    let mut fetches = 0;
    let mut cmds = drain(&mut i);
    while let [Command::Fetch(_)] = &cmds[..] {
        fetches += 1;
        assert!(fetches <= 100, "redirect loop not bounded");
        cmds = feed(&mut i, fetched(looping));
    }
    assert_eq!(fetches, MAX_CONSECUTIVE_REDIRECTS);
    assert_eq!(cmds, vec![Command::Answer, say(APPLICATION_ERROR_TEXT)]);
    assert_eq!(feed(&mut i, Event::VerbDone), vec![Command::Hangup]);
    assert_eq!(i.outcome(), Some(Outcome::ApplicationError));
}

#[test]
fn redirects_separated_by_other_verbs_are_not_a_loop() {
    let doc = "<Response><Say>Still here</Say><Redirect>/again</Redirect></Response>";
    let mut i = start(doc);
    drain(&mut i);
    for _ in 0..(3 * MAX_CONSECUTIVE_REDIRECTS) {
        assert_eq!(names(&feed(&mut i, Event::VerbDone)), ["Fetch"]);
        assert_eq!(names(&feed(&mut i, fetched(doc))), ["Say"]);
    }
    assert_eq!(i.outcome(), None);
}

#[test]
fn gather_with_digits_posts_them_to_the_action() {
    let mut i = start(
        r#"<Response><Gather action="/menu" numDigits="2"><Say>Choose</Say></Gather><Say>No input</Say></Response>"#,
    );
    let cmds = drain(&mut i);
    let [Command::Answer, Command::Gather(g)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(g.action.as_deref(), Some("http://app.example/menu"));
    assert_eq!(g.num_digits, Some(2));
    let fetch = fetch_of(&feed(
        &mut i,
        Event::Digits {
            digits: "42".into(),
            finished_on_key: Some('#'),
        },
    ));
    assert_eq!(fetch.url.as_str(), "http://app.example/menu");
    assert_eq!(
        (fetch.method, fetch.reason),
        (Method::Post, FetchReason::GatherAction)
    );
    assert_eq!(
        fetch.params,
        vec![
            ("Digits".to_owned(), "42".to_owned()),
            ("FinishedOnKey".to_owned(), "#".to_owned())
        ]
    );
}

#[test]
fn gather_without_input_falls_through_to_the_next_verb() {
    let mut i = start(
        r#"<Response><Gather action="/menu"/><Say>We did not receive any input</Say></Response>"#,
    );
    drain(&mut i);
    assert_eq!(
        feed(&mut i, Event::GatherTimeout),
        vec![say("We did not receive any input")]
    );
}

#[test]
fn gather_action_on_empty_result_posts_empty_digits() {
    let mut i = start(
        r#"<Response><Gather action="/menu" actionOnEmptyResult="true"/><Say>x</Say></Response>"#,
    );
    drain(&mut i);
    let fetch = fetch_of(&feed(&mut i, Event::GatherTimeout));
    assert_eq!(fetch.params, vec![("Digits".to_owned(), String::new())]);
}

#[test]
fn gather_speech_posts_the_result_and_confidence() {
    let mut i =
        start(r#"<Response><Gather input="speech" action="/heard"/><Say>x</Say></Response>"#);
    drain(&mut i);
    let fetch = fetch_of(&feed(
        &mut i,
        Event::Speech {
            result: "talk to sales".into(),
            confidence: Some("0.92".into()),
        },
    ));
    assert_eq!(fetch.url.as_str(), "http://app.example/heard");
    assert_eq!(
        fetch.params,
        vec![
            ("SpeechResult".to_owned(), "talk to sales".to_owned()),
            ("Confidence".to_owned(), "0.92".to_owned())
        ]
    );
    let mut i =
        start(r#"<Response><Gather input="speech" action="/heard"/><Say>x</Say></Response>"#);
    drain(&mut i);
    let empty = Event::Speech {
        result: String::new(),
        confidence: None,
    };
    assert_eq!(feed(&mut i, empty.clone()), vec![say("x")]);
    let mut i = start(
        r#"<Response><Gather input="speech" action="/heard" actionOnEmptyResult="true"/></Response>"#,
    );
    drain(&mut i);
    let fetch = fetch_of(&feed(&mut i, empty));
    assert_eq!(
        fetch.params,
        vec![("SpeechResult".to_owned(), String::new())]
    );
}

#[test]
fn gather_without_action_posts_to_the_document_url() {
    let mut i = start("<Response><Gather/></Response>");
    drain(&mut i);
    let fetch = fetch_of(&feed(
        &mut i,
        Event::Digits {
            digits: "7".into(),
            finished_on_key: None,
        },
    ));
    assert_eq!(fetch.url.as_str(), BASE);
}

#[test]
fn invalid_fetched_document_says_application_error_and_hangs_up() {
    let mut i = Interpreter::fetching(url(BASE), Method::Post);
    let fetch = fetch_of(&drain(&mut i));
    assert_eq!(fetch.reason, FetchReason::Initial);
    let cmds = feed(
        &mut i,
        fetched("<Response><Dial timeout=\"3\">+14155551212</Dial></Response>"),
    );
    assert_eq!(cmds, vec![Command::Answer, say(APPLICATION_ERROR_TEXT)]);
    assert_eq!(feed(&mut i, Event::VerbDone), vec![Command::Hangup]);
    assert_eq!(i.outcome(), Some(Outcome::ApplicationError));
}

#[test]
fn failed_action_fetch_is_an_application_error() {
    let mut i = start(r#"<Response><Dial action="/after">+14155551212</Dial></Response>"#);
    drain(&mut i);
    feed(&mut i, outcome(DialCallStatus::Failed, false));
    let cmds = feed(
        &mut i,
        Event::FetchFailed {
            reason: "HTTP 500".into(),
        },
    );
    assert_eq!(cmds, vec![say(APPLICATION_ERROR_TEXT)]);
}

#[test]
fn relative_url_without_a_document_url_is_an_application_error() {
    let doc =
        parse("<Response><Redirect>/next</Redirect></Response>").unwrap_or_else(|e| panic!("{e}"));
    let mut i = Interpreter::new(doc, None);
    assert_eq!(
        drain(&mut i),
        vec![Command::Answer, say(APPLICATION_ERROR_TEXT)]
    );
}

#[test]
fn a_conference_answers_then_joins_and_answered_goes_to_the_action() {
    let mut i = start(
        r#"<Response><Dial action="/after" answerOnBridge="true"><Conference waitUrl="hold.xml" statusCallback="/conf">room</Conference></Dial></Response>"#,
    );
    let cmds = drain(&mut i);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[0], Command::Answer, "a room always answers the caller");
    let Command::Dial(d) = &cmds[1] else {
        panic!("{cmds:?}")
    };
    let tandem_twiml::Noun::Conference(c) = &d.nouns[0] else {
        panic!()
    };
    assert_eq!(c.wait_url.as_deref(), Some("http://app.example/hold.xml"));
    assert_eq!(
        c.status_callback.as_deref(),
        Some("http://app.example/conf")
    );
    let cmds = feed(&mut i, outcome(DialCallStatus::Answered, true));
    let fetch = fetch_of(&cmds);
    assert_eq!(fetch.url.as_str(), "http://app.example/after");
    assert_eq!(
        fetch.params[0],
        ("DialCallStatus".to_owned(), "answered".to_owned())
    );
}

#[test]
fn caller_hangup_stops_the_interpreter() {
    let mut i = start("<Response><Dial>+14155551212</Dial><Say>after</Say></Response>");
    drain(&mut i);
    assert!(feed(&mut i, Event::CallerHangup).is_empty());
    assert_eq!(i.outcome(), Some(Outcome::RemoteHangup));
    assert_eq!(
        i.handle(outcome(DialCallStatus::Completed, true)),
        Err(InterpretError::Finished {
            event: "DialOutcome"
        })
    );
}

#[test]
fn unexpected_event_is_refused_and_state_kept() {
    let mut i = start("<Response><Say>Hi</Say><Hangup/></Response>");
    drain(&mut i);
    let e = i.handle(Event::GatherTimeout).expect_err("not gathering");
    assert!(
        matches!(
            e,
            InterpretError::UnexpectedEvent {
                event: "GatherTimeout",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(feed(&mut i, Event::VerbDone), vec![Command::Hangup]);
}

fn screen_start() -> Interpreter {
    let mut s = Interpreter::screening(url("http://app.example/screen.xml"), Method::Get);
    let fetch = fetch_of(&drain(&mut s));
    assert_eq!(
        (fetch.reason, fetch.method),
        (FetchReason::Screening, Method::Get)
    );
    s
}

const SCREEN: &str = r#"<Response>
  <Gather numDigits="1" action="/screen-result"><Say>Press 1 to accept</Say></Gather>
  <Hangup/>
</Response>"#;

#[test]
fn screening_hangup_declines_the_callee() {
    let mut s = screen_start();
    // No Answer on a screening leg: the callee has answered already.
    assert_eq!(names(&feed(&mut s, fetched(SCREEN))), ["Gather"]);
    assert_eq!(
        feed(&mut s, Event::GatherTimeout),
        vec![Command::Screened(ScreeningVerdict::Declined)]
    );
    assert_eq!(
        s.outcome(),
        Some(Outcome::Screened(ScreeningVerdict::Declined))
    );
}

#[test]
fn screening_document_ending_without_hangup_accepts() {
    let mut s = screen_start();
    feed(&mut s, fetched(SCREEN));
    let fetch = fetch_of(&feed(
        &mut s,
        Event::Digits {
            digits: "1".into(),
            finished_on_key: None,
        },
    ));
    assert_eq!(fetch.url.as_str(), "http://app.example/screen-result");
    assert_eq!(
        feed(
            &mut s,
            fetched("<Response><Say>Connecting</Say></Response>")
        ),
        vec![say("Connecting")]
    );
    assert_eq!(
        feed(&mut s, Event::VerbDone),
        vec![Command::Screened(ScreeningVerdict::Accepted)]
    );
}

#[test]
fn screening_document_with_dial_fails_the_branch() {
    let mut s = screen_start();
    let cmds = feed(
        &mut s,
        fetched("<Response><Dial>+14155551212</Dial></Response>"),
    );
    assert_eq!(cmds, vec![Command::Screened(ScreeningVerdict::Failed)]);
}

#[test]
fn screened_callee_hanging_up_declines() {
    let mut s = screen_start();
    feed(&mut s, fetched(SCREEN));
    assert_eq!(
        feed(&mut s, Event::CallerHangup),
        vec![Command::Screened(ScreeningVerdict::Declined)]
    );
}

#[test]
fn dial_command_keeps_only_dialable_nouns_with_resolved_urls() {
    let mut i = start(
        r#"<Response><Dial recordingStatusCallback="rec" record="true">
            <Number url="screen.xml" statusCallback="https://cb.example/s">+14155551212</Number>
            <Client url="/c">joey</Client>
            <Sip>sip:bob@127.0.0.1:5080</Sip>
        </Dial></Response>"#,
    );
    let cmds = drain(&mut i);
    let [Command::Answer, Command::Dial(dial)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        dial.recording_status_callback.as_deref(),
        Some("http://app.example/rec")
    );
    let urls: Vec<_> = dial
        .nouns
        .iter()
        .map(|n| n.options().and_then(|o| o.url.clone()))
        .collect();
    assert_eq!(
        urls,
        vec![
            Some("http://app.example/screen.xml".into()),
            Some("http://app.example/c".into()),
            None
        ]
    );
    let Some(Noun::Number(n)) = dial.nouns.first() else {
        panic!()
    };
    assert_eq!(
        n.options.status_callback.as_deref(),
        Some("https://cb.example/s")
    );
}

#[test]
fn gather_action_loops_wait_on_the_caller_and_are_not_bounded() {
    let doc = r#"<Response><Gather action="/menu"/></Response>"#;
    let mut i = start(doc);
    drain(&mut i);
    for _ in 0..(3 * MAX_CONSECUTIVE_REDIRECTS) {
        let digits = Event::Digits {
            digits: "1".into(),
            finished_on_key: None,
        };
        assert_eq!(names(&feed(&mut i, digits)), ["Fetch"]);
        assert_eq!(names(&feed(&mut i, fetched(doc))), ["Gather"]);
    }
}

#[test]
fn fetched_document_resolves_against_the_final_url_after_http_redirects() {
    let mut i = start("<Response><Redirect>/moved</Redirect></Response>");
    drain(&mut i);
    let cmds = feed(
        &mut i,
        Event::Fetched {
            body: "<Response><Play>tone.wav</Play></Response>".into(),
            final_url: Some(url("https://new.example/app/v2/moved")),
        },
    );
    let [Command::Answer, Command::Play(play)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        play.url.as_deref(),
        Some("https://new.example/app/v2/tone.wav")
    );
}

#[test]
fn engine_parsed_document_is_run_and_screening_rules_still_hold() {
    let mut i = start(r#"<Response><Redirect>/next</Redirect></Response>"#);
    drain(&mut i);
    let document = parse("<Response><Say>From the fallback</Say></Response>")
        .unwrap_or_else(|e| panic!("{e}"));
    let cmds = feed(
        &mut i,
        Event::FetchedDocument {
            document,
            final_url: None,
        },
    );
    assert_eq!(cmds, vec![Command::Answer, say("From the fallback")]);

    // A caller-leg document handed to a screening leg: its <Dial> fails the screening.
    let mut s = screen_start();
    let document = parse("<Response><Say>Hi</Say><Dial>+14155551212</Dial></Response>")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        names(&feed(
            &mut s,
            Event::FetchedDocument {
                document,
                final_url: None
            }
        )),
        ["Say"]
    );
    assert_eq!(
        feed(&mut s, Event::VerbDone),
        vec![Command::Screened(ScreeningVerdict::Failed)]
    );
}

fn recorded(sid: Option<&str>, secs: u64, digits: &str) -> Event {
    Event::Recorded(RecordOutcome {
        recording_sid: sid.map(str::to_owned),
        recording_url: sid.map(|s| format!("http://tandem.local/rec/{s}")),
        duration_secs: secs,
        digits: digits.to_owned(),
    })
}

#[test]
fn record_posts_the_recording_to_its_action() {
    let mut i = start(
        r##"<Response><Say>Leave a message</Say><Record action="/vm" method="GET" maxLength="20" finishOnKey="#" playBeep="false" recordingStatusCallback="/rec-status"/><Say>unreachable</Say></Response>"##,
    );
    assert_eq!(names(&drain(&mut i)), ["Answer", "Say"]);
    let cmds = feed(&mut i, Event::VerbDone);
    let [Command::Record(r)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(r.action.as_deref(), Some("http://app.example/vm"));
    assert_eq!(
        r.recording_status_callback.as_deref(),
        Some("http://app.example/rec-status")
    );
    assert_eq!((r.max_length, r.timeout), (20, 5));
    assert_eq!(r.finish_on_key, "#");
    assert!(!r.play_beep);
    assert_eq!(r.trim, Trim::TrimSilence, "Record trims by default");
    let fetch = fetch_of(&feed(&mut i, recorded(Some("RE1"), 7, "#")));
    assert_eq!(fetch.url.as_str(), "http://app.example/vm");
    assert_eq!(
        (fetch.method, fetch.reason),
        (Method::Get, FetchReason::RecordAction)
    );
    let params: Vec<(&str, &str)> = fetch
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        params,
        [
            ("RecordingUrl", "http://tandem.local/rec/RE1"),
            ("RecordingDuration", "7"),
            ("RecordingSid", "RE1"),
            ("Digits", "#"),
        ]
    );
    assert_eq!(
        feed(&mut i, fetched("<Response><Say>Thanks</Say></Response>")),
        vec![say("Thanks")]
    );
}

#[test]
fn empty_recording_goes_on_with_the_next_verb() {
    let mut i = start(r#"<Response><Record action="/vm"/><Say>Nothing recorded</Say></Response>"#);
    assert_eq!(names(&drain(&mut i)), ["Answer", "Record"]);
    assert_eq!(
        feed(&mut i, recorded(None, 0, "")),
        vec![say("Nothing recorded")]
    );
}

#[test]
fn record_without_action_posts_to_the_document_url() {
    let mut i = start("<Response><Record/></Response>");
    let cmds = drain(&mut i);
    let [Command::Answer, Command::Record(r)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(r.action.as_deref(), Some(BASE));
    assert_eq!(r.finish_on_key, "1234567890*#");
    assert!(r.play_beep);
    let fetch = fetch_of(&feed(&mut i, recorded(Some("RE2"), 3, "")));
    assert_eq!(fetch.url.as_str(), BASE);
}

#[test]
fn a_caller_hanging_up_during_record_still_posts_the_recording() {
    let mut i = start(r#"<Response><Record action="/vm"/></Response>"#);
    drain(&mut i);
    let fetch = fetch_of(&feed(&mut i, recorded(Some("RE3"), 12, "hangup")));
    assert!(
        fetch
            .params
            .contains(&("Digits".to_owned(), "hangup".to_owned()))
    );
    assert!(feed(&mut i, Event::CallerHangup).is_empty());
    assert_eq!(i.outcome(), Some(Outcome::RemoteHangup));
}

#[test]
fn record_action_loops_count_as_caller_verbs() {
    // <Record> waits on the caller, so a document that records and
    // returns itself is not a redirect loop.
    let mut i = start(r#"<Response><Record/></Response>"#);
    drain(&mut i);
    for _ in 0..(MAX_CONSECUTIVE_REDIRECTS + 3) {
        let fetch = fetch_of(&feed(&mut i, recorded(Some("RE4"), 1, "1")));
        assert_eq!(fetch.reason, FetchReason::RecordAction);
        assert_eq!(
            names(&feed(&mut i, fetched("<Response><Record/></Response>"))),
            ["Record"]
        );
    }
}

#[test]
fn a_redirect_from_outside_replaces_the_document_during_a_dial() {
    let mut i = start(
        r#"<Response><Dial action="/after"><Sip>sip:a@example.com</Sip></Dial><Say>unreachable</Say></Response>"#,
    );
    assert_eq!(names(&drain(&mut i)), ["Answer", "Dial"]);
    let doc = parse(r#"<Response><Dial><Number>+15557770000</Number></Dial></Response>"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let cmds = feed(
        &mut i,
        Event::Redirected {
            document: doc,
            url: Some(url("http://app.example/refer/handler")),
        },
    );
    assert_eq!(names(&cmds), ["Dial"]);
    assert_eq!(
        i.document_url().map(Url::as_str),
        Some("http://app.example/refer/handler")
    );
    // The new Dial's outcome goes nowhere but the end of the new document.
    let cmds = feed(&mut i, outcome(DialCallStatus::Completed, true));
    assert_eq!(names(&cmds), ["Hangup"]);
}

#[test]
fn enqueue_answers_then_queues_and_its_action_gets_the_queue_result() {
    let mut i = start(
        r#"<Response><Enqueue action="/after" waitUrl="wait.xml" waitUrlMethod="GET">support</Enqueue><Say>next</Say></Response>"#,
    );
    let cmds = drain(&mut i);
    assert_eq!(cmds[0], Command::Answer);
    let Command::Enqueue(e) = &cmds[1] else {
        panic!("{cmds:?}")
    };
    assert_eq!(e.queue, "support");
    assert_eq!(e.wait_url.as_deref(), Some("http://app.example/wait.xml"));
    assert_eq!(e.wait_url_method, Method::Get);
    let cmds = feed(
        &mut i,
        Event::Enqueued(tandem_twiml::EnqueueOutcome {
            result: tandem_twiml::QueueResult::Bridged,
            queue_sid: Some("QU1".into()),
            queue_time: 12,
        }),
    );
    let fetch = fetch_of(&cmds);
    assert_eq!(fetch.url.as_str(), "http://app.example/after");
    assert_eq!(
        fetch.params,
        vec![
            ("QueueResult".to_owned(), "bridged".to_owned()),
            ("QueueSid".to_owned(), "QU1".to_owned()),
            ("QueueTime".to_owned(), "12".to_owned()),
        ]
    );
    // Without action, the next verb runs; a stray <Leave/> is skipped.
    let mut i = start("<Response><Leave/><Enqueue>q</Enqueue><Say>next</Say></Response>");
    assert!(matches!(drain(&mut i)[1], Command::Enqueue(_)));
    let cmds = feed(
        &mut i,
        Event::Enqueued(tandem_twiml::EnqueueOutcome {
            result: tandem_twiml::QueueResult::Leave,
            queue_sid: None,
            queue_time: 0,
        }),
    );
    assert_eq!(cmds, vec![say("next")]);
}
