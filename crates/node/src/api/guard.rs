//! The API's front door, in front of every route: the request must be addressed to one of
//! the node's own names (DNS rebinding), must not come from another site's page (CSRF),
//! must carry the node's credential, and a state-changing request must have a body type a
//! browser cannot send without asking first (a CORS preflight, which we never grant).
//!
//! The credential is the bearer token (the CLI) or, for the web dashboard, a live session
//! cookie; with the cookie, a state-changing request must also carry the session's CSRF token
//! in `X-CSRF-Token`. The dashboard's own pages and login routes
//! ([`archy_dashboard::is_dashboard_path`]) pass the Host and Origin checks and need no
//! credential (logging in cannot need a session); they check what they need themselves.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use archy_dashboard::{CookieAdmission, Dashboard};

use crate::auth::ApiToken;
use crate::node::ErrorKind;

/// What the front door lets in.
pub struct Guard {
    token: ApiToken,
    /// Lowercase host names (no port) the API answers to.
    hosts: Vec<String>,
    /// The web dashboard, whose sessions are a credential too.
    dashboard: Option<Arc<Dashboard>>,
}

impl Guard {
    /// Loopback names, `api_listen`'s own address (unless it is the unspecified address) and
    /// the operator's `api_hosts`.
    pub fn new(token: ApiToken, api_listen: std::net::SocketAddr, extra_hosts: &[String]) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let ip = api_listen.ip();
        if !ip.is_unspecified() {
            hosts.push(match ip {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            });
        }
        for h in extra_hosts {
            if let Some(name) = host_name(h) {
                hosts.push(name);
            }
        }
        hosts.sort();
        hosts.dedup();
        Self {
            token,
            hosts,
            dashboard: None,
        }
    }

    /// Also admits the dashboard's pages, and API requests with a live dashboard session.
    pub fn with_dashboard(mut self, dashboard: Arc<Dashboard>) -> Self {
        self.dashboard = Some(dashboard);
        self
    }

    fn allows_host(&self, host: &str) -> bool {
        host_name(host).is_some_and(|name| self.hosts.contains(&name))
    }
}

/// The host part of a `Host` header value (or an origin's authority), lowercased, without
/// the port; `None` when it is not a plausible host at all.
fn host_name(authority: &str) -> Option<String> {
    let authority = authority.trim().to_ascii_lowercase();
    let name = if authority.starts_with('[') {
        // [v6]:port
        let end = authority.find(']')?;
        let rest = &authority[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        authority[..=end].to_owned()
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name.to_owned(),
            Some(_) => return None,
            None => authority,
        }
    };
    let plausible = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    plausible.then_some(name)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.chars().all(|c| c.is_ascii_digit())
}

fn refuse(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Response {
    let body = archy_api::ApiError::new(kind, message);
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"archy\""),
        );
    }
    response
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: see the module doc for the order of the checks.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match admit(
        &guard,
        request.method(),
        request.uri().path(),
        request.headers(),
    ) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

