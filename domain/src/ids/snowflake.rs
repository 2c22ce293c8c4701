//! Snowflake ids: 64-bit, time-ordered, unique per worker, generated without coordination.
//!
//! Layout, most significant bit first:
//!
//! ```text
//! 0 | 41 bits: ms since EPOCH_MS | 10 bits: worker | 12 bits: sequence
//! ```
//!
//! The top bit stays clear so an id fits a signed 64-bit database column.
//! Uniqueness across processes rests on no two live processes sharing a
//! worker id; that is enforced by a lease elsewhere, not here.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Project epoch: 2026-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

const TIMESTAMP_BITS: u32 = 41;
const WORKER_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;

const WORKER_SHIFT: u32 = SEQUENCE_BITS;
const TIMESTAMP_SHIFT: u32 = SEQUENCE_BITS + WORKER_BITS;

/// Largest worker id plus one.
pub const MAX_WORKERS: u16 = 1 << WORKER_BITS;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;
const MAX_ELAPSED_MS: u64 = (1 << TIMESTAMP_BITS) - 1;
const TOP_BIT: u64 = 1 << 63;

/// A spin on an exhausted sequence that lasts this long means the clock is not
/// advancing at all (a frozen test clock, a broken time source); failing beats
/// burning a core forever.
pub const STALL_LIMIT: Duration = Duration::from_secs(1);

/// Sleep granularity while waiting for a clock that stepped backwards: short
/// enough to resume within about a millisecond of the catch-up.
const BACKWARDS_POLL: Duration = Duration::from_micros(500);

/// Errors from id generation and id parsing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("worker id {0} is out of range; it must be below {MAX_WORKERS}")]
    InvalidWorker(u16),
    #[error(
        "the clock is {behind_ms} ms behind the last issued id; refusing to issue ids until it catches up"
    )]
    ClockMovedBackwards { behind_ms: u64 },
    #[error("the clock reads {now_ms} ms, which is before the id epoch {EPOCH_MS}")]
    ClockBeforeEpoch { now_ms: u64 },
    #[error("the clock has not advanced past {now_ms} ms for {STALL_LIMIT:?}; it looks stuck")]
    ClockStalled { now_ms: u64 },
    #[error("the timestamp no longer fits the 41 bits of the id layout")]
    TimestampOverflow,
    #[error("not a valid id: expected a decimal integer below 2^63")]
    InvalidId,
}

/// A generated id. Travels as a decimal string in JSON because JavaScript
/// numbers lose precision above 2^53.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SnowflakeId(u64);

impl SnowflakeId {
    /// Wraps a raw value; `None` when the top bit is set, which no generator
    /// ever produces and a signed column could not hold.
    pub const fn from_u64(raw: u64) -> Option<Self> {
        if raw & TOP_BIT == 0 {
            Some(Self(raw))
        } else {
            None
        }
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Creation time in Unix milliseconds.
    pub const fn timestamp_ms(self) -> u64 {
        (self.0 >> TIMESTAMP_SHIFT) + EPOCH_MS
    }

    pub const fn worker(self) -> WorkerId {
        // The mask keeps the value below MAX_WORKERS, so the narrowing is exact.
        WorkerId(((self.0 >> WORKER_SHIFT) & (MAX_WORKERS as u64 - 1)) as u16)
    }

    pub const fn sequence(self) -> u16 {
        (self.0 & MAX_SEQUENCE) as u16
    }

    const fn compose(elapsed_ms: u64, worker: WorkerId, sequence: u64) -> Self {
        Self((elapsed_ms << TIMESTAMP_SHIFT) | ((worker.0 as u64) << WORKER_SHIFT) | sequence)
    }
}

impl fmt::Display for SnowflakeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for SnowflakeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `u64::from_str` accepts a leading '+', which would give one id two spellings.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::InvalidId);
        }
        s.parse::<u64>()
            .ok()
            .and_then(Self::from_u64)
            .ok_or(IdError::InvalidId)
    }
}

impl Serialize for SnowflakeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SnowflakeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl Visitor<'_> for IdVisitor {
            type Value = SnowflakeId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id as a decimal string below 2^63")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }

        deserializer.deserialize_str(IdVisitor)
    }
}

/// The 10-bit worker part of an id; unique among live generators.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct WorkerId(u16);

