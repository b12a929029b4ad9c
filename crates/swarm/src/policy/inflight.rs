//! Fetches of one hash in flight: a second fetch of a hash this swarm is already fetching
//! waits for the first and follows its progress instead of downloading the same bytes
//! again, and the progress a caller sees never goes backwards.

use std::collections::HashMap;
use std::sync::Arc;

use iroh_blobs::Hash;
use tokio::sync::watch;

use crate::ByteSink;

/// One fetch of a hash in progress; a second fetch of the same hash waits on `lock` and
/// follows `progress` instead of downloading the same bytes again.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(super) lock: tokio::sync::Mutex<()>,
    pub(super) progress: watch::Sender<u64>,
}

/// The fetches in progress, by hash. GC protects these hashes.
pub(crate) type InFlightMap = Arc<std::sync::Mutex<HashMap<Hash, Arc<InFlight>>>>;

/// Membership of one fetch in the in-flight map; leaving removes the entry when no other
/// fetch of the hash remains.
pub(super) struct FlightGuard<'a> {
    map: &'a InFlightMap,
    hash: Hash,
    pub(super) entry: Arc<InFlight>,
}

impl<'a> FlightGuard<'a> {
    pub(super) fn join(map: &'a InFlightMap, hash: Hash) -> Self {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = m
            .entry(hash)
            .or_insert_with(|| {
                Arc::new(InFlight {
                    lock: tokio::sync::Mutex::new(()),
                    progress: watch::channel(0).0,
                })
            })
            .clone();
        Self { map, hash, entry }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Clones are only made under this lock: 2 means the map's and ours.
        if Arc::strong_count(&self.entry) == 2 {
            m.remove(&self.hash);
        }
    }
}

/// Tells the caller (and coalesced waiters) how many verified bytes are held, never
/// going backwards (an HTTP fallback starts its own count from zero).
pub(super) struct Progress<'a> {
    pub(super) on_bytes: ByteSink<'a>,
    pub(super) size: u64,
    pub(super) best: std::sync::atomic::AtomicU64,
    pub(super) watch: &'a watch::Sender<u64>,
}

impl Progress<'_> {
    pub(super) fn report(&self, held: u64) {
        let held = held.min(self.size);
        let before = self
            .best
            .fetch_max(held, std::sync::atomic::Ordering::Relaxed);
        if held > before {
            (self.on_bytes)(held);
            self.watch.send_replace(held);
        }
    }
}
