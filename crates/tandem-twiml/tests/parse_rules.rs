//! Parsing rules beyond the reference examples: defaults, every verb's
//! attributes, notices for unknown and not-acted-on attributes.

use tandem_twiml::{
    GatherInput, Loop, MachineDetection, Method, NoticeKind, Noun, Pause, Play, Prompt, RecordMode,
    RecordingStatus, RecordingTrack, RejectReason, RingTone, Say, SpeechTimeout, Trim, Verb, parse,
    parse_screening,
};

fn only_verb(xml: &str) -> Verb {
    let doc = parse(xml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.verbs.len(), 1, "{:?}", doc.verbs);
    doc.verbs.into_iter().next().unwrap_or(Verb::Hangup)
}

#[test]
fn dial_defaults_match_the_attribute_table() {
    let Verb::Dial(dial) = only_verb("<Response><Dial>+14155551212</Dial></Response>") else {
        panic!("not a dial");
    };
    assert_eq!(dial.action, None);
    assert!(!dial.answer_on_bridge);
    assert!(!dial.hangup_on_star);
    assert_eq!(dial.method, Method::Post);
    assert_eq!(dial.record, RecordMode::DoNotRecord);
    assert_eq!(dial.recording_status_callback_method, Method::Post);
    assert_eq!(
        dial.recording_status_callback_event,
        vec![RecordingStatus::Completed]
    );
    assert_eq!(dial.recording_track, RecordingTrack::Both);
    assert_eq!(dial.refer_method, Method::Post);
    assert_eq!(dial.ring_tone, None);
    assert_eq!(dial.time_limit, 14_400);
    assert_eq!(dial.timeout, 30);
    assert_eq!(dial.trim, Trim::DoNotTrim);
}

#[test]
fn every_dial_attribute_is_typed() {
    let xml = r#"<Response><Dial action="https://app.example/after" answerOnBridge="true"
        callerId="(415) 555-0000" callReason="Your order" hangupOnStar="TRUE" method="get"
        record="record-from-answer-dual" recordingStatusCallback="/rec"
        recordingStatusCallbackMethod="GET" recordingStatusCallbackEvent="in-progress completed absent"
        recordingTrack="inbound" referUrl="/refer" referMethod="GET" ringTone="de"
        timeLimit="120" timeout="600" trim="trim-silence">+14155551212</Dial></Response>"#;
    let Verb::Dial(dial) = only_verb(xml) else {
        panic!("not a dial");
    };
    assert_eq!(dial.action.as_deref(), Some("https://app.example/after"));
    assert!(dial.answer_on_bridge && dial.hangup_on_star);
    assert_eq!(dial.caller_id.as_deref(), Some("+14155550000"));
    assert_eq!(dial.call_reason.as_deref(), Some("Your order"));
    assert_eq!(dial.method, Method::Get);
    assert_eq!(dial.record, RecordMode::RecordFromAnswerDual);
    assert_eq!(dial.recording_status_callback.as_deref(), Some("/rec"));
    assert_eq!(dial.recording_status_callback_method, Method::Get);
    assert_eq!(
        dial.recording_status_callback_event,
        vec![
            RecordingStatus::InProgress,
            RecordingStatus::Completed,
            RecordingStatus::Absent
        ]
    );
    assert_eq!(dial.recording_track, RecordingTrack::Inbound);
    assert_eq!(dial.refer_url.as_deref(), Some("/refer"));
    assert_eq!(dial.refer_method, Method::Get);
    assert_eq!(dial.ring_tone, "de".parse::<RingTone>().ok());
    assert_eq!(dial.time_limit, 120);
    assert_eq!(dial.timeout, 600);
    assert_eq!(dial.trim, Trim::TrimSilence);
}

