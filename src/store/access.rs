//! `admin_tokens` and `share_links`: who may use the page and the API, and what each partner
//! link shows. A raw token is 256 bits from the OS's random generator, shown once; only its
//! SHA-256 is stored. A look-up finds the row by that hash (an index) and compares the hashes
//! again in constant time, so neither the index nor the comparison says how much matched.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_postgres::Row;

use super::{Result, StoreError};
use crate::web::scope::LinkScope;

/// What an admin token's raw text starts with, so a leaked one is recognisable (and secret
/// scanners can be taught it).
pub const ADMIN_PREFIX: &str = "xpb_";

/// 32 random bytes from the OS, as URL-safe text (43 characters).
pub fn random_token() -> Result<String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StoreError::Invalid(format!("the OS random generator failed: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a raw token.
pub fn hash(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

/// Whether a stored hash is the hash of `raw`, in constant time.
fn matches(stored: &[u8], raw: &str) -> bool {
    bool::from(stored.ct_eq(&hash(raw)))
}

/// An admin token as listed (never its raw text).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str = "id, name, created_at, expires_at, revoked_at, last_used_at, token_hash";

fn token(r: &Row) -> TokenInfo {
    TokenInfo {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
        expires_at: r.get(3),
        revoked_at: r.get(4),
        last_used_at: r.get(5),
    }
}

/// Makes an admin token; returns its id and its raw text (to show once).
pub async fn create_token(
    client: &impl GenericClient,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(i64, String)> {
    let raw = format!("{ADMIN_PREFIX}{}", random_token()?);
    let row = client
        .query_one(
            "INSERT INTO admin_tokens (name, token_hash, expires_at) VALUES ($1, $2, $3) RETURNING id",
            &[&name, &hash(&raw), &expires_at],
        )
        .await?;
    Ok((row.get(0), raw))
}

/// The token of `raw` if it is known, not revoked and not expired; notes its use (at most
/// once a minute, so a busy client does not write on every request). A revoked token fails
/// at its next request: nothing is cached.
pub async fn verify_token(client: &impl GenericClient, raw: &str) -> Result<Option<TokenInfo>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM admin_tokens
                 WHERE token_hash = $1 AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > now())"
            ),
            &[&hash(raw)],
        )
        .await?;
    let Some(row) = row.filter(|r| matches(r.get::<_, &[u8]>(6), raw)) else {
        return Ok(None);
    };
    let info = token(&row);
    client
        .execute(
            "UPDATE admin_tokens SET last_used_at = now()
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            &[&info.id],
        )
        .await?;
    Ok(Some(info))
}

/// Every admin token, newest first.
pub async fn list_tokens(client: &impl GenericClient) -> Result<Vec<TokenInfo>> {
    let rows = client
        .query(
            &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY id DESC"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(token).collect())
}

/// Revokes an admin token; returns when it was revoked (the first time, if it already was),
/// or `None` when there is no such token.
pub async fn revoke_token(client: &impl GenericClient, id: i64) -> Result<Option<DateTime<Utc>>> {
    let row = client
        .query_opt(
            "UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
             RETURNING revoked_at",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A partner link as listed and as looked up (never its raw token).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub id: i64,
    pub label: Option<String>,
    pub scope: LinkScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub use_count: i64,
}

/// What a partner link's token leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Link),
    /// Expired at this time.
    Expired(DateTime<Utc>),
    /// Revoked at this time.
    Revoked(DateTime<Utc>),
    /// No such link (or an altered token): the answer says nothing more.
    Unknown,
}

const LINK_COLUMNS: &str = "id, label, affiliate_ids, offer_ids, window_from, window_to, window_last_s,
    columns, export, created_at, expires_at, revoked_at, last_used_at, use_count, token_hash";

fn link(r: &Row) -> Link {
    let last: Option<i64> = r.get(6);
    Link {
        id: r.get(0),
        label: r.get(1),
        scope: LinkScope {
            affiliate_ids: r.get(2),
            offer_ids: r.get(3),
            from: r.get(4),
            to: r.get(5),
            last: last.map(|s| std::time::Duration::from_secs(s.unsigned_abs())),
            columns: r.get(7),
            export: r.get(8),
        },
        created_at: r.get(9),
        expires_at: r.get(10),
        revoked_at: r.get(11),
        last_used_at: r.get(12),
        use_count: r.get(13),
    }
}

/// Stores a partner link (its scope already validated); returns its id and raw token.
pub async fn create_link(
    client: &impl GenericClient,
    scope: &LinkScope,
    label: Option<&str>,
    expires_at: DateTime<Utc>,
) -> Result<(i64, String)> {
    let raw = random_token()?;
    let last = scope.last.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let row = client
        .query_one(
            "INSERT INTO share_links (token_hash, label, affiliate_ids, offer_ids, window_from,
                 window_to, window_last_s, columns, export, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &[
                &hash(&raw),
                &label,
                &scope.affiliate_ids,
                &scope.offer_ids,
                &scope.from,
                &scope.to,
                &last,
                &scope.columns,
                &scope.export,
                &expires_at,
            ],
        )
        .await?;
    Ok((row.get(0), raw))
}

/// The link of a raw token, and whether it may still be used.
pub async fn lookup_link(client: &impl GenericClient, raw: &str) -> Result<Lookup> {
    let row = client
        .query_opt(
            &format!("SELECT {LINK_COLUMNS}, now() FROM share_links WHERE token_hash = $1"),
            &[&hash(raw)],
        )
        .await?;
    let Some(row) = row.filter(|r| matches(r.get::<_, &[u8]>(14), raw)) else {
        return Ok(Lookup::Unknown);
    };
    let now: DateTime<Utc> = row.get(15);
    let found = link(&row);
    Ok(match found.revoked_at {
        Some(at) => Lookup::Revoked(at),
        None if found.expires_at <= now => Lookup::Expired(found.expires_at),
        None => Lookup::Found(found),
    })
}

/// Counts one use of a link (a page or an export served).
pub async fn record_use(client: &impl GenericClient, id: i64) -> Result<()> {
    client
        .execute(
            "UPDATE share_links SET use_count = use_count + 1, last_used_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Every partner link, newest first, with its last use and use count.
pub async fn list_links(client: &impl GenericClient) -> Result<Vec<Link>> {
    let rows = client
        .query(
            &format!("SELECT {LINK_COLUMNS} FROM share_links ORDER BY id DESC"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(link).collect())
}

/// One link by id.
pub async fn get_link(client: &impl GenericClient, id: i64) -> Result<Option<Link>> {
    let row = client
        .query_opt(
            &format!("SELECT {LINK_COLUMNS} FROM share_links WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(link))
}

/// Revokes a link; returns when (the first time, if it already was), or `None` when there is
/// no such link.
pub async fn revoke_link(client: &impl GenericClient, id: i64) -> Result<Option<DateTime<Utc>>> {
    let row = client
        .query_opt(
            "UPDATE share_links SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
             RETURNING revoked_at",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_url_safe_and_hashed() {
        let a = random_token().expect("random");
        let b = random_token().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(hash(&a).len(), 32);
        assert!(matches(&hash(&a), &a));
        assert!(!matches(&hash(&a), &b));
        assert!(!matches(&hash(&a)[..31], &a), "a short hash never matches");
    }
}
