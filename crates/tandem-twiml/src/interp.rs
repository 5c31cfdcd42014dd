//! The sans-IO TwiML interpreter: runs a document's verbs, asks the engine
//! to play, gather, dial and fetch through [`Command`]s, and continues on the
//! [`Event`]s it is fed. No I/O, no clock, no tasks.

use std::collections::VecDeque;
use std::time::Duration;

use url::Url;

use crate::ast::{Dial, Document, Gather, Play, Prompt, Record, Say, Verb};
use crate::command::{
    Command, DialOutcome, Event, FetchReason, FetchRequest, Outcome, RecordOutcome,
    ScreeningVerdict,
};
use crate::parse::{parse, parse_screening};
use crate::values::Method;

/// Consecutive document fetches allowed without a verb that plays to,
/// listens to or dials for the caller in between — `<Redirect>` loops, or a
/// `<Dial action>` that dials nothing and returns itself. One more is an
/// application error.
pub const MAX_CONSECUTIVE_REDIRECTS: u32 = 10;

/// What Twilio says before hanging up on a broken application.
pub const APPLICATION_ERROR_TEXT: &str =
    "We are sorry, an application error has occurred. Goodbye.";

/// An event the interpreter cannot take in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InterpretError {
    /// The event does not answer the command the interpreter waits on.
    #[error("event {event} is unexpected while waiting for {waiting}")]
    UnexpectedEvent {
        /// The event received.
        event: &'static str,
        /// What the interpreter waits for.
        waiting: &'static str,
    },
    /// The interpreter has finished; no further events are taken.
    #[error("event {event} arrived after the interpreter finished")]
    Finished {
        /// The event received.
        event: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Call,
    Screening,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Wait {
    /// Running verbs (transient inside `run`).
    Running,
    /// A Say, Play or Pause is playing.
    Verb,
    /// A Gather is listening.
    Gather {
        action: Option<Url>,
        method: Method,
        on_empty: bool,
    },
    /// A Dial is ringing or bridged.
    Dial { action: Option<Url>, method: Method },
    /// A Record is beeping or recording.
    Record { action: Option<Url>, method: Method },
    /// The caller is in a queue (or bridged from it).
    Enqueue { action: Option<Url>, method: Method },
    /// A document is being fetched from `url`.
    Fetch { url: Url },
    /// The application error message is playing.
    ErrorMessage,
    /// Finished.
    Done,
}

impl Wait {
    fn name(&self) -> &'static str {
        match self {
            Self::Running => "nothing",
            Self::Verb => "VerbDone",
            Self::Gather { .. } => "Digits, Speech or GatherTimeout",
            Self::Dial { .. } => "DialOutcome",
            Self::Record { .. } => "Recorded",
            Self::Enqueue { .. } => "Enqueued",
            Self::Fetch { .. } => "Fetched or FetchFailed",
            Self::ErrorMessage => "VerbDone (error message)",
            Self::Done => "nothing (finished)",
        }
    }
}

/// Runs TwiML for one leg. Construct it, drain [`Interpreter::poll_command`],
/// perform the commands in order, and feed what happened to
/// [`Interpreter::handle`]; repeat until [`Interpreter::outcome`] is set.
///
/// The caller's leg is built with [`Interpreter::new`] (a parsed document)
/// or [`Interpreter::fetching`] (the first document still to fetch); a
/// callee's screening leg with [`Interpreter::screening`] or
/// [`Interpreter::screening_document`].
#[derive(Debug)]
pub struct Interpreter {
    mode: Mode,
    verbs: Vec<Verb>,
    pc: usize,
    base: Option<Url>,
    answered: bool,
    /// An `answerOnBridge` dial ran and left the caller unanswered.
    rang_on_bridge: bool,
    /// Fetches since the last verb that waited on the caller.
    hops: u32,
    wait: Wait,
    commands: VecDeque<Command>,
    outcome: Option<Outcome>,
}

impl Interpreter {
    /// Runs `document` (fetched from `url`, if it has one) on the caller's
    /// leg; the first commands are ready at once.
    pub fn new(document: Document, url: Option<Url>) -> Self {
        let mut me = Self::empty(Mode::Call, url);
        me.load(document);
        me
    }

    /// Starts the caller's leg by fetching its first document.
    pub fn fetching(url: Url, method: Method) -> Self {
        let mut me = Self::empty(Mode::Call, None);
        me.fetch(url, method, Vec::new(), FetchReason::Initial);
        me
    }

