//! Runs the zip engine on a blocking thread and hands its chunks to hyper
//! through a small bounded channel: the socket's pace sets the engine's pace,
//! and a dropped response body (client gone) stops the engine at its next chunk.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::zip::{Archive, Cancelled, ChunkSink, StreamError, StreamObserver};
use zipgate_api::http::Body;

/// Chunks in flight per stream, besides the one being filled and the one
/// hyper is writing: memory per download stays near 4 × `CHUNK_SIZE`.
const CHANNEL_DEPTH: usize = 2;

/// Counts engine threads still running, so a test (or an operator) can see
/// that an abandoned download freed its work.
#[derive(Default, Debug)]
pub struct StreamCounter(AtomicUsize);

impl StreamCounter {
    pub fn active(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct ActiveGuard(Arc<StreamCounter>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct ChannelSink(mpsc::Sender<io::Result<Bytes>>, CancellationToken);

impl ChunkSink for ChannelSink {
    fn send(&mut self, chunk: Bytes) -> Result<(), Cancelled> {
        self.0.blocking_send(Ok(chunk)).map_err(|_| Cancelled)
    }

    /// The response body (the receiver) is gone: the client left, or the
    /// connection was cut at shutdown; or the job was cancelled.
    fn cancelled(&self) -> bool {
        self.0.is_closed() || self.1.is_cancelled()
    }
}

/// On a download's response: the job's cancellation, which cuts the
/// response once it fires. The server wraps the body with [`cut_on_cancel`]
/// last, outside any shaping, so a body parked on a throttle is cut too.
#[derive(Clone)]
pub struct CutOnCancel(pub CancellationToken);

/// `inner`, ending in an error (the connection is cut, as when a download
/// fails mid-stream) as soon as `stop` fires, even while it waits.
pub fn cut_on_cancel(inner: Body, stop: CancellationToken) -> Body {
    CancellableBody {
        inner,
        fired: Box::pin(stop.clone().cancelled_owned()),
        stop,
    }
    .boxed()
}

struct CancellableBody {
    inner: Body,
    stop: CancellationToken,
    /// Registers the task's waker, so a cancel wakes a body that waits.
    fired: Pin<Box<WaitForCancellationFutureOwned>>,
}

fn job_cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the job was cancelled")
}

impl http_body::Body for CancellableBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        // Polled first, so its waker is registered while the inner body waits.
        if self.fired.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(job_cancelled())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            // A cancel that came while the inner body ended is still a cut:
            // an archive of unknown length must not end cleanly, truncated.
            Poll::Ready(None) if self.stop.is_cancelled() => {
                Poll::Ready(Some(Err(job_cancelled())))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body streaming `archive` from `offset`, ending after `len`
/// bytes when given (a `Range` that may stop before the end).
pub fn archive_body(
    archive: Arc<Archive>,
    offset: u64,
    len: Option<u64>,
    counter: Arc<StreamCounter>,
    observer: Arc<dyn StreamObserver>,
    stop: CancellationToken,
) -> Body {
    // Only a response that reaches the archive's last byte completes a download.
    let reaches_end = match (len, archive.len()) {
        (Some(len), Some(total)) => offset + len == total,
        _ => true,
    };
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    counter.0.fetch_add(1, Ordering::SeqCst);
    let guard = ActiveGuard(counter);
    let engine_observer = observer.clone();
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let mut sink = ChannelSink(tx, stop);
        match archive.stream(offset, &mut sink, engine_observer.as_ref()) {
            // Stopped because the job was cancelled, not because the client
            // left: the response must end in an error, never look complete.
            Err(StreamError::Cancelled) if sink.1.is_cancelled() => {
                let _ = sink
                    .0
                    .blocking_send(Err(io::Error::other("the job was cancelled")));
            }
            Ok(()) | Err(StreamError::Cancelled) => {}
            Err(error) => {
                tracing::error!(%error, "archive stream failed; cutting the response");
                let _ = sink
                    .0
                    .blocking_send(Err(io::Error::other(error.to_string())));
            }
        }
    });
    ArchiveBody {
        rx,
        remaining: len,
        reaches_end,
        observer: Some(observer),
        failed: false,
    }
    .boxed()
}

struct ArchiveBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: Option<u64>,
    reaches_end: bool,
    observer: Option<Arc<dyn StreamObserver>>,
    failed: bool,
}

