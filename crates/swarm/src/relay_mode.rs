//! Which iroh relay servers the endpoint uses ([`RelayMode`]), and the check every relay URL
//! passes before the endpoint is told about it ([`check_relay_url`]).
//!
//! A relay forwards end-to-end encrypted QUIC packets between two endpoints that cannot
//! reach each other directly (home NATs); iroh tries to punch a direct path through it and
//! keeps the relay as the fallback. A relay sees who talks to whom, never what: the
//! connection is authenticated by the endpoint ids at both ends.
//!
//! Relay URLs come from the operator (node config, `archy origin run --relay-mode`) and from
//! other nodes (tracker announcements, static peers), and a URL from a node is hostile
//! input: it makes this endpoint open an HTTP(S) connection to that host. So every one is
//! bounded in length and must be plain `http`/`https` with a host, without userinfo, query
//! or fragment.

use std::fmt;
use std::str::FromStr;

use iroh::RelayUrl;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Longest relay URL accepted, in bytes.
pub const MAX_RELAY_URL_LEN: usize = 256;

/// Most relay servers one configuration may list.
pub const MAX_RELAYS: usize = 16;

/// The relay servers the endpoint uses.
///
/// In config files and on the command line: `"disabled"`, `"default"`, or a list of relay
/// URLs (TOML `["https://relay.example:443", …]`, command line comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RelayMode {
    /// No relay: only direct addresses (loopback, LAN, public IPs). Tests and air-gapped
    /// sites; nodes behind two different home NATs cannot reach each other.
    #[default]
    Disabled,
    /// The public relays of iroh's maintainers (number 0).
    Default,
    /// The operator's own relays (`archy relay run`), by URL.
    Custom(Vec<RelayUrl>),
}

/// A relay URL that does not pass [`check_relay_url`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relay URL {shown:?}: {reason}")]
pub struct BadRelayUrl {
    /// The URL as given, cut to a printable length.
    pub shown: String,
    pub reason: String,
}

/// Parses and checks a relay URL: at most [`MAX_RELAY_URL_LEN`] bytes, `http` or `https`,
/// a host, no userinfo (it would be sent to the relay as credentials), no query or
/// fragment (iroh adds its own path and query).
pub fn check_relay_url(text: &str) -> Result<RelayUrl, BadRelayUrl> {
    let bad = |reason: &str| BadRelayUrl {
        shown: text.chars().take(80).collect(),
        reason: reason.to_owned(),
    };
    if text.len() > MAX_RELAY_URL_LEN {
        return Err(bad(&format!(
            "{} bytes is longer than {MAX_RELAY_URL_LEN}",
            text.len()
        )));
    }
    let url = RelayUrl::from_str(text).map_err(|_| bad("not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("only https:// and http:// relays are used"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("userinfo (user:password@) is not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    Ok(url)
}

impl RelayMode {
    /// A custom mode from URLs, each checked; an empty list or more than [`MAX_RELAYS`] is
    /// refused (say `disabled` to use none).
    pub fn custom<'a>(urls: impl IntoIterator<Item = &'a str>) -> Result<Self, BadRelayUrl> {
        let urls = urls
            .into_iter()
            .map(check_relay_url)
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err(BadRelayUrl {
                shown: String::new(),
                reason: "an empty list of relays; say \"disabled\" to use none".into(),
            });
        }
        if urls.len() > MAX_RELAYS {
            return Err(BadRelayUrl {
                shown: urls[0].to_string(),
                reason: format!("{} relays, at most {MAX_RELAYS} are used", urls.len()),
            });
        }
        Ok(RelayMode::Custom(urls))
    }

    pub(crate) fn to_iroh(&self) -> iroh::RelayMode {
        match self {
            RelayMode::Disabled => iroh::RelayMode::Disabled,
            RelayMode::Default => iroh::RelayMode::Default,
            RelayMode::Custom(urls) => iroh::RelayMode::custom(urls.iter().cloned()),
        }
    }
}

impl fmt::Display for RelayMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayMode::Disabled => f.write_str("disabled"),
            RelayMode::Default => f.write_str("default"),
            RelayMode::Custom(urls) => {
                let urls: Vec<String> = urls.iter().map(ToString::to_string).collect();
                f.write_str(&urls.join(","))
            }
        }
    }
}

