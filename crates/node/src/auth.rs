//! Who may drive the node's API, and the private files that say so.
//!
//! The CLI authenticates with a bearer token kept in `<data_dir>/api.token` (0600, in a
//! 0700 data dir): whoever can read the node's data can drive it, nobody else. A TCP socket
//! with a token was chosen over a Unix socket because the web dashboard needs HTTP that a
//! browser reaches; the token file gives local processes the same "file permissions are the
//! credential" rule a Unix socket would (see docs/threat-model.md).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use zeroize::Zeroizing;

/// File name of the API token inside the data dir.
pub const TOKEN_FILE: &str = "api.token";

/// The API's bearer token, compared in constant time.
pub struct ApiToken(Zeroizing<String>);

impl ApiToken {
    /// Whether `offered` is this token. Both sides are hashed first, and BLAKE3's hash
    /// equality is constant-time, so the comparison leaks no prefix length.
    pub fn matches(&self, offered: &str) -> bool {
        blake3::hash(self.0.as_bytes()) == blake3::hash(offered.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// Creates the data dir (0700), or tightens an existing one we own to 0700: it holds the
/// database, the token, app secrets and the swarm key.
pub fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading data dir {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
            || {
                format!(
                    "data dir {} is readable by others (mode {:o}) and cannot be made 0700",
                    dir.display(),
                    mode & 0o777
                )
            },
        )?;
    }
    Ok(())
}

/// Reads the node's token, creating it (0600, 256 random bits) on first start. A token file
/// others can read is refused rather than trusted.
pub fn load_or_create_token(data_dir: &Path) -> anyhow::Result<ApiToken> {
    let path = token_path(data_dir);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            let token = Zeroizing::new(hex::encode(rand::random::<[u8; 32]>()));
            file.write_all(token.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing the API token {}", path.display()))?;
            Ok(ApiToken(token))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token(&path),
        Err(e) => Err(e).with_context(|| format!("creating the API token {}", path.display())),
    }
}

/// Reads a token file, refusing one that group or others can read (the one rule, kept in
/// [`archy_api::read_token`] for the CLI and every other client).
pub fn read_token(path: &Path) -> anyhow::Result<ApiToken> {
    Ok(ApiToken(archy_api::read_token(path)?.into_secret()))
}

/// An HTTP client for the node's API that sends the token from `token_file` (default:
/// `api.token` in the default data dir, see `ARCHY_DATA_DIR`) with every request.
pub fn api_client(
    token_file: Option<&Path>,
    timeout: std::time::Duration,
) -> anyhow::Result<reqwest::Client> {
    let path = token_file
        .map(Path::to_owned)
        .unwrap_or_else(|| token_path(&crate::config::default_data_dir()));
    let token = read_token(&path)?;
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
        .context("the API token is not a valid header value")?;
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node");
        private_data_dir(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let token = load_or_create_token(&data).unwrap();
        let mode = std::fs::metadata(token_path(&data))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create_token(&data).unwrap();
        assert!(again.matches(token.as_str()));
        assert!(!again.matches("nope"));
        assert!(!again.matches(&token.as_str()[1..]));
    }

    #[test]
    fn a_readable_token_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_token(dir.path()).unwrap();
        let path = token_path(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", read_token(&path).unwrap_err());
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn an_open_data_dir_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        private_data_dir(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
