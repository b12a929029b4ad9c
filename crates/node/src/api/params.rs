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

/// Where a log starts (`?since=`): an RFC 3339 time, or a duration before now (`90s`,
/// `10m`, `2h`, `7d`; a whole number and one unit, at most [`SINCE_MAX_DAYS`] days). Kept
/// as a time: what reaches Podman is rendered from it, never the text the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since(pub chrono::DateTime<chrono::Utc>);

/// The longest duration `since` may name.
pub const SINCE_MAX_DAYS: u64 = 3650;

impl Since {
    /// `raw` read at `now` (a duration counts back from it).
    fn parse_at(raw: &str, now: chrono::DateTime<chrono::Utc>) -> Result<Self, String> {
        const RULE: &str = "must be an RFC 3339 time (2030-01-01T12:00:00Z) or a duration \
                            such as 90s, 10m, 2h or 7d";
        if raw.len() > 64 {
            return Err(RULE.into());
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
            let at = at.with_timezone(&chrono::Utc);
            if at.timestamp() < 0 {
                return Err("must not be before 1970".into());
            }
            return Ok(Self(at));
        }
        if !raw.is_ascii() {
            return Err(RULE.into());
        }
        let split = raw.len().saturating_sub(1);
        let (digits, unit) = raw.split_at(split);
        let seconds_per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(RULE.into()),
        };
        if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RULE.into());
        }
        let n: u64 = digits.parse().map_err(|_| RULE.to_owned())?;
        let seconds = n.saturating_mul(seconds_per);
        if seconds > SINCE_MAX_DAYS * 86_400 {
            return Err(format!("must be at most {SINCE_MAX_DAYS} days back"));
        }
        let back = chrono::Duration::seconds(i64::try_from(seconds).map_err(|_| RULE.to_owned())?);
        Ok(Self(now - back))
    }
}

impl Param for Since {
    const WHAT: &'static str = "since";
    fn parse(raw: &str) -> Result<Self, String> {
        Self::parse_at(raw, chrono::Utc::now())
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
    fn since_is_a_time_or_a_duration_before_now() {
        let now = chrono::DateTime::parse_from_rfc3339("2030-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let at = |s: &str| Since::parse_at(s, now).map(|s| s.0.to_rfc3339());
        assert_eq!(at("10m").unwrap(), "2030-06-01T11:50:00+00:00");
        assert_eq!(at("2h").unwrap(), "2030-06-01T10:00:00+00:00");
        assert_eq!(at("90s").unwrap(), "2030-06-01T11:58:30+00:00");
        assert_eq!(at("7d").unwrap(), "2030-05-25T12:00:00+00:00");
        assert_eq!(at("0s").unwrap(), "2030-06-01T12:00:00+00:00");
        assert_eq!(
            at("2030-01-02T03:04:05+02:00").unwrap(),
            "2030-01-02T01:04:05+00:00"
        );
        assert_eq!(
            at("2030-01-02T03:04:05.250Z").unwrap(),
            "2030-01-02T03:04:05.250+00:00"
        );
        assert!(at("3650d").is_ok());
        for bad in [
            "",
            "m",
            "10",
            "10 m",
            "-10m",
            "+10m",
            "10M",
            "1h30m",
            "10w",
            "3651d",
            "99999999999d",
            "--follow",
            "--since=1",
            "10m -- x",
            "yesterday",
            "2030-01-02",
            "2030-01-02 03:04:05",
            "1969-12-31T23:59:59Z",
            "1é",
            "é",
            "2030-01-02T03:04:05Z\n",
            &"1".repeat(100),
        ] {
            assert!(at(bad).is_err(), "{bad:?} must be refused");
        }
        // The refusal is a 400 naming the parameter and the value.
        let err = parse::<Since>("last tuesday").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(
            err.message
                .starts_with("since \"last tuesday\" is invalid: must be an RFC 3339"),
            "{}",
            err.message
        );
    }

    #[test]
    fn errors_name_the_parameter_and_the_rule() {
        let err = parse::<AppId>("../../etc").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("app id"), "{}", err.message);
        assert!(err.message.contains("a-z"), "{}", err.message);
    }
}
