//! [`Libpod`]: the orchestrator's [`Runtime`] over Podman's own REST API (libpod), spoken
//! over the rootless user's unix socket: one HTTP/1.1 request per operation instead of a
//! `podman --remote` process (issue 15: ~30 ms of client start-up per call).
//!
//! Every request has a deadline covering connect, send and the whole answer
//! ([`Error::Timeout`] naming the operation as an operator would type it, e.g. `podman
//! start archy-x-web`); a socket nobody listens on is [`Error::ServiceDown`] at once; every
//! answer is read up to a bound and no further; a refusal is [`Error::Engine`] with
//! Podman's own message. Values go into percent-encoded path segments, percent-encoded
//! query values or JSON bodies, never anywhere Podman parses options from.
//!
//! Containers are created from the checked argv: [`spec::spec_generator`] turns
//! [`CreateSpec::parsed`] (the argv as the checker read it) into the `SpecGenerator` the
//! Podman 4.3 CLI would send for it, refusing any option it cannot translate, so `archy app
//! render` (which prints that argv) stays the one human-readable form, and the e2e test
//! `libpod::a_container_created_over_the_api_is_the_one_the_cli_creates_from_the_same_argv`
//! holds the two to the same `podman inspect`. `logs` and `events` still go through the
//! [`Engine`] this runtime holds (long-lived streams not yet ported; neither is on the path
//! of an install or a health check). Everything else (lists, inspect, create, start, stop,
//! kill, remove, exec, load, volumes, networks, secrets) is a REST call or three (exec).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Frame};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tracing::debug;

use crate::argv_check::is_image_id;
use crate::engine::{PsEntry, load_deadline};
use crate::runtime::{
    ArchiveSource, BoxFuture, ContainerDetails, ContainerInfo, CreateSpec, HostInfo, ImageArchive,
    Runtime,
};
use crate::{AppEvent, DEFAULT_DEADLINE, Engine, Error, LABEL_APP, Result};

mod spec;

/// The API prefix: libpod's v4 API, which Podman 4.0 and later serve.
const API: &str = "/v4.0.0/libpod";

/// The most of an answer that is ever read: a listing of every labelled container or
/// volume (a few hundred bytes each).
const LIST_MAX: usize = 16 * 1024 * 1024;
/// One object's inspect (a container's is ~10 KiB), an error, a load report.
const ONE_MAX: usize = 1024 * 1024;

/// What is left alone in a path segment or query value: the rest is percent-encoded, so a
/// name can never add a segment (`/`), a query (`?`, `&`, `=`) or a fragment.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

fn enc(value: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(value, ENCODE)
}

type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn json_body(value: &serde_json::Value) -> ReqBody {
    full(serde_json::to_vec(value).expect("a JSON value serializes"))
}

/// The Podman service's REST API as the orchestrator's [`Runtime`].
#[derive(Debug, Clone)]
pub struct Libpod {
    url: String,
    socket: PathBuf,
    host: HostInfo,
    deadline: Duration,
    /// The CLI, for what still goes through it: logs and events (see the module's
    /// documentation).
    cli: Engine,
}

/// One answer: its status and its (bounded) body.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json<T: for<'de> Deserialize<'de>>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Engine(format!("unexpected answer to `{what}`: {e}")))
    }
}

/// Podman's error body (`utils.Error`: `{"cause", "message", "response"}`).
#[derive(Deserialize, Default)]
struct PodmanError {
    #[serde(default)]
    cause: String,
    #[serde(default)]
    message: String,
}

impl Libpod {
    /// Checks that the service at `url` answers and runs rootless, and records what the
    /// host can enforce (`GET /libpod/info`).
    pub async fn connect(url: &str) -> Result<Self> {
        let mut libpod = Self::unchecked(url, DEFAULT_DEADLINE)?;
        let info = libpod
            .call(Method::GET, "/info", empty(), "podman info", ONE_MAX, None)
            .await
            .map_err(|e| match e {
                e @ (Error::Timeout { .. } | Error::ServiceDown { .. }) => e,
                e => Error::Engine(format!(
                    "cannot reach the Podman service at {url}: {e} \
                     (start it as the podman user: podman system service --time=0 {url})"
                )),
            })?;
        let info = ok(info, "podman info")?;
        let host = HostInfo::parse(&String::from_utf8_lossy(&info.body))?;
        if !host.rootless {
            return Err(Error::NotRootless {
                url: url.to_owned(),
            });
        }
        libpod.host = host.clone();
        libpod.cli = Engine::with_host(url, host, libpod.deadline);
        Ok(libpod)
    }

