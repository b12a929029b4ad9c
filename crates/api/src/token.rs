//! The node's API token file: `<data_dir>/api.token`, 0600. Whoever can read the node's data
//! can drive it, nobody else; a token file others can read is refused rather than used.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The shortest text accepted as a token (the node makes 64 hex digits).
const MIN_TOKEN_LEN: usize = 32;

/// A bearer token for the node's API. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// A token from its text (surrounding whitespace removed).
    pub fn new(text: &str) -> Self {
        Self(Zeroizing::new(text.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The secret itself, still zeroized on drop.
    pub fn into_secret(self) -> Zeroizing<String> {
        self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a token file cannot be used; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "cannot read the node's API token {} (start the node once to create it, or \
         point ARCHY_DATA_DIR / --token-file at the node's data dir)",
        .path.display()
    )]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the API token {} is readable by others (mode {:o}); run `chmod 600 {}`",
        .path.display(), .mode, .path.display()
    )]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("reading the API token {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API token {} is too short to be one", .path.display())]
    TooShort { path: PathBuf },
    #[error(
        "the API token is not a valid HTTP header value; make a new one (remove the file and restart the node)"
    )]
    NotAHeader,
}

/// Reads a token file, refusing one that group or others can read.
pub fn read_token(path: &Path) -> Result<Token, TokenError> {
    let meta = std::fs::metadata(path).map_err(|source| TokenError::Missing {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(TokenError::ReadableByOthers {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| TokenError::Unreadable {
                path: path.to_owned(),
                source,
            })?,
        );
    let token = Token::new(&text);
    if token.as_str().len() < MIN_TOKEN_LEN {
        return Err(TokenError::TooShort {
            path: path.to_owned(),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_token_is_read_and_others_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.token");
        let missing = read_token(&path).unwrap_err();
        assert!(matches!(missing, TokenError::Missing { .. }));
        assert!(missing.to_string().contains("--token-file"), "{missing}");

        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&path).unwrap().as_str(), "ab".repeat(32));
        assert_eq!(
            format!("{:?}", read_token(&path).unwrap()),
            "Token(<redacted>)"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_token(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("run `chmod 600 {}`", path.display())) && err.contains("640"),
            "{err}"
        );

        std::fs::write(&path, "short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_token(&path).unwrap_err(),
            TokenError::TooShort { .. }
        ));
    }
}
