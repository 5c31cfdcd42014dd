//! Asynchronous callbacks (call progress and recording status): one bounded
//! queue and one delivery task per call, so callbacks of a call are sent in
//! order, retried with exponential backoff a bounded number of times, and a
//! slow or dead application server stalls only the call it belongs to.
//! Enqueueing never waits: a full queue drops the callback, logs an error and
//! counts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use crate::client::WebhookClient;
use crate::error::WebhookError;
use crate::params::{Params, RecordingEvent, StatusEvent};
use crate::request::{Method, redact};

/// Callback delivery settings.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// Callbacks waiting per call; more are dropped.
    pub queue_capacity: usize,
    /// Attempts per callback, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub initial_backoff: Duration,
    /// Upper bound of the wait between attempts.
    pub max_backoff: Duration,
    /// Whole-exchange timeout of one attempt.
    pub request_timeout: Duration,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 32,
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// What a callback reports, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackKind {
    /// A call progress event (`statusCallback`).
    CallProgress,
    /// A recording status event (`recordingStatusCallback`).
    Recording,
}

impl CallbackKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::CallProgress => "call-progress",
            Self::Recording => "recording",
        }
    }
}

/// One callback to send.
#[derive(Debug, Clone)]
pub struct Callback {
    /// Absolute URL (see [`resolve_url`](crate::resolve_url)).
    pub url: Url,
    /// GET or POST.
    pub method: Method,
    /// Parameters.
    pub params: Params,
    /// What it reports.
    pub kind: CallbackKind,
}

/// Why a callback was not queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The call's queue is full; the callback was dropped and counted.
    #[error("callback queue of call {call_sid} is full ({capacity}); {kind} callback dropped")]
    Full {
        /// The call.
        call_sid: String,
        /// The queue's capacity.
        capacity: usize,
        /// What was dropped.
        kind: &'static str,
    },
    /// The call's delivery task is gone (only after a panic in it).
    #[error("callback queue of call {call_sid} is closed")]
    Closed {
        /// The call.
        call_sid: String,
    },
}

/// Delivery counters, summed over every call of a dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallbackStats {
    /// Callbacks accepted into a queue.
    pub enqueued: u64,
    /// Callbacks answered with 2xx.
    pub delivered: u64,
    /// Attempts repeated after a retryable failure.
    pub retries: u64,
    /// Callbacks given up (non-retryable failure or attempts exhausted).
    pub failed: u64,
    /// Callbacks dropped because their call's queue was full.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    enqueued: AtomicU64,
    delivered: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Opens per-call callback queues that share one client and one set of counters.
#[derive(Debug, Clone)]
pub struct CallbackDispatcher {
    client: WebhookClient,
    config: Arc<CallbackConfig>,
    counters: Arc<Counters>,
}

impl CallbackDispatcher {
    /// A dispatcher sending through `client`.
    pub fn new(client: WebhookClient, config: CallbackConfig) -> Self {
        Self {
            client,
            config: Arc::new(config),
            counters: Arc::default(),
        }
    }

