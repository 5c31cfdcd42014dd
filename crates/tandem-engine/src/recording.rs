//! `<Dial record>` recordings (design §5 Recording, issue 5): one WAV file per
//! recorded `<Dial>`, fed by relay taps on the caller's and the callee's
//! legs, plus the `recordingStatusCallback` events that describe it.
//!
//! # Files
//! `<dir>/<RecordingSid>.wav` (16-bit PCM, 8 kHz; mono mix, or dual with the
//! parent leg on channel 1 and the child leg on channel 2) and a sidecar
//! `<dir>/<RecordingSid>.json` holding the recording's REST resource in
//! Twilio's shape, written at start (`in-progress`) and rewritten at stop
//! (`completed` or `absent`). The WAV header is rewritten every second, so a
//! crash leaves a file that opens; [`RecordingStore::repair_all`] fixes the
//! headers (and the sidecars still saying `in-progress`) at startup.
//!
//! # Time
//! Positions come from tandem-rtp's [`RecordingTap`] (RTP timestamps
//! anchored to arrival, on `tokio::time::Instant`). A ticker task finalises
//! audio up to half a second behind the wall clock (jitter room), so the
//! file grows while the call runs; [`RecordingSession::stop`] ends the file
//! at the instant it is given, so the recording lasts as long as the call.
//!
//! See `docs/recording.md`.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tandem_media::recorder::Leg as Channel;
use tandem_media::{
    ChannelLayout, RecordError, Recorder, RecorderConfig, RecordingSink, RecordingSummary,
    RecordingTrack, Trim,
};
use tandem_rtp::record::{RecordingTap, position};
use tandem_rtp::relay::{Tap, TapPacket};
use tandem_webhook::{RecordingEvent, RecordingStatus};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Path of the Twilio REST API every recording URL lives under.
pub const API_PREFIX: &str = "/2010-04-01/Accounts";

/// How often the ticker finalises audio.
const TICK: Duration = Duration::from_millis(500);
/// How far behind the wall clock the ticker finalises (room for jitter: a
/// packet whose position was already finalised loses those samples).
const LAG: Duration = Duration::from_millis(500);
/// Samples per second of every recording.
const RATE: u64 = tandem_media::recorder::RECORDING_RATE as u64;

/// Why a recording could not be started, finished or repaired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// A file or the recordings folder could not be created, written or read.
    #[error("recording file {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The recorder failed (write error, recording too long for WAV).
    #[error("recorder: {0}")]
    Recorder(#[from] RecordError),
    /// [`RecordingStore::start`] was called outside a tokio runtime.
    #[error("recording started outside a tokio runtime")]
    NoRuntime,
    /// The session was already stopped.
    #[error("recording already stopped")]
    Stopped,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// When a `<Dial>` recording starts (`record-from-answer*` or
/// `record-from-ringing*`). The engine decides when to call
/// [`RecordingStore::start`]; this only tells it which moment applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFrom {
    /// When the bridge is made (`record-from-answer`, `-dual`).
    Answer,
    /// When the branches start ringing (`record-from-ringing`, `-dual`).
    Ringing,
}

/// The verb a recording comes from (the resource's `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordingSource {
    /// `<Dial record>`.
    #[default]
    DialVerb,
    /// `<Record>`.
    RecordVerb,
    /// `<Conference record>`: the room's mix.
    Conference,
    /// `Record=true` on a call placed through the REST API.
    OutboundApi,
}

impl RecordingSource {
    /// Twilio's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DialVerb => "DialVerb",
            Self::RecordVerb => "RecordVerb",
            Self::Conference => "Conference",
            Self::OutboundApi => "OutboundAPI",
        }
    }
}

