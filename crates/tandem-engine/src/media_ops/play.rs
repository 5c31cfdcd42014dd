//! `<Play>` audio: `file:` URLs and `http(s)` URLs fetched with the engine's
//! webhook client (GET, redirects followed, size-capped), decoded by
//! tandem-media's player (WAV: 16-bit PCM, μ-law, A-law, any rate; raw
//! μ-law by content type `audio/basic`/`audio/x-mulaw` or extension
//! `.ul .ulaw .mulaw .pcmu .raw`). Decoded audio is cached per URL for the
//! process lifetime within a byte budget (oldest evicted first); a file
//! entry is reloaded when the file's size or modification time changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tandem_media::{Prompt, RATE_8K};
use tandem_webhook::{Method, Params, redact};
use url::Url;

use super::prompt::{PromptError, Prompts};

/// Default largest `<Play>` file or body (16 MiB: 35 minutes of μ-law).
pub const MAX_PLAY_BYTES: usize = 16 * 1024 * 1024;

/// Default whole-request timeout of a `<Play>` fetch.
pub const PLAY_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

const RAW_EXTENSIONS: [&str; 5] = ["ul", "ulaw", "mulaw", "pcmu", "raw"];

/// Decoded `<Play>` audio by URL.
#[derive(Debug)]
pub struct PlayCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    entries: HashMap<String, Entry>,
    bytes: usize,
    next: u64,
}

#[derive(Debug)]
struct Entry {
    prompt: Prompt,
    /// Size and mtime of a file entry when it was read.
    stamp: Option<(u64, Option<SystemTime>)>,
    order: u64,
}

impl PlayCache {
    /// A cache holding up to `budget` bytes of decoded audio.
    pub fn new(budget: usize) -> Self {
        PlayCache {
            budget,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// Bytes of decoded audio held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &str, stamp: Option<(u64, Option<SystemTime>)>) -> Option<Prompt> {
        let g = self.lock();
        let e = g.entries.get(key)?;
        (e.stamp == stamp).then(|| e.prompt.clone())
    }

    fn put(&self, key: &str, prompt: &Prompt, stamp: Option<(u64, Option<SystemTime>)>) {
        let size = prompt.len() * 2;
        if size > self.budget {
            return;
        }
        let mut g = self.lock();
        if let Some(old) = g.entries.remove(key) {
            g.bytes -= old.prompt.len() * 2;
        }
        while g.bytes + size > self.budget {
            let Some(oldest) = g
                .entries
                .iter()
                .min_by_key(|(_, e)| e.order)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = g.entries.remove(&oldest) {
                g.bytes -= e.prompt.len() * 2;
            }
        }
        let order = g.next;
        g.next += 1;
        g.bytes += size;
        g.entries.insert(
            key.to_owned(),
            Entry {
                prompt: prompt.clone(),
                stamp,
                order,
            },
        );
    }
}

pub(super) async fn load(prompts: &Prompts, url: &str) -> Result<Prompt, PromptError> {
    let parsed = Url::parse(url.trim()).map_err(|source| PromptError::BadUrl {
        url: url.to_owned(),
        source,
    })?;
    match parsed.scheme() {
        "file" => {
            let Ok(path) = parsed.to_file_path() else {
                return Err(PromptError::UnsupportedScheme {
                    url: redact(&parsed),
                    scheme: "file".into(),
                });
            };
            load_file(prompts, &parsed, path).await
        }
        "http" | "https" => load_http(prompts, &parsed).await,
        other => Err(PromptError::UnsupportedScheme {
            url: redact(&parsed),
            scheme: other.to_owned(),
        }),
    }
}

async fn load_file(prompts: &Prompts, url: &Url, path: PathBuf) -> Result<Prompt, PromptError> {
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|source| PromptError::File {
            path: path.clone(),
            source,
        })?;
    let limit = prompts.cfg.max_play_bytes;
    if meta.len() > limit as u64 {
        return Err(PromptError::TooLarge {
            url: redact(url),
            limit,
        });
    }
    let stamp = Some((meta.len(), meta.modified().ok()));
    let key = url.as_str();
    if let Some(p) = prompts.cache.get(key, stamp) {
        return Ok(p);
    }
    let p = path.clone();
    let prompt = tokio::task::spawn_blocking(move || Prompt::open(&p, RATE_8K))
        .await
        .map_err(|_| PromptError::Task)?
        .map_err(|e| match e {
            tandem_media::PlayerError::Wav(tandem_media::wav::WavError::NotWave) => {
                PromptError::UnsupportedFormat {
                    url: redact(url),
                    content_type: String::new(),
                }
            }
            e => PromptError::Decode(e),
        })?;
    tracing::debug!(url = %redact(url), ms = prompt.duration_ms(), "audio file loaded");
    prompts.cache.put(key, &prompt, stamp);
    Ok(prompt)
}

