//! How the sender classifies what goes wrong, against loopback listeners of the test's own.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::retry::{Verdict, classify};

fn sender() -> Sender {
    Sender::new(
        Guard::new(true, vec![]),
        Duration::from_millis(1000),
        Duration::from_millis(3000),
        64 * 1024,
    )
    .expect("client builds")
}

fn get(url: &str) -> Request {
    Request {
        method: Method::GET,
        url: url.to_owned(),
        body: None,
        idempotency_key: "key-1".into(),
        follow_redirects: true,
        headers: vec![],
        timeout: None,
    }
}

/// A listener on loopback that answers every connection with `answer` (after reading what
/// the client sends first) and closes; returns its address.
async fn answering(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(answer).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

fn code_of(response: &Response) -> (ErrorCode, &str) {
    let (code, text) = response.error.as_ref().expect("an error");
    (*code, text.as_str())
}

/// Each cause of a chain is printed once: no `: `-separated part of the text repeats.
fn each_cause_once(text: &str) {
    let parts: Vec<&str> = text.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "`{part}` printed twice in: {text}"
        );
    }
}

#[tokio::test]
async fn a_header_no_request_can_carry_is_a_render_error_not_retried() {
    // Regression: a CR/LF in the idempotency key (from `event_id`) was recorded `connect` and
    // retried for two days.
    let addr = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
    let mut req = get(&format!("http://{addr}/p"));
    req.idempotency_key = "e-1\r\nX-Injected: 1:7".into();
    let out = sender().send(&req).await;
    let (code, text) = code_of(&out);
    assert_eq!(code, ErrorCode::Render, "{text}");
    assert_eq!(out.http_code, None);
    assert_eq!(classify(out.http_code, Some(code)), Verdict::Fail);
    assert!(!text.contains("X-Injected"), "the value is not echoed: {text}");
}

