//! Responses on their way out: injected faults (a throttled body, a body cut
//! after K bytes) and the connection wrapper that turns a cut into a TCP
//! reset and drops a client that stops reading.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::http::Body;
use crate::faults::{Cut, CutHow};

/// Pieces a throttled body is sent in per second, so the rate is smooth.
const THROTTLE_STEPS_PER_SEC: u64 = 20;

/// Sends `inner` at no more than `bytes_per_sec`.
pub fn throttled(inner: Body, bytes_per_sec: u64) -> Body {
    Throttled {
        inner,
        bytes_per_sec: bytes_per_sec.max(1),
        pending: Bytes::new(),
        started: Instant::now(),
        sent: 0,
        sleep: None,
    }
    .boxed()
}

struct Throttled {
    inner: Body,
    bytes_per_sec: u64,
    /// Data received from `inner` and not yet sent.
    pending: Bytes,
    started: Instant,
    sent: u64,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for Throttled {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if this.pending.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
        let step = (this.bytes_per_sec / THROTTLE_STEPS_PER_SEC).max(1) as usize;
        let piece = this.pending.split_to(step.min(this.pending.len()));
        this.sent += piece.len() as u64;
        // The next piece may go once the bytes so far fit the rate.
        let due =
            this.started + Duration::from_secs_f64(this.sent as f64 / this.bytes_per_sec as f64);
        if due > Instant::now() {
            this.sleep = Some(Box::pin(tokio::time::sleep_until(due)));
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        hint.set_lower(hint.lower() + pending);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}

/// How long the cut waits after the last byte, so the connection flushes
/// what was sent before it breaks.
const CUT_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Ends `inner` after `cut.after_bytes` with an error, which makes hyper drop
/// the connection; `reset` is the connection's flag for a TCP reset.
pub fn cut(inner: Body, cut: Cut, reset: Arc<AtomicBool>) -> Body {
    Cutting {
        inner,
        left: cut.after_bytes,
        how: cut.how,
        reset,
        pause: None,
    }
    .boxed()
}

struct Cutting {
    inner: Body,
    left: u64,
    how: CutHow,
    reset: Arc<AtomicBool>,
    pause: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for Cutting {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.left == 0 {
            let pause = this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CUT_FLUSH_PAUSE)));
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if this.how == CutHow::Reset {
                this.reset.store(true, Ordering::SeqCst);
            }
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "response cut by an injected fault",
            ))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 > this.left {
                        data.truncate(this.left as usize);
                    }
                    this.left -= data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left > 0 && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // The announced length stays the real one: the client sees it broken.
        self.inner.size_hint()
    }
}

/// A client connection that fails a write the client has not made room for
/// within `send_timeout` (a stalled reader), and closes with a TCP reset
/// instead of a FIN once its `reset` flag is set.
pub struct ConnectionIo {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
    send_timeout: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl ConnectionIo {
    pub fn new(stream: TcpStream, send_timeout: Duration) -> (Self, Arc<AtomicBool>) {
        let reset = Arc::new(AtomicBool::new(false));
        (
            ConnectionIo {
                stream,
                reset: reset.clone(),
                send_timeout,
                stalled_since: None,
            },
            reset,
        )
    }

    /// Passes a write's outcome on; a write pending for `send_timeout` fails.
    fn watch_stall<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled_since = None;
            return polled;
        }
        let timeout = self.send_timeout;
        let stall = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stall.as_mut().poll(cx).is_ready() {
            self.stalled_since = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            )));
        }
        Poll::Pending
    }
}

impl Drop for ConnectionIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // Linger 0: close() sends RST. It does not block with a zero timeout.
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ConnectionIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnectionIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch_stall(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch_stall(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.reset.load(Ordering::SeqCst) {
            // A FIN now would tell the client the response ended cleanly.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch_stall(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zipgate_api::http::full;

    #[tokio::test(start_paused = true)]
    async fn throttle_keeps_to_the_rate() {
        let started = Instant::now();
        let body = throttled(full(vec![1u8; 10_000]), 4_000);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 10_000);
        let took = started.elapsed().as_secs_f64();
        assert!(
            (2.4..2.6).contains(&took),
            "{took} s for 10000 B at 4000 B/s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cut_sends_exactly_k_bytes_then_fails() {
        let reset = Arc::new(AtomicBool::new(false));
        let rule = Cut {
            after_bytes: 1234,
            how: CutHow::Reset,
        };
        let mut body = cut(full(vec![0u8; 5000]), rule, reset.clone());
        let mut got = 0;
        let error = loop {
            match body.frame().await {
                Some(Ok(frame)) => got += frame.into_data().unwrap().len(),
                Some(Err(e)) => break e,
                None => panic!("the body ended without the cut"),
            }
        };
        assert_eq!(got, 1234);
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        assert!(reset.load(Ordering::SeqCst));
    }
}
