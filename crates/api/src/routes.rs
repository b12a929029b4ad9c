//! The API's paths: one constant per route (the template, as the server and the OpenAPI
//! document spell it) and a builder per parameterised route that percent-encodes what it
//! is given, so a value can never add a path segment.

/// An HTTP method of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

pub const STATUS: &str = "/v1/status";
pub const SWARM: &str = "/v1/swarm";
pub const SWARM_FETCH: &str = "/v1/swarm/fetch/{hash}";
pub const CATALOG_APPS: &str = "/v1/catalog/apps";
pub const CATALOG_PULL: &str = "/v1/catalog/pull";
pub const CATALOG_APP_PLAN: &str = "/v1/catalog/apps/{id}/plan";
pub const STORE: &str = "/v1/store";
pub const MARKET: &str = "/v1/market";
pub const MARKET_DISCOVER: &str = "/v1/market/discover";
pub const MARKET_APP: &str = "/v1/market/{app}";
pub const MARKET_INSTALL: &str = "/v1/market/{app}/install";
pub const TRUST_KEYS: &str = "/v1/trust/keys";
pub const TRUST_KEY: &str = "/v1/trust/keys/{key}";
pub const OPERATOR: &str = "/v1/operator";
pub const OPERATOR_KEY: &str = "/v1/operator/key";
pub const OPERATOR_FOLLOW: &str = "/v1/operator/follow";
pub const OPERATOR_UNFOLLOW: &str = "/v1/operator/unfollow";
pub const OPERATOR_ENDORSE: &str = "/v1/operator/endorse";
pub const OPERATOR_REPORT: &str = "/v1/operator/report";
pub const APPS: &str = "/v1/apps";
pub const APP: &str = "/v1/apps/{id}";
pub const APP_INSTALL: &str = "/v1/apps/{id}/install";
pub const APP_START: &str = "/v1/apps/{id}/start";
pub const APP_STOP: &str = "/v1/apps/{id}/stop";
pub const APP_UPDATE: &str = "/v1/apps/{id}/update";
pub const APP_RESTART: &str = "/v1/apps/{id}/restart";
pub const APP_ADOPT: &str = "/v1/apps/{id}/adopt";
pub const APP_LOGS: &str = "/v1/apps/{id}/logs";
pub const PUBLISH: &str = "/v1/publish";
pub const PUBLISH_SESSION: &str = "/v1/publish/{session}";
pub const PUBLISH_FINISH: &str = "/v1/publish/{session}/finish";
pub const PUBLISH_ARTIFACT: &str = "/v1/publish/{session}/{artifact}";
pub const OPENAPI: &str = "/v1/openapi.json";
pub const OPERATIONS: &str = "/v1/operations";
pub const OPERATION: &str = "/v1/operations/{id}";
pub const OPERATION_EVENTS: &str = "/v1/operations/{id}/events";
pub const SETTINGS: &str = "/v1/settings";

/// Every route of the API: method and path template.
pub const ALL: &[(Method, &str)] = &[
    (Method::Get, STATUS),
    (Method::Get, SWARM),
    (Method::Post, SWARM_FETCH),
    (Method::Get, CATALOG_APPS),
    (Method::Post, CATALOG_PULL),
    (Method::Get, CATALOG_APP_PLAN),
    (Method::Get, STORE),
    (Method::Get, MARKET),
    (Method::Post, MARKET_DISCOVER),
    (Method::Get, MARKET_APP),
    (Method::Post, MARKET_INSTALL),
    (Method::Get, TRUST_KEYS),
    (Method::Post, TRUST_KEY),
    (Method::Delete, TRUST_KEY),
    (Method::Get, OPERATOR),
    (Method::Post, OPERATOR_KEY),
    (Method::Post, OPERATOR_FOLLOW),
    (Method::Post, OPERATOR_UNFOLLOW),
    (Method::Post, OPERATOR_ENDORSE),
    (Method::Post, OPERATOR_REPORT),
    (Method::Get, APPS),
    (Method::Get, APP),
    (Method::Delete, APP),
    (Method::Post, APP_INSTALL),
    (Method::Post, APP_START),
    (Method::Post, APP_STOP),
    (Method::Post, APP_UPDATE),
    (Method::Post, APP_RESTART),
    (Method::Post, APP_ADOPT),
    (Method::Get, APP_LOGS),
    (Method::Post, PUBLISH),
    (Method::Delete, PUBLISH_SESSION),
    (Method::Post, PUBLISH_FINISH),
    (Method::Put, PUBLISH_ARTIFACT),
    (Method::Get, OPENAPI),
    (Method::Get, OPERATIONS),
    (Method::Get, OPERATION),
    (Method::Get, OPERATION_EVENTS),
    (Method::Get, SETTINGS),
    (Method::Put, SETTINGS),
];