/// How a recording is made: a `<Dial>`'s `record`, `recordingTrack` and
/// `trim`, or a `<Record>`'s (the caller alone, mono).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingOptions {
    /// When the recording starts.
    pub from: RecordFrom,
    /// Mono mix or dual channel.
    pub layout: ChannelLayout,
    /// Which legs are recorded (`inbound` = parent, `outbound` = child).
    pub track: RecordingTrack,
    /// `trim-silence` or not.
    pub trim: Trim,
    /// Which verb records.
    pub source: RecordingSource,
}

impl RecordingOptions {
    /// The options of a parsed `<Dial>`; `None` for `do-not-record`.
    pub fn from_twiml(
        record: tandem_twiml::RecordMode,
        track: RecordingTrack,
        trim: Trim,
    ) -> Option<Self> {
        use tandem_twiml::RecordMode as M;
        let (from, layout) = match record {
            M::DoNotRecord => return None,
            M::RecordFromAnswer => (RecordFrom::Answer, ChannelLayout::Mono),
            M::RecordFromRinging => (RecordFrom::Ringing, ChannelLayout::Mono),
            M::RecordFromAnswerDual => (RecordFrom::Answer, ChannelLayout::Dual),
            M::RecordFromRingingDual => (RecordFrom::Ringing, ChannelLayout::Dual),
        };
        Some(RecordingOptions {
            from,
            layout,
            track,
            trim,
            source: RecordingSource::DialVerb,
        })
    }

    /// A `<Record>`: the caller's leg alone, mono, from now.
    pub fn record_verb(trim: Trim) -> Self {
        RecordingOptions {
            from: RecordFrom::Answer,
            layout: ChannelLayout::Mono,
            track: RecordingTrack::Inbound,
            trim,
            source: RecordingSource::RecordVerb,
        }
    }

    /// A `<Conference record>`: the room's mix, mono, from the start.
    pub fn conference(trim: Trim) -> Self {
        RecordingOptions {
            from: RecordFrom::Answer,
            layout: ChannelLayout::Mono,
            track: RecordingTrack::Inbound,
            trim,
            source: RecordingSource::Conference,
        }
    }

    /// Channels the file will have (2 only for dual recordings of both tracks).
    pub fn channels(&self) -> u16 {
        RecorderConfig::new(self.layout, self.track, self.trim).channels()
    }
}

