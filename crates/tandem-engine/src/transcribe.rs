//! `<Record transcribe>`: the recording's text from an external program
//! (`[recording] transcribe_command`, the WAV's path appended; its standard
//! output is the text), posted to `transcribeCallback` with Twilio's
//! parameters. Tandem has no speech recognition of its own: without a
//! command, or when it fails, times out or prints nothing, the callback
//! gets `TranscriptionStatus=failed` (as Twilio reports a failed
//! transcription). docs/recording.md, "Transcription".

use std::sync::Arc;
use std::time::Duration;

use tandem_webhook::{Callback, CallbackKind, Method};

use crate::call::Transcription;
use crate::engine::Ctx;

/// Longest a transcription may take.
pub(crate) const TRANSCRIBE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most text kept (Twilio's TranscriptionText is short; a runaway program
/// must not fill memory).
pub(crate) const MAX_TEXT: usize = 64 * 1024;

/// Runs the transcription of `t` and reports it.
pub(crate) async fn run(ctx: Arc<Ctx>, t: Transcription) {
    let sid = transcription_sid();
    let text = match &ctx.cfg.transcribe_command {
        Some(cmd) => transcribe(cmd, &t.path).await,
        None => Err("no [recording] transcribe_command configured".to_owned()),
    };
    let (status, text) = match text {
        Ok(text) => {
            tracing::info!(transcription = %sid, recording = %t.recording_sid, chars = text.len(), "transcription completed");
            ("completed", text)
        }
        Err(why) => {
            tracing::warn!(transcription = %sid, recording = %t.recording_sid, %why, "transcription failed");
            ("failed", String::new())
        }
    };
    let Some(url) = t.callback else {
        return;
    };
    let mut params = t.call;
    params.push("TranscriptionSid", sid.as_str());
    params.push("TranscriptionText", text);
    params.push("TranscriptionStatus", status);
    params.push(
        "TranscriptionUrl",
        format!(
            "{}/2010-04-01/Accounts/{}/Transcriptions/{sid}",
            ctx.cfg.public_url.trim_end_matches('/'),
            ctx.cfg.account_sid
        ),
    );
    params.push("RecordingSid", t.recording_sid);
    params.push("RecordingUrl", t.recording_url);
    let queue = ctx.callbacks.open(sid);
    if let Err(e) = queue.enqueue(Callback {
        url,
        method: Method::Post,
        params,
        kind: CallbackKind::Recording,
    }) {
        tracing::warn!(error = %e, "transcribeCallback dropped");
    }
}

async fn transcribe(cmd: &[String], wav: &std::path::Path) -> Result<String, String> {
    let text = run_program(cmd, wav, &[], TRANSCRIBE_TIMEOUT).await?;
    if text.is_empty() {
        return Err(format!("{} printed nothing", cmd[0]));
    }
    Ok(text)
}

/// Runs `cmd` with `wav`'s path appended and `env` added to its
/// environment; its standard output, trimmed and cut at [`MAX_TEXT`]. The
/// program is killed when `limit` passes (or the caller goes away).
pub(crate) async fn run_program(
    cmd: &[String],
    wav: &std::path::Path,
    env: &[(&str, String)],
    limit: Duration,
) -> Result<String, String> {
    let (program, args) = cmd.split_first().ok_or("empty command")?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .arg(wav)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| format!("{program} took more than {} s", limit.as_secs()))?
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{program} exited with {}: {}",
            out.status,
            err.trim()
        ));
    }
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(text)
}

fn transcription_sid() -> String {
    format!("TR{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_programs_output_is_the_text_and_failures_are_reported() {
        let wav = std::path::Path::new("/tmp/x.wav");
        let echo = vec!["echo".to_owned(), "hello".to_owned()];
        assert_eq!(transcribe(&echo, wav).await.unwrap(), "hello /tmp/x.wav");
        let fail = vec!["false".to_owned()];
        assert!(transcribe(&fail, wav).await.unwrap_err().contains("exited"));
        let silent = vec!["true".to_owned()];
        assert!(
            transcribe(&silent, wav)
                .await
                .unwrap_err()
                .contains("nothing")
        );
        let missing = vec!["/nonexistent/transcriber".to_owned()];
        assert!(transcribe(&missing, wav).await.is_err());
        assert!(transcription_sid().starts_with("TR"));
        assert_eq!(transcription_sid().len(), 34);
    }
}
