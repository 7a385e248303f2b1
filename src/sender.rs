//! The HTTP client: timeouts, a capped body read, redirects hop by hop, and the network guard
//! inside the DNS resolver (so a second resolution or DNS rebinding cannot get around it).

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, Url};

use crate::guard::{Blocked, Guard};
use crate::retry::{ErrorCode, honours_retry_after, parse_retry_after};

/// Most redirect hops followed for a URL that allows them.
const MAX_REDIRECTS: usize = 3;
/// How much of a response body is stored with the attempt.
pub const EXCERPT_BYTES: usize = 1024;

pub const USER_AGENT: &str = concat!("cross-postback/", env!("CARGO_PKG_VERSION"));

/// Resolves through the system and refuses any address the guard does not allow.
struct GuardedResolver {
    guard: Arc<Guard>,
}

/// The lookup's own error is its source, printed once by whoever walks the chain.
#[derive(Debug, thiserror::Error)]
#[error("DNS lookup of {host} failed")]
struct DnsError {
    host: String,
    source: std::io::Error,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| DnsError {
                    host: host.clone(),
                    source,
                })?
                .collect();
            // Every resolved address must pass: a mixed answer is a rebinding attempt.
            for addr in &addrs {
                guard.check(&host, addr.ip())?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// One request to make. Its `Debug` shows header names only, and the URL masked.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub body: Option<(bytes::Bytes, &'static str)>,
    pub idempotency_key: String,
    pub follow_redirects: bool,
    /// The URL's own headers, rendered (header-safe: no control characters). Their values may
    /// be secrets: nothing here prints them.
    pub headers: Vec<(String, String)>,
    /// The URL's own timeout; the sender's bound applies when it is longer or absent.
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &crate::mask::mask_url(&self.url))
            .field("header_names", &names)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What came of it.
#[derive(Debug, Clone)]
pub struct Response {
    pub http_code: Option<u16>,
    pub error: Option<(ErrorCode, String)>,
    pub excerpt: Option<String>,
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: Arc<Guard>,
    max_body: usize,
    /// The whole attempt, every redirect hop included, ends within this.
    timeout: Duration,
}

impl Sender {
    pub fn new(
        guard: Guard,
        connect_timeout: Duration,
        timeout: Duration,
        max_body: usize,
    ) -> anyhow::Result<Sender> {
        let guard = Arc::new(guard);
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver {
                guard: Arc::clone(&guard),
            }))
            .build()?;
        Ok(Sender {
            client,
            guard,
            max_body,
            timeout,
        })
    }

    /// Sends one request, following redirects when allowed; never fails, every outcome is a
    /// [`Response`].
    pub async fn send(&self, req: &Request) -> Response {
        let started = Instant::now();
        let timeout = timeout_of(req, self.timeout);
        let deadline = tokio::time::Instant::from_std(started) + timeout;
        // The body read below stops at the same deadline, keeping the status and the bytes
        // that came (a tie goes to it: the inner future is polled first).
        let mut out = match tokio::time::timeout_at(deadline, self.send_hops(req, deadline)).await {
            Ok(out) => out,
            Err(_) => failure(
                ErrorCode::Timeout,
                format!("no complete answer within {} ms", timeout.as_millis()),
            ),
        };
        out.duration = started.elapsed();
        out
    }

    async fn send_hops(&self, req: &Request, deadline: tokio::time::Instant) -> Response {
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        let mut url = match Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => return failure(ErrorCode::Render, format!("rendered URL does not parse: {e}")),
        };
        if HeaderValue::from_str(&req.idempotency_key).is_err() {
            // Its value is left out: it is the event's, and cannot be printed safely either.
            return failure(
                ErrorCode::Render,
                "the Idempotency-Key header cannot be built: the event_id holds a control character".into(),
            );
        }
        let origin = url.origin();
        for hop in 0..=MAX_REDIRECTS {
            if let Some(blocked) = self.check_literal(&url) {
                return failure(ErrorCode::Blocked, blocked.to_string());
            }
            let mut builder = self
                .client
                .request(method.clone(), url.clone())
                .header("Idempotency-Key", &req.idempotency_key);
            // The URL's own headers (a partner's token, say) go to its origin only: a redirect
            // to another scheme, host or port gets none of them, as browsers and reqwest do.
            if url.origin() == origin {
                for (name, value) in &req.headers {
                    builder = builder.header(name.as_str(), value.as_str());
                }
            }
            if let Some((text, content_type)) = &body {
                builder = builder.header(CONTENT_TYPE, *content_type).body(text.clone()); // a cheap Bytes clone
            }
            let response = match builder.send().await {
                Ok(r) => r,
                Err(e) => return from_error(e),
            };
            let status = response.status();
            if status.is_redirection() && req.follow_redirects {
                let next = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| url.join(loc).ok());
                if let Some(next) = next {
                    if !matches!(next.scheme(), "http" | "https") {
                        // No client may go there, so trying again cannot help (and the target
                        // URL, which may carry secrets, is left out).
                        let mut out = failure(
                            ErrorCode::Redirects,
                            format!(
                                "a redirect to a `{}` URL is not followed (only http and https are)",
                                next.scheme()
                            ),
                        );
                        out.http_code = Some(status.as_u16());
                        return out;
                    }
                    if hop == MAX_REDIRECTS {
                        let mut out = failure(
                            ErrorCode::Redirects,
                            format!("more than {MAX_REDIRECTS} redirects"),
                        );
                        out.http_code = Some(status.as_u16());
                        return out;
                    }
                    if matches!(status.as_u16(), 301..=303) {
                        method = Method::GET;
                        body = None;
                    }
                    url = next;
                    continue;
                }
            }
            return self.read(response, deadline, timeout_of(req, self.timeout)).await;
        }
        failure(
            ErrorCode::Redirects,
            format!("more than {MAX_REDIRECTS} redirects"),
        )
    }

    /// A host written as an IP address never reaches the resolver, so it is checked here.
    fn check_literal(&self, url: &Url) -> Option<Blocked> {
        let ip: IpAddr = match url.host()? {
            url::Host::Ipv4(ip) => ip.into(),
            url::Host::Ipv6(ip) => ip.into(),
            url::Host::Domain(_) => return None,
        };
        self.guard.check(&ip.to_string(), ip).err()
    }

    async fn read(
        &self,
        mut response: reqwest::Response,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Response {
        let code = response.status().as_u16();
        let retry_after = if honours_retry_after(code) {
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Utc::now()))
        } else {
            None
        };
        // The body is read up to the cap (so the connection can be reused), but only the
        // excerpt's first KiB is kept.
        let mut kept: Vec<u8> = Vec::with_capacity(EXCERPT_BYTES);
        let mut read = 0;
        let mut read_error = None;
        while read < self.max_body {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    let keep = chunk.len().min(EXCERPT_BYTES - kept.len());
                    kept.extend_from_slice(&chunk[..keep]);
                    read += chunk.len();
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    read_error = Some(from_error(e));
                    break;
                }
                Err(_) => {
                    read_error = Some(failure(
                        ErrorCode::Timeout,
                        format!(
                            "the response body did not complete within {} ms",
                            timeout.as_millis()
                        ),
                    ));
                    break;
                }
            }
        }
        let excerpt = excerpt(&kept);
        if let Some(mut failed) = read_error {
            // The status line came but the body did not: a timeout or a broken connection.
            failed.http_code = Some(code);
            failed.excerpt = excerpt;
            return failed;
        }
        let error = (!(200..300).contains(&code)).then(|| (ErrorCode::Http, format!("HTTP {code}")));
        Response {
            http_code: Some(code),
            error,
            excerpt,
            retry_after,
            duration: Duration::ZERO,
        }
    }
}