#[test]
fn number_machine_detection_and_byoc() {
    let xml = r#"<Response><Dial><Number byoc="BYaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" machineDetection="DetectMessageEnd"
        machineDetectionTimeout="60" machineDetectionSpeechThreshold="1000"
        machineDetectionSpeechEndThreshold="5000" machineDetectionSilenceTimeout="2000"
        amdStatusCallback="/amd" amdStatusCallbackMethod="GET" method="GET" url="/screen">1 (415) 555-1212</Number></Dial></Response>"#;
    let doc = parse(xml).unwrap_or_else(|e| panic!("{e}"));
    let Some(Verb::Dial(dial)) = doc.verbs.first() else {
        panic!("not a dial");
    };
    let Some(Noun::Number(n)) = dial.nouns.first() else {
        panic!("not a number");
    };
    assert_eq!(n.number.as_str(), "+14155551212");
    assert_eq!(
        n.byoc.as_deref(),
        Some("BYaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    );
    let md = &n.machine_detection;
    assert_eq!(md.mode, Some(MachineDetection::DetectMessageEnd));
    assert_eq!(
        (
            md.timeout,
            md.speech_threshold,
            md.speech_end_threshold,
            md.silence_timeout
        ),
        (60, 1000, 5000, 2000)
    );
    assert_eq!(md.status_callback.as_deref(), Some("/amd"));
    assert_eq!(md.status_callback_method, Method::Get);
    assert_eq!(n.options.url.as_deref(), Some("/screen"));
    assert_eq!(n.options.method, Method::Get);
    assert_eq!(doc.not_acted_on().count(), 0, "the engine acts on them all");
}

#[test]
fn sip_attributes() {
    let xml = r#"<Response><Dial><Sip username="alice" password="s3cret" url="/screen" method="GET"
        statusCallback="/status" statusCallbackEvent="ringing answered" statusCallbackMethod="GET">sips:bob@pbx.example.com:5061;transport=tls?X-Team=sales</Sip></Dial></Response>"#;
    let Verb::Dial(dial) = only_verb(xml) else {
        panic!("not a dial");
    };
    let Some(Noun::Sip(sip)) = dial.nouns.first() else {
        panic!("not sip");
    };
    assert_eq!(sip.uri, "sips:bob@pbx.example.com:5061;transport=tls");
    assert_eq!(sip.headers, vec![("X-Team".to_owned(), "sales".to_owned())]);
    assert_eq!(sip.username.as_deref(), Some("alice"));
    assert_eq!(sip.password.as_deref(), Some("s3cret"));
    assert_eq!(sip.options.url.as_deref(), Some("/screen"));
    assert_eq!(sip.options.status_callback.as_deref(), Some("/status"));
    assert_eq!(sip.options.status_callback_method, Method::Get);
    use tandem_twiml::CallProgressEvent::{Answered, Ringing};
    assert_eq!(sip.options.status_callback_event, vec![Ringing, Answered]);
}

#[test]
fn unknown_attributes_are_ignored_with_a_positioned_notice() {
    let xml = "<Response>\n  <Dial timeout=\"12\" colour=\"blue\">+14155551212</Dial>\n</Response>";
    let doc = parse(xml).unwrap_or_else(|e| panic!("{e}"));
    let unknown: Vec<_> = doc.unknown_attributes().collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].kind, NoticeKind::UnknownAttribute);
    assert_eq!(unknown[0].element, "Dial");
    assert_eq!(unknown[0].attribute.as_deref(), Some("colour"));
    assert_eq!(unknown[0].value, "blue");
    assert_eq!(unknown[0].at.to_string(), "2:22");
    assert_eq!(
        unknown[0].to_string(),
        "<Dial> colour=\"blue\" at 2:22 (unknown, ignored)"
    );
    let Some(Verb::Dial(dial)) = doc.verbs.first() else {
        panic!("not a dial");
    };
    assert_eq!(dial.timeout, 12);
}

#[test]
fn gather_with_nested_prompts_and_all_attributes() {
    let xml = r#"<Response><Gather input="dtmf" action="/menu" method="GET" timeout="3" finishOnKey="*"
        numDigits="4" actionOnEmptyResult="true">
          <Say voice="alice" language="en-GB" loop="2">Enter your PIN</Say>
          <Pause length="2"/>
          <Play loop="0">https://cdn.example.com/beep.wav</Play>
        </Gather></Response>"#;
    let Verb::Gather(g) = only_verb(xml) else {
        panic!("not a gather");
    };
    assert_eq!(g.input, GatherInput::Dtmf);
    assert_eq!(g.action.as_deref(), Some("/menu"));
    assert_eq!(g.method, Method::Get);
    assert_eq!(
        (
            g.timeout,
            g.finish_on_key,
            g.num_digits,
            g.action_on_empty_result
        ),
        (3, Some('*'), Some(4), true)
    );
    assert_eq!(
        g.prompts,
        vec![
            Prompt::Say(Say {
                text: "Enter your PIN".into(),
                ssml: None,
                voice: Some("alice".into()),
                language: Some("en-GB".into()),
                loop_: Loop::Times(2),
            }),
            Prompt::Pause(Pause { length: 2 }),
            Prompt::Play(Play {
                url: Some("https://cdn.example.com/beep.wav".into()),
                digits: None,
                loop_: Loop::Forever,
            }),
        ]
    );
}

