//! A raw TCP HTTP/1.1 server for what the scripted receiver cannot do: answer with a redirect
//! to an address of the test's choosing, drip a body one byte at a time, or stream a body that
//! never ends. It also listens on any loopback address (127.0.0.2, …), not only 127.0.0.1.
//!
//! Each connection serves one request and then closes (`connection: close`); the plan decides
//! per connection (numbered from 0) how to answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::eventually;

/// How one connection is answered.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A whole response: status, extra header lines (`name: value`), body; then close.
    Full {
        status: u16,
        headers: Vec<String>,
        body: Vec<u8>,
    },
    /// `200` with a large `content-length`, then one byte every `every`, until the client
    /// hangs up.
    Drip { every: Duration },
    /// `200`, chunked, with `pattern` repeated as fast as the client reads, forever.
    Endless { pattern: Vec<u8> },
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::Full {
            status: 200,
            headers: vec![],
            body: b"ok".to_vec(),
        }
    }

    pub fn redirect(status: u16, location: &str) -> Answer {
        Answer::Full {
            status,
            headers: vec![format!("location: {location}")],
            body: Vec::new(),
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct RawReq {
    /// The connection's number, from 0.
    pub n: usize,
    pub method: String,
    pub target: String,
    pub at: Instant,
}

/// How a connection ended: when the server stopped writing, and how many body bytes it wrote.
#[derive(Debug, Clone)]
pub struct Ended {
    pub n: usize,
    pub at: Instant,
    pub body_bytes: u64,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<RawReq>>,
    ended: Mutex<Vec<Ended>>,
}

pub struct RawServer {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

type Plan = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

impl RawServer {
    /// Listens on `ip` (a loopback address) at a free port; connection `n` gets `plan(n)`.
    pub async fn start(ip: &str, plan: impl Fn(usize) -> Answer + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind raw server");
        let addr = listener.local_addr().expect("raw server address");
        let inner = Arc::new(Inner::default());
        let plan: Plan = Arc::new(plan);
        let shared = Arc::clone(&inner);
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((sock, _)) = listener.accept().await {
                let (inner, plan) = (Arc::clone(&shared), Arc::clone(&plan));
                tokio::spawn(serve(sock, n, inner, plan));
                n += 1;
            }
        });
        RawServer { addr, inner }
    }

    /// A URL on this server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn requests(&self) -> Vec<RawReq> {
        self.inner.requests.lock().expect("lock").clone()
    }

    pub fn ended(&self) -> Vec<Ended> {
        self.inner.ended.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<RawReq> {
        eventually(
            &format!("{n} requests at the raw server {}", self.addr),
            || async {
                let r = self.requests();
                (r.len() >= n).then_some(r)
            },
        )
        .await
    }

    /// Waits until connection `n` has ended (the client hung up or the answer was complete).
    pub async fn wait_ended(&self, n: usize) -> Ended {
        eventually(&format!("connection {n} at {} to end", self.addr), || async {
            self.ended().into_iter().find(|e| e.n == n)
        })
        .await
    }
}

async fn serve(mut sock: TcpStream, n: usize, inner: Arc<Inner>, plan: Plan) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the request head; a request body (none in these tests) is ignored.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut line = text.lines().next().unwrap_or_default().split(' ');
    let method = line.next().unwrap_or_default().to_owned();
    let target = line.next().unwrap_or_default().to_owned();
    inner.requests.lock().expect("lock").push(RawReq {
        n,
        method,
        target,
        at: Instant::now(),
    });
    let body_bytes = answer(&mut sock, plan(n)).await;
    inner.ended.lock().expect("lock").push(Ended {
        n,
        at: Instant::now(),
        body_bytes,
    });
}

/// Writes the answer; returns the body bytes written before the end or the client's hang-up.
async fn answer(sock: &mut TcpStream, answer: Answer) -> u64 {
    match answer {
        Answer::Full {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for h in headers {
                out.push_str(&h);
                out.push_str("\r\n");
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&body);
            if sock.write_all(&bytes).await.is_err() {
                return 0;
            }
            let _ = sock.shutdown().await;
            body.len() as u64
        }
        Answer::Drip { every } => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\nconnection: close\r\n\r\n";
            if sock.write_all(head).await.is_err() {
                return 0;
            }
            let mut written = 0;
            loop {
                if sock.write_all(b"x").await.is_err() || sock.flush().await.is_err() {
                    return written;
                }
                written += 1;
                // A hang-up shows as a readable EOF (or a reset) while we wait.
                let mut probe = [0u8; 1];
                match tokio::time::timeout(every, sock.read(&mut probe)).await {
                    Err(_) => {}
                    Ok(Ok(0)) | Ok(Err(_)) => return written,
                    Ok(Ok(_)) => {}
                }
            }
        }
        Answer::Endless { pattern } => {
            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            if sock.write_all(head).await.is_err() {
                return 0;
            }
            let mut chunk = format!("{:x}\r\n", pattern.len()).into_bytes();
            chunk.extend_from_slice(&pattern);
            chunk.extend_from_slice(b"\r\n");
            let mut written = 0;
            loop {
                if sock.write_all(&chunk).await.is_err() {
                    return written;
                }
                written += pattern.len() as u64;
            }
        }
    }
}
