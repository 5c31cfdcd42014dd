//! Attributes that are unknown or parsed-but-not-acted-on are logged when a
//! document uses them, never silently ignored.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records every event as "LEVEL message key=value ...".
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn logs_of(xml: &str) -> Vec<String> {
    let capture = Capture::default();
    let lines = Arc::clone(&capture.0);
    tracing::subscriber::with_default(capture, || {
        tandem_twiml::parse(xml).unwrap_or_else(|e| panic!("{e}"));
    });
    lines.lock().map(|l| l.clone()).unwrap_or_default()
}

/// Every attribute of the reference pages is acted on now (the last were
/// `<Gather>`'s speech attributes): none is reported as "not yet acted on".
#[test]
fn speech_attributes_are_acted_on_and_not_reported() {
    let logs = logs_of(
        "<Response><Gather input=\"speech\" speechTimeout=\"auto\"/><Gather speechModel=\"phone_call\"/></Response>",
    );
    assert!(
        !logs.iter().any(|l| l.contains("not yet acted on")),
        "{logs:#?}"
    );
    let left: Vec<_> = tandem_twiml::support::MATRIX
        .iter()
        .filter(|e| e.status != tandem_twiml::support::Status::Supported)
        .collect();
    assert!(left.is_empty(), "{left:#?}");
}

#[test]
fn unknown_attribute_is_logged_at_warn() {
    let logs = logs_of("<Response><Say colour=\"blue\">Hi</Say></Response>");
    let warn: Vec<_> = logs
        .iter()
        .filter(|l| l.starts_with(Level::WARN.as_str()))
        .collect();
    assert_eq!(warn.len(), 1, "{logs:#?}");
    assert!(
        warn[0].contains("unknown TwiML attribute")
            && warn[0].contains("attribute=colour")
            && warn[0].contains("at=1:16"),
        "{}",
        warn[0]
    );
}

#[test]
fn fully_supported_document_logs_nothing_above_debug() {
    let logs = logs_of(
        "<Response><Dial timeout=\"20\" action=\"/a\"><Number sendDigits=\"w1\">+14155551212</Number></Dial></Response>",
    );
    assert!(
        logs.iter()
            .all(|l| !l.starts_with("INFO") && !l.starts_with("WARN")),
        "{logs:#?}"
    );
}