/// How a fetched body is to be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wav,
    RawUlaw,
}

fn kind_of(content_type: &str, path: &Path, body: &[u8]) -> Option<Kind> {
    if body.len() >= 12 && &body[0..4] == b"RIFF" && &body[8..12] == b"WAVE" {
        return Some(Kind::Wav);
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "audio/basic" | "audio/x-mulaw" | "audio/mulaw" | "audio/ulaw" | "audio/pcmu"
        | "audio/x-ulaw" => {
            // `.au` files (Sun audio) carry a header: not raw.
            return (!body.starts_with(b".snd")).then_some(Kind::RawUlaw);
        }
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => return Some(Kind::Wav),
        _ => {}
    }
    let raw_ext = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| RAW_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    raw_ext.then_some(Kind::RawUlaw)
}

async fn load_http(prompts: &Prompts, url: &Url) -> Result<Prompt, PromptError> {
    let key = url.as_str();
    if let Some(p) = prompts.cache.get(key, None) {
        return Ok(p);
    }
    let Some(http) = &prompts.http else {
        return Err(PromptError::NoHttpClient { url: redact(url) });
    };
    let limit = prompts.cfg.max_play_bytes;
    let resp = http
        .exchange(
            Method::Get,
            url,
            &Params::new(),
            &[],
            prompts.cfg.play_timeout,
            limit,
        )
        .await?;
    if !(200..300).contains(&resp.status) {
        return Err(PromptError::HttpStatus {
            url: redact(url),
            status: resp.status,
        });
    }
    if !resp.body_complete {
        return Err(PromptError::TooLarge {
            url: redact(url),
            limit,
        });
    }
    let path = PathBuf::from(resp.url.path());
    let Some(kind) = kind_of(&resp.content_type, &path, &resp.body) else {
        return Err(PromptError::UnsupportedFormat {
            url: redact(url),
            content_type: resp.content_type,
        });
    };
    let body = resp.body;
    let prompt = tokio::task::spawn_blocking(move || match kind {
        Kind::Wav => Prompt::from_wav_bytes(&body, RATE_8K),
        Kind::RawUlaw => Prompt::from_raw_ulaw(&body, RATE_8K),
    })
    .await
    .map_err(|_| PromptError::Task)??;
    tracing::debug!(url = %redact(url), ms = prompt.duration_ms(), "audio fetched");
    prompts.cache.put(key, &prompt, None);
    Ok(prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_the_format() {
        let riff = b"RIFF\0\0\0\0WAVEfmt ";
        let p = Path::new("/a/b");
        assert_eq!(
            kind_of("application/octet-stream", p, riff),
            Some(Kind::Wav)
        );
        assert_eq!(kind_of("audio/basic", p, b"\xff\xff"), Some(Kind::RawUlaw));
        assert_eq!(kind_of("audio/basic", p, b".snd\0\0"), None);
        assert_eq!(kind_of("Audio/X-WAV; charset=x", p, b"xx"), Some(Kind::Wav));
        assert_eq!(
            kind_of("", Path::new("/x/hello.ULAW"), b"\x7f"),
            Some(Kind::RawUlaw)
        );
        assert_eq!(
            kind_of("audio/mpeg", Path::new("/cowbell.mp3"), b"ID3"),
            None
        );
    }

    #[test]
    fn cache_evicts_the_oldest_within_its_budget() {
        let prompt = |n: usize| Prompt::from_pcm(8000, &vec![1i16; n], 8000).unwrap();
        let c = PlayCache::new(1000);
        c.put("a", &prompt(200), None);
        c.put("b", &prompt(200), None);
        assert_eq!(c.bytes(), 800);
        c.put("c", &prompt(200), None);
        assert_eq!(c.len(), 2);
        assert!(c.get("a", None).is_none());
        assert!(c.get("c", None).is_some());
        // Larger than the whole budget: not cached.
        c.put("d", &prompt(600), None);
        assert!(c.get("d", None).is_none());
        // A changed file stamp misses.
        c.put("f", &prompt(10), Some((20, None)));
        assert!(c.get("f", Some((21, None))).is_none());
        assert!(c.get("f", Some((20, None))).is_some());
    }
}
