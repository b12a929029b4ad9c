//! Third-party publications: a developer's manifest, artifact hashes and origin in a DSSE
//! envelope of type manifest, signed by the developer's did:key. The payload also names the
//! developer's Nostr key, binding the DID to the key that signs the carrying Nostr event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SPEC_VERSION;
use crate::catalog::{Artifact, Origin, VerifiedApp};
use crate::envelope::{Envelope, PayloadType};
use crate::error::{Error, Result, ValidationError};
use crate::keys::{PublicKey, SecretKey};
use crate::manifest::{Manifest, VerifiedManifest};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    /// The developer's did:key; the envelope must be signed by it.
    pub did: String,
    /// The developer's Nostr public key (hex); the carrying event must be signed by it.
    pub nostr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub spec_version: u32,
    pub publisher: Publisher,
    pub manifest: Manifest,
    pub artifacts: Vec<Artifact>,
    /// The developer's own node, serving the artifacts.
    pub origin: Origin,
    pub published_at: DateTime<Utc>,
}

impl Publication {
    pub fn new(
        publisher: Publisher,
        manifest: Manifest,
        artifacts: Vec<Artifact>,
        origin: Origin,
        published_at: DateTime<Utc>,
    ) -> Self {
        Self {
            doc_type: "app-publication".into(),
            spec_version: SPEC_VERSION,
            publisher,
            manifest,
            artifacts,
            origin,
            published_at,
        }
    }

    /// The DSSE envelope signed by the developer's DID key.
    pub fn sign(&self, did_key: &SecretKey) -> Result<Envelope> {
        let payload = serde_json::to_vec(self).map_err(|e| Error::Malformed {
            what: "publication",
            reason: e.to_string(),
        })?;
        let mut envelope = Envelope::unsigned(PayloadType::Manifest, &payload);
        envelope.sign(did_key)?;
        Ok(envelope)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        if self.doc_type != "app-publication" {
            return Err(ValidationError::new("type", "expected \"app-publication\""));
        }
        if self.spec_version != SPEC_VERSION {
            return Err(ValidationError::new(
                "spec_version",
                format!("expected {SPEC_VERSION}"),
            ));
        }
        check_origin_http(&self.origin.http)
            .map_err(|rule| ValidationError::new("origin.http", rule))?;
        let iroh_ok =
            self.origin.iroh.len() == 64 && self.origin.iroh.chars().all(|c| c.is_ascii_hexdigit());
        if !iroh_ok {
            return Err(ValidationError::new(
                "origin.iroh",
                "must be an iroh endpoint id (64 hex)",
            ));
        }
        self.manifest
            .validate()
            .map_err(|e| ValidationError::new(format!("manifest.{}", e.field), e.rule))?;
        for decl in &self.manifest.artifacts {
            let Some(a) = self.artifacts.iter().find(|a| a.name == decl.name) else {
                return Err(ValidationError::new(
                    "artifacts",
                    format!(
                        "artifact {:?} declared by the manifest has no hash",
                        decl.name
                    ),
                ));
            };
            let hex_ok = a.blake3.len() == 64
                && a.blake3
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !hex_ok {
                return Err(ValidationError::new(
                    format!("artifacts.{}.blake3", a.name),
                    "must be 64 lowercase hex",
                ));
            }
        }
        Ok(())
    }
}

/// A publication whose envelope verified under the DID it names. The manifest inside is
/// usable (it passed validation) but still third-party: callers apply the sandbox policy
/// and namespacing before installing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPublication {
    publication: Publication,
    did: PublicKey,
}

impl VerifiedPublication {
    /// The signer is named by the envelope's key id (a did:key carries its own key), so
    /// the signature is checked before the payload is parsed; the payload must then name
    /// that same DID as its publisher.
    pub fn verify(envelope_bytes: &[u8]) -> Result<Self> {
        let envelope = Envelope::from_bytes(envelope_bytes)?;
        envelope.expect_type(PayloadType::Manifest)?;
        let candidates: Vec<PublicKey> = envelope
            .signatures
            .iter()
            .filter_map(|s| PublicKey::from_did_key(&s.keyid).ok())
            .collect();
        let signers = envelope.valid_signers(&candidates)?;
        let Some(did) = signers.first().copied() else {
            return Err(Error::ThresholdNotMet {
                role: "developer",
                valid: 0,
                threshold: 1,
            });
        };
        let publication: Publication =
            serde_json::from_slice(&envelope.payload_bytes()?).map_err(|e| Error::Malformed {
                what: "publication",
                reason: e.to_string(),
            })?;
        publication.validate().map_err(|source| Error::Invalid {
            what: "publication",
            source,
        })?;
        if publication.publisher.did != did.did_key() {
            return Err(Error::Invalid {
                what: "publication",
                source: ValidationError::new(
                    "publisher.did",
                    format!(
                        "names {} but the envelope is signed by {}",
                        publication.publisher.did,
                        did.did_key()
                    ),
                ),
            });
        }
        Ok(Self { publication, did })
    }

    pub fn publication(&self) -> &Publication {
        &self.publication
    }

    pub fn did(&self) -> PublicKey {
        self.did
    }