    /// A client of the socket at `url` (`unix:///…`) without asking it anything: for
    /// tests of services that do not answer.
    pub(crate) fn unchecked(url: &str, deadline: Duration) -> Result<Self> {
        let socket = url
            .strip_prefix("unix://")
            .filter(|path| path.starts_with('/'))
            .ok_or_else(|| {
                Error::Engine(format!(
                    "the Podman URL {url:?} is not a unix socket (unix:///run/user/UID/podman.sock)"
                ))
            })?;
        Ok(Self {
            url: url.to_owned(),
            socket: PathBuf::from(socket),
            host: HostInfo::default(),
            deadline,
            cli: Engine::with_host(url, HostInfo::default(), deadline),
        })
    }

    /// The same client with another default deadline for each call (calls with their own
    /// bound, `load` and `stop`, keep it).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self.cli = self.cli.with_deadline(deadline);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One request within `deadline` (the default when `None`): connect, send, read at
    /// most `limit` bytes of the answer. Any status is an answer; the caller judges it.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        what: &str,
        limit: usize,
        deadline: Option<Duration>,
    ) -> Result<Answer> {
        let deadline = deadline.unwrap_or(self.deadline);
        match tokio::time::timeout(
            deadline,
            self.call_unbounded(method, path, body, what, limit),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err(Error::Timeout {
                what: what.to_owned(),
                after: deadline,
            }),
        }
    }

    async fn call_unbounded(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        what: &str,
        limit: usize,
    ) -> Result<Answer> {
        debug!(%method, path, "libpod");
        let started = std::time::Instant::now();
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| Error::ServiceDown {
                url: self.url.clone(),
                what: what.to_owned(),
                detail: e.to_string(),
            })?;
        let broken = |e: hyper::Error| {
            // hyper's own words, then why (e.g. the archive body's error).
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                why.push_str(": ");
                why.push_str(&cause.to_string());
                source = cause.source();
            }
            Error::Engine(format!(
                "`{what}` to the Podman service at {} broke off: {why}",
                self.url
            ))
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(broken)?;
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{API}{path}"))
            .header(hyper::header::HOST, "d");
        if let Some(len) = body.size_hint().exact() {
            request = request.header(hyper::header::CONTENT_LENGTH, len);
        }
        let request = request
            .body(body)
            .map_err(|e| Error::Engine(format!("`{what}`: cannot build the request: {e}")))?;
        let exchange = async move {
            let response = sender.send_request(request).await.map_err(broken)?;
            drop(sender);
            let status = response.status();
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| {
                    Error::Engine(if e.is::<http_body_util::LengthLimitError>() {
                        format!("`{what}`: Podman's answer is longer than {limit} bytes; not read")
                    } else {
                        format!("`{what}`: reading Podman's answer: {e}")
                    })
                })?
                .to_bytes();
            Ok(Answer { status, body })
        };
        // The connection is driven here, not in a task of its own: when the deadline
        // drops this future, the socket goes with it.
        let (answer, _) = tokio::join!(exchange, conn);
        if let Ok(a) = &answer {
            debug!(path, status = %a.status, took = ?started.elapsed(), "libpod answered");
        }
        answer
    }

    /// A request whose answer must be a success (2xx or 304, "already so").
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        what: &str,
    ) -> Result<Answer> {
        let answer = self.call(method, path, body, what, LIST_MAX, None).await?;
        ok(answer, what)
    }

    async fn list_containers(&self, label: &str) -> Result<Vec<PsEntry>> {
        let filters = serde_json::json!({ "label": [label] }).to_string();
        let path = format!("/containers/json?all=true&filters={}", enc(&filters));
        let answer = self
            .expect(Method::GET, &path, empty(), "podman ps")
            .await?;
        answer.json("podman ps")
    }

    /// `GET …/json` of one object: `None` on 404.
    async fn inspect_json(
        &self,
        kind: &str,
        name: &str,
        what: &str,
    ) -> Result<Option<serde_json::Value>> {
        let path = format!("/{kind}/{}/json", enc(name));
        let answer = self
            .call(Method::GET, &path, empty(), what, ONE_MAX, None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ok(answer, what)?.json(what).map(Some)
    }

    async fn load(&self, archive: ImageArchive) -> Result<String> {
        let what = "podman load";
        let ImageArchive {
            what: name,
            size,
            source,
        } = archive;
        let reader: Pin<Box<dyn AsyncRead + Send>> = match source {
            ArchiveSource::File(file) => {
                let len = file
                    .metadata()
                    .map_err(|e| Error::Engine(format!("image archive {name}: {e}")))?
                    .len();
                if len != size {
                    return Err(Error::Engine(format!(
                        "image archive {name} holds {len} bytes, not the {size} expected; not loaded"
                    )));
                }
                Box::pin(tokio::fs::File::from_std(file))
            }
            ArchiveSource::Stream(stream) => stream,
        };
        let body = ArchiveBody::new(reader, size, name.clone());
        let deadline = load_deadline(self.deadline, size);
        let answer = self
            .call(
                Method::POST,
                "/images/load",
                body.boxed_unsync(),
                what,
                ONE_MAX,
                Some(deadline),
            )
            .await?;
        #[derive(Deserialize)]
        struct Loaded {
            #[serde(rename = "Names", default)]
            names: Vec<String>,
        }
        let loaded: Loaded = ok(answer, what)?.json(what)?;
        let image = loaded
            .names
            .into_iter()
            .next()
            .ok_or_else(|| Error::Engine(format!("`podman load` of {name} named no image")))?;
        let inspect = format!("podman image inspect {image}");
        let info = self
            .inspect_json("images", &image, &inspect)
            .await?
            .ok_or_else(|| Error::Engine(format!("loaded image {image} is not there")))?;
        let id = info["Id"].as_str().unwrap_or_default().to_owned();
        if !is_image_id(&id) {
            return Err(Error::Engine(format!(
                "loaded image {image} has no usable id: {id:?}"
            )));
        }
        Ok(id)
    }

    /// `command` in container `name` (an exec session: create, start attached, read its
    /// exit code), the command passed on as it is, a JSON array, never parsed for options.
    /// Answers its stdout when it exits 0; otherwise an error with its exit code and stderr.
    async fn exec_in(&self, name: &str, command: &[String]) -> Result<String> {
        let what = format!("podman exec {name}");
        let create = serde_json::json!({
            "AttachStdin": false,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": false,
            "Cmd": command,
        });
        let path = format!("/containers/{}/exec", enc(name));
        let created: serde_json::Value = self
            .expect(Method::POST, &path, json_body(&create), &what)
            .await?
            .json(&what)?;
        let id = created["Id"]
            .as_str()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| Error::Engine(format!("`{what}`: Podman named no exec session")))?
            .to_owned();
        // Not detached, no terminal: the answer is the session's output, multiplexed, until
        // the command ends (Podman hijacks the connection and closes it then).
        let start = serde_json::json!({ "Detach": false, "Tty": false });
        let path = format!("/exec/{}/start", enc(&id));
        let output = self
            .call(
                Method::POST,
                &path,
                json_body(&start),
                &what,
                EXEC_OUTPUT_MAX,
                None,
            )
            .await?;
        let output = ok(output, &what)?;
        let (stdout, stderr) = demux(&output.body);
        let path = format!("/exec/{}/json", enc(&id));
        let info: serde_json::Value = self
            .expect(Method::GET, &path, empty(), &what)
            .await?
            .json(&what)?;
        match info["ExitCode"].as_i64() {
            Some(0) if info["Running"] != true => Ok(stdout),
            code => Err(Error::Engine(format!(
                "`{what}` failed (exit code {}): {}",
                code.map_or("unknown".into(), |c| c.to_string()),
                stderr.trim()
            ))),
        }
    }

    /// The `archy.app` label of an object whose inspect carries labels at `pointer`.
    fn owner(info: Option<serde_json::Value>, pointer: &str) -> Option<String> {
        info.map(|info| {
            info.pointer(pointer)
                .and_then(|labels| labels.get(LABEL_APP))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        })
    }
}