/// `disabled`, `default`, or comma-separated relay URLs (the command line's form).
impl FromStr for RelayMode {
    type Err = BadRelayUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "disabled" => Ok(RelayMode::Disabled),
            "default" => Ok(RelayMode::Default),
            other => RelayMode::custom(other.split(',').map(str::trim)),
        }
    }
}

impl Serialize for RelayMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RelayMode::Disabled => serializer.serialize_str("disabled"),
            RelayMode::Default => serializer.serialize_str("default"),
            RelayMode::Custom(urls) => serializer.collect_seq(urls.iter().map(|u| u.as_str())),
        }
    }
}

/// `"disabled"`, `"default"` or a list of relay URLs (config files).
impl<'de> Deserialize<'de> for RelayMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;

        impl<'de> Visitor<'de> for ModeVisitor {
            type Value = RelayMode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"disabled\", \"default\" or a list of relay URLs")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RelayMode, E> {
                match v {
                    "disabled" => Ok(RelayMode::Disabled),
                    "default" => Ok(RelayMode::Default),
                    _ => Err(E::custom(format!(
                        "relay_mode {:?}: expected \"disabled\", \"default\" or a list of relay URLs",
                        v.chars().take(80).collect::<String>()
                    ))),
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RelayMode, A::Error> {
                let mut urls: Vec<String> = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    // Bounded before it is collected: a config file is not a place for more.
                    if urls.len() == MAX_RELAYS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_RELAYS} relays; at most {MAX_RELAYS} are used"
                        )));
                    }
                    urls.push(url);
                }
                RelayMode::custom(urls.iter().map(String::as_str)).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(ModeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_from_peers_are_bounded_and_plain() {
        assert!(check_relay_url("https://relay.example:443").is_ok());
        assert!(check_relay_url("http://127.0.0.1:3340/").is_ok());
        assert!(check_relay_url("https://relay.example./").is_ok());
        let refused = [
            ("ftp://relay.example", "only https:// and http://"),
            ("file:///etc/passwd", "only https:// and http://"),
            ("javascript:alert(1)", "only https:// and http://"),
            ("https://user:pw@relay.example", "userinfo"),
            ("https://user@relay.example", "userinfo"),
            ("https://relay.example/?x=1", "query or fragment"),
            ("https://relay.example/#x", "query or fragment"),
            ("relay.example", "not a URL"),
            ("", "not a URL"),
        ];
        for (url, why) in refused {
            let err = check_relay_url(url).expect_err(url);
            assert!(err.to_string().contains(why), "{url}: {err}");
        }
        let long = format!("https://{}.example", "a".repeat(MAX_RELAY_URL_LEN));
        let err = check_relay_url(&long).unwrap_err();
        assert!(err.to_string().contains("longer than 256"), "{err}");
        assert!(
            err.shown.len() <= 80,
            "the error does not echo the whole input"
        );
    }

    #[test]
    fn modes_parse_from_config_and_command_line() {
        #[derive(Deserialize)]
        struct C {
            relay_mode: RelayMode,
        }
        let parse = |text: &str| toml::from_str::<C>(text).map(|c| c.relay_mode);
        assert_eq!(
            parse("relay_mode = \"disabled\"").unwrap(),
            RelayMode::Disabled
        );
        assert_eq!(
            parse("relay_mode = \"default\"").unwrap(),
            RelayMode::Default
        );
        let custom =
            parse("relay_mode = [\"https://a.example\", \"http://10.0.0.1:3340\"]").unwrap();
        assert_eq!(
            custom.to_string(),
            "https://a.example/,http://10.0.0.1:3340/"
        );
        for (text, why) in [
            ("relay_mode = \"on\"", "expected \"disabled\", \"default\""),
            ("relay_mode = []", "empty list"),
            ("relay_mode = [\"ftp://a.example\"]", "only https://"),
            ("relay_mode = 3", "a list of relay URLs"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        let many: Vec<String> = (0..=MAX_RELAYS)
            .map(|i| format!("\"https://r{i}.example\""))
            .collect();
        let err = parse(&format!("relay_mode = [{}]", many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 16"), "{err}");

        assert_eq!("default".parse::<RelayMode>().unwrap(), RelayMode::Default);
        assert_eq!(
            "https://a.example, https://b.example"
                .parse::<RelayMode>()
                .unwrap()
                .to_string(),
            "https://a.example/,https://b.example/"
        );
        assert!("https://a.example,".parse::<RelayMode>().is_err());
    }
}
