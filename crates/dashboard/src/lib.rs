//! The node's web dashboard: static pages embedded in the binary (no CDN, no build step)
//! that drive the node's JSON API from the operator's browser, and the login that lets them.
//!
//! - [`password`]: the admin password, argon2id in `<data_dir>/admin.password` (0600);
//! - [`session`]: the `archy_session` cookie, server-side sessions, their CSRF tokens;
//! - [`ratelimit`]: failed logins per client address and in total;
//! - [`Dashboard::routes`]: `/`, `/assets/*`, `/ui/session`, `/ui/login`, `/ui/logout`,
//!   `/ui/setup`;
//! - [`Dashboard::admit_cookie`]: what the node's front door asks about a `/v1/*` request
//!   that carries a session cookie instead of the bearer token.
//!
//! The front door (Host and Origin checks) stands in front of these routes too; the routes
//! themselves need no session, since logging in cannot need one.

pub mod password;
pub mod ratelimit;
pub mod session;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use zeroize::Zeroizing;

pub use ratelimit::{Limits, LoginLimiter};

use archy_api::{ApiError, ErrorKind};
pub use session::{Authenticated, CSRF_HEADER, Lifetimes, SessionStore};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const ICON_SVG: &str = include_str!("../assets/icon.svg");

/// The pages' Content-Security-Policy: our own script and styles only, no inline code, no
/// other origin, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's own paths: the front door lets them through without a credential (after
/// its Host and Origin checks); everything else of the node's API needs one.
pub fn is_dashboard_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/index.html" | "/ui/session" | "/ui/login" | "/ui/logout" | "/ui/setup"
    ) || path.starts_with("/assets/")
}

/// How a request that carries a session cookie fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieAdmission {
    /// No session cookie in the request.
    NoCookie,
    /// A cookie, but no live session (expired, logged out, forged, password changed).
    NoSession,
    /// A live session, but a state-changing request without its CSRF header.
    MissingCsrf,
    /// A live session, but another CSRF token.
    WrongCsrf,
    Admitted,
}

/// The dashboard: its password file, sessions and login limiter.
pub struct Dashboard {
    data_dir: PathBuf,
    lifetimes: Lifetimes,
    sessions: SessionStore,
    limiter: LoginLimiter,
    /// Logins are checked one at a time, so parallel guesses cannot slip past the limiter.
    login_lock: tokio::sync::Mutex<()>,
}

impl Dashboard {
    /// The dashboard of the node whose data dir is `data_dir`, with the default lifetimes
    /// (12 h idle, 7 days absolute) and limits (5 failures per 5 min per address, 50 in all).
    pub fn new(data_dir: impl Into<PathBuf>) -> Arc<Self> {
        Self::with_limits(data_dir, Lifetimes::default(), Limits::default())
    }

    pub fn with_limits(
        data_dir: impl Into<PathBuf>,
        lifetimes: Lifetimes,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Self {
            data_dir: data_dir.into(),
            lifetimes,
            sessions: SessionStore::new(lifetimes),
            limiter: LoginLimiter::new(limits),
            login_lock: Default::default(),
        })
    }

    /// The hash of the password file as it is now; `None` when there is none (or it cannot
    /// be trusted), which ends every session.
    fn password_stamp(&self) -> Option<blake3::Hash> {
        match password::read(&self.data_dir) {
            Ok(Some(phc)) => Some(blake3::hash(phc.as_bytes())),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("dashboard: {e:#}");
                None
            }
        }
    }

    /// The live session a request's cookie names.
    pub fn session(&self, headers: &HeaderMap) -> Option<Authenticated> {
        let id = session::cookie_value(headers, session::COOKIE)?;
        if id.is_empty() {
            return None;
        }
        self.sessions.authenticate(id, self.password_stamp())
    }

    /// Whether a request to the API may proceed on its session cookie: a live session, and
    /// on a state-changing method its CSRF token in the `X-CSRF-Token` header.
    pub fn admit_cookie(&self, method: &Method, headers: &HeaderMap) -> CookieAdmission {
        if session::cookie_value(headers, session::COOKIE).is_none_or(str::is_empty) {
            return CookieAdmission::NoCookie;
        }
        let Some(session) = self.session(headers) else {
            return CookieAdmission::NoSession;
        };
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return CookieAdmission::Admitted;
        }
        let offered = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        match offered {
            None => CookieAdmission::MissingCsrf,
            Some(_) if !session.csrf_matches(offered) => CookieAdmission::WrongCsrf,
            Some(_) => CookieAdmission::Admitted,
        }
    }

    /// The pages and the login routes.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/index.html", get(index))
            .route("/assets/app.js", get(app_js))
            .route("/assets/app.css", get(app_css))
            .route("/assets/icon.svg", get(icon_svg))
            .route("/ui/session", get(session_info))
            .route("/ui/login", post(login))
            .route("/ui/logout", post(logout))
            .route("/ui/setup", post(setup))
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self.clone())
    }
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it, Chromium sends `Origin: null` on the page's own form
    // posts (logout), which the front door rightly refuses. `same-origin` still keeps the
    // dashboard's URLs from the apps its launch links open.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}
