//! A publish-only node (`publish_only = true`, or `archy node run --publish-only`): a
//! developer's node that serves their artifacts as the origin of their publications and
//! never installs anything, so it needs no signing ceremony and pins no root.
//!
//! Three locks keep it from installing. Its trust anchor is a root whose only key is drawn
//! at start and dropped at once: no catalog can ever verify under it, so the node never
//! holds one. Every path that installs, updates or adopts an app refuses first
//! ([`Node::refuse_installs`]), third-party listings included, which need no catalog.
//! And its orchestrator is offline (`Orchestrator::offline`): it runs no podman command at
//! all, so the node needs no Podman service either. A data dir with apps installed is
//! refused at start: those apps would be left unmanaged.

use archy_registry::{Envelope, PayloadType, Root, SecretKey, VerifiedRoot};
use chrono::{Duration, Utc};

use super::{ErrorKind, Node, NodeError};

/// A verified root nobody holds a key of: its key is random and forgotten on return.
pub(super) fn unusable_anchor() -> anyhow::Result<VerifiedRoot> {
    let key = SecretKey::from_bytes(&rand::random::<[u8; 32]>());
    let root = Root::new(
        1,
        Utc::now() + Duration::days(365 * 100),
        &[key.public()],
        1,
        &[key.public()],
        1,
    )?;
    let mut envelope = Envelope::unsigned(PayloadType::Root, &root.to_json());
    envelope.sign(&key)?;
    Ok(VerifiedRoot::trust_anchor(&envelope.to_bytes())?)
}

impl Node {
    /// Whether this node is publish-only.
    pub fn publish_only(&self) -> bool {
        self.config.publish_only
    }

    /// Refuses what needs Podman (an install, update or adoption) on a node that runs none
    /// (publish-only or fetch-only).
    pub(super) fn refuse_installs(&self, what: &str) -> Result<(), NodeError> {
        self.refuse_publish_only(what)?;
        if self.config.fetch_only {
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!(
                    "this node is fetch-only (`fetch_only` in its config): it fetches and \
                     serves the catalog's artifacts but installs nothing, so it cannot {what}"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses `what` on a publish-only node.
    pub(super) fn refuse_publish_only(&self, what: &str) -> Result<(), NodeError> {
        if !self.config.publish_only {
            return Ok(());
        }
        Err(NodeError::new(
            ErrorKind::Refused,
            format!(
                "this node is publish-only (`publish_only` in its config): it installs nothing, \
                 so it refuses to {what}; install on a node that pins the network's root"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each anchor has its own key, which nothing keeps: a catalog signed by any key
    /// anyone holds does not verify under it.
    #[test]
    fn the_anchor_of_a_publish_only_node_verifies_no_catalog() {
        let a = unusable_anchor().unwrap();
        let b = unusable_anchor().unwrap();
        let catalog_keys = |r: &VerifiedRoot| r.root().role_keys(archy_registry::Role::Catalog);
        assert_ne!(catalog_keys(&a), catalog_keys(&b));
        let mut state = archy_registry::TrustState::new(a.clone());
        assert!(state.catalog().is_none());
        // A catalog signed by some other key is refused by the anchor's threshold.
        let stranger = SecretKey::from_bytes(&[9; 32]);
        let catalog = archy_registry::Catalog::new(
            1,
            Utc::now() + Duration::days(1),
            None,
            archy_registry::Origin {
                http: "http://127.0.0.1:1".into(),
                iroh: "ab".repeat(32),
            },
            Vec::new(),
        )
        .unwrap();
        let mut envelope = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
        envelope.sign(&stranger).unwrap();
        assert!(
            state
                .update_catalog(&envelope.to_bytes(), Utc::now())
                .is_err()
        );
        assert!(state.catalog().is_none());
    }
}
