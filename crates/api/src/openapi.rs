//! The OpenAPI 3.1 document of the API, generated from the types of this crate. The
//! functions below are never called: they only carry each route's `#[utoipa::path]`
//! description (method, path, parameters, bodies, answers).

#![allow(dead_code)]

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ApiError, ErrorKind};
use crate::operations::*;
use crate::types::*;

/// The document type; [`openapi`] builds it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Archipelago node API",
        description = "The HTTP API of an `archy node run`: loopback by default, every route \
                       needs the node's bearer token (`<data_dir>/api.token`), `Host` must name \
                       the node, cross-site callers are refused, and every state change needs \
                       `Content-Type: application/json` (artifact uploads: \
                       `application/octet-stream`). Errors are `ApiError`: a message for a \
                       person and a stable `kind`.",
    ),
    paths(
        status,
        swarm,
        swarm_fetch,
        catalog_apps,
        catalog_pull,
        catalog_app_plan,
        store,
        market,
        market_discover,
        market_app,
        market_install,
        trusted_keys,
        trust_key,
        untrust_key,
        operator,
        operator_key,
        operator_follow,
        operator_unfollow,
        operator_endorse,
        operator_report,
        settings,
        settings_update,
        apps,
        app,
        uninstall,
        app_install,
        app_start,
        app_stop,
        app_update,
        app_restart,
        app_adopt,
        app_logs,
        publish_begin,
        publish_abort,
        publish_finish,
        publish_upload,
        openapi_document,
        operations,
        operation,
        operation_events,
    ),
    components(schemas(
        ApiError,
        ErrorKind,
        OperationEvent,
        Progress,
        Stage,
        ArtifactBytes,
        OperationView,
        OperationKind,
        OperationState,
        OperationStreamEvent,
        OperationResult,
    )),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags(
        (name = "node", description = "The node's state"),
        (name = "catalog", description = "The verified first-party catalog"),
        (name = "apps", description = "Installed apps and their lifecycle"),
        (name = "market", description = "Third-party apps discovered on Nostr relays, and the keys the operator trusts"),
        (name = "operator", description = "This node's own Nostr key: follows, endorsements and reports signed by it, sent to the node's relays"),
        (name = "publish", description = "Artifact uploads for `archy app publish`"),
        (name = "operations", description = "Installs, updates, removals, starts and stops: tasks of the node that finish whether or not their client stays"),
    ),
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token in the node's `<data_dir>/api.token` (mode 0600).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI document (what `GET /v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[utoipa::path(get, path = "/v1/status", tag = "node",
    summary = "Trust state, catalog freshness, swarm totals, alarms",
    responses(
        (status = 200, body = StatusView),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn status() {}

#[utoipa::path(get, path = "/v1/swarm", tag = "node",
    summary = "Bytes by source, fallbacks, strikes, peers",
    responses(
        (status = 200, body = SwarmStatus),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
    ))]
fn swarm() {}

#[utoipa::path(post, path = "/v1/swarm/fetch/{hash}", tag = "node",
    summary = "Fetch one artifact the verified catalog names into the store (peers first, origin always wins); installs nothing",
    params(("hash" = String, Path, description = "The artifact's BLAKE3 hash, as the catalog names it")),
    responses(
        (status = 200, body = SwarmFetch),
        (status = "4XX", body = ApiError, description = "No catalog artifact has this hash (`not_found`), a bad hash (`invalid`), a publish-only node (`refused`), …"),
        (status = "5XX", body = ApiError, description = "No verified catalog or no provider could serve it (`unavailable`), or the node failed"),
    ))]
fn swarm_fetch() {}

#[utoipa::path(get, path = "/v1/catalog/apps", tag = "catalog",
    summary = "Apps in the verified catalog (empty before the first accepted pull)",
    responses(
        (status = 200, body = Vec<CatalogAppView>),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn catalog_apps() {}

#[utoipa::path(post, path = "/v1/catalog/pull", tag = "catalog",
    summary = "Pull the catalog from the origin now",
    responses(
        (status = 200, body = PullResponse),
        (status = "4XX", body = ApiError, description = "Refused (e.g. a catalog that does not verify: `refused`)"),
        (status = "5XX", body = ApiError, description = "The origin did not answer (`unavailable`), or the node failed"),
    ))]
fn catalog_pull() {}

