//! Connections cannot be exhausted (issue "Security and abuse", item 2): connections over the
//! per-address cap are closed at once, idle or half-sent ones after the header timeout, and the
//! server keeps answering others meanwhile. Raw TCP on loopback; the flood comes from
//! 127.0.0.2, the honest client from 127.0.0.1.
mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.limits.max_connections_per_ip = 50;
        c.limits.http_header_timeout_seconds = HEADER_TIMEOUT.as_secs() as u16;
    })
    .await
}

async fn connect_from(source: &str, base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.expect("TCP connects (the kernel accepts before the server does)")
}

/// Whether the server closed `stream` within `within` (read gives EOF or an error).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a response: keep reading until it closes
        }
    }
}

async fn health_answers(s: &TestServer) -> bool {
    let req = s.http.get(format!("{}/health", s.base)).timeout(Duration::from_secs(2)).send();
    matches!(req.await, Ok(r) if r.status() == 200)
}

/// Before: 1,100 idle connections held descriptors forever and `/health` timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_is_capped_and_timed_out() {
    let s = server().await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(connect_from("127.0.0.2", &s.base).await);
    }
    assert!(health_answers(&s).await, "/health answers during the flood");
    // Everything over the 50 allowed from that address is closed at once.
    let mut closed_now = 0;
    for stream in flood.iter_mut().skip(50) {
        closed_now += usize::from(closed_within(stream, Duration::from_millis(300)).await);
    }
    assert!(closed_now >= 240, "{closed_now} of 250 connections over the cap were closed at once");
    // The 50 admitted idle ones are closed after the header timeout.
    let started = Instant::now();
    let mut closed_later = 0;
    for stream in flood.iter_mut().take(50) {
        closed_later += usize::from(closed_within(stream, HEADER_TIMEOUT * 2).await);
    }
    assert_eq!(closed_later, 50, "idle connections are closed (after {:?})", started.elapsed());
    // Their places are free again.
    let mut again = connect_from("127.0.0.2", &s.base).await;
    again.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut head = [0u8; 12];
    again.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

/// A head sent one byte at a time never completes: the connection is closed at the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let s = server().await;
    let mut slow = connect_from("127.0.0.2", &s.base).await;
    let started = Instant::now();
    let text = b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = false;
    for byte in text {
        if slow.write_all(&[*byte]).await.is_err() || closed_within(&mut slow, Duration::from_millis(250)).await {
            cut = true;
            break;
        }
    }
    let after = started.elapsed();
    assert!(cut, "a head trickling for {after:?} was not cut off");
    assert!(after < HEADER_TIMEOUT + Duration::from_secs(2), "cut after {after:?}");
}

/// After a response, a keep-alive connection left idle is closed at the timeout too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_is_closed() {
    let s = server().await;
    let mut c = connect_from("127.0.0.1", &s.base).await;
    c.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(closed_within(&mut c, HEADER_TIMEOUT * 2).await, "an idle keep-alive connection is closed");
}
