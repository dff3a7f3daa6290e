//! Limits on one-time codes: tight per number, per source, and never a lever for locking someone
//! else out (README, "One-time codes: limits"). Guesses per number are counted in the database,
//! with each code's tries (otp.rs); the per-source state lives here, in memory.
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::http::ApiError;
use crate::ratelimit::KeyedLimit;

const QUARTER_HOUR: Duration = Duration::from_secs(15 * 60);
const HOUR: Duration = Duration::from_secs(60 * 60);

/// The source a request is counted against: the client address ([`crate::http::ClientIp`]),
/// with IPv6 taken per /64, the block one host or home usually holds. The one place that
/// decides what a "source" is.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Every limit of the one-time-code routes.
pub struct OtpLimits {
    /// Code requests per source, any number.
    pub requests_per_source: KeyedLimit<IpAddr>,
    /// Code requests (SMS sent) per number, any source.
    pub requests_per_number: KeyedLimit<String>,
    /// Code requests per (number, source): one at once, then 30 s, 60 s, 120 s, ...
    pub request_backoff: Backoff<(String, IpAddr)>,
    /// Verifications per source, any number.
    pub verifies_per_source: KeyedLimit<IpAddr>,
    /// Guesses per (number, source): three at once, then 2 min, 4 min, 8 min, ...
    pub guess_backoff: Backoff<(String, IpAddr)>,
    /// Guesses judged per number per hour, any source, any code (enforced in SQL).
    pub guesses_per_number_hour: u32,
}

impl OtpLimits {
    pub fn new(limits: &Limits) -> OtpLimits {
        OtpLimits {
            requests_per_source: KeyedLimit::new("otp_request_per_ip", limits.otp_per_ip_15min, QUARTER_HOUR),
            requests_per_number: KeyedLimit::new("otp_request_per_number", limits.otp_per_number_hour, HOUR),
            request_backoff: Backoff::new("otp_request_backoff", 1, Duration::from_secs(30), Duration::from_secs(30 * 60), HOUR),
            verifies_per_source: KeyedLimit::new("otp_verify_per_ip", limits.otp_verify_per_ip_15min, QUARTER_HOUR),
            guess_backoff: Backoff::new("otp_guess_backoff", 3, Duration::from_secs(120), Duration::from_secs(30 * 60), HOUR),
            guesses_per_number_hour: limits.otp_guesses_per_number_hour.max(1),
        }
    }

    /// A code request for `phone` from `source`: per source, then per (number, source), then per
    /// number, so that a source held back spends nothing of the number's allowance.
    pub fn request(&self, phone: &str, source: IpAddr) -> Result<(), ApiError> {
        self.requests_per_source.check(&source)?;
        self.request_backoff.check(&(phone.to_string(), source))?;
        self.requests_per_number.check(&phone.to_string())
    }

    /// A guess for `phone` from `source` (the per-number count is taken with the judgment).
    pub fn guess(&self, phone: &str, source: IpAddr) -> Result<(), ApiError> {
        self.verifies_per_source.check(&source)?;
        self.guess_backoff.check(&(phone.to_string(), source))
    }

    /// A successful login from `source` clears its backoffs for `phone`.
    pub fn logged_in(&self, phone: &str, source: IpAddr) {
        let key = (phone.to_string(), source);
        self.request_backoff.forgive(&key);
        self.guess_backoff.forgive(&key);
    }

    pub fn prune(&self) {
        self.requests_per_source.prune();
        self.requests_per_number.prune();
        self.request_backoff.prune();
        self.verifies_per_source.prune();
        self.guess_backoff.prune();
    }
}

