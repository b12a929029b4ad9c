//! Reading the mnemonic and passphrase, and deriving role keys from them.
//!
//! Input rules: `--mnemonic-file PATH`, else stdin when it is not a terminal, else a
//! no-echo prompt. There is deliberately no flag that takes a mnemonic as a value:
//! argv is visible to other processes and lands in shell history.
//!
//! Every buffer that holds secret text is a `Zeroizing` value, sized up front where we
//! can, so that growing it does not leave copies behind in freed memory.

use std::borrow::Cow;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use archy_registry::SecretKey;
use archy_registry::keys::{KeyPurpose, format_path};
use clap::{Args, ValueEnum};
use zeroize::Zeroizing;

/// Far more than any mnemonic or passphrase; bounds what we read from a pipe.
const MAX_SECRET_BYTES: u64 = 8 * 1024;

#[derive(Args, Debug)]
pub struct MnemonicInput {
    /// Read the mnemonic from this file (otherwise from stdin if piped, else a hidden prompt).
    #[arg(long, value_name = "PATH")]
    mnemonic_file: Option<PathBuf>,
}

/// A mnemonic that passed BIP39 validation, normalized to lowercase words separated by
/// single spaces.
pub struct Mnemonic {
    pub phrase: Zeroizing<String>,
    /// Where it came from, for messages ("mnemonic file /x"). Never the words themselves.
    pub source: String,
}

impl Mnemonic {
    pub fn word_count(&self) -> usize {
        self.phrase.split(' ').count()
    }
}

impl MnemonicInput {
    pub fn read(&self) -> Result<Mnemonic> {
        let (raw, source) = match &self.mnemonic_file {
            Some(path) => (
                read_secret_file(path)?,
                format!("mnemonic file {}", path.display()),
            ),
            None if !io::stdin().is_terminal() => (read_stdin()?, "mnemonic on stdin".to_owned()),
            None => (
                prompt("Mnemonic (input hidden): ")?,
                "mnemonic typed at the prompt".to_owned(),
            ),
        };
        let text = std::str::from_utf8(&raw).map_err(|_| anyhow!("{source}: not UTF-8 text"))?;
        let phrase = normalize_words(text);
        if phrase.is_empty() {
            bail!(
                "{source}: empty (give the mnemonic with --mnemonic-file, pipe it to stdin, or type it at the prompt)"
            );
        }
        check_bip39(&phrase)
            .map_err(|why| anyhow!("{source}: not a valid BIP39 mnemonic: {why}"))?;
        Ok(Mnemonic { phrase, source })
    }
}

/// Word list and checksum check, with a reason that never repeats the words.
fn check_bip39(phrase: &str) -> Result<(), String> {
    match bip39::Mnemonic::parse_in_normalized(bip39::Language::English, phrase) {
        Ok(_) => Ok(()),
        // bip39 counts words from 0; people count from 1.
        Err(bip39::Error::UnknownWord(i)) => Err(format!(
            "word {} is not in the BIP39 English word list",
            i + 1
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Lowercases and joins the words with single spaces, so that line breaks, double spaces
/// or capitals from a paper backup do not change the key.
fn normalize_words(text: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 2));
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    check_private(path, &file)?;
    read_bounded(file).with_context(|| format!("reading {}", path.display()))
}

/// Refuses a secret file that anyone but its owner may read (or write): checked on the
/// opened file, so it is the file that is read. The error names the fix.
pub fn check_private(path: &Path, file: &std::fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let who = match (mode & 0o044 != 0, mode & 0o004 != 0) {
            (_, true) => "everyone on this machine",
            (true, false) => "its group",
            _ => "others (group/other permission bits are set)",
        };
        bail!(
            "{} holds a secret but is readable or writable by {who} (mode {:04o}): \
             run `chmod 600 {}` and try again",
            path.display(),
            mode & 0o7777,
            path.display()
        );
    }
    Ok(())
}

fn read_stdin() -> Result<Zeroizing<Vec<u8>>> {
    read_bounded(io::stdin()).context("reading the mnemonic from stdin")
}

/// Reads at most [`MAX_SECRET_BYTES`] into a buffer allocated once, so it never reallocates.
fn read_bounded(reader: impl Read) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET_BYTES as usize + 1));
    reader.take(MAX_SECRET_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_SECRET_BYTES {
        bail!("more than {MAX_SECRET_BYTES} bytes; that is not a mnemonic or passphrase");
    }
    Ok(buf)
}

