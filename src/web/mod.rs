//! The statistics page, partner links and the HTTP API (`/api/v1`), served on `web.listen`
//! by `run` (a supervised task) or alone by `cross-postback web`. Both talk to Postgres only.
//!
//! - [`query`]  request parameters → a typed filter (pure; shared by API, page and partner)
//! - [`scope`]  a partner link's scope applied to a request; new links checked (pure)
//! - [`limit`]  failed partner-link look-ups per client address
//! - [`links`]  partner links made, listed and revoked (CLI, API and page alike)
//! - [`csv`]    the streamed CSV export
//! - [`error`]  the API's JSON errors
//! - [`state`]  what the handlers share
//! - [`api`]    the `/api/v1` handlers and their OpenAPI document

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store;

pub mod api;
pub mod csv;
pub mod error;
pub mod limit;
pub mod links;
pub mod page;
pub mod partner;
pub mod query;
pub mod scope;
pub mod session;
pub mod state;

pub use state::AppState;

/// The whole router: the API, then (merged here by their own modules) the page and the
/// partner pages.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::router(state.clone()))
        .merge(page::router())
        .merge(partner::router())
        .with_state(state)
}

/// The web's pool: its own (a CSV export holds a connection while it streams), with
/// statements planned for each execution's values so each filter takes its index.
pub fn pool(cfg: &Config) -> store::Result<deadpool_postgres::Pool> {
    store::web_pool(&cfg.database.url, cfg.database.pool_size.clamp(2, 16))
}

/// Binds `web.listen` (so a bad address fails start-up) and returns the bound address and
/// the server, which ends when `shutdown` is cancelled (requests in flight are finished).
pub async fn serve(
    cfg: Arc<Config>,
    pool: deadpool_postgres::Pool,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    let listen = cfg.web.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (web.listen): {e}"))?;
    let addr = listener.local_addr()?;
    let app = router(AppState::new(pool, cfg));
    let server = async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(|e| anyhow::anyhow!("web listener: {e}"))
    };
    Ok((addr, server))
}

/// Runs the page and the API alone until SIGTERM or SIGINT (`cross-postback web`): migrates
/// first, as `run` does, so a web-only deployment can start before the workers.
pub async fn run_until_signalled(cfg: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!("{name}: shutting down");
        on_signal.cancel();
    });
    let pool = pool(&cfg)?;
    let applied = store::migrate(&pool).await?;
    if !applied.is_empty() {
        tracing::info!("{}", store::migration_summary(&applied));
    }
    let (addr, server) = serve(Arc::new(cfg), pool.clone(), shutdown).await?;
    tracing::info!(%addr, "web listener up");
    let result = server.await;
    pool.close();
    tracing::info!("stopped");
    result
}
