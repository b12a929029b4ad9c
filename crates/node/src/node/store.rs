//! What the dashboard's store shows (`GET /v1/store`): the verified catalog's apps and the
//! stored marketplace listings, each with what it may do in words, every publisher's score
//! with its terms, and what is installed, in one answer built from what the node holds (the
//! trust state, sqlite, and what Podman last said, which is never asked here).
//!
//! What a listing shows comes from re-verifying its publication (DID signature, Nostr
//! binding, sandbox policy), a signature check each. It is kept per (publisher, app) and
//! the Nostr event it came in (whose id commits to the publication), so a store of a
//! thousand listings verifies each one once, not on every view. It is only shown: an
//! install verifies the publication again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use archy_api::{StoreApp, StoreInstalled, StoreListing, StorePublisher, StoreView};

use super::error::internal;
use super::market::third_party_app;
use super::views::runtime_state;
use super::{AppState, Node, NodeError, wire};
use crate::db;

/// Most characters of a store card's summary (the description's first paragraph).
const SUMMARY_CHARS: usize = 240;

/// Misses at most this many are fetched one by one; more, all envelopes in one query.
const FETCH_ONE_BY_ONE: usize = 32;

/// Most blocking tasks verifying listings at once.
const MAX_VERIFY_TASKS: usize = 4;

/// What a listing's card shows of its publication, as last verified.
struct ListingFacts {
    /// The Nostr event the stored publication came in: a new one is verified afresh.
    event_id: String,
    local_id: Option<String>,
    summary: String,
    sandbox: String,
    origin: Option<String>,
    may: Vec<String>,
}

/// The stored listings and what each shows, verified, by (publisher, app).
#[derive(Default)]
pub(crate) struct ListingCache {
    entries: Mutex<HashMap<(String, String), Arc<ListingFacts>>>,
    /// Bumped before every change of the stored listings ([`Node::listings_changed`]).
    generation: AtomicU64,
    /// The listings as last read from sqlite, and the generation they were read at.
    rows: Mutex<Option<(u64, Arc<Vec<db::MarketRow>>)>>,
}

