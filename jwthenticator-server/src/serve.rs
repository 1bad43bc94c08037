//! Serving connections: the limits every connection is held to (header, keep-alive and request
//! deadlines, a connection cap) and the graceful shutdown. Slow or idle clients cannot hold
//! connections, memory or file descriptors for longer than these deadlines.
//!
//! Shutdown drains in three steps, so that no balancer sends a request to a closed listener:
//! at the signal `/health/ready` answers 503 and every HTTP/1 answer says `Connection: close`
//! while the listener keeps accepting and serving for `DRAIN_DELAY` (balancers that route by
//! readiness, or remove the endpoint as Kubernetes does, stop sending meanwhile); then it stops
//! accepting; then the requests in flight finish, for at most `SHUTDOWN_TIMEOUT`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ConnectionConfig;

/// Whether the listener that accepted a request is draining (shutting down, still serving);
/// every request carries it as an extension.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draining(Arc<AtomicBool>);

impl Draining {
    fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Whether `req` came in on a listener that is shutting down: readiness answers 503 then.
pub(crate) fn draining(req: &poem::Request) -> bool {
    req.extensions()
        .get::<Draining>()
        .is_some_and(Draining::is_draining)
}

fn timed_out(limit: Duration) -> poem::Response {
    crate::error::json_response(
        StatusCode::REQUEST_TIMEOUT,
        jwthenticator_core::ErrorResponse::new(
            "request_timeout",
            format!(
                "the request was not received and answered within {} s",
                limit.as_secs()
            ),
        ),
    )
}

/// Serves `endpoint` on `listener` until `shutdown` completes and `DRAIN_DELAY` more (draining:
/// readiness 503, connections closed after their answer), then stops accepting and lets
/// in-flight requests finish for at most `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    endpoint: BoxEndpoint<'static>,
    limits: &ConnectionConfig,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let endpoint = Arc::new(endpoint);
    let request_timeout = Duration::from_secs(limits.request_timeout.max(1));
    let keep_alive = Duration::from_secs(limits.keep_alive_timeout.max(1));
    let header_timeout = Duration::from_secs(limits.header_read_timeout.max(1));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timeout also closes idle keep-alive connections; `Activity` keeps the
    // two deadlines apart.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(keep_alive)
        .keep_alive_timeout(Duration::from_secs(20));
    let max_connections =
        u32::try_from(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let connections = Arc::new(Semaphore::new(max_connections as usize));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let draining = Draining::default();
    let drain_delay = Duration::from_secs(limits.drain_delay);
    let shutdown = {
        let draining = draining.clone();
        async move {
            shutdown.await;
            draining.start();
            tracing::info!(
                drain_delay = drain_delay.as_secs(),
                %local,
                "draining: /health/ready answers 503; still serving until the delay ends"
            );
            tokio::time::sleep(drain_delay).await;
        }
    };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, say: wait a moment instead of spinning.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            epoch: tokio::time::Instant::now(),
            last_active: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            answering: AtomicU32::new(0),
        });
        let endpoint = endpoint.clone();
        let answering = activity.clone();
        let draining = draining.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let endpoint = endpoint.clone();
            let activity = answering.clone();
            let draining = draining.clone();
            activity.request_started();
            async move {
                let response = answer(&endpoint, req, local, peer, request_timeout, draining).await;
                activity.request_answered();
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let io = Watched {
            inner: stream,
            activity: activity.clone(),
            linger: None,
        };
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let shutting_down = tokio::select! {
                _ = connection.as_mut() => false,
                // No request is being answered: close at once (a graceful close would wait
                // for the head that a slow client is still sending).
                () = activity.expired(header_timeout, keep_alive) => false,
                _ = stopped.wait_for(|stop| *stop) => true,
            };
            if shutting_down {
                // Answer what is in flight, then close.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(%local, "stopped accepting; finishing the requests in flight");
    let _ = stop.send(true);
    // Every connection holds a permit until it is closed.
    if tokio::time::timeout(drain, connections.acquire_many(max_connections))
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still in flight after the drain timeout were cut");
    }
    Ok(())
}

