//! The node's trust state machine: a pinned root, the current catalog, and the clock it
//! last saw. Every update either moves forward by the rules or leaves the state untouched.

use chrono::{DateTime, Utc};

use crate::catalog::VerifiedCatalog;
use crate::error::{Error, Result};
use crate::root::VerifiedRoot;

/// What an accepted catalog did to the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogUpdate {
    /// Same version, same payload (signatures may differ): nothing to do.
    Unchanged { version: u64 },
    /// A newer catalog replaced the current one (or the first one arrived).
    Updated {
        from: Option<u64>,
        to: u64,
        /// Versions skipped between `from` and `to` (a node that was offline).
        missed: u64,
    },
}

#[derive(Debug, Clone)]
pub struct TrustState {
    root: VerifiedRoot,
    catalog: Option<VerifiedCatalog>,
    last_seen: Option<DateTime<Utc>>,
}

impl TrustState {
    pub fn new(anchor: VerifiedRoot) -> Self {
        Self {
            root: anchor,
            catalog: None,
            last_seen: None,
        }
    }

    /// Rebuilds persisted state: the same verification as when it was first accepted,
    /// minus expiry (expiry is checked per use, and a stored catalog may have expired since).
    pub fn restore(
        anchor: VerifiedRoot,
        rotations: &[Vec<u8>],
        catalog: Option<&[u8]>,
        last_seen: Option<DateTime<Utc>>,
    ) -> Result<Self> {
        let mut root = anchor;
        for step in rotations {
            root = root.rotate(step)?;
        }
        let catalog = catalog
            .map(|bytes| VerifiedCatalog::verify(&root, bytes))
            .transpose()?;
        Ok(Self {
            root,
            catalog,
            last_seen,
        })
    }

    pub fn root(&self) -> &VerifiedRoot {
        &self.root
    }

    pub fn catalog(&self) -> Option<&VerifiedCatalog> {
        self.catalog.as_ref()
    }

