//! Call history in SQLite (issue 11, docs/api.md "History"): every call and
//! child call, written as it progresses, so a restart keeps the history and
//! a crash loses no finished call.
//!
//! Calls never wait for the disk: [`History::record`] queues a row for one
//! writer thread, which applies whatever has queued up in one transaction
//! and commits at once (WAL, `synchronous=NORMAL`: a committed call
//! survives `kill -9`; a power cut may lose the last few). Readers (the REST
//! API) use their own connection, which WAL lets read while the writer
//! writes.
//!
//! The schema is versioned with `PRAGMA user_version`; [`MIGRATIONS`] are
//! applied in order at open. Rows older than the retention are deleted at
//! open and hourly. Calls a previous process left unfinished (it stopped or
//! crashed during them) are closed at open: `completed` if they were
//! answered, else `failed`, with an event saying why.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// Rows queued for the writer beyond which new ones are dropped (and
/// counted) rather than letting memory grow without bound: a one-destination
/// call queues eight (seven states and its trace), so this is 2.7 s of
/// 6,000 calls/s, enough to ride out a checkpoint's fsync on a slow disk;
/// ~45 MB when full.
const QUEUE: usize = 131_072;
/// Rows applied in one transaction at most: more than a window gathers at
/// 6,000 one-destination calls a second (4,800).
const BATCH: usize = 16_384;
/// How long the writer gathers rows after the first before it commits:
/// one transaction (one WAL append) per window instead of one per row,
/// and no wake-up of the writer per row while it gathers. A finished call
/// is on disk at most this long after it ended; a reader that must see it
/// ([`History::flush`], the REST API) cuts the window short. 100 ms
/// rather than 20: the writer's share of Tandem's CPU at 1,000 calls/s
/// halved (docs/benchmarks.md §3(q)).
const WINDOW: Duration = Duration::from_millis(100);
/// How often a gathering writer looks for a waiting reader.
const SLICE: Duration = Duration::from_millis(10);
/// How often rows past the retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// Schema versions, in order; `user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE calls (
        sid TEXT PRIMARY KEY NOT NULL,
        parent_sid TEXT,
        from_ TEXT NOT NULL,
        to_ TEXT NOT NULL,
        direction TEXT NOT NULL,
        status TEXT NOT NULL,
        caller_name TEXT,
        forwarded_from TEXT,
        answered_by TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        start_ms INTEGER,
        end_ms INTEGER,
        duration INTEGER
    );
    CREATE INDEX calls_by_created ON calls (created_ms DESC, sid DESC);
    CREATE INDEX calls_by_parent ON calls (parent_sid);
    CREATE TABLE call_events (
        id INTEGER PRIMARY KEY,
        call_sid TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX call_events_by_call ON call_events (call_sid, id);
",
    "
    CREATE TABLE call_traces (
        call_sid TEXT PRIMARY KEY NOT NULL,
        created_ms INTEGER NOT NULL,
        trace TEXT NOT NULL
    );
    CREATE INDEX call_traces_by_created ON call_traces (created_ms);
    -- Status changes as 'status@unix_ms' words, appended by each write:
    -- one statement per change instead of a row in call_events.
    ALTER TABLE calls ADD COLUMN timeline TEXT NOT NULL DEFAULT '';
    -- Only child calls have a parent: parents add nothing to this index.
    DROP INDEX calls_by_parent;
    CREATE INDEX calls_by_parent ON calls (parent_sid) WHERE parent_sid IS NOT NULL;
",
    "
    CREATE TABLE conferences (
        sid TEXT PRIMARY KEY NOT NULL,
        friendly_name TEXT NOT NULL,
        status TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        reason_ended TEXT,
        call_sid_ending TEXT
    );
    CREATE INDEX conferences_by_created ON conferences (created_ms);
",
];

/// Errors opening or reading the history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// SQLite refused (cannot open, corrupt file, disk full...).
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer Tandem.
    #[error("{path}: schema version {found} is newer than this Tandem's ({known})")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    /// The writer thread could not be started.
    #[error("history writer: {0}")]
    Thread(#[from] std::io::Error),
}