#[utoipa::path(get, path = "/v1/catalog/apps/{id}/plan", tag = "catalog",
    summary = "What installing a catalog app with its dependencies would install, in order; changes nothing",
    params(("id" = String, Path, description = "The catalog's app id")),
    responses(
        (status = 200, body = InstallPlan),
        (status = "4XX", body = ApiError, description = "Not in the catalog or a dependency missing from it (`not_found`), installed already or a dependency outside its range (`conflict`), a dependency cycle (`refused`), …"),
        (status = "5XX", body = ApiError, description = "No verified catalog yet (`unavailable`), or the node failed"),
    ))]
fn catalog_app_plan() {}

#[utoipa::path(get, path = "/v1/store", tag = "catalog",
    summary = "Everything the store shows: catalog apps and marketplace listings with their permissions in words, publishers' scores with every term, what is installed; compressed (gzip, br) when asked",
    responses(
        (status = 200, body = StoreView),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn store() {}

#[utoipa::path(get, path = "/v1/market", tag = "market",
    summary = "Verified publications, newest per publisher and app",
    responses(
        (status = 200, body = Vec<MarketRow>),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn market() {}

#[utoipa::path(post, path = "/v1/market/discover", tag = "market",
    summary = "Ask the configured relays now, and rescore publishers",
    responses(
        (status = 200, body = DiscoverResponse),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "Relays did not answer (`unavailable`), or the node failed"),
    ))]
fn market_discover() {}

#[utoipa::path(get, path = "/v1/market/{app}", tag = "market",
    summary = "Each publisher's listing of an app: local id, sandbox verdict, trust score",
    params(("app" = String, Path, description = "The app id as its manifest names it")),
    responses(
        (status = 200, body = Vec<MarketDetail>),
        (status = "4XX", body = ApiError, description = "No listing (`not_found`), a bad id (`invalid`), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn market_app() {}

#[utoipa::path(post, path = "/v1/market/{app}/install", tag = "market",
    summary = "Install a third-party app, sandboxed, under its publisher's namespace",
    params(("app" = String, Path, description = "The app id as its manifest names it"), MarketInstallQuery),
    responses(
        (status = 200, description = "The installed app; with `stream=true`, NDJSON lines of `OperationEvent` ending in a result or an error",
            content(
                (AppView = "application/json"),
                (OperationEvent = "application/x-ndjson"),
            )),
        (status = "4XX", body = ApiError, description = "Below the trust threshold without `approve`, refused by the sandbox policy (`refused`), several publishers (`conflict`), …"),
        (status = "5XX", body = ApiError, description = "The origin or Podman failed"),
    ))]
fn market_install() {}