impl Node {
    /// The store: catalog apps and listings with their permissions in words, publishers'
    /// scores with every term, and what is installed (as Podman last said).
    pub async fn store(&self) -> Result<StoreView, NodeError> {
        let installed: BTreeMap<String, db::AppRow> = db::apps(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        // Only what Podman said: an app it did not list (installed since, say) is unknown
        // here, not missing.
        let seen = self.runtimes.peek();
        let state_of = |id: &str| {
            seen.as_ref()
                .and_then(|seen| seen.by_app.get(id))
                .map_or(AppState::Unknown, runtime_state)
        };
        let installed_as = |id: &str, offered: &str| {
            installed.get(id).map(|row| StoreInstalled {
                version: row.version.clone(),
                state: state_of(id),
                update_to: newer(offered, &row.version).then(|| offered.to_owned()),
            })
        };

        let listings = self.stored_listings().await?;
        let facts = self.listing_facts(&listings).await?;
        let scores: HashMap<String, db::ScoreRow> = db::scores(&self.db)
            .await?
            .into_iter()
            .map(|s| (s.author.clone(), s))
            .collect();
        let mut publishers: BTreeMap<(String, String), StorePublisher> = BTreeMap::new();
        for (listing, facts) in listings.iter().zip(facts) {
            let publisher = publishers
                .entry((listing.author.clone(), listing.did.clone()))
                .or_insert_with(|| {
                    let score = scores.get(&listing.author).cloned().map(wire::score);
                    StorePublisher {
                        author: listing.author.clone(),
                        did: listing.did.clone(),
                        score: score.as_ref().map(|s| s.score),
                        scored_at: score.as_ref().map(|s| s.computed_at.clone()),
                        terms: score.map(|s| s.explanation).unwrap_or_default(),
                        listings: Vec::new(),
                    }
                });
            let installed = facts
                .local_id
                .as_deref()
                .and_then(|id| installed_as(id, &listing.version));
            publisher.listings.push(StoreListing {
                app_id: listing.app_id.clone(),
                local_id: facts.local_id.clone(),
                name: listing.name.clone(),
                version: listing.version.clone(),
                published_at: listing.created_at,
                summary: facts.summary.clone(),
                sandbox: facts.sandbox.clone(),
                origin: facts.origin.clone(),
                may: facts.may.clone(),
                installed,
            });
        }

        let trust = self.trust.read().await;
        let (catalog_version, catalog) = match trust.catalog() {
            None => (None, Vec::new()),
            Some(c) => (
                Some(c.version()),
                c.catalog()
                    .apps
                    .iter()
                    .map(|a| {
                        let permissions = wire::permissions(&a.manifest);
                        let version = a.version.to_string();
                        StoreApp {
                            installed: installed_as(&a.id, &version),
                            id: a.id.clone(),
                            name: a.manifest.name.clone(),
                            version,
                            summary: summary(&a.manifest.description),
                            may: permissions.in_words(),
                            needs: permissions.dependencies,
                        }
                    })
                    .collect(),
            ),
        };
        drop(trust);
        Ok(StoreView {
            threshold: self.market_min_score(),
            catalog_version,
            catalog,
            publishers: publishers.into_values().collect(),
        })
    }

    /// Marks the stored listings as changing: the store reads them from sqlite again.
    /// Whatever writes `market_listings` while the node runs calls this before writing.
    pub(super) fn listings_changed(&self) {
        self.store_cache.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The stored listings: read from sqlite once per change, not on every view.
    async fn stored_listings(&self) -> Result<Arc<Vec<db::MarketRow>>, NodeError> {
        let cache = &self.store_cache;
        let generation = cache.generation.load(Ordering::Acquire);
        if let Some((at, rows)) = cache.rows.lock().map_err(internal)?.as_ref()
            && *at == generation
        {
            return Ok(rows.clone());
        }
        let rows = Arc::new(db::market_listings(&self.db).await?);
        // Kept under the generation read before the query: a change meanwhile makes the
        // next view read again.
        *cache.rows.lock().map_err(internal)? = Some((generation, rows.clone()));
        Ok(rows)
    }

    /// Verifies what the store will show of the stored listings now (at start, after a
    /// discovery), so that a view does not wait for it.
    pub async fn warm_store_view(&self) {
        let warmed = async {
            let listings = self.stored_listings().await?;
            self.listing_facts(&listings).await
        };
        if let Err(e) = warmed.await {
            tracing::warn!(error = %e, "could not prepare the store's listings");
        }
    }

    /// The facts of each listing (in order), verified once per Nostr event; forgets the
    /// listings no longer stored.
    async fn listing_facts(
        &self,
        listings: &[db::MarketRow],
    ) -> Result<Vec<Arc<ListingFacts>>, NodeError> {
        let key = |l: &db::MarketRow| (l.author.clone(), l.app_id.clone());
        let mut known: Vec<Option<Arc<ListingFacts>>> = {
            let cache = self.store_cache.entries.lock().map_err(internal)?;
            listings
                .iter()
                .map(|l| {
                    cache
                        .get(&key(l))
                        .filter(|f| f.event_id == l.event_id)
                        .cloned()
                })
                .collect()
        };
        let missing: Vec<usize> = (0..listings.len())
            .filter(|i| known[*i].is_none())
            .collect();
        if !missing.is_empty() {
            let mut envelopes: HashMap<(String, String), Vec<u8>> = HashMap::new();
            if missing.len() <= FETCH_ONE_BY_ONE {
                for &i in &missing {
                    let l = &listings[i];
                    let envelope = db::listing_envelope(&self.db, &l.author, &l.app_id)
                        .await?
                        .unwrap_or_default();
                    envelopes.insert(key(l), envelope);
                }
            } else {
                for (author, app_id, envelope) in db::listing_envelopes(&self.db).await? {
                    envelopes.insert((author, app_id), envelope);
                }
            }
            let work: Vec<(usize, String, String, Vec<u8>)> = missing
                .iter()
                .map(|&i| {
                    let l = &listings[i];
                    let envelope = envelopes.remove(&key(l)).unwrap_or_default();
                    (i, l.author.clone(), l.event_id.clone(), envelope)
                })
                .collect();
            // A signature check each: off the async threads, on every core.
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let per_task = work.len().div_ceil(cores.clamp(1, MAX_VERIFY_TASKS));
            let mut tasks = Vec::new();
            let mut work = work.into_iter().peekable();
            while work.peek().is_some() {
                let chunk: Vec<_> = work.by_ref().take(per_task.max(1)).collect();
                tasks.push(tokio::task::spawn_blocking(move || {
                    chunk
                        .into_iter()
                        .map(|(i, author, event_id, envelope)| {
                            (i, Arc::new(verify_listing(&envelope, &author, event_id)))
                        })
                        .collect::<Vec<_>>()
                }));
            }
            for task in tasks {
                for (i, facts) in task.await.map_err(internal)? {
                    known[i] = Some(facts);
                }
            }
        }
        let facts: Vec<Arc<ListingFacts>> = known.into_iter().flatten().collect();
        let mut cache = self.store_cache.entries.lock().map_err(internal)?;
        // Every listing was known and none went: the cache is as it should be.
        if missing.is_empty() && cache.len() == listings.len() {
            return Ok(facts);
        }
        cache.clear();
        for (l, f) in listings.iter().zip(&facts) {
            cache.insert(key(l), f.clone());
        }
        Ok(facts)
    }
}

/// A listing's card facts from its stored publication: what it may do once it verifies,
/// or why it does not.
fn verify_listing(envelope: &[u8], author: &str, event_id: String) -> ListingFacts {
    match third_party_app(envelope, author) {
        Ok((verified, app)) => ListingFacts {
            event_id,
            local_id: Some(app.manifest().id.clone()),
            summary: summary(&app.manifest().description),
            sandbox: "passes".to_owned(),
            origin: Some(verified.publication().origin.http.clone()),
            may: wire::permissions(app.manifest()).in_words(),
        },
        Err(e) => ListingFacts {
            event_id,
            local_id: None,
            summary: String::new(),
            sandbox: e.message,
            origin: None,
            may: Vec::new(),
        },
    }
}

/// `offered` is a newer version than `installed` (both semver; anything else is not).
fn newer(offered: &str, installed: &str) -> bool {
    match (
        semver::Version::parse(offered),
        semver::Version::parse(installed),
    ) {
        (Ok(o), Ok(i)) => o > i,
        _ => false,
    }
}

/// A description's first paragraph on one line, cut at [`SUMMARY_CHARS`] characters.
fn summary(description: &str) -> String {
    let first = description
        .trim()
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if first.chars().count() <= SUMMARY_CHARS {
        return first;
    }
    let mut cut: String = first.chars().take(SUMMARY_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_the_first_paragraph_on_one_line_and_short() {
        assert_eq!(summary("  One line.  "), "One line.");
        assert_eq!(
            summary("First\nparagraph here.\n\nSecond one."),
            "First paragraph here."
        );
        let long = "word ".repeat(100);
        let s = summary(&long);
        assert!(s.chars().count() <= SUMMARY_CHARS, "{s}");
        assert!(s.ends_with("word…"), "{s}");
        let wide = "é".repeat(500);
        assert_eq!(summary(&wide).chars().count(), SUMMARY_CHARS);
        assert_eq!(summary(""), "");
    }

    #[test]
    fn updates_are_newer_semver_only() {
        assert!(newer("1.2.0", "1.1.9"));
        assert!(!newer("1.1.9", "1.2.0"));
        assert!(!newer("1.0.0", "1.0.0"));
        assert!(newer("1.0.0", "1.0.0-rc.1"));
        assert!(!newer("garbage", "1.0.0"));
    }

    #[test]
    fn a_listing_that_does_not_verify_shows_why_and_nothing_else() {
        let facts = verify_listing(b"not an envelope", &"ab".repeat(32), "e1".into());
        assert_eq!(facts.local_id, None);
        assert!(
            facts.sandbox.starts_with("publication does not verify"),
            "{}",
            facts.sandbox
        );
        assert!(facts.may.is_empty() && facts.summary.is_empty());
    }
}
