//! Keys: BIP39 mnemonic → seed → SLIP-0010 ed25519 at a hardened path, and the
//! did:key form of public keys that Archipelago uses as key ids.
//!
//! Derivation paths (all hardened, as SLIP-0010 ed25519 requires):
//!
//! | purpose                    | path                          |
//! |----------------------------|-------------------------------|
//! | root role key              | `m/44'/7368'/0'/INDEX'`       |
//! | catalog role key           | `m/44'/7368'/1'/INDEX'`       |
//! | third-party developer DID  | `m/44'/7368'/2'/INDEX'`       |
//!
//! `7368` is Archipelago's private coin-type number; `INDEX` starts at 0 and is bumped
//! when a keyholder replaces a key without changing mnemonic.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, Verifier};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Archipelago's SLIP-0044-style coin type, hardened in every path.
pub const COIN_TYPE: u32 = 7368;

/// multicodec prefix of an ed25519 public key (0xed, varint-encoded).
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// The key roles that have their own derivation branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    Root,
    Catalog,
    Developer,
}

impl KeyPurpose {
    /// The full hardened SLIP-0010 path (indexes without the hardened bit).
    pub fn path(self, index: u32) -> [u32; 4] {
        let branch = match self {
            KeyPurpose::Root => 0,
            KeyPurpose::Catalog => 1,
            KeyPurpose::Developer => 2,
        };
        [44, COIN_TYPE, branch, index]
    }
}

impl FromStr for KeyPurpose {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "root" => Ok(Self::Root),
            "catalog" => Ok(Self::Catalog),
            "developer" => Ok(Self::Developer),
            other => Err(Error::Key(format!(
                "unknown key role {other:?} (expected root, catalog or developer)"
            ))),
        }
    }
}

/// Renders a path like `m/44'/7368'/1'/0'`.
pub fn format_path(path: &[u32]) -> String {
    let mut out = String::from("m");
    for i in path {
        out.push_str(&format!("/{i}'"));
    }
    out
}

/// Parses `m/44'/7368'/1'/0'` (every component must be hardened).
pub fn parse_path(path: &str) -> Result<Vec<u32>> {
    let mut parts = path.split('/');
    if parts.next() != Some("m") {
        return Err(Error::Key(format!("path {path:?} must start with m/")));
    }
    parts
        .map(|p| {
            let digits = p
                .strip_suffix('\'')
                .or_else(|| p.strip_suffix('h'))
                .ok_or_else(|| {
                    Error::Key(format!(
                        "path component {p:?} is not hardened; ed25519 (SLIP-0010) only has hardened children"
                    ))
                })?;
            let index: u32 = digits
                .parse()
                .map_err(|_| Error::Key(format!("path component {p:?} is not a number")))?;
            if index >= 0x8000_0000 {
                return Err(Error::Key(format!("path component {p:?} is out of range")));
            }
            Ok(index)
        })
        .collect()
}

/// An ed25519 public key. Displays and parses as did:key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// A key id: the did:key string of a public key.
pub type KeyId = String;

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|e| Error::Key(format!("not an ed25519 public key: {e}")))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    pub fn from_hex(s: &str) -> Result<Self> {
        let bytes: [u8; 32] = hex::decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Key(format!("{s:?} is not 32 bytes of hex")))?;
        Self::from_bytes(&bytes)
    }

    /// `did:key:z6Mk…` — multicodec 0xed01 + key, base58btc, multibase prefix `z`.
    pub fn did_key(&self) -> KeyId {
        let mut raw = Vec::with_capacity(34);
        raw.extend_from_slice(&ED25519_MULTICODEC);
        raw.extend_from_slice(self.0.as_bytes());
        format!("did:key:z{}", bs58::encode(raw).into_string())
    }

    pub fn from_did_key(did: &str) -> Result<Self> {
        let encoded = did
            .strip_prefix("did:key:z")
            .ok_or_else(|| Error::Key(format!("{did:?} is not a base58btc did:key")))?;
        let raw = bs58::decode(encoded)
            .into_vec()
            .map_err(|e| Error::Key(format!("{did:?}: bad base58: {e}")))?;
        let key = raw
            .strip_prefix(&ED25519_MULTICODEC)
            .ok_or_else(|| Error::Key(format!("{did:?} is not an ed25519 did:key")))?;
        let bytes: [u8; 32] = key
            .try_into()
            .map_err(|_| Error::Key(format!("{did:?} does not hold a 32-byte key")))?;
        Self::from_bytes(&bytes)
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        // verify_strict refuses small-order keys and malleable signatures.
        self.0.verify_strict(message, &sig).is_ok() && self.0.verify(message, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.did_key())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.did_key())
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_did_key(s)
    }
}