    /// Runs a screening `document` on an answered callee's leg.
    pub fn screening_document(document: Document, url: Option<Url>) -> Self {
        let mut me = Self::empty(Mode::Screening, url);
        me.load(document);
        me
    }

    /// Starts screening an answered callee by fetching the noun's `url`.
    pub fn screening(url: Url, method: Method) -> Self {
        let mut me = Self::empty(Mode::Screening, None);
        me.fetch(url, method, Vec::new(), FetchReason::Screening);
        me
    }

    fn empty(mode: Mode, base: Option<Url>) -> Self {
        Self {
            mode,
            verbs: Vec::new(),
            pc: 0,
            base,
            answered: mode == Mode::Screening,
            rang_on_bridge: false,
            hops: 0,
            wait: Wait::Running,
            commands: VecDeque::new(),
            outcome: None,
        }
    }

    /// The next command to perform, in order.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// How the interpreter finished, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Whether the caller has been answered (by `Answer` or a bridged
    /// `answerOnBridge` dial).
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// The URL of the document being run, against which URLs resolve.
    pub fn document_url(&self) -> Option<&Url> {
        self.base.as_ref()
    }

    /// Feeds what happened to the last command. An event that does not
    /// answer it is refused with [`InterpretError::UnexpectedEvent`] and
    /// changes nothing; after the interpreter finished, every event is
    /// refused with [`InterpretError::Finished`] (the engine may ignore that,
    /// e.g. for a hangup racing `Command::Hangup`).
    pub fn handle(&mut self, event: Event) -> Result<(), InterpretError> {
        let name = event.name();
        if self.wait == Wait::Done {
            return Err(InterpretError::Finished { event: name });
        }
        let wait = std::mem::replace(&mut self.wait, Wait::Running);
        match (wait, event) {
            (_, Event::CallerHangup) => {
                tracing::debug!("remote party hung up; interpreter stops");
                if self.mode == Mode::Screening {
                    self.commands
                        .push_back(Command::Screened(ScreeningVerdict::Declined));
                    self.finish(Outcome::Screened(ScreeningVerdict::Declined));
                } else {
                    self.finish(Outcome::RemoteHangup);
                }
            }
            (Wait::Verb, Event::VerbDone) => self.next(),
            (Wait::ErrorMessage, Event::VerbDone) => {
                self.commands.push_back(Command::Hangup);
                self.finish(Outcome::ApplicationError);
            }
            (
                Wait::Gather {
                    action,
                    method,
                    on_empty,
                },
                Event::Digits {
                    digits,
                    finished_on_key,
                },
            ) => {
                self.gathered(action, method, on_empty, digits, finished_on_key);
            }
            (
                Wait::Gather {
                    action,
                    method,
                    on_empty,
                },
                Event::GatherTimeout,
            ) => {
                self.gathered(action, method, on_empty, String::new(), None);
            }
            (
                Wait::Gather {
                    action,
                    method,
                    on_empty,
                },
                Event::Speech { result, confidence },
            ) => self.heard(action, method, on_empty, result, confidence),
            (Wait::Dial { action, method }, Event::DialOutcome(outcome)) => {
                self.dialed(action, method, &outcome);
            }
            (Wait::Enqueue { action, method }, Event::Enqueued(outcome)) => match action {
                Some(url) => self.fetch(url, method, outcome.params(), FetchReason::EnqueueAction),
                None => self.next(),
            },
            (Wait::Record { action, method }, Event::Recorded(outcome)) => {
                self.recorded(action, method, &outcome);
            }
            (Wait::Fetch { url }, Event::Fetched { body, final_url }) => {
                self.fetched(final_url.unwrap_or(url), &body);
            }
            (
                Wait::Fetch { url },
                Event::FetchedDocument {
                    document,
                    final_url,
                },
            ) => {
                self.base = Some(final_url.unwrap_or(url));
                self.load(document);
            }
            (wait, Event::Redirected { document, url })
                if self.mode == Mode::Call && wait != Wait::ErrorMessage =>
            {
                tracing::debug!(url = ?url.as_ref().map(Url::as_str), "document replaced");
                if url.is_some() {
                    self.base = url;
                }
                self.hops = 0;
                self.load(document);
            }
            (Wait::Fetch { url }, Event::FetchFailed { reason }) => {
                tracing::error!(%url, %reason, "TwiML fetch failed");
                self.application_error();
            }
            (wait, _) => {
                let waiting = wait.name();
                self.wait = wait;
                return Err(InterpretError::UnexpectedEvent {
                    event: name,
                    waiting,
                });
            }
        }
        Ok(())
    }

