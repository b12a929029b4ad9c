//! The catalog: every first-party app with its full manifest and the BLAKE3 hash and
//! size of each artifact, signed by the catalog role.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, PayloadType};
use crate::error::{Error, Result, ValidationError};
use crate::manifest::{Manifest, VerifiedManifest};
use crate::root::{Role, VerifiedRoot};
use crate::{SPEC_VERSION, blake3_hex};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// Base URL of the origin's HTTP server (catalog and blobs).
    pub http: String,
    /// The origin's iroh endpoint id (hex public key).
    pub iroh: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub name: String,
    /// BLAKE3 of the artifact's bytes, lowercase hex.
    pub blake3: String,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogApp {
    pub id: String,
    pub version: semver::Version,
    pub manifest: Manifest,
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub spec_version: u32,
    pub version: u64,
    pub expires: DateTime<Utc>,
    /// The previous catalog's link ([`catalog_link`]: BLAKE3 of its payload), a hash chain;
    /// absent for the first.
    #[serde(default)]
    pub previous: Option<String>,
    pub origin: Origin,
    pub apps: Vec<CatalogApp>,
}

fn is_blake3_hex(s: &str) -> bool {
    s.len() == 64
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

impl Catalog {
    pub fn new(
        version: u64,
        expires: DateTime<Utc>,
        previous: Option<String>,
        origin: Origin,
        apps: Vec<CatalogApp>,
    ) -> Result<Self> {
        let catalog = Catalog {
            doc_type: "catalog".into(),
            spec_version: SPEC_VERSION,
            version,
            expires,
            previous,
            origin,
            apps,
        };
        catalog.validate().map_err(|source| Error::Invalid {
            what: "catalog",
            source,
        })?;
        Ok(catalog)
    }

    /// Compact JSON: catalogs of thousands of apps stay well under the size cap, and
    /// signers read `archy-sign review`, not the raw payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let mut catalog: Catalog = serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
            what: "catalog",
            reason: e.to_string(),
        })?;
        catalog.validate().map_err(|source| Error::Invalid {
            what: "catalog",
            source,
        })?;
        // JSON gives no lengths ahead, so each list was grown (a one-container app holds
        // room for four); a node keeps the catalog for its whole life.
        catalog.apps.shrink_to_fit();
        for app in &mut catalog.apps {
            app.artifacts.shrink_to_fit();
            app.manifest.shrink_to_fit();
        }
        Ok(catalog)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        if self.doc_type != "catalog" {
            return Err(ValidationError::new(
                "type",
                format!("expected \"catalog\", found {:?}", self.doc_type),
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
        if let Some(prev) = &self.previous
            && !is_blake3_hex(prev)
        {
            return Err(ValidationError::new(
                "previous",
                "must be 64 lowercase hex characters",
            ));
        }
        if !(self.origin.http.starts_with("http://") || self.origin.http.starts_with("https://")) {
            return Err(ValidationError::new(
                "origin.http",
                "must be an http(s) URL",
            ));
        }
        if !is_blake3_hex(&self.origin.iroh) {
            return Err(ValidationError::new(
                "origin.iroh",
                "must be an iroh endpoint id (64 lowercase hex characters)",
            ));
        }
        let mut ids = BTreeSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            let at = format!("apps[{i}]");
            if !ids.insert(app.id.as_str()) {
                return Err(ValidationError::new(
                    format!("{at}.id"),
                    format!("duplicate app {:?}", app.id),
                ));
            }
            app.manifest
                .validate()
                .map_err(|e| ValidationError::new(format!("{at}.manifest.{}", e.field), e.rule))?;
            if app.manifest.id != app.id {
                return Err(ValidationError::new(
                    format!("{at}.id"),
                    format!(
                        "{:?} does not match the manifest id {:?}",
                        app.id, app.manifest.id
                    ),
                ));
            }
            if app.manifest.version != app.version {
                return Err(ValidationError::new(
                    format!("{at}.version"),
                    format!(
                        "{} does not match the manifest version {}",
                        app.version, app.manifest.version
                    ),
                ));
            }
            let mut names = BTreeSet::new();
            for (j, a) in app.artifacts.iter().enumerate() {
                let at = format!("{at}.artifacts[{j}]");
                if !names.insert(a.name.as_str()) {
                    return Err(ValidationError::new(
                        format!("{at}.name"),
                        "duplicate artifact",
                    ));
                }
                if !is_blake3_hex(&a.blake3) {
                    return Err(ValidationError::new(
                        format!("{at}.blake3"),
                        "must be 64 lowercase hex characters",
                    ));
                }
                match app.manifest.artifacts.iter().find(|d| d.name == a.name) {
                    None => {
                        return Err(ValidationError::new(
                            format!("{at}.name"),
                            format!("{:?} is not declared by the manifest", a.name),
                        ));
                    }
                    Some(decl) if decl.media_type != a.media_type => {
                        return Err(ValidationError::new(
                            format!("{at}.media_type"),
                            format!("manifest declares {:?}", decl.media_type),
                        ));
                    }
                    Some(_) => {}
                }
            }
            if let Some(missing) = app
                .manifest
                .artifacts
                .iter()
                .find(|d| !names.contains(d.name.as_str()))
            {
                return Err(ValidationError::new(
                    format!("{at}.artifacts"),
                    format!(
                        "artifact {:?} declared by the manifest has no hash",
                        missing.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One app that came out of verification: its manifest, now trusted, and its artifact
/// hashes. Only this crate makes one, in exactly two places: [`VerifiedCatalog::app`] (an app
/// of a catalog that met the catalog threshold) and
/// [`VerifiedPublication::sandboxed_app`](crate::VerifiedPublication::sandboxed_app) (a
/// DID-signed publication that passed the sandbox policy, under its publisher's namespace).
/// The fields are private, so no other crate can pair a manifest with hashes of its choosing:
///
/// ```compile_fail,E0451
/// # fn forge(app: archy_registry::VerifiedApp) -> archy_registry::VerifiedApp {
/// // Fields of `VerifiedApp` are private outside archy-registry (error E0451).
/// archy_registry::VerifiedApp {
///     manifest: app.manifest().clone(),
///     artifacts: Vec::new(),
/// }
/// # }
/// ```
///
/// Reading it is open: [`Self::manifest`], [`Self::artifacts`], [`Self::artifact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedApp {
    manifest: VerifiedManifest,
    artifacts: Vec<Artifact>,
}

impl VerifiedApp {
    /// Pairs a manifest with its hashes; callers are the two verifications named above.
    pub(crate) fn from_verified(manifest: VerifiedManifest, artifacts: Vec<Artifact>) -> Self {
        Self {
            manifest,
            artifacts,
        }
    }

    /// The verified manifest (derefs to [`Manifest`]).
    pub fn manifest(&self) -> &VerifiedManifest {
        &self.manifest
    }

    /// The artifacts' names, BLAKE3 hashes, sizes and media types, as signed.
    pub fn artifacts(&self) -> &[Artifact] {
        &self.artifacts
    }

    /// The signed artifact named `name`, if the app has one.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }
}

/// A catalog whose envelope met the catalog threshold of a verified root.
/// Expiry is a property checked per use ([`Self::check_unexpired`]): an expired catalog
/// still describes what is running, but allows no new installs.
///
/// Only [`Self::verify`] makes one; its fields are private:
///
/// ```compile_fail,E0451
/// # fn forge(c: archy_registry::Catalog) -> archy_registry::VerifiedCatalog {
/// // Fields of `VerifiedCatalog` are private outside archy-registry (error E0451).
/// archy_registry::VerifiedCatalog {
///     verified: std::sync::Arc::new(todo!()),
/// }
/// # }
/// ```
///
/// Cloning is cheap (one shared, immutable verified catalog), and so is handing its
/// envelope on ([`Self::envelope`]): a catalog of 10,000 apps is megabytes, and the node
/// reads it from several places and relays its envelope to peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCatalog {
    verified: Arc<Verified>,
}

#[derive(Debug, PartialEq, Eq)]
struct Verified {
    catalog: Catalog,
    envelope: Bytes,
    payload_hash: String,
}

/// What the next catalog names as `previous`: BLAKE3 of this catalog's payload bytes.
///
/// The payload, not the envelope: keyholders may add signatures after a catalog is out
/// (a late third signer), and that must neither break the chain nor look like a second,
/// different catalog of the same version.
pub fn catalog_link(envelope: &Envelope) -> Result<String> {
    Ok(blake3_hex(&envelope.payload_bytes()?))
}

impl VerifiedCatalog {
    /// Signature and threshold first, over the received bytes; then parse; then validate.
    pub fn verify(root: &VerifiedRoot, envelope_bytes: &[u8]) -> Result<Self> {
        // Each copy is dropped as soon as the next exists: at most the caller's bytes, one
        // decoded copy and the parsed catalog are alive at once here. (The node's peak
        // during a pull is elsewhere: unchanged by this, benches/catalog_scale.rs.)
        let payload = {
            let envelope = Envelope::from_bytes(envelope_bytes)?;
            envelope.expect_type(PayloadType::Catalog)?;
            root.root().check_threshold(&envelope, Role::Catalog)?;
            envelope.payload_bytes()?
        };
        let payload_hash = blake3_hex(&payload);
        let catalog = Catalog::from_json(&payload)?;
        drop(payload);
        Ok(Self {
            verified: Arc::new(Verified {
                catalog,
                envelope: Bytes::copy_from_slice(envelope_bytes),
                payload_hash,
            }),
        })
    }

    pub fn check_unexpired(&self, now: DateTime<Utc>) -> Result<()> {
        if self.verified.catalog.expires <= now {
            return Err(Error::Expired {
                what: "catalog",
                version: self.verified.catalog.version,
                expires: self.verified.catalog.expires,
                now,
            });
        }
        Ok(())
    }

    pub fn catalog(&self) -> &Catalog {
        &self.verified.catalog
    }

    pub fn version(&self) -> u64 {
        self.verified.catalog.version
    }

    pub fn expires(&self) -> DateTime<Utc> {
        self.verified.catalog.expires
    }

    pub fn envelope_bytes(&self) -> &[u8] {
        &self.verified.envelope
    }

    /// The envelope as received, shared rather than copied (for relaying it on).
    pub fn envelope(&self) -> Bytes {
        self.verified.envelope.clone()
    }

    /// BLAKE3 of the payload: what the next catalog names as `previous` ([`catalog_link`]),
    /// and what tells two catalogs of one version apart.
    pub fn payload_hash(&self) -> &str {
        &self.verified.payload_hash
    }

    pub fn app(&self, id: &str) -> Option<VerifiedApp> {
        self.verified
            .catalog
            .apps
            .iter()
            .find(|a| a.id == id)
            .map(|a| {
                VerifiedApp::from_verified(
                    VerifiedManifest::new(a.manifest.clone()),
                    a.artifacts.clone(),
                )
            })
    }
}
