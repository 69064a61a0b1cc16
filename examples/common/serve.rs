//! Serving a router over HTTP/1.1 with the timeouts `axum::serve` does not expose:
//! a header-read timeout (slowloris), an idle-connection timeout, and a whole-request
//! timeout layer.
//!
//! `axum::serve` (0.8) builds hyper's connection builder itself and sets no timer, so
//! a client that trickles its headers or sits idle keeps a connection (and a task)
//! forever. Here hyper's HTTP/1 builder gets `header_read_timeout`, and every
//! connection's socket is wrapped so that no byte either way for the idle timeout
//! closes it.
//!
//! hyper starts its header-read timer when it starts waiting for a request head,
//! which on a kept-alive connection is as soon as the previous answer is written:
//! the wait for the next request would be cut at the header-read timeout, never
//! reaching the idle timeout. So each connection's timer is a [`HeadTimer`]: the
//! header-read timeout of a connection's first request counts from its accept (a
//! connection opened to send nothing is slowloris), that of every later request
//! from the first byte of its head; the wait between requests is the idle
//! timeout's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower::{Layer as _, ServiceExt as _};

/// The timeouts of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A request's whole handling, body included (answered 503).
    pub request: Duration,
    /// Receiving a request's whole head: from the connection's accept for its first
    /// request, from the head's first byte for the next ones.
    pub header_read: Duration,
    /// No byte in either direction (the wait between requests on a kept-alive
    /// connection included).
    pub idle: Duration,
    /// After a shutdown signal, how long open connections may finish what they are
    /// doing; then the process ends regardless. Streams (the revocation stream a
    /// resource server follows) never finish on their own: this ends them.
    pub shutdown_grace: Duration,
}

impl Timeouts {
    /// From `REQUEST_TIMEOUT_SECONDS` (30), `HEADER_READ_TIMEOUT_SECONDS` (10) and
    /// `IDLE_TIMEOUT_SECONDS` (60), `SHUTDOWN_GRACE_SECONDS` (10).
    pub fn from_env() -> Result<Self, crate::Error> {
        use crate::env::parsed;
        Ok(Self {
            request: Duration::from_secs(parsed("REQUEST_TIMEOUT_SECONDS", 30)?),
            header_read: Duration::from_secs(parsed("HEADER_READ_TIMEOUT_SECONDS", 10)?),
            idle: Duration::from_secs(parsed("IDLE_TIMEOUT_SECONDS", 60)?),
            shutdown_grace: Duration::from_secs(parsed("SHUTDOWN_GRACE_SECONDS", 10)?),
        })
    }
}

/// The request timeout: a request not answered within its timeout gets 503 (the
/// client may retry; 408 would blame it for a slow server). Put around the router
/// with tower's `map_future` in [`serve`].
///
/// Unlike `tower_http::timeout::TimeoutLayer`, which arms a timer for every request,
/// this polls the answer first and arms the timer only when it is not ready at
/// once: most answers here are (a cached introspection, a health check), and a timer
/// costs an allocation and two trips through the runtime's timer wheel. The deadline
/// still counts from the moment the request arrived.
pub struct TimedAnswer<F> {
    deadline: Instant,
    answer: Pin<Box<F>>,
    /// Armed the first time the answer is not ready.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<F> TimedAnswer<F> {
    fn new(answer: F, timeout: Duration) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            answer: Box::pin(answer),
            timer: None,
        }
    }
}

impl<F, E> Future for TimedAnswer<F>
where
    F: Future<Output = Result<axum::response::Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(r) = this.answer.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(StatusCode::SERVICE_UNAVAILABLE.into_response())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Serves `router` (with [`ConnectInfo<SocketAddr>`]) until `shutdown` resolves, then
/// lets open connections finish their current request. Every request goes through
/// [`oauth_core::server::trace_layer`] and the request timeout ([`TimedAnswer`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    // Around the router as a whole, not through `Router::layer`, which would wrap
    // every route in one more boxed service cloned on every request.
    let service = tower::ServiceBuilder::new()
        .layer(oauth_core::server::trace_layer())
        .map_future(move |answer| TimedAnswer::new(answer, timeouts.request))
        .service(router);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let service = axum::Extension(ConnectInfo(remote))
            .layer(service.clone())
            .map_request(|req: axum::http::Request<hyper::body::Incoming>| {
                req.map(axum::body::Body::new)
            });
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let head = Arc::new(HeadClock::new());
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(HeadTimer {
                    head: head.clone(),
                    timeout: timeouts.header_read,
                })
                .header_read_timeout(timeouts.header_read);
            let io = TokioIo::new(IdleTimeout::new(socket, timeouts.idle, head));
            let conn = builder.serve_connection(io, TowerToHyperService::new(service));
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_end(result, remote),
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    log_end(conn.await, remote);
                }
            }
        });
    }
    drop(stop_rx);
    stop_tx.send_replace(());
    // Every connection task holds a receiver: wait until the last has finished, or
    // the grace period has passed (an endless stream would hold shutdown forever).
    if tokio::time::timeout(timeouts.shutdown_grace, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::info!(
            open = stop_tx.receiver_count(),
            "shutdown grace period over: closing the connections still open"
        );
    }
    Ok(())
}

