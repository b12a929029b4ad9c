//! Dependencies between apps: the plan of what to install first (checked whole before
//! anything is installed), undoing that on failure, the check that an app's dependencies
//! are installed at versions its ranges accept, and which installed apps need a given one.

use std::collections::BTreeMap;

use archy_orchestrator::{Progress, ProgressSink, Stage};
use archy_registry::manifest::Dependency;
use archy_registry::{VerifiedApp, VerifiedCatalog};
use tracing::{error, warn};

use super::lifecycle::Monotonic;
use super::operation::{Exclusive, OperationKind};
use super::source::{Source, app_in};
use super::{AppView, ErrorKind, Node, NodeError};
use crate::db;

impl Node {
    /// Installs an app and, first, every app it depends on that is not installed yet,
    /// each at the catalog's version (which must satisfy the range). Everything is checked
    /// before anything is installed; if any install fails, the dependencies this call
    /// installed are removed again, so nothing is left half-done.
    pub async fn install_with_dependencies(
        &self,
        id: &str,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        self.install_with_dependencies_as(None, id, progress).await
    }

    /// [`Self::install_with_dependencies`] continuing the record `queued` (a job's) for the
    /// app itself; each dependency gets a record of its own. After a crash each is
    /// recovered on its own: dependencies whose install finished stay installed.
    pub(super) async fn install_with_dependencies_as(
        &self,
        queued: Option<i64>,
        id: &str,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        self.refuse_installs(&format!("install {id}"))?;
        let held = self.exclusive().await;
        let catalog = self.installable_catalog().await?;
        let (app, plan) = self.plan_in(&catalog, id).await?;
        let source = Source::Catalog(&catalog);
        let mut installed_now: Vec<String> = Vec::new();
        // A dependency uninstalled earlier kept its data: undoing our install must not purge it.
        let mut had_data = BTreeMap::new();
        for dep in &plan {
            let id = dep.manifest().id.clone();
            let volumes = self.orchestrator.volumes_of(&id).await?;
            had_data.insert(id, !volumes.is_empty());
        }
        for dep in &plan {
            progress(Progress::new(
                Stage::Checking,
                0,
                1,
                format!(
                    "installing {} {} (needed by {id})",
                    dep.manifest().id,
                    dep.manifest().version
                ),
            ));
            if let Some(queued) = queued {
                db::set_stage(&self.db, queued, "dependencies").await?;
            }
            if let Err(e) = self
                .install_locked(&held, None, &source, dep, &|_| {})
                .await
            {
                self.remove_installed_now(&held, &installed_now, &had_data)
                    .await;
                return Err(NodeError::new(
                    e.kind,
                    format!(
                        "installing {}, which {id} needs: {}",
                        dep.manifest().id,
                        e.message
                    ),
                ));
            }
            installed_now.push(dep.manifest().id.clone());
        }
        let progress = Monotonic::new(progress);
        let progress: ProgressSink<'_> = &|p| progress.emit(p);
        let result = self
            .install_locked(&held, queued, &source, &app, progress)
            .await;
        if result.is_err() {
            self.remove_installed_now(&held, &installed_now, &had_data)
                .await;
        }
        result
    }

    /// What installing `id` with its dependencies would install first, from the current
    /// catalog and the installed apps; changes nothing (the install plans again, under the
    /// operation lock).
    pub async fn install_plan(&self, id: &str) -> Result<archy_api::InstallPlan, NodeError> {
        let catalog = self.installable_catalog().await?;
        let (app, plan) = self.plan_in(&catalog, id).await?;
        let planned = |a: &VerifiedApp| archy_api::PlannedApp {
            id: a.manifest().id.clone(),
            name: a.manifest().name.clone(),
            version: a.manifest().version.to_string(),
        };
        Ok(archy_api::InstallPlan {
            app: planned(&app),
            install_first: plan.iter().map(planned).collect(),
            catalog_version: catalog.version(),
        })
    }

