//! The app's own Podman network (`archy-<app>`, labelled `archy.app=<app>`): its
//! containers reach each other by container name.

use tracing::warn;

use crate::undo::Tracker;
use crate::{Orchestrator, Result, render::network_name};

impl Orchestrator {
    /// Creates the app's network unless a network of that name exists. One that exists
    /// without our label is used as it is and never removed (`remove_network`, undo).
    pub(crate) async fn ensure_network(&self, app: &str, tracker: &Tracker<'_>) -> Result<()> {
        let name = network_name(app);
        if self.runtime.network_owner(&name).await?.is_none() {
            tracker.add(|r| r.networks.push(name.clone()));
            self.runtime.create_network(app, &name).await?;
        }
        Ok(())
    }

    /// Removes the app's network, only if it carries our label (never someone else's).
    pub(crate) async fn remove_network(&self, app: &str) {
        let name = network_name(app);
        let labelled = self
            .runtime
            .network_owner(&name)
            .await
            .is_ok_and(|owner| owner.as_deref() == Some(app));
        if labelled && let Err(e) = self.runtime.remove_network(&name).await {
            warn!(network = %name, error = %e, "could not remove the app network");
        }
    }
}
