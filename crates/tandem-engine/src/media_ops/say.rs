//! `<Say>`: text to speech with espeak-ng, run as a child process (text on
//! stdin, never through a shell; the voice argument only ever comes from
//! the table below). Twilio's `voice` (`man`, `woman`, `alice`,
//! `Polly.<Name>[-Neural]`, `Google.<lang>-<model>`) and `language` (BCP 47,
//! e.g. `en-GB`) map to an espeak-ng voice; anything unknown is `en-us`.
//! The WAV espeak-ng writes is kept in a cache directory under the SHA-256
//! of (mapping version, espeak-ng voice, text), written to a temporary name
//! and renamed, so concurrent calls and crashes never leave a torn file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tandem_media::{Prompt, RATE_8K};
use tokio::io::AsyncWriteExt;

use super::prompt::{PromptError, Prompts};

/// Longest text spoken (Twilio's `<Say>` limit: 4,096 characters).
pub const MAX_SAY_CHARS: usize = 4096;

/// Bumped when the mapping or the synthesis arguments change, so old cache
/// files are not reused for a different rendering.
const CACHE_VERSION: &str = "tandem-tts-1";

/// The espeak-ng voice a `<Say>` is spoken with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechVoice {
    /// The espeak-ng language voice (`en-us`, `fr-fr`, `cmn`...).
    pub language: &'static str,
    /// A female variant (`+f3`) rather than espeak-ng's default male voice.
    pub female: bool,
}

impl SpeechVoice {
    /// The `-v` argument: `en-us`, or `en-us+f3` for a female voice.
    pub fn espeak_arg(&self) -> String {
        if self.female {
            format!("{}+f3", self.language)
        } else {
            self.language.to_owned()
        }
    }
}

/// Twilio language tags (and bare primary tags) → espeak-ng voices.
const LANGUAGES: &[(&str, &str)] = &[
    ("en-us", "en-us"),
    ("en-ca", "en-us"),
    ("en-gb", "en-gb"),
    ("en-gb-wls", "en-gb"),
    ("en-au", "en-gb"),
    ("en-nz", "en-gb"),
    ("en-ie", "en-gb"),
    ("en-in", "en-gb"),
    ("en-za", "en-gb"),
    ("en", "en-us"),
    ("ar-ae", "ar"),
    ("arb", "ar"),
    ("ca-es", "ca"),
    ("cmn-cn", "cmn"),
    ("zh-cn", "cmn"),
    ("zh-tw", "cmn"),
    ("zh", "cmn"),
    ("yue-hk", "yue"),
    ("zh-hk", "yue"),
    ("da-dk", "da"),
    ("de-de", "de"),
    ("de-at", "de"),
    ("de-ch", "de"),
    ("es-es", "es"),
    ("es-mx", "es-419"),
    ("es-us", "es-419"),
    ("fi-fi", "fi"),
    ("fr-fr", "fr-fr"),
    ("fr-ca", "fr-fr"),
    ("fr-be", "fr-be"),
    ("fr-ch", "fr-ch"),
    ("fr", "fr-fr"),
    ("hi-in", "hi"),
    ("is-is", "is"),
    ("it-it", "it"),
    ("ja-jp", "ja"),
    ("ko-kr", "ko"),
    ("nb-no", "nb"),
    ("no", "nb"),
    ("nl-nl", "nl"),
    ("nl-be", "nl"),
    ("pl-pl", "pl"),
    ("pt-br", "pt-br"),
    ("pt-pt", "pt"),
    ("ro-ro", "ro"),
    ("ru-ru", "ru"),
    ("sv-se", "sv"),
    ("tr-tr", "tr"),
    ("cy-gb", "cy"),
];