    /// The catalog's app `id` and the plan of its install ([`plan_install`]) against the
    /// apps installed now.
    async fn plan_in(
        &self,
        catalog: &VerifiedCatalog,
        id: &str,
    ) -> Result<(VerifiedApp, Vec<VerifiedApp>), NodeError> {
        let app = app_in(catalog, id)?;
        let installed: BTreeMap<String, String> = db::apps(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.id, r.version))
            .collect();
        let plan = plan_install(catalog, &installed, &app)?;
        Ok((app, plan))
    }

    /// Undoes dependencies installed for an app whose own install failed (newest first),
    /// each as a recorded uninstall. Data a dependency had before is kept; data its fresh
    /// install created goes with it.
    async fn remove_installed_now(
        &self,
        held: &Exclusive<'_>,
        ids: &[String],
        had_data: &BTreeMap<String, bool>,
    ) {
        for dep in ids.iter().rev() {
            let purge = !had_data.get(dep).copied().unwrap_or(true);
            let removed = held
                .run(None, dep, OperationKind::removal(purge), async |_| {
                    let result = match self.orchestrator.uninstall(dep, purge).await {
                        Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => {
                            db::delete_app(&self.db, dep).await.map_err(NodeError::from)
                        }
                        Err(e) => Err(NodeError::from(e)),
                    };
                    self.unpin_app(dep).await;
                    result
                })
                .await;
            if let Err(e) = removed {
                error!(app = %dep, error = %e, "could not remove a dependency installed for a failed install");
            }
        }
    }

    /// Every app this one depends on must be installed at a version its range accepts.
    pub(super) async fn check_dependencies_installed(
        &self,
        app: &VerifiedApp,
    ) -> Result<(), NodeError> {
        for dep in &app.manifest().dependencies {
            let problem = match db::app(&self.db, &dep.id).await? {
                None => format!("{} is not installed", dep.id),
                Some(row) => match semver::Version::parse(&row.version) {
                    Ok(v) if dep.version.matches(&v) => continue,
                    _ => format!(
                        "{} {} is installed, which is outside {}",
                        dep.id, row.version, dep.version
                    ),
                },
            };
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{} needs {} {}: {problem}; install it first (or install with --with-deps)",
                    app.manifest().id,
                    dep.id,
                    dep.version
                ),
            ));
        }
        Ok(())
    }

    /// Refuses `app` when a Podman object it would create has the name of another
    /// installed app's object (ids and names are joined by '-', so `a-b`+`c` is `a`+`b-c`).
    /// Before any fetch or create: a clash found by Podman would fail the install late.
    pub(super) async fn check_names_free(&self, app: &VerifiedApp) -> Result<(), NodeError> {
        let id = app.manifest().id.as_str();
        for row in db::apps(&self.db).await? {
            if row.id == id {
                continue;
            }
            // An installed app whose manifest no longer verifies is skipped: Podman still
            // refuses a create over its objects, and the reconciler reports that app.
            let Ok((_, other)) = self.installed_app(&row.id).await else {
                continue;
            };
            if let Some(why) = archy_orchestrator::name_clash(app.manifest(), other.manifest()) {
                return Err(NodeError::new(ErrorKind::Conflict, why));
            }
        }
        Ok(())
    }

    /// Installed apps whose manifest depends on `id`.
    pub(super) async fn dependents_of(&self, id: &str) -> Result<Vec<String>, NodeError> {
        let mut dependents = Vec::new();
        for row in db::apps(&self.db).await? {
            if row.id == id {
                continue;
            }
            match self.installed_app(&row.id).await {
                Ok((_, app)) => {
                    if app.manifest().dependencies.iter().any(|d| d.id == id) {
                        dependents.push(row.id);
                    }
                }
                // Its manifest cannot be trusted to say what it needs; it must not block
                // the operator from managing the rest.
                Err(e) => {
                    warn!(app = %row.id, error = %e, "cannot verify the app; not counted as a dependent")
                }
            }
        }
        Ok(dependents)
    }
}

