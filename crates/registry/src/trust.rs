//! The node's trust state machine: a pinned root, the current catalog, and the clock it
//! last saw. Every update either moves forward by the rules or leaves the state untouched.
//!
//! A catalog that skips versions (the node was offline, or someone is forking history by
//! skipping a number) is accepted in two steps so the caller can fetch what it skipped:
//! [`TrustState::begin_catalog_chain`] checks the offered catalog and says which versions lie
//! between it and the current one, [`CatalogChain::add`] checks each of those the caller
//! could get, and [`TrustState::finish_catalog_chain`] accepts the offered catalog only if
//! every link between versions that were both seen holds. Versions never added are gaps the
//! caller must report: nothing about them was checked.

use std::ops::{Range, RangeInclusive};

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
        /// Versions between `from` and `to` that were not seen, so the links through them
        /// are unverified (a node that was offline, whose origin no longer has them).
        /// Zero when every version in between was fetched and chained.
        missed: u64,
    },
}

/// An accepted (or unchanged) catalog and how much of the history up to it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainUpdate {
    pub update: CatalogUpdate,
    /// Intermediate versions that were fetched, verified and chained, oldest first.
    pub verified: Vec<u64>,
    /// Runs of versions that were never seen: the chain is unverified across each.
    /// Their lengths add up to `missed` in [`CatalogUpdate::Updated`].
    pub gaps: Vec<RangeInclusive<u64>>,
}

impl ChainUpdate {
    /// Versions accepted across without a verified link (the sum of the gaps).
    pub fn unverified(&self) -> u64 {
        self.gaps.iter().map(|g| g.end() - g.start() + 1).sum()
    }
}

/// One catalog as a link of the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    version: u64,
    hash: String,
    previous: Option<String>,
}

impl Link {
    fn of(catalog: &VerifiedCatalog) -> Self {
        Self {
            version: catalog.version(),
            hash: catalog.payload_hash().to_owned(),
            previous: catalog.catalog().previous.clone(),
        }
    }
}

/// `next` must name `prev` when it directly follows it; otherwise the versions between
/// them are a gap, recorded in `gaps`.
fn check_link(prev: &Link, next: &Link, gaps: &mut Vec<RangeInclusive<u64>>) -> Result<()> {
    if next.version == prev.version + 1 {
        if next.previous.as_deref() != Some(prev.hash.as_str()) {
            return Err(Error::ChainBroken {
                version: next.version,
                current: prev.version,
                expected: prev.hash.clone(),
                found: next.previous.clone().unwrap_or_else(|| "none".to_owned()),
            });
        }
    } else if next.version > prev.version + 1 {
        gaps.push(prev.version + 1..=next.version - 1);
    }
    Ok(())
}

/// A catalog offered across a version gap, being completed with the versions in between
/// (from [`TrustState::begin_catalog_chain`]). Only hashes of the intermediates are kept,
/// so a long chain does not hold every catalog in memory.
#[derive(Debug, Clone)]
pub struct CatalogChain {
    /// The root the chain was begun under: intermediates must meet its catalog threshold.
    root: VerifiedRoot,
    /// The current catalog when the chain was begun.
    base: Option<Link>,
    /// Intermediates added so far, in increasing version order.
    links: Vec<Link>,
    offered: VerifiedCatalog,
}

impl CatalogChain {
    pub fn offered(&self) -> &VerifiedCatalog {
        &self.offered
    }

    /// The versions strictly between the current catalog and the offered one: what the
    /// caller should fetch and [`Self::add`]. Empty when there is no gap (or no current
    /// catalog to chain to).
    pub fn missing(&self) -> Range<u64> {
        let to = self.offered.version();
        match &self.base {
            Some(base) if to > base.version + 1 => base.version + 1..to,
            _ => to..to,
        }
    }