fn log_end(result: Result<(), hyper::Error>, remote: SocketAddr) {
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection closed");
    }
}

/// When the request head a connection waits for began: its accept for the first
/// request, then the first byte read after hyper starts waiting for the next head.
/// Shared by the connection's socket ([`IdleTimeout`], which notes the first byte)
/// and its [`HeadTimer`].
struct HeadClock {
    base: Instant,
    /// Nanoseconds from `base` to the head's first byte; [`HeadClock::WAITING`]
    /// while no byte of it has come.
    began: AtomicU64,
    /// Whether hyper has waited for a head before (the first is timed from accept).
    waited: AtomicBool,
}

impl HeadClock {
    const WAITING: u64 = u64::MAX;

    fn new() -> Self {
        Self {
            base: Instant::now(),
            began: AtomicU64::new(0),
            waited: AtomicBool::new(false),
        }
    }

    /// hyper starts waiting for a request head.
    fn wait_begins(&self) {
        if self.waited.swap(true, Ordering::Relaxed) {
            self.began.store(Self::WAITING, Ordering::Relaxed);
        }
    }

    /// Bytes were read: the first of a head starts its clock.
    fn bytes_read(&self) {
        if self.began.load(Ordering::Relaxed) == Self::WAITING {
            let at = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            let _ = self.began.compare_exchange(
                Self::WAITING,
                at,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn began(&self) -> Option<Instant> {
        match self.began.load(Ordering::Relaxed) {
            Self::WAITING => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }
}

/// hyper's timer for one connection. hyper (1.x, HTTP/1 server) uses its timer only
/// for the header-read timeout, asking for a sleep until "now + timeout" whenever
/// it starts waiting for a head; this one's sleep ends `timeout` after the head
/// began instead ([`HeadClock`]), and never while no byte of it has come.
struct HeadTimer {
    head: Arc<HeadClock>,
    timeout: Duration,
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    fn sleep_until(&self, _deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.head.wait_begins();
        Box::pin(HeadSleep {
            head: self.head.clone(),
            timeout: self.timeout,
            sleep: None,
        })
    }
}

/// Ends `timeout` after the head began; pending (without a timer) while it has not.
/// hyper polls it right after each read of the socket, so the first byte arms it.
struct HeadSleep {
    head: Arc<HeadClock>,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.sleep.is_none() {
            let Some(began) = this.head.began() else {
                return Poll::Pending;
            };
            this.sleep = Some(Box::pin(tokio::time::sleep_until(began + this.timeout)));
        }
        match &mut this.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl hyper::rt::Sleep for HeadSleep {}

/// A socket that fails with `TimedOut` once nothing has been read or written for
/// `idle` while hyper waits on it.
///
/// Progress only notes the time; the timer is moved when it fires and finds that
/// bytes moved since (to `last + idle`), so a busy connection touches the runtime's
/// timer wheel about once per `idle`, not on every read and write.
struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    /// Told of every read, for the header-read timeout.
    head: Arc<HeadClock>,
    /// When a byte last moved either way.
    last: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, idle: Duration, head: Arc<HeadClock>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            head,
            last: now,
            deadline: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    fn progressed(&mut self) {
        self.last = Instant::now();
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let due = self.last + self.idle;
            if due <= Instant::now() {
                return true;
            }
            // Bytes moved since the timer was set: wait for the rest of the period.
            self.deadline.as_mut().reset(due);
        }
        false
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle")
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                if buf.filled().len() > before {
                    this.head.bytes_read();
                }
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn start(timeouts: Timeouts) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        tokio::spawn(serve(listener, router, timeouts, std::future::pending()));
        addr
    }

    const SMALL: Timeouts = Timeouts {
        request: Duration::from_millis(400),
        header_read: Duration::from_millis(300),
        idle: Duration::from_millis(600),
        shutdown_grace: Duration::from_millis(500),
    };

    /// Reads until the server closes; the time that took.
    async fn closed_after(stream: &mut tokio::net::TcpStream) -> (Duration, String) {
        let started = Instant::now();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got));
        match read.await {
            Ok(_) => (
                started.elapsed(),
                String::from_utf8_lossy(&got).into_owned(),
            ),
            Err(_) => panic!("the connection was still open after 5 s"),
        }
    }

    /// Slowloris: half a header, then nothing — closed at the header-read timeout
    /// (the idle timeout is long here, so it is not what closes it).
    #[tokio::test]
    async fn half_a_header_is_closed_at_the_header_read_timeout() {
        let addr = start(Timeouts {
            idle: Duration::from_secs(30),
            ..SMALL
        })
        .await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let (took, _) = closed_after(&mut s).await;
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }

    /// A connection that never sends a byte, and a kept-alive one after its answer,
    /// are closed at the idle timeout (the header-read timeout is long here); a
    /// normal request is unaffected.
    #[tokio::test]
    async fn idle_connections_are_closed() {
        let addr = start(Timeouts {
            header_read: Duration::from_secs(30),
            ..SMALL
        })
        .await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (took, _) = closed_after(&mut silent).await;
        assert!(took < Duration::from_millis(1500), "{took:?}");

        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (took, answer) = closed_after(&mut kept).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }

    /// A connection in use outlives the idle timeout many times over, and closes
    /// one idle period (not less, not two) after its last byte.
    #[tokio::test]
    async fn a_busy_connection_is_kept_then_closed_one_idle_period_after_its_last_byte() {
        let addr = start(Timeouts {
            header_read: Duration::from_secs(30),
            ..SMALL
        })
        .await;
        let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        let mut last = started;
        while started.elapsed() < SMALL.idle * 3 {
            busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = busy.read(&mut buf).await.unwrap();
            last = Instant::now();
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200 OK"),
                "closed while in use"
            );
            tokio::time::sleep(SMALL.idle / 3).await;
        }
        let (_, rest) = closed_after(&mut busy).await;
        let took = last.elapsed();
        assert!(rest.is_empty(), "{rest}");
        assert!(
            took >= SMALL.idle - Duration::from_millis(50) && took < SMALL.idle * 2,
            "closed {took:?} after the last byte (idle {:?})",
            SMALL.idle
        );
    }