/// The most output of an exec (a health command's) that is read.
const EXEC_OUTPUT_MAX: usize = 1024 * 1024;

/// Stdout and stderr of a non-terminal attach stream: frames of `[stream, 0, 0, 0,
/// length (u32, big-endian)]` then `length` bytes; stream 1 is stdout, 2 stderr. A cut
/// frame ends the output.
fn demux(mut raw: &[u8]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while raw.len() >= 8 {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let Some(payload) = raw.get(8..8 + len) else {
            break;
        };
        match raw[0] {
            1 => out.extend_from_slice(payload),
            2 => err.extend_from_slice(payload),
            _ => {}
        }
        raw = &raw[8 + len..];
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The answer if it is a success (2xx, or 304: already started / stopped); otherwise the
/// error Podman gave, worded for a person.
fn ok(answer: Answer, what: &str) -> Result<Answer> {
    if answer.status.is_success() || answer.status == StatusCode::NOT_MODIFIED {
        return Ok(answer);
    }
    let error: PodmanError = serde_json::from_slice(&answer.body).unwrap_or_default();
    let message = if !error.message.is_empty() {
        error.message
    } else if !error.cause.is_empty() {
        error.cause
    } else {
        String::from_utf8_lossy(&answer.body).trim().to_owned()
    };
    Err(Error::Engine(format!(
        "`{what}` failed ({}): {message}",
        answer.status
    )))
}

/// An image archive as a request body: exactly `size` bytes of `reader`. One that ends
/// early or runs long fails the body before its last byte is sent (the last chunk is held
/// back until the reader has said it ends there), so the request breaks off short of its
/// `Content-Length` and Podman, which reads the whole body before loading, loads nothing.
struct ArchiveBody {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    remaining: u64,
    size: u64,
    buf: Vec<u8>,
    /// The last chunk, sent once the reader has ended right after it.
    last: Option<Bytes>,
    what: String,
    done: bool,
}

/// How much of an archive is read and sent at a time.
const CHUNK: usize = 256 * 1024;

impl ArchiveBody {
    fn new(reader: Pin<Box<dyn AsyncRead + Send>>, size: u64, what: String) -> Self {
        Self {
            reader,
            remaining: size,
            size,
            buf: vec![0; CHUNK],
            last: None,
            what,
            done: false,
        }
    }

    fn fail(
        &mut self,
        message: String,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        self.done = true;
        self.last = None;
        Poll::Ready(Some(Err(std::io::Error::other(message))))
    }
}

impl Body for ArchiveBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(this.last.take().map(|last| Ok(Frame::data(last))));
            }
            // At the end, one more byte is asked for: there must be none.
            let want = (this.remaining.min(CHUNK as u64) as usize).max(1);
            let mut buf = ReadBuf::new(&mut this.buf[..want]);
            match this.reader.as_mut().poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    return this.fail(format!("reading image archive {}: {e}", this.what));
                }
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 && this.remaining == 0 {
                        this.done = true;
                        continue;
                    }
                    if n == 0 {
                        return this.fail(format!(
                            "image archive {} ended after {} of its {} bytes; not loaded",
                            this.what,
                            this.size - this.remaining,
                            this.size
                        ));
                    }
                    if this.remaining == 0 {
                        return this.fail(format!(
                            "image archive {} is longer than its {} bytes; not loaded",
                            this.what, this.size
                        ));
                    }
                    let chunk = Bytes::copy_from_slice(buf.filled());
                    this.remaining -= n as u64;
                    if this.remaining == 0 {
                        this.last = Some(chunk);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.last.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.size)
    }
}

