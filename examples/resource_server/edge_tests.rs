//! The HTTP edge of both servers over raw sockets (issue 19): request bodies are
//! bounded whether their length is declared or not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::tests::world;

/// What an endless body costs the client before the server stops it: the most the
/// test writes (far past the 64 KiB limit and any socket buffers), and the longest
/// it waits.
const WRITE_BOUND: usize = 32 * 1024 * 1024;
const TIME_BOUND: Duration = Duration::from_secs(15);

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// The status code in the first line of an HTTP/1.1 answer, if any.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    line.split(' ').nth(1)?.parse().ok()
}

/// Reads an answer's head (up to the blank line, or what came before the close).
async fn read_head(mut read: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    return got;
                }
            }
        }
    }
}

/// POSTs a chunked body that never ends, reading the answer meanwhile. Returns the
/// answer's head (empty when the server closed without one) and the bytes written
/// before the server answered or closed; panics when neither happened within
/// [`WRITE_BOUND`] bytes and [`TIME_BOUND`].
pub(crate) async fn endless_chunked(addr: SocketAddr, path: &str) -> (Vec<u8>, usize) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let answer = tokio::spawn(read_head(read));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let chunk = [b"1000\r\n".as_slice(), &[b'a'; 0x1000], b"\r\n"].concat();
    let started = Instant::now();
    let mut written = 0;
    while !answer.is_finished() && written < WRITE_BOUND && started.elapsed() < TIME_BOUND {
        match tokio::time::timeout(Duration::from_secs(1), write.write_all(&chunk)).await {
            Ok(Ok(())) => written += 0x1000,
            // The server stopped reading (its buffers are full) or closed.
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let head = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "POST {path}: no answer and no close after {written} bytes in {:?}",
                started.elapsed()
            )
        })
        .unwrap();
    (head, written)
}

/// POSTs a head declaring a body of `length` bytes, and sends none of it.
pub(crate) async fn declared(addr: SocketAddr, path: &str, length: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
        .await
        .unwrap_or_else(|_| panic!("POST {path} declaring {length} bytes: no answer in 5 s"))
}

/// Every body is bounded on both servers: a declared length over 64 KiB gets 413
/// at once (RFC 6749's JSON on `/o/…`), and an endless chunked body gets 413 (or
/// the connection closed) after little more than the limit — the console's logout
/// form included, which read its body with no limit before.
#[tokio::test]
async fn bodies_are_bounded_declared_or_chunked() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    let rs = addr_of(&w.rs.url);
    let auth = addr_of(&w.auth.url());
    let targets = [
        (rs, "/admin/logout/"),
        (rs, "/users/token/"),
        (auth, "/o/token/"),
        (auth, "/accounts/login/"),
        (auth, "/accounts/logout/"),
        (auth, "/o/authorized_tokens/revoke/"),
        (auth, "/admin/tokens/revoke/"),
    ];
    for (addr, path) in targets {
        let head = declared(addr, path, 10 * 1024 * 1024).await;
        assert_eq!(
            status_of(&head),
            Some(413),
            "{path}: {}",
            String::from_utf8_lossy(&head)
        );
        let started = Instant::now();
        let (head, written) = endless_chunked(addr, path).await;
        println!(
            "{path}: endless chunked body stopped after {} KiB written, {:?}: {:?}",
            written / 1024,
            started.elapsed(),
            String::from_utf8_lossy(&head).lines().next()
        );
        assert!(
            head.is_empty() || status_of(&head) == Some(413),
            "{path}: {}",
            String::from_utf8_lossy(&head)
        );
    }
    // The token endpoint's refusal is an OAuth error.
    let r = w
        .http
        .post(format!("{}/o/token/", w.auth.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
}

/// The `method` label of `http_requests_total` takes the standard methods and
/// `other`: 1,000 invented methods make no new series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_make_no_new_metric_series() {
    use crate::process::{Example, Process, client, free_port};
    let dir = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let auth = Process::start(
        Example::AuthServer,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("as.db").display()),
            ),
            ("SCRYPT_LOG_N", "10".into()),
            ("SCRYPT_P", "1".into()),
            ("METRICS_ADDR", metrics.clone()),
        ],
        &dir.path().join("as.log"),
    )
    .await;
    let http = client();
    for i in 0..1000 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        http.request(method, format!("{}/healthz", auth.url()))
            .send()
            .await
            .unwrap();
    }
    http.get(format!("{}/healthz", auth.url()))
        .send()
        .await
        .unwrap();
    let page = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let methods: std::collections::BTreeSet<&str> = page
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    println!("distinct method labels after 1,000 invented methods: {methods:?}");
    assert!(
        methods.contains("other") && methods.contains("GET"),
        "{page}"
    );
    assert!(methods.len() <= 10, "{} method labels", methods.len());
}
