//! The last resort: the origin's HTTP route, `GET {base}/v1/blobs/{hash}`.
//!
//! HTTP carries no proofs, so the download is hashed as a whole before the store takes it.
//! It goes to a part file (resumed with `Range` after an interruption), never past the
//! declared size; the store then imports the verified file.

use std::path::Path;

use futures::StreamExt;

use crate::metrics::Source;
use crate::{BlobRef, ByteSink, Error, Result, Swarm, fetched_tag};

impl Swarm {
    /// Downloads `blob` from the origin's HTTP at `http_base` (see the module doc).
    pub async fn fetch_http(&self, blob: &BlobRef, http_base: &str) -> Result<()> {
        self.fetch_http_observed(blob, http_base, &|_| {})
            .await
            .map(|_| ())
    }

    /// [`Self::fetch_http`] telling `on_bytes` the bytes held; returns the bytes that came
    /// over HTTP.
    pub(crate) async fn fetch_http_observed(
        &self,
        blob: &BlobRef,
        http_base: &str,
        on_bytes: ByteSink<'_>,
    ) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let hex = blob.hex();
        if let Some(size) = self.complete_size(&blob.hash).await? {
            return self.check_size(blob, size).await.map(|_| 0);
        }
        let fail = |reason: String| Error::Blob {
            hash: hex.clone(),
            reason,
        };
        let part = self.data_dir.join("partial").join(format!("{hex}.part"));
        std::fs::create_dir_all(part.parent().unwrap_or(Path::new(".")))
            .map_err(|e| fail(e.to_string()))?;
        let mut hasher = blake3::Hasher::new();
        // Hash what an interrupted run left, a block at a time (it may be large).
        let mut have = match std::fs::File::open(&part) {
            Ok(f) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
                if len <= blob.size {
                    hasher
                        .update_reader(f)
                        .map_err(|e| fail(format!("{}: {e}", part.display())))?;
                    len
                } else {
                    0
                }
            }
            Err(_) => 0,
        };
        let url = format!("{}/v1/blobs/{hex}", http_base.trim_end_matches('/'));
        // A part file already holding every byte (a crash before import) needs no request.
        if have < blob.size || blob.size == 0 {
            let mut request = self.http.get(&url);
            if have > 0 {
                request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
            }
            let response = request
                .send()
                .await
                .map_err(|e| fail(http_error(&format!("GET {url}"), &e)))?;
            match response.status() {
                reqwest::StatusCode::PARTIAL_CONTENT if have > 0 => {}
                reqwest::StatusCode::OK => {
                    // A full answer (no resume asked, or the range ignored): start over.
                    hasher = blake3::Hasher::new();
                    have = 0;
                }
                status => return Err(fail(format!("GET {url} answered {status}"))),
            }
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(have == 0)
                .append(have > 0)
                .open(&part)
                .await
                .map_err(|e| fail(format!("{}: {e}", part.display())))?;
            let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| fail(http_error(&format!("GET {url}"), &e)))?;
                if have + chunk.len() as u64 > blob.size {
                    self.metrics.verification_failure(&blob.hash);
                    let _ = std::fs::remove_file(&part);
                    return Err(Error::SizeMismatch {
                        hash: hex.clone(),
                        declared: blob.size,
                        actual: "larger".into(),
                    });
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                have += chunk.len() as u64;
                on_bytes(have);
            }
            file.flush().await.map_err(|e| fail(e.to_string()))?;
        }
        let actual = hasher.finalize();
        if have != blob.size || actual != blake3::Hash::from_bytes(*blob.hash.as_bytes()) {
            self.metrics.verification_failure(&blob.hash);
            let _ = std::fs::remove_file(&part);
            return Err(fail(format!(
                "HTTP download does not verify: got {have} bytes with blake3 {}, expected {} bytes",
                actual.to_hex(),
                blob.size
            )));
        }
        let imported = self.import_file(&part, &fetched_tag(&blob.hash)).await?;
        let _ = std::fs::remove_file(&part);
        if imported != *blob {
            return Err(fail(
                "the store hashed the verified file differently".into(),
            ));
        }
        // Every byte of the part file came over HTTP (only this path writes it), some
        // perhaps in an earlier, interrupted run that counted nothing.
        self.metrics
            .received(&blob.hash, Source::OriginHttp, blob.size);
        Ok(blob.size)
    }
}

/// A failed HTTP exchange named by what happened: a timeout as a timeout, a refused
/// connection as one, never reqwest's outer wording ("error decoding response body").
pub(crate) fn http_error(what: &str, e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        format!("{what}: cannot connect: {cause}")
    } else if e.is_timeout() {
        format!("{what}: the origin did not answer in time (it stalled or is too slow)")
    } else {
        format!("{what}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::http_error;

    #[tokio::test]
    async fn a_silent_or_closed_origin_is_named_for_what_it_did() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/blobs/x", listener.local_addr().unwrap());
        // Accepts and never answers.
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(300))
            .build()
            .unwrap();
        let e = client.get(&url).send().await.unwrap_err();
        let said = http_error(&format!("GET {url}"), &e);
        assert!(said.contains("did not answer in time"), "{said}");
        held.abort();
        let closed = format!(
            "http://{}/",
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        );
        let e = client.get(&closed).send().await.unwrap_err();
        let said = http_error("GET closed", &e);
        assert!(said.contains("cannot connect"), "{said}");
    }
}