async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}
async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}
async fn icon_svg() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

/// The peer's address, when the server was started with connect info.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| *addr),
        ))
    }
}

impl Peer {
    fn ip(&self) -> Option<IpAddr> {
        self.0.map(|a| a.ip().to_canonical())
    }

    /// A loopback peer that is not a proxy passing on someone else's request.
    fn is_local(&self, headers: &HeaderMap) -> bool {
        let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
            .iter()
            .any(|h| headers.contains_key(*h));
        !proxied && self.ip().is_some_and(|ip| ip.is_loopback())
    }
}

/// The API's one error shape ([`ApiError`]), with the one status its kind has everywhere.
fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(ApiError::new(kind, message))).into_response()
}

/// `GET /ui/session`: whether the browser is logged in (and its CSRF token), whether a
/// password is set, and whether this browser may set the first one.
async fn session_info(State(d): State<Arc<Dashboard>>, peer: Peer, headers: HeaderMap) -> Response {
    let password_set =
        d.password_stamp().is_some() || password::password_path(&d.data_dir).exists();
    let session = d.session(&headers);
    axum::Json(serde_json::json!({
        "authenticated": session.is_some(),
        "csrf": session.as_ref().map(Authenticated::csrf),
        "password_set": password_set,
        "setup_allowed": !password_set && peer.is_local(&headers),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct PasswordBody {
    password: Zeroizing<String>,
}

// The refusal is the response itself, as axum handlers return it.
#[allow(clippy::result_large_err)]
fn parse_password(headers: &HeaderMap, body: &[u8]) -> Result<PasswordBody, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(error(
            ErrorKind::WrongContentType,
            "send {\"password\": …} as application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|_| error(ErrorKind::Invalid, "the body must be {\"password\": \"…\"}"))
}

fn logged_in(d: &Dashboard, stamp: blake3::Hash) -> Response {
    let new = d.sessions.create(stamp);
    let cookie = session::set_cookie(&new.id, &d.lifetimes);
    let mut response = axum::Json(serde_json::json!({ "csrf": new.csrf.as_str() })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
    );
    response
}

/// `POST /ui/login` `{"password"}`: a session cookie and its CSRF token; 401 on a wrong
/// password, 429 with Retry-After when the client (or everyone) failed too often.
async fn login(
    State(d): State<Arc<Dashboard>>,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let offered = match parse_password(&headers, &body) {
        Ok(b) => b.password,
        Err(r) => return r,
    };
    let client = peer.ip();
    let _one_at_a_time = d.login_lock.lock().await;
    if let Err(wait) = d.limiter.check(client) {
        tracing::warn!(client = ?client, "dashboard login refused: too many failed attempts");
        let secs = wait.as_secs().max(1);
        let mut response = error(
            ErrorKind::RateLimited,
            format!("too many failed logins: try again in {secs} s"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    let phc = match password::read(&d.data_dir) {
        Ok(Some(phc)) => phc,
        Ok(None) => {
            return error(
                ErrorKind::Conflict,
                "no admin password is set yet: run `archy admin password` on the node, or open the dashboard from the node itself",
            );
        }
        Err(e) => {
            tracing::error!("dashboard login: {e:#}");
            return error(
                ErrorKind::Internal,
                "the admin password file cannot be used; see the node's log",
            );
        }
    };
    let stamp = blake3::hash(phc.as_bytes());
    let ok = tokio::task::spawn_blocking(move || password::verify(&phc, &offered))
        .await
        .unwrap_or(false);
    if ok {
        d.limiter.succeeded(client);
        tracing::info!(client = ?client, "dashboard login");
        logged_in(&d, stamp)
    } else {
        d.limiter.failed(client);
        tracing::warn!(client = ?client, "dashboard login failed: wrong password");
        error(ErrorKind::Unauthorized, "wrong password")
    }
}

/// `POST /ui/setup` `{"password"}`: sets the first admin password, only while none is set
/// and only for a browser on the node itself (a loopback peer, not through a proxy); logs in.
async fn setup(
    State(d): State<Arc<Dashboard>>,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !peer.is_local(&headers) {
        tracing::warn!(client = ?peer.ip(), "dashboard setup refused: not a loopback client");
        return error(
            ErrorKind::Refused,
            "the first password can only be set from the node itself (or with `archy admin password`)",
        );
    }
    let offered = match parse_password(&headers, &body) {
        Ok(b) => b.password,
        Err(r) => return r,
    };
    if let Err(why) = password::check_strength(&offered) {
        return error(ErrorKind::Invalid, why);
    }
    let data_dir = d.data_dir.clone();
    let written = tokio::task::spawn_blocking(move || {
        password::write(&data_dir, &offered, password::Mode::FirstOnly)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.to_string().contains("already set") => {
            return error(ErrorKind::Conflict, "an admin password is already set");
        }
        Ok(Err(e)) => {
            tracing::error!("dashboard setup: {e:#}");
            return error(
                ErrorKind::Internal,
                "could not store the password; see the node's log",
            );
        }
        Err(e) => return error(ErrorKind::Internal, e.to_string()),
    }
    tracing::info!("dashboard: the admin password was set from the first-run page");
    match d.password_stamp() {
        Some(stamp) => logged_in(&d, stamp),
        None => error(ErrorKind::Internal, "the password was not stored"),
    }
}

/// `POST /ui/logout`: ends the session. It needs the session's CSRF token, in the
/// `X-CSRF-Token` header (fetch) or a `csrf` form field (the page's form).
async fn logout(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(id) = session::cookie_value(&headers, session::COOKIE).filter(|v| !v.is_empty())
    else {
        return cleared(StatusCode::OK, &headers);
    };
    let Some(session) = d.session(&headers) else {
        return cleared(StatusCode::OK, &headers);
    };
    let from_header = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let from_form = form_field(&body, "csrf");
    let offered = from_header.or(from_form);
    if !session.csrf_matches(offered.as_deref()) {
        return error(
            ErrorKind::CrossSite,
            "logout needs the session's CSRF token",
        );
    }
    d.sessions.remove(id);
    tracing::info!("dashboard logout");
    cleared(StatusCode::OK, &headers)
}

/// The answer to a logout: the cookie removed; a form submission goes back to the page.
fn cleared(status: StatusCode, headers: &HeaderMap) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut response = if is_form {
        (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
    } else {
        (
            status,
            axum::Json(serde_json::json!({ "logged_out": true })),
        )
            .into_response()
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie()).expect("ASCII"),
    );
    response
}

/// A field of an `application/x-www-form-urlencoded` body (our values are hex: no decoding
/// beyond `+` is needed, anything else simply does not match).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn call(
        router: &Router,
        request: Request<Body>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or_default(),
        )
    }

    fn post(path: &str, peer: [u8; 4], body: &str) -> Request<Body> {
        let mut r = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((peer, 40000))));
        r
    }

    fn cookie_of(headers: &HeaderMap) -> String {
        let set = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn dashboard_paths_are_only_the_pages_and_the_login() {
        for p in [
            "/",
            "/assets/app.js",
            "/ui/login",
            "/ui/logout",
            "/ui/setup",
            "/ui/session",
        ] {
            assert!(is_dashboard_path(p), "{p}");
        }
        for p in ["/v1/status", "/ui", "/ui/login/x", "/v1/apps", "/assets"] {
            assert!(!is_dashboard_path(p), "{p}");
        }
    }

    #[tokio::test]
    async fn first_run_setup_answers_only_to_loopback_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dashboard::new(dir.path());
        let app = d.routes();
        let body = r#"{"password":"a long password"}"#;
        let (status, _, refused) = call(&app, post("/ui/setup", [192, 168, 1, 9], body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a LAN peer may not set it"
        );
        // The API's one error shape, with its kind's one status.
        let refused: ApiError = serde_json::from_value(refused).unwrap();
        assert_eq!(refused.kind, ErrorKind::Refused);
        assert!(
            refused.error.contains("from the node itself"),
            "{refused:?}"
        );
        let mut proxied = post("/ui/setup", [127, 0, 0, 1], body);
        proxied
            .headers_mut()
            .insert("x-forwarded-for", "203.0.113.1".parse().unwrap());
        let (status, _, _) = call(&app, proxied).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a proxy's loopback connection is not local"
        );
        let (status, _, _) = call(
            &app,
            post("/ui/setup", [127, 0, 0, 1], r#"{"password":"short"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, headers, body_json) =
            call(&app, post("/ui/setup", [127, 0, 0, 1], body)).await;
        assert_eq!(status, StatusCode::OK, "{body_json}");
        let cookie = cookie_of(&headers);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, cookie.parse().unwrap());
        let csrf = body_json["csrf"].as_str().unwrap();
        assert_eq!(d.session(&h).unwrap().csrf(), csrf);
        let (status, _, _) = call(
            &app,
            post(
                "/ui/setup",
                [127, 0, 0, 1],
                r#"{"password":"another password"}"#,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "never twice");
    }

    #[tokio::test]
    async fn login_logout_csrf_and_rate_limit() {
        let dir = tempfile::tempdir().unwrap();
        password::write(dir.path(), "the right one", password::Mode::Replace).unwrap();
        let d = Dashboard::with_limits(
            dir.path(),
            Lifetimes::default(),
            Limits {
                per_client: 3,
                global: 100,
                window: std::time::Duration::from_secs(300),
            },
        );
        let app = d.routes();
        let good = r#"{"password":"the right one"}"#;
        let bad = r#"{"password":"wrong"}"#;
        let (status, headers, body) = call(&app, post("/ui/login", [10, 0, 0, 1], good)).await;
        assert_eq!(status, StatusCode::OK);
        let set = headers
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let cookie = cookie_of(&headers);
        let csrf = body["csrf"].as_str().unwrap().to_owned();
        let with = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, cookie.parse().unwrap());
            for (k, v) in pairs {
                h.insert(
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        assert_eq!(
            d.admit_cookie(&Method::GET, &with(&[])),
            CookieAdmission::Admitted
        );
        assert_eq!(
            d.admit_cookie(&Method::POST, &with(&[])),
            CookieAdmission::MissingCsrf
        );
        assert_eq!(
            d.admit_cookie(&Method::POST, &with(&[(CSRF_HEADER, &"0".repeat(64))])),
            CookieAdmission::WrongCsrf
        );
        assert_eq!(
            d.admit_cookie(&Method::DELETE, &with(&[(CSRF_HEADER, &csrf)])),
            CookieAdmission::Admitted
        );
        assert_eq!(
            d.admit_cookie(&Method::GET, &HeaderMap::new()),
            CookieAdmission::NoCookie
        );

        // Wrong passwords: 401 until the limit, then 429 with Retry-After, even for the
        // right password from that address; another address still gets in.
        for _ in 0..3 {
            let (status, _, body) = call(&app, post("/ui/login", [10, 0, 0, 2], bad)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
        let response = app
            .clone()
            .oneshot(post("/ui/login", [10, 0, 0, 2], good))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = response.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry), "{retry}");
        let (status, _, _) = call(&app, post("/ui/login", [10, 0, 0, 3], good)).await;
        assert_eq!(status, StatusCode::OK);

        // Logout without the CSRF token is refused; with it, the session is gone.
        let mut r = post("/ui/logout", [10, 0, 0, 1], "{}");
        r.headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
        assert_eq!(call(&app, r).await.0, StatusCode::FORBIDDEN);
        let mut r = Request::post("/ui/logout")
            .header("content-type", "application/x-www-form-urlencoded")
            .header(header::COOKIE, &cookie)
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap();
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 1))));
        let (status, headers, _) = call(&app, r).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(
            headers[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        assert_eq!(
            d.admit_cookie(&Method::GET, &with(&[])),
            CookieAdmission::NoSession
        );
    }

    #[tokio::test]
    async fn pages_are_served_with_a_strict_policy() {
        let dir = tempfile::tempdir().unwrap();
        let app = Dashboard::new(dir.path()).routes();
        for (path, ty) in [
            ("/", "text/html"),
            ("/assets/app.js", "text/javascript"),
            ("/assets/app.css", "text/css"),
        ] {
            let response = app
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert!(
                response.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with(ty)
            );
            assert_eq!(response.headers()["content-security-policy"], CSP);
            assert_eq!(response.headers()["x-frame-options"], "DENY");
        }
        // No external resource in the pages.
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(
                !text.contains("https://") && !text.contains("//cdn"),
                "an external reference"
            );
        }
    }
}