/// A conference's state at one moment (created, started, ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceRecord {
    pub sid: String,
    pub name: String,
    /// `init`, `in-progress` or `completed`.
    pub status: &'static str,
    /// `ReasonConferenceEnded`, once completed.
    pub reason: Option<&'static str>,
    /// `CallSidEndingConference`, once completed.
    pub ended_by: Option<String>,
    /// When this state was reached.
    pub at: SystemTime,
}

/// A conference as the history has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceRow {
    pub sid: String,
    pub name: String,
    pub status: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub reason: Option<String>,
    pub ended_by: Option<String>,
}

/// A call's state at one moment: what the writer stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub sid: String,
    pub parent_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: tandem_webhook::Direction,
    pub status: tandem_webhook::CallStatus,
    pub caller_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub answered_by: Option<String>,
    /// Seconds answered, once the call has ended.
    pub duration: Option<u64>,
    /// When this state was reached.
    pub at: SystemTime,
}

impl CallRecord {
    /// A record of `info` with no duration, not yet stamped (`at` is the
    /// epoch until the writer's caller sets it).
    pub fn of(info: tandem_webhook::CallInfo) -> Self {
        CallRecord {
            sid: info.call_sid,
            parent_sid: info.parent_call_sid,
            from: info.from,
            to: info.to,
            direction: info.direction,
            status: info.status,
            caller_name: info.caller_name,
            forwarded_from: info.forwarded_from,
            answered_by: None,
            duration: None,
            at: UNIX_EPOCH,
        }
    }
}

/// Whether a call in this status is over.
pub fn is_final(status: tandem_webhook::CallStatus) -> bool {
    use tandem_webhook::CallStatus as S;
    matches!(
        status,
        S::Completed | S::Busy | S::Failed | S::NoAnswer | S::Canceled
    )
}

/// A stored call, as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub sid: String,
    pub parent_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: String,
    pub status: String,
    pub caller_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub answered_by: Option<String>,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub updated_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub duration: Option<i64>,
}

/// One event in a call's life (status changes today).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    pub at_ms: i64,
    pub kind: String,
    pub detail: String,
}

/// Filters of `GET …/Calls.json` (all optional; Twilio's names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    pub to: Option<String>,
    pub from: Option<String>,
    pub status: Option<String>,
    pub parent_sid: Option<String>,
    /// `StartTime>=`, `StartTime<=` (inclusive, Unix ms); an exact
    /// `StartTime` day is both.
    pub start_after_ms: Option<i64>,
    pub start_before_ms: Option<i64>,
    pub end_after_ms: Option<i64>,
    pub end_before_ms: Option<i64>,
}

enum Op {
    Call(Box<CallRecord>),
    Conference(Box<ConferenceRecord>),
    /// A call task's SIP ladder and webhooks (JSON), written when it ends.
    Trace {
        sid: String,
        at: SystemTime,
        json: String,
    },
    /// Answered once everything queued before it is committed.
    Barrier(std::sync::mpsc::Sender<()>),
}

struct Shared {
    path: PathBuf,
    reader: Mutex<Connection>,
    dropped: AtomicU64,
    written: AtomicU64,
    /// Gathering windows the writer has waited out.
    windows: AtomicU64,
    /// A reader waits in [`History::flush`]: commit what is gathered now.
    flush_wanted: std::sync::atomic::AtomicBool,
}

