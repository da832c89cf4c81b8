//! The live feed behind `/_zipgate/events` (Server-Sent Events) and the
//! dashboard: jobs, journal entries, fault rules, the clock and resets, each
//! event numbered so a client that reconnects with `Last-Event-ID` gets what
//! it missed, without gaps, or is told to reload (`resync`).
//!
//! Nothing is recorded while nobody listens: `publish` first reads two
//! atomics and returns, and builds an event's JSON only when a subscriber
//! exists or left less than [`LINGER`] ago (so a page that reconnects after
//! a server hiccup or a network blip resumes). Events a subscriber could
//! have missed while nothing was recorded are never papered over: the next
//! subscriber whose `Last-Event-ID` predates them is sent `resync`.
//!
//! Publishing never waits for a subscriber: events go into a broadcast
//! channel whose receivers lag independently. A stream that falls
//! [`CHANNEL`] events behind (a stalled or slow page) is told `resync`
//! (reload) and goes on with what the channel still holds; one that stops
//! reading altogether is cut by the connection's send timeout. A client
//! that reconnects replays from the ring, which usually holds more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

/// How long events are still recorded after the last subscriber left.
pub const LINGER: Duration = Duration::from_secs(60);
/// Events a live subscriber may fall behind before it is dropped.
const CHANNEL: usize = 512;
/// Events kept for replay, and their bytes at most (an event with a
/// journal body can be 64 KiB, so the bytes can bind first: then a client
/// that lagged reloads instead of replaying). Held only while someone
/// listens and for the linger after.
const RING_EVENTS: usize = 2048;
const RING_BYTES: usize = 16 << 20;

/// One event as sent: `event: {kind}`, `id: {id}`, `data: {data}`.
#[derive(Debug)]
pub struct Event {
    pub id: u64,
    pub kind: &'static str,
    /// JSON, one line.
    pub data: String,
}

impl Event {
    /// The SSE frame (data is one JSON line, so one `data:` field).
    pub fn frame(&self) -> String {
        format!(
            "event: {}\nid: {}\ndata: {}\n\n",
            self.kind, self.id, self.data
        )
    }
}

#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    ring: Mutex<Ring>,
    sender: broadcast::Sender<Arc<Event>>,
    subscribers: AtomicUsize,
    /// Milliseconds since `epoch` until which events are recorded with no
    /// subscriber; 0 while nobody ever subscribed.
    linger_until: AtomicU64,
    /// Set when an event went unrecorded: a later subscriber resuming from
    /// before it must reload.
    missed: AtomicBool,
    epoch: Instant,
    /// Tells every stream to end (the server is stopping).
    closed: watch::Sender<bool>,
    /// Told to clients in `hello`, so a page sees that the server restarted
    /// (ids start again at 1).
    instance: String,
}

struct Ring {
    events: VecDeque<Arc<Event>>,
    bytes: usize,
    next_id: u64,
    /// Every event after this id is in `events` (or still to come).
    complete_after: u64,
}

/// What a new subscriber gets: the events it missed (or the order to
/// reload), then the live ones.
pub struct Subscription {
    pub instance: String,
    /// Events after the client's `Last-Event-ID`, oldest first.
    pub backlog: Vec<Arc<Event>>,
    /// The client's `Last-Event-ID` is before what can be replayed (or
    /// past the last id, as from another instance; one from another
    /// instance that is not past it only the `hello`'s instance tells):
    /// it must reload everything.
    pub resync: bool,
    /// The last id published when it subscribed.
    pub last_id: u64,
    pub live: broadcast::Receiver<Arc<Event>>,
    pub closed: watch::Receiver<bool>,
    _guard: SubscriberGuard,
}