    /// Opens the queue of one call and starts its delivery task (must be
    /// called inside a tokio runtime). Dropping the queue lets the task
    /// finish what is queued; [`CallbackQueue::close`] also waits for it.
    pub fn open(&self, call_sid: impl Into<String>) -> CallbackQueue {
        let call_sid: Arc<str> = Arc::from(call_sid.into());
        let capacity = self.config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let worker = Worker {
            client: self.client.clone(),
            config: Arc::clone(&self.config),
            counters: Arc::clone(&self.counters),
            call_sid: Arc::clone(&call_sid),
        };
        let task = tokio::spawn(worker.run(rx));
        CallbackQueue {
            call_sid,
            capacity,
            sender: Mutex::new(Sender {
                tx,
                sequence: 0,
                next_id: 0,
            }),
            counters: Arc::clone(&self.counters),
            task,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CallbackStats {
        let c = &self.counters;
        CallbackStats {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}

struct Sender {
    tx: mpsc::Sender<Job>,
    /// Next `SequenceNumber` of a call progress event.
    sequence: u32,
    /// Next idempotency token suffix.
    next_id: u64,
}

struct Job {
    callback: Callback,
    token: HeaderValue,
}

/// The callback queue of one call.
#[derive(Debug)]
pub struct CallbackQueue {
    call_sid: Arc<str>,
    capacity: usize,
    sender: Mutex<Sender>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

const IDEMPOTENCY: HeaderName = HeaderName::from_static("i-twilio-idempotency-token");

impl CallbackQueue {
    /// The call this queue belongs to.
    pub fn call_sid(&self) -> &str {
        &self.call_sid
    }

    /// Queues a callback without waiting.
    pub fn enqueue(&self, callback: Callback) -> Result<(), EnqueueError> {
        let mut sender = self.lock();
        self.push(&mut sender, callback)
    }

    /// Queues a call progress event, numbering it with the call's next
    /// `SequenceNumber` (from 0). The number is used up even when the queue
    /// is full, so the application sees a gap where an event was dropped.
    pub fn enqueue_status(
        &self,
        url: Url,
        method: Method,
        event: &StatusEvent,
    ) -> Result<u32, EnqueueError> {
        let mut sender = self.lock();
        let sequence = sender.sequence;
        sender.sequence = sender.sequence.saturating_add(1);
        let callback = Callback {
            url,
            method,
            params: event.params(sequence),
            kind: CallbackKind::CallProgress,
        };
        self.push(&mut sender, callback).map(|()| sequence)
    }

    /// Queues a recording status event.
    pub fn enqueue_recording(
        &self,
        url: Url,
        method: Method,
        event: &RecordingEvent,
    ) -> Result<(), EnqueueError> {
        self.enqueue(Callback {
            url,
            method,
            params: event.params(),
            kind: CallbackKind::Recording,
        })
    }

    /// Stops accepting callbacks and waits until every queued one was
    /// delivered or given up.
    pub async fn close(self) {
        let Self { sender, task, .. } = self;
        drop(sender);
        if let Err(e) = task.await {
            tracing::error!(error = %e, "callback delivery task ended abnormally");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sender> {
        // Nothing panics while holding this lock; recover the data if it did.
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, sender: &mut Sender, callback: Callback) -> Result<(), EnqueueError> {
        let token = format!("{}-{}", self.call_sid, sender.next_id);
        sender.next_id += 1;
        let token = HeaderValue::from_str(&token).unwrap_or(HeaderValue::from_static("invalid"));
        let kind = callback.kind.as_str();
        match sender.tx.try_send(Job { callback, token }) {
            Ok(()) => {
                bump(&self.counters.enqueued);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(job)) => {
                bump(&self.counters.dropped);
                tracing::error!(
                    call_sid = %self.call_sid,
                    kind,
                    url = %redact(&job.callback.url),
                    capacity = self.capacity,
                    "callback queue full; callback dropped"
                );
                Err(EnqueueError::Full {
                    call_sid: self.call_sid.to_string(),
                    capacity: self.capacity,
                    kind,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                bump(&self.counters.dropped);
                tracing::error!(call_sid = %self.call_sid, kind, "callback queue closed; callback dropped");
                Err(EnqueueError::Closed {
                    call_sid: self.call_sid.to_string(),
                })
            }
        }
    }
}

/// Bytes of a callback's response body read (and discarded).
const CALLBACK_BODY_LIMIT: usize = 16 * 1024;

struct Worker {
    client: WebhookClient,
    config: Arc<CallbackConfig>,
    counters: Arc<Counters>,
    call_sid: Arc<str>,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            self.deliver(job).await;
        }
    }

    async fn deliver(&self, job: Job) {
        let cb = &job.callback;
        let shown = redact(&cb.url);
        let kind = cb.kind.as_str();
        let attempts = self.config.max_attempts.max(1);
        let mut backoff = self.config.initial_backoff;
        let headers = [(IDEMPOTENCY, job.token.clone())];
        for attempt in 1..=attempts {
            let result = self
                .client
                .exchange(
                    cb.method,
                    &cb.url,
                    &cb.params,
                    &headers,
                    self.config.request_timeout,
                    CALLBACK_BODY_LIMIT,
                )
                .await;
            let error = match result {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    bump(&self.counters.delivered);
                    tracing::debug!(call_sid = %self.call_sid, kind, url = %shown, attempt, "callback delivered");
                    return;
                }
                Ok(resp) => WebhookError::Status {
                    url: redact(&resp.url),
                    status: resp.status,
                },
                Err(e) => e,
            };
            if !error.is_retryable() || attempt == attempts {
                bump(&self.counters.failed);
                tracing::error!(
                    call_sid = %self.call_sid,
                    kind,
                    url = %shown,
                    status = error.status(),
                    attempt,
                    error = %error,
                    "callback given up"
                );
                return;
            }
            bump(&self.counters.retries);
            tracing::warn!(
                call_sid = %self.call_sid,
                kind,
                url = %shown,
                status = error.status(),
                attempt,
                retry_in = ?backoff,
                error = %error,
                "callback failed; will retry"
            );
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(self.config.max_backoff);
        }
    }
}