/// Whether `s` is a recording SID: `RE` followed by 32 hex digits. Every
/// file name and URL is built from a string that passed this check, so a
/// path can never leave the recordings folder.
pub fn is_recording_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("RE") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh recording SID: `RE` + 32 lowercase hex digits from a CSPRNG (the
/// SID is what keeps a public recording URL private).
pub fn new_recording_sid() -> String {
    format!("RE{:032x}", rand::random::<u128>())
}

/// Where recordings live and how they are addressed: the recordings folder,
/// the account and the public base URL of Tandem's HTTP listener. Cheap to
/// clone; shared by the engine and the HTTP listener.
#[derive(Debug, Clone)]
pub struct RecordingStore {
    dir: PathBuf,
    public_url: String,
    account_sid: String,
}

impl RecordingStore {
    /// A store writing into `dir`, with URLs under `public_url` (a trailing
    /// `/` is ignored) for `account_sid`. Nothing is touched on disk.
    pub fn new(
        dir: impl Into<PathBuf>,
        public_url: impl Into<String>,
        account_sid: impl Into<String>,
    ) -> Self {
        let mut public_url = public_url.into();
        while public_url.ends_with('/') {
            public_url.pop();
        }
        RecordingStore {
            dir: dir.into(),
            public_url,
            account_sid: account_sid.into(),
        }
    }

    /// The recordings folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The AccountSid recordings belong to.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// `/2010-04-01/Accounts/{AccountSid}/Recordings/{sid}`.
    pub fn uri(&self, sid: &str) -> String {
        format!("{API_PREFIX}/{}/Recordings/{sid}", self.account_sid)
    }

    /// `RecordingUrl`: `{public_url}/2010-04-01/Accounts/{AccountSid}/Recordings/{sid}`
    /// (served as WAV, with or without a `.wav` suffix).
    pub fn media_url(&self, sid: &str) -> String {
        format!("{}{}", self.public_url, self.uri(sid))
    }

    /// `<dir>/<sid>.wav`. `sid` must pass [`is_recording_sid`].
    pub fn wav_path(&self, sid: &str) -> PathBuf {
        self.dir.join(format!("{sid}.wav"))
    }

    /// `<dir>/<sid>.json`, the sidecar resource. `sid` must pass [`is_recording_sid`].
    pub fn meta_path(&self, sid: &str) -> PathBuf {
        self.dir.join(format!("{sid}.json"))
    }

    /// Starts recording a `<Dial>` of parent call `call_sid` at `now` (the
    /// answer, or the start of ringing, per [`RecordingOptions::from`]).
    /// Creates the folder if needed, the WAV file and its sidecar, and a
    /// ticker task on the current runtime. Returns the session and the two
    /// taps to install (see [`RecordingTaps`]). Reads the wall clock once
    /// for `RecordingStartTime`.
    pub fn start(
        &self,
        call_sid: &str,
        opts: RecordingOptions,
        now: Instant,
    ) -> Result<(RecordingSession, RecordingTaps), RecordingError> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| RecordingError::NoRuntime)?;
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let sid = new_recording_sid();
        let path = self.wav_path(&sid);
        let cfg = RecorderConfig::new(opts.layout, opts.track, opts.trim);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let recorder = Recorder::new(Sink::File(BufWriter::with_capacity(16 * 1024, file)), cfg)?;
        let rec = Arc::new(Mutex::new(recorder));
        let shared = Arc::new(Shared {
            open: AtomicBool::new(true),
            packets: [AtomicU64::new(0), AtomicU64::new(0)],
            failed: AtomicBool::new(false),
        });
        let tap = |channel: Channel| -> Arc<dyn Tap> {
            Arc::new(SessionTap {
                inner: RecordingTap::new(Arc::clone(&rec), now, channel),
                shared: Arc::clone(&shared),
                index: channel_index(channel),
            })
        };
        let taps = RecordingTaps {
            parent: tap(Channel::Parent),
            child: tap(Channel::Child),
        };
        let ticker = handle.spawn(tick(Arc::clone(&rec), Arc::clone(&shared), now));
        let session = RecordingSession {
            store: self.clone(),
            sid,
            call_sid: call_sid.to_owned(),
            opts,
            channels: cfg.channels(),
            start: now,
            start_time: SystemTime::now(),
            rec,
            shared,
            ticker: Some(ticker),
        };
        if let Err(e) = session.write_meta(RecordingStatus::InProgress, None, session.start_time) {
            drop(session);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        tracing::info!(recording = %session.sid, call = %call_sid, channels = session.channels,
            "recording started");
        Ok((session, taps))
    }

    /// Fixes what a crash left in the recordings folder: the header of each
    /// `RE….wav` from its real length, and each sidecar still saying
    /// `in-progress` (then `completed` with the repaired duration, or
    /// `absent` when the file holds no audio). Call once at startup, before
    /// any recording starts. A missing folder is not an error; a file that
    /// cannot be repaired is logged and counted, not fatal.
    pub fn repair_all(&self) -> Result<RepairAllReport, RecordingError> {
        let mut report = RepairAllReport::default();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(sid) = name.to_str().and_then(|n| n.strip_suffix(".wav")) else {
                continue;
            };
            if !is_recording_sid(sid) {
                continue;
            }
            report.scanned += 1;
            match tandem_media::repair(entry.path()) {
                Ok(r) => {
                    if r.header_fixed || r.truncated_bytes > 0 {
                        report.repaired += 1;
                        tracing::warn!(
                            recording = sid,
                            frames = r.frames,
                            "recording header repaired after a crash"
                        );
                    }
                    if let Err(e) = self.settle_meta(sid, r.frames) {
                        tracing::warn!(recording = sid, error = %e, "recording sidecar not updated");
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::error!(recording = sid, error = %e, "recording could not be repaired");
                }
            }
        }
        Ok(report)
    }

    /// Rewrites a sidecar left `in-progress` by a crash.
    fn settle_meta(&self, sid: &str, frames: u64) -> io::Result<()> {
        let path = self.meta_path(sid);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !text.contains("\"status\": \"in-progress\"") {
            return Ok(());
        }
        let status = if frames == 0 { "absent" } else { "completed" };
        let fixed = text
            .replace(
                "\"status\": \"in-progress\"",
                &format!("\"status\": \"{status}\""),
            )
            .replace(
                "\"duration\": \"-1\"",
                &format!("\"duration\": \"{}\"", duration_secs(frames)),
            );
        write_atomic(&path, fixed.as_bytes())
    }
}

