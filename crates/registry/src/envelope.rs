//! DSSE envelopes: `{"payloadType", "payload", "signatures":[{"keyid","sig"}]}`.
//! Signatures cover PAE(payloadType, payload) over the exact payload bytes, and are
//! checked before the payload is parsed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::MAX_DOCUMENT_BYTES;
use crate::error::{Error, Result};
use crate::keys::{KeyId, PublicKey, SecretKey};

/// The domain of a signed payload. A signature for one type never verifies as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Root,
    Catalog,
    Manifest,
}

impl PayloadType {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadType::Root => "application/vnd.archy.root+json",
            PayloadType::Catalog => "application/vnd.archy.catalog+json",
            PayloadType::Manifest => "application/vnd.archy.manifest+json",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub keyid: KeyId,
    /// base64 of the 64-byte ed25519 signature.
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// base64 of the exact payload bytes.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// An envelope with no signatures yet.
    pub fn unsigned(payload_type: PayloadType, payload: &[u8]) -> Self {
        Self {
            payload_type: payload_type.as_str().to_owned(),
            payload: B64.encode(payload),
            signatures: Vec::new(),
        }
    }

    /// Parses envelope bytes, bounded by [`MAX_DOCUMENT_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::TooLarge {
                size: bytes.len(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| Error::MalformedEnvelope(e.to_string()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these plain fields cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|e| Error::MalformedEnvelope(format!("payload is not base64: {e}")))
    }

    /// Adds (or replaces) this key's signature. Signatures from separate sessions combine.
    pub fn sign(&mut self, key: &SecretKey) -> Result<()> {
        let payload = self.payload_bytes()?;
        let sig = key.sign(&pae(&self.payload_type, &payload));
        let keyid = key.public().did_key();
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(Signature {
            keyid,
            sig: B64.encode(sig),
        });
        Ok(())
    }

    pub fn expect_type(&self, expected: PayloadType) -> Result<()> {
        if self.payload_type != expected.as_str() {
            return Err(Error::WrongPayloadType {
                expected: expected.as_str().to_owned(),
                found: self.payload_type.clone(),
            });
        }
        Ok(())
    }

    /// The distinct public keys among `allowed` whose signature verifies over this envelope.
    /// A key is counted once however many signature entries name it, and key ids are
    /// resolved only through `allowed`, never trusted from the envelope.
    pub fn valid_signers<'a>(
        &self,
        allowed: impl IntoIterator<Item = &'a PublicKey>,
    ) -> Result<Vec<PublicKey>> {
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        let mut signers: Vec<PublicKey> = Vec::new();
        for key in allowed {
            if signers.contains(key) {
                continue;
            }
            let did = key.did_key();
            let signed = self
                .signatures
                .iter()
                .filter(|s| s.keyid == did)
                .filter_map(|s| B64.decode(&s.sig).ok())
                .any(|sig| key.verify(&message, &sig));
            if signed {
                signers.push(*key);
            }
        }
        Ok(signers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn signature_binds_type_and_payload() {
        let key = SecretKey::from_bytes(&[1; 32]);
        let mut env = Envelope::unsigned(PayloadType::Catalog, b"{}");
        env.sign(&key).unwrap();
        let public = key.public();
        assert_eq!(env.valid_signers([&public]).unwrap(), vec![public]);

        let mut retyped = env.clone();
        retyped.payload_type = PayloadType::Root.as_str().into();
        assert!(retyped.valid_signers([&public]).unwrap().is_empty());

        let mut tampered = env.clone();
        tampered.payload = B64.encode(b"{ }");
        assert!(tampered.valid_signers([&public]).unwrap().is_empty());
    }

    #[test]
    fn duplicate_signatures_count_once() {
        let key = SecretKey::from_bytes(&[2; 32]);
        let mut env = Envelope::unsigned(PayloadType::Catalog, b"x");
        env.sign(&key).unwrap();
        let dup = env.signatures[0].clone();
        env.signatures.push(dup);
        let public = key.public();
        assert_eq!(env.valid_signers([&public, &public]).unwrap().len(), 1);
    }

    #[test]
    fn oversized_and_unknown_fields_are_refused() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(
            Envelope::from_bytes(&big),
            Err(Error::TooLarge { .. })
        ));
        let extra = br#"{"payloadType":"a","payload":"","signatures":[],"x":1}"#;
        assert!(Envelope::from_bytes(extra).is_err());
    }
}
