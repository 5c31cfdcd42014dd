//! Every TwiML example in the reference pages (`/work/shared/reference`)
//! parses to the typed tree the page describes.

use tandem_twiml::{
    CallProgressEvent, Client, Conference, Dial, Document, Method, Noun, NounOptions, Number,
    PhoneNumber, RecordMode, RecordingStatus, Say, Sip, Verb, parse,
};

fn parse_ok(xml: &str) -> Document {
    match parse(xml) {
        Ok(doc) => {
            assert_eq!(
                doc.unknown_attributes().count(),
                0,
                "unexpected unknown attributes: {:?}",
                doc.notices
            );
            doc
        }
        Err(e) => panic!("reference example failed to parse: {e}\n{xml}"),
    }
}

fn number(e164: &str) -> Number {
    Number::new(PhoneNumber::parse(e164).expect("valid number"))
}

fn dial(nouns: Vec<Noun>) -> Dial {
    Dial {
        nouns,
        ..Dial::default()
    }
}

fn all_events() -> Vec<CallProgressEvent> {
    use CallProgressEvent::*;
    vec![Initiated, Ringing, Answered, Completed]
}

#[test]
fn dial_page_basic_plain_text_number() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>415-123-4567</Dial>
</Response>"#,
    );
    assert_eq!(
        doc.verbs,
        vec![Verb::Dial(dial(vec![Noun::Number(number("+14151234567"))]))]
    );
    assert!(doc.notices.is_empty());
}

#[test]
fn dial_page_dial_then_say_goodbye() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>415-123-4567</Dial>
<Say>Goodbye</Say>
</Response>"#,
    );
    assert_eq!(
        doc.verbs,
        vec![
            Verb::Dial(dial(vec![Noun::Number(number("+14151234567"))])),
            Verb::Say(Say {
                text: "Goodbye".into(),
                ..Say::default()
            }),
        ]
    );
}

#[test]
fn dial_page_timeout_and_record_true_alias() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial timeout="10" record="true">415-123-4567</Dial>
</Response>"#,
    );
    let expected = Dial {
        timeout: 10,
        record: RecordMode::RecordFromAnswer,
        ..dial(vec![Noun::Number(number("+14151234567"))])
    };
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
}

#[test]
fn dial_page_caller_id_with_number_noun() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial callerId="+15551112222">
<Number>+15558675310</Number>
</Dial>
</Response>"#,
    );
    let expected = Dial {
        caller_id: Some("+15551112222".into()),
        ..dial(vec![Noun::Number(number("+15558675310"))])
    };
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
}

#[test]
fn dial_page_action_with_get_and_unreachable_say() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- page located at http://example.com/dial_callstatus.xml -->
<Response>
<Dial action="/handleDialCallStatus" method="GET">
415-123-4567
</Dial>
<Say>I am unreachable</Say>
</Response>"#,
    );
    let expected = Dial {
        action: Some("/handleDialCallStatus".into()),
        method: Method::Get,
        ..dial(vec![Noun::Number(number("+14151234567"))])
    };
    assert_eq!(
        doc.verbs,
        vec![
            Verb::Dial(expected),
            Verb::Say(Say {
                text: "I am unreachable".into(),
                ..Say::default()
            })
        ]
    );
}

#[test]
fn dial_page_dual_channel_recording_from_ringing() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial record="record-from-ringing-dual"
recordingStatusCallback="www.myexample.com">
<Number>+15558675310</Number>
</Dial>
</Response>"#,
    );
    let expected = Dial {
        record: RecordMode::RecordFromRingingDual,
        recording_status_callback: Some("www.myexample.com".into()),
        recording_status_callback_event: vec![RecordingStatus::Completed],
        ..dial(vec![Noun::Number(number("+15558675310"))])
    };
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
}

#[test]
fn dial_page_refer_url_with_sip_uri_headers() {
    let doc = parse_ok(
        r#"<Response>
<Dial referUrl="https://example.com/handler">
<Sip>sip:AgentA@xyz.sip.us1.twilio.com?User-to-User=123456789%3Bencoding%3Dhex&amp;X-Name=Agent%2C+A</Sip>
</Dial>
</Response>"#,
    );
    let mut sip = Sip::new("sip:AgentA@xyz.sip.us1.twilio.com");
    sip.headers = vec![
        ("User-to-User".into(), "123456789;encoding=hex".into()),
        ("X-Name".into(), "Agent,+A".into()),
    ];
    let expected = Dial {
        refer_url: Some("https://example.com/handler".into()),
        ..dial(vec![Noun::Sip(sip)])
    };
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
    // referUrl is acted on (blind transfer): nothing to note.
    assert_eq!(doc.not_acted_on().count(), 0);
}

