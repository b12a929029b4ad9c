//! One type per kind of path or query parameter. Each parses the percent-decoded text into
//! a value that can only hold what its grammar allows, so no handler ever sees `..`, `/`,
//! or a leading `-` in an id, and the rejection is a 400 naming the parameter.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::Deserialize;

use crate::node::{ErrorKind, NodeError};

/// A parameter kind: its name in error messages and its grammar.
pub trait Param: Sized {
    const WHAT: &'static str;
    fn parse(raw: &str) -> Result<Self, String>;
}

/// `Valid<T>`: the route's single path parameter, parsed as `T`.
pub struct Valid<T>(pub T);

impl<S: Send + Sync, T: Param> FromRequestParts<S> for Valid<T> {
    type Rejection = NodeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, NodeError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| NodeError::new(ErrorKind::Invalid, e.body_text()))?;
        parse::<T>(&raw).map(Valid)
    }
}

pub fn parse<T: Param>(raw: &str) -> Result<T, NodeError> {
    T::parse(raw).map_err(|rule| {
        NodeError::new(
            ErrorKind::Invalid,
            format!("{} {:?} is invalid: {rule}", T::WHAT, shorten(raw)),
        )
    })
}

fn shorten(raw: &str) -> String {
    if raw.chars().count() > 80 {
        format!("{}…", raw.chars().take(80).collect::<String>())
    } else {
        raw.to_owned()
    }
}

/// The name grammar manifests use for app ids and artifact names (one grammar, the
/// registry's).
fn name_rule(raw: &str) -> Result<(), String> {
    archy_registry::grammar::check_name("", raw).map_err(|e| e.rule)
}

fn hex_rule(raw: &str, min: usize, max: usize) -> Result<(), String> {
    let ok = (min..=max).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    ok.then_some(())
        .ok_or_else(|| format!("must be {min}-{max} lowercase hex digits"))
}

/// An installed app's id on this node: a catalog id (`hello`) or a third-party app's local
/// id (`notes.<16 hex of the publisher's key>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppId(pub String);

impl Param for AppId {
    const WHAT: &'static str = "app id";
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.split_once('.') {
            None => name_rule(raw),
            Some((name, publisher)) => name_rule(name).and_then(|()| {
                hex_rule(publisher, 16, 16).map_err(|rule| format!("publisher part {rule}"))
            }),
        }
        .map(|()| Self(raw.to_owned()))
    }
}

/// An app id as a manifest (and a marketplace listing) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestId(pub String);

impl Param for ManifestId {
    const WHAT: &'static str = "app id";
    fn parse(raw: &str) -> Result<Self, String> {
        name_rule(raw).map(|()| Self(raw.to_owned()))
    }
}

/// An artifact name as a manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactName(pub String);

impl Param for ArtifactName {
    const WHAT: &'static str = "artifact name";
    fn parse(raw: &str) -> Result<Self, String> {
        name_rule(raw).map(|()| Self(raw.to_owned()))
    }
}

/// A container's name as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerName(pub String);

impl Param for ContainerName {
    const WHAT: &'static str = "container name";
    fn parse(raw: &str) -> Result<Self, String> {
        name_rule(raw).map(|()| Self(raw.to_owned()))
    }
}

/// A Nostr public key, npub or 64 hex; kept as the canonical hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub String);

impl Param for Key {
    const WHAT: &'static str = "key";
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > 100 {
            return Err("is too long for a Nostr key".into());
        }
        archy_marketplace::parse_nostr_key(raw)
            .map(|k| Self(k.to_hex()))
            .map_err(|_| "must be a Nostr public key (npub1… or 64 hex digits)".into())
    }
}

/// A prefix of a publisher's Nostr key in hex, to pick one of several listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(pub String);

impl Param for KeyPrefix {
    const WHAT: &'static str = "publisher";
    fn parse(raw: &str) -> Result<Self, String> {
        hex_rule(raw, 4, 64).map(|()| Self(raw.to_owned()))
    }
}

/// A publication session the node handed out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(pub String);

impl Param for SessionId {
    const WHAT: &'static str = "publication session";
    fn parse(raw: &str) -> Result<Self, String> {
        hex_rule(raw, 32, 32).map(|()| Self(raw.to_owned()))
    }
}

/// A BLAKE3 hash in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blake3Hex(pub String);

impl Param for Blake3Hex {
    const WHAT: &'static str = "blake3 hash";
    fn parse(raw: &str) -> Result<Self, String> {
        hex_rule(raw, 64, 64).map(|()| Self(raw.to_owned()))
    }
}

/// Deserializes an optional query field through its [`Param`] grammar.
pub fn deserialize_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Param,
{
    Option::<String>::deserialize(deserializer)?
        .map(|raw| {
            T::parse(&raw).map_err(|rule| serde::de::Error::custom(format!("{} {rule}", T::WHAT)))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_hold_only_their_grammar() {
        for good in ["hello", "a", "notes.0123456789abcdef", "my-app2"] {
            assert!(AppId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../../../victim",
            "..",
            ".",
            "hello/../x",
            "-rf",
            "--purge",
            "Hello",
            "hello.",
            "hello.0123",
            "hello.0123456789ABCDEF",
            "a.b.c",
            "hello\n",
            "hello%2F",
            &"a".repeat(64),
        ] {
            assert!(AppId::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(ManifestId::parse("notes.0123456789abcdef").is_err());
    }

    #[test]
    fn keys_and_hashes() {
        let hex = "a".repeat(64);
        assert_eq!(Key::parse(&hex).unwrap().0, hex);
        assert!(Key::parse("npub1nothing").is_err());
        assert!(Key::parse(&"a".repeat(200)).is_err());
        assert!(Blake3Hex::parse(&hex).is_ok());
        assert!(Blake3Hex::parse(&"A".repeat(64)).is_err());
        assert!(KeyPrefix::parse("abcd").is_ok());
        assert!(KeyPrefix::parse("ab").is_err());
        assert!(SessionId::parse(&"0".repeat(32)).is_ok());
        assert!(SessionId::parse("../x").is_err());
    }

    #[test]
    fn errors_name_the_parameter_and_the_rule() {
        let err = parse::<AppId>("../../etc").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("app id"), "{}", err.message);
        assert!(err.message.contains("a-z"), "{}", err.message);
    }
}