/// What [`RecordingStore::repair_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairAllReport {
    /// Recording files looked at.
    pub scanned: usize,
    /// Files whose header (or a partial last frame) had to be fixed.
    pub repaired: usize,
    /// Files that could not be read as 16-bit PCM WAV.
    pub failed: usize,
}

/// The two taps of a recording, one per leg. A leg has one tap slot: the
/// engine installs these (or combines them with its other taps) with
/// `Leg::set_tap`, and removes them when the recording stops. After
/// [`RecordingSession::stop`] they do nothing, so a late removal is harmless.
#[derive(Clone)]
pub struct RecordingTaps {
    /// For the parent (caller) leg: channel 1, the `inbound` track.
    pub parent: Arc<dyn Tap>,
    /// For the child (bridged callee) leg: channel 2, the `outbound` track.
    pub child: Arc<dyn Tap>,
}

impl std::fmt::Debug for RecordingTaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordingTaps")
    }
}

/// A finished recording, as [`RecordingSession::stop`] leaves it.
#[derive(Debug, Clone)]
pub struct RecordingInfo {
    /// `RecordingSid`.
    pub sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `CallSid`: the parent call.
    pub call_sid: String,
    /// The WAV file (removed when the recording is `absent`).
    pub path: PathBuf,
    /// `RecordingUrl`.
    pub url: String,
    /// `completed`, or `absent` when the recording holds no audio (no
    /// audio was received on a recorded leg, or `trim-silence` cut it all).
    pub status: RecordingStatus,
    /// `RecordingDuration`: whole seconds, rounded to nearest, at least 1
    /// when the file holds any audio.
    pub duration_secs: u64,
    /// Exact duration of the file in milliseconds.
    pub duration_ms: u64,
    /// `RecordingChannels`: 1 or 2.
    pub channels: u16,
    /// `RecordingStartTime`.
    pub start_time: SystemTime,
    /// `RecordingTrack`.
    pub track: RecordingTrack,
    /// `RecordingSource`.
    pub source: RecordingSource,
    /// What the recorder wrote (trimmed frames, gaps, late samples).
    pub summary: RecordingSummary,
}

impl RecordingInfo {
    /// The `recordingStatusCallback` event for this recording (`completed`
    /// or `absent`, per [`RecordingInfo::status`]).
    pub fn event(&self) -> RecordingEvent {
        RecordingEvent {
            account_sid: self.account_sid.clone(),
            call_sid: self.call_sid.clone(),
            recording_sid: self.sid.clone(),
            recording_url: self.url.clone(),
            status: self.status,
            duration_secs: Some(self.duration_secs),
            channels: self.channels as u8,
            start_time: self.start_time,
            track: self.track,
            source: self.source.as_str(),
            error_code: None,
        }
    }