#[utoipa::path(get, path = "/v1/trust/keys", tag = "market",
    summary = "The Nostr keys the operator trusts: the roots publisher scores start from",
    responses(
        (status = 200, body = Vec<TrustedKey>),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn trusted_keys() {}

#[utoipa::path(post, path = "/v1/trust/keys/{key}", tag = "market",
    summary = "Trust a key; scores are recomputed at the next discovery",
    params(("key" = String, Path, description = "A Nostr public key: npub1… or 64 hex digits")),
    responses(
        (status = 200, body = Trusted),
        (status = "4XX", body = ApiError, description = "Not a key (`invalid`), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn trust_key() {}

#[utoipa::path(delete, path = "/v1/trust/keys/{key}", tag = "market",
    summary = "Stop trusting a key added through the API",
    params(("key" = String, Path, description = "A Nostr public key: npub1… or 64 hex digits")),
    responses(
        (status = 200, body = Untrusted),
        (status = "4XX", body = ApiError, description = "Not trusted, or trusted by the config (`not_found`), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn untrust_key() {}

#[utoipa::path(get, path = "/v1/operator", tag = "operator",
    summary = "This node's own Nostr key (none until first used) and the keys it follows",
    responses(
        (status = 200, body = OperatorView),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn operator() {}

#[utoipa::path(post, path = "/v1/operator/key", tag = "operator",
    summary = "Take the operator's own BIP39 mnemonic as this node's key (NIP-06)",
    request_body = ImportOperatorKey,
    responses(
        (status = 200, body = OperatorView),
        (status = "4XX", body = ApiError, description = "Not a mnemonic (`invalid`), a key is held already and `replace` is not set (`conflict`), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn operator_key() {}

#[utoipa::path(post, path = "/v1/operator/follow", tag = "operator",
    summary = "Follow a publisher: the operator key's contact list (kind 3), merged with the newest copy the relays hold, sent to every relay",
    request_body = FollowRequest,
    responses(
        (status = 200, body = VouchResponse),
        (status = "4XX", body = ApiError, description = "Not a key, nor a DID a listing binds (`invalid`, `not_found`), …"),
        (status = "5XX", body = ApiError, description = "No relay answered for the current list, or none accepted the new one (`unavailable`, each relay's answer in the message)"),
    ))]
fn operator_follow() {}

#[utoipa::path(post, path = "/v1/operator/unfollow", tag = "operator",
    summary = "Unfollow a publisher: the contact list without it, every other entry kept",
    request_body = FollowRequest,
    responses(
        (status = 200, body = VouchResponse),
        (status = "4XX", body = ApiError, description = "Not a key, nor a DID a listing binds (`invalid`, `not_found`), …"),
        (status = "5XX", body = ApiError, description = "No relay answered for the current list, or none accepted the new one (`unavailable`)"),
    ))]
fn operator_unfollow() {}

#[utoipa::path(post, path = "/v1/operator/endorse", tag = "operator",
    summary = "Endorse a publisher or one of its apps: a NIP-32 label (kind 1985) signed by the operator key",
    request_body = EndorseRequest,
    responses(
        (status = 200, body = VouchResponse),
        (status = "4XX", body = ApiError, description = "A bad label or target (`invalid`), no such listing (`not_found`), several publishers (`conflict`), …"),
        (status = "5XX", body = ApiError, description = "No relay accepted it (`unavailable`)"),
    ))]
fn operator_endorse() {}

#[utoipa::path(post, path = "/v1/operator/report", tag = "operator",
    summary = "Report a publisher, an app or a listing's event: a NIP-56 report (kind 1984) signed by the operator key",
    request_body = ReportRequest,
    responses(
        (status = 200, body = VouchResponse),
        (status = "4XX", body = ApiError, description = "A bad reason or target (`invalid`), no such listing (`not_found`), several publishers (`conflict`), …"),
        (status = "5XX", body = ApiError, description = "No relay accepted it (`unavailable`)"),
    ))]
fn operator_report() {}

