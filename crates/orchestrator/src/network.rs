//! The app's own Podman network (`archy-<app>`, labelled `archy.app=<app>`): its
//! containers reach each other by container name.

use tracing::warn;

use crate::undo::Tracker;
use crate::{Error, LABEL_APP, Orchestrator, Result, render::network_name};

impl Orchestrator {
    pub(crate) async fn ensure_network(&self, app: &str, tracker: &Tracker<'_>) -> Result<()> {
        let name = network_name(app);
        if !self.engine.network_exists(&name).await? {
            tracker.add(|r| r.networks.push(name.clone()));
            self.engine
                .run(&[
                    "network",
                    "create",
                    "--label",
                    &format!("{LABEL_APP}={app}"),
                    "--",
                    &name,
                ])
                .await?;
        }
        Ok(())
    }

    /// The `archy.app` label of a network: `None` when there is no such network, `Some("")`
    /// when it has no such label (not ours).
    pub(crate) async fn network_owner(&self, name: &str) -> Result<Option<String>> {
        let format = format!("{{{{index .Labels \"{LABEL_APP}\"}}}}");
        match self
            .engine
            .run(&["network", "inspect", "--format", &format, "--", name])
            .await
        {
            Ok(owner) => Ok(Some(owner.trim().to_owned())),
            Err(Error::Engine(e))
                if e.contains("network not found") || e.contains("no such network") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the app's network, only if it carries our label (never someone else's).
    pub(crate) async fn remove_network(&self, app: &str) {
        let name = network_name(app);
        let labelled = self
            .network_owner(&name)
            .await
            .is_ok_and(|owner| owner.as_deref() == Some(app));
        if labelled && let Err(e) = self.engine.run(&["network", "rm", "--", &name]).await {
            warn!(network = %name, error = %e, "could not remove the app network");
        }
    }
}