    pub fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.last_seen
    }

    fn check_clock(&self, now: DateTime<Utc>) -> Result<()> {
        match self.last_seen {
            Some(last_seen) if now < last_seen => Err(Error::ClockBackward { now, last_seen }),
            _ => Ok(()),
        }
    }

    /// Root N → N+1 (DESIGN trust rule 3). The caller walks a chain step by step, to a cap.
    pub fn rotate_root(&mut self, envelope_bytes: &[u8]) -> Result<()> {
        let next = self.root.rotate(envelope_bytes)?;
        // The current catalog must still be vouched for by the new catalog keys.
        let catalog = self
            .catalog
            .as_ref()
            .map(|c| VerifiedCatalog::verify(&next, c.envelope_bytes()))
            .transpose()
            .ok()
            .flatten();
        self.root = next;
        self.catalog = catalog;
        Ok(())
    }

    /// Offers catalog envelope bytes, with one "now" for every check of this update.
    /// On any error the state is unchanged.
    pub fn update_catalog(
        &mut self,
        envelope_bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<CatalogUpdate> {
        self.check_clock(now)?;
        self.root.check_unexpired(now)?;
        let offered = VerifiedCatalog::verify(&self.root, envelope_bytes)?;
        if let Some(current) = &self.catalog {
            if offered.version() < current.version() {
                return Err(Error::Rollback {
                    current: current.version(),
                    offered: offered.version(),
                });
            }
            if offered.version() == current.version() {
                if offered.payload_hash() == current.payload_hash() {
                    self.last_seen = Some(now);
                    return Ok(CatalogUpdate::Unchanged {
                        version: current.version(),
                    });
                }
                return Err(Error::Equivocation {
                    version: current.version(),
                    accepted: current.payload_hash().to_owned(),
                    offered: offered.payload_hash().to_owned(),
                });
            }
        }
        offered.check_unexpired(now)?;
        if let Some(current) = &self.catalog {
            // The next version must name this one: two different histories are a fork.
            // After a gap we cannot check the link, so the caller records the gap instead.
            let previous = offered.catalog().previous.as_deref();
            if offered.version() == current.version() + 1
                && previous != Some(current.payload_hash())
            {
                return Err(Error::ChainBroken {
                    version: offered.version(),
                    current: current.version(),
                    expected: current.payload_hash().to_owned(),
                    found: previous.unwrap_or("none").to_owned(),
                });
            }
        }
        let from = self.catalog.as_ref().map(VerifiedCatalog::version);
        let missed = from.map_or(0, |f| offered.version() - f - 1);
        self.catalog = Some(offered);
        self.last_seen = Some(now);
        Ok(CatalogUpdate::Updated {
            from,
            to: self.catalog.as_ref().map_or(0, VerifiedCatalog::version),
            missed,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::catalog::{Catalog, Origin};
    use crate::envelope::{Envelope, PayloadType};
    use crate::keys::SecretKey;
    use crate::root::Root;

    struct Fixture {
        root_key: SecretKey,
        catalog_key: SecretKey,
        now: DateTime<Utc>,
        state: TrustState,
    }

    fn fixture() -> Fixture {
        let root_key = SecretKey::from_bytes(&[1; 32]);
        let catalog_key = SecretKey::from_bytes(&[2; 32]);
        let now = Utc::now();
        let root = Root::new(
            1,
            now + Duration::days(365),
            &[root_key.public()],
            1,
            &[catalog_key.public()],
            1,
        )
        .unwrap();
        let mut env = Envelope::unsigned(PayloadType::Root, &root.to_json());
        env.sign(&root_key).unwrap();
        let anchor = VerifiedRoot::trust_anchor(&env.to_bytes()).unwrap();
        Fixture {
            root_key,
            catalog_key,
            now,
            state: TrustState::new(anchor),
        }
    }

    fn catalog(f: &Fixture, version: u64, expires_in: Duration, marker: &str) -> Vec<u8> {
        chained(f, version, expires_in, marker, None)
    }

    fn chained(
        f: &Fixture,
        version: u64,
        expires_in: Duration,
        marker: &str,
        previous: Option<&[u8]>,
    ) -> Vec<u8> {
        let origin = Origin {
            http: format!("http://127.0.0.1:1/{marker}"),
            iroh: "ab".repeat(32),
        };
        let previous =
            previous.map(|b| crate::catalog_link(&Envelope::from_bytes(b).unwrap()).unwrap());
        let c = Catalog::new(version, f.now + expires_in, previous, origin, vec![]).unwrap();
        let mut env = Envelope::unsigned(PayloadType::Catalog, &c.to_json());
        env.sign(&f.catalog_key).unwrap();
        env.to_bytes()
    }

    #[test]
    fn accepts_newer_and_refuses_rollback_keeping_state() {
        let mut f = fixture();
        let v2 = catalog(&f, 2, Duration::days(1), "a");
        let v1 = catalog(&f, 1, Duration::days(1), "a");
        assert_eq!(
            f.state.update_catalog(&v2, f.now).unwrap(),
            CatalogUpdate::Updated {
                from: None,
                to: 2,
                missed: 0
            }
        );
        let err = f.state.update_catalog(&v1, f.now).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Rollback {
                    current: 2,
                    offered: 1
                }
            ),
            "{err}"
        );
        assert_eq!(f.state.catalog().unwrap().version(), 2);
        assert_eq!(
            f.state.update_catalog(&v2, f.now).unwrap(),
            CatalogUpdate::Unchanged { version: 2 }
        );
        let v5 = catalog(&f, 5, Duration::days(1), "a");
        assert_eq!(
            f.state.update_catalog(&v5, f.now).unwrap(),
            CatalogUpdate::Updated {
                from: Some(2),
                to: 5,
                missed: 2
            }
        );
    }

    #[test]
    fn equivocation_is_refused_and_current_kept() {
        let mut f = fixture();
        let a = catalog(&f, 3, Duration::days(1), "a");
        let b = catalog(&f, 3, Duration::days(1), "b");
        f.state.update_catalog(&a, f.now).unwrap();
        let err = f.state.update_catalog(&b, f.now).unwrap_err();
        assert!(
            matches!(err, Error::Equivocation { version: 3, .. }),
            "{err}"
        );
        assert_eq!(f.state.catalog().unwrap().envelope_bytes(), &a[..]);
    }

    #[test]
    fn expired_catalog_and_clock_backward_are_refused() {
        let mut f = fixture();
        let expired = catalog(&f, 1, Duration::seconds(-1), "a");
        let err = f.state.update_catalog(&expired, f.now).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Expired {
                    what: "catalog",
                    ..
                }
            ),
            "{err}"
        );
        assert!(f.state.catalog().is_none());
        let ok = catalog(&f, 1, Duration::days(1), "a");
        f.state.update_catalog(&ok, f.now).unwrap();
        let err = f
            .state
            .update_catalog(&ok, f.now - Duration::hours(1))
            .unwrap_err();
        assert!(matches!(err, Error::ClockBackward { .. }), "{err}");
    }

    #[test]
    fn wrong_key_and_cross_type_replay_are_refused() {
        let mut f = fixture();
        let c = Catalog::new(
            1,
            f.now + Duration::days(1),
            None,
            Origin {
                http: "http://x".into(),
                iroh: "ab".repeat(32),
            },
            vec![],
        )
        .unwrap();
        // Signed by the root key, which is not in the catalog role.
        let mut env = Envelope::unsigned(PayloadType::Catalog, &c.to_json());
        env.sign(&f.root_key).unwrap();
        let err = f.state.update_catalog(&env.to_bytes(), f.now).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ThresholdNotMet {
                    role: "catalog",
                    valid: 0,
                    ..
                }
            ),
            "{err}"
        );
        // A validly signed root envelope presented as a catalog.
        let root_bytes = f.state.root().envelope_bytes().to_vec();
        let err = f.state.update_catalog(&root_bytes, f.now).unwrap_err();
        assert!(matches!(err, Error::WrongPayloadType { .. }), "{err}");
    }

    #[test]
    fn rotation_needs_old_and_new_thresholds_and_next_version() {
        let mut f = fixture();
        let new_root_key = SecretKey::from_bytes(&[9; 32]);
        let next = |version| {
            Root::new(
                version,
                f.now + Duration::days(365),
                &[new_root_key.public()],
                1,
                &[f.catalog_key.public()],
                1,
            )
            .unwrap()
        };
        let mut only_new = Envelope::unsigned(PayloadType::Root, &next(2).to_json());
        only_new.sign(&new_root_key).unwrap();
        assert!(f.state.rotate_root(&only_new.to_bytes()).is_err());
        let mut skip = Envelope::unsigned(PayloadType::Root, &next(3).to_json());
        skip.sign(&f.root_key).unwrap();
        skip.sign(&new_root_key).unwrap();
        let err = f.state.rotate_root(&skip.to_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RootVersionSkip {
                    expected: 2,
                    found: 3
                }
            ),
            "{err}"
        );
        let mut both = only_new.clone();
        both.sign(&f.root_key).unwrap();
        f.state.rotate_root(&both.to_bytes()).unwrap();
        assert_eq!(f.state.root().version(), 2);
    }

    #[test]
    fn consecutive_versions_must_chain_and_gaps_are_reported() {
        let mut f = fixture();
        let v1 = catalog(&f, 1, Duration::days(1), "a");
        f.state.update_catalog(&v1, f.now).unwrap();
        let unchained = catalog(&f, 2, Duration::days(1), "a");
        let err = f.state.update_catalog(&unchained, f.now).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ChainBroken {
                    version: 2,
                    current: 1,
                    ..
                }
            ),
            "{err}"
        );
        let other_history = catalog(&f, 1, Duration::days(1), "other");
        let forked = chained(&f, 2, Duration::days(1), "a", Some(&other_history));
        assert!(matches!(
            f.state.update_catalog(&forked, f.now),
            Err(Error::ChainBroken { .. })
        ));
        assert_eq!(f.state.catalog().unwrap().version(), 1);
        let v2 = chained(&f, 2, Duration::days(1), "a", Some(&v1));
        f.state.update_catalog(&v2, f.now).unwrap();
        // A node that was offline jumps to the newest valid catalog; the gap is reported.
        let v9 = catalog(&f, 9, Duration::days(1), "a");
        assert_eq!(
            f.state.update_catalog(&v9, f.now).unwrap(),
            CatalogUpdate::Updated {
                from: Some(2),
                to: 9,
                missed: 6
            }
        );
    }

    #[test]
    fn expired_root_freezes_updates() {
        let root_key = SecretKey::from_bytes(&[1; 32]);
        let catalog_key = SecretKey::from_bytes(&[2; 32]);
        let now = Utc::now();
        let root = Root::new(
            1,
            now - Duration::hours(1),
            &[root_key.public()],
            1,
            &[catalog_key.public()],
            1,
        )
        .unwrap();
        let mut env = Envelope::unsigned(PayloadType::Root, &root.to_json());
        env.sign(&root_key).unwrap();
        let f = Fixture {
            root_key,
            catalog_key,
            now,
            state: TrustState::new(VerifiedRoot::trust_anchor(&env.to_bytes()).unwrap()),
        };
        let c = catalog(&f, 1, Duration::days(1), "a");
        let mut state = f.state.clone();
        let err = state.update_catalog(&c, f.now).unwrap_err();
        assert!(matches!(err, Error::Expired { what: "root", .. }), "{err}");
        assert!(state.catalog().is_none());
    }

    #[test]
    fn one_key_signing_twice_does_not_meet_a_threshold_of_two() {
        let root_key = SecretKey::from_bytes(&[1; 32]);
        let a = SecretKey::from_bytes(&[2; 32]);
        let b = SecretKey::from_bytes(&[3; 32]);
        let now = Utc::now();
        let root = Root::new(
            1,
            now + Duration::days(1),
            &[root_key.public()],
            1,
            &[a.public(), b.public()],
            2,
        )
        .unwrap();
        let mut env = Envelope::unsigned(PayloadType::Root, &root.to_json());
        env.sign(&root_key).unwrap();
        let mut state = TrustState::new(VerifiedRoot::trust_anchor(&env.to_bytes()).unwrap());
        let c = Catalog::new(
            1,
            now + Duration::days(1),
            None,
            Origin {
                http: "http://x".into(),
                iroh: "ab".repeat(32),
            },
            vec![],
        )
        .unwrap();
        let mut cat = Envelope::unsigned(PayloadType::Catalog, &c.to_json());
        cat.sign(&a).unwrap();
        let dup = cat.signatures[0].clone();
        cat.signatures.push(dup.clone());
        cat.signatures.push(dup);
        let err = state.update_catalog(&cat.to_bytes(), now).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ThresholdNotMet {
                    valid: 1,
                    threshold: 2,
                    ..
                }
            ),
            "{err}"
        );
        cat.sign(&b).unwrap();
        state.update_catalog(&cat.to_bytes(), now).unwrap();
    }

    #[test]
    fn mix_and_match_of_two_catalogs_is_refused() {
        let mut f = fixture();
        let a = catalog(&f, 1, Duration::days(1), "a");
        let b = catalog(&f, 2, Duration::days(1), "b");
        // The payload of one with the signatures of the other.
        let mut mixed = Envelope::from_bytes(&a).unwrap();
        mixed.signatures = Envelope::from_bytes(&b).unwrap().signatures;
        let payload_a = Envelope::from_bytes(&a).unwrap().payload;
        let mut spliced = Envelope::from_bytes(&b).unwrap();
        spliced.payload = payload_a;
        for bytes in [mixed.to_bytes(), spliced.to_bytes()] {
            let err = f.state.update_catalog(&bytes, f.now).unwrap_err();
            assert!(
                matches!(err, Error::ThresholdNotMet { valid: 0, .. }),
                "{err}"
            );
        }
        assert!(f.state.catalog().is_none());
    }

    #[test]
    fn a_late_signature_is_not_an_equivocation() {
        let mut f = fixture();
        let v1 = catalog(&f, 1, Duration::days(1), "a");
        f.state.update_catalog(&v1, f.now).unwrap();
        let mut resigned = Envelope::from_bytes(&v1).unwrap();
        resigned.sign(&f.root_key).unwrap();
        assert_eq!(
            f.state.update_catalog(&resigned.to_bytes(), f.now).unwrap(),
            CatalogUpdate::Unchanged { version: 1 }
        );
        let v2 = chained(&f, 2, Duration::days(1), "a", Some(&resigned.to_bytes()));
        f.state.update_catalog(&v2, f.now).unwrap();
    }

    #[test]
    fn rotating_out_the_catalog_key_drops_the_catalog_it_signed() {
        let mut f = fixture();
        let v1 = catalog(&f, 1, Duration::days(1), "a");
        f.state.update_catalog(&v1, f.now).unwrap();
        let new_catalog_key = SecretKey::from_bytes(&[33; 32]);
        let next = Root::new(
            2,
            f.now + Duration::days(365),
            &[f.root_key.public()],
            1,
            &[new_catalog_key.public()],
            1,
        )
        .unwrap();
        let mut env = Envelope::unsigned(PayloadType::Root, &next.to_json());
        env.sign(&f.root_key).unwrap();
        f.state.rotate_root(&env.to_bytes()).unwrap();
        assert!(
            f.state.catalog().is_none(),
            "a catalog signed by a revoked key survived rotation"
        );
        // So an old-key catalog of a higher version is refused, and a new-key one accepted.
        let stale = catalog(&f, 2, Duration::days(1), "a");
        assert!(f.state.update_catalog(&stale, f.now).is_err());
        f.catalog_key = new_catalog_key;
        let fresh = catalog(&f, 2, Duration::days(1), "a");
        f.state.update_catalog(&fresh, f.now).unwrap();
    }
}
