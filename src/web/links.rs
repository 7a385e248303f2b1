//! Making, listing and revoking partner links: one path for the CLI, the API and the page, so
//! they check a link the same way ([`super::scope::validate_link`]).

use chrono::Utc;
use deadpool_postgres::GenericClient;

use super::query::ParamError;
use super::scope::{LinkInput, NewLink, validate_link};
use crate::config::Config;
use crate::store::{StoreError, access};

/// Why a link was not made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Invalid(#[from] ParamError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A link just made: the only time its full address is known.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: i64,
    pub address: String,
    pub link: NewLink,
}

/// The full address of a link's raw token on `public_url`.
pub fn address(public_url: &str, raw: &str) -> String {
    format!("{}/s/{raw}", public_url.trim_end_matches('/'))
}

/// Checks and stores a new link.
pub async fn create(
    client: &impl GenericClient,
    cfg: &Config,
    input: LinkInput,
) -> Result<Created, LinkError> {
    let link = validate_link(input, cfg.web.max_link_lifetime.0, Utc::now())?;
    let (id, raw) = access::create_link(client, &link.scope, link.label.as_deref(), link.expires_at).await?;
    Ok(Created {
        id,
        address: address(&cfg.web_public_url(), &raw),
        link,
    })
}

/// A link's state in words: `active`, `expired` or `revoked`.
pub fn state(link: &access::Link, now: chrono::DateTime<Utc>) -> &'static str {
    if link.revoked_at.is_some() {
        "revoked"
    } else if link.expires_at <= now {
        "expired"
    } else {
        "active"
    }
}
