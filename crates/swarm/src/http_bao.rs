//! iroh-blobs' get protocol carried over HTTP: `POST /v1/swarm/get` takes the request the
//! getter would send on a QUIC stream and answers with the same verified (bao) stream. So
//! the HTTP fallback verifies every chunk as it arrives, writes straight into the store,
//! and asks only for the ranges still missing, like iroh; no part file, no second pass.

use std::io;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use iroh::endpoint::VarInt;
use iroh_blobs::protocol::Request;
use iroh_blobs::util::{RecvStream, SendStream};
use tokio::sync::{mpsc, oneshot};

use crate::Swarm;

/// Largest request accepted (a get request with its ranges is a few bytes to a few KiB).
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Server side: the answer's bytes go into a channel that is the HTTP response body.
struct ChannelSend {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl SendStream for ChannelSend {
    async fn send_bytes(&mut self, bytes: Bytes) -> io::Result<()> {
        self.tx
            .send(Ok(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.send_bytes(Bytes::copy_from_slice(buf)).await
    }

    async fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn reset(&mut self, code: VarInt) -> io::Result<()> {
        // Ends the body with an error, so the client sees a broken transfer, not an end.
        self.tx
            .try_send(Err(io::Error::other(format!("reset with code {code}"))))
            .ok();
        Ok(())
    }

    async fn stopped(&mut self) -> io::Result<Option<VarInt>> {
        self.tx.closed().await;
        Ok(None)
    }

    fn id(&self) -> u64 {
        0
    }
}

/// `POST /v1/swarm/get`: one get request in, its verified answer out.
pub(crate) async fn serve_get(State(swarm): State<Arc<Swarm>>, body: Bytes) -> Response {
    let (tx, rx) = mpsc::channel(64);
    let mut pair = iroh_blobs::provider::StreamPair::new(
        0,
        body,
        ChannelSend { tx },
        swarm.http_events.clone(),
    );
    let request = match pair.read_request().await {
        Ok(Request::Get(request)) => request,
        Ok(_) => {
            return (StatusCode::BAD_REQUEST, "only get requests are served\n").into_response();
        }
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad request: {e}\n")).into_response();
        }
    };
    let store = (*swarm.store).clone();
    tokio::spawn(async move {
        iroh_blobs::provider::handle_get(pair, store, request)
            .await
            .ok();
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures::Stream<Item = io::Result<Bytes>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Client side, sending half: collects the request the getter writes; when the getter
/// drops it (its request is complete), hands the bytes to the receiving half.
pub(crate) struct HttpSend {
    request: Vec<u8>,
    ready: Option<oneshot::Sender<Vec<u8>>>,
}

impl Drop for HttpSend {
    fn drop(&mut self) {
        if let Some(ready) = self.ready.take() {
            ready.send(std::mem::take(&mut self.request)).ok();
        }
    }
}

impl SendStream for HttpSend {
    async fn send_bytes(&mut self, bytes: Bytes) -> io::Result<()> {
        self.send(&bytes).await
    }

    async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.request.len() + buf.len() > MAX_REQUEST_BYTES {
            return Err(io::Error::other("request too large"));
        }
        self.request.extend_from_slice(buf);
        Ok(())
    }

    async fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn reset(&mut self, _code: VarInt) -> io::Result<()> {
        self.ready = None;
        Ok(())
    }

    async fn stopped(&mut self) -> io::Result<Option<VarInt>> {
        std::future::pending().await
    }

    fn id(&self) -> u64 {
        0
    }
}

/// Client side, receiving half: posts the request on first read, then reads the body.
pub(crate) struct HttpRecv {
    client: reqwest::Client,
    url: String,
    request: Option<oneshot::Receiver<Vec<u8>>>,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    buf: Bytes,
}

impl HttpRecv {
    /// Makes sure `buf` holds something; false at the end of the body.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.body.is_none() {
            let request = self
                .request
                .take()
                .ok_or_else(|| io::Error::other("no request was written"))?
                .await
                .map_err(|_| io::Error::other("the request was abandoned"))?;
            let response = self
                .client
                .post(&self.url)
                .body(request)
                .send()
                .await
                .map_err(|e| {
                    io::Error::other(crate::http_fetch::http_error(
                        &format!("POST {}", self.url),
                        &e,
                    ))
                })?;
            if !response.status().is_success() {
                return Err(io::Error::other(format!(
                    "POST {} answered {}",
                    self.url,
                    response.status()
                )));
            }
            self.body = Some(response.bytes_stream().boxed());
        }
        let Some(body) = self.body.as_mut() else {
            return Ok(false);
        };
        while self.buf.is_empty() {
            match body.next().await {
                Some(Ok(chunk)) => self.buf = chunk,
                Some(Err(e)) => {
                    return Err(io::Error::other(crate::http_fetch::http_error(
                        &format!("reading the body of POST {}", self.url),
                        &e,
                    )));
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Up to `len` bytes, fewer only at the end of the body.
    async fn take(&mut self, len: usize) -> io::Result<Bytes> {
        if !self.fill().await? {
            return Ok(Bytes::new());
        }
        if self.buf.len() >= len {
            return Ok(self.buf.split_to(len));
        }
        let mut out = Vec::with_capacity(len);
        while out.len() < len && self.fill().await? {
            let n = (len - out.len()).min(self.buf.len());
            out.extend_from_slice(&self.buf.split_to(n));
        }
        Ok(out.into())
    }
}

impl RecvStream for HttpRecv {
    async fn recv_bytes(&mut self, len: usize) -> io::Result<Bytes> {
        self.take(len).await
    }

    async fn recv_bytes_exact(&mut self, len: usize) -> io::Result<Bytes> {
        let bytes = self.take(len).await?;
        if bytes.len() < len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(bytes)
    }

    async fn recv_exact(&mut self, target: &mut [u8]) -> io::Result<()> {
        let bytes = self.recv_bytes_exact(target.len()).await?;
        target.copy_from_slice(&bytes);
        Ok(())
    }

    fn stop(&mut self, _code: VarInt) -> io::Result<()> {
        self.body = None;
        Ok(())
    }

    fn id(&self) -> u64 {
        0
    }
}

/// A stream pair for `Remote::execute_get` that talks to `{base}/v1/swarm/get`.
pub(crate) fn stream_pair(
    client: reqwest::Client,
    base: &str,
) -> iroh_blobs::get::StreamPair<HttpRecv, HttpSend> {
    let (ready, request) = oneshot::channel();
    iroh_blobs::get::StreamPair::new(
        0,
        HttpRecv {
            client,
            url: format!("{}/v1/swarm/get", base.trim_end_matches('/')),
            request: Some(request),
            body: None,
            buf: Bytes::new(),
        },
        HttpSend {
            request: Vec::new(),
            ready: Some(ready),
        },
    )
}