    /// Adds one intermediate catalog, in increasing version order; versions never added
    /// count as unavailable (gaps). Its signatures must meet the catalog threshold of the
    /// root the chain was begun under. Its expiry is not checked: an old version may have
    /// expired since, only the offered catalog must be current.
    ///
    /// Refused: a version at or below the current one or the last one added (a rollback
    /// inside the chain; the same version with another payload is an equivocation), one at
    /// or past the offered version, and one that does not name its predecessor when that
    /// predecessor was seen (a fork). Returns the version it holds.
    pub fn add(&mut self, envelope_bytes: &[u8]) -> Result<u64> {
        let catalog = VerifiedCatalog::verify(&self.root, envelope_bytes)?;
        let link = Link::of(&catalog);
        let offered = Link::of(&self.offered);
        let prev = self.links.last().or(self.base.as_ref());
        if let Some(prev) = prev
            && link.version <= prev.version
        {
            if link.version == prev.version {
                if link.hash == prev.hash {
                    return Ok(link.version);
                }
                return Err(Error::Equivocation {
                    version: link.version,
                    accepted: prev.hash.clone(),
                    offered: link.hash,
                });
            }
            return Err(Error::Rollback {
                current: prev.version,
                offered: link.version,
            });
        }
        if link.version >= offered.version {
            if link.version == offered.version {
                if link.hash == offered.hash {
                    return Ok(link.version);
                }
                return Err(Error::Equivocation {
                    version: link.version,
                    accepted: offered.hash,
                    offered: link.hash,
                });
            }
            // The chain holds something newer than what is offered: the offer rolls back.
            return Err(Error::Rollback {
                current: link.version,
                offered: offered.version,
            });
        }
        if let Some(prev) = prev {
            check_link(prev, &link, &mut Vec::new())?;
        }
        let version = link.version;
        self.links.push(link);
        Ok(version)
    }
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

    /// Rollback and equivocation against the current catalog; `Some(version)` when the
    /// offered one is the current one (signatures may differ).
    fn compare_with_current(&self, offered: &VerifiedCatalog) -> Result<Option<u64>> {
        let Some(current) = &self.catalog else {
            return Ok(None);
        };
        if offered.version() < current.version() {
            return Err(Error::Rollback {
                current: current.version(),
                offered: offered.version(),
            });
        }
        if offered.version() == current.version() {
            if offered.payload_hash() == current.payload_hash() {
                return Ok(Some(current.version()));
            }
            return Err(Error::Equivocation {
                version: current.version(),
                accepted: current.payload_hash().to_owned(),
                offered: offered.payload_hash().to_owned(),
            });
        }
        Ok(None)
    }