/// What a dependency plan reads of a catalog: its version and its apps.
trait PlanCatalog {
    type App: PlanApp;
    fn version(&self) -> u64;
    fn app(&self, id: &str) -> Option<Self::App>;
}

/// What a dependency plan reads of an app: its id, version and dependencies.
trait PlanApp {
    fn id(&self) -> &str;
    fn version(&self) -> &semver::Version;
    fn dependencies(&self) -> &[Dependency];
}

impl PlanCatalog for VerifiedCatalog {
    type App = VerifiedApp;

    fn version(&self) -> u64 {
        VerifiedCatalog::version(self)
    }

    fn app(&self, id: &str) -> Option<VerifiedApp> {
        VerifiedCatalog::app(self, id)
    }
}

impl PlanApp for VerifiedApp {
    fn id(&self) -> &str {
        &self.manifest().id
    }

    fn version(&self) -> &semver::Version {
        &self.manifest().version
    }

    fn dependencies(&self) -> &[Dependency] {
        &self.manifest().dependencies
    }
}

/// The plan of installing `app` with its dependencies ([`dependency_plan`]), refused up
/// front when `app` itself is installed already (`installed`: id → version), as its install
/// would be after installing the dependencies for nothing.
fn plan_install<C: PlanCatalog>(
    catalog: &C,
    installed: &BTreeMap<String, String>,
    app: &C::App,
) -> Result<Vec<C::App>, NodeError> {
    if installed.contains_key(app.id()) {
        return Err(NodeError::new(
            ErrorKind::Conflict,
            format!("app {:?} is already installed", app.id()),
        ));
    }
    dependency_plan(catalog, installed, app)
}

