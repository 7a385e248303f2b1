//! The chaos run's receivers: plain HTTP/1.1 over raw TCP (keep-alive), so that one can also
//! hang without answering or reset the connection. Each records every request it got and the
//! answer it chose, at the moment it arrived.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200.
    Healthy,
    /// 500 storms: 500 to everything for 1.5 s out of every 4.5 s, 200 otherwise.
    Storms,
    /// 429 with `Retry-After: 1` to a third of the requests.
    Limits,
    /// A fifth hang without an answer until the client gives up, a tenth reset the
    /// connection, the rest get 200.
    Hangs,
}

/// What a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    Hung,
    Reset,
}

impl Answer {
    pub fn is_success(self) -> bool {
        matches!(self, Answer::Status(s) if (200..300).contains(&s))
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path, which names the URL (`/u/<tag>`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub at: Instant,
    pub answer: Answer,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct ChaosReceiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ChaosReceiver {
    pub async fn start(ip: &str, behaviour: Behaviour, seed: u64) -> ChaosReceiver {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind chaos receiver");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let started = Instant::now();
        let (log, r) = (Arc::clone(&seen), Arc::clone(&rng));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, rng) = (Arc::clone(&log), Arc::clone(&r));
                tokio::spawn(serve(stream, behaviour, log, rng, started));
            }
        });
        ChaosReceiver { addr, seen }
    }

    pub fn url(&self, tag: &str) -> String {
        format!(
            "http://{}/u/{tag}?c={{conversion_id}}&s={{status_name}}&q={{sub1}}&e={{event_id}}",
            self.addr
        )
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn choose(behaviour: Behaviour, rng: &Mutex<StdRng>, started: Instant) -> Answer {
    let roll: f64 = rng.lock().expect("lock").random();
    match behaviour {
        Behaviour::Healthy => Answer::Status(200),
        Behaviour::Storms => {
            let phase = started.elapsed().as_millis() % 4500;
            Answer::Status(if phase < 1500 { 500 } else { 200 })
        }
        Behaviour::Limits if roll < 0.33 => Answer::Status(429),
        Behaviour::Limits => Answer::Status(200),
        Behaviour::Hangs if roll < 0.2 => Answer::Hung,
        Behaviour::Hangs if roll < 0.3 => Answer::Reset,
        Behaviour::Hangs => Answer::Status(200),
    }
}

/// Serves one connection: requests one after another (keep-alive) until the client closes it
/// or an answer ends it.
async fn serve(
    mut stream: TcpStream,
    behaviour: Behaviour,
    log: Arc<Mutex<Vec<Seen>>>,
    rng: Arc<Mutex<StdRng>>,
    started: Instant,
) {
    let mut buf = Vec::new();
    loop {
        let Some((head_len, content_length)) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        while buf.len() < head_len + content_length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        buf.drain(..head_len + content_length);
        let answer = choose(behaviour, &rng, started);
        log.lock().expect("lock").push(parse(&head, answer));
        match answer {
            Answer::Status(code) => {
                let extra = if code == 429 { "retry-after: 1\r\n" } else { "" };
                let reply = format!("HTTP/1.1 {code} Chaos\r\ncontent-length: 5\r\n{extra}\r\nchaos");
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Answer::Hung => {
                // No answer: wait for the client to give up (it closes), at most a minute.
                let mut sink = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_secs(60), async {
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
                return;
            }
            Answer::Reset => {
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = socket_linger_zero(&stream);
                return;
            }
        }
    }
}

fn socket_linger_zero(stream: &TcpStream) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let zero = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(stream, sockopt::Linger, &zero)
}

/// Reads until the end of a request head; returns its length and the body's declared length.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(usize, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let content_length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((end + 4, content_length));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse(head: &str, answer: Answer) -> Seen {
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let url = url::Url::parse(&format!("http://x{target}")).expect("request target parses");
    let idempotency_key = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("idempotency-key")
            .then(|| value.trim().to_owned())
    });
    Seen {
        path: url.path().to_owned(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        idempotency_key,
        at: Instant::now(),
        answer,
    }
}