fn prompt(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let typed =
        Zeroizing::new(rpassword::prompt_password(text).context("reading from the terminal")?);
    Ok(Zeroizing::new(typed.as_bytes().to_vec()))
}

/// Reads the optional BIP39 passphrase. Only one trailing line break is removed: other
/// whitespace may be part of the passphrase.
fn read_passphrase(path: Option<&Path>) -> Result<Zeroizing<String>> {
    let Some(path) = path else {
        return Ok(Zeroizing::new(String::new()));
    };
    let raw = read_secret_file(path)?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| anyhow!("passphrase file {}: not UTF-8 text", path.display()))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if text.is_empty() {
        eprintln!(
            "note: passphrase file {} is empty; deriving with no passphrase",
            path.display()
        );
    }
    // BIP39 hashes the NFKD form of the passphrase; the registry expects it normalized
    // already, so a passphrase typed with composed accents still gives the standard seed.
    let mut cow = Cow::Borrowed(text);
    bip39::Mnemonic::normalize_utf8_cow(&mut cow);
    Ok(Zeroizing::new(cow.into_owned()))
}

/// The role whose key to derive; each has its own hardened branch (docs/keys.md).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    Root,
    Catalog,
    Developer,
}

impl RoleArg {
    pub fn purpose(self) -> KeyPurpose {
        match self {
            RoleArg::Root => KeyPurpose::Root,
            RoleArg::Catalog => KeyPurpose::Catalog,
            RoleArg::Developer => KeyPurpose::Developer,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RoleArg::Root => "root",
            RoleArg::Catalog => "catalog",
            RoleArg::Developer => "developer",
        }
    }
}

/// Everything needed to derive one role key: where the secrets come from, and which key.
#[derive(Args, Debug)]
pub struct KeyInput {
    #[command(flatten)]
    mnemonic: MnemonicInput,
    /// Read the optional BIP39 passphrase from this file (default: no passphrase).
    #[arg(long, value_name = "PATH")]
    passphrase_file: Option<PathBuf>,
    /// Which role key to derive.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Key index within the role (bumped when a keyholder replaces a key, same mnemonic).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(..0x8000_0000))]
    index: u32,
}

/// A derived signing key and the path it came from.
pub struct DerivedKey {
    pub key: SecretKey,
    pub path: String,
}

impl KeyInput {
    pub fn derive(&self) -> Result<DerivedKey> {
        let mnemonic = self.mnemonic.read()?;
        let passphrase = read_passphrase(self.passphrase_file.as_deref())?;
        let purpose = self.role.purpose();
        let key = SecretKey::from_mnemonic(&mnemonic.phrase, &passphrase, purpose, self.index)
            .with_context(|| format!("{}: deriving the key", mnemonic.source))?;
        Ok(DerivedKey {
            key,
            path: format_path(&purpose.path(self.index)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyholder.mnemonic");
        std::fs::write(&path, "abandon about\n").unwrap();
        for (mode, who) in [
            (0o644, "everyone on this machine"),
            (0o640, "its group"),
            (0o604, "everyone on this machine"),
            (0o620, "others"),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = format!("{:#}", read_secret_file(&path).unwrap_err());
            assert!(
                err.contains(&format!("run `chmod 600 {}`", path.display()))
                    && err.contains(who)
                    && err.contains(&format!("mode {mode:04o}")),
                "{err}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(&read_secret_file(&path).unwrap()[..], b"abandon about\n");
        }
    }

    #[test]
    fn words_are_normalized() {
        assert_eq!(
            normalize_words("  Abandon\tABOUT\r\n\n zoo ").as_str(),
            "abandon about zoo"
        );
        assert_eq!(normalize_words(" \n ").as_str(), "");
    }

    #[test]
    fn unknown_word_is_reported_by_position_not_by_text() {
        let err = check_bip39("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon secretword").unwrap_err();
        assert!(err.contains("word 12"), "{err}");
        assert!(!err.contains("secretword"), "{err}");
    }
}