/// Exponential backoff per key: `free` events at once, then each next one must come `base`,
/// `2 × base`, `4 × base`, ... (at most `max`) after the previous one. A key quiet for
/// `forget` starts afresh. Unlike a fixed window, a patient user is never shut out for long,
/// and someone hammering gets ever fewer tries.
pub struct Backoff<K> {
    /// The `kind` label of `atome_rate_limited_total`.
    kind: &'static str,
    free: u32,
    base: Duration,
    max: Duration,
    forget: Duration,
    /// Per key: events in the current run, time of the last one.
    state: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    /// `kind` names it in `atome_rate_limited_total{kind}`.
    pub fn new(kind: &'static str, free: u32, base: Duration, max: Duration, forget: Duration) -> Backoff<K> {
        Backoff { kind, free, base, max, forget, state: Mutex::new(HashMap::new()) }
    }

    /// Counts one event for `key`, or says how long to wait.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        self.check_at(key, Instant::now()).map_err(|retry_after| {
            crate::telemetry::rate_limited(self.kind);
            ApiError::RateLimited { retry_after }
        })
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (count, last) = state.entry(key.clone()).or_insert((0, now));
        if now.duration_since(*last) >= self.forget {
            *count = 0;
        }
        if *count >= self.free {
            let doublings = (*count - self.free).min(30);
            let wait = self.base.saturating_mul(1 << doublings).min(self.max);
            let ready = *last + wait;
            if now < ready {
                return Err(ready - now);
            }
        }
        *count += 1;
        *last = now;
        Ok(())
    }

    /// Forgets `key` (it starts afresh).
    pub fn forgive(&self, key: &K) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Forgets keys quiet for `forget`; call now and then to bound memory.
    pub fn prune(&self) {
        let now = Instant::now();
        self.state.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (_, last)| now.duration_since(*last) < self.forget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_allows_the_free_ones_then_doubles_the_wait_up_to_max() {
        let b = Backoff::new("test", 2, 10 * S, 35 * S, 3600 * S);
        let t0 = Instant::now();
        assert_eq!(b.check_at(&"k", t0), Ok(()));
        assert_eq!(b.check_at(&"k", t0), Ok(()));
        assert_eq!(b.check_at(&"k", t0 + 4 * S), Err(6 * S));
        assert_eq!(b.check_at(&"other", t0 + 4 * S), Ok(()), "keys are independent");
        assert_eq!(b.check_at(&"k", t0 + 10 * S), Ok(()));
        assert_eq!(b.check_at(&"k", t0 + 29 * S), Err(S), "then 20 s");
        assert_eq!(b.check_at(&"k", t0 + 30 * S), Ok(()));
        assert_eq!(b.check_at(&"k", t0 + 64 * S), Err(S), "then 40 s, capped at 35 s");
        assert_eq!(b.check_at(&"k", t0 + 65 * S), Ok(()));
        assert_eq!(b.check_at(&"k", t0 + 99 * S), Err(S));
        // Refusals do not count; a quiet hour starts afresh; forgive too.
        assert_eq!(b.check_at(&"k", t0 + 3665 * S), Ok(()));
        assert_eq!(b.check_at(&"k", t0 + 3665 * S), Ok(()));
        b.forgive(&"k");
        assert_eq!(b.check_at(&"k", t0 + 3665 * S), Ok(()));
    }

    #[test]
    fn one_source_gets_few_guesses_per_hour_and_fewer_than_five_per_code_lifetime() {
        // The defaults: whatever the timing, one source gets at most 4 guesses in any 5 minutes
        // (a code's lifetime: it cannot spend a code's 5 tries alone) and at most 7 in an hour
        // (under half the number's 15).
        let b = Backoff::new("otp_guess_backoff", 3, 120 * S, 1800 * S, 3600 * S);
        let t0 = Instant::now();
        let mut taken = Vec::new();
        for s in 0..3600 {
            while b.check_at(&"k", t0 + s * S).is_ok() {
                taken.push(s);
            }
        }
        assert_eq!(taken, [0, 0, 0, 120, 360, 840, 1800]);
        assert!(taken.windows(5).all(|w| w[4] - w[0] >= 300));
    }

    #[test]
    fn ipv6_sources_are_taken_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        assert_eq!(source_of("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(source_of("192.0.2.7".parse().unwrap()), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
