//! A partner link's scope (pure): what a link may show, how a request is narrowed to it, and
//! how a new link's settings are checked (the CLI and the API share [`validate_link`]).
//!
//! Applying a scope can only narrow a request: ids outside the scope leave nothing to show,
//! times are clamped to the window, columns are cut to the allowed ones, and filters on
//! columns the link does not show are refused (they would tell what those columns hold).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::query::{Format, ParamError, Request};
use crate::config::Dur;
use crate::store::stats::{self, Filter};

/// Default expiry of a new link.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(30 * 86_400);

/// What a link shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkScope {
    pub affiliate_ids: Vec<String>,
    pub offer_ids: Vec<String>,
    /// An absolute window: from (inclusive) and/or to (exclusive).
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// A rolling window back from each request; never with `from`/`to`.
    pub last: Option<Duration>,
    /// The columns it may show, in their default order.
    pub columns: Vec<String>,
    /// Whether the CSV export is allowed.
    pub export: bool,
}

/// The default columns of a link: the statistics view's without `revenue` (the network's
/// own money).
pub fn default_columns() -> Vec<String> {
    stats::STATS_COLUMNS
        .iter()
        .filter(|c| **c != "revenue")
        .map(|c| (*c).to_owned())
        .collect()
}

impl LinkScope {
    /// The window at `now`: `(from, to)`.
    pub fn window(&self, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match self.last {
            // A span too long to subtract reaches back before any row: no bound is the same.
            Some(span) => (
                chrono::Duration::from_std(span)
                    .ok()
                    .and_then(|s| now.checked_sub_signed(s))
                    .filter(|t| stats::storable(*t)),
                None,
            ),
            None => (self.from, self.to),
        }
    }
}

/// Why a partner's request is refused (the rest is narrowed silently).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("parameter `{0}`: this link cannot filter on it")]
    NotAllowed(&'static str),
    #[error("this link does not allow exports")]
    ExportNotAllowed,
}

/// The request narrowed to the scope.
pub fn apply(scope: &LinkScope, req: Request, now: DateTime<Utc>) -> Result<Request, ScopeError> {
    let f = req.filter;
    let allowed = |c: &str| scope.columns.iter().any(|a| a == c);
    for (given, column, param) in [
        (f.url_id.is_some(), "url_id", "url_id"),
        (f.state.is_some(), "delivery_state", "state"),
        (f.error_code.is_some(), "error_code", "error_code"),
        (f.http_classes.is_some(), "http_code", "http_class"),
    ] {
        if given && !allowed(column) {
            return Err(ScopeError::NotAllowed(param));
        }
    }
    if req.format == Some(Format::Csv) && !scope.export {
        return Err(ScopeError::ExportNotAllowed);
    }
    let (win_from, win_to) = scope.window(now);
    let filter = Filter {
        offer_ids: narrow(&scope.offer_ids, f.offer_ids),
        affiliate_ids: narrow(&scope.affiliate_ids, f.affiliate_ids),
        from: later(f.from, win_from),
        to: earlier(f.to, win_to),
        ..f
    };
    let asked: Vec<String> = req
        .columns
        .unwrap_or_default()
        .into_iter()
        .filter(|c| allowed(c))
        .collect();
    let columns = if asked.is_empty() {
        scope.columns.clone()
    } else {
        asked
    };
    Ok(Request {
        filter,
        columns: Some(columns),
        ..req
    })
}

/// The ids a request may see: the scope's (all of them when the request names none, else
/// those it names that are in scope, possibly none); anything when the scope has none.
fn narrow(scope: &[String], asked: Option<Vec<String>>) -> Option<Vec<String>> {
    if scope.is_empty() {
        return asked;
    }
    Some(match asked {
        None => scope.to_vec(),
        Some(asked) => asked.into_iter().filter(|id| scope.contains(id)).collect(),
    })
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.into_iter().chain(b).max()
}

fn earlier(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.into_iter().chain(b).min()
}