#[test]
fn dial_page_number_noun_equals_plain_text() {
    let noun = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Number>415-123-4567</Number>
</Dial>
</Response>"#,
    );
    let plain = parse_ok("<Response><Dial>415-123-4567</Dial></Response>");
    assert_eq!(noun.verbs, plain.verbs);
}

#[test]
fn dial_page_conference_with_dual_recording() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial record="record-from-ringing-dual"
recordingStatusCallback="www.myexample.com">
<Conference>myteamroom</Conference>
</Dial>
</Response>"#,
    );
    let expected = Dial {
        record: RecordMode::RecordFromRingingDual,
        recording_status_callback: Some("www.myexample.com".into()),
        ..dial(vec![Noun::Conference(Box::new(Conference::new(
            "myteamroom",
        )))])
    };
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
    assert_eq!(doc.not_acted_on().count(), 0);
}

#[test]
fn number_page_send_digits_with_waits() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Number sendDigits="wwww1928">
415-123-4567
</Number>
</Dial>
</Response>"#,
    );
    let mut n = number("+14151234567");
    n.send_digits = Some("wwww1928".into());
    assert_eq!(doc.verbs, vec![Verb::Dial(dial(vec![Noun::Number(n)]))]);
}

#[test]
fn number_page_three_numbers_ring_simultaneously() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Number>
858-987-6543
</Number>
<Number>
415-123-4567
</Number>
<Number>
619-765-4321
</Number>
</Dial>
</Response>"#,
    );
    let expected = dial(vec![
        Noun::Number(number("+18589876543")),
        Noun::Number(number("+14151234567")),
        Noun::Number(number("+16197654321")),
    ]);
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
}

fn with_callbacks(mut n: Number, url: &str) -> Number {
    n.options = NounOptions {
        status_callback: Some(url.into()),
        status_callback_event: all_events(),
        status_callback_method: Method::Post,
        ..NounOptions::default()
    };
    n
}

#[test]
fn number_page_status_callback_events() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Number
statusCallbackEvent="initiated ringing answered completed"
statusCallback="https://myapp.com/calls/events"
statusCallbackMethod="POST">
+12349013030
</Number>
</Dial>
</Response>"#,
    );
    let n = with_callbacks(number("+12349013030"), "https://myapp.com/calls/events");
    assert_eq!(doc.verbs, vec![Verb::Dial(dial(vec![Noun::Number(n)]))]);
}

#[test]
fn number_page_status_callbacks_per_number_single_quoted() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Number
statusCallbackEvent='initiated ringing answered completed'
statusCallback='https://myapp.com/calls/events'
statusCallbackMethod='POST'>
+14155555555
</Number>
<Number
statusCallbackEvent='initiated ringing answered completed'
statusCallback='https://example.com/events'
statusCallbackMethod='POST'>
+14153333333
</Number>
</Dial>
</Response>"#,
    );
    let expected = dial(vec![
        Noun::Number(with_callbacks(
            number("+14155555555"),
            "https://myapp.com/calls/events",
        )),
        Noun::Number(with_callbacks(
            number("+14153333333"),
            "https://example.com/events",
        )),
    ]);
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
}

#[test]
fn number_page_screening_url() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Number url="http://example.com/agent_screen_call">415-123-4567</Number>
</Dial>
</Response>"#,
    );
    let mut n = number("+14151234567");
    n.options.url = Some("http://example.com/agent_screen_call".into());
    assert_eq!(doc.verbs, vec![Verb::Dial(dial(vec![Noun::Number(n)]))]);
}

#[test]
fn rcml_page_comma_separated_status_events() {
    let doc = parse_ok(
        r#"<Response><Dial><Number statusCallback="https://myapp.com/calls/events" statusCallbackEvent="initiated,ringing,answered,completed">+12349013030</Number></Dial></Response>"#,
    );
    let n = with_callbacks(number("+12349013030"), "https://myapp.com/calls/events");
    assert_eq!(doc.verbs, vec![Verb::Dial(dial(vec![Noun::Number(n)]))]);
}

