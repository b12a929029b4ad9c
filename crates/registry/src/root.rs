//! The root document: which keys hold which role, and how many must sign.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SPEC_VERSION;
use crate::envelope::{Envelope, PayloadType};
use crate::error::{Error, Result, ValidationError};
use crate::keys::{KeyId, PublicKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Root,
    Catalog,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Catalog => "catalog",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub keytype: String,
    /// Hex of the 32-byte ed25519 public key.
    pub public: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleKeys {
    pub keyids: Vec<KeyId>,
    pub threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    pub root: RoleKeys,
    pub catalog: RoleKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub spec_version: u32,
    pub version: u64,
    pub expires: DateTime<Utc>,
    pub keys: BTreeMap<KeyId, KeyEntry>,
    pub roles: Roles,
}

impl Root {
    /// A new root document; `root_keys` and `catalog_keys` may overlap.
    pub fn new(
        version: u64,
        expires: DateTime<Utc>,
        root_keys: &[PublicKey],
        root_threshold: u32,
        catalog_keys: &[PublicKey],
        catalog_threshold: u32,
    ) -> Result<Self> {
        let mut keys = BTreeMap::new();
        for k in root_keys.iter().chain(catalog_keys) {
            keys.insert(
                k.did_key(),
                KeyEntry {
                    keytype: "ed25519".into(),
                    public: k.to_hex(),
                },
            );
        }
        let ids = |ks: &[PublicKey]| {
            let mut v: Vec<KeyId> = ks.iter().map(PublicKey::did_key).collect();
            v.dedup();
            v
        };
        let root = Root {
            doc_type: "root".into(),
            spec_version: SPEC_VERSION,
            version,
            expires,
            keys,
            roles: Roles {
                root: RoleKeys {
                    keyids: ids(root_keys),
                    threshold: root_threshold,
                },
                catalog: RoleKeys {
                    keyids: ids(catalog_keys),
                    threshold: catalog_threshold,
                },
            },
        };
        root.validate().map_err(|source| Error::Invalid {
            what: "root",
            source,
        })?;
        Ok(root)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let root: Root = serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
            what: "root",
            reason: e.to_string(),
        })?;
        root.validate().map_err(|source| Error::Invalid {
            what: "root",
            source,
        })?;
        Ok(root)
    }

    pub fn role(&self, role: Role) -> &RoleKeys {
        match role {
            Role::Root => &self.roles.root,
            Role::Catalog => &self.roles.catalog,
        }
    }

    /// The public keys of a role (validated at parse time, so lookups cannot fail).
    pub fn role_keys(&self, role: Role) -> Vec<PublicKey> {
        self.role(role)
            .keyids
            .iter()
            .filter_map(|id| PublicKey::from_did_key(id).ok())
            .collect()
    }

    /// Counts distinct valid signers of `envelope` among the role's keys against its threshold.
    pub fn check_threshold(&self, envelope: &Envelope, role: Role) -> Result<Vec<PublicKey>> {
        let keys = self.role_keys(role);
        let signers = envelope.valid_signers(&keys)?;
        let threshold = self.role(role).threshold;
        if (signers.len() as u64) < u64::from(threshold) {
            return Err(Error::ThresholdNotMet {
                role: role.name(),
                valid: signers.len(),
                threshold,
            });
        }
        Ok(signers)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        if self.doc_type != "root" {
            return Err(ValidationError::new(
                "type",
                format!("expected \"root\", found {:?}", self.doc_type),
            ));
        }
        if self.spec_version != SPEC_VERSION {
            return Err(ValidationError::new(
                "spec_version",
                format!(
                    "this node understands spec version {SPEC_VERSION}, found {}",
                    self.spec_version
                ),
            ));
        }
        if self.version == 0 {
            return Err(ValidationError::new("version", "versions start at 1"));
        }
        for (id, entry) in &self.keys {
            if entry.keytype != "ed25519" {
                return Err(ValidationError::new(
                    format!("keys.{id}.keytype"),
                    "only ed25519 is supported",
                ));
            }
            let public = PublicKey::from_hex(&entry.public)
                .map_err(|e| ValidationError::new(format!("keys.{id}.public"), e.to_string()))?;
            if &public.did_key() != id {
                return Err(ValidationError::new(
                    format!("keys.{id}"),
                    "key id is not the did:key of its public key",
                ));
            }
        }
        for role in [Role::Root, Role::Catalog] {
            let keys = self.role(role);
            let field = format!("roles.{}", role.name());
            let mut distinct = keys.keyids.clone();
            distinct.sort();
            distinct.dedup();
            if distinct.len() != keys.keyids.len() {
                return Err(ValidationError::new(
                    format!("{field}.keyids"),
                    "a key is listed twice",
                ));
            }
            if let Some(missing) = keys.keyids.iter().find(|id| !self.keys.contains_key(*id)) {
                return Err(ValidationError::new(
                    format!("{field}.keyids"),
                    format!("{missing} is not in keys"),
                ));
            }
            if keys.threshold == 0 || keys.threshold as usize > keys.keyids.len() {
                return Err(ValidationError::new(
                    format!("{field}.threshold"),
                    format!(
                        "must be between 1 and the number of keys ({})",
                        keys.keyids.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A root whose signatures were checked: the pinned trust anchor, or a root reached
/// from it by verified rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRoot {
    root: Root,
    envelope_bytes: Vec<u8>,
}

impl VerifiedRoot {
    /// Accepts the pinned trust anchor: it must meet its own root threshold. Its expiry is
    /// not checked here (a node may rotate away from an expired anchor); [`Self::check_unexpired`] is.
    pub fn trust_anchor(envelope_bytes: &[u8]) -> Result<Self> {
        let envelope = Envelope::from_bytes(envelope_bytes)?;
        envelope.expect_type(PayloadType::Root)?;
        // The anchor's keys are only known from its own payload: parse, then verify self-signature.
        let root = Root::from_json(&envelope.payload_bytes()?)?;
        root.check_threshold(&envelope, Role::Root)?;
        Ok(Self {
            root,
            envelope_bytes: envelope_bytes.to_vec(),
        })
    }

    /// Root N → N+1: the new root must be signed by a threshold of this root's root keys
    /// and a threshold of its own, and carry exactly the next version.
    pub fn rotate(&self, envelope_bytes: &[u8]) -> Result<Self> {
        let envelope = Envelope::from_bytes(envelope_bytes)?;
        envelope.expect_type(PayloadType::Root)?;
        // Old keys vouch for the bytes before we parse them.
        self.root.check_threshold(&envelope, Role::Root)?;
        let next = Root::from_json(&envelope.payload_bytes()?)?;
        if next.version != self.root.version + 1 {
            return Err(Error::RootVersionSkip {
                expected: self.root.version + 1,
                found: next.version,
            });
        }
        next.check_threshold(&envelope, Role::Root)?;
        Ok(Self {
            root: next,
            envelope_bytes: envelope_bytes.to_vec(),
        })
    }

    pub fn check_unexpired(&self, now: DateTime<Utc>) -> Result<()> {
        if self.root.expires <= now {
            return Err(Error::Expired {
                what: "root",
                version: self.root.version,
                expires: self.root.expires,
                now,
            });
        }
        Ok(())
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn version(&self) -> u64 {
        self.root.version
    }

    pub fn envelope_bytes(&self) -> &[u8] {
        &self.envelope_bytes
    }
}
