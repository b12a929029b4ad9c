//! A lying peer: the real iroh-blobs provider (which checks what it sends against its
//! outboard), with one byte of its answer flipped on the wire after the check. A byte
//! flipped in a store's file would not do: the provider would notice and stop sending.

use std::io;

use bytes::Bytes;
use iroh::endpoint::{Connection, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, RelayMode};
use iroh_blobs::provider::StreamPair;
use iroh_blobs::provider::events::EventSender;
use iroh_blobs::store::mem::MemStore;
use iroh_blobs::util::SendStream as BlobsSendStream;

use crate::{BlobRef, PeerAddr};

/// Flips one byte at `flip_at` (counted over the whole answer) of what it sends.
struct FlipWriter {
    inner: iroh::endpoint::SendStream,
    written: u64,
    flip_at: u64,
}

impl FlipWriter {
    fn corrupt(&mut self, bytes: Bytes) -> Bytes {
        let start = self.written;
        self.written += bytes.len() as u64;
        if (start..self.written).contains(&self.flip_at) {
            let mut owned = bytes.to_vec();
            owned[(self.flip_at - start) as usize] ^= 0xff;
            return owned.into();
        }
        bytes
    }
}

impl BlobsSendStream for FlipWriter {
    async fn send_bytes(&mut self, bytes: Bytes) -> io::Result<()> {
        let bytes = self.corrupt(bytes);
        BlobsSendStream::send_bytes(&mut self.inner, bytes).await
    }

    async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let bytes = self.corrupt(Bytes::copy_from_slice(buf));
        BlobsSendStream::send(&mut self.inner, &bytes).await
    }

    async fn sync(&mut self) -> io::Result<()> {
        BlobsSendStream::sync(&mut self.inner).await
    }

    fn reset(&mut self, code: VarInt) -> io::Result<()> {
        BlobsSendStream::reset(&mut self.inner, code)
    }

    async fn stopped(&mut self) -> io::Result<Option<VarInt>> {
        BlobsSendStream::stopped(&mut self.inner).await
    }

    fn id(&self) -> u64 {
        BlobsSendStream::id(&self.inner)
    }
}

#[derive(Debug, Clone)]
struct Corrupting {
    store: MemStore,
    flip_at: u64,
}

impl ProtocolHandler for Corrupting {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((send, recv)) = conn.accept_bi().await {
            let writer = FlipWriter {
                inner: send,
                written: 0,
                flip_at: self.flip_at,
            };
            let pair = StreamPair::new(conn.stable_id() as u64, recv, writer, EventSender::DEFAULT);
            iroh_blobs::provider::handle_stream(pair, (*self.store).clone())
                .await
                .ok();
        }
        Ok(())
    }
}

/// A peer holding `data` that flips the answer's byte at `flip_at`.
pub(super) struct LyingPeer {
    router: Router,
    pub(super) blob: BlobRef,
}

impl LyingPeer {
    pub(super) async fn start(data: &[u8], flip_at: u64) -> Self {
        let store = MemStore::new();
        let info = store.add_slice(data).await.unwrap();
        let endpoint = Endpoint::builder(iroh::endpoint::presets::Minimal)
            .relay_mode(RelayMode::Disabled)
            .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
            .bind_addr("127.0.0.1:0")
            .unwrap()
            .bind()
            .await
            .unwrap();
        let router = Router::builder(endpoint)
            .accept(iroh_blobs::ALPN, Corrupting { store, flip_at })
            .spawn();
        Self {
            router,
            blob: BlobRef {
                hash: info.hash,
                size: data.len() as u64,
            },
        }
    }

    pub(super) fn addr(&self) -> PeerAddr {
        PeerAddr {
            id: self.router.endpoint().id().to_string(),
            addrs: self.router.endpoint().bound_sockets(),
            relay_url: None,
        }
    }

    pub(super) async fn shutdown(self) {
        self.router.shutdown().await.ok();
    }
}