/// An ed25519 signing key. Never printed; zeroized on drop (ed25519-dalek's `zeroize`).
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(bytes))
    }

    /// SLIP-0010 ed25519 derivation from a BIP39 seed at a hardened path.
    pub fn derive_from_seed(seed: &[u8], path: &[u32]) -> Self {
        let mut bytes = slip10_ed25519::derive_ed25519_private_key(seed, path);
        let key = Self::from_bytes(&bytes);
        bytes.zeroize();
        key
    }

    /// Mnemonic (+ optional passphrase) → BIP39 seed → the key for `purpose` at `index`.
    pub fn from_mnemonic(
        mnemonic: &str,
        passphrase: &str,
        purpose: KeyPurpose,
        index: u32,
    ) -> Result<Self> {
        let seed = mnemonic_seed(mnemonic, passphrase)?;
        Ok(Self::derive_from_seed(seed.as_ref(), &purpose.path(index)))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public: {})", self.public())
    }
}

/// Validates a BIP39 English mnemonic (word list and checksum) and returns its 64-byte seed.
pub fn mnemonic_seed(mnemonic: &str, passphrase: &str) -> Result<Zeroizing<[u8; 64]>> {
    // Paper backups come back with capitals and line breaks; the words are what count.
    let words = Zeroizing::new(
        mnemonic
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let parsed = bip39::Mnemonic::parse_in(bip39::Language::English, words.as_str())
        .map_err(|e| Error::Key(format!("not a valid BIP39 mnemonic: {e}")))?;
    // `to_seed` NFKD-normalizes the passphrase as BIP39 requires.
    Ok(Zeroizing::new(parsed.to_seed(passphrase)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive_hex(seed_hex: &str, path: &str) -> (String, String) {
        let seed = hex::decode(seed_hex).unwrap();
        let path = parse_path(path).unwrap();
        let mut private = slip10_ed25519::derive_ed25519_private_key(&seed, &path);
        let key = SecretKey::from_bytes(&private);
        let out = (hex::encode(private), key.public().to_hex());
        private.zeroize();
        out
    }

    /// SLIP-0010 published test vector 1 for ed25519.
    #[test]
    fn slip10_vector_1() {
        let seed = "000102030405060708090a0b0c0d0e0f";
        let cases = [
            (
                "m",
                "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
                "a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed",
            ),
            (
                "m/0'",
                "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
                "8c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c",
            ),
            (
                "m/0'/1'/2'/2'/1000000000'",
                "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
                "3c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a",
            ),
        ];
        for (path, private, public) in cases {
            assert_eq!(
                derive_hex(seed, path),
                (private.into(), public.into()),
                "{path}"
            );
        }
    }

    /// SLIP-0010 published test vector 2 for ed25519.
    #[test]
    fn slip10_vector_2() {
        let seed = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542";
        assert_eq!(
            derive_hex(seed, "m/0'/2147483647'/1'/2147483646'/2'"),
            (
                "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d".into(),
                "47150c75db263559a70d5778bf36abbab30fb061ad69f69ece61a72b0cfa4fc0".into()
            )
        );
    }

    #[test]
    fn did_key_round_trip_and_known_prefix() {
        let key = SecretKey::from_bytes(&[7; 32]).public();
        let did = key.did_key();
        assert!(did.starts_with("did:key:z6Mk"), "{did}");
        assert_eq!(PublicKey::from_did_key(&did).unwrap(), key);
        assert!(PublicKey::from_did_key("did:key:zQ3s").is_err());
        assert!(PublicKey::from_did_key("did:web:example.com").is_err());
    }

    #[test]
    fn mnemonic_checksum_is_enforced() {
        let good = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        assert!(mnemonic_seed(good, "").is_ok());
        let bad = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon";
        let err = mnemonic_seed(bad, "").unwrap_err().to_string();
        assert!(err.contains("mnemonic"), "{err}");
    }

    #[test]
    fn role_keys_differ_and_are_reproducible() {
        let m = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        let root = SecretKey::from_mnemonic(m, "", KeyPurpose::Root, 0).unwrap();
        let catalog = SecretKey::from_mnemonic(m, "", KeyPurpose::Catalog, 0).unwrap();
        let again = SecretKey::from_mnemonic(m, "", KeyPurpose::Root, 0).unwrap();
        assert_ne!(root.public(), catalog.public());
        assert_eq!(root.public(), again.public());
        let with_pass = SecretKey::from_mnemonic(m, "TREZOR", KeyPurpose::Root, 0).unwrap();
        assert_ne!(root.public(), with_pass.public());
    }

    #[test]
    fn paths_must_be_hardened() {
        assert_eq!(
            parse_path("m/44'/7368'/1'/0'").unwrap(),
            vec![44, 7368, 1, 0]
        );
        assert!(parse_path("m/44/0'").is_err());
        assert!(parse_path("44'/0'").is_err());
        assert_eq!(
            format_path(&KeyPurpose::Catalog.path(0)),
            "m/44'/7368'/1'/0'"
        );
    }
}