#[test]
fn gather_defaults_and_speech_attributes() {
    let Verb::Gather(g) = only_verb("<Response><Gather/></Response>") else {
        panic!("not a gather");
    };
    assert_eq!(
        (
            g.timeout,
            g.finish_on_key,
            g.num_digits,
            g.action_on_empty_result
        ),
        (5, Some('#'), None, false)
    );
    let doc = parse("<Response><Gather input=\"dtmf speech\" finishOnKey=\"\" speechTimeout=\"auto\"/></Response>")
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(Verb::Gather(g)) = doc.verbs.first() else {
        panic!("not a gather");
    };
    assert_eq!((g.input, g.finish_on_key), (GatherInput::DtmfSpeech, None));
    assert_eq!(g.speech_timeout, Some(SpeechTimeout::Auto));
    assert_eq!(
        (
            g.language.as_str(),
            g.profanity_filter,
            g.enhanced,
            g.hints.as_deref()
        ),
        ("en-US", true, false, None)
    );
    assert_eq!(doc.not_acted_on().count(), 0);
    let doc = parse(
        r#"<Response><Gather input="speech" speechTimeout="3" speechModel="phone_call" hints="sales, support"
            language="en-GB" profanityFilter="false" partialResultCallback="/partial"
            partialResultCallbackMethod="GET" enhanced="true"/></Response>"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let Some(Verb::Gather(g)) = doc.verbs.first() else {
        panic!("not a gather");
    };
    assert_eq!(g.input, GatherInput::Speech);
    assert_eq!(g.speech_timeout, Some(SpeechTimeout::Secs(3)));
    assert_eq!(g.speech_model.as_deref(), Some("phone_call"));
    assert_eq!(g.hints.as_deref(), Some("sales, support"));
    assert_eq!(g.language, "en-GB");
    assert!(!g.profanity_filter && g.enhanced);
    assert_eq!(g.partial_result_callback.as_deref(), Some("/partial"));
    assert_eq!(g.partial_result_callback_method, Method::Get);
    assert_eq!(doc.not_acted_on().count(), 0);
    for bad in [
        r#"speechTimeout="0""#,
        r#"speechTimeout="later""#,
        r#"language="en_US""#,
        r#"speechModel="two words""#,
        r#"profanityFilter="maybe""#,
        r#"partialResultCallback="ftp://x/y""#,
    ] {
        let xml = format!("<Response><Gather input=\"speech\" {bad}/></Response>");
        assert!(parse(&xml).is_err(), "{bad} was accepted");
    }
}