async fn answer(
    endpoint: &BoxEndpoint<'static>,
    req: hyper::Request<Incoming>,
    local: SocketAddr,
    peer: SocketAddr,
    limit: Duration,
    draining: Draining,
) -> hyper::Response<http_body_util::combinators::BoxBody<Bytes, std::io::Error>> {
    let http1 = req.version() < poem::http::Version::HTTP_2;
    let mut req = poem::Request::from((
        req,
        LocalAddr(Addr::SocketAddr(local)),
        RemoteAddr(Addr::SocketAddr(peer)),
        poem::http::uri::Scheme::HTTP,
    ));
    req.extensions_mut().insert(draining.clone());
    let answer = crate::store::deadline::request(endpoint.get_response(req));
    let mut response = match tokio::time::timeout(limit, answer).await {
        Ok(response) => response,
        Err(_) => timed_out(limit),
    };
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response
            .headers()
            .contains_key(poem::http::header::RETRY_AFTER)
    {
        // The database or the signing key is unavailable, or the server is draining: a
        // moment later this or another replica will answer.
        response.headers_mut().insert(
            poem::http::header::RETRY_AFTER,
            poem::http::HeaderValue::from_static("1"),
        );
    }
    if http1 && draining.is_draining() {
        // No idle keep-alive connection is left for a client to reuse when the listener
        // stops accepting: each one closes after its answer, and the next request connects
        // anew (to another replica once the balancer has noticed).
        response.headers_mut().insert(
            poem::http::header::CONNECTION,
            poem::http::HeaderValue::from_static("close"),
        );
    }
    response.into()
}

/// What a connection's timer needs to know, shared with its socket and its requests.
#[derive(Debug)]
struct Activity {
    epoch: tokio::time::Instant,
    /// Milliseconds since `epoch` when a byte last moved.
    last_active: AtomicU64,
    /// When the first byte of a request head arrived ([`NONE`]: no head is being read).
    head_started: AtomicU64,
    /// Requests being answered.
    answering: AtomicU32,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, millis: u64) -> tokio::time::Instant {
        self.epoch + Duration::from_millis(millis)
    }

    fn read(&self) {
        let now = self.now();
        self.last_active.store(now, Ordering::Relaxed);
        if self.answering.load(Ordering::Acquire) == 0 {
            // Only the first byte of a head starts its deadline.
            let _ =
                self.head_started
                    .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_active.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.answering.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
    }

    fn request_answered(&self) {
        self.answering.fetch_sub(1, Ordering::AcqRel);
        self.wrote();
    }

    /// Completes when the connection should close: a head not complete within
    /// `header_timeout` of its first byte, or no request and no byte for `keep_alive`.
    async fn expired(&self, header_timeout: Duration, keep_alive: Duration) {
        loop {
            let deadline = if self.answering.load(Ordering::Acquire) > 0 {
                // A request is being answered: its own deadline (REQUEST_TIMEOUT) applies.
                tokio::time::Instant::now() + keep_alive
            } else {
                match self.head_started.load(Ordering::Acquire) {
                    NONE => self.at(self.last_active.load(Ordering::Relaxed)) + keep_alive,
                    started => self.at(started) + header_timeout,
                }
            };
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + header_timeout))
                .await;
        }
    }
}

/// Most bytes read and discarded while closing a connection (see [`Watched::poll_shutdown`]).
const LINGER_BYTES: usize = 8 * 1024 * 1024;
/// Longest time spent reading them.
const LINGER_TIME: Duration = Duration::from_secs(5);

pin_project_lite::pin_project! {
    /// A connection's socket that reports the bytes that move to its [`Activity`], and closes
    /// it lingering.
    struct Watched {
        #[pin]
        inner: tokio::net::TcpStream,
        activity: Arc<Activity>,
        linger: Option<Linger>,
    }
}

/// What is left of a lingering close: its deadline and the bytes it may still discard.
struct Linger {
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    left: usize,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        this.activity.wrote();
        this.inner.poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    /// Sends FIN, then reads and discards what the client still sends until it closes too, for
    /// at most [`LINGER_BYTES`] and [`LINGER_TIME`]. A socket closed with unread data in its
    /// receive buffer sends RST, and a client still sending a body that was answered without
    /// being read (a 413 on its `Content-Length`) would lose the answer to that reset.
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let mut this = self.project();
        if this.linger.is_none() {
            std::task::ready!(this.inner.as_mut().poll_shutdown(cx))?;
            *this.linger = Some(Linger {
                deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                left: LINGER_BYTES,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if linger.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match tokio::io::AsyncRead::poll_read(this.inner.as_mut(), cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    linger.left = linger.left.saturating_sub(buf.filled().len());
                    if linger.left == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        this.activity.wrote();
        this.inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
