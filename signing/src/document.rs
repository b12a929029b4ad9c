//! Envelope files and the documents inside them: reading, recognising, describing, writing.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use archy_registry::{Catalog, Envelope, MAX_DOCUMENT_BYTES, Manifest, PayloadType, Root};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// Reads a document file, refusing anything a node would refuse for size.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let len = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_DOCUMENT_BYTES as u64 {
        bail!(
            "{}: {len} bytes, over the {MAX_DOCUMENT_BYTES}-byte document limit",
            path.display()
        );
    }
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes through a temporary file and a rename, so an interrupted write never leaves a
/// half-written envelope (and never loses the signatures already in it).
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".archy-sign-tmp");
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow!("writing {}: {e}", path.display())
    })
}

/// The payload type an envelope claims, if it is one of ours.
pub fn payload_type(envelope: &Envelope) -> Result<PayloadType> {
    [
        PayloadType::Root,
        PayloadType::Catalog,
        PayloadType::Manifest,
    ]
    .into_iter()
    .find(|t| t.as_str() == envelope.payload_type)
    .ok_or_else(|| anyhow!("unknown payload type {:?}", envelope.payload_type))
}

/// Bytes that are either an envelope, or a bare root or catalog document which we wrap
/// (exact bytes, unsigned) so it can be signed. Returns whether it was wrapped.
pub fn envelope_or_bare_document(bytes: &[u8]) -> Result<(Envelope, bool)> {
    let envelope_error = match Envelope::from_bytes(bytes) {
        Ok(envelope) => return Ok((envelope, false)),
        Err(e) => e,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("not JSON ({e}), so neither an envelope nor a document"))?;
    // Something that looks like an envelope but does not parse as one is a broken envelope,
    // not a document to wrap.
    if value.get("payloadType").is_some() || value.get("signatures").is_some() {
        return Err(envelope_error.into());
    }
    let payload_type = match value.get("type").and_then(|t| t.as_str()) {
        Some("root") => PayloadType::Root,
        Some("catalog") => PayloadType::Catalog,
        _ => bail!("neither a signed envelope ({envelope_error}) nor a root or catalog document"),
    };
    Ok((Envelope::unsigned(payload_type, bytes), true))
}

/// The parsed and validated payload of an envelope.
pub enum Document {
    Root(Root),
    Catalog(Box<Catalog>),
    Manifest(Box<Manifest>),
}

impl Document {
    /// Parses and validates the payload. Signatures are not looked at here.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self> {
        let payload = envelope.payload_bytes()?;
        Ok(match payload_type(envelope)? {
            PayloadType::Root => Document::Root(Root::from_json(&payload)?),
            PayloadType::Catalog => Document::Catalog(Box::new(Catalog::from_json(&payload)?)),
            PayloadType::Manifest => {
                let value = serde_json::from_slice(&payload)
                    .map_err(|e| anyhow!("malformed manifest: {e}"))?;
                Document::Manifest(Box::new(Manifest::from_json_value(value)?))
            }
        })
    }

    pub fn expires(&self) -> Option<DateTime<Utc>> {
        match self {
            Document::Root(r) => Some(r.expires),
            Document::Catalog(c) => Some(c.expires),
            Document::Manifest(_) => None,
        }
    }

    /// One line a keyholder can read before signing, e.g. "catalog version 3, 5 apps, expires …".
    pub fn summary(&self, now: DateTime<Utc>) -> String {
        match self {
            Document::Root(r) => format!(
                "root version {}, root role {}-of-{}, catalog role {}-of-{}, {}",
                r.version,
                r.roles.root.threshold,
                r.roles.root.keyids.len(),
                r.roles.catalog.threshold,
                r.roles.catalog.keyids.len(),
                expiry(r.expires, now)
            ),
            Document::Catalog(c) => format!(
                "catalog version {}, {} app(s), {}",
                c.version,
                c.apps.len(),
                expiry(c.expires, now)
            ),
            Document::Manifest(m) => format!("manifest of app {} version {}", m.id, m.version),
        }
    }
}

/// "expires 2026-01-01T00:00:00Z (in 30 days)", or "EXPIRED …" when past.
pub fn expiry(expires: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if expires <= now {
        format!(
            "EXPIRED at {} ({} ago)",
            timestamp(expires),
            span(now - expires)
        )
    } else {
        format!(
            "expires {} (in {})",
            timestamp(expires),
            span(expires - now)
        )
    }
}

/// RFC 3339 to the second, the way the documents themselves write times.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A rough human span: hours under two days, else days rounded to the nearest.
fn span(d: Duration) -> String {
    let hours = d.num_minutes() as f64 / 60.0;
    if hours < 48.0 {
        format!("{} hours", hours.round())
    } else {
        format!("{} days", (hours / 24.0).round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_documents_are_wrapped_and_broken_envelopes_are_not() {
        let bare = br#"{"type":"catalog","version":1}"#;
        let (envelope, wrapped) = envelope_or_bare_document(bare).unwrap();
        assert!(wrapped);
        assert_eq!(envelope.payload_bytes().unwrap(), bare);
        assert_eq!(envelope.payload_type, PayloadType::Catalog.as_str());

        let broken = br#"{"payloadType":"x","signatures":[],"extra":1}"#;
        assert!(envelope_or_bare_document(broken).is_err());
        assert!(envelope_or_bare_document(br#"{"type":"manifest"}"#).is_err());
        assert!(envelope_or_bare_document(b"not json").is_err());
    }

    #[test]
    fn expiry_reads_naturally() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00.5Z".parse().unwrap();
        let later = now + Duration::days(365) - Duration::milliseconds(500);
        assert_eq!(
            expiry(later, now),
            "expires 2027-01-01T00:00:00Z (in 365 days)"
        );
        assert_eq!(
            expiry(now - Duration::hours(3), now),
            "EXPIRED at 2025-12-31T21:00:00Z (3 hours ago)"
        );
    }
}