/// espeak-ng language voices a bare primary tag may name directly.
const ESPEAK_PRIMARY: &[&str] = &[
    "af", "am", "an", "ar", "as", "az", "ba", "be", "bg", "bn", "bs", "ca", "cs", "cy", "da", "de",
    "el", "eo", "es", "et", "eu", "fa", "fi", "ga", "gd", "gu", "he", "hi", "hr", "ht", "hu", "hy",
    "id", "is", "it", "ja", "ka", "kk", "kn", "ko", "ky", "la", "lb", "lt", "lv", "mi", "mk", "ml",
    "mr", "ms", "mt", "my", "nb", "ne", "nl", "pa", "pl", "pt", "ro", "ru", "sd", "si", "sk", "sl",
    "sq", "sr", "sv", "sw", "ta", "te", "th", "tk", "tr", "tt", "ug", "uk", "ur", "uz", "vi",
    "yue",
];

/// Amazon Polly voices Twilio offers: name → (language, female).
const POLLY: &[(&str, &str, bool)] = &[
    ("joanna", "en-us", true),
    ("salli", "en-us", true),
    ("kimberly", "en-us", true),
    ("kendra", "en-us", true),
    ("ivy", "en-us", true),
    ("ruth", "en-us", true),
    ("danielle", "en-us", true),
    ("matthew", "en-us", false),
    ("joey", "en-us", false),
    ("justin", "en-us", false),
    ("kevin", "en-us", false),
    ("stephen", "en-us", false),
    ("gregory", "en-us", false),
    ("amy", "en-gb", true),
    ("emma", "en-gb", true),
    ("arthur", "en-gb", false),
    ("brian", "en-gb", false),
    ("geraint", "en-gb", false),
    ("nicole", "en-au", true),
    ("olivia", "en-au", true),
    ("russell", "en-au", false),
    ("aditi", "en-in", true),
    ("raveena", "en-in", true),
    ("kajal", "en-in", true),
    ("celine", "fr-fr", true),
    ("céline", "fr-fr", true),
    ("lea", "fr-fr", true),
    ("léa", "fr-fr", true),
    ("mathieu", "fr-fr", false),
    ("chantal", "fr-ca", true),
    ("gabrielle", "fr-ca", true),
    ("vicki", "de-de", true),
    ("marlene", "de-de", true),
    ("hans", "de-de", false),
    ("daniel", "de-de", false),
    ("conchita", "es-es", true),
    ("lucia", "es-es", true),
    ("enrique", "es-es", false),
    ("mia", "es-mx", true),
    ("lupe", "es-us", true),
    ("penelope", "es-us", true),
    ("miguel", "es-us", false),
    ("pedro", "es-us", false),
    ("carla", "it-it", true),
    ("bianca", "it-it", true),
    ("giorgio", "it-it", false),
    ("camila", "pt-br", true),
    ("vitoria", "pt-br", true),
    ("ricardo", "pt-br", false),
    ("ines", "pt-pt", true),
    ("inês", "pt-pt", true),
    ("cristiano", "pt-pt", false),
    ("mizuki", "ja-jp", true),
    ("takumi", "ja-jp", false),
    ("seoyeon", "ko-kr", true),
    ("zhiyu", "cmn-cn", true),
    ("tatyana", "ru-ru", true),
    ("maxim", "ru-ru", false),
    ("astrid", "sv-se", true),
    ("liv", "nb-no", true),
    ("naja", "da-dk", true),
    ("mads", "da-dk", false),
    ("lotte", "nl-nl", true),
    ("ruben", "nl-nl", false),
    ("ewa", "pl-pl", true),
    ("maja", "pl-pl", true),
    ("jacek", "pl-pl", false),
    ("jan", "pl-pl", false),
    ("filiz", "tr-tr", true),
    ("zeina", "arb", true),
    ("carmen", "ro-ro", true),
    ("gwyneth", "cy-gb", true),
];

/// The espeak-ng language voice for a language tag, if one fits.
fn language_voice(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
    if let Some((_, v)) = LANGUAGES.iter().find(|(t, _)| *t == tag) {
        return Some(v);
    }
    let primary = tag.split('-').next().unwrap_or("");
    if let Some((_, v)) = LANGUAGES.iter().find(|(t, _)| *t == primary) {
        return Some(v);
    }
    ESPEAK_PRIMARY.iter().find(|p| **p == primary).copied()
}

