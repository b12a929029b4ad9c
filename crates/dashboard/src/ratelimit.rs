//! The login rate limit: failed attempts counted per client address in a sliding window,
//! and in total (so many addresses cannot share the work of guessing).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures one address may have in `window`.
    pub per_client: usize,
    /// Failures all addresses together may have in `window`.
    pub global: usize,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_client: 5,
            global: 50,
            window: Duration::from_secs(300),
        }
    }
}

/// Failures by client (`None`: the address is unknown; those share one bucket).
pub struct LoginLimiter {
    limits: Limits,
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    by_client: HashMap<Option<IpAddr>, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Default::default(),
        }
    }

    /// `Err(retry_after)` when `client` may not try now.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    /// Counts a failed attempt.
    pub fn failed(&self, client: Option<IpAddr>) {
        self.failed_at(client, Instant::now())
    }

    /// A successful login forgets the client's failures (not the global ones).
    pub fn succeeded(&self, client: Option<IpAddr>) {
        self.state
            .lock()
            .expect("limiter")
            .by_client
            .remove(&client);
    }

    fn check_at(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().expect("limiter");
        self.prune(&mut state, now);
        let window = self.limits.window;
        let wait = |q: &VecDeque<Instant>, limit: usize| -> Option<Duration> {
            (q.len() >= limit).then(|| {
                // The oldest failure that must leave the window for one more attempt.
                let oldest = q[q.len() - limit];
                (oldest + window)
                    .saturating_duration_since(now)
                    .max(Duration::from_secs(1))
            })
        };
        let client_wait = state
            .by_client
            .get(&client)
            .and_then(|q| wait(q, self.limits.per_client));
        let global_wait = wait(&state.all, self.limits.global);
        match client_wait.into_iter().chain(global_wait).max() {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    fn failed_at(&self, client: Option<IpAddr>, now: Instant) {
        let mut state = self.state.lock().expect("limiter");
        self.prune(&mut state, now);
        state.by_client.entry(client).or_default().push_back(now);
        state.all.push_back(now);
    }

    fn prune(&self, state: &mut State, now: Instant) {
        let window = self.limits.window;
        let old = |t: &Instant| now.saturating_duration_since(*t) >= window;
        while state.all.front().is_some_and(old) {
            state.all.pop_front();
        }
        state.by_client.retain(|_, q| {
            while q.front().is_some_and(old) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 168, 1, last]))
    }

    #[test]
    fn five_failures_lock_a_client_out_until_the_window_slides() {
        let limiter = LoginLimiter::new(Limits::default());
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        for i in 0..5 {
            assert!(limiter.check_at(ip(1), at(i * 10)).is_ok(), "attempt {i}");
            limiter.failed_at(ip(1), at(i * 10));
        }
        let wait = limiter.check_at(ip(1), at(45)).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(255),
            "until the first failure is 300 s old"
        );
        assert!(
            limiter.check_at(ip(2), at(45)).is_ok(),
            "another client is not locked out"
        );
        assert!(
            limiter.check_at(ip(1), at(300)).is_ok(),
            "the first failure left the window"
        );
        assert!(limiter.check_at(ip(1), at(305)).is_ok());
        limiter.failed_at(ip(1), at(305));
        assert!(limiter.check_at(ip(1), at(306)).is_err());
    }

    #[test]
    fn a_success_forgets_the_clients_failures() {
        let limiter = LoginLimiter::new(Limits::default());
        for _ in 0..4 {
            limiter.failed(ip(1));
        }
        limiter.succeeded(ip(1));
        for _ in 0..4 {
            limiter.failed(ip(1));
        }
        assert!(limiter.check(ip(1)).is_ok());
    }

    #[test]
    fn the_global_cap_stops_guessing_spread_over_many_addresses() {
        let limiter = LoginLimiter::new(Limits {
            per_client: 5,
            global: 10,
            window: Duration::from_secs(300),
        });
        for i in 0..10 {
            assert!(limiter.check(ip(i)).is_ok());
            limiter.failed(ip(i));
        }
        assert!(
            limiter.check(ip(200)).is_err(),
            "a fresh address is stopped too"
        );
        assert!(limiter.check(None).is_err());
    }
}