/// Percent-encodes one path segment or query value: everything but ASCII letters, digits
/// and `-_.~`, and the dots of a `.` or `..` segment, which URL parsers would resolve.
pub fn encode(value: &str) -> String {
    if value == "." || value == ".." {
        return "%2E".repeat(value.len());
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/v1/market/{app}`
pub fn market_app(app: &str) -> String {
    format!("/v1/market/{}", encode(app))
}

/// `/v1/market/{app}/install?approve=…[&publisher=…]&stream=…`
pub fn market_install(app: &str, publisher: Option<&str>, approve: bool, stream: bool) -> String {
    let publisher = publisher
        .map(|p| format!("&publisher={}", encode(p)))
        .unwrap_or_default();
    format!(
        "/v1/market/{}/install?approve={approve}{publisher}&stream={stream}",
        encode(app)
    )
}

/// `/v1/trust/keys/{key}`
pub fn trust_key(key: &str) -> String {
    format!("/v1/trust/keys/{}", encode(key))
}

/// `/v1/apps/{id}`
pub fn app(id: &str) -> String {
    format!("/v1/apps/{}", encode(id))
}

/// `/v1/swarm/fetch/{hash}`
pub fn swarm_fetch(hash: &str) -> String {
    format!("/v1/swarm/fetch/{}", encode(hash))
}

/// `/v1/apps/{id}?purge=…`
pub fn uninstall(id: &str, purge: bool) -> String {
    format!("{}?purge={purge}", app(id))
}

/// `/v1/apps/{id}/install?stream=…&with_dependencies=…`
pub fn app_install(id: &str, stream: bool, with_dependencies: bool) -> String {
    format!(
        "{}/install?stream={stream}&with_dependencies={with_dependencies}",
        app(id)
    )
}

/// `/v1/apps/{id}/start`
pub fn app_start(id: &str) -> String {
    format!("{}/start", app(id))
}

/// `/v1/apps/{id}/stop`
pub fn app_stop(id: &str) -> String {
    format!("{}/stop", app(id))
}

/// `/v1/apps/{id}/restart`
pub fn app_restart(id: &str) -> String {
    format!("{}/restart", app(id))
}

/// `/v1/catalog/apps/{id}/plan`
pub fn catalog_app_plan(id: &str) -> String {
    format!("/v1/catalog/apps/{}/plan", encode(id))
}

/// `GET /v1/apps/{id}/logs?container=…&tail=…&follow=…[&since=…]`.
pub fn app_logs(id: &str, container: &str, tail: u32, follow: bool, since: Option<&str>) -> String {
    let since = since
        .map(|s| format!("&since={}", encode(s)))
        .unwrap_or_default();
    format!(
        "/v1/apps/{}/logs?container={}&tail={tail}&follow={follow}{since}",
        encode(id),
        encode(container)
    )
}

/// `/v1/apps/{id}/adopt`
pub fn app_adopt(id: &str) -> String {
    format!("{}/adopt", app(id))
}

/// `/v1/apps/{id}/update?approve=…`
pub fn app_update(id: &str, approve: bool) -> String {
    format!("{}/update?approve={approve}", app(id))
}

/// `/v1/operations/{id}`
pub fn operation(id: u64) -> String {
    format!("/v1/operations/{id}")
}

/// `/v1/operations/{id}/events`
pub fn operation_events(id: u64) -> String {
    format!("{}/events", operation(id))
}

/// `/v1/publish/{session}`
pub fn publish_session(session: &str) -> String {
    format!("/v1/publish/{}", encode(session))
}

/// `/v1/publish/{session}/finish`
pub fn publish_finish(session: &str) -> String {
    format!("{}/finish", publish_session(session))
}

/// `/v1/publish/{session}/{artifact}`
pub fn publish_artifact(session: &str, artifact: &str) -> String {
    format!("{}/{}", publish_session(session), encode(artifact))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_add_segments() {
        assert_eq!(app("hello"), "/v1/apps/hello");
        assert_eq!(
            app("notes.0123456789abcdef"),
            "/v1/apps/notes.0123456789abcdef"
        );
        assert_eq!(app(".."), "/v1/apps/%2E%2E");
        assert_eq!(app("../x"), "/v1/apps/..%2Fx");
        assert_eq!(uninstall("a b", true), "/v1/apps/a%20b?purge=true");
        assert_eq!(
            market_install("hello", Some("ab&x=1"), false, true),
            "/v1/market/hello/install?approve=false&publisher=ab%26x%3D1&stream=true"
        );
        assert_eq!(
            app_install("hello", true, false),
            "/v1/apps/hello/install?stream=true&with_dependencies=false"
        );
        assert_eq!(
            app_logs("hello", "web", 5, true, Some("2030-01-01T00:00:00+01:00")),
            "/v1/apps/hello/logs?container=web&tail=5&follow=true&since=2030-01-01T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(
            app_logs("hello", "web", 5, false, None),
            "/v1/apps/hello/logs?container=web&tail=5&follow=false"
        );
    }

    #[test]
    fn builders_follow_their_templates() {
        let fill = |t: &str| {
            t.replace("{app}", "x")
                .replace("{id}", "x")
                .replace("{key}", "x")
                .replace("{session}", "s")
                .replace("{artifact}", "a")
        };
        let strip = |p: String| p.split('?').next().unwrap().to_owned();
        assert_eq!(strip(market_app("x")), fill(MARKET_APP));
        assert_eq!(
            strip(market_install("x", None, false, false)),
            fill(MARKET_INSTALL)
        );
        assert_eq!(trust_key("x"), fill(TRUST_KEY));
        assert_eq!(strip(uninstall("x", false)), fill(APP));
        assert_eq!(strip(app_install("x", false, false)), fill(APP_INSTALL));
        assert_eq!(app_start("x"), fill(APP_START));
        assert_eq!(app_stop("x"), fill(APP_STOP));
        assert_eq!(app_restart("x"), fill(APP_RESTART));
        assert_eq!(app_adopt("x"), fill(APP_ADOPT));
        assert_eq!(catalog_app_plan("x"), fill(CATALOG_APP_PLAN));
        assert_eq!(
            strip(app_logs("x", "web", 1, false, Some("10m"))),
            fill(APP_LOGS)
        );
        assert_eq!(strip(app_update("x", false)), fill(APP_UPDATE));
        assert_eq!(publish_session("s"), fill(PUBLISH_SESSION));
        assert_eq!(publish_finish("s"), fill(PUBLISH_FINISH));
        assert_eq!(publish_artifact("s", "a"), fill(PUBLISH_ARTIFACT));
        assert_eq!(operation(7), OPERATION.replace("{id}", "7"));
        assert_eq!(operation_events(7), OPERATION_EVENTS.replace("{id}", "7"));
    }
}
