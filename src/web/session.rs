//! The page's sign-in sessions and its CSRF rules.
//!
//! Signing in takes an admin token (checked by `store::access`); the browser then keeps a
//! random session id in a cookie (HttpOnly, SameSite=Strict, Secure behind https) and only the
//! id's SHA-256 is stored (`web_sessions`). Each request joins the admin token the session was
//! made with, so revoking or expiring that token ends the session at once.
//!
//! CSRF: every state-changing form carries a token derived from the session id (so a page of
//! another site, which cannot read the cookie, cannot make it), compared in constant time; and
//! a POST whose `Origin` or `Sec-Fetch-Site` says it came from another site is refused before
//! anything else is looked at.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "xpb_session";

/// How long a session lasts (never past its admin token's own expiry).
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A signed-in browser: which admin token it signed in with and its form token.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_id: i64,
    pub token_name: String,
    pub expires_at: DateTime<Utc>,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// A new random session id (256 bits from the OS), as lower-case hex.
pub fn new_id() -> Result<String, rand::rand_core::OsError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn id_hash(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

/// The CSRF token of a session: derived from its secret id, so it needs no storage and no
/// other site can know it.
pub fn csrf_for(raw: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"cross-postback csrf v1\0");
    h.update(raw.as_bytes());
    hex(&h.finalize())
}

/// Compares two strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a submitted form token is this session's.
pub fn csrf_ok(session: &Session, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|s| constant_time_eq(&session.csrf, s))
}

/// The session id from the request's `Cookie` headers, if one looks like ours.
pub fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value that keeps a session; `secure` when the page is served over https.
pub fn set_cookie(raw: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE_NAME}={raw}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

/// Whether a state-changing request may have come from the page itself: refused when
/// `Sec-Fetch-Site` names another site, or `Origin` is present and is neither the request's
/// own host nor the public address's origin.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    let public = origin_of(public_url);
    let own = header(HOST.as_str()).map(|h| h.to_ascii_lowercase());
    let (scheme, host) = match origin.split_once("://") {
        Some((s, h)) => (s, h.to_ascii_lowercase()),
        None => return false,
    };
    public.as_deref() == Some(origin)
        || (matches!(scheme, "http" | "https") && own.as_deref() == Some(host.as_str()))
}

fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the operating system's random source failed")]
    Rng(#[source] rand::rand_core::OsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a new session for admin token `token_id`; returns the raw id for the cookie.
pub async fn create(client: &impl GenericClient, token_id: i64) -> Result<String, CreateError> {
    let raw = new_id().map_err(CreateError::Rng)?;
    let lifetime = i64::try_from(LIFETIME.as_secs()).unwrap_or(i64::MAX);
    client
        .execute(
            "INSERT INTO web_sessions (id_hash, token_id, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3::bigint))",
            &[&id_hash(&raw), &token_id, &lifetime],
        )
        .await
        .map_err(StoreError::from)?;
    // Expired sessions are removed as others sign in, so the table stays small.
    client
        .execute("DELETE FROM web_sessions WHERE expires_at < now()", &[])
        .await
        .map_err(StoreError::from)?;
    Ok(raw)
}

/// The live session with this raw id: not expired, and its admin token neither revoked nor
/// expired.
pub async fn lookup(client: &impl GenericClient, raw: &str) -> Result<Option<Session>, StoreError> {
    let row = client
        .query_opt(
            "SELECT s.token_id, t.name, LEAST(s.expires_at, COALESCE(t.expires_at, s.expires_at)) \
             FROM web_sessions s JOIN admin_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL \
               AND (t.expires_at IS NULL OR t.expires_at > now())",
            &[&id_hash(raw)],
        )
        .await?;
    Ok(row.map(|r| Session {
        token_id: r.get(0),
        token_name: r.get(1),
        expires_at: r.get(2),
        csrf: csrf_for(raw),
    }))
}

/// Ends a session (sign-out).
pub async fn delete(client: &impl GenericClient, raw: &str) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM web_sessions WHERE id_hash = $1", &[&id_hash(raw)])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_refuses_what_another_site_sends() {
        let public = "https://stats.example.com";
        let cases: &[(&[(&'static str, &'static str)], bool)] = &[
            (&[], true),
            (&[("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "none")], true),
            (&[("sec-fetch-site", "cross-site")], false),
            (&[("sec-fetch-site", "same-site")], false),
            (&[("origin", "https://stats.example.com")], true),
            (
                &[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")],
                true,
            ),
            (
                &[("origin", "https://evil.example"), ("host", "127.0.0.1:8080")],
                false,
            ),
            (&[("origin", "null"), ("host", "127.0.0.1:8080")], false),
            (&[("origin", "https://stats.example.com.evil")], false),
            (
                &[
                    ("origin", "https://stats.example.com"),
                    ("sec-fetch-site", "cross-site"),
                ],
                false,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(same_origin(&headers(h), public), *want, "{h:?}");
        }
    }

    #[test]
    fn cookie_id_takes_only_our_well_formed_cookie() {
        let id = "a".repeat(64);
        let line: &'static str = Box::leak(format!("x=1; {COOKIE_NAME}={id}; y=2").into_boxed_str());
        assert_eq!(cookie_id(&headers(&[("cookie", line)])), Some(id));
        let cases: &[&'static str] = &["xpb_session=short", "other=aaaa", "", "xpb_session="];
        for c in cases {
            assert_eq!(cookie_id(&headers(&[("cookie", c)])), None, "{c}");
        }
    }

    #[test]
    fn cookie_flags_are_strict_and_secure_only_behind_https() {
        let c = set_cookie("abc", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie(true).contains("Max-Age=0"));
    }

    #[test]
    fn csrf_is_per_session_and_compared_whole() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(csrf_for(&a), csrf_for(&b));
        let s = Session {
            token_id: 1,
            token_name: "me".into(),
            expires_at: Utc::now(),
            csrf: csrf_for(&a),
        };
        assert!(csrf_ok(&s, Some(&csrf_for(&a))));
        assert!(!csrf_ok(&s, Some(&csrf_for(&b))));
        assert!(!csrf_ok(&s, Some(&csrf_for(&a)[..63])));
        assert!(!csrf_ok(&s, None));
    }
}
