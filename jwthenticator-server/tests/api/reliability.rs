//! Shutting down without dropping a request, and answers a client can read even when it is
//! still sending: on a real socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Backend, Served};

/// One request on a new connection; the answer's head and body as text.
async fn exchange(address: SocketAddr, request: &[u8]) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// One GET on a kept-alive connection; its status and whether the server closes after it.
async fn get_kept_alive(address: SocketAddr, path: &str) -> (u16, bool) {
    let answer = exchange(address, &get(path)).await;
    // Without `Connection: close` from the server the connection stays open and the read
    // times out.
    match answer {
        Ok(answer) => (
            status_of(&answer),
            answer.to_ascii_lowercase().contains("connection: close"),
        ),
        Err(err) => panic!("{path}: {err}"),
    }
}

async fn readiness_turns_503_at_shutdown_while_the_listener_serves_the_drain_delay(
    backend: Backend,
) {
    let mut served = Served::start(backend, &["--drain-delay", "2"]).await;
    let address = served.address;
    let ready = exchange(
        address,
        b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("ready");
    assert_eq!(status_of(&ready), 200, "{ready}");

    served.stop();
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, closes) = get_kept_alive(address, "/health/ready").await;
    assert_eq!(status, 503, "readiness fails at once");
    assert!(closes, "and the connection closes after the answer");
    let mut served_while_draining = 0;
    while stopped.elapsed() < Duration::from_millis(1_700) {
        let (status, closes) = get_kept_alive(address, "/health").await;
        assert_eq!(
            status, 200,
            "new connections are served during the drain delay"
        );
        assert!(closes, "every answer while draining closes its connection");
        served_while_draining += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served_while_draining >= 10, "{served_while_draining}");

    let mut refused = None;
    while stopped.elapsed() < Duration::from_secs(5) {
        if tokio::net::TcpStream::connect(address).await.is_err() {
            refused = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("the listener closes after the drain delay");
    assert!(
        refused >= Duration::from_secs(2),
        "not before the drain delay: {refused:?}"
    );
}

async fn a_request_in_flight_at_the_end_of_the_drain_is_answered(backend: Backend) {
    let mut served = Served::start(backend, &["--drain-delay", "1"]).await;
    let address = served.address;
    // A body that arrives slowly: the request is in flight when the listener stops accepting.
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let body = br#"{"jwt": "not-a-token"}"#;
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body[..5]).await.expect("part");
    served.stop();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "no longer accepting"
    );
    stream.write_all(&body[5..]).await.expect("rest");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 401, "{answer}");
}

/// The issue's case: a 2 MiB JSON body to `/validate`, written at a network's pace (64 KiB at a
/// time) before the answer is read, as `requests` and `http.client` do. The server answers 413
/// on the `Content-Length` at once; closing with the rest of the body unread would reset the
/// connection, and the client would get EPIPE or ECONNRESET instead of its answer.
async fn oversize_bodies_get_their_413(backend: Backend) {
    let served = Served::start(backend, &[]).await;
    let body = format!(r#"{{"jwt": "{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let send = || async {
        let mut stream = tokio::net::TcpStream::connect(served.address).await?;
        stream.write_all(head.as_bytes()).await?;
        for chunk in body.as_bytes().chunks(64 * 1024) {
            stream.write_all(chunk).await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
        std::io::Result::Ok(status_of(&String::from_utf8_lossy(&answer)).to_string())
    };
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(send().await.unwrap_or_else(|err| err.to_string()));
    }
    assert!(
        statuses.iter().all(|status| status == "413"),
        "20 × 413: {statuses:?}"
    );
}

on_both_backends!(
    readiness_turns_503_at_shutdown_while_the_listener_serves_the_drain_delay,
    a_request_in_flight_at_the_end_of_the_drain_is_answered,
);

mod oversize_bodies_get_their_413 {
    #[tokio::test]
    async fn sqlite() {
        super::oversize_bodies_get_their_413(crate::support::Backend::Sqlite).await;
    }
}