    /// A recording known only by what a call log or a test says of it
    /// (no file behind it): the replay and the virtual-time harness.
    pub(crate) fn stand_in(
        sid: &str,
        url: &str,
        status: RecordingStatus,
        duration_secs: u64,
        call_sid: &str,
    ) -> Self {
        let frames = duration_secs * RATE;
        RecordingInfo {
            sid: sid.to_owned(),
            account_sid: String::new(),
            call_sid: call_sid.to_owned(),
            path: PathBuf::new(),
            url: url.to_owned(),
            status,
            duration_secs,
            duration_ms: duration_secs * 1000,
            channels: 1,
            start_time: SystemTime::UNIX_EPOCH,
            track: RecordingTrack::Inbound,
            source: RecordingSource::RecordVerb,
            summary: RecordingSummary {
                channels: 1,
                frames,
                data_bytes: frames * 2,
                trimmed_leading: 0,
                trimmed_trailing: 0,
                stats: Default::default(),
            },
        }
    }

    /// The `RecordingRef` for the child call's completed status callback.
    pub fn reference(&self) -> tandem_webhook::RecordingRef {
        tandem_webhook::RecordingRef {
            sid: self.sid.clone(),
            url: self.url.clone(),
            duration_secs: self.duration_secs,
        }
    }
}