/// The history: a queue to its writer thread and a read connection.
/// Cheap to clone.
#[derive(Clone)]
pub struct History {
    tx: SyncSender<Op>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl History {
    /// Opens (creating) the database at `path`, brings its schema up to
    /// date, closes the calls a previous process left open, deletes rows
    /// older than `retention` (`None`: keep everything), and starts the
    /// writer.
    pub fn open(path: &Path, retention: Option<Duration>) -> Result<Self, HistoryError> {
        let err = |source| HistoryError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let mut writer = Connection::open(path).map_err(err)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            )
            .map_err(err)?;
        migrate(&mut writer, path)?;
        let now = ms(SystemTime::now());
        let closed = close_interrupted(&mut writer, now).map_err(err)?;
        if closed > 0 {
            tracing::warn!(
                calls = closed,
                "history: calls left open by the previous run closed (it stopped during them)"
            );
        }
        purge(&writer, retention, now).map_err(err)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        reader
            .execute_batch("PRAGMA busy_timeout=5000;")
            .map_err(err)?;
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            reader: Mutex::new(reader),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            flush_wanted: std::sync::atomic::AtomicBool::new(false),
        });
        let (tx, rx) = sync_channel(QUEUE);
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("tandem-history".into())
            .spawn(move || write_loop(writer, &rx, retention, &thread_shared))?;
        tracing::info!(path = %path.display(), "call history open");
        Ok(History { tx, shared })
    }

    /// Queues a call's new state; never blocks. When the writer is that
    /// far behind, the row is dropped and counted (`/metrics`).
    pub fn record(&self, record: CallRecord) {
        match self.tx.try_send(Op::Call(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::error!(dropped = n + 1, "history writer behind: call rows dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues a conference's new state; never blocks (dropped and counted
    /// when the writer is behind).
    pub fn record_conference(&self, record: ConferenceRecord) {
        if self.tx.try_send(Op::Conference(Box::new(record))).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Conferences, newest first, by name and status, `limit` from `offset`.
    pub fn conferences(
        &self,
        name: Option<&str>,
        status: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ConferenceRow>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CONFERENCE_COLUMNS} FROM conferences
                 WHERE (?1 IS NULL OR friendly_name = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY created_ms DESC, sid DESC LIMIT ?3 OFFSET ?4"
            ))?;
            st.query_map(params![name, status, limit, offset], conference_row)?
                .collect()
        })
    }

    /// One conference.
    pub fn conference(&self, sid: &str) -> Result<Option<ConferenceRow>, HistoryError> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {CONFERENCE_COLUMNS} FROM conferences WHERE sid = ?1"),
                [sid],
                conference_row,
            )
            .optional()
        })
    }

    /// Queues a finished call's trace (the inspector's ladder and
    /// webhooks, JSON); never blocks, dropped and counted when behind.
    pub fn record_trace(&self, sid: String, json: String) {
        let op = Op::Trace {
            sid,
            at: SystemTime::now(),
            json,
        };
        if self.tx.try_send(op).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A call task's trace, if written.
    pub fn trace(&self, sid: &str) -> Result<Option<String>, HistoryError> {
        self.read(|c| {
            c.query_row(
                "SELECT trace FROM call_traces WHERE call_sid = ?1",
                [sid],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Waits (blocking) until everything queued before now is committed.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        // Before the barrier is queued: a writer gathering rows stops at its
        // next look, and one that has already stopped finds the barrier first.
        self.shared.flush_wanted.store(true, Ordering::Release);
        if self.tx.send(Op::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Rows dropped because the writer was behind, and rows written.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.shared.dropped.load(Ordering::Relaxed),
            self.shared.written.load(Ordering::Relaxed),
        )
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, HistoryError> {
        let conn = self
            .shared
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(|source| HistoryError::Sqlite {
            path: self.shared.path.clone(),
            source,
        })
    }

    /// One call by its SID.
    pub fn call(&self, sid: &str) -> Result<Option<CallRow>, HistoryError> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM calls WHERE sid = ?1"),
                [sid],
                row,
            )
            .optional()
        })
    }

    /// Up to `limit` calls matching `filter`, newest first, after the call
    /// `after` (the last of the previous page) when given, skipping `offset`.
    pub fn calls(
        &self,
        filter: &CallFilter,
        after: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<CallRow>, HistoryError> {
        let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut text = |sql: &mut String, col: &str, v: &Option<String>| {
            if let Some(v) = v {
                args.push(v.clone().into());
                sql.push_str(&format!(" AND {col} = ?{}", args.len()));
            }
        };
        text(&mut sql, "to_", &filter.to);
        text(&mut sql, "from_", &filter.from);
        text(&mut sql, "status", &filter.status);
        text(&mut sql, "parent_sid", &filter.parent_sid);
        for (col, op, v) in [
            ("start_ms", ">=", filter.start_after_ms),
            ("start_ms", "<=", filter.start_before_ms),
            ("end_ms", ">=", filter.end_after_ms),
            ("end_ms", "<=", filter.end_before_ms),
        ] {
            if let Some(v) = v {
                args.push(v.into());
                sql.push_str(&format!(" AND {col} {op} ?{}", args.len()));
            }
        }
        if let Some(after) = after {
            args.push(after.to_owned().into());
            let n = args.len();
            sql.push_str(&format!(
                " AND (created_ms, sid) < (SELECT created_ms, sid FROM calls WHERE sid = ?{n})"
            ));
        }
        args.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        args.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
        sql.push_str(&format!(
            " ORDER BY created_ms DESC, sid DESC LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        ));
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), row)?;
            rows.collect()
        })
    }

    /// A call's events, oldest first: its status changes, then anything
    /// else recorded about it (an interruption).
    pub fn events(&self, sid: &str) -> Result<Vec<CallEvent>, HistoryError> {
        self.read(|c| {
            let timeline: Option<String> = c
                .query_row("SELECT timeline FROM calls WHERE sid = ?1", [sid], |r| {
                    r.get(0)
                })
                .optional()?;
            let mut out: Vec<CallEvent> = timeline
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|w| {
                    let (status, at) = w.split_once('@')?;
                    Some(CallEvent {
                        at_ms: at.parse().ok()?,
                        kind: "status".into(),
                        detail: status.into(),
                    })
                })
                .collect();
            let mut stmt = c.prepare_cached(
                "SELECT at_ms, kind, detail FROM call_events WHERE call_sid = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([sid], |r| {
                Ok(CallEvent {
                    at_ms: r.get(0)?,
                    kind: r.get(1)?,
                    detail: r.get(2)?,
                })
            })?;
            for r in rows {
                out.push(r?);
            }
            Ok(out)
        })
    }
}