/// A request's timeout: its URL's own, within the sender's bound.
fn timeout_of(req: &Request, bound: Duration) -> Duration {
    req.timeout.map_or(bound, |t| t.min(bound))
}

fn failure(code: ErrorCode, text: String) -> Response {
    Response {
        http_code: None,
        error: Some((code, text)),
        excerpt: None,
        retry_after: None,
        duration: Duration::ZERO,
    }
}

/// The first KiB, as text (lossy UTF-8, no NUL: Postgres text cannot hold it).
fn excerpt(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let mut cut = &body[..body.len().min(EXCERPT_BYTES)];
    // Do not split a UTF-8 sequence at the cut.
    if let Err(e) = std::str::from_utf8(cut)
        && e.error_len().is_none()
    {
        cut = &cut[..e.valid_up_to()];
    }
    Some(String::from_utf8_lossy(cut).replace('\0', "\u{FFFD}"))
}

/// Maps a client error to a stable code by the types in its chain of causes, and prints each
/// cause once (an EOF during the TLS handshake has no type of its own and counts as
/// `connect`; both are retried). The URL is left out of the text: it may carry secrets, and the attempt row has
/// it (masked where shown) already.
fn from_error(e: reqwest::Error) -> Response {
    let e = e.without_url();
    // The text is the chain on one line, each cause once; the code is the first cause's type
    // that tells one.
    let text = crate::report::one_line(&e);
    let mut code = None;
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let (None, Some(s)) = (code, source) {
        code = code_of_cause(s);
        source = s.source();
    }
    let code = if e.is_builder() {
        // No request could be made of it (a header value, a URL the HTTP layer refuses):
        // trying again would fail the same way.
        ErrorCode::Render
    } else if let Some(code) = code {
        code
    } else if e.is_timeout() {
        ErrorCode::Timeout
    } else {
        // Refused, reset, closed before the answer was complete: the transport failed, so the
        // request may be tried again (connection errors are retryable).
        ErrorCode::Connect
    };
    failure(code, text)
}

/// The code one cause stands for, if it is one we know by type. A TLS failure arrives as a
/// `rustls::Error`, or inside the `std::io::Error` of the handshake, whose `source()` skips
/// the error it wraps (so it is looked at through `get_ref`).
fn code_of_cause(cause: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    if cause.is::<Blocked>() {
        Some(ErrorCode::Blocked)
    } else if cause.is::<DnsError>() {
        Some(ErrorCode::Dns)
    } else if cause.is::<rustls::Error>() {
        Some(ErrorCode::Tls)
    } else if let Some(io) = cause.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        code_of_cause(inner)
    } else {
        None
    }
}

pub mod render;

#[cfg(test)]
mod tests;
