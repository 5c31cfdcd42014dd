//! `<Record>`: a beep, then the caller's voice recorded alone (mono, the
//! inbound track) until a `finishOnKey` key, `timeout` seconds of silence,
//! `maxLength`, or the caller hanging up; then the interpreter gets the
//! recording (or an empty outcome, and goes on with the next verb).
//!
//! Silence is the caller's voice activity (media_ops `VoiceTap`): the
//! timeout runs from the start of the recording and again from every end
//! of speech (reported [`HANGOVER`] after the last loud frame, which the
//! deadline takes back). While the caller speaks the tap says so every
//! [`KEEPALIVE`], and each report moves the deadline to `timeout` +
//! `KEEPALIVE` ahead: a caller whose packets stop mid-speech is silent from
//! then on, the deadline late by at most `KEEPALIVE`. A caller who sends no
//! audio at all is silent.

use tandem_twiml::{RecordOutcome, RecordingStatus};

use super::*;
use crate::media_ops::{HANGOVER, KEEPALIVE, beep};
use crate::recording::RecordingOptions;

/// A `<Record>` in progress.
#[derive(Debug)]
pub(super) struct RecordVerb {
    spec: tandem_twiml::Record,
    /// The beep's playback; recording starts when it ends.
    beep: Option<u64>,
    /// The recording runs.
    recording: bool,
    /// `maxLength` from the start of the recording.
    ends_at: Option<Instant>,
    /// When the current silence reaches `timeout`.
    silence_until: Option<Instant>,
    /// `recordingStatusCallback`, its method and events.
    callback: Option<(Url, tandem_twiml::Method, Vec<RecordingStatus>)>,
}

impl RecordVerb {
    pub(super) fn deadlines(&self) -> [Option<Instant>; 2] {
        [self.ends_at, self.silence_until]
    }
}

impl Call {
    /// Starts a `<Record>` on the caller's leg.
    pub(super) fn start_record(&mut self, spec: tandem_twiml::Record) {
        let Some(leg) = self.media else {
            tracing::info!("<Record> without media on the caller's leg: nothing recorded");
            self.feed(Event::Recorded(RecordOutcome::default()));
            return;
        };
        if !spec.finish_on_key.is_empty() {
            self.ensure_dtmf();
        }
        let callback = spec
            .recording_status_callback
            .as_deref()
            .and_then(|u| self.resolve_url(u))
            .map(|url| {
                let events = if spec.recording_status_callback_event.is_empty() {
                    vec![RecordingStatus::Completed]
                } else {
                    spec.recording_status_callback_event.clone()
                };
                (url, spec.recording_status_callback_method, events)
            });
        let play_beep = spec.play_beep;
        self.record = Some(Box::new(RecordVerb {
            spec,
            beep: None,
            recording: false,
            ends_at: None,
            silence_until: None,
            callback,
        }));
        if play_beep && let Some(id) = self.env.play(leg, Audio::Prompt(beep())) {
            if let Some(r) = &mut self.record {
                r.beep = Some(id);
            }
            return;
        }
        self.begin_recording();
    }

    /// The beep of the `<Record>` ended (`id`): whether it was that.
    pub(super) fn on_beep_done(&mut self, id: u64) -> bool {
        let Some(r) = &mut self.record else {
            return false;
        };
        if r.beep != Some(id) {
            return false;
        }
        r.beep = None;
        self.env.stop_play(id);
        self.begin_recording();
        true
    }