impl WorkerId {
    pub const fn new(id: u16) -> Result<Self, IdError> {
        if id < MAX_WORKERS {
            Ok(Self(id))
        } else {
            Err(IdError::InvalidWorker(id))
        }
    }

    /// Takes the ordinal that a Kubernetes StatefulSet appends to its pod
    /// names (`shortener-create-3` → 3). `None` when the name has no
    /// `-<digits>` suffix, the digits are not canonical (leading zero, sign),
    /// or the ordinal is out of range.
    pub fn from_pod_name(name: &str) -> Option<Self> {
        let (prefix, ordinal) = name.rsplit_once('-')?;
        let canonical = !prefix.is_empty()
            && !ordinal.is_empty()
            && ordinal.bytes().all(|b| b.is_ascii_digit())
            && (ordinal == "0" || !ordinal.starts_with('0'));
        if !canonical {
            return None;
        }
        let n: u16 = ordinal.parse().ok()?;
        Self::new(n).ok()
    }

    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Source of wall-clock time in Unix milliseconds; a trait so tests can
/// drive time by hand.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The operating system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 reads as 0, which the generator then reports as
        // being before the epoch instead of wrapping.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to. Clones share one reading, so a test
/// can keep a handle and move time while a generator owns another.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(now_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now_ms)))
    }

    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How often the generator had to wait, for export as metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GeneratorStats {
    /// Times all 4096 sequence numbers of a millisecond were used up and the
    /// generator spun until the next millisecond.
    pub sequence_exhaustion_waits: u64,
    /// Times the clock read earlier than the last issued id and the generator
    /// slept for it to catch up (whether or not it did).
    pub clock_backwards_waits: u64,
    /// Times the generator gave up on a backwards clock and returned
    /// [`IdError::ClockMovedBackwards`].
    pub clock_backwards_refusals: u64,
}

/// Why [`Generator::try_next_id`] could not issue an id at once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Busy {
    /// This millisecond's 4096 sequence numbers are used: the next id comes with the
    /// next millisecond.
    SequenceExhausted,
    /// The clock reads `behind_ms` earlier than the last issued id (within the
    /// generator's `max_backwards`).
    ClockBehind { behind_ms: u64 },
}

/// One attempt at an id: issued, or what stands in the way.
enum Step {
    Issued(SnowflakeId),
    Exhausted { last_ms: u64 },
    Behind { last_ms: u64, now: u64 },
}