/// A new link's settings as given (CLI options or the API's body); times and durations in
/// their text forms.
#[derive(Debug, Clone, Default)]
pub struct LinkInput {
    pub affiliate_ids: Vec<String>,
    pub offer_ids: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub last: Option<String>,
    pub columns: Option<Vec<String>>,
    pub export: Option<bool>,
    pub expires: Option<String>,
    pub label: Option<String>,
}

/// A checked link: its scope, label and expiry time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLink {
    pub scope: LinkScope,
    pub label: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Checks a new link's settings; `max_lifetime` is `web.max_link_lifetime`.
pub fn validate_link(
    input: LinkInput,
    max_lifetime: Duration,
    now: DateTime<Utc>,
) -> Result<NewLink, ParamError> {
    let ids = |v: Vec<String>, param: &str| -> Result<Vec<String>, ParamError> {
        let ids: Vec<String> = v.iter().map(|s| s.trim().to_owned()).collect();
        if ids.iter().any(String::is_empty) {
            return Err(ParamError::new(param, "an empty id"));
        }
        // Postgres text cannot hold NUL, and no id has control characters.
        if ids.iter().any(|id| id.chars().any(char::is_control)) {
            return Err(ParamError::new(param, "an id with control characters"));
        }
        Ok(ids)
    };
    let affiliate_ids = ids(input.affiliate_ids, "affiliate_ids")?;
    let offer_ids = ids(input.offer_ids, "offer_ids")?;
    if affiliate_ids.is_empty() && offer_ids.is_empty() {
        return Err(ParamError::new(
            "affiliate_ids",
            "a link needs at least one affiliate or offer id",
        ));
    }
    let time = |t: Option<String>, param: &str| {
        t.map(|t| super::query::time(&t, now).map_err(|m| ParamError::new(param, m)))
            .transpose()
    };
    let (from, to) = (time(input.from, "from")?, time(input.to, "to")?);
    if let (Some(f), Some(t)) = (from, to)
        && t <= f
    {
        return Err(ParamError::new("to", "must be after `from`"));
    }
    let last = input.last.map(|l| span(&l, "last")).transpose()?;
    if last.is_some() && (from.is_some() || to.is_some()) {
        return Err(ParamError::new(
            "last",
            "give either `last` or `from`/`to`, not both",
        ));
    }
    let columns = match input.columns {
        None => default_columns(),
        Some(c) if c.is_empty() => return Err(ParamError::new("columns", "no column given")),
        Some(c) => {
            stats::check_columns(&c).map_err(|m| ParamError::new("columns", m))?;
            c
        }
    };
    let lifetime = match input.expires {
        None => DEFAULT_EXPIRY,
        Some(e) => span(&e, "expires")?,
    };
    if lifetime > max_lifetime {
        return Err(ParamError::new(
            "expires",
            format!("at most {} (web.max_link_lifetime)", Dur(max_lifetime)),
        ));
    }
    let expires_at = chrono::Duration::from_std(lifetime)
        .ok()
        .and_then(|l| now.checked_add_signed(l))
        .ok_or_else(|| ParamError::new("expires", "too far in the future"))?;
    let label = input.label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
    if label.as_ref().is_some_and(|l| l.chars().any(char::is_control)) {
        return Err(ParamError::new("label", "contains control characters"));
    }
    Ok(NewLink {
        scope: LinkScope {
            affiliate_ids,
            offer_ids,
            from,
            to,
            last,
            columns,
            export: input.export.unwrap_or(true),
        },
        label,
        expires_at,
    })
}

/// A positive duration like `90s`, `2h`, `30d`.
fn span(text: &str, param: &str) -> Result<Duration, ParamError> {
    match text.parse::<Dur>() {
        Ok(d) if !d.0.is_zero() => Ok(d.0),
        Ok(_) => Err(ParamError::new(param, "must be longer than zero")),
        Err(e) => Err(ParamError::new(param, e)),
    }
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