    /// Offers catalog envelope bytes, with one "now" for every check of this update.
    /// The next version must name the current one; a catalog further ahead is accepted
    /// with the versions in between counted as `missed` (unverified): callers that can
    /// fetch them use [`Self::begin_catalog_chain`] instead. On any error the state is
    /// unchanged.
    pub fn update_catalog(
        &mut self,
        envelope_bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<CatalogUpdate> {
        let none: &[&[u8]] = &[];
        self.update_catalog_chain(none, envelope_bytes, now)
            .map(|c| c.update)
    }

    /// [`Self::begin_catalog_chain`], [`CatalogChain::add`] of each intermediate (increasing
    /// versions; any version not among them is unavailable), then
    /// [`Self::finish_catalog_chain`]. On any error the state is unchanged.
    pub fn update_catalog_chain<B: AsRef<[u8]>>(
        &mut self,
        intermediates: &[B],
        newest: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ChainUpdate> {
        let mut chain = self.begin_catalog_chain(newest, now)?;
        for bytes in intermediates {
            chain.add(bytes.as_ref())?;
        }
        self.finish_catalog_chain(chain, now)
    }

    /// Step one of accepting a catalog: clock, root expiry, signatures, rollback,
    /// equivocation and expiry of the offered catalog, without changing the state. The
    /// returned chain names the versions to fetch ([`CatalogChain::missing`]).
    pub fn begin_catalog_chain(
        &self,
        envelope_bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<CatalogChain> {
        self.check_clock(now)?;
        self.root.check_unexpired(now)?;
        let offered = VerifiedCatalog::verify(&self.root, envelope_bytes)?;
        if self.compare_with_current(&offered)?.is_none() {
            offered.check_unexpired(now)?;
        }
        Ok(CatalogChain {
            root: self.root.clone(),
            base: self.catalog.as_ref().map(Link::of),
            links: Vec::new(),
            offered,
        })
    }

    /// Step two: accepts the chain's offered catalog if it still moves the state forward
    /// and every link between two versions that were seen holds, from the current catalog
    /// (as it is now: another update may have landed since step one) through the
    /// intermediates to the offered one. On any error the state is unchanged.
    pub fn finish_catalog_chain(
        &mut self,
        chain: CatalogChain,
        now: DateTime<Utc>,
    ) -> Result<ChainUpdate> {
        self.check_clock(now)?;
        self.root.check_unexpired(now)?;
        // The root may have rotated since step one: the offered catalog must meet this one.
        let offered = if chain.root.envelope_bytes() == self.root.envelope_bytes() {
            chain.offered
        } else {
            VerifiedCatalog::verify(&self.root, chain.offered.envelope_bytes())?
        };
        if let Some(version) = self.compare_with_current(&offered)? {
            self.last_seen = Some(now);
            return Ok(ChainUpdate {
                update: CatalogUpdate::Unchanged { version },
                verified: Vec::new(),
                gaps: Vec::new(),
            });
        }
        offered.check_unexpired(now)?;
        let mut verified = Vec::new();
        let mut gaps = Vec::new();
        if let Some(current) = &self.catalog {
            let newest = Link::of(&offered);
            let mut prev = Link::of(current);
            for link in chain.links.iter().chain(std::iter::once(&newest)) {
                if link.version < prev.version {
                    // Older than the current catalog (it moved on since step one): history.
                    continue;
                }
                if link.version == prev.version {
                    if link.hash != prev.hash {
                        return Err(Error::Equivocation {
                            version: link.version,
                            accepted: prev.hash.clone(),
                            offered: link.hash.clone(),
                        });
                    }
                    continue;
                }
                check_link(&prev, link, &mut gaps)?;
                if link.version != newest.version {
                    verified.push(link.version);
                }
                prev = link.clone();
            }
        }
        let from = self.catalog.as_ref().map(VerifiedCatalog::version);
        let to = offered.version();
        let result = ChainUpdate {
            update: CatalogUpdate::Updated {
                from,
                to,
                missed: 0,
            },
            verified,
            gaps,
        };
        let missed = result.unverified();
        self.catalog = Some(offered);
        self.last_seen = Some(now);
        Ok(ChainUpdate {
            update: CatalogUpdate::Updated { from, to, missed },
            ..result
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

    /// v1 … v`n`, each naming its predecessor, under marker `marker`.
    fn history(f: &Fixture, n: u64, marker: &str) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for v in 1..=n {
            let prev = out.last().cloned();
            out.push(chained(f, v, Duration::days(1), marker, prev.as_deref()));
        }
        out
    }

    #[test]
    fn full_chain_is_accepted_with_no_gap() {
        let mut f = fixture();
        let h = history(&f, 4, "a");
        f.state.update_catalog(&h[0], f.now).unwrap();
        let chain = f.state.begin_catalog_chain(&h[3], f.now).unwrap();
        assert_eq!(chain.missing(), 2..4);
        let done = f
            .state
            .update_catalog_chain(&[&h[1], &h[2]], &h[3], f.now)
            .unwrap();
        assert_eq!(
            done,
            ChainUpdate {
                update: CatalogUpdate::Updated {
                    from: Some(1),
                    to: 4,
                    missed: 0
                },
                verified: vec![2, 3],
                gaps: vec![],
            }
        );
        assert_eq!(f.state.catalog().unwrap().version(), 4);
        // Next version, first catalog, and the same catalog have nothing to fetch.
        let v5 = chained(&f, 5, Duration::days(1), "a", Some(&h[3]));
        assert!(
            f.state
                .begin_catalog_chain(&v5, f.now)
                .unwrap()
                .missing()
                .is_empty()
        );
        assert!(
            f.state
                .begin_catalog_chain(&h[3], f.now)
                .unwrap()
                .missing()
                .is_empty()
        );
        let fresh = fixture();
        assert!(
            fresh
                .state
                .begin_catalog_chain(&h[3], f.now)
                .unwrap()
                .missing()
                .is_empty()
        );
    }

    #[test]
    fn forked_intermediate_is_refused_never_a_gap() {
        let mut f = fixture();
        let h = history(&f, 1, "a");
        f.state.update_catalog(&h[0], f.now).unwrap();
        // v2 names another v1: the fork shows at the first link, not as a gap.
        let other = history(&f, 1, "other");
        let forked_v2 = chained(&f, 2, Duration::days(1), "a", Some(&other[0]));
        let v3 = chained(&f, 3, Duration::days(1), "a", Some(&forked_v2));
        let err = f
            .state
            .update_catalog_chain(&[&forked_v2], &v3, f.now)
            .unwrap_err();
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
        assert_eq!(f.state.catalog().unwrap().version(), 1);
        // An honest v2, but v3 names some other v2.
        let honest_v2 = chained(&f, 2, Duration::days(1), "a", Some(&h[0]));
        let other_v2 = chained(&f, 2, Duration::days(1), "b", Some(&h[0]));
        let v3 = chained(&f, 3, Duration::days(1), "a", Some(&other_v2));
        let err = f
            .state
            .update_catalog_chain(&[&honest_v2], &v3, f.now)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ChainBroken {
                    version: 3,
                    current: 2,
                    ..
                }
            ),
            "{err}"
        );
        // An intermediate signed by a key outside the catalog role is refused too.
        let mut bad = Envelope::from_bytes(&honest_v2).unwrap();
        bad.signatures.clear();
        bad.sign(&f.root_key).unwrap();
        let v3 = chained(&f, 3, Duration::days(1), "a", Some(&honest_v2));
        let err = f
            .state
            .update_catalog_chain(&[bad.to_bytes()], &v3, f.now)
            .unwrap_err();
        assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");
        assert_eq!(f.state.catalog().unwrap().version(), 1);
        // The honest chain goes through.
        let done = f
            .state
            .update_catalog_chain(&[&honest_v2], &v3, f.now)
            .unwrap();
        assert_eq!(done.unverified(), 0);
    }

    #[test]
    fn skip_with_intermediates_unavailable_is_accepted_as_unverified() {
        let mut f = fixture();
        let h = history(&f, 4, "a");
        f.state.update_catalog(&h[0], f.now).unwrap();
        let none: &[&[u8]] = &[];
        let done = f.state.update_catalog_chain(none, &h[3], f.now).unwrap();
        assert_eq!(
            done,
            ChainUpdate {
                update: CatalogUpdate::Updated {
                    from: Some(1),
                    to: 4,
                    missed: 2
                },
                verified: vec![],
                gaps: vec![2..=3],
            }
        );
        assert_eq!(done.unverified(), 2);
    }

    #[test]
    fn intermediate_missing_in_the_middle_is_a_gap_and_the_rest_is_checked() {
        let mut f = fixture();
        let h = history(&f, 5, "a");
        f.state.update_catalog(&h[0], f.now).unwrap();
        // v3 is unavailable: v1→v2 and v4→v5 are checked, v2→v3→v4 is not.
        let mut state = f.state.clone();
        let done = state
            .update_catalog_chain(&[&h[1], &h[3]], &h[4], f.now)
            .unwrap();
        assert_eq!(done.verified, vec![2, 4]);
        assert_eq!(done.gaps, vec![3..=3]);
        assert_eq!(
            done.update,
            CatalogUpdate::Updated {
                from: Some(1),
                to: 5,
                missed: 1
            }
        );
        // With v3 missing, a v4 that v5 does not name is still a fork.
        let other_v4 = chained(&f, 4, Duration::days(1), "b", Some(&h[2]));
        let err = f
            .state
            .update_catalog_chain(&[&h[1], &other_v4], &h[4], f.now)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ChainBroken {
                    version: 5,
                    current: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(f.state.catalog().unwrap().version(), 1);
    }

    #[test]
    fn rollback_or_equivocation_inside_the_chain_is_refused() {
        let mut f = fixture();
        let h = history(&f, 6, "a");
        f.state.update_catalog(&h[0], f.now).unwrap();
        f.state.update_catalog(&h[1], f.now).unwrap();
        let refuse = |intermediates: &[&Vec<u8>], newest: &[u8]| {
            let mut state = f.state.clone();
            let err = state
                .update_catalog_chain(intermediates, newest, f.now)
                .unwrap_err();
            assert_eq!(state.catalog().unwrap().version(), 2);
            err
        };
        // An older version served as an intermediate.
        let err = refuse(&[&h[0]], &h[4]);
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
        // Out of order: v4 then v3.
        let err = refuse(&[&h[3], &h[2]], &h[4]);
        assert!(
            matches!(
                err,
                Error::Rollback {
                    current: 4,
                    offered: 3
                }
            ),
            "{err}"
        );
        // An intermediate newer than the offered catalog: the offer is the rollback.
        let err = refuse(&[&h[5]], &h[4]);
        assert!(
            matches!(
                err,
                Error::Rollback {
                    current: 6,
                    offered: 5
                }
            ),
            "{err}"
        );
        // The current version with other bytes, and two different v3s.
        let other_v2 = chained(&f, 2, Duration::days(1), "b", Some(&h[0]));
        let err = refuse(&[&other_v2], &h[4]);
        assert!(
            matches!(err, Error::Equivocation { version: 2, .. }),
            "{err}"
        );
        let other_v3 = chained(&f, 3, Duration::days(1), "b", Some(&h[1]));
        let err = refuse(&[&h[2], &other_v3], &h[4]);
        assert!(
            matches!(err, Error::Equivocation { version: 3, .. }),
            "{err}"
        );
        // The same bytes twice is not an equivocation.
        let mut state = f.state.clone();
        let done = state
            .update_catalog_chain(&[&h[2], &h[2], &h[3]], &h[4], f.now)
            .unwrap();
        assert_eq!((done.verified, done.gaps), (vec![3, 4], vec![]));
    }

    #[test]
    fn expired_intermediates_still_chain_and_a_late_update_is_rechecked() {
        let mut f = fixture();
        let h = history(&f, 1, "a");
        f.state.update_catalog(&h[0], f.now).unwrap();
        // An intermediate that has expired since is history, not a reason to refuse.
        let old_v2 = chained(&f, 2, Duration::seconds(-10), "a", Some(&h[0]));
        let v3 = chained(&f, 3, Duration::days(1), "a", Some(&old_v2));
        let mut chain = f.state.begin_catalog_chain(&v3, f.now).unwrap();
        assert_eq!(chain.missing(), 2..3);
        assert_eq!(chain.add(&old_v2).unwrap(), 2);
        // Another update lands between the two steps: the chain is checked from it.
        let fresh_v2 = chained(&f, 2, Duration::days(1), "b", Some(&h[0]));
        f.state.update_catalog(&fresh_v2, f.now).unwrap();
        let err = f
            .state
            .finish_catalog_chain(chain.clone(), f.now)
            .unwrap_err();
        assert!(
            matches!(err, Error::Equivocation { version: 2, .. }),
            "{err}"
        );
        assert_eq!(f.state.catalog().unwrap().version(), 2);
        let mut g = fixture();
        g.state.update_catalog(&h[0], g.now).unwrap();
        let done = g.state.finish_catalog_chain(chain, g.now).unwrap();
        assert_eq!((done.verified, done.gaps), (vec![2], vec![]));
    }
}
