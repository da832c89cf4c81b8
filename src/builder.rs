//! Archives built ahead of their download ([`Archive::build`]): for jobs
//! whose dialect serves a stored file, so a deflated archive still has an
//! exact length and ranges.
//!
//! A small archive is built during the create request (a few milliseconds
//! of deflate, and the job is then as ready as its pacing says, which keeps
//! a client's first poll deterministic); a larger one goes to a few builder
//! threads, and its job stays unready until the build ends. A build stops
//! when its job no longer wants it (cancelled, failed, evicted, reset) or
//! the server goes away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::zip::{Archive, EntryBody, Method, NoProgress, StreamError};

/// Deflate input up to which an archive is built inline: about 3 ms at
/// level 6 on one core.
pub const INLINE_BUILD_BYTES: u64 = 256 * 1024;

type Done = Box<dyn FnOnce(Result<Archive, String>) + Send>;

struct Task {
    archive: Arc<Archive>,
    cancelled: Arc<AtomicBool>,
    done: Done,
}

pub struct Builder {
    queue: Mutex<Option<Sender<Task>>>,
    /// Set when the server's state goes away: queued and running builds stop.
    stopped: Arc<AtomicBool>,
    threads: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            queue: Mutex::new(None),
            stopped: Arc::new(AtomicBool::new(false)),
            // Large entries deflate on the shared per-core pool anyway; two
            // builders keep a big archive from holding up every small one.
            threads: 2,
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// Bytes the build would deflate.
fn deflate_input(archive: &Archive) -> u64 {
    archive
        .entries()
        .iter()
        .map(|entry| match &entry.body {
            EntryBody::File {
                data,
                method: Method::Deflate,
                built: None,
            } => data.len(),
            _ => 0,
        })
        .fold(0u64, u64::saturating_add)
}

fn run(task: Task, stopped: &AtomicBool) {
    let Task {
        archive,
        cancelled,
        done,
    } = task;
    let stop = || cancelled.load(Ordering::Relaxed) || stopped.load(Ordering::Relaxed);
    if stop() {
        return;
    }
    match archive.build(&stop, &NoProgress) {
        Ok(built) => done(Ok(built)),
        Err(StreamError::Cancelled) => {}
        Err(error) => done(Err(format!("the archive could not be built: {error}"))),
    }
}

impl Builder {
    /// Builds `archive`, inline when it is small, else on a builder thread;
    /// `done` gets the result unless the build was cancelled (`cancelled`
    /// turned true) or the server stopped first.
    pub fn build(
        &self,
        archive: Arc<Archive>,
        cancelled: Arc<AtomicBool>,
        done: impl FnOnce(Result<Archive, String>) + Send + 'static,
    ) {
        let task = Task {
            archive,
            cancelled,
            done: Box::new(done),
        };
        if deflate_input(&task.archive) <= INLINE_BUILD_BYTES {
            return run(task, &self.stopped);
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let sender = queue.get_or_insert_with(|| self.start());
        if let Err(refused) = sender.send(task) {
            // Every builder thread is gone (none could be started).
            *queue = None;
            drop(queue);
            (refused.0.done)(Err("no thread could build the archive".into()));
        }
    }

    /// The queue and its threads, started on first use so a server that
    /// never builds runs none. A thread that cannot start leaves the others
    /// (and when none starts, the receiver drops and `build` fails the job).
    fn start(&self) -> Sender<Task> {
        let (sender, receiver) = channel::<Task>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..self.threads {
            let receiver: Arc<Mutex<Receiver<Task>>> = receiver.clone();
            let stopped = self.stopped.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("zipgate-build-{n}"))
                .spawn(move || loop {
                    let next = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match next {
                        Ok(task) => run(task, &stopped),
                        Err(_) => return,
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!("could not start an archive builder thread: {error}");
            }
        }
        sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Content, FileBody, GeneratedKind};
    use crate::zip::{ArchiveEntry, DeflateEngine, Deflater};
    use chrono::{TimeZone, Utc};
    use std::sync::mpsc::sync_channel;
    use std::time::Duration;

    fn archive(size: u64) -> Arc<Archive> {
        Arc::new(Archive::new(
            vec![ArchiveEntry {
                origin: None,
                name: "log.txt".into(),
                mtime: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
                body: EntryBody::File {
                    data: Arc::new(FileBody::new(Content::Generated {
                        size,
                        seed: 1,
                        kind: GeneratedKind::Text,
                    })),
                    method: Method::Deflate,
                    built: None,
                },
            }],
            Deflater::new(6, DeflateEngine::ZlibRs),
        ))
    }

    #[test]
    fn a_small_archive_is_built_before_build_returns() {
        let builder = Builder::default();
        let (tx, rx) = sync_channel(1);
        builder.build(archive(1000), Arc::new(AtomicBool::new(false)), move |r| {
            tx.send(r.map(|a| a.len())).unwrap()
        });
        assert!(matches!(rx.try_recv(), Ok(Ok(Some(_)))));
        assert!(builder.queue.lock().unwrap().is_none(), "no thread started");
    }

    #[test]
    fn a_large_archive_is_built_on_a_thread_and_a_cancelled_one_reports_nothing() {
        let builder = Builder::default();
        let (tx, rx) = sync_channel(2);
        let tx2 = tx.clone();
        builder.build(
            archive(INLINE_BUILD_BYTES + 1),
            Arc::new(AtomicBool::new(false)),
            move |r| tx.send(r.map(|a| a.len())).unwrap(),
        );
        let got = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(matches!(got, Ok(Some(_))), "{got:?}");
        builder.build(
            archive(INLINE_BUILD_BYTES * 4),
            Arc::new(AtomicBool::new(true)),
            move |r| tx2.send(r.map(|a| a.len())).unwrap(),
        );
        // The sender was dropped unused: nothing reported.
        assert!(rx.recv_timeout(Duration::from_secs(30)).is_err());
    }
}
