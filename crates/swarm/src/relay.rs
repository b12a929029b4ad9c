//! Opaque named documents relayed between nodes (the node uses it to pass on the signed
//! catalog envelope when the origin is unreachable; this crate never looks inside).
//!
//! Protocol `archy/doc/0`, one bidirectional stream per request: the client sends the
//! document's name (UTF-8, at most [`MAX_DOCUMENT_NAME`] bytes) and finishes; the server
//! answers `0x00` + length (u64, big endian) + bytes, or `0x01` when it relays no document
//! of that name. The client refuses a length over its own bound before reading the body.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use tracing::debug;

use crate::{Error, PeerAddr, Result, Swarm};

/// The ALPN of the document relay protocol.
pub const DOC_ALPN: &[u8] = b"archy/doc/0";
/// Longest document name, in bytes.
pub const MAX_DOCUMENT_NAME: usize = 256;
/// How long one side waits for the other within a request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const FOUND: u8 = 0;
const NOT_FOUND: u8 = 1;

/// The documents this node relays, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Documents(Arc<RwLock<HashMap<String, Bytes>>>);

impl Documents {
    fn get(&self, name: &str) -> Option<Bytes> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// Serves [`Documents`] on [`DOC_ALPN`].
#[derive(Debug, Clone)]
pub(crate) struct DocProtocol {
    pub(crate) docs: Documents,
}

impl DocProtocol {
    async fn serve_one(
        &self,
        mut send: iroh::endpoint::SendStream,
        mut recv: iroh::endpoint::RecvStream,
    ) -> std::result::Result<(), String> {
        let name = tokio::time::timeout(REQUEST_TIMEOUT, recv.read_to_end(MAX_DOCUMENT_NAME))
            .await
            .map_err(|_| "no request in time".to_owned())?
            .map_err(|e| format!("reading the request: {e}"))?;
        let doc = std::str::from_utf8(&name)
            .ok()
            .and_then(|name| self.docs.get(name));
        let write = async {
            match doc {
                Some(bytes) => {
                    let mut header = [0u8; 9];
                    header[0] = FOUND;
                    header[1..].copy_from_slice(&(bytes.len() as u64).to_be_bytes());
                    send.write_all(&header).await?;
                    send.write_chunk(bytes).await?;
                }
                None => send.write_all(&[NOT_FOUND]).await?,
            }
            Ok::<_, iroh::endpoint::WriteError>(())
        };
        tokio::time::timeout(REQUEST_TIMEOUT, write)
            .await
            .map_err(|_| "the client did not read in time".to_owned())?
            .map_err(|e| format!("writing the answer: {e}"))?;
        send.finish().map_err(|e| e.to_string())
    }
}

impl ProtocolHandler for DocProtocol {
    async fn accept(&self, conn: Connection) -> std::result::Result<(), AcceptError> {
        // Serve until the client closes: returning earlier would drop the connection and
        // with it any answer not yet delivered.
        while let Ok((send, recv)) = conn.accept_bi().await {
            if let Err(reason) = self.serve_one(send, recv).await {
                debug!(peer = %conn.remote_id(), %reason, "document request failed");
                conn.close(1u32.into(), b"bad request");
                break;
            }
        }
        Ok(())
    }
}

impl Swarm {
    /// Offers `bytes` to other nodes under `name` (replacing what was there).
    pub fn set_relayed_document(&self, name: &str, bytes: impl Into<Bytes>) -> Result<()> {
        if name.len() > MAX_DOCUMENT_NAME {
            return Err(Error::Document {
                name: name.chars().take(40).collect(),
                peer: self.endpoint_id().to_string(),
                reason: format!("the name is longer than {MAX_DOCUMENT_NAME} bytes"),
            });
        }
        self.documents
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), bytes.into());
        Ok(())
    }

    /// Stops relaying the document `name`.
    pub fn remove_relayed_document(&self, name: &str) {
        self.documents
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Asks `peer` for the document `name`, refusing anything over `max_bytes` before
    /// reading it. The bytes are whatever the peer relays: the caller verifies them.
    pub async fn fetch_document(
        &self,
        peer: &PeerAddr,
        name: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Document {
            name: name.to_owned(),
            peer: peer.id.clone(),
            reason,
        };
        if name.len() > MAX_DOCUMENT_NAME {
            return Err(fail(format!(
                "the name is longer than {MAX_DOCUMENT_NAME} bytes"
            )));
        }
        let addr = peer.to_endpoint_addr()?;
        let conn = tokio::time::timeout(
            self.connect_timeout,
            self.router.endpoint().connect(addr, DOC_ALPN),
        )
        .await
        .map_err(|_| fail(format!("no connection within {:?}", self.connect_timeout)))?
        .map_err(|e| fail(format!("connecting: {e}")))?;
        let exchange = async {
            let (mut send, mut recv) = conn
                .open_bi()
                .await
                .map_err(|e| fail(format!("opening a stream: {e}")))?;
            send.write_all(name.as_bytes())
                .await
                .map_err(|e| fail(format!("sending the request: {e}")))?;
            send.finish().map_err(|e| fail(e.to_string()))?;
            let mut status = [0u8; 1];
            recv.read_exact(&mut status)
                .await
                .map_err(|e| fail(format!("reading the answer: {e}")))?;
            match status[0] {
                FOUND => {}
                NOT_FOUND => {
                    return Err(Error::DocumentNotFound {
                        name: name.to_owned(),
                        peer: peer.id.clone(),
                    });
                }
                other => return Err(fail(format!("unknown answer code {other}"))),
            }
            let mut len = [0u8; 8];
            recv.read_exact(&mut len)
                .await
                .map_err(|e| fail(format!("reading the length: {e}")))?;
            let len = u64::from_be_bytes(len);
            if len > max_bytes {
                return Err(Error::DocumentTooLarge {
                    name: name.to_owned(),
                    peer: peer.id.clone(),
                    size: len,
                    max: max_bytes,
                });
            }
            let len = usize::try_from(len).map_err(|_| fail("length overflows".into()))?;
            let mut body = vec![0u8; len];
            recv.read_exact(&mut body)
                .await
                .map_err(|e| fail(format!("reading {len} bytes: {e}")))?;
            // The announced length is the whole answer: anything after it is a lie.
            let rest = recv
                .read_to_end(0)
                .await
                .map_err(|e| fail(format!("more bytes than announced ({e})")))?;
            if !rest.is_empty() {
                return Err(fail("more bytes than announced".into()));
            }
            Ok(body)
        };
        let result = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(fail(format!("no answer within {REQUEST_TIMEOUT:?}"))));
        conn.close(0u32.into(), b"done");
        result
    }
}
