use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::http_client::read_body;
use crate::http_client::testing::read_head;

/// How a [`KeepAliveServer`] ends each exchange.
#[derive(Clone, Copy)]
enum After {
    /// Keeps the connection for the next request (HTTP/1.1's default).
    KeepAlive,
    /// Closes the connection after one answer without saying so (an idle timeout, a restart).
    SilentClose,
    /// Answers, then closes the connection a little later, once the client has put it back in
    /// its pool (an upstream's idle timeout, or the upstream killed).
    CloseWhileIdle,
    /// Answers `202 Accepted` without a body (a notification's answer) and keeps the connection.
    Accepted,
    /// Answers with a chunked body that never ends.
    EndlessBody,
}

/// A loopback HTTP/1.1 server that counts connections and records request heads.
struct KeepAliveServer {
    url: String,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAliveServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeepAliveServer {
    async fn start(after: After, delay: Duration) -> KeepAliveServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp?x=1", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (a, h) = (accepted.clone(), heads.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((sock, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve(sock, after, delay, h.clone()));
            }
        });
        KeepAliveServer {
            url,
            accepted,
            heads,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(mut sock: TcpStream, after: After, delay: Duration, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_head(&mut sock, &mut buf).await else {
            return;
        };
        // The tests send bodiless GETs.
        heads
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&buf[..end]).into_owned());
        buf.drain(..end);
        tokio::time::sleep(delay).await;
        let answer: &[u8] = match after {
            After::EndlessBody => {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
            }
            After::Accepted => b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        };
        if sock.write_all(answer).await.is_err() {
            return;
        }
        match after {
            After::KeepAlive | After::Accepted => {}
            After::SilentClose => return,
            After::CloseWhileIdle => {
                tokio::time::sleep(Duration::from_millis(30)).await;
                return;
            }
            After::EndlessBody => {
                std::future::pending::<()>().await;
            }
        }
    }
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

async fn call(pool: &PlainPool, url: &str) -> Bytes {
    let resp = pool.send(get(url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    read_body(resp.into_body(), 1024).await.unwrap()
}

#[tokio::test]
async fn sequential_requests_share_one_connection_in_origin_form() {
    let server = KeepAliveServer::start(After::KeepAlive, Duration::ZERO).await;
    let pool = PlainPool::default();
    for _ in 0..20 {
        assert_eq!(&call(&pool, &server.url).await[..], b"ok");
    }
    assert_eq!(server.accepted(), 1, "one kept-alive connection");
    let heads = server.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 20);
    let authority = server
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    for head in &heads {
        assert!(head.starts_with("GET /mcp?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: {authority}\r\n")),
            "{head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_open_connections_that_later_ones_reuse() {
    let server = KeepAliveServer::start(After::KeepAlive, Duration::from_millis(50)).await;
    let pool = Arc::new(PlainPool::default());
    let round = || {
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (pool, url) = (pool.clone(), server.url.clone());
                tokio::spawn(async move { call(&pool, &url).await })
            })
            .collect();
        async move {
            for c in calls {
                assert_eq!(&c.await.unwrap()[..], b"ok");
            }
        }
    };
    round().await;
    let opened = server.accepted();
    // The server holds each answer 50 ms, so the calls overlapped: one connection each.
    assert!(
        (2..=8).contains(&opened),
        "{opened} connections for 8 overlapping calls"
    );
    // Each connection is marked ready by its own task once its body has been read.
    tokio::time::sleep(Duration::from_millis(20)).await;
    round().await;
    assert_eq!(
        server.accepted(),
        opened,
        "the second round reused the first's connections"
    );
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    let server = KeepAliveServer::start(After::SilentClose, Duration::ZERO).await;
    let pool = PlainPool::default();
    for _ in 0..5 {
        assert_eq!(&call(&pool, &server.url).await[..], b"ok");
        // Idle long enough for the close to reach the connection's task.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.accepted(), 5);
    assert!(
        lock(&pool.conns).values().all(|l| l.len() <= 1),
        "closed ones are dropped"
    );
}

#[tokio::test]
async fn a_pooled_connection_closed_while_idle_is_never_used_and_never_hangs_a_call() {
    let server = KeepAliveServer::start(After::CloseWhileIdle, Duration::ZERO).await;
    let pool = PlainPool::default();
    for _ in 0..5 {
        let answered = tokio::time::timeout(Duration::from_secs(5), call(&pool, &server.url))
            .await
            .expect("a call on a pool whose connection was closed while idle must not hang");
        assert_eq!(&answered[..], b"ok");
        // The server closes the connection while it sits in the pool.
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert_eq!(server.accepted(), 5);
}

#[tokio::test]
async fn an_empty_answer_dropped_unread_keeps_its_connection() {
    let server = KeepAliveServer::start(After::Accepted, Duration::ZERO).await;
    let pool = PlainPool::default();
    for _ in 0..10 {
        let resp = pool.send(get(&server.url)).await.unwrap();
        assert_eq!(resp.status(), 202);
        // A notification's `202` is never read.
        drop(resp);
        // Its connection's task marks it ready again.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.accepted(), 1, "one connection for ten notifications");
}

#[tokio::test]
async fn a_body_dropped_unread_does_not_hand_out_its_connection() {
    let server = KeepAliveServer::start(After::EndlessBody, Duration::ZERO).await;
    let pool = PlainPool::default();
    let first = pool.send(get(&server.url)).await.unwrap();
    // While the first body streams, its connection is busy: a second call opens another.
    let second = pool.send(get(&server.url)).await.unwrap();
    assert_eq!(server.accepted(), 2);
    drop(first);
    drop(second);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _third = pool.send(get(&server.url)).await.unwrap();
    assert_eq!(
        server.accepted(),
        3,
        "a cut body's connection is never reused"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_an_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mcp?key=secret");
    let err = PlainPool::default()
        .send(get(&url))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/mcp")),
        "{err}"
    );
    assert!(err.contains("connect"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn an_ipv6_literal_host_is_reached() {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        eprintln!("skipping: no IPv6 loopback here");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h = heads.clone();
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        serve(sock, After::KeepAlive, Duration::ZERO, h).await;
    });
    let url = format!("http://[::1]:{port}/");
    assert_eq!(&call(&PlainPool::default(), &url).await[..], b"ok");
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.contains(&format!("host: [::1]:{port}\r\n")), "{head}");
    server.abort();
}