struct SubscriberGuard(Arc<Inner>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        let inner = &self.0;
        // The linger first: a publisher that sees no subscriber sees it.
        let until = inner.now_ms() + LINGER.as_millis() as u64;
        inner.linger_until.fetch_max(until, Ordering::SeqCst);
        inner.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl Events {
    pub fn new(instance: String) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL);
        Events {
            inner: Arc::new(Inner {
                ring: Mutex::new(Ring {
                    events: VecDeque::new(),
                    bytes: 0,
                    next_id: 1,
                    complete_after: 0,
                }),
                sender,
                subscribers: AtomicUsize::new(0),
                linger_until: AtomicU64::new(0),
                missed: AtomicBool::new(false),
                epoch: Instant::now(),
                closed: watch::channel(false).0,
                instance,
            }),
        }
    }

    /// Whether an event published now is kept (someone listens, or did a
    /// moment ago). Whoever asks means to publish: a `false` once the
    /// linger is over counts as an event missed, so a client resuming from
    /// before it reloads. Cheap: what every vendor request asks, and with
    /// nobody listening it reads atomics that do not change (no clock read
    /// once the linger has ended).
    pub fn recording(&self) -> bool {
        let inner = &self.inner;
        if inner.subscribers.load(Ordering::SeqCst) > 0 {
            return true;
        }
        if inner.missed.load(Ordering::Relaxed) {
            return false;
        }
        let until = inner.linger_until.load(Ordering::SeqCst);
        if until == 0 {
            return false; // nobody ever listened: nobody can resume
        }
        if inner.now_ms() < until {
            return true;
        }
        // The linger is over and this event goes unrecorded: say so, and
        // let the ring go (nothing in it can be replayed whole any more).
        inner.missed.store(true, Ordering::SeqCst);
        inner.ring().start_over();
        // A subscriber that came meanwhile may have found `missed` still
        // false: record this event for it rather than lose it silently.
        inner.subscribers.load(Ordering::SeqCst) > 0
    }

    /// Records an event; `data` (JSON) is built only if it is kept. The
    /// ring's lock is taken last by every caller (a leaf), so a caller may
    /// publish while holding its own lock, which keeps one job's events in
    /// the order its changes happened.
    pub fn publish(&self, kind: &'static str, data: impl FnOnce() -> String) {
        if !self.recording() {
            return;
        }
        let data = data();
        let mut ring = self.inner.ring();
        ring.forget_if_missed(&self.inner.missed);
        let event = Arc::new(Event {
            id: ring.next_id,
            kind,
            data,
        });
        ring.next_id += 1;
        ring.bytes += event.data.len();
        ring.events.push_back(event.clone());
        while ring.events.len() > RING_EVENTS || ring.bytes > RING_BYTES {
            let Some(old) = ring.events.pop_front() else {
                break;
            };
            ring.bytes -= old.data.len();
            ring.complete_after = old.id;
        }
        // Sent under the ring's lock, so a subscriber (which takes the lock
        // to copy the ring and subscribe) sees each event exactly once.
        let _ = self.inner.sender.send(event);
    }

    /// A new subscriber that saw everything up to `last_event_id` (None: a
    /// fresh client, which loads the current state itself).
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let inner = &self.inner;
        inner.subscribers.fetch_add(1, Ordering::SeqCst);
        let guard = SubscriberGuard(inner.clone());
        let mut ring = inner.ring();
        ring.forget_if_missed(&inner.missed);
        let live = inner.sender.subscribe();
        let last_id = ring.next_id - 1;
        let (backlog, resync) = match last_event_id {
            None => (Vec::new(), false),
            Some(seen) if seen < ring.complete_after || seen > last_id => (Vec::new(), true),
            Some(seen) => (
                ring.events
                    .iter()
                    .filter(|event| event.id > seen)
                    .cloned()
                    .collect(),
                false,
            ),
        };
        drop(ring);
        Subscription {
            instance: inner.instance.clone(),
            backlog,
            resync,
            last_id,
            live,
            closed: inner.closed.subscribe(),
            _guard: guard,
        }
    }

    /// Ends every stream (the server is stopping); later ones end at once.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so 0 keeps meaning "never subscribed".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

