//! `cross-postback receiver`: a throwaway HTTP receiver that prints each request and answers
//! 200, for trying the daemon and for partners testing a URL.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};

pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    println!(
        "receiver listening on http://{}/ (Ctrl-C stops it)",
        listener.local_addr()?
    );
    let app = Router::new().fallback(print_request);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn print_request(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> &'static str {
    let key = headers.get("idempotency-key").map_or_else(
        || "-".to_owned(),
        |v| printable(&String::from_utf8_lossy(v.as_bytes())),
    );
    let time = chrono::Utc::now().format("%H:%M:%S%.3f");
    println!(
        "{time} {method} {}  Idempotency-Key: {key}",
        printable(&uri.to_string())
    );
    if !body.is_empty() {
        println!("    {}", printable(&String::from_utf8_lossy(&body)));
    }
    "ok\n"
}

/// The text with control characters escaped (`\u{1b}`, `\n`, …), so that a request cannot
/// move the cursor, recolour or retitle the terminal it is printed on, or forge a line.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            super::printable("a\u{1b}]0;pwned\u{7}\r\nb\té"),
            "a\\u{1b}]0;pwned\\u{7}\\r\\nb\\té"
        );
    }
}