    fn finish(&mut self, outcome: Outcome) {
        tracing::debug!(?outcome, "interpreter finished");
        self.wait = Wait::Done;
        self.outcome = Some(outcome);
    }

    fn load(&mut self, document: Document) {
        self.verbs = document.verbs;
        self.pc = 0;
        self.run();
    }

    fn next(&mut self) {
        self.pc += 1;
        self.run();
    }

    fn ensure_answered(&mut self) {
        if !self.answered {
            self.commands.push_back(Command::Answer);
            self.answered = true;
        }
    }

    fn resolve(&self, reference: &str) -> Option<Url> {
        let resolved = match &self.base {
            Some(base) => base.join(reference),
            None => Url::parse(reference),
        };
        match resolved {
            Ok(url) => Some(url),
            Err(error) => {
                tracing::error!(reference, base = ?self.base.as_ref().map(Url::as_str), %error,
                    "cannot resolve TwiML URL");
                None
            }
        }
    }

    /// Runs verbs from `pc` until one waits for an event or the document ends.
    fn run(&mut self) {
        let Some(verb) = self.verbs.get(self.pc).cloned() else {
            self.end_of_document();
            return;
        };
        let waits_on_caller = match &verb {
            Verb::Redirect(_) => false,
            Verb::Dial(dial) => !dial.nouns.is_empty(),
            _ => true,
        };
        if waits_on_caller {
            self.hops = 0;
        }
        let allowed = self.mode == Mode::Call
            || matches!(
                verb,
                Verb::Say(_) | Verb::Play(_) | Verb::Pause(_) | Verb::Gather(_) | Verb::Hangup
            );
        if !allowed {
            tracing::error!(
                verb = verb.name(),
                "verb not allowed in a screening document"
            );
            self.application_error();
            return;
        }
        match verb {
            Verb::Say(say) => self.play_verb(Command::Say(say)),
            Verb::Play(play) => match self.resolve_play(play) {
                Some(play) => self.play_verb(Command::Play(play)),
                None => self.application_error(),
            },
            Verb::Pause(pause) => self.play_verb(Command::Pause {
                duration: Duration::from_secs(u64::from(pause.length)),
            }),
            Verb::Gather(gather) => self.gather(gather),
            Verb::Dial(dial) => self.dial(dial),
            Verb::Record(record) => self.record(record),
            Verb::Enqueue(enqueue) => self.enqueue(enqueue),
            Verb::Leave => {
                tracing::warn!("<Leave> outside an <Enqueue> waitUrl document does nothing");
                self.next();
            }
            Verb::Hangup => {
                if self.mode == Mode::Screening {
                    self.commands
                        .push_back(Command::Screened(ScreeningVerdict::Declined));
                    self.finish(Outcome::Screened(ScreeningVerdict::Declined));
                } else {
                    self.ensure_answered();
                    self.commands.push_back(Command::Hangup);
                    self.finish(Outcome::HungUp);
                }
            }
            Verb::Reject(reject) => {
                if self.answered {
                    tracing::info!("<Reject> on an answered call hangs up");
                    self.commands.push_back(Command::Hangup);
                    self.finish(Outcome::HungUp);
                } else {
                    self.commands.push_back(Command::Reject {
                        reason: reject.reason,
                    });
                    self.finish(Outcome::Rejected(reject.reason));
                }
            }
            Verb::Redirect(redirect) => match self.resolve(&redirect.url) {
                Some(url) => self.fetch(url, redirect.method, Vec::new(), FetchReason::Redirect),
                None => self.application_error(),
            },
        }
    }

    fn play_verb(&mut self, command: Command) {
        self.ensure_answered();
        self.commands.push_back(command);
        self.wait = Wait::Verb;
    }

    fn resolve_play(&self, mut play: Play) -> Option<Play> {
        if let Some(url) = &play.url {
            play.url = Some(self.resolve(url)?.into());
        }
        Some(play)
    }

    fn gather(&mut self, mut gather: Gather) {
        let action = match gather.action.as_deref() {
            Some(action) => match self.resolve(action) {
                Some(url) => Some(url),
                None => return self.application_error(),
            },
            // Twilio posts the digits to the current document's URL.
            None => self.base.clone(),
        };
        let mut prompts = Vec::with_capacity(gather.prompts.len());
        for prompt in std::mem::take(&mut gather.prompts) {
            prompts.push(match prompt {
                Prompt::Play(play) => match self.resolve_play(play) {
                    Some(play) => Prompt::Play(play),
                    None => return self.application_error(),
                },
                other => other,
            });
        }
        gather.prompts = prompts;
        gather.action = action.as_ref().map(|u| u.to_string());
        self.ensure_answered();
        self.wait = Wait::Gather {
            action,
            method: gather.method,
            on_empty: gather.action_on_empty_result,
        };
        self.commands.push_back(Command::Gather(gather));
    }

