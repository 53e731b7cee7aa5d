//! Hostile clients: huge bodies, slow bodies, idle connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};

async fn spawn_with(configure: impl FnOnce(&mut gitops_status::config::Settings)) -> TestApp {
    spawn_app_with(tempfile::tempdir().unwrap(), configure).await
}

/// Reads what the server sends until it closes the connection or `limit` passes.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&data).contains("\r\n\r\n") && data.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

fn post_head(address: SocketAddr, content_length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /status/pipeline HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let app = spawn_with(|_| {}).await;
    let address = app.address;

    // Announce 64 MiB, send 16 bytes, and wait for the answer.
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = post_head(address, 64 * 1024 * 1024);
        stream.write_all(b"{\"server_group\":").unwrap();
        read_until_closed(&mut stream, Duration::from_secs(30))
    })
    .await
    .unwrap();

    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""success":false"#), "{answer}");
    assert_eq!(app.db().scalar("SELECT count(*) FROM reports").await, 0);
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408_and_holds_up_nobody() {
    let app = spawn_with(|s| s.request_timeout = Duration::from_secs(2)).await;
    let address = app.address;
    let (started, ready) = std::sync::mpsc::channel();

    // A byte every 200 ms of a 1000-byte body: it would need over three minutes.
    let slow = tokio::task::spawn_blocking(move || {
        let mut stream = post_head(address, 1000);
        started.send(()).unwrap();
        for _ in 0..50 {
            if stream.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            stream.set_nonblocking(true).unwrap();
            let mut peek = [0u8; 1];
            let closed = stream.peek(&mut peek).is_ok();
            stream.set_nonblocking(false).unwrap();
            if closed {
                break;
            }
        }
        read_until_closed(&mut stream, Duration::from_secs(30))
    });
    ready.recv().unwrap();

    // Meanwhile others are served.
    for i in 0..20 {
        let body = json!({"server_group": "g", "host": format!("h{i}"), "status": "synced"});
        assert_eq!(app.pipeline(body).await.status(), 201);
    }

    let answer = slow.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 2 s"), "{answer}");
    assert_eq!(app.db().scalar("SELECT count(*) FROM reports").await, 20);
}

#[tokio::test]
async fn idle_connections_are_closed_and_do_not_exhaust_the_server() {
    // 2 workers × 20 connections, and 300 clients that connect and say nothing.
    let app = spawn_with(|s| {
        s.max_connections = 20;
        s.request_timeout = Duration::from_secs(1);
    })
    .await;
    let address = app.address;
    let idle: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..300)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect()
    })
    .await
    .unwrap();

    // The server still answers, once it has shed idle connections.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    for i in 0..5 {
        let body = json!({"server_group": "g", "host": format!("h{i}"), "status": "synced"});
        let response = client
            .post(app.url("/status/pipeline"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    // Accepted idle connections were closed by the server (a read ends instead of hanging).
    let closed = tokio::task::spawn_blocking(move || {
        idle.into_iter()
            .take(20)
            .map(|mut stream| {
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let mut buf = [0u8; 512];
                stream.read(&mut buf).is_ok()
            })
            .filter(|closed| *closed)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 20);
}