    fn begin_recording(&mut self) {
        let (Some(leg), Some(trim)) = (self.media, self.record.as_ref().map(|r| r.spec.trim))
        else {
            return;
        };
        let started = self
            .env
            .start_recording(&self.sid, RecordingOptions::record_verb(trim), leg);
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "<Record>: recording not started");
                self.end_record("");
                return;
            }
        };
        tracing::info!(recording = %started.event.recording_sid, "<Record> recording");
        let now = self.now;
        let Some(r) = &mut self.record else { return };
        r.recording = true;
        r.ends_at = Some(now + Duration::from_secs(u64::from(r.spec.max_length)));
        let silence_ends = r.spec.timeout > 0;
        if silence_ends {
            r.silence_until = Some(now + Duration::from_secs(u64::from(r.spec.timeout)));
        }
        let callback = r
            .callback
            .clone()
            .filter(|(_, _, events)| events.contains(&RecordingStatus::InProgress));
        if let Some((url, method, _)) = callback {
            self.out.push_back(Output::Recording {
                url,
                method,
                event: Box::new(started.event),
            });
        }
        if silence_ends {
            self.env.listen_voice(leg, true);
        }
    }

    /// The caller started or stopped speaking.
    pub(super) fn on_voice(&mut self, c: VoiceChange) {
        if Some(c.leg) != self.media {
            self.screen_voice(c.leg, c.speaking);
            return;
        }
        let now = self.now;
        if let Some(g) = &mut self.gather {
            g.on_voice(now, c.speaking);
        }
        let Some(r) = self.record.as_mut().filter(|r| r.recording) else {
            return;
        };
        if r.spec.timeout == 0 {
            return;
        }
        let timeout = Duration::from_secs(u64::from(r.spec.timeout));
        r.silence_until = Some(if c.speaking {
            now + timeout + KEEPALIVE
        } else {
            // The change is reported HANGOVER into the silence.
            now + timeout.saturating_sub(HANGOVER)
        });
    }

    /// A key from the caller: whether it ended the `<Record>`.
    pub(super) fn record_digit(&mut self, digit: char) -> bool {
        let ends = self
            .record
            .as_ref()
            .is_some_and(|r| r.spec.finish_on_key.contains(digit));
        if ends {
            tracing::info!(%digit, "<Record> ended by finishOnKey");
            self.end_record(&digit.to_string());
        }
        ends || self.record.is_some()
    }

    /// `maxLength` or the silence timeout passed.
    pub(super) fn record_timers(&mut self, t: Instant) {
        let Some(r) = &self.record else { return };
        if r.ends_at.is_some_and(|d| d <= t) {
            tracing::info!("<Record> reached maxLength");
            self.end_record("");
        } else if r.silence_until.is_some_and(|d| d <= t) {
            tracing::info!(timeout = r.spec.timeout, "<Record> ended by silence");
            self.end_record("");
        }
    }

    /// Ends the `<Record>`, if one runs: the recording stops and the
    /// interpreter gets it, with `digits` (a key, `hangup`, or empty).
    pub(super) fn end_record(&mut self, digits: &str) {
        let Some(r) = self.record.take() else { return };
        if let Some(id) = r.beep {
            self.env.stop_play(id);
        }
        let mut outcome = RecordOutcome {
            digits: digits.to_owned(),
            ..RecordOutcome::default()
        };
        if r.recording {
            if let Some(leg) = self.media {
                self.env.listen_voice(leg, false);
            }
            match self.env.stop_recording() {
                Some(Ok(info)) => {
                    let done = self.record_callback(&r, &info);
                    tracing::info!(recording = %info.sid, status = info.status.as_str(),
                        secs = info.duration_secs, digits, "<Record> finished");
                    if done && (r.spec.transcribe || r.spec.transcribe_callback.is_some()) {
                        let callback = r
                            .spec
                            .transcribe_callback
                            .as_deref()
                            .and_then(|u| Url::parse(u).ok());
                        let call = self.call_info(self.status()).voice_params();
                        self.out
                            .push_back(Output::Transcribe(Box::new(super::Transcription {
                                path: info.path.clone(),
                                recording_sid: info.sid.clone(),
                                recording_url: info.url.clone(),
                                callback,
                                call,
                            })));
                    }
                    if done {
                        outcome.recording_sid = Some(info.sid);
                        outcome.recording_url = Some(info.url);
                        outcome.duration_secs = info.duration_secs;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "<Record>: recording not finished"),
                None => {}
            }
        }
        self.feed(Event::Recorded(outcome));
    }
}

impl Call {
    /// The `recordingStatusCallback` of a finished `<Record>`, when it
    /// asked for this outcome; whether the recording completed.
    fn record_callback(&mut self, r: &RecordVerb, info: &crate::recording::RecordingInfo) -> bool {
        let done = info.status == tandem_webhook::RecordingStatus::Completed;
        let wanted = if done {
            RecordingStatus::Completed
        } else {
            RecordingStatus::Absent
        };
        if let Some((url, method, events)) = &r.callback
            && events.contains(&wanted)
        {
            self.out.push_back(Output::Recording {
                url: url.clone(),
                method: *method,
                event: Box::new(info.event()),
            });
        }
        done
    }

    /// The `<Record>` stops without its `action` (the call is moved to
    /// other TwiML): the recording is finished and kept, its callback sent.
    pub(super) fn drop_record(&mut self) {
        let Some(r) = self.record.take() else { return };
        if let Some(id) = r.beep {
            self.env.stop_play(id);
        }
        if !r.recording {
            return;
        }
        if let Some(leg) = self.media {
            self.env.listen_voice(leg, false);
        }
        match self.env.stop_recording() {
            Some(Ok(info)) => {
                tracing::info!(recording = %info.sid, "<Record> stopped: the call moved on");
                self.record_callback(&r, &info);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "<Record>: recording not finished"),
            None => {}
        }
    }
}
