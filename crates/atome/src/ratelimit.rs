//! Keyed rate limits (GCRA from `governor`): N events per period, per key (user, phone, IP).
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::http::ApiError;

pub struct KeyedLimit<K: Hash + Eq + Clone> {
    /// The `kind` label of `atome_rate_limited_total` (one of [`crate::telemetry::RATE_LIMIT_KINDS`]).
    kind: &'static str,
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// Allows `count` events per `period` per key, all of them at once if need be; a refusal
    /// counts in `atome_rate_limited_total{kind}`.
    pub fn new(kind: &'static str, count: u32, period: Duration) -> Self {
        let count = NonZeroU32::new(count.max(1)).unwrap_or(NonZeroU32::MIN);
        let replenish = period / count.get();
        let quota = Quota::with_period(replenish.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(count);
        KeyedLimit { kind, limiter: RateLimiter::keyed(quota) }
    }

    /// Counts one event for `key`; `RateLimited` with the wait when over the limit.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        self.limiter.check_key(key).map_err(|not_until| {
            crate::telemetry::rate_limited(self.kind);
            ApiError::RateLimited { retry_after: not_until.wait_time_from(DefaultClock::default().now()) }
        })
    }

    /// Forgets keys whose state is back to full; call now and then to bound memory.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_burst_then_refuses_with_a_wait() {
        let limit = KeyedLimit::new("test", 3, Duration::from_secs(60));
        for _ in 0..3 {
            limit.check(&"a").expect("within the burst");
        }
        match limit.check(&"a") {
            Err(ApiError::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::from_secs(10) && retry_after <= Duration::from_secs(20));
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        limit.check(&"b").expect("keys are independent");
    }
}