#[utoipa::path(get, path = "/v1/settings", tag = "node",
    summary = "What the node runs with: trusted keys, relays, the trust threshold, the pull interval",
    responses(
        (status = 200, body = Settings),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn settings() {}

#[utoipa::path(put, path = "/v1/settings", tag = "node",
    summary = "Change settings: kept in the node's database, overriding its config file, in effect at once",
    request_body = SettingsUpdate,
    responses(
        (status = 200, body = Settings),
        (status = "4XX", body = ApiError, description = "A refused value (`invalid`, the message starts with the field's name), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn settings_update() {}

#[utoipa::path(get, path = "/v1/apps", tag = "apps",
    summary = "Installed apps",
    responses(
        (status = 200, body = Vec<AppView>),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn apps() {}

#[utoipa::path(get, path = "/v1/apps/{id}", tag = "apps",
    summary = "One installed app",
    params(("id" = String, Path, description = "The app's id on this node (`hello`, `notes.<16 hex>`)")),
    responses(
        (status = 200, body = AppView),
        (status = "4XX", body = ApiError, description = "Not installed (`not_found`), a bad id (`invalid`), …"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn app() {}

#[utoipa::path(delete, path = "/v1/apps/{id}", tag = "apps",
    summary = "Remove an app; its data stays unless `purge`",
    params(("id" = String, Path, description = "The app's id on this node"), UninstallQuery, StreamQuery),
    responses(
        (status = 200, description = "What was removed; with `stream=true`, NDJSON lines of `OperationStreamEvent` ending in a result or an error. The `x-archy-operation` header names the operation",
            content(
                (Uninstalled = "application/json"),
                (OperationStreamEvent = "application/x-ndjson"),
            )),
        (status = "4XX", body = ApiError, description = "Not installed (`not_found`), needed by another app (`conflict`), …"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn uninstall() {}

#[utoipa::path(post, path = "/v1/apps/{id}/install", tag = "apps",
    summary = "Fetch, verify, install into rootless Podman and start a catalog app",
    params(("id" = String, Path, description = "The catalog's app id"), InstallQuery),
    responses(
        (status = 200, description = "The installed app; with `stream=true`, NDJSON lines of `OperationEvent` ending in a result or an error",
            content(
                (AppView = "application/json"),
                (OperationEvent = "application/x-ndjson"),
            )),
        (status = "4XX", body = ApiError, description = "Not in the catalog (`not_found`), already installed or a port taken (`conflict`), unhealthy and rolled back (`refused`), …"),
        (status = "5XX", body = ApiError, description = "The origin or Podman failed"),
    ))]
fn app_install() {}

#[utoipa::path(post, path = "/v1/apps/{id}/start", tag = "apps",
    summary = "Start an app and want it running",
    params(("id" = String, Path, description = "The app's id on this node")),
    responses(
        (status = 200, body = AppView),
        (status = "4XX", body = ApiError, description = "Not installed (`not_found`), …"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn app_start() {}

#[utoipa::path(post, path = "/v1/apps/{id}/stop", tag = "apps",
    summary = "Stop an app and want it stopped",
    params(("id" = String, Path, description = "The app's id on this node")),
    responses(
        (status = 200, body = AppView),
        (status = "4XX", body = ApiError, description = "Not installed (`not_found`), …"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn app_stop() {}

#[utoipa::path(post, path = "/v1/apps/{id}/update", tag = "apps",
    summary = "Update to the catalog's version (third party: the publisher's newest); rolls back if unhealthy",
    params(("id" = String, Path, description = "The app's id on this node"), UpdateQuery, StreamQuery),
    responses(
        (status = 200, description = "The updated app; with `stream=true`, NDJSON lines of `OperationStreamEvent` ending in a result or an error. The `x-archy-operation` header names the operation",
            content(
                (AppView = "application/json"),
                (OperationStreamEvent = "application/x-ndjson"),
            )),
        (status = "4XX", body = ApiError, description = "Not installed (`not_found`), unhealthy and rolled back or below the trust threshold (`refused`), …"),
        (status = "5XX", body = ApiError, description = "The origin or Podman failed"),
    ))]
fn app_update() {}

#[utoipa::path(post, path = "/v1/apps/{id}/restart", tag = "apps",
    summary = "Restart an app's containers",
    params(("id" = String, Path, description = "The app's id on this node")),
    responses(
        (status = 200, body = AppView),
        (status = "4XX", body = ApiError, description = "Not installed (`not_found`), …"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn app_restart() {}

#[utoipa::path(post, path = "/v1/apps/{id}/adopt", tag = "apps",
    summary = "Record again an app whose labelled containers run but which this node forgot (first party, the catalog's version only; installs nothing)",
    params(("id" = String, Path, description = "The app's id on this node")),
    responses(
        (status = 200, body = AppView),
        (status = "4XX", body = ApiError, description = "Already recorded (`conflict`), no such containers (`not_found`), not in the verified catalog, another version or third party (`refused`), …"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn app_adopt() {}

#[utoipa::path(get, path = "/v1/apps/{id}/logs", tag = "apps",
    summary = "A container's log: the last lines, then (with follow) new ones as they come",
    params(
        ("id" = String, Path, description = "The app's id on this node"),
        LogsQuery,
    ),
    responses(
        (status = 200, content_type = "application/x-ndjson", body = LogLine,
            description = "One `LogLine` per line"),
        (status = "4XX", body = ApiError, description = "No such app or container (`not_found`), …"),
        (status = "5XX", body = ApiError, description = "The node or Podman failed"),
    ))]
fn app_logs() {}

#[utoipa::path(post, path = "/v1/publish", tag = "publish",
    summary = "Begin a publication: declare each artifact's name, size and BLAKE3",
    request_body(content = BeginPublish, content_type = "application/json"),
    responses(
        (status = 200, body = PublishSession),
        (status = "4XX", body = ApiError, description = "A bad declaration (`invalid`), too large (`too_large`), too many publications in progress (`conflict`), …"),
    ))]
fn publish_begin() {}

#[utoipa::path(delete, path = "/v1/publish/{session}", tag = "publish",
    summary = "Abort a publication and release what it uploaded",
    params(("session" = String, Path, description = "The session `POST /v1/publish` gave")),
    responses(
        (status = 200, body = PublishAborted),
        (status = "4XX", body = ApiError, description = "No such publication in progress (`not_found`), …"),
    ))]
fn publish_abort() {}

#[utoipa::path(post, path = "/v1/publish/{session}/finish", tag = "publish",
    summary = "Finish a publication: every declared artifact is uploaded, keep them pinned",
    params(("session" = String, Path, description = "The session `POST /v1/publish` gave")),
    responses(
        (status = 200, body = PublishFinished),
        (status = "4XX", body = ApiError, description = "Artifacts missing (`invalid`), no such publication (`not_found`), …"),
    ))]
fn publish_finish() {}

#[utoipa::path(put, path = "/v1/publish/{session}/{artifact}", tag = "publish",
    summary = "Upload one declared artifact: exactly its declared size, hashing to its declared BLAKE3",
    params(
        ("session" = String, Path, description = "The session `POST /v1/publish` gave"),
        ("artifact" = String, Path, description = "A declared artifact name"),
    ),
    request_body(content = ArtifactBytes, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = UploadedArtifact),
        (status = "4XX", body = ApiError, description = "Not declared or wrong size (`invalid`), larger than declared (`too_large`), wrong hash (`refused`), uploaded already (`conflict`), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn publish_upload() {}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "node",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI document of the API", body = Object, content_type = "application/json"),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
    ))]
fn openapi_document() {}

#[utoipa::path(get, path = "/v1/operations", tag = "operations",
    summary = "Running operations and the last finished ones, newest first",
    responses(
        (status = 200, body = Vec<OperationView>),
        (status = "4XX", body = ApiError, description = "Refused; `kind` says why"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn operations() {}

#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    summary = "One operation",
    params(("id" = u64, Path, description = "The operation's id (the `x-archy-operation` header of the request that started it)")),
    responses(
        (status = 200, body = OperationView),
        (status = "4XX", body = ApiError, description = "No such operation (`not_found`), a bad id (`invalid`), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn operation() {}

#[utoipa::path(get, path = "/v1/operations/{id}/events", tag = "operations",
    summary = "Re-attach to an operation: its events so far, then each new one, up to its result or error",
    params(("id" = u64, Path, description = "The operation's id")),
    responses(
        (status = 200, description = "NDJSON lines of `OperationStreamEvent` ending in a result or an error (an operation this node no longer holds events of: only that line)",
            content((OperationStreamEvent = "application/x-ndjson"))),
        (status = "4XX", body = ApiError, description = "No such operation (`not_found`), a bad id (`invalid`), …"),
        (status = "5XX", body = ApiError, description = "The node failed"),
    ))]
fn operation_events() {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes;

    #[test]
    fn the_document_lists_every_route_and_only_those() {
        let doc = openapi();
        let mut listed = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                (routes::Method::Get, &item.get),
                (routes::Method::Post, &item.post),
                (routes::Method::Put, &item.put),
                (routes::Method::Delete, &item.delete),
            ] {
                if op.is_some() {
                    listed.push((method, path.clone()));
                }
            }
        }
        for (method, path) in routes::ALL {
            assert!(
                listed.contains(&(*method, (*path).to_owned())),
                "{method} {path} is missing from the OpenAPI document"
            );
        }
        assert_eq!(listed.len(), routes::ALL.len(), "{listed:?}");
    }

    #[test]
    fn the_document_names_the_bearer_scheme_the_error_and_the_bodies() {
        let json = serde_json::to_value(openapi()).unwrap();
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(json["security"][0]["bearer"], serde_json::json!([]));
        let schemas = &json["components"]["schemas"];
        for name in [
            "ApiError",
            "ErrorKind",
            "StatusView",
            "SwarmStatus",
            "AppView",
            "CatalogAppView",
            "MarketDetail",
            "StoreView",
            "InstallPlan",
            "TrustedKey",
            "OperationEvent",
            "BeginPublish",
            "OperationView",
            "OperationStreamEvent",
        ] {
            assert!(schemas.get(name).is_some(), "schema {name} missing");
        }
        let kinds = &schemas["ErrorKind"]["enum"];
        assert_eq!(kinds.as_array().map(Vec::len), Some(ErrorKind::ALL.len()));
        let install = &json["paths"]["/v1/apps/{id}/install"]["post"];
        let params: Vec<&str> = install["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["id", "stream", "with_dependencies"]);
        assert!(install["responses"]["200"]["content"]["application/x-ndjson"].is_object());
        assert!(
            json["paths"]["/v1/publish"]["post"]["requestBody"]["content"]["application/json"]
                .is_object()
        );
        // What a client reads back is the same document.
        let back: utoipa::openapi::OpenApi = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), json);
    }
}