impl ArchiveBody {
    fn finish(&mut self, complete: bool) {
        if let Some(observer) = self.observer.take() {
            observer.finished(complete);
        }
    }
}

impl Drop for ArchiveBody {
    fn drop(&mut self) {
        let complete = self.reaches_end && self.remaining == Some(0);
        self.finish(complete);
    }
}

impl http_body::Body for ArchiveBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == Some(0) {
            // Dropping the receiver now stops the engine at its next chunk.
            let complete = self.reaches_end;
            self.finish(complete);
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(mut chunk))) => {
                if let Some(remaining) = self.remaining.as_mut() {
                    if chunk.len() as u64 > *remaining {
                        chunk.truncate(*remaining as usize);
                    }
                    *remaining -= chunk.len() as u64;
                }
                if let Some(observer) = &self.observer {
                    observer.bytes_sent(chunk.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(error))) => {
                self.failed = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                let complete =
                    !self.failed && self.reaches_end && self.remaining.is_none_or(|r| r == 0);
                self.finish(complete);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{TimeZone, Utc};
    use http_body_util::BodyExt;

    use super::*;
    use crate::store::{Content, FileBody};
    use crate::zip::{ArchiveEntry, DeflateEngine, Deflater, EntryBody, Method, Progress};

    #[derive(Default)]
    struct Outcome(Mutex<Option<bool>>);
    impl Progress for Outcome {}
    impl StreamObserver for Outcome {
        fn finished(&self, complete: bool) {
            *self.0.lock().unwrap() = Some(complete);
        }
    }

    fn archive() -> Arc<Archive> {
        let body = FileBody::new(Content::Bytes(Arc::from(vec![7u8; 300_000])));
        Arc::new(Archive::new(
            vec![ArchiveEntry {
                origin: None,
                name: "a.bin".into(),
                mtime: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
                body: EntryBody::File {
                    data: Arc::new(body),
                    method: Method::Store,
                    built: None,
                },
            }],
            Deflater::new(6, DeflateEngine::Fastest),
        ))
    }

    async fn run(offset: u64, len: Option<u64>) -> (usize, Option<bool>) {
        let archive = archive();
        let outcome = Arc::new(Outcome::default());
        let counter = Arc::new(StreamCounter::default());
        let body = archive_body(
            archive,
            offset,
            len,
            counter,
            outcome.clone(),
            CancellationToken::new(),
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        let result = *outcome.0.lock().unwrap();
        (bytes.len(), result)
    }

    #[tokio::test]
    async fn a_cancel_cuts_a_body_that_waits() {
        // A body that never yields: a throttle holding its next piece.
        let parked = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, io::Error>,
        >())
        .boxed();
        let stop = CancellationToken::new();
        let mut body = cut_on_cancel(parked, stop.clone());
        let waiting = tokio::spawn(async move { body.frame().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        stop.cancel();
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the cancel woke the body")
            .unwrap();
        let error = frame.expect("a frame").expect_err("an error");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_cancel_while_the_inner_body_ends_is_still_a_cut() {
        // The inner body ends (the engine stopped on the cancel) in the
        // same poll that the cancel lands in.
        struct EndsOnCancel(CancellationToken);
        impl http_body::Body for EndsOnCancel {
            type Data = Bytes;
            type Error = io::Error;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
                self.0.cancel();
                Poll::Ready(None)
            }
        }
        let stop = CancellationToken::new();
        let mut body = cut_on_cancel(EndsOnCancel(stop.clone()).boxed(), stop);
        let frame = body.frame().await.expect("not a clean end");
        assert_eq!(
            frame.expect_err("an error").kind(),
            io::ErrorKind::ConnectionAborted
        );
    }

    #[tokio::test]
    async fn only_a_response_reaching_the_last_byte_completes() {
        let total = archive().len().unwrap();
        assert_eq!(run(0, None).await, (total as usize, Some(true)));
        assert_eq!(run(0, Some(total)).await, (total as usize, Some(true)));
        assert_eq!(run(0, Some(1)).await, (1, Some(false)));
        assert_eq!(
            run(10, Some(total - 10)).await,
            (total as usize - 10, Some(true))
        );
    }
}
