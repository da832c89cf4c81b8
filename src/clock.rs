//! Time as the core sees it. Everything that expires asks a `Clock`, so tests
//! move time forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
pub use zipgate_api::time::saturating_add;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = saturating_add(*now, by);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The server's clock: another clock plus an offset the control plane can
/// move forward (`POST /_zipgate/clock/advance`), so expiry is testable
/// against a running server without sleeping.
pub struct AdjustableClock {
    inner: Arc<dyn Clock>,
    /// Nanoseconds added (an atomic: every request reads the clock, from
    /// every worker thread, and a mutex here was contended).
    offset_nanos: AtomicI64,
}

impl AdjustableClock {
    pub fn new(inner: Arc<dyn Clock>) -> Self {
        AdjustableClock {
            inner,
            offset_nanos: AtomicI64::new(0),
        }
    }

    /// Moves the clock on by `by` (saturating at about 292 years either way).
    pub fn advance(&self, by: Duration) {
        let by = by.num_nanoseconds().unwrap_or(if by < Duration::zero() {
            i64::MIN
        } else {
            i64::MAX
        });
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| {
                Some(offset.saturating_add(by))
            });
    }
}

impl AdjustableClock {
    /// Forgets every advance: back to the clock underneath (a frozen one's
    /// start time).
    pub fn rewind(&self) {
        self.offset_nanos.store(0, Ordering::Relaxed);
    }
}

impl Clock for AdjustableClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = Duration::nanoseconds(self.offset_nanos.load(Ordering::Relaxed));
        saturating_add(self.inner.now(), offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(90));
        assert_eq!(clock.now(), start + Duration::seconds(90));
    }

    #[test]
    fn an_adjustable_clock_adds_its_offset() {
        let start = Utc::now();
        let inner = Arc::new(ManualClock::new(start));
        let clock = AdjustableClock::new(inner.clone());
        clock.advance(Duration::hours(1));
        inner.advance(Duration::seconds(1));
        assert_eq!(
            clock.now(),
            start + Duration::hours(1) + Duration::seconds(1)
        );
        // A huge advance saturates instead of overflowing the date.
        clock.advance(Duration::milliseconds(i64::MAX));
        clock.advance(Duration::days(1));
        let far = clock.now();
        assert!(far > start + Duration::days(365 * 290), "{far}");
    }
}
