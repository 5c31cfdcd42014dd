//! TwiML parsing (tandem_twiml::parse and parse_screening) of the input as
//! UTF-8 (lossy), and, for a document that parses, the sans-IO interpreter
//! run for a bounded number of steps on the caller's leg and on a screening
//! leg, each command answered with a plausible event picked by the input's
//! own bytes (so fetches return this same document, fail, or hang up).

use tandem_twiml::{
    Command, DialCallStatus, DialOutcome, Document, EnqueueOutcome, Event, Interpreter,
    QueueResult, RecordOutcome, parse, parse_screening,
};
use url::Url;

/// Commands taken from one interpreter before giving up.
const MAX_STEPS: usize = 200;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let base = Url::parse("http://app.example/voice.xml").ok();
        match parse(&text) {
            Ok(doc) => {
                notices(&doc);
                run(Interpreter::new(doc, base.clone()), &text, data);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        match parse_screening(&text) {
            Ok(doc) => {
                notices(&doc);
                run(Interpreter::screening_document(doc, base), &text, data);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    });
}

fn notices(doc: &Document) {
    for n in doc.not_acted_on() {
        let _ = format!("{n:?}");
    }
}

fn run(mut interp: Interpreter, text: &str, choices: &[u8]) {
    let mut pick = choices.iter().copied().cycle().map(usize::from);
    let mut next = move |n: usize| pick.next().unwrap_or(0) % n;
    for _ in 0..MAX_STEPS {
        // No command: finished, or waiting on an event for a command
        // already answered.
        let Some(cmd) = interp.poll_command() else {
            break;
        };
        let event = match cmd {
            Command::Answer => continue,
            Command::Say(_) | Command::Play(_) | Command::Pause { .. } => Event::VerbDone,
            Command::Gather(g) => match next(4) {
                0 => Event::GatherTimeout,
                3 => Event::Speech {
                    result: "talk to sales".to_owned(),
                    confidence: Some("0.9".to_owned()),
                },
                1 => Event::Digits {
                    digits: "1234".to_owned(),
                    finished_on_key: g.finish_on_key,
                },
                _ => Event::Digits {
                    digits: String::new(),
                    finished_on_key: Some('#'),
                },
            },
            Command::Dial(_) => {
                let status = [
                    DialCallStatus::Completed,
                    DialCallStatus::Busy,
                    DialCallStatus::NoAnswer,
                    DialCallStatus::Failed,
                    DialCallStatus::Canceled,
                ][next(5)];
                let bridged = status == DialCallStatus::Completed;
                Event::DialOutcome(DialOutcome {
                    status,
                    call_sid: Some("CA0123456789abcdef0123456789abcdef".to_owned()),
                    duration: bridged.then_some(12),
                    bridged,
                    recording_url: None,
                    extra: Vec::new(),
                })
            }
            Command::Enqueue(e) => {
                let _ = (e.queue.len(), e.action.as_deref(), e.wait_url.as_deref());
                let result = [
                    QueueResult::Bridged,
                    QueueResult::QueueFull,
                    QueueResult::Hangup,
                    QueueResult::Leave,
                    QueueResult::Error,
                ][next(5)];
                Event::Enqueued(EnqueueOutcome {
                    result,
                    queue_sid: Some("QU0123456789abcdef0123456789abcdef".to_owned()),
                    queue_time: 7,
                })
            }
            Command::Record(r) => {
                let _ = (r.action.as_deref(), r.finish_on_key.len(), r.max_length);
                Event::Recorded(match next(3) {
                    0 => RecordOutcome::default(),
                    1 => RecordOutcome {
                        recording_sid: Some("RE0123456789abcdef0123456789abcdef".to_owned()),
                        recording_url: Some("http://tandem.local/rec".to_owned()),
                        duration_secs: 4,
                        digits: "#".to_owned(),
                    },
                    _ => RecordOutcome {
                        recording_sid: Some("RE0123456789abcdef0123456789abcdef".to_owned()),
                        recording_url: Some("http://tandem.local/rec".to_owned()),
                        duration_secs: 1,
                        digits: "hangup".to_owned(),
                    },
                })
            }
            Command::Fetch(req) => {
                let _ = (req.url.as_str(), req.method, req.params.len(), req.reason);
                match next(3) {
                    0 => Event::Fetched {
                        body: text.to_owned(),
                        final_url: None,
                    },
                    1 => Event::FetchFailed {
                        reason: "fuzz".to_owned(),
                    },
                    _ => Event::Fetched {
                        body: "<Response><Hangup/></Response>".to_owned(),
                        final_url: Url::parse("http://app.example/other/next.xml").ok(),
                    },
                }
            }
            Command::Hangup | Command::Reject { .. } | Command::Screened(_) => break,
        };
        if next(16) == 0 {
            let _ = interp.handle(Event::CallerHangup);
            continue;
        }
        let _ = interp.handle(event);
    }
    let _ = (interp.outcome(), interp.answered(), interp.document_url());
}