// A refusal is a whole response, built once per refused request: its size does not matter.
#[allow(clippy::result_large_err)]
fn admit(guard: &Guard, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Response> {
    // 1. Addressed to us: a page on attacker.example that rebinds its name to 127.0.0.1
    //    still sends `Host: attacker.example`.
    let host = header_str(headers, header::HOST).unwrap_or_default();
    if !guard.allows_host(host) {
        return Err(refuse(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorKind::WrongHost,
            format!(
                "this node does not answer to host {host:?}; add it to api_hosts in the node config if it is yours"
            ),
        ));
    }
    // 2. Not from another site's page. Browsers send Origin on every cross-origin request
    //    and on same-origin POSTs; Sec-Fetch-Site where they support it.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin.to_str().ok().is_some_and(|o| {
            ["http://", "https://"]
                .iter()
                .any(|scheme| o.strip_prefix(scheme).is_some_and(|rest| rest == host))
        });
        if !same {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                ErrorKind::CrossSite,
                format!(
                    "requests from the web page at {:?} are refused: the API serves only this node's own pages and its CLI",
                    origin.to_str().unwrap_or("?")
                ),
            ));
        }
    }
    if let Some(site) = header_str(headers, "sec-fetch-site".parse().expect("static name"))
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            ErrorKind::CrossSite,
            format!("a {site} request from a web page is refused"),
        ));
    }
    // The dashboard's pages and login: no credential (they check sessions themselves).
    if guard.dashboard.is_some() && archy_dashboard::is_dashboard_path(path) {
        return Ok(());
    }
    // 3. Authenticated: the token, or a dashboard session (with its CSRF token on changes).
    let offered = header_str(headers, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match offered {
        Some(token) if guard.token.matches(token) => {}
        Some(_) => {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                ErrorKind::Unauthorized,
                "wrong API token",
            ));
        }
        None => match guard
            .dashboard
            .as_ref()
            .map(|d| d.admit_cookie(method, headers))
        {
            Some(CookieAdmission::Admitted) => {}
            Some(CookieAdmission::NoSession) => {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    ErrorKind::Unauthorized,
                    "the dashboard session has ended (logged out, expired, or the password changed): log in again",
                ));
            }
            Some(CookieAdmission::MissingCsrf) => {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    ErrorKind::CrossSite,
                    format!(
                        "{method} {path} with a session cookie needs the session's CSRF token in the X-CSRF-Token header"
                    ),
                ));
            }
            Some(CookieAdmission::WrongCsrf) => {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    ErrorKind::CrossSite,
                    "wrong CSRF token for this session",
                ));
            }
            Some(CookieAdmission::NoCookie) | None => {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    ErrorKind::Unauthorized,
                    "the API needs the node's token: `Authorization: Bearer <token>` from api.token in the node's data dir (the archy CLI sends it), or a dashboard login",
                ));
            }
        },
    }
    // 4. State changes carry a body type no form or simple fetch can produce.
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let expected = if *method == Method::PUT && path.starts_with("/v1/publish/") {
            "application/octet-stream"
        } else {
            "application/json"
        };
        let content_type = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case(expected) {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorKind::WrongContentType,
                format!(
                    "{method} {path} needs Content-Type: {expected} (got {:?})",
                    content_type
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        let dir = tempfile::tempdir().unwrap();
        let token = crate::auth::load_or_create_token(dir.path()).unwrap();
        Guard::new(
            token,
            "127.0.0.1:7878".parse().unwrap(),
            &["Archy.LAN:8443".into()],
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn host_names_are_parsed_strictly() {
        assert_eq!(host_name("127.0.0.1:7878").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:7878").as_deref(), Some("[::1]"));
        assert_eq!(host_name("LOCALHOST").as_deref(), Some("localhost"));
        assert_eq!(host_name("evil.example:x"), None);
        assert_eq!(host_name("[::1]x"), None);
        assert_eq!(host_name("a b"), None);
    }

    #[test]
    fn the_front_door_checks_host_origin_token_and_body_type_in_that_order() {
        let g = guard();
        let auth = format!("Bearer {}", g.token.as_str());
        let ok = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("host", "127.0.0.1:7878"),
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            pairs.extend_from_slice(extra);
            headers(&pairs)
        };
        let status = |method: Method, path: &str, h: &HeaderMap| {
            admit(&g, &method, path, h).err().map(|r| r.status())
        };
        assert_eq!(status(Method::POST, "/v1/apps/x/install", &ok(&[])), None);
        assert_eq!(
            status(Method::GET, "/v1/status", &ok(&[("host", "archy.lan")])),
            None
        );
        assert_eq!(
            status(
                Method::GET,
                "/v1/status",
                &ok(&[("host", "rebound.example:7878")])
            ),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        assert_eq!(
            status(
                Method::POST,
                "/v1/apps/x/stop",
                &ok(&[("origin", "http://evil.example")])
            ),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(Method::POST, "/v1/apps/x/stop", &ok(&[("origin", "null")])),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(
                Method::GET,
                "/v1/status",
                &ok(&[("origin", "http://127.0.0.1:7878")])
            ),
            None
        );
        assert_eq!(
            status(
                Method::GET,
                "/v1/status",
                &ok(&[("sec-fetch-site", "cross-site")])
            ),
            Some(StatusCode::FORBIDDEN)
        );
        let no_token = headers(&[("host", "localhost:7878")]);
        assert_eq!(
            status(Method::GET, "/v1/status", &no_token),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(
                Method::GET,
                "/v1/status",
                &ok(&[("authorization", "Bearer 0000")])
            ),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(
                Method::POST,
                "/v1/apps/x/stop",
                &ok(&[("content-type", "text/plain")])
            ),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(
                Method::PUT,
                "/v1/publish/s/image",
                &ok(&[("content-type", "application/octet-stream")])
            ),
            None
        );
    }

    #[tokio::test]
    async fn a_dashboard_session_is_a_credential_with_its_csrf_token_on_changes() {
        let dir = tempfile::tempdir().unwrap();
        let dashboard = Dashboard::new(dir.path());
        let g = guard().with_dashboard(dashboard.clone());
        archy_dashboard::password::write(
            dir.path(),
            "a long password",
            archy_dashboard::password::Mode::Replace,
        )
        .unwrap();
        // Log in through the dashboard's own route.
        let login = axum::http::Request::post("/ui/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"password":"a long password"}"#))
            .unwrap();
        let response = tower::ServiceExt::oneshot(dashboard.routes(), login)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let csrf = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_owned();
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("host", "127.0.0.1:7878"),
                ("cookie", cookie.as_str()),
                ("content-type", "application/json"),
            ];
            pairs.extend_from_slice(extra);
            headers(&pairs)
        };
        let status = |method: Method, path: &str, h: &HeaderMap| {
            admit(&g, &method, path, h).err().map(|r| r.status())
        };
        assert_eq!(status(Method::GET, "/v1/status", &with(&[])), None);
        assert_eq!(
            status(Method::POST, "/v1/apps/x/stop", &with(&[])),
            Some(StatusCode::FORBIDDEN),
            "no CSRF header"
        );
        assert_eq!(
            status(
                Method::POST,
                "/v1/apps/x/stop",
                &with(&[("x-csrf-token", "00")])
            ),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(
                Method::POST,
                "/v1/apps/x/stop",
                &with(&[("x-csrf-token", &csrf)])
            ),
            None
        );
        // The other checks still apply to cookie requests.
        assert_eq!(
            status(
                Method::POST,
                "/v1/apps/x/stop",
                &with(&[("x-csrf-token", &csrf), ("origin", "http://evil.example")])
            ),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(
                Method::POST,
                "/v1/apps/x/stop",
                &with(&[("x-csrf-token", &csrf), ("content-type", "text/plain")])
            ),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(
                Method::GET,
                "/v1/status",
                &with(&[("host", "evil.example")])
            ),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        // A forged or ended session is no credential; a wrong token is not rescued by a cookie.
        let forged = headers(&[("host", "localhost"), ("cookie", "archy_session=00")]);
        assert_eq!(
            status(Method::GET, "/v1/status", &forged),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(
                Method::GET,
                "/v1/status",
                &with(&[("authorization", "Bearer 00")])
            ),
            Some(StatusCode::UNAUTHORIZED)
        );
        // The dashboard's pages need no credential, but the Host and Origin checks.
        let bare = headers(&[("host", "127.0.0.1:7878")]);
        assert_eq!(status(Method::GET, "/", &bare), None);
        assert_eq!(status(Method::POST, "/ui/login", &bare), None);
        assert_eq!(
            status(
                Method::POST,
                "/ui/login",
                &headers(&[
                    ("host", "127.0.0.1:7878"),
                    ("origin", "http://evil.example")
                ])
            ),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(Method::GET, "/", &headers(&[("host", "evil.example")])),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        // Without a dashboard, its paths need the token like everything else.
        assert_eq!(
            status_without_dashboard(Method::GET, "/", &bare),
            Some(StatusCode::UNAUTHORIZED)
        );
    }

    fn status_without_dashboard(method: Method, path: &str, h: &HeaderMap) -> Option<StatusCode> {
        admit(&guard(), &method, path, h).err().map(|r| r.status())
    }
}
