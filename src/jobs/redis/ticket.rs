//! A download in progress on this replica, as the job store hears of it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use zipgate_api::JobSnapshot;

use super::record::{micros, owner_key};
use super::{fcall, Op, RedisJobs, Reply, RESPONSE_TIMEOUT};
use crate::jobs::job::files_of;
use crate::zip::{Archive, Progress, StreamObserver};

/// How often a download's progress is written to Redis, at most: at the
/// first chunk or entry this long after the last write.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// One download in progress on this replica: it counts locally and writes
/// what it counted every [`PROGRESS_EVERY`] and at the end, in order,
/// through a task of the job store's runtime (a chunk never waits on Redis).
pub(super) struct Ticket {
    jobs: RedisJobs,
    id: String,
    seq: u64,
    is_file: RwLock<Vec<bool>>,
    pending: Mutex<Pending>,
    started: Instant,
    flushed_ms: AtomicU64,
    finished: AtomicBool,
    queue: tokio::sync::mpsc::UnboundedSender<Write>,
}

#[derive(Default)]
struct Pending {
    bytes: u64,
    entries_done: Option<u64>,
    files: u64,
}

enum Write {
    Progress(Pending),
    Finish(Pending, bool, std::sync::mpsc::SyncSender<()>),
}

impl Ticket {
    pub(super) fn start(
        jobs: RedisJobs,
        job: &JobSnapshot,
        seq: u64,
        claim: String,
        archive: &Archive,
    ) -> Arc<Ticket> {
        let (queue, mut writes) = tokio::sync::mpsc::unbounded_channel::<Write>();
        let writer = jobs.clone();
        let id = job.id.clone();
        let owner = format!("{}|{}", job.owner_tag, owner_key(&job.owner));
        let task_id = id.clone();
        jobs.inner.handle.spawn(async move {
            while let Some(write) = writes.recv().await {
                let (pending, end, done) = match write {
                    Write::Progress(p) => (p, "", None),
                    Write::Finish(p, complete, done) => {
                        (p, if complete { "1" } else { "0" }, Some(done))
                    }
                };
                let args: Vec<Vec<u8>> = [
                    task_id.clone(),
                    seq.to_string(),
                    pending.bytes.to_string(),
                    pending
                        .entries_done
                        .map_or_else(String::new, |n| n.to_string()),
                    pending.files.to_string(),
                    end.to_owned(),
                    owner.clone(),
                    if writer.inner.events.recording() {
                        "1"
                    } else {
                        "0"
                    }
                    .to_owned(),
                    writer.inner.listener_id.clone(),
                    claim.clone(),
                ]
                .into_iter()
                .map(String::into_bytes)
                .collect();
                let mut conn = writer.inner.conn.clone();
                let now = micros(writer.inner.clock.now()).to_string();
                match fcall(
                    &mut conn,
                    Op::Progress,
                    &writer.inner.prefix,
                    &now,
                    &args,
                    false,
                )
                .await
                {
                    Ok(value) => {
                        if let Ok(reply) = Reply::of(value) {
                            if reply.status == "ok" {
                                writer.job_of(&reply);
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(
                            target: "zipgate::jobs",
                            job = %task_id,
                            %error,
                            "cannot record a download's progress"
                        );
                        if done.is_some() {
                            // The end was not recorded: the heartbeat ends it.
                            writer.unanswered(&claim);
                        }
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                    return;
                }
            }
        });
        Arc::new(Ticket {
            jobs,
            id,
            seq,
            is_file: RwLock::new(files_of(archive)),
            pending: Mutex::default(),
            started: Instant::now(),
            flushed_ms: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            queue,
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands what was counted to the writer once it is old enough.
    fn flush_if_due(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.flushed_ms.load(Ordering::Relaxed);
        if now < last + PROGRESS_EVERY.as_millis() as u64
            || self
                .flushed_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let pending = std::mem::take(&mut *self.pending());
        let _ = self.queue.send(Write::Progress(pending));
    }

    pub(super) fn finish(&self, complete: bool) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let pending = std::mem::take(&mut *self.pending());
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if self
            .queue
            .send(Write::Finish(pending, complete, done))
            .is_ok()
        {
            // A client that polls right after its last byte must see the
            // download ended: wait for the write (as `run` waits).
            let wait = || {
                let _ = written.recv_timeout(RESPONSE_TIMEOUT * 2);
            };
            match Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
                _ => wait(),
            }
        }
        self.jobs.release_claim(&self.id, self.seq);
    }
}

impl Progress for Ticket {
    fn entry_done(&self, index: usize) {
        let is_file = self
            .is_file
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .copied()
            .unwrap_or(false);
        {
            let mut pending = self.pending();
            pending.entries_done = Some(pending.entries_done.unwrap_or(0).max(index as u64 + 1));
            if is_file {
                pending.files += 1;
            }
        }
        self.flush_if_due();
    }
}

impl StreamObserver for Ticket {
    fn bytes_sent(&self, n: u64) {
        self.pending().bytes += n;
        self.flush_if_due();
    }

    fn finished(&self, complete: bool) {
        self.finish(complete);
    }

    fn archive_replaced(&self, archive: &Archive) {
        *self.is_file.write().unwrap_or_else(|e| e.into_inner()) = files_of(archive);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.finish(false);
    }
}