    fn gathered(
        &mut self,
        action: Option<Url>,
        method: Method,
        on_empty: bool,
        digits: String,
        finished_on_key: Option<char>,
    ) {
        let empty = digits.is_empty();
        let mut params = vec![("Digits".to_owned(), digits)];
        if let Some(key) = finished_on_key {
            params.push(("FinishedOnKey".to_owned(), key.to_string()));
        }
        self.gather_action(action, method, on_empty || !empty, params);
    }

    /// A `<Gather>`'s input goes to `action` (`post`), or the document goes
    /// on with the next verb: no input without `actionOnEmptyResult`, or no
    /// URL to post to.
    fn gather_action(
        &mut self,
        action: Option<Url>,
        method: Method,
        post: bool,
        params: Vec<(String, String)>,
    ) {
        if !post {
            tracing::debug!("<Gather> got no input; next verb");
            return self.next();
        }
        let Some(url) = action else {
            tracing::warn!("<Gather> has no action and the document no URL; input dropped");
            return self.next();
        };
        self.fetch(url, method, params, FetchReason::GatherAction);
    }

    /// A speech `<Gather>` ended: `SpeechResult` and `Confidence` to
    /// `action`, or the next verb when nothing was recognised (unless
    /// `actionOnEmptyResult`).
    fn heard(
        &mut self,
        action: Option<Url>,
        method: Method,
        on_empty: bool,
        result: String,
        confidence: Option<String>,
    ) {
        let post = on_empty || !result.is_empty();
        let mut params = vec![("SpeechResult".to_owned(), result)];
        if let Some(c) = confidence {
            params.push(("Confidence".to_owned(), c));
        }
        self.gather_action(action, method, post, params);
    }

    fn record(&mut self, mut record: Record) {
        let action = match record.action.as_deref() {
            Some(action) => match self.resolve(action) {
                Some(url) => Some(url),
                None => return self.application_error(),
            },
            // Twilio posts the recording to the current document's URL.
            None => self.base.clone(),
        };
        if let Some(reference) = record.recording_status_callback.as_deref() {
            match self.resolve(reference) {
                Some(url) => record.recording_status_callback = Some(url.into()),
                None => return self.application_error(),
            }
        }
        if let Some(reference) = record.transcribe_callback.as_deref() {
            match self.resolve(reference) {
                Some(url) => record.transcribe_callback = Some(url.into()),
                None => return self.application_error(),
            }
        }
        record.action = action.as_ref().map(|u| u.to_string());
        self.ensure_answered();
        self.wait = Wait::Record {
            action,
            method: record.method,
        };
        self.commands.push_back(Command::Record(record));
    }

    fn recorded(&mut self, action: Option<Url>, method: Method, outcome: &RecordOutcome) {
        if outcome.is_empty() {
            // Twilio: an empty recording does not request `action`; the
            // document goes on with the next verb.
            tracing::debug!("<Record> recorded nothing; next verb");
            return self.next();
        }
        let Some(url) = action else {
            tracing::warn!(
                "<Record> has no action and the document no URL; recording not reported"
            );
            return self.next();
        };
        self.fetch(url, method, outcome.params(), FetchReason::RecordAction);
    }

    fn enqueue(&mut self, mut enqueue: crate::ast::Enqueue) {
        let resolve = |slot: &mut Option<String>| -> Option<Option<Url>> {
            match slot.as_deref() {
                Some(reference) => {
                    let url = self.resolve(reference)?;
                    *slot = Some(url.to_string());
                    Some(Some(url))
                }
                None => Some(None),
            }
        };
        let Some(action) = resolve(&mut enqueue.action) else {
            return self.application_error();
        };
        if resolve(&mut enqueue.wait_url).is_none() {
            return self.application_error();
        }
        let method = enqueue.method;
        self.ensure_answered();
        self.commands.push_back(Command::Enqueue(enqueue));
        self.wait = Wait::Enqueue { action, method };
    }

