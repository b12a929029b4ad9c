//! The admin password: an argon2id hash (PHC string, default parameters) in
//! `<data_dir>/admin.password`, 0600, written atomically; refused when others can read it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use zeroize::Zeroizing;

/// File name of the admin password hash inside the data dir.
pub const PASSWORD_FILE: &str = "admin.password";
/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (hashing is not made to take megabytes).
pub const MAX_LEN: usize = 1024;

pub fn password_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PASSWORD_FILE)
}

/// Whether `password` is acceptable as the admin password; why not otherwise.
pub fn check_strength(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(format!("the password needs at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("the password may have at most {MAX_LEN} bytes"));
    }
    if password.chars().any(char::is_control) {
        return Err("the password may not contain control characters".into());
    }
    Ok(())
}

/// The argon2id hash of `password` as a PHC string, with a fresh random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc` (constant-time in the hash comparison).
pub fn verify(phc: &str, password: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The stored hash, `None` when no password is set. A file others can read is refused.
pub fn read(data_dir: &Path) -> anyhow::Result<Option<Zeroizing<String>>> {
    let path = password_path(data_dir);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {:o}): run `chmod 600` on it or set the password again",
            path.display(),
            mode & 0o777
        );
    }
    let mut text = Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut std::io::Read::take(file, 4096), &mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let phc = Zeroizing::new(text.trim().to_owned());
    PasswordHash::new(&phc)
        .map_err(|e| anyhow::anyhow!("{} is not a password hash: {e}", path.display()))?;
    Ok(Some(phc))
}

/// Whether an existing password may be replaced by [`write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Set or replace (`archy admin password`).
    Replace,
    /// Only when none is set (the first-run page): fails if one appeared meanwhile.
    FirstOnly,
}

/// Hashes `password` and stores it: written to a temporary 0600 file in the data dir, synced,
/// then moved into place (rename, or a hard link that fails if a password exists for
/// [`Mode::FirstOnly`]), so a crash leaves the old file or the new one, never half of one.
pub fn write(data_dir: &Path, password: &str, mode: Mode) -> anyhow::Result<()> {
    check_strength(password).map_err(anyhow::Error::msg)?;
    let phc = hash(password)?;
    let path = password_path(data_dir);
    let tmp = data_dir.join(format!(
        ".{PASSWORD_FILE}.{}.tmp",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let result = (|| -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(format!("{phc}\n").as_bytes())?;
        file.sync_all()?;
        match mode {
            Mode::Replace => std::fs::rename(&tmp, &path)
                .with_context(|| format!("moving the password into {}", path.display()))?,
            Mode::FirstOnly => match std::fs::hard_link(&tmp, &path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    bail!("an admin password is already set")
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("linking the password into {}", path.display()));
                }
            },
        }
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_stored_as_argon2id_0600_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let started = std::time::Instant::now();
        write(dir.path(), "correct horse", Mode::FirstOnly).unwrap();
        eprintln!("argon2id hash (default params): {:?}", started.elapsed());
        let path = password_path(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("$argon2id$"), "{text}");
        assert!(!text.contains("correct horse"));
        let phc = read(dir.path()).unwrap().unwrap();
        let started = std::time::Instant::now();
        assert!(verify(&phc, "correct horse"));
        eprintln!("argon2id verify (default params): {:?}", started.elapsed());
        assert!(!verify(&phc, "correct horse "));
        assert!(!verify(&phc, ""));
        assert!(!verify("not a hash", "correct horse"));
        // No temporary files stay behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [PASSWORD_FILE]);
    }

    #[test]
    fn the_first_run_cannot_replace_a_password_but_the_operator_can() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "first password", Mode::FirstOnly).unwrap();
        let err = write(dir.path(), "second password", Mode::FirstOnly).unwrap_err();
        assert!(err.to_string().contains("already set"), "{err}");
        assert!(verify(
            &read(dir.path()).unwrap().unwrap(),
            "first password"
        ));
        write(dir.path(), "second password", Mode::Replace).unwrap();
        assert!(verify(
            &read(dir.path()).unwrap().unwrap(),
            "second password"
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn weak_passwords_and_readable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), "short", Mode::Replace).is_err());
        assert!(write(dir.path(), &"x".repeat(MAX_LEN + 1), Mode::Replace).is_err());
        assert!(write(dir.path(), "with\nnewline", Mode::Replace).is_err());
        assert!(read(dir.path()).unwrap().is_none());
        write(dir.path(), "long enough", Mode::Replace).unwrap();
        let path = password_path(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("readable by others"), "{err}");
        std::fs::write(&path, "garbage").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read(dir.path()).is_err());
    }
}