/// Maps Twilio's `voice` and `language` to an espeak-ng voice. `language`
/// wins when both name one; a Polly or Google voice otherwise gives its
/// own language; default `en-us`. `woman`, `alice` and female Polly voices
/// get the female variant; `man`, male Polly voices, Google voices and no
/// voice get espeak-ng's default (male) voice.
pub fn espeak_voice(voice: Option<&str>, language: Option<&str>) -> SpeechVoice {
    let voice = voice.map(str::trim).unwrap_or("");
    let lower = voice.to_lowercase();
    let (voice_lang, female): (Option<&str>, bool) =
        if let Some(name) = lower.strip_prefix("polly.") {
            // `Polly.Joanna-Neural`, `Polly.Joanna-Generative`.
            let name = name.split('-').next().unwrap_or("");
            match POLLY.iter().find(|(n, _, _)| *n == name) {
                Some((_, l, f)) => (Some(l), *f),
                None => (None, false),
            }
        } else if let Some(model) = voice
            .strip_prefix("Google.")
            .or_else(|| voice.strip_prefix("google."))
        {
            // `Google.en-US-Standard-C`: the language is the first two parts.
            let mut parts = model.splitn(3, '-');
            let tag = match (parts.next(), parts.next()) {
                (Some(a), Some(b)) => Some(format!("{a}-{b}")),
                _ => None,
            };
            (tag.as_deref().and_then(language_voice), false)
        } else {
            (None, matches!(lower.as_str(), "woman" | "alice"))
        };
    let language = language
        .and_then(language_voice)
        .or_else(|| voice_lang.and_then(language_voice))
        .unwrap_or("en-us");
    SpeechVoice { language, female }
}

/// The cache file name for `text` in `voice`: hex SHA-256 + `.wav`.
fn cache_name(voice: &SpeechVoice, text: &str, ssml: bool) -> String {
    let mut h = Sha256::new();
    h.update(CACHE_VERSION.as_bytes());
    h.update([0]);
    if ssml {
        h.update(b"ssml\0");
    }
    h.update(voice.espeak_arg().as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    let mut name = String::with_capacity(68);
    for b in h.finalize() {
        name.push_str(&format!("{b:02x}"));
    }
    name.push_str(".wav");
    name
}

pub(super) async fn speech(
    prompts: &Prompts,
    text: &str,
    ssml: bool,
    voice: Option<&str>,
    language: Option<&str>,
) -> Result<Prompt, PromptError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PromptError::EmptyText);
    }
    let len = text.chars().count();
    if len > MAX_SAY_CHARS {
        return Err(PromptError::TextTooLong {
            len,
            max: MAX_SAY_CHARS,
        });
    }
    let v = espeak_voice(voice, language);
    let dir = &prompts.cfg.tts_cache_dir;
    let path = dir.join(cache_name(&v, text, ssml));
    if let Some(p) = load_cached(&path).await {
        tracing::debug!(voice = %v.espeak_arg(), "speech from cache");
        return Ok(p);
    }
    // One synthesis per permit; a call waiting for the same text finds the
    // file once the first one is done.
    let _permit = prompts
        .tts_permits
        .acquire()
        .await
        .map_err(|_| PromptError::Task)?;
    if let Some(p) = load_cached(&path).await {
        return Ok(p);
    }
    synthesize(prompts, &v, text, ssml, dir, &path).await?;
    let p = path.clone();
    tokio::task::spawn_blocking(move || Prompt::open_wav(&p, RATE_8K))
        .await
        .map_err(|_| PromptError::Task)?
        .map_err(PromptError::from)
}

/// The cached prompt, if the file exists and decodes; a file that does not
/// decode is removed (it will be synthesized again).
async fn load_cached(path: &Path) -> Option<Prompt> {
    if tokio::fs::metadata(path).await.is_err() {
        return None;
    }
    let p = path.to_owned();
    match tokio::task::spawn_blocking(move || Prompt::open_wav(&p, RATE_8K)).await {
        Ok(Ok(prompt)) => Some(prompt),
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "speech cache file unusable; removing it");
            let _ = tokio::fs::remove_file(path).await;
            None
        }
        Err(_) => None,
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