#[tokio::test]
async fn a_url_no_request_can_be_built_for_is_a_render_error() {
    // Regression: `http://{` parses as a URL, but no HTTP request can be made of it.
    for url in ["http://{/p", "http://a{b/", "not a url"] {
        let out = sender().send(&get(url)).await;
        let (code, text) = code_of(&out);
        assert_eq!(code, ErrorCode::Render, "{url}: {text}");
        assert_eq!(classify(out.http_code, Some(code)), Verdict::Fail, "{url}");
    }
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_not_followed_and_not_retried() {
    // Regression: a redirect to `file:` or `gopher:` was recorded `connect` and retried.
    let file =
        answering(b"HTTP/1.1 302 Found\r\nlocation: file:///etc/passwd\r\ncontent-length: 0\r\n\r\n").await;
    let gopher = answering(
        b"HTTP/1.1 301 Moved\r\nlocation: gopher://127.0.0.1:70/1?token=S3CRET\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    for (addr, status) in [(file, 302), (gopher, 301)] {
        let out = sender().send(&get(&format!("http://{addr}/p"))).await;
        let (code, text) = code_of(&out);
        assert_eq!(code, ErrorCode::Redirects, "{text}");
        assert_eq!(out.http_code, Some(status));
        assert_eq!(classify(out.http_code, Some(code)), Verdict::Fail);
        assert!(text.contains("http"), "says what is followed: {text}");
        assert!(!text.contains("S3CRET") && !text.contains("passwd"), "{text}");
    }
}

/// A listener that records each request's head and answers `/start` with a redirect to
/// `location` (given the listener's own address), anything else with 200.
async fn recording(
    location: impl Fn(SocketAddr) -> String + Send + 'static,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (log, target) = (Arc::clone(&seen), location(addr));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (log, target) = (Arc::clone(&log), target.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let answer = if head.starts_with("get /start ") {
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                };
                log.lock().expect("lock").push(head);
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_urls_own_headers_do_not_follow_a_redirect_to_another_origin() {
    // Regression (review): every hop carried the URL's headers, so one redirect from the
    // partner (or a hijacked path) collected its token.
    let (elsewhere, elsewhere_seen) = recording(|_| String::new()).await;
    let (start, start_seen) = recording(move |_| format!("http://{elsewhere}/landed")).await;
    let (same, same_seen) = recording(|own| format!("http://{own}/landed")).await;
    for (addr, seen_after) in [(start, &elsewhere_seen), (same, &same_seen)] {
        let mut req = get(&format!("http://{addr}/start"));
        req.headers = vec![("Authorization".into(), "Bearer T0KEN".into())];
        let out = sender().send(&req).await;
        assert_eq!(out.http_code, Some(200), "{:?}", out.error);
        let landed = seen_after
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default();
        assert!(landed.starts_with("get /landed "), "{landed}");
        let kept = landed.contains("bearer t0ken");
        assert_eq!(
            kept,
            addr == same,
            "headers kept only on the same origin: {landed}"
        );
    }
    let first = start_seen.lock().expect("lock")[0].clone();
    assert!(
        first.contains("bearer t0ken"),
        "the URL's own origin gets them: {first}"
    );
}

#[tokio::test]
async fn tls_errors_are_told_by_their_type() {
    // An https URL to a port that speaks plain HTTP: rustls refuses the answer. Its message
    // ("received corrupt message of type InvalidContentType") names no TLS word.
    let plain =
        answering(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
    let out = sender().send(&get(&format!("https://{plain}/p"))).await;
    let (code, text) = code_of(&out);
    assert_eq!(code, ErrorCode::Tls, "{text}");
    assert_eq!(classify(out.http_code, Some(code)), Verdict::Retry);
    each_cause_once(text);
}

#[tokio::test]
async fn a_tls_handshake_cut_short_is_connect_and_retried() {
    // The listener closes right after the TCP accept: no TLS error type is in the chain (only
    // an EOF), so it counts as a broken connection; both codes are retried.
    let closes = answering(b"").await;
    let out = sender().send(&get(&format!("https://{closes}/p"))).await;
    let (code, text) = code_of(&out);
    assert_eq!(code, ErrorCode::Connect, "{text}");
    assert_eq!(classify(out.http_code, Some(code)), Verdict::Retry);
    each_cause_once(text);
}

#[tokio::test]
async fn a_refused_connection_is_connect_and_a_missing_name_is_dns_each_cause_once() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let out = sender().send(&get(&format!("http://{addr}/p"))).await;
    let (code, text) = code_of(&out);
    assert_eq!(code, ErrorCode::Connect, "{text}");
    each_cause_once(text);

    let out = sender().send(&get("http://no-such-host.invalid/p")).await;
    let (code, text) = code_of(&out);
    assert_eq!(code, ErrorCode::Dns, "{text}");
    assert!(text.contains("no-such-host.invalid"), "{text}");
    each_cause_once(text);
}

#[test]
fn excerpt_keeps_the_first_kib_and_no_nul() {
    assert_eq!(excerpt(b""), None);
    assert_eq!(excerpt(b"ok\0"), Some("ok\u{FFFD}".into()));
    let long = "é".repeat(1000);
    let got = excerpt(long.as_bytes()).expect("some");
    assert_eq!(
        got,
        "é".repeat(EXCERPT_BYTES / 2),
        "the first KiB, cut at a whole character"
    );
    let odd = format!("a{long}");
    let got = excerpt(odd.as_bytes()).expect("some");
    assert_eq!(
        got,
        format!("a{}", "é".repeat(EXCERPT_BYTES / 2 - 1)),
        "a split é is left out"
    );
}

#[test]
fn a_request_debugs_without_header_values_or_url_secrets() {
    let mut req = get("http://h.test/p?token=s3cr3t");
    req.headers = vec![("Authorization".into(), "Bearer s3cr3t".into())];
    let shown = format!("{req:?}");
    assert!(
        shown.contains("Authorization") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}
