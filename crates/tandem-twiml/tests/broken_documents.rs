//! A corpus of invalid TwiML: each document yields its specific error
//! variant, naming the element, attribute and value, at the right
//! line:column.

use tandem_twiml::{ParseError, parse, parse_screening};

/// Line:column (1-based, in characters) of the first `needle` in `xml`,
/// computed independently of the parser.
fn at(xml: &str, needle: &str) -> String {
    let offset = xml
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in document"));
    line_col(xml, offset)
}

fn line_col(xml: &str, offset: usize) -> String {
    let before = &xml[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{line}:{column}")
}

fn err(xml: &str) -> ParseError {
    match parse(xml) {
        Ok(doc) => panic!("expected an error, parsed {doc:?}"),
        Err(e) => e,
    }
}

fn pos(e: &ParseError) -> String {
    e.position().map(|p| p.to_string()).unwrap_or_default()
}

/// Asserts an `InvalidAttribute` for `element`/`attribute`/`value` located
/// at the attribute's name.
fn assert_invalid_attribute(xml: &str, element: &str, attribute: &str, value: &str) {
    let e = err(xml);
    match &e {
        ParseError::InvalidAttribute {
            element: el,
            attribute: a,
            value: v,
            ..
        } => {
            assert_eq!(
                (el.as_str(), a.as_str(), v.as_str()),
                (element, attribute, value),
                "{e}"
            );
        }
        other => panic!("expected InvalidAttribute, got {other:?}"),
    }
    // The position is that of the attribute's name (after the blank).
    let name_offset = xml.find(&format!(" {attribute}=")).map(|o| o + 1);
    assert_eq!(Some(pos(&e)), name_offset.map(|o| line_col(xml, o)));
    let message = e.to_string();
    assert!(
        message.contains(element) && message.contains(attribute) && message.contains(value),
        "{message}"
    );
}

#[test]
fn dial_timeout_below_five_seconds() {
    assert_invalid_attribute(
        "<Response>\n  <Dial timeout=\"4\">+14155551212</Dial>\n</Response>",
        "Dial",
        "timeout",
        "4",
    );
}

#[test]
fn dial_timeout_above_six_hundred_seconds() {
    assert_invalid_attribute(
        "<Response><Dial timeout=\"601\">+14155551212</Dial></Response>",
        "Dial",
        "timeout",
        "601",
    );
}

#[test]
fn dial_timeout_not_a_number() {
    assert_invalid_attribute(
        "<Response><Dial\n timeout=\"soon\">+14155551212</Dial></Response>",
        "Dial",
        "timeout",
        "soon",
    );
}

#[test]
fn dial_record_unknown_mode() {
    assert_invalid_attribute(
        "<Response><Dial record=\"yes\">+14155551212</Dial></Response>",
        "Dial",
        "record",
        "yes",
    );
}

#[test]
fn dial_answer_on_bridge_not_boolean() {
    assert_invalid_attribute(
        "<Response><Dial answerOnBridge=\"1\">+14155551212</Dial></Response>",
        "Dial",
        "answerOnBridge",
        "1",
    );
}

#[test]
fn dial_call_reason_longer_than_fifty_characters() {
    let reason = "x".repeat(51);
    let xml = format!("<Response><Dial callReason=\"{reason}\">+14155551212</Dial></Response>");
    assert_invalid_attribute(&xml, "Dial", "callReason", &reason);
    let ok = format!(
        "<Response><Dial callReason=\"{}\">+14155551212</Dial></Response>",
        "x".repeat(50)
    );
    assert!(parse(&ok).is_ok());
}

#[test]
fn dial_ring_tone_unknown_country() {
    assert_invalid_attribute(
        "<Response><Dial ringTone=\"xx\">+14155551212</Dial></Response>",
        "Dial",
        "ringTone",
        "xx",
    );
}

#[test]
fn dial_method_not_get_or_post() {
    assert_invalid_attribute(
        "<Response><Dial method=\"PUT\" action=\"/a\">+14155551212</Dial></Response>",
        "Dial",
        "method",
        "PUT",
    );
}

#[test]
fn number_send_digits_outside_dtmf_alphabet() {
    assert_invalid_attribute(
        "<Response><Dial>\n<Number sendDigits=\"ww12x\">+14155551212</Number></Dial></Response>",
        "Number",
        "sendDigits",
        "ww12x",
    );
}

#[test]
fn number_status_callback_event_with_semicolons() {
    assert_invalid_attribute(
        "<Response><Dial><Number statusCallbackEvent=\"initiated;ringing\">+14155551212</Number></Dial></Response>",
        "Number",
        "statusCallbackEvent",
        "initiated;ringing",
    );
}

#[test]
fn number_machine_detection_timeout_out_of_range() {
    assert_invalid_attribute(
        "<Response><Dial><Number machineDetectionTimeout=\"2\">+14155551212</Number></Dial></Response>",
        "Number",
        "machineDetectionTimeout",
        "2",
    );
}

#[test]
fn number_url_with_underscore_in_host() {
    assert_invalid_attribute(
        "<Response><Dial><Number url=\"https://my_app.example.com/screen\">+14155551212</Number></Dial></Response>",
        "Number",
        "url",
        "https://my_app.example.com/screen",
    );
}

#[test]
fn reject_unknown_reason() {
    assert_invalid_attribute(
        "<Response><Reject reason=\"nope\"/></Response>",
        "Reject",
        "reason",
        "nope",
    );
}

#[test]
fn gather_finish_on_key_two_keys() {
    assert_invalid_attribute(
        "<Response><Gather finishOnKey=\"##\"/></Response>",
        "Gather",
        "finishOnKey",
        "##",
    );
}

#[test]
fn pause_negative_length() {
    assert_invalid_attribute(
        "<Response><Pause length=\"-1\"/></Response>",
        "Pause",
        "length",
        "-1",
    );
}

#[test]
fn number_text_that_is_not_a_phone_number() {
    let xml = "<Response>\n  <Dial>\n    <Number>  555-1212</Number>\n  </Dial>\n</Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::InvalidPhoneNumber { element, value, .. } if element == "Number" && value == "555-1212"),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "555-1212"));
}

#[test]
fn plain_dial_text_that_is_not_a_phone_number() {
    let xml = "<Response><Dial>joey</Dial></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::InvalidPhoneNumber { element, .. } if element == "Dial"),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "joey"));
}

#[test]
fn eleven_nouns_exceed_the_limit_of_ten() {
    let nouns: String = (0..6)
        .map(|i| format!("<Number>+1415555120{i}</Number>"))
        .collect::<String>()
        + &(0..5)
            .map(|i| format!("<Client>agent{i}</Client>"))
            .collect::<String>();
    let xml = format!("<Response>\n<Dial>{nouns}</Dial></Response>");
    let e = err(&xml);
    assert!(
        matches!(
            e,
            ParseError::TooManyNouns {
                count: 11,
                limit: 10,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(pos(&e), "2:1");
    let ten: String = (0..10)
        .map(|i| format!("<Client>agent{i}</Client>"))
        .collect();
    assert!(parse(&format!("<Response><Dial>{ten}</Dial></Response>")).is_ok());
}

#[test]
fn client_identity_with_a_space() {
    let xml = "<Response><Dial><Client>jo ey</Client></Dial></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::InvalidIdentity { value, reason: "contains a space", .. } if value == "jo ey"),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "jo ey"));
}

#[test]
fn client_identity_longer_than_256_characters() {
    let long = "a".repeat(257);
    let xml =
        format!("<Response><Dial><Client><Identity>{long}</Identity></Client></Dial></Response>");
    let e = err(&xml);
    assert!(
        matches!(
            &e,
            ParseError::InvalidIdentity {
                reason: "longer than 256 characters",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn client_identity_with_delimiter() {
    let e = err("<Response><Dial><Client>a&lt;b</Client></Dial></Response>");
    assert!(
        matches!(&e, ParseError::InvalidIdentity { value, .. } if value == "a<b"),
        "{e:?}"
    );
}

#[test]
fn parameter_without_name() {
    let xml = "<Response><Dial><Client><Identity>jane</Identity>\n<Parameter value=\"x\"/></Client></Dial></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::MissingAttribute { element, attribute: "name", .. } if element == "Parameter"),
        "{e:?}"
    );
    assert_eq!(pos(&e), "2:1");
}

#[test]
fn sip_with_tel_scheme() {
    let xml = "<Response><Dial><Sip>tel:+14155551212</Sip></Dial></Response>";
    let e = err(xml);
    assert!(
        matches!(
            &e,
            ParseError::InvalidSipUri {
                reason: "scheme must be sip: or sips:",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "tel:"));
}

#[test]
fn dial_with_nothing_to_dial() {
    let xml = "<Response>\n <Dial timeout=\"20\"> </Dial></Response>";
    let e = err(xml);
    assert!(matches!(e, ParseError::NothingToDial { .. }), "{e:?}");
    assert_eq!(pos(&e), at(xml, "<Dial"));
}

#[test]
fn conference_mixed_with_number() {
    let xml = "<Response><Dial><Number>+14155551212</Number><Conference>room</Conference></Dial></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::ExclusiveNoun { element, .. } if element == "Conference"),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "<Conference"));
}

#[test]
fn text_mixed_with_nouns_in_dial() {
    let xml = "<Response><Dial>+14155551212<Number>+14155551213</Number></Dial></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::UnexpectedText { element, text, .. } if element == "Dial" && text == "+14155551212"),
        "{e:?}"
    );
}

#[test]
fn unknown_noun_in_dial() {
    let xml = "<Response><Dial>\n  <Sim>DE123</Sim></Dial></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::InvalidChild { parent, element, .. } if parent == "Dial" && element == "Sim"),
        "{e:?}"
    );
    assert_eq!(pos(&e), "2:3");
}

#[test]
fn dial_nested_in_gather() {
    let xml = "<Response><Gather><Dial>+14155551212</Dial></Gather></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::InvalidChild { parent, element, .. } if parent == "Gather" && element == "Dial"),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "<Dial"));
}

#[test]
fn noun_used_as_a_verb() {
    let e = err("<Response><Number>+14155551212</Number></Response>");
    assert!(
        matches!(&e, ParseError::InvalidChild { parent, element, .. } if parent == "Response" && element == "Number"),
        "{e:?}"
    );
}

#[test]
fn unknown_verb_is_an_error() {
    let xml = "<Response>\n  <Dail>+14155551212</Dail>\n</Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::UnknownVerb { element, .. } if element == "Dail"),
        "{e:?}"
    );
    assert_eq!(pos(&e), "2:3");
}

#[test]
fn twilio_verb_tandem_does_not_implement() {
    let e = err("<Response><Connect/></Response>");
    assert!(
        matches!(&e, ParseError::UnsupportedVerb { element, .. } if element == "Connect"),
        "{e:?}"
    );
}

#[test]
fn record_attributes_out_of_range() {
    for (xml, attribute) in [
        (
            r#"<Response><Record maxLength="0"/></Response>"#,
            "maxLength",
        ),
        (
            r#"<Response><Record maxLength="14401"/></Response>"#,
            "maxLength",
        ),
        (r#"<Response><Record timeout="-1"/></Response>"#, "timeout"),
        (
            r##"<Response><Record finishOnKey="#x"/></Response>"##,
            "finishOnKey",
        ),
        (
            r#"<Response><Record playBeep="maybe"/></Response>"#,
            "playBeep",
        ),
        (r#"<Response><Record trim="some"/></Response>"#, "trim"),
        (
            r#"<Response><Record transcribe="perhaps"/></Response>"#,
            "transcribe",
        ),
        (
            r#"<Response><Record recordingStatusCallbackEvent="done"/></Response>"#,
            "recordingStatusCallbackEvent",
        ),
    ] {
        let e = err(xml);
        assert!(
            matches!(&e, ParseError::InvalidAttribute { element, attribute: a, .. }
                if element == "Record" && a == attribute),
            "{xml}: {e:?}"
        );
    }
    let e = err("<Response><Record>text</Record></Response>");
    assert!(matches!(e, ParseError::UnexpectedText { .. }), "{e:?}");
}

#[test]
fn root_is_not_response() {
    let xml = "<?xml version=\"1.0\"?>\n<Reponse><Hangup/></Reponse>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::NotResponse { element, .. } if element == "Reponse"),
        "{e:?}"
    );
    assert_eq!(pos(&e), "2:1");
}

#[test]
fn empty_input() {
    assert_eq!(err("  \n "), ParseError::Empty);
    assert_eq!(
        err("<?xml version=\"1.0\"?><!-- nothing -->"),
        ParseError::Empty
    );
}

#[test]
fn mismatched_end_tag_is_malformed_xml() {
    let xml = "<Response>\n<Say>hi</Sya>\n</Response>";
    let e = err(xml);
    assert!(matches!(e, ParseError::Xml { .. }), "{e:?}");
    assert_eq!(e.position().map(|p| p.line), Some(2));
}

#[test]
fn duplicate_attribute_is_malformed_xml() {
    let e = err("<Response><Dial timeout=\"10\" timeout=\"20\">+14155551212</Dial></Response>");
    assert!(matches!(e, ParseError::Xml { .. }), "{e:?}");
}

#[test]
fn unknown_entity_is_malformed_xml() {
    let e = err("<Response><Say>a &bogus; b</Say></Response>");
    assert!(matches!(e, ParseError::Xml { .. }), "{e:?}");
}

#[test]
fn unclosed_response() {
    let e = err("<Response><Say>hi</Say>");
    assert!(matches!(e, ParseError::Xml { .. }), "{e:?}");
}

#[test]
fn text_directly_in_response() {
    let xml = "<Response>\n  call me maybe\n</Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::UnexpectedText { element, text, .. } if element == "Response" && text == "call me maybe"),
        "{e:?}"
    );
    assert_eq!(pos(&e), "2:3");
}

#[test]
fn redirect_without_url() {
    let xml = "<Response><Redirect method=\"GET\"/></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::MissingContent { element, .. } if element == "Redirect"),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "<Redirect"));
}

#[test]
fn redirect_to_a_non_url() {
    let xml = "<Response><Redirect>not a url</Redirect></Response>";
    let e = err(xml);
    assert!(
        matches!(&e, ParseError::InvalidContent { element, value, .. } if element == "Redirect" && value == "not a url"),
        "{e:?}"
    );
    assert_eq!(pos(&e), at(xml, "not a url"));
}

#[test]
fn say_without_text() {
    let e = err("<Response><Say voice=\"alice\">  </Say></Response>");
    assert!(
        matches!(&e, ParseError::MissingContent { element, .. } if element == "Say"),
        "{e:?}"
    );
}

#[test]
fn play_without_url_or_digits() {
    let e = err("<Response><Play loop=\"2\"/></Response>");
    assert!(
        matches!(&e, ParseError::MissingContent { element, .. } if element == "Play"),
        "{e:?}"
    );
}

#[test]
fn hangup_with_content() {
    let e = err("<Response><Hangup>now</Hangup></Response>");
    assert!(
        matches!(&e, ParseError::UnexpectedText { element, .. } if element == "Hangup"),
        "{e:?}"
    );
}

#[test]
fn dial_in_a_screening_document() {
    let xml = "<Response>\n  <Say>Press 1</Say>\n  <Dial>+14155551212</Dial>\n</Response>";
    let e = parse_screening(xml).expect_err("screening documents may not dial");
    assert!(
        matches!(&e, ParseError::NotAllowedInScreening { element, .. } if element == "Dial"),
        "{e:?}"
    );
    assert_eq!(pos(&e), "3:3");
    assert!(
        parse(xml).is_ok(),
        "the same document is fine on the caller's leg"
    );
}

#[test]
fn redirect_and_reject_in_a_screening_document() {
    for xml in [
        "<Response><Redirect>/next</Redirect></Response>",
        "<Response><Reject/></Response>",
        "<Response><Record/></Response>",
    ] {
        let e = parse_screening(xml).expect_err("not allowed");
        assert!(
            matches!(e, ParseError::NotAllowedInScreening { .. }),
            "{e:?}"
        );
    }
}

#[test]
fn deeply_nested_document_is_refused_without_overflow() {
    let xml = format!("<Response>{}", "<Say>".repeat(10_000));
    let e = err(&xml);
    assert!(matches!(e, ParseError::TooDeep { .. }), "{e:?}");
}

#[test]
fn document_larger_than_64_kilobytes() {
    let filler = "<Pause/>".repeat(64 * 1024 / 8);
    let xml = format!("<Response>{filler}</Response>");
    let e = err(&xml);
    assert_eq!(
        e,
        ParseError::TooLarge {
            size: xml.len(),
            limit: tandem_twiml::MAX_DOCUMENT_BYTES
        }
    );
    assert_eq!(e.position(), None);
}

/// Regression (issue "Hostile networks and overload"): what TwiML puts into
/// a child INVITE could inject SIP. `<Sip>` URI headers other than `X-` and
/// User-to-User, a CR/LF in a URI header or a `<Parameter>` value, a
/// `<Parameter>` name that is no token and a `callerId` that reshapes the
/// From URI are refused at parse time, naming the fault.
#[test]
fn twiml_cannot_inject_sip_headers() {
    for (uri, reason) in [
        (
            "sip:a@192.0.2.1?Via=SIP/2.0/UDP%20evil",
            "only X- headers, User-to-User and Replaces may be set in the URI",
        ),
        (
            "sip:a@192.0.2.1?Authorization=x",
            "only X- headers, User-to-User and Replaces may be set in the URI",
        ),
        (
            "sip:a@192.0.2.1?X-Ok=1%0D%0AVia:%20evil",
            "a header value with a line break or control character",
        ),
        (
            "sip:a@192.0.2.1?X-A%20B=1",
            "a header name that is not a token",
        ),
    ] {
        let xml = format!("<Response><Dial><Sip>{uri}</Sip></Dial></Response>");
        match err(&xml) {
            ParseError::InvalidSipUri { reason: r, .. } => assert_eq!(r, reason, "{uri}"),
            other => panic!("{uri}: {other:?}"),
        }
    }
    let ok = "<Response><Dial><Sip>sip:a@192.0.2.1?X-Customer=42&amp;User-to-User=abc</Sip></Dial></Response>";
    assert!(parse(ok).is_ok());

    let xml = r#"<Response><Dial><Client><Identity>alice</Identity><Parameter name="k" value="v&#13;&#10;Via: evil"/></Client></Dial></Response>"#;
    match err(xml) {
        ParseError::InvalidAttribute {
            element,
            attribute,
            value,
            ..
        } => assert_eq!(
            (element.as_str(), attribute.as_str(), value.as_str()),
            ("Parameter", "value", "v\r\nVia: evil")
        ),
        other => panic!("{other:?}"),
    }
    let xml = r#"<Response><Dial><Client><Identity>alice</Identity><Parameter name="a: b" value="v"/></Client></Dial></Response>"#;
    assert_invalid_attribute(xml, "Parameter", "name", "a: b");

    for bad in ["a@b;x", "a;b", "x:y", "a?b", "a/b"] {
        let xml = format!(
            r#"<Response><Dial callerId="{bad}"><Sip>sip:a@192.0.2.1</Sip></Dial></Response>"#
        );
        assert_invalid_attribute(&xml, "Dial", "callerId", bad);
    }
    for good in ["+14155551212", "client:alice", "alice_1.2", "Support-Line"] {
        let xml = format!(
            r#"<Response><Dial callerId="{good}"><Sip>sip:a@192.0.2.1</Sip></Dial></Response>"#
        );
        assert!(parse(&xml).is_ok(), "{good}");
    }
}

#[test]
fn conference_attributes_out_of_range_are_errors_at_their_attribute() {
    for (attr, bad) in [
        ("beep", "maybe"),
        ("muted", "yes"),
        ("maxParticipants", "1"),
        ("maxParticipants", "251"),
        ("coach", "CA123"),
        ("statusCallbackEvent", "begin"),
        ("statusCallbackEvent", ""),
        ("record", "record-from-answer"),
        ("participantLabel", ""),
        ("waitMethod", "PUT"),
    ] {
        let xml = format!(
            r#"<Response><Dial><Conference {attr}="{bad}">room</Conference></Dial></Response>"#
        );
        let e = err(&xml);
        assert!(
            matches!(&e, ParseError::InvalidAttribute { attribute, .. } if attribute == attr),
            "{attr}={bad:?}: {e:?}"
        );
        assert_eq!(pos(&e), at(&xml, attr), "{attr}");
    }
    let long = "r".repeat(129);
    let e = err(&format!(
        "<Response><Dial><Conference>{long}</Conference></Dial></Response>"
    ));
    assert!(
        matches!(&e, ParseError::MissingContent { element, .. } if element == "Conference"),
        "{e:?}"
    );
}

#[test]
fn queue_names_and_enqueue_in_screening_are_refused() {
    for xml in [
        "<Response><Enqueue></Enqueue></Response>".to_owned(),
        format!("<Response><Enqueue>{}</Enqueue></Response>", "q".repeat(65)),
        "<Response><Dial><Queue> </Queue></Dial></Response>".to_owned(),
    ] {
        let e = err(&xml);
        assert!(
            matches!(&e, ParseError::MissingContent { .. }),
            "{xml}: {e:?}"
        );
    }
    let e = err(r#"<Response><Enqueue waitUrlMethod="PUT">q</Enqueue></Response>"#);
    assert!(
        matches!(&e, ParseError::InvalidAttribute { attribute, .. } if attribute == "waitUrlMethod"),
        "{e:?}"
    );
    let e = tandem_twiml::parse_screening("<Response><Enqueue>q</Enqueue></Response>").unwrap_err();
    assert!(
        matches!(&e, ParseError::NotAllowedInScreening { element, .. } if element == "Enqueue"),
        "{e:?}"
    );
}
