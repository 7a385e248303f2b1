//! What every handler of the page, the partner pages and the API shares.

use std::sync::Arc;

use deadpool_postgres::Pool;

use super::limit::FailedLookups;
use crate::config::Config;
use crate::urls_service::UrlService;

#[derive(Clone)]
pub struct AppState {
    /// The web's own pool: statements planned per execution, so each filter's index is taken.
    pub pool: Pool,
    pub cfg: Arc<Config>,
    /// The one URL service, shared with the CLI.
    pub urls: Arc<UrlService>,
    /// `web.public_url` without a trailing slash: where partner links point.
    pub public_url: String,
    /// Failed partner-link look-ups per client address.
    pub failed_lookups: Arc<FailedLookups>,
    /// CSV exports at once: each holds a connection while it streams, so at most half the
    /// pool, leaving the rest to the page and the API.
    pub exports: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(pool: Pool, cfg: Arc<Config>) -> AppState {
        AppState {
            urls: Arc::new(UrlService::new(pool.clone(), &cfg)),
            public_url: cfg.web_public_url(),
            exports: Arc::new(tokio::sync::Semaphore::new(export_permits(
                pool.status().max_size,
            ))),
            pool,
            cfg,
            failed_lookups: Arc::new(FailedLookups::default()),
        }
    }

    /// The full address of a partner link's raw token.
    pub fn link_address(&self, raw: &str) -> String {
        super::links::address(&self.public_url, raw)
    }
}

/// Exports allowed at once for a pool of `size` connections: half of it, at least one.
pub fn export_permits(size: usize) -> usize {
    (size / 2).max(1)
}