const COLUMNS: &str = "sid, parent_sid, from_, to_, direction, status, caller_name, \
    forwarded_from, answered_by, created_ms, updated_ms, start_ms, end_ms, duration";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallRow> {
    Ok(CallRow {
        sid: r.get(0)?,
        parent_sid: r.get(1)?,
        from: r.get(2)?,
        to: r.get(3)?,
        direction: r.get(4)?,
        status: r.get(5)?,
        caller_name: r.get(6)?,
        forwarded_from: r.get(7)?,
        answered_by: r.get(8)?,
        created_ms: r.get(9)?,
        updated_ms: r.get(10)?,
        start_ms: r.get(11)?,
        end_ms: r.get(12)?,
        duration: r.get(13)?,
    })
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), HistoryError> {
    let err = |source| HistoryError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(HistoryError::TooNew {
            path: path.to_owned(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(path = %path.display(), version = i + 1, "history schema migrated");
    }
    Ok(())
}

const CONFERENCE_COLUMNS: &str =
    "sid, friendly_name, status, created_ms, updated_ms, reason_ended, call_sid_ending";

fn conference_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConferenceRow> {
    Ok(ConferenceRow {
        sid: r.get(0)?,
        name: r.get(1)?,
        status: r.get(2)?,
        created_ms: r.get(3)?,
        updated_ms: r.get(4)?,
        reason: r.get(5)?,
        ended_by: r.get(6)?,
    })
}

/// Calls (and conferences) still open in the file (a previous process
/// ended during them).
fn close_interrupted(conn: &mut Connection, now: i64) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE conferences SET status = 'completed', updated_ms = ?1,
           reason_ended = coalesce(reason_ended, 'tandem-stopped')
         WHERE status != 'completed'",
        [now],
    )?;
    tx.execute(
        "INSERT INTO call_events (call_sid, at_ms, kind, detail)
         SELECT sid, ?1, 'interrupted', 'Tandem stopped during the call'
         FROM calls WHERE status IN ('queued', 'initiated', 'ringing', 'in-progress')",
        [now],
    )?;
    let n = tx.execute(
        "UPDATE calls SET
           status = CASE status WHEN 'in-progress' THEN 'completed' ELSE 'failed' END,
           end_ms = ?1, updated_ms = ?1
         WHERE status IN ('queued', 'initiated', 'ringing', 'in-progress')",
        [now],
    )?;
    tx.commit()?;
    Ok(n)
}

