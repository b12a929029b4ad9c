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

/// Signature entries an envelope may carry. A signature check costs about 50 µs, and a
/// relay's 5 MB event held 30,000 entries; a root of many keyholders needs a few dozen.
pub const MAX_SIGNATURES: usize = 64;

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

    /// Parses envelope bytes, bounded by [`MAX_DOCUMENT_BYTES`] and [`MAX_SIGNATURES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::TooLarge {
                size: bytes.len(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let envelope: Self =
            serde_json::from_slice(bytes).map_err(|e| Error::MalformedEnvelope(e.to_string()))?;
        if envelope.signatures.len() > MAX_SIGNATURES {
            return Err(Error::MalformedEnvelope(format!(
                "{} signatures, at most {MAX_SIGNATURES} are read",
                envelope.signatures.len()
            )));
        }
        Ok(envelope)
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
    /// A key is tried once however often `allowed` names it, and only the first signature
    /// entry naming it is checked ([`Envelope::sign`] keeps one per key): trying every
    /// entry for every key cost N² checks for N entries naming one key. Key ids are
    /// resolved only through `allowed`, never trusted from the envelope.
    pub fn valid_signers<'a>(
        &self,
        allowed: impl IntoIterator<Item = &'a PublicKey>,
    ) -> Result<Vec<PublicKey>> {
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        let mut tried: std::collections::HashSet<PublicKey> = std::collections::HashSet::new();
        let mut signers: Vec<PublicKey> = Vec::new();
        for key in allowed {
            if !tried.insert(*key) {
                continue;
            }
            let did = key.did_key();
            let signed = self
                .signatures
                .iter()
                .find(|s| s.keyid == did)
                .and_then(|s| B64.decode(&s.sig).ok())
                .is_some_and(|sig| key.verify(&message, &sig));
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

    /// Entries naming one key cost one check: the first decides (a forged first entry is
    /// not saved by a good second one; trying every entry for every named key cost N²
    /// checks). More than [`MAX_SIGNATURES`] entries are refused as they are parsed.
    #[test]
    fn one_check_per_key_and_at_most_max_signatures() {
        let key = SecretKey::from_bytes(&[3; 32]);
        let public = key.public();
        let mut env = Envelope::unsigned(PayloadType::Manifest, b"p");
        env.sign(&key).unwrap();
        let good = env.signatures[0].clone();
        let forged = Signature {
            keyid: good.keyid.clone(),
            sig: B64.encode([0u8; 64]),
        };
        env.signatures = vec![forged.clone(), good.clone()];
        assert!(env.valid_signers([&public, &public]).unwrap().is_empty());
        env.signatures = vec![good, forged.clone()];
        assert_eq!(env.valid_signers([&public]).unwrap(), vec![public]);

        env.signatures = vec![forged; MAX_SIGNATURES];
        assert!(Envelope::from_bytes(&env.to_bytes()).is_ok());
        env.signatures.push(env.signatures[0].clone());
        let err = Envelope::from_bytes(&env.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("65 signatures, at most 64"), "{err}");
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
