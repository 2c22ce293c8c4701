//! A circuit breaker for an optional dependency (Redis): after repeated failures the
//! dependency is skipped outright for a cool-down, so requests never queue behind
//! timeouts; one probe at a time then tests whether it is back.
//!
//! Closed → (threshold consecutive failures) → Open → (cool-down elapsed) → HalfOpen →
//! one probe: success closes, failure reopens with a doubled cool-down (capped,
//! jittered).

use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, so that tests drive the cool-downs on a paused clock.
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: the value of the state gauge.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    open_until: Instant,
    cool_down: Duration,
    probe_in_flight: bool,
}

/// Thread-safe breaker; `on_transition` is told every state change (for metrics).
pub struct Breaker {
    inner: Mutex<Inner>,
    threshold: u32,
    first_cool_down: Duration,
    max_cool_down: Duration,
    on_transition: Box<dyn Fn(BreakerState) + Send + Sync>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.state())
            .finish()
    }
}

impl Breaker {
    pub fn new(
        threshold: u32,
        first_cool_down: Duration,
        max_cool_down: Duration,
        on_transition: impl Fn(BreakerState) + Send + Sync + 'static,
    ) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                open_until: Instant::now(),
                cool_down: first_cool_down,
                probe_in_flight: false,
            }),
            threshold: threshold.max(1),
            first_cool_down,
            max_cool_down,
            on_transition: Box::new(on_transition),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.inner
            .lock()
            .map(|i| i.state)
            .unwrap_or(BreakerState::Open)
    }

    /// Whether a call may be made now. In half-open state only one probe is let
    /// through at a time.
    pub fn allow(&self) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        match inner.state {
            BreakerState::Closed => true,
            BreakerState::Open if Instant::now() >= inner.open_until => {
                inner.state = BreakerState::HalfOpen;
                inner.probe_in_flight = true;
                drop(inner);
                (self.on_transition)(BreakerState::HalfOpen);
                true
            }
            BreakerState::Open => false,
            BreakerState::HalfOpen if !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    pub fn success(&self) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.failures = 0;
        inner.probe_in_flight = false;
        if inner.state != BreakerState::Closed {
            inner.state = BreakerState::Closed;
            inner.cool_down = self.first_cool_down;
            drop(inner);
            (self.on_transition)(BreakerState::Closed);
        }
    }

    pub fn failure(&self) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.failures = inner.failures.saturating_add(1);
        inner.probe_in_flight = false;
        let open = match inner.state {
            BreakerState::Closed => inner.failures >= self.threshold,
            BreakerState::HalfOpen => {
                inner.cool_down = (inner.cool_down * 2).min(self.max_cool_down);
                true
            }
            BreakerState::Open => false,
        };
        if open {
            inner.state = BreakerState::Open;
            inner.open_until = Instant::now() + crate::backoff::jittered(inner.cool_down);
            drop(inner);
            (self.on_transition)(BreakerState::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn opens_probes_and_closes() {
        let transitions = Arc::new(AtomicUsize::new(0));
        let seen = transitions.clone();
        let breaker = Breaker::new(
            3,
            Duration::from_millis(20),
            Duration::from_secs(1),
            move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            },
        );
        for _ in 0..2 {
            assert!(breaker.allow());
            breaker.failure();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow(), "open: calls are skipped");
        // The first cool-down is 20 ms ± 25 %.
        tokio::time::advance(Duration::from_millis(14)).await;
        assert!(!breaker.allow(), "still cooling down");
        tokio::time::advance(Duration::from_millis(11)).await;
        assert!(
            breaker.allow(),
            "after the cool-down one probe goes through"
        );
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        // A failed probe doubles it: 40 ms ± 25 %.
        tokio::time::advance(Duration::from_millis(29)).await;
        assert!(!breaker.allow(), "the doubled cool-down is not over");
        tokio::time::advance(Duration::from_millis(22)).await;
        assert!(breaker.allow());
        breaker.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow());
        assert_eq!(transitions.load(Ordering::Relaxed), 5);
    }
}