fn purge(conn: &Connection, retention: Option<Duration>, now: i64) -> rusqlite::Result<()> {
    let Some(keep) = retention else {
        return Ok(());
    };
    let cutoff = now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let events = conn.execute(
        "DELETE FROM call_events WHERE call_sid IN (SELECT sid FROM calls WHERE created_ms < ?1)",
        [cutoff],
    )?;
    let calls = conn.execute("DELETE FROM calls WHERE created_ms < ?1", [cutoff])?;
    conn.execute("DELETE FROM call_traces WHERE created_ms < ?1", [cutoff])?;
    conn.execute("DELETE FROM conferences WHERE created_ms < ?1", [cutoff])?;
    if calls > 0 {
        tracing::info!(calls, events, "history: calls past the retention deleted");
    }
    Ok(())
}

fn write_loop(
    mut conn: Connection,
    rx: &Receiver<Op>,
    retention: Option<Duration>,
    shared: &Shared,
) {
    let mut last_purge = Instant::now();
    let mut barriers = Vec::new();
    // The last batch was full: rows are waiting, and a window now would
    // only let the queue grow (at 6,000 calls/s it overflowed: a window
    // per 4,096 rows is slower than the rows come).
    let mut backlog = false;
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        if !backlog && !matches!(ops[0], Op::Barrier(_)) {
            // Senders do not wake a sleeping thread: rows queue up meanwhile.
            shared.windows.fetch_add(1, Ordering::Relaxed);
            let start = Instant::now();
            while !shared.flush_wanted.load(Ordering::Acquire) {
                let left = WINDOW.saturating_sub(start.elapsed());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(SLICE));
            }
        }
        shared.flush_wanted.store(false, Ordering::Release);
        ops.extend(rx.try_iter().take(BATCH - 1));
        let n = ops.len();
        backlog = n == BATCH;
        // The states of one call within the window become one write: a
        // short call is written once, not once per status.
        let mut merged: Vec<Merged> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut traces = Vec::new();
        let mut conferences = Vec::new();
        for op in ops {
            match op {
                Op::Conference(c) => conferences.push(c),
                Op::Call(rec) => match index.get(&rec.sid) {
                    Some(&i) => merged[i].add(*rec),
                    None => {
                        index.insert(rec.sid.clone(), merged.len());
                        merged.push(Merged::new(*rec));
                    }
                },
                Op::Trace { sid, at, json } => traces.push((sid, at, json)),
                Op::Barrier(b) => barriers.push(b),
            }
        }
        let result = (|| -> rusqlite::Result<u64> {
            let tx = conn.transaction()?;
            for m in &merged {
                apply(&tx, m)?;
            }
            for c in &conferences {
                tx.prepare_cached(
                    "INSERT INTO conferences (sid, friendly_name, status, created_ms, updated_ms, reason_ended, call_sid_ending)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)
                     ON CONFLICT(sid) DO UPDATE SET status = excluded.status,
                       updated_ms = excluded.updated_ms,
                       reason_ended = coalesce(excluded.reason_ended, reason_ended),
                       call_sid_ending = coalesce(excluded.call_sid_ending, call_sid_ending)",
                )?
                .execute(params![c.sid, c.name, c.status, ms(c.at), c.reason, c.ended_by])?;
            }
            for (sid, at, json) in &traces {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO call_traces (call_sid, created_ms, trace) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![sid, ms(*at), json])?;
            }
            tx.commit()?;
            Ok((merged.len() + traces.len() + conferences.len()) as u64)
        })();
        match result {
            Ok(rows) => {
                shared.written.fetch_add(rows, Ordering::Relaxed);
            }
            Err(e) => {
                shared.dropped.fetch_add(n as u64, Ordering::Relaxed);
                tracing::error!(error = %e, rows = n, "history: a batch of call rows could not be written");
            }
        }
        for b in barriers.drain(..) {
            let _ = b.send(());
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            if let Err(e) = purge(&conn, retention, ms(SystemTime::now())) {
                tracing::warn!(error = %e, "history: purge failed");
            }
        }
    }
    tracing::debug!("history writer stopped");
}

/// The states of one call gathered in one window.
struct Merged {
    /// When the first of them was reached (the call's creation, if new).
    first_at: SystemTime,
    /// The latest state, with the duration and AMD result of any.
    last: CallRecord,
    /// Every status, `status@ms `.
    timeline: String,
}

