//! Adopting an app the node forgot: its labelled containers run, but sqlite has no record
//! of it (a lost or emptied database; the reconciler's `unknown-app` alarm says so). Adopt
//! installs nothing and changes nothing in Podman: it records the app again, at the
//! version it runs, when that is the version the verified catalog lists, wanted as it
//! runs, with its artifacts pinned (fetched into the store when missing, for repairs).
//! Third-party apps are refused: without the publication they were installed from, the
//! node cannot vouch for what runs.

use archy_orchestrator::{ContainerState, LABEL_CONTAINER, LABEL_VERSION};
use tracing::{info, warn};

use super::artifacts::FetchFrom;
use super::{AppView, ErrorKind, Node, NodeError};
use crate::db;

fn refused(message: String) -> NodeError {
    NodeError::new(ErrorKind::Refused, message)
}

impl Node {
    /// Records again first-party app `id` whose labelled containers run in Podman while
    /// sqlite does not know it; refuses, saying why, whenever that cannot be vouched for.
    pub async fn adopt(&self, id: &str) -> Result<AppView, NodeError> {
        self.refuse_installs(&format!("adopt {id}"))?;
        let _held = self.exclusive().await;
        if db::app(&self.db, id).await?.is_some() {
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!("app {id:?} is recorded on this node already: nothing to adopt"),
            ));
        }
        let containers = self.orchestrator.containers_of(id).await?;
        if containers.is_empty() {
            return Err(NodeError::new(
                ErrorKind::NotFound,
                format!(
                    "no container in Podman carries archy.app={id}: nothing to adopt (`archy app install {id}` installs it)"
                ),
            ));
        }
        if let Some((app_id, _)) = id.split_once('.') {
            return Err(refused(format!(
                "{id} is a third-party app: adopt cannot vouch for it without the publication it was \
                 installed from; remove its containers (`podman rm -f`; its volumes stay) and reinstall \
                 it from the marketplace (`archy market install {app_id}`)"
            )));
        }
        let catalog = self.trust.read().await.catalog().cloned().ok_or_else(|| {
            NodeError::new(
                ErrorKind::Unavailable,
                "no verified catalog yet: adopt needs the catalog to vouch for the app; \
                 try again once the node has pulled one (`archy catalog pull`)",
            )
        })?;
        let app = catalog.app(id).ok_or_else(|| {
            refused(format!(
                "{id} is not in the verified catalog (version {}): adopt records only first-party apps \
                 the catalog lists",
                catalog.version()
            ))
        })?;
        let version = app.manifest().version.to_string();
        for c in &containers {
            let info = self.orchestrator.inspect(&c.name).await?.ok_or_else(|| {
                NodeError::new(
                    ErrorKind::Conflict,
                    format!("container {} went away while adopting; try again", c.name),
                )
            })?;
            let labels = &info.labels;
            let Some(running) = labels.get(LABEL_VERSION).map(String::as_str) else {
                return Err(refused(format!(
                    "container {} carries no {LABEL_VERSION} label, so which version runs is unknown; \
                     adopt installs nothing",
                    c.name
                )));
            };
            if running != version {
                return Err(refused(format!(
                    "{id} is running version {running} but the catalog has {version}: adopt installs \
                     nothing, and records only the version the catalog lists (to move to {version} and \
                     keep the data: `podman rm -f` its containers, the volumes stay, then \
                     `archy app install {id}`)"
                )));
            }
            let part = labels.get(LABEL_CONTAINER).map_or("", String::as_str);
            if app.manifest().container(part).is_none()
                || archy_orchestrator::container_name(id, part) != c.name
            {
                return Err(refused(format!(
                    "container {} is not a container of {id} {version} as the catalog describes it",
                    c.name
                )));
            }
        }
        // Repairs need the blobs without the network: fetched into the store when missing
        // (nothing is loaded into Podman), then pinned.
        let origin = &catalog.catalog().origin;
        let peer = self.origin_peer(origin).await.ok();
        let from = FetchFrom {
            iroh: peer.as_ref(),
            http: origin.http.as_str(),
            first_party: true,
        };
        if let Err(e) = self.fetch_images(&app, Some(from), &|_| {}).await {
            warn!(app = id, error = %e, "adopted without its artifacts in the store: repairs need them fetched first");
        }
        self.pin_artifacts(&app).await;
        let desired = if containers
            .iter()
            .any(|c| c.state == ContainerState::Running)
        {
            "running"
        } else {
            "stopped"
        };
        db::insert_app(&self.db, id, &version, catalog.version()).await?;
        if desired == "stopped" {
            db::set_desired(&self.db, id, desired).await?;
        }
        db::clear_unknown_app(&self.db, id).await?;
        info!(app = id, %version, desired, "adopted an app this node had forgotten");
        let runtime = self.orchestrator.status(id).await?;
        Ok(self.view(id, &version, desired, runtime, Some(&app)))
    }
}