/// The apps to install, in order, before `app`: every dependency not installed yet (and
/// theirs), at the catalog's version, which must satisfy each range that asks for it.
/// An installed dependency outside a range, one the catalog lacks, or a cycle is an error
/// naming the chain that led to it.
fn dependency_plan<C: PlanCatalog>(
    catalog: &C,
    installed: &BTreeMap<String, String>,
    app: &C::App,
) -> Result<Vec<C::App>, NodeError> {
    fn visit<C: PlanCatalog>(
        catalog: &C,
        installed: &BTreeMap<String, String>,
        app: &C::App,
        chain: &mut Vec<String>,
        plan: &mut Vec<C::App>,
    ) -> Result<(), NodeError> {
        chain.push(app.id().to_owned());
        for dep in app.dependencies() {
            let path = format!("{} needs {} {}", chain.join(" → "), dep.id, dep.version);
            if chain.contains(&dep.id) {
                return Err(NodeError::new(
                    ErrorKind::Refused,
                    format!("{path}: a dependency cycle"),
                ));
            }
            if let Some(version) = installed.get(&dep.id) {
                match semver::Version::parse(version) {
                    Ok(v) if dep.version.matches(&v) => continue,
                    _ => {
                        return Err(NodeError::new(
                            ErrorKind::Conflict,
                            format!(
                                "{path}: {} {version} is installed, which is outside {}; update it first",
                                dep.id, dep.version
                            ),
                        ));
                    }
                }
            }
            if plan.iter().any(|p| p.id() == dep.id) {
                if plan
                    .iter()
                    .any(|p| p.id() == dep.id && dep.version.matches(p.version()))
                {
                    continue;
                }
                return Err(NodeError::new(
                    ErrorKind::Conflict,
                    format!("{path}: the catalog's {} does not satisfy it", dep.id),
                ));
            }
            let Some(found) = catalog.app(&dep.id) else {
                return Err(NodeError::new(
                    ErrorKind::NotFound,
                    format!(
                        "{path}: catalog version {} has no {}",
                        catalog.version(),
                        dep.id
                    ),
                ));
            };
            if !dep.version.matches(found.version()) {
                return Err(NodeError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{path}: catalog version {} offers {} {}",
                        catalog.version(),
                        dep.id,
                        found.version()
                    ),
                ));
            }
            visit(catalog, installed, &found, chain, plan)?;
            plan.push(found);
        }
        chain.pop();
        Ok(())
    }
    let mut plan = Vec::new();
    visit(catalog, installed, app, &mut Vec::new(), &mut plan)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct App {
        id: String,
        version: semver::Version,
        dependencies: Vec<Dependency>,
    }

    impl PlanApp for App {
        fn id(&self) -> &str {
            &self.id
        }
        fn version(&self) -> &semver::Version {
            &self.version
        }
        fn dependencies(&self) -> &[Dependency] {
            &self.dependencies
        }
    }

    struct Catalog(Vec<App>);

    impl PlanCatalog for Catalog {
        type App = App;
        fn version(&self) -> u64 {
            9
        }
        fn app(&self, id: &str) -> Option<App> {
            self.0.iter().find(|a| a.id == id).cloned()
        }
    }

    /// `spec`: "id version dep@range dep@range …".
    fn app(spec: &str) -> App {
        let mut words = spec.split_whitespace();
        App {
            id: words.next().unwrap().to_owned(),
            version: words.next().unwrap().parse().unwrap(),
            dependencies: words
                .map(|d| {
                    let (id, range) = d.split_once('@').unwrap();
                    Dependency {
                        id: id.to_owned(),
                        version: range.parse().unwrap(),
                    }
                })
                .collect(),
        }
    }

    fn plan(
        catalog: &[&str],
        installed: &[(&str, &str)],
        id: &str,
    ) -> Result<Vec<String>, NodeError> {
        let catalog = Catalog(catalog.iter().map(|s| app(s)).collect());
        let installed = installed
            .iter()
            .map(|(i, v)| (i.to_string(), v.to_string()))
            .collect();
        let app = catalog.app(id).unwrap();
        Ok(plan_install(&catalog, &installed, &app)?
            .into_iter()
            .map(|a| a.id)
            .collect())
    }

    #[test]
    fn an_installed_app_has_no_plan() {
        let err = plan(&["web 1.0.0 db@^2", "db 2.0.0"], &[("web", "1.0.0")], "web").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(err.message, "app \"web\" is already installed");
        // Its dependencies being installed is what a plan skips, not a refusal.
        assert!(
            plan(&["web 1.0.0 db@^2", "db 2.0.0"], &[("db", "2.0.0")], "web")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn dependencies_come_first_each_once_and_installed_ones_are_skipped() {
        let catalog = [
            "web 1.0.0 api@^1 db@^2",
            "api 1.2.0 db@>=2.1",
            "db 2.3.0",
            "cache 1.0.0",
        ];
        assert_eq!(plan(&catalog, &[], "web").unwrap(), ["db", "api"]);
        assert_eq!(plan(&catalog, &[("db", "2.5.0")], "web").unwrap(), ["api"]);
        assert!(plan(&catalog, &[], "cache").unwrap().is_empty());
    }

    #[test]
    fn a_plan_that_cannot_work_names_the_chain() {
        let err = plan(&["web 1.0.0 api@^1", "api 1.0.0 db@^2"], &[], "web").unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(
            err.message,
            "web → api needs db ^2: catalog version 9 has no db"
        );

        let err = plan(&["web 1.0.0 db@^2", "db 3.0.0"], &[], "web").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "web needs db ^2: catalog version 9 offers db 3.0.0"
        );

        let err = plan(&["web 1.0.0 db@^2", "db 2.0.0"], &[("db", "1.4.0")], "web").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "web needs db ^2: db 1.4.0 is installed, which is outside ^2; update it first"
        );

        let err = plan(&["a 1.0.0 b@^1", "b 1.0.0 a@^1"], &[], "a").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Refused);
        assert_eq!(err.message, "a → b needs a ^1: a dependency cycle");
    }

    #[test]
    fn two_ranges_on_one_planned_dependency_must_both_hold() {
        let catalog = ["web 1.0.0 api@^1 db@<2.2", "api 1.0.0 db@>=2.1", "db 2.3.0"];
        let err = plan(&catalog, &[], "web").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "web needs db <2.2: the catalog's db does not satisfy it"
        );
    }
}