impl Merged {
    fn new(r: CallRecord) -> Self {
        let mut m = Merged {
            first_at: r.at,
            timeline: String::new(),
            last: r,
        };
        m.word();
        m
    }

    fn word(&mut self) {
        use std::fmt::Write as _;
        let _ = write!(
            self.timeline,
            "{}@{} ",
            self.last.status.as_str(),
            ms(self.last.at)
        );
    }

    fn add(&mut self, r: CallRecord) {
        let duration = r.duration.or(self.last.duration);
        let answered_by = r.answered_by.clone().or(self.last.answered_by.take());
        self.last = r;
        self.last.duration = duration;
        self.last.answered_by = answered_by;
        self.word();
    }
}

fn apply(tx: &rusqlite::Transaction<'_>, m: &Merged) -> rusqlite::Result<()> {
    let r = &m.last;
    let at = ms(r.at);
    let first = ms(m.first_at);
    let end = is_final(r.status).then_some(at);
    let duration = r.duration.map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    tx.prepare_cached(
        "INSERT INTO calls (sid, parent_sid, from_, to_, direction, status, caller_name,
                forwarded_from, answered_by, created_ms, updated_ms, start_ms, end_ms, duration,
                timeline)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?14, ?10, ?14, ?11, ?12, ?13)
         ON CONFLICT (sid) DO UPDATE SET
           timeline = timeline || excluded.timeline,
           parent_sid = excluded.parent_sid, from_ = excluded.from_, to_ = excluded.to_,
           direction = excluded.direction, status = excluded.status,
           caller_name = excluded.caller_name, forwarded_from = excluded.forwarded_from,
           answered_by = coalesce(excluded.answered_by, answered_by),
           updated_ms = excluded.updated_ms,
           end_ms = coalesce(excluded.end_ms, end_ms),
           duration = coalesce(excluded.duration, duration)",
    )?
    .execute(params![
        r.sid,
        r.parent_sid,
        r.from,
        r.to,
        r.direction.as_str(),
        r.status.as_str(),
        r.caller_name,
        r.forwarded_from,
        r.answered_by,
        at,
        end,
        duration,
        m.timeline,
        first,
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_webhook::{CallStatus, Direction};

    fn record(sid: &str, status: CallStatus, at_s: u64) -> CallRecord {
        CallRecord {
            sid: sid.into(),
            parent_sid: None,
            from: "+15550001".into(),
            to: "+15550002".into(),
            direction: Direction::Inbound,
            status,
            caller_name: None,
            forwarded_from: None,
            answered_by: None,
            duration: None,
            at: UNIX_EPOCH + Duration::from_secs(at_s),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tandem-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("tandem.db")
    }

    #[test]
    fn a_call_keeps_its_start_and_gets_its_end_and_duration() {
        let path = temp("life");
        let h = History::open(&path, None).unwrap();
        h.record(record("CA1", CallStatus::Ringing, 100));
        h.record(record("CA1", CallStatus::InProgress, 101));
        let mut end = record("CA1", CallStatus::Completed, 131);
        end.duration = Some(30);
        h.record(end);
        h.flush();
        let row = h.call("CA1").unwrap().unwrap();
        assert_eq!(row.status, "completed");
        assert_eq!(row.created_ms, 100_000);
        assert_eq!(row.start_ms, Some(100_000));
        assert_eq!(row.end_ms, Some(131_000));
        assert_eq!(row.duration, Some(30));
        let events: Vec<_> = h
            .events("CA1")
            .unwrap()
            .into_iter()
            .map(|e| e.detail)
            .collect();
        assert_eq!(events, ["ringing", "in-progress", "completed"]);
        assert_eq!(h.counts(), (0, 1), "three states in one window: one write");
    }

    /// The writer gathers rows for up to `WINDOW` before it commits; a
    /// reader waiting in `flush` (every REST read) must not wait that out.
    #[test]
    fn a_flush_cuts_the_gathering_window_short() {
        let path = temp("flushwait");
        let h = History::open(&path, None).unwrap();
        let start = Instant::now();
        for i in 0..5 {
            h.record(record(&format!("CA{i}"), CallStatus::Ringing, 100));
            h.flush();
        }
        // Five windows waited out would take 500 ms.
        let took = start.elapsed();
        assert!(took < WINDOW * 5 * 4 / 5, "{took:?}");
        assert_eq!(h.counts(), (0, 5));
    }

    /// More rows than one batch takes are written one batch after the
    /// other, not one gathering window per batch: at 6,000 calls/s a
    /// window per batch was slower than the rows came, and the queue
    /// overflowed (rows dropped).
    #[test]
    fn a_backlog_is_written_without_a_window_per_batch() {
        let path = temp("backlog");
        let h = History::open(&path, None).unwrap();
        let n = 5 * BATCH;
        for i in 0..n {
            h.record(record(&format!("CA{i}"), CallStatus::Completed, 100));
        }
        h.flush();
        assert_eq!(h.counts(), (0, n as u64));
        // One window for the first row (two if the writer caught up with
        // the loop above while it was still queueing); five without the
        // backlog rule.
        let windows = h.shared.windows.load(Ordering::Relaxed);
        assert!(windows <= 2, "{windows} windows for {n} rows");
    }

    #[test]
    fn states_in_separate_windows_extend_the_same_row() {
        let path = temp("windows");
        let h = History::open(&path, None).unwrap();
        h.record(record("CA1", CallStatus::Ringing, 100));
        h.flush();
        h.record(record("CA1", CallStatus::InProgress, 101));
        h.flush();
        let mut end = record("CA1", CallStatus::Completed, 131);
        end.duration = Some(30);
        h.record(end);
        h.flush();
        let row = h.call("CA1").unwrap().unwrap();
        assert_eq!((row.created_ms, row.start_ms), (100_000, Some(100_000)));
        assert_eq!((row.updated_ms, row.end_ms), (131_000, Some(131_000)));
        assert_eq!((row.status.as_str(), row.duration), ("completed", Some(30)));
        let events: Vec<_> = h
            .events("CA1")
            .unwrap()
            .into_iter()
            .map(|e| (e.at_ms, e.detail))
            .collect();
        assert_eq!(
            events,
            [
                (100_000, "ringing".to_owned()),
                (101_000, "in-progress".to_owned()),
                (131_000, "completed".to_owned())
            ]
        );
        assert_eq!(h.counts(), (0, 3));
    }

    #[test]
    fn a_reopened_file_keeps_finished_calls_and_closes_open_ones() {
        let path = temp("reopen");
        {
            let h = History::open(&path, None).unwrap();
            h.record(record("CA1", CallStatus::Completed, 100));
            h.record(record("CA2", CallStatus::InProgress, 100));
            h.record(record("CA3", CallStatus::Ringing, 100));
            h.flush();
        }
        let h = History::open(&path, None).unwrap();
        let status = |sid| h.call(sid).unwrap().unwrap().status;
        assert_eq!(status("CA1"), "completed");
        assert_eq!(status("CA2"), "completed");
        assert_eq!(status("CA3"), "failed");
        let kinds: Vec<_> = h
            .events("CA2")
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["status", "interrupted"]);
    }

    #[test]
    fn pages_run_newest_first_and_filters_combine() {
        let path = temp("pages");
        let h = History::open(&path, None).unwrap();
        for i in 0..7u64 {
            let mut r = record(&format!("CA{i}"), CallStatus::Completed, 1_000 + i);
            if i % 2 == 0 {
                r.to = "+1999".into();
            }
            h.record(r);
        }
        h.flush();
        let all = CallFilter::default();
        let first = h.calls(&all, None, 0, 3).unwrap();
        let sids: Vec<_> = first.iter().map(|r| r.sid.as_str()).collect();
        assert_eq!(sids, ["CA6", "CA5", "CA4"]);
        let next = h.calls(&all, Some("CA4"), 0, 3).unwrap();
        let by_offset = h.calls(&all, None, 3, 3).unwrap();
        assert_eq!(by_offset, next);
        let sids: Vec<_> = next.iter().map(|r| r.sid.as_str()).collect();
        assert_eq!(sids, ["CA3", "CA2", "CA1"]);
        let to = CallFilter {
            to: Some("+1999".into()),
            start_before_ms: Some(1_004_000),
            ..CallFilter::default()
        };
        let sids: Vec<_> = h
            .calls(&to, None, 0, 50)
            .unwrap()
            .into_iter()
            .map(|r| r.sid)
            .collect();
        assert_eq!(sids, ["CA4", "CA2", "CA0"]);
    }

    #[test]
    fn retention_deletes_old_calls_at_open() {
        let path = temp("retention");
        {
            let h = History::open(&path, None).unwrap();
            h.record(record("CAold", CallStatus::Completed, 100));
            let mut new = record("CAnew", CallStatus::Completed, 0);
            new.at = SystemTime::now();
            h.record(new);
            h.flush();
        }
        let h = History::open(&path, Some(Duration::from_secs(86_400))).unwrap();
        assert!(h.call("CAold").unwrap().is_none());
        assert!(h.events("CAold").unwrap().is_empty());
        assert!(h.call("CAnew").unwrap().is_some());
    }

    #[test]
    fn traces_are_kept_by_call_and_replaced() {
        let path = temp("traces");
        let h = History::open(&path, None).unwrap();
        h.record_trace("CA1".into(), "{\"a\":1}".into());
        h.record_trace("CA1".into(), "{\"a\":2}".into());
        h.flush();
        assert_eq!(h.trace("CA1").unwrap().as_deref(), Some("{\"a\":2}"));
        assert_eq!(h.trace("CA2").unwrap(), None);
    }

    #[test]
    fn a_version_1_file_is_migrated_in_place() {
        let path = temp("v1");
        {
            let mut c = Connection::open(&path).unwrap();
            let tx = c.transaction().unwrap();
            tx.execute_batch(MIGRATIONS[0]).unwrap();
            tx.execute_batch("PRAGMA user_version = 1").unwrap();
            tx.execute(
                "INSERT INTO calls (sid, from_, to_, direction, status, created_ms, updated_ms)
                 VALUES ('CAold', 'a', 'b', 'inbound', 'completed', 1, 1)",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let h = History::open(&path, None).unwrap();
        assert_eq!(h.call("CAold").unwrap().unwrap().status, "completed");
        h.record_trace("CAold".into(), "{}".into());
        h.flush();
        assert!(h.trace("CAold").unwrap().is_some());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let path = temp("newer");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("PRAGMA user_version = 99").unwrap();
        }
        let e = History::open(&path, None).unwrap_err();
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }

    fn conference(
        sid: &str,
        status: &'static str,
        reason: Option<&'static str>,
    ) -> ConferenceRecord {
        ConferenceRecord {
            sid: sid.into(),
            name: format!("room-{sid}"),
            status,
            reason,
            ended_by: reason.map(|_| "CA1".to_owned()),
            at: SystemTime::now(),
        }
    }

    #[test]
    fn conferences_follow_their_states_and_a_reopened_file_closes_open_ones() {
        let path = temp("conferences");
        {
            let h = History::open(&path, None).unwrap();
            h.record_conference(conference("CF1", "init", None));
            h.record_conference(conference("CF1", "in-progress", None));
            h.record_conference(conference(
                "CF1",
                "completed",
                Some("last-participant-left"),
            ));
            h.record_conference(conference("CF2", "in-progress", None));
            h.flush();
            let c1 = h.conference("CF1").unwrap().unwrap();
            assert_eq!(c1.status, "completed");
            assert_eq!(c1.reason.as_deref(), Some("last-participant-left"));
            assert_eq!(c1.ended_by.as_deref(), Some("CA1"));
            let open = h.conferences(None, Some("in-progress"), 0, 10).unwrap();
            assert_eq!(open.len(), 1);
            assert_eq!(open[0].sid, "CF2");
            let by_name = h.conferences(Some("room-CF1"), None, 0, 10).unwrap();
            assert_eq!(by_name.len(), 1);
        }
        let h = History::open(&path, None).unwrap();
        let c2 = h.conference("CF2").unwrap().unwrap();
        assert_eq!(c2.status, "completed");
        assert_eq!(c2.reason.as_deref(), Some("tandem-stopped"));
        assert_eq!(h.conferences(None, None, 0, 10).unwrap().len(), 2);
    }
}