impl Ring {
    /// Events went unrecorded since the last one kept: nothing before now
    /// can be replayed whole. One id is skipped for them, so a client that
    /// saw the last kept event is still told to reload.
    fn forget_if_missed(&mut self, missed: &AtomicBool) {
        if missed.swap(false, Ordering::SeqCst) {
            self.start_over();
        }
    }

    fn start_over(&mut self) {
        self.events = VecDeque::new();
        self.bytes = 0;
        self.next_id += 1;
        self.complete_after = self.next_id - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(events: &[Arc<Event>]) -> Vec<u64> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn nothing_is_built_while_nobody_listens() {
        let events = Events::default();
        events.publish("job", || panic!("built with no subscriber"));
        assert!(!events.recording());
        let first = events.subscribe(None);
        assert_eq!(first.last_id, 0);
        events.publish("job", || "{}".into());
        assert_eq!(events.subscribe(Some(0)).backlog.len(), 1);
    }

    #[test]
    fn a_reconnecting_subscriber_gets_exactly_what_it_missed() {
        let events = Events::default();
        let mut first = events.subscribe(None);
        for n in 0..5 {
            events.publish("request", || format!("{{\"n\":{n}}}"));
        }
        // Live: each event once, in order.
        let mut live = Vec::new();
        while let Ok(event) = first.live.try_recv() {
            live.push(event);
        }
        assert_eq!(ids(&live), [1, 2, 3, 4, 5]);
        drop(first);
        // Gone for a moment (within the linger): still recorded.
        events.publish("clock", || "{}".into());
        let again = events.subscribe(Some(3));
        assert!(!again.resync);
        assert_eq!(ids(&again.backlog), [4, 5, 6]);
        assert_eq!(again.last_id, 6);
        // An id from another instance (ahead of this one) reloads.
        assert!(events.subscribe(Some(99)).resync);
    }

    #[test]
    fn events_that_went_unrecorded_make_a_resuming_client_reload() {
        let events = Events::default();
        drop(events.subscribe(None));
        events.publish("job", || "{}".into()); // id 1, within the linger
                                               // The linger ends: what happens now is not recorded.
        events.inner.linger_until.store(1, Ordering::Relaxed);
        events.publish("job", || panic!("not recorded"));
        let back = events.subscribe(Some(1));
        assert!(back.resync, "the client saw id 1 but missed what followed");
        assert!(back.backlog.is_empty());
        // Resuming from what this subscription reported works again.
        let last = back.last_id;
        events.publish("job", || "{}".into());
        let next = events.subscribe(Some(last));
        assert!(!next.resync);
        assert_eq!(next.backlog.len(), 1);
    }

    #[test]
    fn a_caller_told_not_to_record_counts_as_a_miss() {
        // What the registry and the journal hooks do: ask, then skip.
        let events = Events::default();
        drop(events.subscribe(None));
        events.publish("job", || "{}".into());
        events.inner.linger_until.store(1, Ordering::Relaxed);
        assert!(!events.recording());
        assert!(events.inner.ring().events.is_empty(), "the ring is let go");
        assert!(events.subscribe(Some(1)).resync);
    }

    #[test]
    fn the_ring_is_bounded_and_a_client_past_it_reloads() {
        let events = Events::default();
        let _listener = events.subscribe(None);
        let big = "x".repeat(64 * 1024);
        for _ in 0..(RING_BYTES / big.len() + 10) {
            events.publish("request", || big.clone());
        }
        let ring = events.inner.ring();
        assert!(ring.bytes <= RING_BYTES);
        assert!(ring.complete_after > 0);
        drop(ring);
        assert!(events.subscribe(Some(1)).resync);
    }

    #[test]
    fn a_stalled_subscriber_lags_and_publishing_never_waits() {
        let events = Events::default();
        let mut stalled = events.subscribe(None);
        for _ in 0..(CHANNEL + 10) {
            events.publish("request", || "{}".into());
        }
        assert!(matches!(
            stalled.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