    fn dial(&mut self, mut dial: Dial) {
        let action = match dial.action.as_deref() {
            Some(action) => match self.resolve(action) {
                Some(url) => Some(url),
                None => return self.application_error(),
            },
            None => None,
        };
        let method = dial.method;
        if matches!(
            dial.nouns.first(),
            Some(crate::ast::Noun::Conference(_) | crate::ast::Noun::Queue(_))
        ) {
            // A conference or a queue always answers the caller (Twilio has
            // no answerOnBridge for them) and ends when the caller leaves it.
            if self.resolve_dial_urls(&mut dial).is_none() {
                return self.application_error();
            }
            self.ensure_answered();
            self.commands.push_back(Command::Dial(dial));
            self.wait = Wait::Dial { action, method };
            return;
        }
        dial.nouns.retain(|n| n.is_dialable());
        if self.resolve_dial_urls(&mut dial).is_none() {
            return self.application_error();
        }
        if dial.answer_on_bridge {
            if !self.answered {
                self.rang_on_bridge = true;
            }
        } else {
            self.ensure_answered();
        }
        self.commands.push_back(Command::Dial(dial));
        self.wait = Wait::Dial { action, method };
    }

    fn resolve_dial_urls(&self, dial: &mut Dial) -> Option<()> {
        let fix = |slot: &mut Option<String>| -> Option<()> {
            if let Some(reference) = slot.as_deref() {
                *slot = Some(self.resolve(reference)?.into());
            }
            Some(())
        };
        fix(&mut dial.action)?;
        fix(&mut dial.recording_status_callback)?;
        fix(&mut dial.refer_url)?;
        for noun in &mut dial.nouns {
            if let crate::ast::Noun::Number(number) = noun {
                fix(&mut number.machine_detection.status_callback)?;
            }
            if let crate::ast::Noun::Conference(c) = noun {
                fix(&mut c.wait_url)?;
                fix(&mut c.status_callback)?;
                fix(&mut c.recording_status_callback)?;
            }
            if let crate::ast::Noun::Queue(q) = noun {
                fix(&mut q.url)?;
            }
            if let Some(options) = noun.options_mut() {
                fix(&mut options.url)?;
                fix(&mut options.status_callback)?;
            }
        }
        Some(())
    }

    fn dialed(&mut self, action: Option<Url>, method: Method, outcome: &DialOutcome) {
        if outcome.bridged && !self.answered {
            // The engine answered the caller when it bridged.
            self.answered = true;
            self.rang_on_bridge = false;
        }
        match action {
            Some(url) => self.fetch(url, method, outcome.params(), FetchReason::DialAction),
            None => self.next(),
        }
    }

    fn fetch(
        &mut self,
        url: Url,
        method: Method,
        params: Vec<(String, String)>,
        reason: FetchReason,
    ) {
        if matches!(
            reason,
            FetchReason::Redirect
                | FetchReason::DialAction
                | FetchReason::GatherAction
                | FetchReason::RecordAction
        ) {
            self.hops += 1;
            if self.hops > MAX_CONSECUTIVE_REDIRECTS {
                tracing::error!(%url, limit = MAX_CONSECUTIVE_REDIRECTS,
                    "too many consecutive fetches without a verb for the caller (redirect loop)");
                self.application_error();
                return;
            }
        }
        tracing::debug!(%url, %method, ?reason, "fetching TwiML");
        self.commands.push_back(Command::Fetch(FetchRequest {
            url: url.clone(),
            method,
            params,
            reason,
        }));
        self.wait = Wait::Fetch { url };
    }

    fn fetched(&mut self, url: Url, body: &str) {
        let parsed = match self.mode {
            Mode::Call => parse(body),
            Mode::Screening => parse_screening(body),
        };
        match parsed {
            Ok(document) => {
                self.base = Some(url);
                self.load(document);
            }
            Err(error) => {
                tracing::error!(%url, %error, "invalid TwiML document");
                self.application_error();
            }
        }
    }

    fn end_of_document(&mut self) {
        if self.mode == Mode::Screening {
            self.commands
                .push_back(Command::Screened(ScreeningVerdict::Accepted));
            self.finish(Outcome::Screened(ScreeningVerdict::Accepted));
            return;
        }
        if !self.rang_on_bridge {
            self.ensure_answered();
        }
        self.commands.push_back(Command::Hangup);
        self.finish(Outcome::HungUp);
    }

    /// Twilio's behaviour on a broken application: say so, then hang up.
    /// A screening leg just fails (the branch is dropped).
    fn application_error(&mut self) {
        if self.mode == Mode::Screening {
            self.commands
                .push_back(Command::Screened(ScreeningVerdict::Failed));
            self.finish(Outcome::Screened(ScreeningVerdict::Failed));
            return;
        }
        self.ensure_answered();
        self.commands.push_back(Command::Say(Say {
            text: APPLICATION_ERROR_TEXT.to_owned(),
            ..Say::default()
        }));
        self.wait = Wait::ErrorMessage;
    }
}