    /// The id this app gets on a node: see [`namespaced_id`].
    pub fn local_id(&self) -> String {
        namespaced_id(
            &self.publication.manifest.id,
            &self.publication.publisher.nostr,
        )
    }

    /// The app, verified as the DID's, once it passes the third-party sandbox policy, under
    /// its publisher's namespace ([`Self::local_id`]) so it can never take the place of a
    /// first-party app or another publisher's.
    pub fn sandboxed_app(&self) -> Result<VerifiedApp, ValidationError> {
        let mut manifest = self.publication.manifest.clone();
        manifest.check_sandbox_policy()?;
        manifest.id = self.local_id();
        Ok(VerifiedApp::from_verified(
            VerifiedManifest::new(manifest),
            self.publication.artifacts.clone(),
        ))
    }
}

/// A developer's origin is a base URL the node appends fixed paths to, so it must be
/// nothing but `http(s)://host[:port]`: a path, query, fragment or user info could steer
/// the node's requests somewhere the developer chose (e.g. the node's own API).
fn check_origin_http(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if authority.is_empty() || !authority.chars().all(allowed) {
        return Err(format!(
            "{url:?} must be only scheme, host and port (no path, query, fragment or user info)"
        ));
    }
    Ok(())
}

/// Hex digits of the publisher's key in a third-party app's local id: 64 bits, so a
/// publisher cannot grind a key that lands in another's namespace.
const NAMESPACE_HEX: usize = 16;

/// A third-party app's id on a node: `<app id>.<first 16 hex digits of the publisher's
/// Nostr key>`. First-party ids cannot contain '.', so the two never meet.
pub fn namespaced_id(app_id: &str, publisher_nostr_hex: &str) -> String {
    let prefix: String = publisher_nostr_hex.chars().take(NAMESPACE_HEX).collect();
    format!("{app_id}.{prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &SecretKey) -> Publication {
        let manifest = Manifest::from_yaml(
            "id: notes\nname: Notes\nversion: 1.0.0\nartifacts:\n  - { name: image, media_type: x }\ncontainers:\n  - name: web\n    image: { artifact: image }\n",
        )
        .unwrap();
        Publication::new(
            Publisher {
                did: key.public().did_key(),
                nostr: "ab".repeat(32),
            },
            manifest,
            vec![Artifact {
                name: "image".into(),
                blake3: "cd".repeat(32),
                size: 10,
                media_type: "x".into(),
            }],
            Origin {
                http: "http://127.0.0.1:1".into(),
                iroh: "ef".repeat(32),
            },
            Utc::now(),
        )
    }

    #[test]
    fn signed_by_its_did_verifies() {
        let key = SecretKey::from_bytes(&[4; 32]);
        let env = sample(&key).sign(&key).unwrap();
        let v = VerifiedPublication::verify(&env.to_bytes()).unwrap();
        assert_eq!(v.did(), key.public());
        let app = v.sandboxed_app().unwrap();
        assert_eq!(app.manifest().id, format!("notes.{}", "ab".repeat(8)));
        assert_eq!(app.manifest().id, v.local_id());
    }

    #[test]
    fn another_did_or_a_tampered_payload_is_refused() {
        let key = SecretKey::from_bytes(&[4; 32]);
        let other = SecretKey::from_bytes(&[5; 32]);
        // Names `key` as publisher, signed by `other`.
        let env = sample(&key).sign(&other).unwrap();
        let err = VerifiedPublication::verify(&env.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("publisher.did"), "{err}");
        let mut tampered = sample(&key).sign(&key).unwrap();
        let mut p = sample(&key);
        p.manifest.name = "Evil".into();
        tampered.payload = sample_payload(&p);
        let err = VerifiedPublication::verify(&tampered.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("0 valid signature"), "{err}");
    }

    fn sample_payload(p: &Publication) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(p).unwrap())
    }

    #[test]
    fn origins_are_bare_base_urls() {
        for good in [
            "http://127.0.0.1:7790",
            "https://dev.example.org",
            "http://[::1]:80/",
        ] {
            assert!(check_origin_http(good).is_ok(), "{good}");
        }
        for bad in [
            "http://127.0.0.1:7878/v1/trust/keys/abc?x=",
            "http://127.0.0.1:7878#",
            "http://user@host",
            "ftp://host",
            "http://",
        ] {
            assert!(check_origin_http(bad).is_err(), "{bad}");
        }
        let key = SecretKey::from_bytes(&[4; 32]);
        let mut p = sample(&key);
        p.origin.http = "http://127.0.0.1:7878/v1/apps/x/update?approve=true&".into();
        let err = VerifiedPublication::verify(&p.sign(&key).unwrap().to_bytes()).unwrap_err();
        assert!(err.to_string().contains("origin.http"), "{err}");
    }

    #[test]
    fn privileged_third_party_manifests_fail_the_sandbox() {
        let key = SecretKey::from_bytes(&[4; 32]);
        let mut p = sample(&key);
        p.manifest.containers[0].privileged = true;
        let v = VerifiedPublication::verify(&p.sign(&key).unwrap().to_bytes()).unwrap();
        let err = v.sandboxed_app().unwrap_err();
        assert!(err.field.ends_with("privileged"), "{err}");
    }
}
