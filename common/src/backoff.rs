//! The one retry schedule of every reconnect and retry loop: exponential, capped, with
//! jitter, so many instances that lost the same server do not come back in lockstep.

use std::time::Duration;

/// `base` ± 25%.
pub fn jittered(base: Duration) -> Duration {
    let factor = 0.75 + rand::random::<f64>() * 0.5;
    base.mul_f64(factor)
}

/// Doubling delays from `first` to `last`; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    last: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, last: Duration) -> Backoff {
        Backoff {
            first,
            last: last.max(first),
            next: first,
        }
    }

    /// The delay before the next attempt (jittered), and the step to the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jittered(self.next);
        self.next = (self.next * 2).min(self.last);
        delay
    }

    /// Waits [`Backoff::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let bounds = [100, 200, 400, 700, 700];
        for base in bounds {
            let d = b.next_delay().as_secs_f64() * 1000.0;
            let base = f64::from(base);
            assert!(
                d >= base * 0.75 - 1e-6 && d <= base * 1.25 + 1e-6,
                "{d} vs {base}"
            );
        }
        b.reset();
        let d = b.next_delay();
        assert!(d <= Duration::from_millis(125), "{d:?}");
    }
}
