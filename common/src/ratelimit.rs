//! Rate limiting with GCRA (the generic cell rate algorithm): one timestamp per key,
//! smooth refill, a burst allowance, and an exact `Retry-After`.
//!
//! With Redis configured the state lives in the cluster (one Lua script per check,
//! atomic on the key's node), so the limit holds across every instance. When Redis is
//! absent, slow or down, each instance falls back to its own in-process limiter: the
//! limit then holds per instance, which is looser but never blocks requests on Redis.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::redis::{RedisCluster, redis};

/// A limit: `per_minute` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// Time between two requests at the sustained rate, in microseconds.
    fn interval_us(self) -> i64 {
        60_000_000 / i64::from(self.per_minute.max(1))
    }

    /// How far ahead of now the theoretical arrival time may run.
    fn tolerance_us(self) -> i64 {
        self.interval_us() * i64::from(self.burst.max(1).saturating_sub(1))
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; retry after this long.
    Deny(Duration),
}

/// One GCRA step on theoretical arrival time `tat`: returns the decision and the new
/// `tat`. Pure, so the in-process and the Redis limiter share their arithmetic (the Lua
/// script below mirrors it line by line).
fn gcra(tat: i64, now: i64, quota: Quota) -> (Decision, i64) {
    let tat = tat.max(now);
    let allow_at = tat - quota.tolerance_us();
    if now < allow_at {
        let wait = u64::try_from(allow_at - now).unwrap_or(0);
        (Decision::Deny(Duration::from_micros(wait)), tat)
    } else {
        (Decision::Allow, tat + quota.interval_us())
    }
}

const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return allow_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return -1
";

/// Per-key GCRA limiter.
#[derive(Clone)]
pub struct RateLimiter {
    local: moka::sync::Cache<String, Arc<Mutex<i64>>>,
    redis: Option<RedisCluster>,
    script: Arc<redis::Script>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl RateLimiter {
    pub fn new(redis: Option<RedisCluster>) -> RateLimiter {
        RateLimiter {
            // A key idle for ten minutes has refilled its burst under any quota that
            // allows a few requests a minute, so forgetting it changes nothing.
            local: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            redis,
            script: Arc::new(redis::Script::new(GCRA_LUA)),
        }
    }

    /// Checks and counts one request for `key` (e.g. `ip:203.0.113.7`).
    pub async fn check(&self, key: &str, quota: Quota) -> Decision {
        if let Some(redis) = &self.redis {
            let full_key = redis.key(&format!("rl:{key}"));
            let script = self.script.clone();
            let interval = quota.interval_us();
            let tolerance = quota.tolerance_us();
            let result = redis
                .call(|mut conn| async move {
                    script
                        .key(full_key)
                        .arg(interval)
                        .arg(tolerance)
                        .invoke_async::<i64>(&mut conn)
                        .await
                })
                .await;
            match result {
                Ok(wait) if wait < 0 => return Decision::Allow,
                Ok(wait) => {
                    return Decision::Deny(Duration::from_micros(u64::try_from(wait).unwrap_or(0)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rate limit check in Redis failed; using the local limiter");
                }
            }
        }
        self.check_local(key, quota, now_us())
    }

    fn check_local(&self, key: &str, quota: Quota, now: i64) -> Decision {
        let cell = self.local.get_with_by_ref(key, || Arc::new(Mutex::new(0)));
        let Ok(mut tat) = cell.lock() else {
            return Decision::Allow;
        };
        let (decision, new_tat) = gcra(*tat, now, quota);
        *tat = new_tat;
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let quota = Quota {
            per_minute: 60,
            burst: 3,
        };
        let limiter = RateLimiter::new(None);
        let t0 = 1_000_000_000;
        for _ in 0..3 {
            assert_eq!(limiter.check_local("k", quota, t0), Decision::Allow);
        }
        match limiter.check_local("k", quota, t0) {
            Decision::Deny(wait) => assert_eq!(wait, Duration::from_secs(1)),
            Decision::Allow => panic!("fourth request in the same instant must be refused"),
        }
        // One interval later exactly one more request fits.
        assert_eq!(
            limiter.check_local("k", quota, t0 + 1_000_000),
            Decision::Allow
        );
        assert!(matches!(
            limiter.check_local("k", quota, t0 + 1_000_000),
            Decision::Deny(_)
        ));
        // Other keys are independent.
        assert_eq!(limiter.check_local("other", quota, t0), Decision::Allow);
    }
}
