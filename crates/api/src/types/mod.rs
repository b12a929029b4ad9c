//! Every body the API takes or gives, exactly as it is on the wire: field names, their
//! order (kept so `--json` output reads the same), `null` for absent optional values, enums
//! as snake_case strings, timestamps as RFC 3339 strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Implements `as_str` and a padding-aware `Display` (so `{:<9}` lines up) for a unit enum.
macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
        /// Compares with the wire name, so `state == "running"` reads as the JSON does.
        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

mod apps;
mod catalog;
mod market;
mod settings;
mod status;

pub use apps::*;
pub use catalog::*;
pub use market::*;
pub use settings::*;
pub use status::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body may be logged with `{:?}`; the operator's mnemonic must not be.
    #[test]
    fn an_imported_mnemonic_never_shows_in_debug() {
        let request = ImportOperatorKey {
            mnemonic: "leader monkey parrot ring".into(),
            replace: true,
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("monkey"), "{shown}");
        assert!(shown.contains("replace: true"), "{shown}");
        // On the wire it is what the node needs, and nothing else is accepted.
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["mnemonic"], "leader monkey parrot ring");
        assert!(
            serde_json::from_value::<ImportOperatorKey>(serde_json::json!({
                "mnemonic": "x", "passphrase": "y"
            }))
            .is_err()
        );
        assert_eq!(KeySource::Operator.as_str(), "operator");
        assert_eq!(
            serde_json::to_value(VouchAction::Unfollow).unwrap(),
            serde_json::json!("unfollow")
        );
    }

    #[test]
    fn permissions_in_words() {
        let p = Permissions {
            containers: vec![ContainerPermissions {
                name: "web".into(),
                ports: vec![
                    PortPermission {
                        host: 18080,
                        container: 8080,
                        protocol: "tcp".into(),
                    },
                    PortPermission {
                        host: 5353,
                        container: 53,
                        protocol: "udp".into(),
                    },
                ],
                volumes: vec![VolumePermission {
                    name: "data".into(),
                    path: "/data".into(),
                    read_only: true,
                }],
                capabilities: vec!["NET_BIND_SERVICE".into()],
                privileged: true,
                host_network: true,
                host_pid: true,
                read_only_root: true,
                user: Some("1000:1000".into()),
            }],
            dependencies: vec!["db ^2".into()],
            secrets: 1,
            disk_mb: 10,
            memory_mb: Some(32),
            millicpus: Some(500),
            pids_limit: Some(64),
        };
        assert_eq!(
            p.in_words(),
            [
                "opens port 18080 on this host (to its web container's 8080)",
                "opens UDP port 5353 on this host (to its web container's 53)",
                "keeps data in a volume at /data (read-only)",
                "web has the Linux capability NET_BIND_SERVICE",
                "runs web PRIVILEGED: it can do anything on this host",
                "web shares this host's network",
                "web sees every process on this host",
                "web runs on a read-only root filesystem",
                "web runs as user 1000:1000 inside its container",
                "needs the app db ^2",
                "gets 1 generated secret, kept on this node",
                "is limited to 32 MiB of memory per container",
                "is limited to 0.5 CPU per container",
                "is limited to 64 processes per container",
                "needs 10 MiB of free disk",
            ]
        );
        assert!(Permissions::default().in_words().is_empty());
    }

    #[test]
    fn a_plan_in_words() {
        let app = |id: &str, version: &str| PlannedApp {
            id: id.into(),
            name: id.into(),
            version: version.into(),
        };
        let mut plan = InstallPlan {
            app: app("web", "1.0.0"),
            install_first: vec![app("db", "2.3.0"), app("api", "1.2.0")],
            catalog_version: 4,
        };
        assert_eq!(
            plan.in_words(),
            "installing web 1.0.0 will also install db 2.3.0, api 1.2.0"
        );
        plan.install_first.clear();
        assert_eq!(
            plan.in_words(),
            "installing web 1.0.0 installs nothing else: what it needs is installed"
        );
    }
}
