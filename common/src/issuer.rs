//! Issuing Snowflake ids from async code: a used-up sequence or a clock a little
//! behind is waited out on the runtime's timer, never by holding the worker thread
//! (which would stall every request that thread serves).

use std::time::Duration;

use crate::ids::snowflake::STALL_LIMIT;
use crate::ids::{Busy, Generator, IdError, SnowflakeId};

/// Pause between attempts while the generator is busy: the timer's granularity
/// (about a millisecond) bounds how soon the next one comes anyway.
const POLL: Duration = Duration::from_micros(250);

/// The next id of `generator`, waiting on the timer while it is busy: for the next
/// millisecond (giving up after [`STALL_LIMIT`] on a clock that does not move), or for
/// a clock that stepped back by at most `max_backwards` (refusing after that long).
pub async fn next_id(generator: &Generator) -> Result<SnowflakeId, IdError> {
    let started = tokio::time::Instant::now();
    let mut waiting = false;
    loop {
        let busy = match generator.try_next_id()? {
            Ok(id) => return Ok(id),
            Err(busy) => busy,
        };
        if !waiting {
            generator.record_wait(busy);
            waiting = true;
        }
        let waited = started.elapsed();
        match busy {
            Busy::SequenceExhausted if waited >= STALL_LIMIT => {
                return Err(IdError::ClockStalled {
                    now_ms: generator.last_issued_ms(),
                });
            }
            Busy::ClockBehind { behind_ms } if waited >= generator.max_backwards() => {
                generator.record_refusal();
                return Err(IdError::ClockMovedBackwards { behind_ms });
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::{EPOCH_MS, ManualClock, WorkerId};

    fn generator(clock: &ManualClock, max_backwards: Duration) -> Arc<Generator> {
        Arc::new(Generator::new(
            WorkerId::new(3).expect("worker"),
            Arc::new(clock.clone()),
            max_backwards,
        ))
    }

    /// The runtime has one thread: a waiting issuer that held it would starve the
    /// ticker below until the stall limit.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_used_up_sequence_waits_on_the_timer_not_the_thread() {
        let clock = ManualClock::new(EPOCH_MS + 5_000);
        let ids = generator(&clock, Duration::from_millis(10));
        for _ in 0..4096 {
            next_id(&ids).await.expect("an id while the sequence lasts");
        }
        let waiter = tokio::spawn({
            let ids = ids.clone();
            async move { next_id(&ids).await }
        });
        let mut ticks = 0;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            ticks += 1;
        }
        assert_eq!(ticks, 20, "the one thread kept serving other work");
        assert!(!waiter.is_finished(), "no id before the clock moves");
        clock.advance(1);
        let id = waiter.await.expect("task").expect("an id");
        assert_eq!(id.timestamp_ms(), EPOCH_MS + 5_001);
        assert_eq!(id.sequence(), 0);
        assert_eq!(ids.stats().sequence_exhaustion_waits, 1);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_clock_that_stepped_back_is_waited_for_then_refused() {
        let clock = ManualClock::new(EPOCH_MS + 9_000);
        let ids = generator(&clock, Duration::from_millis(20));
        next_id(&ids).await.expect("first");
        clock.set(EPOCH_MS + 8_995);
        let waiter = tokio::spawn({
            let ids = ids.clone();
            async move { next_id(&ids).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!waiter.is_finished());
        clock.set(EPOCH_MS + 9_001);
        let id = waiter.await.expect("task").expect("caught up");
        assert_eq!(id.timestamp_ms(), EPOCH_MS + 9_001);

        // Behind within the bound but never catching up: refused after the bound.
        clock.set(EPOCH_MS + 8_990);
        let started = tokio::time::Instant::now();
        let refused = next_id(&ids).await;
        assert!(matches!(refused, Err(IdError::ClockMovedBackwards { .. })));
        assert!(started.elapsed() >= Duration::from_millis(20));
        // Further behind than the bound: refused at once.
        clock.set(EPOCH_MS + 8_000);
        let started = tokio::time::Instant::now();
        assert!(next_id(&ids).await.is_err());
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(ids.stats().clock_backwards_refusals, 2);
    }
}
