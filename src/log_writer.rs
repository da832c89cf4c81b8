//! The binary's log writer: lines go into a shared buffer that a thread of
//! its own writes out. Under load it writes every few milliseconds, so a
//! request neither waits on stderr nor wakes a thread per line
//! (tracing-appender's `non_blocking` sent a channel message per line and
//! woke its thread for most of them: with the access log on, 4-5 us of a Box
//! create's 17 us of CPU). When lines are few, each is written at once, so
//! a process killed right after logging has still written its lines.
//! Nothing is dropped: past `max_pending` bytes a writer waits for room.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long lines wait at most before they are written, under load.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// A batch at least this big means load: the thread then waits
/// `FLUSH_EVERY` before the next batch instead of waking for each line.
const BUSY_BATCH: usize = 8 << 10;
/// Bytes buffered at most before writers wait.
pub const MAX_PENDING: usize = 1 << 20;

struct Shared {
    state: Mutex<State>,
    /// Wakes the writing thread: it is idle and a line came, or we stop.
    wake: Condvar,
    /// Wakes writers waiting for room.
    room: Condvar,
    max_pending: usize,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The writing thread waits for a line (rather than sleeping a period).
    idle: bool,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands out writers for tracing; cheap to clone.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Writes out what is left and stops the thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer batching into `out`, flushed every `flush_every`.
pub fn batched(
    out: impl Write + Send + 'static,
    flush_every: Duration,
    max_pending: usize,
) -> (BatchedWriter, FlushGuard) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        room: Condvar::new(),
        max_pending: max_pending.max(1),
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("zipgate-log".into())
        .spawn(move || write_out(&worker, out, flush_every))
        .ok();
    if thread.is_none() {
        // No thread: write through, so no line is ever stranded.
        shared.lock().stopping = true;
    }
    (
        BatchedWriter {
            shared: shared.clone(),
        },
        FlushGuard { shared, thread },
    )
}

fn write_out(shared: &Shared, mut out: impl Write, flush_every: Duration) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.pending.is_empty() && !state.stopping {
            state.idle = true;
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        std::mem::swap(&mut state.pending, &mut batch);
        let stopping = state.stopping;
        drop(state);
        shared.room.notify_all();
        // A failed write (stderr closed) loses the batch, never blocks the server.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        let busy = batch.len() >= BUSY_BATCH;
        batch.clear();
        if stopping {
            // Writers saw `stopping` under the same lock: they write through now.
            return;
        }
        if busy {
            std::thread::sleep(flush_every);
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One event's writer: tracing formats a line, then writes it at once.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shared = self.shared;
        let mut state = shared.lock();
        if state.stopping {
            drop(state);
            // The thread is gone or going: straight to stderr, in order enough.
            return std::io::stderr().write(buf);
        }
        while state.pending.len() >= shared.max_pending && !state.stopping {
            state = shared.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.pending.extend_from_slice(buf);
        if std::mem::take(&mut state.idle) {
            drop(state);
            shared.wake.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// A sink the test can read after the guard is gone.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_per_thread_even_when_writers_must_wait() {
        let sink = Sink::default();
        // 64 bytes of room: writers keep waiting for the thread.
        let (writer, guard) = batched(sink.clone(), Duration::from_millis(1), 64);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let writer = &writer;
                scope.spawn(move || {
                    for i in 0..500 {
                        let line = format!("t{t} {i}\n");
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        for t in 0..4 {
            let seen: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(seen, (0..500).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn few_lines_are_written_at_once_not_after_the_period() {
        let sink = Sink::default();
        // A period no test would wait for: lines must not wait for it.
        let (writer, _guard) = batched(sink.clone(), Duration::from_secs(3600), MAX_PENDING);
        for n in 0..3 {
            writer.make_writer().write_all(b"line\n").unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while sink.0.lock().unwrap().len() < 5 * (n + 1) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "line {n} never written"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            // Long enough for the thread to go idle again.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
