//! Container logs for the dashboard: `podman logs` of one of an app's containers (named in
//! its manifest, nothing else), line by line, each line valid UTF-8 of at most
//! [`LOG_LINE_MAX`] bytes. The last lines are answered within the engine's deadline;
//! following lasts as long as the caller keeps the receiver (dropping it kills the client).

use std::collections::VecDeque;
use std::io;
use std::process::Stdio;

use archy_registry::{Manifest, VerifiedManifest};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tracing::debug;

use crate::engine::{describe, is_unreachable};
use crate::{Engine, Error, Orchestrator, Result, container_name};

/// Most bytes of one log line, the cut mark included: a longer line is cut at a character
/// boundary and ends in [`CUT_MARK`].
pub const LOG_LINE_MAX: usize = 16 * 1024;

/// What ends a line that was longer than [`LOG_LINE_MAX`].
pub const CUT_MARK: &str = " [… line cut at 16 KiB]";

/// Most lines one call asks Podman for (`--tail`); more are asked for as this many.
pub const LOG_TAIL_MAX: u32 = 10_000;

/// Most bytes of lines the last-lines form holds before answering (the oldest go first):
/// [`LOG_TAIL_MAX`] lines of [`LOG_LINE_MAX`] would be 160 MiB.
const LOG_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Lines a follower may lag behind before the follow form waits for it.
const FOLLOW_BUFFER: usize = 256;

/// One line a container wrote (stdout and stderr alike, in the order they arrive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The container's name in the manifest (`web`, not `archy-hello-web`).
    pub container: String,
    pub line: String,
}

impl Orchestrator {
    /// The last `tail` lines (at most [`LOG_TAIL_MAX`]) of the app's container `container`
    /// (its name in the manifest; any other name is refused with
    /// [`Error::UnknownContainer`] before Podman is asked), then, with `follow`, every new
    /// line until the container stops or the receiver is dropped.
    ///
    /// Without `follow` the answer comes within the engine's deadline, all lines already
    /// in the receiver, or an error ([`Error::Timeout`], the client killed). With `follow`
    /// the `podman logs --follow` client lives as long as the receiver: dropping it kills
    /// the client. With `since`, only lines written from then on.
    pub async fn logs(
        &self,
        manifest: &VerifiedManifest,
        container: &str,
        tail: u32,
        follow: bool,
        since: Option<DateTime<Utc>>,
    ) -> Result<mpsc::Receiver<LogLine>> {
        self.logs_of(manifest, container, tail, follow, since).await
    }

    /// [`Orchestrator::logs`] for any manifest (the tests build theirs).
    pub(crate) async fn logs_of(
        &self,
        manifest: &Manifest,
        container: &str,
        tail: u32,
        follow: bool,
        since: Option<DateTime<Utc>>,
    ) -> Result<mpsc::Receiver<LogLine>> {
        let app = manifest.id.as_str();
        let Some(c) = manifest.containers.iter().find(|c| c.name == container) else {
            return Err(Error::UnknownContainer {
                app: app.to_owned(),
                container: container.to_owned(),
            });
        };
        let name = container_name(app, &c.name);
        // One error for a missing container, whatever the runtime would say (Podman
        // 4.3.1's remote client says "lost synchronization with multiplexed stream").
        if self.runtime.inspect(&name).await?.is_none() {
            return Err(Error::Engine(format!(
                "container {name} of {app} does not exist"
            )));
        }
        let lines = self.runtime.logs(&name, tail, follow, since).await?;
        Ok(label_lines(lines, c.name.clone(), follow))
    }
}

/// The runtime's lines as [`LogLine`]s of `container`. The last-lines form is passed on at
/// once (every line is there already); the follow form through a task that ends when
/// either side does, so dropping the answer drops the runtime's receiver (and its client).
fn label_lines(
    mut lines: mpsc::Receiver<String>,
    container: String,
    follow: bool,
) -> mpsc::Receiver<LogLine> {
    if !follow {
        let mut all = Vec::new();
        while let Ok(line) = lines.try_recv() {
            all.push(LogLine {
                container: container.clone(),
                line,
            });
        }
        let (tx, rx) = mpsc::channel(all.len().max(1));
        for line in all {
            let _ = tx.try_send(line);
        }
        return rx;
    }
    let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(line) => {
                        let line = LogLine { container: container.clone(), line };
                        if tx.send(line).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                _ = tx.closed() => break,
            }
        }
    });
    rx
}

impl Engine {
    /// `podman logs` of container `name`: [`crate::Runtime::logs`] for the CLI. Without
    /// `follow` the answer comes within the engine's deadline, all lines already in the
    /// receiver, or an error ([`Error::Timeout`], the client killed). With `follow` the
    /// `podman logs --follow` client lives as long as the receiver.
    pub(crate) async fn container_logs(
        &self,
        name: &str,
        tail: u32,
        follow: bool,
        since: Option<DateTime<Utc>>,
    ) -> Result<mpsc::Receiver<String>> {
        let args = logs_args(name, tail, follow, since);
        let (child, output) = spawn_lines(self, &args)?;
        if follow {
            return Ok(follow_lines(child, output));
        }
        let deadline = self.deadline();
        let lines =
            match tokio::time::timeout(deadline, last_lines(child, output, &args, self)).await {
                Ok(lines) => lines?,
                // The client was dropped with the future, and killed (`kill_on_drop`).
                Err(_) => {
                    return Err(Error::Timeout {
                        what: describe(&refs(&args)),
                        after: deadline,
                    });
                }
            };
        let (tx, rx) = mpsc::channel(lines.len().max(1));
        for line in lines {
            let _ = tx.try_send(line);
        }
        Ok(rx)
    }
}