#[test]
fn client_page_identity_with_parameters() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Client>
<Identity>user_jane</Identity>
<Parameter name="FirstName" value ="Jane"/>
<Parameter name="LastName" value ="Doe" />
</Client>
</Dial>
</Response>"#,
    );
    let mut client = Client::new("user_jane");
    client.parameters = vec![
        ("FirstName".into(), "Jane".into()),
        ("LastName".into(), "Doe".into()),
    ];
    assert_eq!(
        doc.verbs,
        vec![Verb::Dial(dial(vec![Noun::Client(client)]))]
    );
    // <Parameter> is acted on (sent as X- headers): nothing to report.
    assert_eq!(
        doc.not_acted_on()
            .filter(|n| n.element == "Parameter")
            .count(),
        0
    );
}

#[test]
fn client_page_plain_identity() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Client>joey</Client>
</Dial>
</Response>"#,
    );
    assert_eq!(
        doc.verbs,
        vec![Verb::Dial(dial(vec![Noun::Client(Client::new("joey"))]))]
    );
}

#[test]
fn client_page_numbers_and_clients_together() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial callerId="+1888XXXXXXX">
<Number>858-987-6543</Number>
<Client>joey</Client>
<Client>charlie</Client>
</Dial>
</Response>"#,
    );
    let expected = Dial {
        caller_id: Some("+1888XXXXXXX".into()),
        ..dial(vec![
            Noun::Number(number("+18589876543")),
            Noun::Client(Client::new("joey")),
            Noun::Client(Client::new("charlie")),
        ])
    };
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
}

#[test]
fn client_page_status_callback_events() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Dial>
<Client
statusCallbackEvent='initiated ringing answered completed'
statusCallback='https://myapp.com/calls/events'
statusCallbackMethod='POST'>
joey
</Client>
</Dial>
</Response>"#,
    );
    let mut client = Client::new("joey");
    client.options = NounOptions {
        status_callback: Some("https://myapp.com/calls/events".into()),
        status_callback_event: all_events(),
        ..NounOptions::default()
    };
    assert_eq!(
        doc.verbs,
        vec![Verb::Dial(dial(vec![Noun::Client(client)]))]
    );
}

#[test]
fn dial_page_japanese_edition_examples_indented() {
    let doc = parse_ok(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Dial timeout="10" record="true">415-123-4567</Dial>
</Response>
"#,
    );
    let expected = Dial {
        timeout: 10,
        record: RecordMode::RecordFromAnswer,
        ..dial(vec![Noun::Number(number("+14151234567"))])
    };
    assert_eq!(doc.verbs, vec![Verb::Dial(expected)]);
}

#[test]
fn conference_attributes_are_typed_with_twilios_defaults() {
    use tandem_twiml::{ConferenceBeep, ConferenceEvent};
    let doc = parse_ok(
        r#"<Response><Dial><Conference muted="true" beep="onExit" startConferenceOnEnter="false"
        endConferenceOnExit="true" waitUrl="/hold" waitMethod="GET" maxParticipants="10"
        statusCallback="/conf" statusCallbackMethod="GET" statusCallbackEvent="start,join speaker"
        participantLabel="customer" coach="CA0123456789abcdef0123456789abcdef">Sales</Conference></Dial></Response>"#,
    );
    let Verb::Dial(d) = &doc.verbs[0] else {
        panic!()
    };
    let Noun::Conference(c) = &d.nouns[0] else {
        panic!()
    };
    let mut want = Conference::new("Sales");
    want.muted = true;
    want.beep = ConferenceBeep::OnExit;
    want.start_conference_on_enter = false;
    want.end_conference_on_exit = true;
    want.wait_url = Some("/hold".into());
    want.wait_method = Method::Get;
    want.max_participants = 10;
    want.status_callback = Some("/conf".into());
    want.status_callback_method = Method::Get;
    want.status_callback_event = vec![
        ConferenceEvent::Start,
        ConferenceEvent::Join,
        ConferenceEvent::Speaker,
    ];
    want.participant_label = Some("customer".into());
    want.coach = Some("CA0123456789abcdef0123456789abcdef".into());
    assert_eq!(**c, want);
    assert_eq!(doc.not_acted_on().count(), 0);
    // waitUrl="" is silence, not an error.
    let doc =
        parse_ok(r#"<Response><Dial><Conference waitUrl="">r</Conference></Dial></Response>"#);
    let Verb::Dial(d) = &doc.verbs[0] else {
        panic!()
    };
    let Noun::Conference(c) = &d.nouns[0] else {
        panic!()
    };
    assert_eq!(c.wait_url, None);
    assert_eq!(c.trim, tandem_twiml::Trim::TrimSilence);
}