async fn synthesize(
    prompts: &Prompts,
    voice: &SpeechVoice,
    text: &str,
    ssml: bool,
    dir: &Path,
    path: &Path,
) -> Result<(), PromptError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| PromptError::Cache {
            path: dir.to_owned(),
            source,
        })?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}.wav",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let program = &prompts.cfg.espeak;
    let started = std::time::Instant::now();
    let result = run_espeak(program, voice, text, ssml, &tmp, prompts.cfg.tts_timeout).await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|source| PromptError::Cache {
            path: path.to_owned(),
            source,
        })?;
    tracing::debug!(
        voice = %voice.espeak_arg(),
        chars = text.chars().count(),
        took_ms = started.elapsed().as_millis() as u64,
        "speech synthesized"
    );
    Ok(())
}

async fn run_espeak(
    program: &PathBuf,
    voice: &SpeechVoice,
    text: &str,
    ssml: bool,
    out: &Path,
    timeout: std::time::Duration,
) -> Result<(), PromptError> {
    let mut cmd = tokio::process::Command::new(program);
    if ssml {
        // SSML markup (the parser kept only tags espeak-ng knows).
        cmd.arg("-m");
    }
    let mut child = cmd
        .arg("-v")
        .arg(voice.espeak_arg())
        .arg("-b")
        .arg("1") // UTF-8 input
        .arg("-w")
        .arg(out)
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| PromptError::TtsUnavailable {
            program: program.clone(),
            source,
        })?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A failed write shows up as the exit status below.
            let _ = stdin.write_all(text.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
            drop(stdin);
        }
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(o)) => o,
        Ok(Err(source)) => {
            return Err(PromptError::TtsUnavailable {
                program: program.clone(),
                source,
            });
        }
        Err(_) => return Err(PromptError::TtsTimeout(timeout)),
    };
    if !output.status.success() {
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if let Some((i, _)) = stderr.char_indices().nth(300) {
            stderr.truncate(i);
        }
        return Err(PromptError::TtsFailed {
            status: output.status.code(),
            stderr,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(v: Option<&str>, l: Option<&str>) -> String {
        espeak_voice(v, l).espeak_arg()
    }

    #[test]
    fn maps_twilio_voices_and_languages() {
        assert_eq!(arg(None, None), "en-us");
        assert_eq!(arg(Some("man"), None), "en-us");
        assert_eq!(arg(Some("woman"), None), "en-us+f3");
        assert_eq!(arg(Some("alice"), Some("en-GB")), "en-gb+f3");
        assert_eq!(arg(Some("Polly.Joanna"), None), "en-us+f3");
        assert_eq!(arg(Some("Polly.Brian-Neural"), None), "en-gb");
        assert_eq!(arg(Some("Polly.Céline"), None), "fr-fr+f3");
        assert_eq!(arg(Some("Google.de-DE-Standard-A"), None), "de");
        assert_eq!(arg(Some("man"), Some("es-MX")), "es-419");
        assert_eq!(arg(Some("alice"), Some("pt-BR")), "pt-br+f3");
        assert_eq!(arg(None, Some("sk-SK")), "sk");
        // Unknown or hostile values never reach espeak-ng's arguments.
        assert_eq!(arg(Some("--evil"), Some("-w /etc/passwd")), "en-us");
        assert_eq!(arg(Some("Polly.Nobody"), Some("xx-YY")), "en-us");
    }

    #[test]
    fn cache_names_depend_on_voice_and_text() {
        let us = espeak_voice(None, None);
        let gb = espeak_voice(None, Some("en-GB"));
        let a = cache_name(&us, "hello", false);
        assert_eq!(a.len(), 64 + 4);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        assert_eq!(a, cache_name(&us, "hello", false));
        assert_ne!(a, cache_name(&gb, "hello", false));
        assert_ne!(a, cache_name(&us, "hello!", false));
        assert_ne!(a, cache_name(&us, "hello", true), "SSML is cached apart");
    }
}