/// `podman logs --tail N [--follow] [--since=TIME] -- NAME`. `since` is a time, not text:
/// it is rendered here as RFC 3339 UTC to the second (digits, `-`, `:`, `T`, `Z`; the
/// remote client passes no finer time to the service anyway), glued to its flag so that
/// Podman can never read it as an option or the container.
pub(crate) fn logs_args(
    name: &str,
    tail: u32,
    follow: bool,
    since: Option<DateTime<Utc>>,
) -> Vec<String> {
    let mut args = vec![
        "logs".to_owned(),
        "--tail".to_owned(),
        tail.min(LOG_TAIL_MAX).to_string(),
    ];
    if follow {
        args.push("--follow".to_owned());
    }
    if let Some(since) = since {
        args.push(format!(
            "--since={}",
            since.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    args.push("--".to_owned());
    args.push(name.to_owned());
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Runs `podman --remote --url URL ARGS…`, killed when dropped, and reads its stdout and
/// stderr line by line (`true` for stderr) as they come. The two are read apart, so that
/// neither stream's lines can run into the other's. Measured on 4.3.1: the remote client
/// passes on a line longer than conmon's 8 KiB buffer in pieces, on either stream, without
/// their line breaks, so such a line arrives glued to a line before it (a Podman bug; the
/// cap still holds).
fn spawn_lines(
    engine: &Engine,
    args: &[String],
) -> Result<(Child, mpsc::Receiver<(bool, String)>)> {
    debug!(args = ?args.first(), "podman");
    let mut child = engine
        .podman(args.first().map(String::as_str).unwrap_or_default())?
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::Engine(format!(
                "cannot run the podman client: {e} (is podman installed?)"
            ))
        })?;
    let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
    let stdout = child
        .stdout
        .take()
        .map(|o| read_lines(o, false, tx.clone()));
    let stderr = child.stderr.take().map(|e| read_lines(e, true, tx));
    if stdout.is_none() || stderr.is_none() {
        return Err(Error::Engine(format!(
            "`{}` has no output to read",
            describe(&refs(args))
        )));
    }
    Ok((child, rx))
}

/// Sends every line of `output` until it ends or nobody listens.
fn read_lines(
    output: impl AsyncRead + Unpin + Send + 'static,
    stderr: bool,
    tx: mpsc::Sender<(bool, String)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(output);
        loop {
            match read_line_capped(&mut reader).await {
                Ok(Some(line)) => {
                    if tx.send((stderr, line)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "reading podman's output");
                    break;
                }
            }
        }
    })
}

/// Reads every line until the client ends; the newest [`LOG_BYTES_MAX`] bytes are kept.
async fn last_lines(
    mut child: Child,
    mut output: mpsc::Receiver<(bool, String)>,
    args: &[String],
    engine: &Engine,
) -> Result<Vec<String>> {
    let mut lines = VecDeque::new();
    let mut bytes = 0;
    let mut complaint = String::new();
    while let Some((stderr, line)) = output.recv().await {
        if stderr {
            complaint.clone_from(&line);
        }
        bytes += line.len();
        lines.push_back(line);
        while bytes > LOG_BYTES_MAX
            && let Some(old) = lines.pop_front()
        {
            bytes -= old.len();
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| Error::Engine(format!("waiting for `{}`: {e}", describe(&refs(args)))))?;
    if !status.success() {
        // Podman's own complaint is the last line on its stderr.
        let why = complaint.trim();
        if is_unreachable(why) {
            return Err(Error::ServiceDown {
                url: engine.url().to_owned(),
                what: describe(&refs(args)),
                detail: why.to_owned(),
            });
        }
        return Err(Error::Engine(format!(
            "`{}` failed: {why}",
            describe(&refs(args))
        )));
    }
    Ok(lines.into())
}

/// Passes on every line as it comes, until the client ends or the receiver is dropped
/// (which drops, and so kills, the client).
fn follow_lines(
    child: Child,
    mut output: mpsc::Receiver<(bool, String)>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
    tokio::spawn(async move {
        let _child = child;
        loop {
            tokio::select! {
                line = output.recv() => match line {
                    Some((_, line)) => {
                        if tx.send(line).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                _ = tx.closed() => break,
            }
        }
    });
    rx
}

/// Reads one line (without its `\n`, and a `\r` before it), holding at most
/// [`LOG_LINE_MAX`] bytes of it; `None` at the end. See [`finish_line`].
async fn read_line_capped<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut cut = false;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if !read_any {
                return Ok(None);
            }
            break;
        }
        read_any = true;
        let newline = available.iter().position(|b| *b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let room = LOG_LINE_MAX - line.len();
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(available.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if !cut && line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(finish_line(line, cut)))
}

/// A line as UTF-8 (invalid bytes replaced by U+FFFD) of at most [`LOG_LINE_MAX`] bytes:
/// a line that was cut, or grew past the cap by replacement, is cut at a character
/// boundary to make room for [`CUT_MARK`].
fn finish_line(mut bytes: Vec<u8>, mut cut: bool) -> String {
    if cut && let Err(e) = std::str::from_utf8(&bytes) {
        // A character the cut split in two is dropped, not replaced.
        if e.error_len().is_none() {
            bytes.truncate(e.valid_up_to());
        }
    }
    let mut line = String::from_utf8_lossy(&bytes).into_owned();
    if line.len() > LOG_LINE_MAX {
        cut = true;
    }
    if cut {
        let mut end = (LOG_LINE_MAX - CUT_MARK.len()).min(line.len());
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str(CUT_MARK);
    }
    line
}

#[cfg(test)]
mod tests;