/// A recording in progress. Stop it with [`RecordingSession::stop`]; a
/// session dropped without stopping leaves its file as the last
/// checkpoint wrote it (valid, up to a second short) and its sidecar
/// `in-progress` until [`RecordingStore::repair_all`] runs.
pub struct RecordingSession {
    store: RecordingStore,
    sid: String,
    call_sid: String,
    opts: RecordingOptions,
    channels: u16,
    start: Instant,
    start_time: SystemTime,
    rec: Arc<Mutex<Recorder<Sink>>>,
    shared: Arc<Shared>,
    ticker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RecordingSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSession")
            .field("sid", &self.sid)
            .field("call_sid", &self.call_sid)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl RecordingSession {
    /// `RecordingSid`.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// `RecordingUrl`.
    pub fn url(&self) -> String {
        self.store.media_url(&self.sid)
    }

    /// The options it was started with.
    pub fn options(&self) -> RecordingOptions {
        self.opts
    }

    /// The instant the recording started (position 0 of the file).
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// The `in-progress` `recordingStatusCallback` event (no duration).
    pub fn in_progress_event(&self) -> RecordingEvent {
        RecordingEvent {
            account_sid: self.store.account_sid.clone(),
            call_sid: self.call_sid.clone(),
            recording_sid: self.sid.clone(),
            recording_url: self.url(),
            status: RecordingStatus::InProgress,
            duration_secs: None,
            channels: self.channels as u8,
            start_time: self.start_time,
            track: self.opts.track,
            source: self.opts.source.as_str(),
            error_code: None,
        }
    }

    /// Ends the recording at `now` (the end of the bridge or of the call):
    /// the taps go quiet, the file is finalised at exactly `now - start`
    /// (minus trimmed silence), the sidecar is rewritten, and an `absent`
    /// recording's WAV is removed. Does blocking file I/O (a flush and a
    /// header rewrite); cheap enough for a call task.
    pub fn stop(&mut self, now: Instant) -> Result<RecordingInfo, RecordingError> {
        let ticker = self.ticker.take().ok_or(RecordingError::Stopped)?;
        ticker.abort();
        self.shared.open.store(false, Ordering::Release);
        let cfg = RecorderConfig::new(self.opts.layout, self.opts.track, self.opts.trim);
        let recorder = {
            let mut guard = lock(&self.rec);
            let closed = Recorder::new(Sink::Closed, cfg)?;
            std::mem::replace(&mut *guard, closed)
        };
        let path = self.store.wav_path(&self.sid);
        let (sink, summary) = recorder.finish(Some(position(self.start, now)))?;
        drop(sink);
        let heard = self.heard();
        let status = if heard && summary.frames > 0 {
            RecordingStatus::Completed
        } else {
            RecordingStatus::Absent
        };
        if status == RecordingStatus::Absent
            && let Err(e) = fs::remove_file(&path)
        {
            tracing::warn!(recording = %self.sid, error = %e, "empty recording not removed");
        }
        let frames = if status == RecordingStatus::Absent {
            0
        } else {
            summary.frames
        };
        self.write_meta(status, Some(frames), SystemTime::now())?;
        let info = RecordingInfo {
            sid: self.sid.clone(),
            account_sid: self.store.account_sid.clone(),
            call_sid: self.call_sid.clone(),
            path,
            url: self.url(),
            status,
            duration_secs: duration_secs(frames),
            duration_ms: frames * 1000 / RATE,
            channels: summary.channels,
            start_time: self.start_time,
            track: self.opts.track,
            source: self.opts.source,
            summary,
        };
        tracing::info!(recording = %self.sid, status = status.as_str(),
            duration_ms = info.duration_ms, gaps = summary.stats.gap_frames,
            late = summary.stats.late_samples, "recording stopped");
        Ok(info)
    }

    /// Whether a recorded leg delivered any audio packet (G.711 or Opus).
    fn heard(&self) -> bool {
        let [p, c] = &self.shared.packets;
        let (p, c) = (p.load(Ordering::Acquire), c.load(Ordering::Acquire));
        match self.opts.track {
            RecordingTrack::Inbound => p > 0,
            RecordingTrack::Outbound => c > 0,
            RecordingTrack::Both => p + c > 0,
        }
    }

    fn write_meta(
        &self,
        status: RecordingStatus,
        frames: Option<u64>,
        updated: SystemTime,
    ) -> Result<(), RecordingError> {
        let path = self.store.meta_path(&self.sid);
        let json = self.resource_json(status, frames, updated);
        write_atomic(&path, json.as_bytes()).map_err(io_err(&path))
    }

    /// The recording's REST resource, in the shape of Twilio's
    /// `GET /2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.json`.
    fn resource_json(
        &self,
        status: RecordingStatus,
        frames: Option<u64>,
        updated: SystemTime,
    ) -> String {
        let store = &self.store;
        let created = tandem_webhook::rfc2822(self.start_time);
        let duration = frames.map_or_else(|| "-1".to_owned(), |f| duration_secs(f).to_string());
        let mut s = String::from("{");
        let mut field = |k: &str, v: &str| {
            let _ = write!(s, "\"{k}\": {v}, ");
        };
        field("account_sid", &json_str(&store.account_sid));
        field("api_version", "\"2010-04-01\"");
        field("call_sid", &json_str(&self.call_sid));
        field("conference_sid", "null");
        field("date_created", &json_str(&created));
        field("date_updated", &json_str(&tandem_webhook::rfc2822(updated)));
        field("start_time", &json_str(&created));
        field("duration", &json_str(&duration));
        field("sid", &json_str(&self.sid));
        field("price", "null");
        field("price_unit", "\"USD\"");
        field("status", &json_str(status.as_str()));
        field("channels", &self.channels.to_string());
        field("source", &json_str(self.opts.source.as_str()));
        field("error_code", "null");
        field("track", &json_str(self.opts.track.as_str()));
        field("uri", &json_str(&format!("{}.json", store.uri(&self.sid))));
        field("media_url", &json_str(&store.media_url(&self.sid)));
        field("encryption_details", "null");
        let _ = writeln!(
            s,
            "\"subresource_uris\": {{\"add_on_results\": {}, \"transcriptions\": {}}}}}",
            json_str(&format!("{}/AddOnResults.json", store.uri(&self.sid))),
            json_str(&format!("{}/Transcriptions.json", store.uri(&self.sid))),
        );
        s
    }
}

impl Drop for RecordingSession {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
            self.shared.open.store(false, Ordering::Release);
            tracing::warn!(recording = %self.sid, "recording dropped without stop");
        }
    }
}

/// `RecordingDuration` for `frames` sample frames: seconds rounded to
/// nearest, at least 1 when there is any audio.
fn duration_secs(frames: u64) -> u64 {
    if frames == 0 {
        0
    } else {
        ((frames + RATE / 2) / RATE).max(1)
    }
}

