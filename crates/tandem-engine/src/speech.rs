//! Speech recognition for `<Gather input="speech">` (docs/speech.md): the
//! utterance written to a temporary WAV (8 kHz, 16-bit mono), the program
//! `[speech] command` names run on it with the Gather's options in its
//! environment, its standard output read as the text — `0.87<TAB>text`
//! gives a `Confidence` too. Tandem ships no recogniser of its own, as for
//! `<Record transcribe>` (crate::transcribe): whisper.cpp, Vosk or
//! PocketSphinx behind a small script serve.

use std::sync::Arc;
use std::time::Duration;

use crate::call::{CallMsg, Mailbox, Recognition, Recognized};
use crate::engine::Ctx;
use crate::transcribe::run_program;

/// Longest the recognition of a whole utterance may take.
pub(crate) const FINAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest an interim recognition may take (the next one is skipped while
/// it runs).
pub(crate) const PARTIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Recognises `r` and sends the result to the call.
pub(crate) async fn run(ctx: Arc<Ctx>, me: Mailbox, r: Recognition) {
    let result = match &ctx.cfg.speech_command {
        None if r.samples.is_empty() => Ok((String::new(), None)),
        None => Err("no [speech] command configured".to_owned()),
        Some(cmd) => recognise(cmd, &r).await,
    };
    if let Ok((text, _)) = &result {
        tracing::info!(
            partial = r.partial,
            ms = r.samples.len() / 8,
            chars = text.len(),
            "speech recognised"
        );
    }
    me.send(CallMsg::Recognized(Box::new(Recognized {
        seq: r.seq,
        partial: r.partial,
        result,
    })));
}

async fn recognise(cmd: &[String], r: &Recognition) -> Result<(String, Option<String>), String> {
    if r.samples.is_empty() {
        return Ok((String::new(), None));
    }
    let path = std::env::temp_dir().join(format!(
        "tandem-speech-{}-{:016x}.wav",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut wav = Vec::with_capacity(44 + r.samples.len() * 2);
    let data_len = u32::try_from(r.samples.len() * 2).map_err(|_| "utterance too long")?;
    wav.extend_from_slice(&tandem_media::wav::pcm16_header(1, 8000, data_len));
    for s in &r.samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    tokio::fs::write(&path, &wav)
        .await
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let o = &r.opts;
    let env = [
        ("TANDEM_SPEECH_LANGUAGE", o.language.clone()),
        ("TANDEM_SPEECH_HINTS", o.hints.clone().unwrap_or_default()),
        ("TANDEM_SPEECH_MODEL", o.model.clone().unwrap_or_default()),
        ("TANDEM_SPEECH_ENHANCED", o.enhanced.to_string()),
        (
            "TANDEM_SPEECH_PARTIAL",
            u8::from(r.partial.is_some()).to_string(),
        ),
    ];
    let limit = if r.partial.is_some() {
        PARTIAL_TIMEOUT
    } else {
        FINAL_TIMEOUT
    };
    let out = run_program(cmd, &path, &env, limit).await;
    if let Err(e) = tokio::fs::remove_file(&path).await {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a speech WAV");
    }
    Ok(parse_output(&out?))
}

/// The recogniser's output: `text`, or `confidence<TAB>text` with a
/// confidence in 0..=1. Lines are joined with spaces.
pub(crate) fn parse_output(out: &str) -> (String, Option<String>) {
    let joined = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((c, text)) = out.trim().split_once('\t')
        && let Ok(v) = c.trim().parse::<f64>()
        && (0.0..=1.0).contains(&v)
    {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        return (text, Some(c.trim().to_owned()));
    }
    (joined, None)
}

#[cfg(test)]
mod tests {
    use super::parse_output;

    #[test]
    fn output_is_text_with_an_optional_confidence() {
        assert_eq!(
            parse_output("talk to sales\n"),
            ("talk to sales".into(), None)
        );
        assert_eq!(
            parse_output("0.87\ttalk to\n sales"),
            ("talk to sales".into(), Some("0.87".into()))
        );
        assert_eq!(parse_output("1.5\tx"), ("1.5 x".into(), None));
        assert_eq!(parse_output(""), (String::new(), None));
    }
}