/// Issues strictly increasing ids for one worker; shareable across threads.
///
/// Policy:
/// - Within one millisecond the sequence counts 0..=4095. When it is used up
///   the caller spins (re-reading the clock, never sleeping) until the next
///   millisecond, so the cap is 4096 ids per ms per worker. A clock that does
///   not advance for a whole second yields [`IdError::ClockStalled`].
/// - When the clock reads earlier than the last issued id, the generator
///   never issues a smaller id. If the gap is at most `max_backwards`, it
///   sleeps in sub-millisecond steps for up to `max_backwards` of real time
///   for the clock to catch up, then carries on or returns
///   [`IdError::ClockMovedBackwards`]. A gap larger than `max_backwards` is
///   refused at once, because a real clock cannot close it within the bound
///   and every caller would otherwise stall for the full wait.
/// - `next_id` therefore may block the calling thread (spinning up to a second on a
///   stuck clock, sleeping up to `max_backwards`). Async code uses
///   [`Generator::try_next_id`] instead and waits on its runtime's timer
///   (`common::issuer`), so no worker thread is ever held.
/// - Only this generator's own history is known: a process restarted while
///   its clock is behind the previous run could repeat ids. The worker lease
///   and NTP slewing (not stepping) are what guard against that.
pub struct Generator {
    worker: WorkerId,
    clock: Arc<dyn Clock>,
    max_backwards: Duration,
    /// Last issued `(elapsed_ms << 12) | sequence`, so one CAS updates both.
    /// Starts at zero, which only costs sequence 0 of the epoch's first ms.
    state: AtomicU64,
    sequence_exhaustion_waits: AtomicU64,
    clock_backwards_waits: AtomicU64,
    clock_backwards_refusals: AtomicU64,
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("worker", &self.worker)
            .field("max_backwards", &self.max_backwards)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Generator {
    pub fn new(worker: WorkerId, clock: Arc<dyn Clock>, max_backwards: Duration) -> Self {
        Self {
            worker,
            clock,
            max_backwards,
            state: AtomicU64::new(0),
            sequence_exhaustion_waits: AtomicU64::new(0),
            clock_backwards_waits: AtomicU64::new(0),
            clock_backwards_refusals: AtomicU64::new(0),
        }
    }

    /// Never issues an id whose timestamp is at or below `unix_ms`: the bound up to
    /// which an earlier holder of this worker id may have issued ids (see the lease).
    /// If this process's clock is behind it, `next_id` treats that as a clock that
    /// moved backwards: it waits within the bound, then refuses.
    #[must_use]
    pub fn with_floor(self, unix_ms: u64) -> Self {
        let elapsed = unix_ms.saturating_sub(EPOCH_MS).min(MAX_ELAPSED_MS);
        self.state
            .store((elapsed << SEQUENCE_BITS) | MAX_SEQUENCE, Ordering::Release);
        self
    }

    /// Unix ms of the newest id issued (or of the floor, before the first).
    pub fn last_issued_ms(&self) -> u64 {
        (self.state.load(Ordering::Acquire) >> SEQUENCE_BITS) + EPOCH_MS
    }

    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    pub fn stats(&self) -> GeneratorStats {
        GeneratorStats {
            sequence_exhaustion_waits: self.sequence_exhaustion_waits.load(Ordering::Relaxed),
            clock_backwards_waits: self.clock_backwards_waits.load(Ordering::Relaxed),
            clock_backwards_refusals: self.clock_backwards_refusals.load(Ordering::Relaxed),
        }
    }

    /// Issues the next id; see the type's documentation for the waiting policy.
    pub fn next_id(&self) -> Result<SnowflakeId, IdError> {
        loop {
            match self.step()? {
                Step::Issued(id) => return Ok(id),
                Step::Exhausted { last_ms } => {
                    self.sequence_exhaustion_waits
                        .fetch_add(1, Ordering::Relaxed);
                    self.spin_past(last_ms)?;
                }
                Step::Behind { last_ms, now } => self.wait_for_catch_up(last_ms, now)?,
            }
        }
    }

    /// Issues the next id if that needs no waiting; otherwise says why not, and the
    /// caller waits (on a timer, not a thread) and asks again, counting the wait
    /// once with [`Generator::record_wait`]. A clock further behind than
    /// `max_backwards` is refused at once, as by [`Generator::next_id`].
    pub fn try_next_id(&self) -> Result<Result<SnowflakeId, Busy>, IdError> {
        match self.step()? {
            Step::Issued(id) => Ok(Ok(id)),
            Step::Exhausted { .. } => Ok(Err(Busy::SequenceExhausted)),
            Step::Behind { last_ms, now } => {
                let behind_ms = last_ms - now;
                if behind_ms > self.max_backwards_ms() {
                    self.record_refusal();
                    return Err(IdError::ClockMovedBackwards { behind_ms });
                }
                Ok(Err(Busy::ClockBehind { behind_ms }))
            }
        }
    }

    /// Counts one wait of a caller of [`Generator::try_next_id`].
    pub fn record_wait(&self, busy: Busy) {
        let counter = match busy {
            Busy::SequenceExhausted => &self.sequence_exhaustion_waits,
            Busy::ClockBehind { .. } => &self.clock_backwards_waits,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal of a caller that gave up waiting for the clock.
    pub fn record_refusal(&self) {
        self.clock_backwards_refusals
            .fetch_add(1, Ordering::Relaxed);
    }

    /// How long a clock that stepped back is waited for before ids are refused.
    pub fn max_backwards(&self) -> Duration {
        self.max_backwards
    }

    fn max_backwards_ms(&self) -> u64 {
        u64::try_from(self.max_backwards.as_millis()).unwrap_or(u64::MAX)
    }

    fn step(&self) -> Result<Step, IdError> {
        loop {
            // Loading the state before reading the clock matters: a reading
            // taken after seeing another thread's id is at least as late as
            // the reading that id was made from, so only a real step back
            // can make `now` smaller than `last_ms`.
            let last = self.state.load(Ordering::Acquire);
            let last_ms = last >> SEQUENCE_BITS;
            let now = self.elapsed_now()?;

            let next = if now > last_ms {
                now << SEQUENCE_BITS
            } else if now == last_ms {
                if last & MAX_SEQUENCE == MAX_SEQUENCE {
                    return Ok(Step::Exhausted { last_ms });
                }
                last + 1
            } else {
                return Ok(Step::Behind { last_ms, now });
            };

            if self
                .state
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(Step::Issued(SnowflakeId::compose(
                    next >> SEQUENCE_BITS,
                    self.worker,
                    next & MAX_SEQUENCE,
                )));
            }
        }
    }

    /// Milliseconds since the project epoch, checked against the layout.
    fn elapsed_now(&self) -> Result<u64, IdError> {
        let now_ms = self.clock.now_ms();
        let elapsed = now_ms
            .checked_sub(EPOCH_MS)
            .ok_or(IdError::ClockBeforeEpoch { now_ms })?;
        if elapsed > MAX_ELAPSED_MS {
            return Err(IdError::TimestampOverflow);
        }
        Ok(elapsed)
    }

    /// Busy-waits until the clock leaves `ms` (forwards, or backwards, which
    /// the caller's next round handles). Sleeping here would overshoot by the
    /// scheduler's granularity and cap throughput far below 4096 ids per ms.
    fn spin_past(&self, ms: u64) -> Result<(), IdError> {
        let mut started: Option<Instant> = None;
        let mut spins: u32 = 0;
        while self.clock.now_ms().saturating_sub(EPOCH_MS) == ms {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            // Reading the monotonic clock only now and then keeps the loop
            // tight; a healthy clock exits long before the first check.
            if spins.is_multiple_of(4096) {
                let start = *started.get_or_insert_with(Instant::now);
                if start.elapsed() >= STALL_LIMIT {
                    return Err(IdError::ClockStalled {
                        now_ms: ms + EPOCH_MS,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sleeps while the clock is behind `last_ms`, bounded by `max_backwards`
    /// of monotonic time (the wall clock is the thing that cannot be trusted).
    fn wait_for_catch_up(&self, last_ms: u64, mut now: u64) -> Result<(), IdError> {
        let behind = last_ms - now;
        if behind > self.max_backwards_ms() {
            self.record_refusal();
            return Err(IdError::ClockMovedBackwards { behind_ms: behind });
        }
        self.clock_backwards_waits.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        while now < last_ms {
            let waited = start.elapsed();
            if waited >= self.max_backwards {
                self.clock_backwards_refusals
                    .fetch_add(1, Ordering::Relaxed);
                return Err(IdError::ClockMovedBackwards {
                    behind_ms: last_ms - now,
                });
            }
            std::thread::sleep(BACKWARDS_POLL.min(self.max_backwards - waited));
            now = self.elapsed_now()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::thread;

    const T0: u64 = EPOCH_MS + 1_000_000;

    fn worker(n: u16) -> WorkerId {
        WorkerId::new(n).unwrap()
    }

    fn manual(start: u64, max_backwards: Duration) -> (ManualClock, Generator) {
        let clock = ManualClock::new(start);
        let generator = Generator::new(worker(7), Arc::new(clock.clone()), max_backwards);
        (clock, generator)
    }

    #[test]
    fn fields_round_trip_through_the_layout() {
        let id = SnowflakeId::compose(123_456, worker(1023), 4095);
        assert_eq!(id.timestamp_ms(), EPOCH_MS + 123_456);
        assert_eq!(id.worker().get(), 1023);
        assert_eq!(id.sequence(), 4095);
        assert_eq!(id.as_u64() & TOP_BIT, 0);

        let max = SnowflakeId::compose(MAX_ELAPSED_MS, worker(1023), MAX_SEQUENCE);
        assert_eq!(max.as_u64(), i64::MAX as u64);
    }

    #[test]
    fn from_u64_refuses_top_bit() {
        assert_eq!(SnowflakeId::from_u64(5).map(SnowflakeId::as_u64), Some(5));
        assert!(SnowflakeId::from_u64(i64::MAX as u64).is_some());
        assert!(SnowflakeId::from_u64(1 << 63).is_none());
        assert!(SnowflakeId::from_u64(u64::MAX).is_none());
    }

    #[test]
    fn json_uses_strings() {
        let id = SnowflakeId::from_u64(9_007_199_254_740_993).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"9007199254740993\"");
        assert_eq!(serde_json::from_str::<SnowflakeId>(&json).unwrap(), id);
        assert_eq!(id.to_string(), "9007199254740993");

        for bad in [
            "9007199254740993",
            "\"\"",
            "\"+5\"",
            "\"-5\"",
            "\" 5\"",
            "\"9223372036854775808\"",
            "\"99999999999999999999\"",
            "\"12a\"",
        ] {
            assert!(serde_json::from_str::<SnowflakeId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn worker_id_bounds() {
        assert_eq!(WorkerId::new(0).unwrap().get(), 0);
        assert_eq!(WorkerId::new(1023).unwrap().get(), 1023);
        assert_eq!(WorkerId::new(1024), Err(IdError::InvalidWorker(1024)));
        assert_eq!(
            WorkerId::new(u16::MAX),
            Err(IdError::InvalidWorker(u16::MAX))
        );
    }

    #[test]
    fn worker_id_from_pod_name() {
        let ok = [
            ("shortener-create-3", 3),
            ("shortener-create-0", 0),
            ("a-1023", 1023),
            ("create-10", 10),
            ("x-y-z-42", 42),
        ];
        for (name, n) in ok {
            assert_eq!(
                WorkerId::from_pod_name(name).map(WorkerId::get),
                Some(n),
                "{name}"
            );
        }
        let bad = [
            "",
            "shortener",
            "shortener-",
            "-3",
            "3",
            "shortener-create-1024",
            "shortener-create-65536",
            "shortener-create-99999999999",
            "shortener-create-03",
            "shortener-create-+3",
            "shortener-create-3a",
            "shortener-create- 3",
            "shortener-create-٣",
            "shortener-3-create",
        ];
        for name in bad {
            assert_eq!(WorkerId::from_pod_name(name), None, "{name}");
        }
    }

    #[test]
    fn monotonic_over_a_million_ids() {
        let generator = Generator::new(worker(1), Arc::new(SystemClock), Duration::from_millis(50));
        let mut previous = generator.next_id().unwrap();
        for _ in 0..1_000_000 {
            let id = generator.next_id().unwrap();
            assert!(id > previous, "{id:?} after {previous:?}");
            assert_eq!(id.worker().get(), 1);
            previous = id;
        }
    }

    #[test]
    fn ids_carry_the_clock_reading() {
        let (clock, generator) = manual(T0, Duration::ZERO);
        let a = generator.next_id().unwrap();
        assert_eq!(a.timestamp_ms(), T0);
        assert_eq!(a.sequence(), 0);
        assert_eq!(generator.next_id().unwrap().sequence(), 1);
        clock.advance(5);
        let b = generator.next_id().unwrap();
        assert_eq!(b.timestamp_ms(), T0 + 5);
        assert_eq!(b.sequence(), 0);
    }

    #[test]
    fn clock_stepped_back_is_refused_after_the_bound() {
        let (clock, generator) = manual(T0, Duration::from_millis(30));
        let before = generator.next_id().unwrap();
        clock.set(T0 - 10);
        let started = Instant::now();
        let result = generator.next_id();
        assert_eq!(result, Err(IdError::ClockMovedBackwards { behind_ms: 10 }));
        assert!(started.elapsed() >= Duration::from_millis(30));
        let stats = generator.stats();
        assert_eq!(stats.clock_backwards_waits, 1);
        assert_eq!(stats.clock_backwards_refusals, 1);

        // Once the clock is back, ids continue above the last one.
        clock.set(T0);
        let after = generator.next_id().unwrap();
        assert!(after > before);
    }

    #[test]
    fn clock_far_behind_is_refused_without_waiting() {
        let (clock, generator) = manual(T0, Duration::from_millis(500));
        generator.next_id().unwrap();
        clock.set(T0 - 60_000);
        let started = Instant::now();
        assert_eq!(
            generator.next_id(),
            Err(IdError::ClockMovedBackwards { behind_ms: 60_000 })
        );
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(generator.stats().clock_backwards_waits, 0);
        assert_eq!(generator.stats().clock_backwards_refusals, 1);
    }

    #[test]
    fn clock_stepped_back_succeeds_once_it_catches_up() {
        let (clock, generator) = manual(T0, Duration::from_secs(5));
        let mut last = generator.next_id().unwrap();
        for _ in 0..100 {
            last = generator.next_id().unwrap();
        }
        clock.set(T0 - 20);
        let mover = clock.clone();
        let handle = thread::spawn(move || {
            thread::sleep(Duration::from_millis(40));
            mover.set(T0 + 1);
        });
        let next = generator.next_id().unwrap();
        handle.join().unwrap();
        assert!(next > last);
        assert_eq!(next.timestamp_ms(), T0 + 1);
        assert_eq!(generator.stats().clock_backwards_waits, 1);
        assert_eq!(generator.stats().clock_backwards_refusals, 0);
    }

    #[test]
    fn never_smaller_under_a_wandering_clock() {
        let (clock, generator) = manual(T0, Duration::ZERO);
        let mut last = generator.next_id().unwrap();
        let readings = [
            T0 + 3,
            T0 + 1,
            T0 + 3,
            T0 - 5,
            T0 + 2,
            T0 + 4,
            T0 + 4,
            T0,
            T0 + 9,
        ];
        for reading in readings {
            clock.set(reading);
            for _ in 0..3 {
                if let Ok(id) = generator.next_id() {
                    assert!(id > last, "{id:?} after {last:?}");
                    last = id;
                }
            }
        }
        assert_eq!(last.timestamp_ms(), T0 + 9);
    }

    #[test]
    fn sequence_exhaustion_waits_for_the_next_ms() {
        let (clock, generator) = manual(T0, Duration::ZERO);
        let mut last = None;
        for expected in 0..4096u16 {
            let id = generator.next_id().unwrap();
            assert_eq!(id.timestamp_ms(), T0);
            assert_eq!(id.sequence(), expected);
            last = Some(id);
        }
        let mover = clock.clone();
        let handle = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            mover.advance(1);
        });
        let started = Instant::now();
        let next = generator.next_id().unwrap();
        handle.join().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(25));
        assert!(Some(next) > last);
        assert_eq!(next.timestamp_ms(), T0 + 1);
        assert_eq!(next.sequence(), 0);
        assert_eq!(generator.stats().sequence_exhaustion_waits, 1);
    }

    #[test]
    fn frozen_clock_reports_a_stall() {
        let (_clock, generator) = manual(T0, Duration::ZERO);
        for _ in 0..4096 {
            generator.next_id().unwrap();
        }
        assert_eq!(
            generator.next_id(),
            Err(IdError::ClockStalled { now_ms: T0 })
        );
    }

    #[test]
    fn clock_limits() {
        let (clock, generator) = manual(EPOCH_MS - 1, Duration::ZERO);
        assert_eq!(
            generator.next_id(),
            Err(IdError::ClockBeforeEpoch {
                now_ms: EPOCH_MS - 1
            })
        );
        clock.set(EPOCH_MS + MAX_ELAPSED_MS);
        let last = generator.next_id().unwrap();
        assert_eq!(last.timestamp_ms(), EPOCH_MS + MAX_ELAPSED_MS);
        clock.set(EPOCH_MS + MAX_ELAPSED_MS + 1);
        assert_eq!(generator.next_id(), Err(IdError::TimestampOverflow));
    }

    #[test]
    fn four_threads_share_one_generator_without_duplicates() {
        let generator = Arc::new(Generator::new(
            worker(3),
            Arc::new(SystemClock),
            Duration::from_millis(50),
        ));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let generator = Arc::clone(&generator);
                thread::spawn(move || {
                    let mut ids = Vec::with_capacity(250_000);
                    for _ in 0..250_000 {
                        let id = generator.next_id().unwrap();
                        // Each thread sees its own ids strictly increasing too.
                        if let Some(previous) = ids.last() {
                            assert!(id > *previous);
                        }
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        let mut all = HashSet::with_capacity(1_000_000);
        for handle in handles {
            for id in handle.join().unwrap() {
                assert!(all.insert(id), "duplicate {id:?}");
            }
        }
        assert_eq!(all.len(), 1_000_000);
    }

    #[test]
    fn generator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Generator>();
        assert_send_sync::<ManualClock>();
    }

    #[test]
    fn floor_is_never_undercut() {
        let clock = ManualClock::new(EPOCH_MS + 1_000);
        let generator = Generator::new(
            WorkerId::new(1).expect("worker"),
            Arc::new(clock.clone()),
            Duration::from_millis(5),
        )
        .with_floor(EPOCH_MS + 5_000);
        // The clock is 4 s behind the floor: refused rather than reusing timestamps.
        assert!(matches!(
            generator.next_id(),
            Err(IdError::ClockMovedBackwards { .. })
        ));
        clock.set(EPOCH_MS + 5_001);
        let id = generator.next_id().expect("past the floor");
        assert_eq!(id.timestamp_ms(), EPOCH_MS + 5_001);
        assert_eq!(generator.last_issued_ms(), EPOCH_MS + 5_001);
    }
}