fn channel_index(c: Channel) -> usize {
    match c {
        Channel::Parent => 0,
        Channel::Child => 1,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JSON string literal.
pub(crate) fn json_str(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Writes `path` through a temporary file and a rename, so a reader never
/// sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// State shared by a session, its taps and its ticker.
struct Shared {
    /// Cleared at stop: the taps go quiet.
    open: AtomicBool,
    /// Packets per leg (parent, child) whose audio reached the recorder.
    packets: [AtomicU64; 2],
    /// Set once the ticker logged a recorder failure.
    failed: AtomicBool,
}

/// A leg's tap: counts packets and forwards them to tandem-rtp's
/// [`RecordingTap`] while the session is open.
struct SessionTap {
    inner: Arc<RecordingTap<Sink>>,
    shared: Arc<Shared>,
    index: usize,
}

impl Tap for SessionTap {
    fn packet(&self, p: &TapPacket<'_>) {
        if !self.shared.open.load(Ordering::Acquire) {
            return;
        }
        let before = self.inner.recorded();
        self.inner.packet(p);
        if self.inner.recorded() > before {
            self.shared.packets[self.index].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Finalises audio up to [`LAG`] behind the wall clock every [`TICK`].
async fn tick(rec: Arc<Mutex<Recorder<Sink>>>, shared: Arc<Shared>, start: Instant) {
    let mut iv = tokio::time::interval_at(start + TICK, TICK);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let to = position(start, Instant::now().checked_sub(LAG).unwrap_or(start));
        let result = lock(&rec).advance(to);
        if let Err(e) = result
            && !shared.failed.swap(true, Ordering::AcqRel)
        {
            tracing::error!(error = %e, "recording write failed");
        }
    }
}

/// The recorder's sink: the file, or nothing once the session stopped (the
/// taps may still hold the recorder for a moment).
enum Sink {
    File(BufWriter<File>),
    Closed,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Closed => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Closed => Ok(()),
        }
    }
}

impl Seek for Sink {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Sink::File(f) => f.seek(pos),
            Sink::Closed => Ok(0),
        }
    }
}

impl RecordingSink for Sink {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        match self {
            Sink::File(f) => RecordingSink::set_len(f, len),
            Sink::Closed => Ok(()),
        }
    }
    fn sync_data(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => RecordingSink::sync_data(f),
            Sink::Closed => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids() {
        let sid = new_recording_sid();
        assert!(is_recording_sid(&sid), "{sid}");
        assert_ne!(sid, new_recording_sid());
        for bad in [
            "",
            "RE",
            "../RE0000",
            "RE0123456789abcdef0123456789abcdeg",
            "re0123456789abcdef0123456789abcdef",
            "RE0123456789abcdef0123456789abcdef0",
            "RE/123456789abcdef0123456789abcdef",
        ] {
            assert!(!is_recording_sid(bad), "{bad}");
        }
        assert!(is_recording_sid("RE0123456789abcdef0123456789ABCDEF"));
    }

    #[test]
    fn session_and_taps_cross_tasks() {
        fn send<T: Send + Sync>() {}
        send::<RecordingSession>();
        send::<RecordingTaps>();
        send::<RecordingInfo>();
    }

    #[test]
    fn durations_round() {
        assert_eq!(duration_secs(0), 0);
        assert_eq!(duration_secs(1), 1);
        assert_eq!(duration_secs(8000 * 2 + 3999), 2);
        assert_eq!(duration_secs(8000 * 2 + 4000), 3);
    }

    #[test]
    fn urls() {
        let s = RecordingStore::new("/tmp/x", "http://h:8089/", "AC1");
        assert_eq!(
            s.media_url("RE1"),
            "http://h:8089/2010-04-01/Accounts/AC1/Recordings/RE1"
        );
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
    }
}