    /// Timeouts as their names say (header 1 s, idle 3 s): a kept-alive connection
    /// idle for 2 s still serves its next request (the wait between requests is not
    /// a header read), and closes one idle period after its last byte.
    #[tokio::test]
    async fn a_kept_alive_connection_waits_for_the_idle_timeout_not_the_header_read_one() {
        let timeouts = Timeouts {
            header_read: Duration::from_secs(1),
            idle: Duration::from_secs(3),
            ..SMALL
        };
        let addr = start(timeouts).await;
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1024];
        for _ in 0..2 {
            kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = kept.read(&mut buf).await.unwrap();
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200 OK"),
                "closed while idle"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let last = Instant::now() - Duration::from_secs(2);
        let (_, rest) = closed_after(&mut kept).await;
        let took = last.elapsed();
        assert!(rest.is_empty(), "{rest}");
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_millis(4500),
            "closed {took:?} after the last byte (idle 3 s)"
        );
    }

    /// A request head trickled a byte at a time is cut at the header-read timeout
    /// counted from its first byte — on a fresh connection and after a kept-alive
    /// wait alike.
    #[tokio::test]
    async fn a_trickled_head_is_cut_at_the_header_read_timeout_from_its_first_byte() {
        let timeouts = Timeouts {
            header_read: Duration::from_secs(1),
            idle: Duration::from_secs(3),
            ..SMALL
        };
        let addr = start(timeouts).await;
        for kept_alive in [false, true] {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            if kept_alive {
                write
                    .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 1024];
                let n = read.read(&mut buf).await.unwrap();
                assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let closed = tokio::spawn(async move {
                let mut rest = Vec::new();
                let _ = read.read_to_end(&mut rest).await;
                Instant::now()
            });
            let started = Instant::now();
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if closed.is_finished() || write.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let at = tokio::time::timeout(Duration::from_secs(5), closed)
                .await
                .expect("closed")
                .unwrap();
            let took = at - started;
            assert!(
                took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
                "kept alive: {kept_alive}; cut {took:?} after the head's first byte"
            );
        }
    }

    /// A handler slower than the request timeout is answered 503 at the timeout.
    #[tokio::test]
    async fn a_slow_request_gets_503_at_the_request_timeout() {
        let addr = start(SMALL).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (_, answer) = closed_after(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    /// An endless stream (the revocation stream) does not hold shutdown: past the
    /// grace period `serve` returns.
    #[tokio::test]
    async fn shutdown_ends_an_endless_stream_after_the_grace_period() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let endless = axum::routing::get(|| async {
            let ticks = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Ok::<_, std::convert::Infallible>("tick\n"), ()))
            });
            axum::body::Body::from_stream(ticks)
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Router::new().route("/stream", endless),
            Timeouts {
                request: Duration::from_secs(30),
                idle: Duration::from_secs(30),
                ..SMALL
            },
            async {
                let _ = stopped.await;
            },
        ));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 64];
        let n = s.read(&mut first).await.unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        let started = Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returned")
            .unwrap()
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