impl Runtime for Libpod {
    fn host(&self) -> &HostInfo {
        &self.host
    }

    fn location(&self) -> &str {
        &self.url
    }

    fn ping(&self, deadline: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let answer = self
                .call(
                    Method::GET,
                    "/_ping",
                    empty(),
                    "podman version",
                    ONE_MAX,
                    Some(deadline),
                )
                .await?;
            ok(answer, "podman version").map(drop)
        })
    }

    fn load_image(&self, archive: ImageArchive) -> BoxFuture<'_, Result<String>> {
        Box::pin(self.load(archive))
    }

    fn containers_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<ContainerInfo>>> {
        Box::pin(async move {
            let entries = self.list_containers(&format!("{LABEL_APP}={app}")).await?;
            Ok(entries.into_iter().map(PsEntry::into_info).collect())
        })
    }

    fn containers_by_app(&self) -> BoxFuture<'_, Result<BTreeMap<String, Vec<ContainerInfo>>>> {
        Box::pin(async move {
            let mut by_app: BTreeMap<String, Vec<ContainerInfo>> = Default::default();
            for e in self.list_containers(LABEL_APP).await? {
                if let Some(app) = e.app() {
                    by_app.entry(app).or_default().push(e.into_info());
                }
            }
            Ok(by_app)
        })
    }

    fn inspect<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ContainerDetails>>> {
        Box::pin(async move {
            let what = format!("podman container inspect {name}");
            Ok(self
                .inspect_json("containers", name, &what)
                .await?
                .map(|info| ContainerDetails::from_inspect(&info)))
        })
    }

    fn create_container<'a>(&'a self, spec: &'a CreateSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman create {}", spec.name());
            let body = spec::spec_generator(spec, spec::read_env_file)?;
            self.expect(Method::POST, "/containers/create", json_body(&body), &what)
                .await
                .map(drop)
        })
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman start {name}");
            let path = format!("/containers/{}/start", enc(name));
            self.expect(Method::POST, &path, empty(), &what)
                .await
                .map(drop)
        })
    }

    fn stop_container<'a>(
        &'a self,
        name: &'a str,
        grace_seconds: u32,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman stop {name}");
            let path = format!("/containers/{}/stop?timeout={grace_seconds}", enc(name));
            // Podman waits the grace, then kills: the call outlasts it.
            let outer = Duration::from_secs(u64::from(grace_seconds) + 30);
            let answer = self
                .call(Method::POST, &path, empty(), &what, ONE_MAX, Some(outer))
                .await?;
            ok(answer, &what).map(drop)
        })
    }

    fn kill_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman kill {name}");
            let path = format!("/containers/{}/kill?signal=SIGKILL", enc(name));
            self.expect(Method::POST, &path, empty(), &what).await?;
            // Podman answers once the signal is sent; the caller's next look (a repair
            // right after, as the health watcher does) must find the container dead, not
            // still exiting: wait for the exit (one request, polled by Podman every 20 ms).
            let path = format!("/containers/{}/wait?interval=20ms", enc(name));
            self.expect(Method::POST, &path, empty(), &what)
                .await
                .map(drop)
        })
    }

    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman rm {name}");
            let path = format!("/containers/{}?force=true&timeout=10", enc(name));
            // Stopping first takes up to the 10 s grace.
            let outer = self.deadline + Duration::from_secs(10);
            let answer = self
                .call(Method::DELETE, &path, empty(), &what, ONE_MAX, Some(outer))
                .await?;
            if answer.status == StatusCode::NOT_FOUND {
                return Ok(());
            }
            ok(answer, &what).map(drop)
        })
    }

    fn exec<'a>(&'a self, name: &'a str, command: &'a [String]) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.exec_in(name, command))
    }

    fn logs<'a>(
        &'a self,
        name: &'a str,
        tail: u32,
        follow: bool,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<String>>> {
        Runtime::logs(&self.cli, name, tail, follow, since)
    }

    fn events(&self) -> Result<mpsc::Receiver<AppEvent>> {
        self.cli.app_events()
    }

    fn volumes_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let filters = serde_json::json!({ "label": [format!("{LABEL_APP}={app}")] });
            let path = format!("/volumes/json?filters={}", enc(&filters.to_string()));
            let what = "podman volume ls";
            #[derive(Deserialize)]
            struct Volume {
                #[serde(rename = "Name")]
                name: String,
            }
            let volumes: Vec<Volume> = self
                .expect(Method::GET, &path, empty(), what)
                .await?
                .json(what)?;
            Ok(volumes.into_iter().map(|v| v.name).collect())
        })
    }

    fn create_volume<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman volume create {name}");
            let body = serde_json::json!({ "Name": name, "Labels": { LABEL_APP: app } });
            self.expect(Method::POST, "/volumes/create", json_body(&body), &what)
                .await
                .map(drop)
        })
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman volume rm {name}");
            let path = format!("/volumes/{}?force=true", enc(name));
            self.expect(Method::DELETE, &path, empty(), &what)
                .await
                .map(drop)
        })
    }

    fn network_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let what = format!("podman network inspect {name}");
            let info = self.inspect_json("networks", name, &what).await?;
            Ok(Self::owner(info, "/labels"))
        })
    }

    fn create_network<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman network create {name}");
            // What `podman network create --label …` sends: a bridge with DNS (the app's
            // containers find each other by alias), no IPv6, not internal.
            let body = serde_json::json!({
                "name": name,
                "driver": "bridge",
                "labels": { LABEL_APP: app },
                "dns_enabled": true,
                "ipv6_enabled": false,
                "internal": false,
            });
            self.expect(Method::POST, "/networks/create", json_body(&body), &what)
                .await
                .map(drop)
        })
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman network rm {name}");
            let path = format!("/networks/{}", enc(name));
            self.expect(Method::DELETE, &path, empty(), &what)
                .await
                .map(drop)
        })
    }

    fn secret_names(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let what = "podman secret ls";
            let all: Vec<serde_json::Value> = self
                .expect(Method::GET, "/secrets/json", empty(), what)
                .await?
                .json(what)?;
            Ok(all
                .iter()
                .filter_map(|s| s.pointer("/Spec/Name")?.as_str().map(str::to_owned))
                .collect())
        })
    }

    fn secret_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let what = format!("podman secret inspect {name}");
            let info = self.inspect_json("secrets", name, &what).await?;
            Ok(Self::owner(info, "/Spec/Labels"))
        })
    }

    fn create_secret<'a>(
        &'a self,
        name: &'a str,
        app: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman secret create {name}");
            let labels = serde_json::json!({ LABEL_APP: app }).to_string();
            let path = format!(
                "/secrets/create?name={}&driver=file&labels={}",
                enc(name),
                enc(&labels)
            );
            // The value is the request's body: never in a URL, an argv or a log.
            self.expect(Method::POST, &path, full(value.to_vec()), &what)
                .await
                .map(drop)
        })
    }

    fn remove_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let what = format!("podman secret rm {name}");
            let path = format!("/secrets/{}", enc(name));
            self.expect(Method::DELETE, &path, empty(), &what)
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection HTTP server on a unix socket: answers `response` and hands back
    /// the raw request it read (head and as much body as came before the client stopped).
    fn serve_once(sock: &std::path::Path, response: Vec<u8>) -> tokio::task::JoinHandle<Vec<u8>> {
        let listener = tokio::net::UnixListener::bind(sock).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = conn.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                if let Some(head_end) = find(&request, b"\r\n\r\n")
                    && request.len() >= head_end + 4 + content_length(&request[..head_end])
                {
                    break;
                }
            }
            // Like Podman: a body shorter than its Content-Length is an error, never used.
            let response = match find(&request, b"\r\n\r\n") {
                Some(end) if request.len() < end + 4 + content_length(&request[..end]) => answer(
                    "500 Internal Server Error",
                    r#"{"cause":"unexpected EOF","message":"unable to write archive to temporary file: unexpected EOF","response":500}"#,
                ),
                _ => response,
            };
            let _ = conn.write_all(&response).await;
            let _ = conn.shutdown().await;
            request
        })
    }

    fn content_length(head: &[u8]) -> usize {
        String::from_utf8_lossy(head)
            .to_lowercase()
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0)
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn answer(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn client(dir: &std::path::Path, deadline: Duration) -> (Libpod, PathBuf) {
        let sock = dir.join("podman.sock");
        let libpod = Libpod::unchecked(&format!("unix://{}", sock.display()), deadline).unwrap();
        (libpod, sock)
    }

    #[tokio::test]
    async fn a_hung_service_times_out_with_the_call_named_and_a_dead_one_is_down_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (libpod, sock) = client(dir.path(), Duration::from_millis(800));
        // Accepts connections, never answers: a frozen service.
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = libpod.start_container("archy-x-web").await.unwrap_err();
        assert!(
            matches!(&err, Error::Timeout { what, after }
                if what == "podman start archy-x-web" && *after == Duration::from_millis(800)),
            "{err}"
        );
        let err = libpod.containers_of("x").await.unwrap_err();
        assert!(
            matches!(&err, Error::Timeout { what, .. } if what == "podman ps"),
            "{err}"
        );
        drop(listener);
        std::fs::remove_file(&sock).unwrap();
        let err = libpod.inspect("archy-x-web").await.unwrap_err();
        assert!(
            matches!(&err, Error::ServiceDown { what, .. } if what == "podman container inspect archy-x-web"),
            "{err}"
        );
        assert!(err.to_string().contains("podman system service"), "{err}");
    }

    #[tokio::test]
    async fn names_stay_one_path_segment_and_values_stay_query_values() {
        let dir = tempfile::tempdir().unwrap();
        let (libpod, sock) = client(dir.path(), Duration::from_secs(10));
        let server = serve_once(&sock, answer("204 No Content", ""));
        libpod
            .start_container("../../images/x?force=true&a b#")
            .await
            .unwrap();
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        let line = request.lines().next().unwrap();
        assert_eq!(
            line,
            "POST /v4.0.0/libpod/containers/..%2F..%2Fimages%2Fx%3Fforce%3Dtrue%26a%20b%23/start HTTP/1.1"
        );
        std::fs::remove_file(&sock).unwrap();
        let server = serve_once(&sock, answer("200 OK", "[]"));
        libpod.containers_of("x&all=false").await.unwrap();
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        let line = request.lines().next().unwrap();
        assert!(
            line.starts_with("GET /v4.0.0/libpod/containers/json?all=true&filters=%7B%22label%22%3A%5B%22archy.app%3Dx%26all%3Dfalse%22%5D%7D "),
            "{line}"
        );
    }

    #[tokio::test]
    async fn a_secret_value_goes_in_the_body_only() {
        let dir = tempfile::tempdir().unwrap();
        let (libpod, sock) = client(dir.path(), Duration::from_secs(10));
        let server = serve_once(&sock, answer("200 OK", r#"{"ID":"abc"}"#));
        libpod
            .create_secret("archy-x-db", "x", b"s3cr3t-value")
            .await
            .unwrap();
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "s3cr3t-value");
        assert!(!head.contains("s3cr3t"), "{head}");
        assert!(
            head.starts_with("POST /v4.0.0/libpod/secrets/create?name=archy-x-db&driver=file&labels=%7B%22archy.app%22%3A%22x%22%7D "),
            "{head}"
        );
    }

    #[tokio::test]
    async fn refusals_carry_podmans_message_and_missing_objects_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let (libpod, sock) = client(dir.path(), Duration::from_secs(10));
        let missing = r#"{"cause":"no such container","message":"no container with name or ID \"archy-x-web\" found: no such container","response":404}"#;
        for (status, body, check) in [
            ("404 Not Found", missing, "inspect"),
            ("404 Not Found", missing, "remove"),
            ("404 Not Found", missing, "start"),
            (
                "500 Internal Server Error",
                r#"{"cause":"x","message":"crun: permission denied","response":500}"#,
                "start",
            ),
            (
                "404 Not Found",
                r#"{"cause":"network not found","message":"unable to find network with name or ID archy-x: network not found","response":404}"#,
                "network",
            ),
        ] {
            let server = serve_once(&sock, answer(status, body));
            match check {
                "inspect" => assert!(libpod.inspect("archy-x-web").await.unwrap().is_none()),
                "remove" => libpod.remove_container("archy-x-web").await.unwrap(),
                "network" => assert!(libpod.network_owner("archy-x").await.unwrap().is_none()),
                _ => {
                    let err = libpod
                        .start_container("archy-x-web")
                        .await
                        .unwrap_err()
                        .to_string();
                    let message = if body.contains("crun") {
                        "crun: permission denied"
                    } else {
                        "no such container"
                    };
                    assert!(
                        err.contains("`podman start archy-x-web` failed") && err.contains(message),
                        "{err}"
                    );
                }
            }
            server.await.unwrap();
            std::fs::remove_file(&sock).unwrap();
        }
    }

    #[tokio::test]
    async fn an_answer_is_read_up_to_its_bound_and_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let (libpod, sock) = client(dir.path(), Duration::from_secs(10));
        let huge = format!("[{}\"\"]", "\"a\",".repeat(ONE_MAX / 4 + 1));
        let server = serve_once(&sock, answer("200 OK", &huge));
        let err = libpod.inspect("archy-x-web").await.unwrap_err().to_string();
        assert!(err.contains("longer than 1048576 bytes"), "{err}");
        server.abort();
    }

    #[tokio::test]
    async fn an_archive_of_the_wrong_length_never_reaches_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let (libpod, sock) = client(dir.path(), Duration::from_secs(10));
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        for (declared, says) in [(data.len() + 1, "ended after"), (data.len() - 1, "longer")] {
            let server = serve_once(&sock, answer("200 OK", r#"{"Names":["x"]}"#));
            let err = libpod
                .load_image(ImageArchive {
                    what: "a".into(),
                    size: declared as u64,
                    source: ArchiveSource::Stream(Box::pin(std::io::Cursor::new(data.clone()))),
                })
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("broke off") || err.contains("unexpected EOF"),
                "{err}"
            );
            let request = server.await.unwrap();
            let head_end = find(&request, b"\r\n\r\n").unwrap() + 4;
            let sent = request.len() - head_end;
            assert!(
                sent < declared,
                "{says}: the server got {sent} of the {declared} bytes it was promised"
            );
            std::fs::remove_file(&sock).unwrap();
        }
        // Exactly its length: all of it, in order.
        let server = serve_once(&sock, answer("200 OK", r#"{"Names":[]}"#));
        let err = libpod
            .load_image(ImageArchive {
                what: "a".into(),
                size: data.len() as u64,
                source: ArchiveSource::Stream(Box::pin(std::io::Cursor::new(data.clone()))),
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("named no image"), "{err}");
        let request = server.await.unwrap();
        let head_end = find(&request, b"\r\n\r\n").unwrap() + 4;
        assert!(request[head_end..] == data[..]);
    }

    #[test]
    fn exec_output_is_split_into_stdout_and_stderr() {
        let mut raw = Vec::new();
        for (stream, text) in [(1u8, "ok "), (2, "warn"), (1, "done")] {
            raw.extend_from_slice(&[stream, 0, 0, 0]);
            raw.extend_from_slice(&(text.len() as u32).to_be_bytes());
            raw.extend_from_slice(text.as_bytes());
        }
        assert_eq!(demux(&raw), ("ok done".into(), "warn".into()));
        raw.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 99, b'x']);
        assert_eq!(demux(&raw).0, "ok done", "a cut frame ends the output");
    }

    #[test]
    fn only_unix_socket_urls_are_taken() {
        assert!(Libpod::unchecked("tcp://127.0.0.1:8080", DEFAULT_DEADLINE).is_err());
        assert!(Libpod::unchecked("unix://relative.sock", DEFAULT_DEADLINE).is_err());
        assert!(Libpod::unchecked("unix:///run/user/1/podman.sock", DEFAULT_DEADLINE).is_ok());
    }
}
