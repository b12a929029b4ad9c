//! Login sessions: a 256-bit random id in the `archy_session` cookie, kept server-side with
//! an idle and an absolute expiry, each with its own CSRF token.
//!
//! The store keys sessions by the BLAKE3 of their id, so neither a lookup nor a comparison
//! runs over the secret itself; CSRF tokens are compared the same way (BLAKE3 equality is
//! constant-time).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// Name of the session cookie.
pub const COOKIE: &str = "archy_session";
/// Header a fetch carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A session unused this long is gone.
    pub idle: Duration,
    /// A session this old is gone, used or not.
    pub absolute: Duration,
    /// At most this many live sessions; the least recently used goes first.
    pub max_sessions: usize,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(12 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            max_sessions: 64,
        }
    }
}

/// A session as the store keeps it.
struct Session {
    csrf: Zeroizing<String>,
    created: Instant,
    last_used: Instant,
    /// Hash of the password file the session logged in against: changing the password
    /// ends every session.
    password_stamp: blake3::Hash,
}

/// What a freshly created session hands to the browser.
pub struct NewSession {
    /// The cookie value (64 hex digits).
    pub id: Zeroizing<String>,
    pub csrf: Zeroizing<String>,
}

/// A live session, as a request authenticated by it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    csrf: String,
}

impl Authenticated {
    /// The session's CSRF token (handed to the page by `/ui/session`).
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `offered` is this session's CSRF token, in constant time.
    pub fn csrf_matches(&self, offered: Option<&str>) -> bool {
        offered.is_some_and(|o| blake3::hash(o.as_bytes()) == blake3::hash(self.csrf.as_bytes()))
    }
}

/// The server-side session store.
pub struct SessionStore {
    lifetimes: Lifetimes,
    sessions: std::sync::Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> Zeroizing<String> {
    Zeroizing::new(hex::encode(rand::random::<[u8; 32]>()))
}

fn key(id: &str) -> [u8; 32] {
    *blake3::hash(id.as_bytes()).as_bytes()
}

impl SessionStore {
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self {
            lifetimes,
            sessions: Default::default(),
        }
    }

    /// A new session for a login against the password file whose hash is `password_stamp`.
    pub fn create(&self, password_stamp: blake3::Hash) -> NewSession {
        self.create_at(password_stamp, Instant::now())
    }

