//! Time as the core sees it. Everything that expires asks a `Clock`, so tests
//! move time forward instead of sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

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
        *now += by;
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
    offset: Mutex<Duration>,
}

impl AdjustableClock {
    pub fn new(inner: Arc<dyn Clock>) -> Self {
        AdjustableClock {
            inner,
            offset: Mutex::new(Duration::zero()),
        }
    }

    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Clock for AdjustableClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
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
    }
}