#[test]
fn say_keeps_ssml_for_the_synthesizer_and_plain_text_for_logs() {
    let doc = parse("<Response><Say>Hello <break time=\"1s\"/> <prosody rate=\"slow\">world</prosody></Say></Response>")
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(Verb::Say(say)) = doc.verbs.first() else {
        panic!("not a say");
    };
    assert_eq!(say.text, "Hello world");
    assert_eq!(
        say.ssml.as_deref(),
        Some(r#"<speak>Hello <break time="1s"/> <prosody rate="slow">world</prosody></speak>"#)
    );
    assert_eq!(doc.not_acted_on().count(), 0);
}

#[test]
fn play_digits_reject_redirect_hangup_pause() {
    let doc = parse(
        r#"<Response>
        <Play digits="ww1234#"/>
        <Pause/>
        <Redirect method="GET">../next.xml</Redirect>
        <Reject reason="busy"/>
        <Hangup/>
        </Response>"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        doc.verbs,
        vec![
            Verb::Play(Play {
                url: None,
                digits: Some("ww1234#".into()),
                loop_: Loop::Times(1),
            }),
            Verb::Pause(Pause { length: 1 }),
            Verb::Redirect(tandem_twiml::Redirect {
                url: "../next.xml".into(),
                method: Method::Get,
            }),
            Verb::Reject(tandem_twiml::Reject {
                reason: RejectReason::Busy,
            }),
            Verb::Hangup,
        ]
    );
    assert_eq!(
        only_verb("<Response><Reject/></Response>"),
        Verb::Reject(tandem_twiml::Reject {
            reason: RejectReason::Rejected
        })
    );
}

#[test]
fn byte_order_mark_cdata_and_comments_are_accepted() {
    let xml = "\u{feff}<?xml version=\"1.0\"?>\n<!-- hi -->\n<Response><Say><![CDATA[Fish & chips]]></Say></Response>";
    let Verb::Say(say) = only_verb(xml) else {
        panic!("not a say");
    };
    assert_eq!(say.text, "Fish & chips");
}

#[test]
fn screening_documents_accept_the_five_verbs() {
    let doc = parse_screening(
        "<Response><Say>Call for you</Say><Play>/ding.wav</Play><Pause/><Gather numDigits=\"1\" action=\"/accept\"><Say>Press 1</Say></Gather><Hangup/></Response>",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = doc.verbs.iter().map(Verb::name).collect();
    assert_eq!(names, vec!["Say", "Play", "Pause", "Gather", "Hangup"]);
}

#[test]
fn queue_noun_attributes_are_typed() {
    let doc = parse(
        "<Response><Dial><Queue url=\"/about\" method=\"GET\">support</Queue></Dial></Response>",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let [Verb::Dial(d)] = &doc.verbs[..] else {
        panic!("{:?}", doc.verbs)
    };
    let [Noun::Queue(q)] = &d.nouns[..] else {
        panic!("{:?}", d.nouns)
    };
    assert_eq!(q.name, "support");
    assert_eq!(q.url.as_deref(), Some("/about"));
    assert_eq!(q.method, Method::Get);
    assert_eq!(doc.not_acted_on().count(), 0);
}

#[test]
fn record_attributes_and_defaults() {
    let doc = parse(r#"<Response><Record/></Response>"#).expect("valid");
    let [Verb::Record(r)] = &doc.verbs[..] else {
        panic!("{:?}", doc.verbs)
    };
    assert_eq!(*r, tandem_twiml::Record::default());
    assert_eq!(r.timeout, 5);
    assert_eq!(r.max_length, 3600);
    let doc = parse(
        r#"<Response><Record action="/done" method="get" timeout="0" finishOnKey="" maxLength="14400" playBeep="false" trim="do-not-trim" recordingStatusCallback="/cb" recordingStatusCallbackMethod="GET" recordingStatusCallbackEvent="in-progress completed absent" transcribe="true" transcribeCallback="/t"/></Response>"#,
    )
    .expect("valid");
    let [Verb::Record(r)] = &doc.verbs[..] else {
        panic!("{:?}", doc.verbs)
    };
    assert_eq!(r.action.as_deref(), Some("/done"));
    assert_eq!(r.method, Method::Get);
    assert_eq!(r.timeout, 0);
    assert_eq!(r.finish_on_key, "");
    assert_eq!(r.max_length, 14_400);
    assert!(!r.play_beep);
    assert_eq!(r.trim, Trim::DoNotTrim);
    assert_eq!(r.recording_status_callback.as_deref(), Some("/cb"));
    assert_eq!(r.recording_status_callback_event.len(), 3);
    assert!(r.transcribe);
    assert_eq!(r.transcribe_callback.as_deref(), Some("/t"));
    assert_eq!(doc.not_acted_on().count(), 0);
}

#[test]
fn say_ssml_keeps_the_synthesizers_tags_escaped_and_unwraps_the_others() {
    let doc = parse(
        r#"<Response><Say voice="alice">Fish &amp; chips <prosody rate="slow" pitch="+10%">at <say-as interpret-as="characters">A&amp;B</say-as></prosody><break strength="strong"/><phoneme alphabet="ipa" ph="t&#601;">tomato</phoneme><amazon:effect name="whispered">quiet</amazon:effect></Say></Response>"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let [Verb::Say(say)] = &doc.verbs[..] else {
        panic!("{:?}", doc.verbs)
    };
    assert_eq!(
        say.ssml.as_deref(),
        Some(
            r#"<speak>Fish &amp; chips <prosody rate="slow" pitch="+10%">at <say-as interpret-as="characters">A&amp;B</say-as></prosody><break strength="strong"/>tomatoquiet</speak>"#
        )
    );
    assert_eq!(doc.not_acted_on().count(), 0);
    let plain = parse("<Response><Say>Just text</Say></Response>").unwrap();
    let [Verb::Say(say)] = &plain.verbs[..] else {
        panic!()
    };
    assert_eq!(say.ssml, None);
}
