//! The pull loop: at start and then every `pull_interval_seconds`, pull the catalog, keep
//! the swarm (announce, collect), and discover the marketplace (a publish-only node only
//! discovers). Each step's failure is
//! logged and never stops the loop or the steps after it. The interval is the live one
//! (`PUT /v1/settings`): a change takes effect without a restart, counted from the change.

use std::sync::Arc;

use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use super::Node;

impl Node {
    /// The pull loop: at start, then every interval. Failures are recorded, never fatal.
    pub async fn pull_loop(self: Arc<Self>) {
        let mut changes = self.settings.subscribe();
        let mut every = self.pull_interval();
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                // The sender lives in `self`: this never ends in an error.
                _ = changes.changed() => {
                    let now = self.pull_interval();
                    if now != every {
                        info!(seconds = now.as_secs(), "pull interval changed");
                        every = now;
                        interval = tokio::time::interval_at(Instant::now() + every, every);
                        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    }
                    continue;
                }
            }
            // A publish-only node has no catalog to pull nor swarm to keep for one.
            if !self.publish_only() {
                if let Err(e) = self.pull_catalog().await {
                    warn!(error = %e, "catalog pull failed");
                }
                if let Err(e) = self.swarm_upkeep().await {
                    warn!(error = %e, "swarm upkeep failed");
                }
            }
            if let Err(e) = self.discover_market().await {
                warn!(error = %e, "marketplace discovery failed");
            }
        }
    }
}
