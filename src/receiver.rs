//! `cross-postback receiver`: a throwaway HTTP receiver that prints each request and answers
//! 200, for trying the daemon and for partners testing a URL.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};

use crate::output::printable;

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
        |v| printable(&String::from_utf8_lossy(v.as_bytes())).into_owned(),
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