    fn create_at(&self, password_stamp: blake3::Hash, now: Instant) -> NewSession {
        let id = random_hex();
        let csrf = random_hex();
        let mut sessions = self.sessions.lock().expect("session store");
        self.expire(&mut sessions, now);
        while sessions.len() >= self.lifetimes.max_sessions {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => sessions.remove(&k),
                None => break,
            };
        }
        sessions.insert(
            key(&id),
            Session {
                csrf: csrf.clone(),
                created: now,
                last_used: now,
                password_stamp,
            },
        );
        NewSession { id, csrf }
    }

    /// The live session `id` names, refreshing its idle timer; `None` when there is none,
    /// it expired, or the password changed since it logged in.
    pub fn authenticate(
        &self,
        id: &str,
        password_stamp: Option<blake3::Hash>,
    ) -> Option<Authenticated> {
        self.authenticate_at(id, password_stamp, Instant::now())
    }

    fn authenticate_at(
        &self,
        id: &str,
        password_stamp: Option<blake3::Hash>,
        now: Instant,
    ) -> Option<Authenticated> {
        let mut sessions = self.sessions.lock().expect("session store");
        self.expire(&mut sessions, now);
        let k = key(id);
        let session = sessions.get_mut(&k)?;
        if password_stamp != Some(session.password_stamp) {
            sessions.remove(&k);
            return None;
        }
        session.last_used = now;
        Some(Authenticated {
            csrf: session.csrf.to_string(),
        })
    }

    /// Ends the session `id` (logout); whether there was one.
    pub fn remove(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .expect("session store")
            .remove(&key(id))
            .is_some()
    }

    /// Ends every session (the password changed).
    pub fn clear(&self) {
        self.sessions.lock().expect("session store").clear();
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().expect("session store").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expire(&self, sessions: &mut HashMap<[u8; 32], Session>, now: Instant) {
        let Lifetimes { idle, absolute, .. } = self.lifetimes;
        sessions.retain(|_, s| {
            now.saturating_duration_since(s.last_used) < idle
                && now.saturating_duration_since(s.created) < absolute
        });
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value that hands `id` to the browser: never readable by scripts, never
/// sent by another site's page, for the whole node.
pub fn set_cookie(id: &str, lifetimes: &Lifetimes) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        lifetimes.absolute.as_secs()
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(s: &str) -> blake3::Hash {
        blake3::hash(s.as_bytes())
    }

    #[test]
    fn a_session_authenticates_until_logout_and_has_its_own_csrf_token() {
        let store = SessionStore::new(Lifetimes::default());
        let a = store.create(stamp("pw"));
        let b = store.create(stamp("pw"));
        assert_eq!(a.id.len(), 64, "256 bits, hex");
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        let auth = store.authenticate(&a.id, Some(stamp("pw"))).unwrap();
        assert_eq!(auth.csrf(), a.csrf.as_str());
        assert!(auth.csrf_matches(Some(&a.csrf)));
        assert!(!auth.csrf_matches(Some(&b.csrf)), "another session's token");
        assert!(!auth.csrf_matches(None));
        assert!(!auth.csrf_matches(Some("")));
        assert!(store.authenticate("00", Some(stamp("pw"))).is_none());
        assert!(store.remove(&a.id));
        assert!(store.authenticate(&a.id, Some(stamp("pw"))).is_none());
        assert!(store.authenticate(&b.id, Some(stamp("pw"))).is_some());
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_absolute_age() {
        let store = SessionStore::new(Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(150),
            max_sessions: 8,
        });
        let t0 = Instant::now();
        let s = store.create_at(stamp("pw"), t0);
        let at = |secs| t0 + Duration::from_secs(secs);
        // Used every 50 s, it stays alive past the idle limit...
        for t in [50, 100] {
            assert!(
                store
                    .authenticate_at(&s.id, Some(stamp("pw")), at(t))
                    .is_some(),
                "{t}"
            );
        }
        // ...but not past its absolute age.
        assert!(
            store
                .authenticate_at(&s.id, Some(stamp("pw")), at(150))
                .is_none()
        );
        let idle = store.create_at(stamp("pw"), t0);
        assert!(
            store
                .authenticate_at(&idle.id, Some(stamp("pw")), at(61))
                .is_none()
        );
        assert!(store.is_empty());
    }

    #[test]
    fn a_new_password_ends_the_sessions_of_the_old_one() {
        let store = SessionStore::new(Lifetimes::default());
        let s = store.create(stamp("old"));
        assert!(store.authenticate(&s.id, Some(stamp("new"))).is_none());
        assert!(
            store.authenticate(&s.id, Some(stamp("old"))).is_none(),
            "removed for good"
        );
        let s = store.create(stamp("old"));
        assert!(
            store.authenticate(&s.id, None).is_none(),
            "password file gone"
        );
    }

    #[test]
    fn the_store_is_bounded() {
        let store = SessionStore::new(Lifetimes {
            max_sessions: 3,
            ..Lifetimes::default()
        });
        let first = store.create(stamp("pw"));
        for _ in 0..5 {
            store.create(stamp("pw"));
        }
        assert_eq!(store.len(), 3);
        assert!(store.authenticate(&first.id, Some(stamp("pw"))).is_none());
    }

    #[test]
    fn cookies_are_parsed_from_every_cookie_header() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; archy_session=abc ".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie_value(&h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "archy"), None);
        let set = set_cookie("abc", &Lifetimes::default());
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
    }
}
