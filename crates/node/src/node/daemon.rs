//! The pull loop: at start and then every `pull_interval_seconds`, pull the catalog, keep
//! the swarm (announce, collect), and discover the marketplace. Each step's failure is
//! logged and never stops the loop or the steps after it.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::Node;

impl Node {
    /// The pull loop: at start, then every interval. Failures are recorded, never fatal.
    pub async fn pull_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_secs(
            self.config.pull_interval_seconds.max(1),
        ));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = self.pull_catalog().await {
                warn!(error = %e, "catalog pull failed");
            }
            if let Err(e) = self.swarm_upkeep().await {
                warn!(error = %e, "swarm upkeep failed");
            }
            if let Err(e) = self.discover_market().await {
                warn!(error = %e, "marketplace discovery failed");
            }
        }
    }
}
