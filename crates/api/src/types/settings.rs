//! Live settings, and a developer's publication in progress.

use super::*;

// ---- settings ----------------------------------------------------------------------------

/// `GET /v1/settings` (and the answer of `PUT /v1/settings`): what the node runs with now.
/// Values set through the API are kept in the node's database and override its config
/// file's, at start and at once when changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// The operator's trusted Nostr keys, changed through `/v1/trust/keys/{key}`.
    pub trusted_keys: Vec<TrustedKey>,
    /// Nostr relays (`ws://` or `wss://`, at most 16) third-party apps are discovered on.
    pub relays: Vec<String>,
    /// The PEM files of certificate authorities a `wss://` relay's certificate may chain to
    /// besides the public web roots (`relay_ca_certs` in the config file; read at start).
    #[serde(default)]
    pub relay_ca_certs: Vec<String>,
    /// Publishers scoring below this (0..=100) need explicit approval to install.
    pub market_min_score: u8,
    /// Seconds between catalog pulls and marketplace discoveries (30..=86400).
    pub pull_interval_seconds: u64,
    /// The fields whose value was set through the API (the others come from the config file).
    #[serde(default)]
    pub overridden: Vec<String>,
}

/// `PUT /v1/settings`: the fields to change; absent fields keep their value. A refused
/// value answers `invalid` with a message that starts with the field's name (`relays: …`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relays: Option<Vec<String>>,
    /// 0..=100 (wider integers are refused by name, not by the JSON parser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_min_score: Option<i64>,
    /// 30..=86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_interval_seconds: Option<i64>,
}

// ---- publishing ---------------------------------------------------------------------------

/// `POST /v1/publish`: declare the artifacts a publication will upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginPublish {
    /// The manifest's app id.
    pub app: String,
    /// 1 to 16 artifacts.
    pub artifacts: Vec<DeclaredArtifact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredArtifact {
    pub name: String,
    /// Bytes, at least 1, at most the node's `max_upload_mib`.
    pub size: u64,
    /// BLAKE3 of the bytes, lowercase hex.
    pub blake3: String,
}

/// The session the uploads of a publication go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishSession {
    /// 32 hex digits.
    pub session: String,
    /// The session and its uploads are dropped after this.
    pub expires_in_seconds: u64,
}

/// `PUT /v1/publish/{session}/{artifact}`: the artifact as the node pinned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadedArtifact {
    pub blake3: String,
    pub size: u64,
}

/// `POST /v1/publish/{session}/finish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishFinished {
    pub finished: String,
}

/// `DELETE /v1/publish/{session}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishAborted {
    pub aborted: String,
}

/// The raw bytes of an artifact upload (`application/octet-stream`).
#[derive(Debug, Clone, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ArtifactBytes(pub Vec<u8>);
