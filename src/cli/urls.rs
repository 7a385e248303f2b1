//! `urls …`: arguments parsed into calls of the URL service ([`crate::urls_service`]), and
//! what they return printed. Header values and URL secrets are masked unless `--show-secrets`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{ContentType, Format, HttpMethod, table, test_url};
use crate::config::{Config, Dur};
use crate::store::{self, urls};
use crate::url_spec::{self, Header, HeaderError, UrlSpec};
use crate::urls_service::{UrlPatch, UrlService};

#[derive(Debug, Subcommand)]
pub enum UrlsCommand {
    /// Add a URL (validates the template); prints its id.
    Add(AddUrl),
    /// Change a URL's settings (validated as `add` does); pending retries use the new ones.
    Edit(EditUrl),
    /// List URLs (secrets in them and header values masked).
    List {
        /// Only this offer's URLs.
        #[arg(long, value_name = "ID")]
        offer: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Show the URLs' tokens, keys and passwords, and header values, instead of ***.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Send one request to a URL now and print it and the response; records nothing.
    /// Exits 0 when the answer is 2xx, 1 otherwise.
    Test(test_url::TestUrl),
    /// Disable a URL; its pending deliveries are cancelled.
    Disable {
        /// The URL's id (see `urls list`).
        id: i64,
    },
    /// Enable a URL again (cancelled deliveries stay cancelled).
    Enable {
        /// The URL's id (see `urls list`).
        id: i64,
    },
    /// Remove a URL; its attempts are kept.
    Remove {
        /// The URL's id (see `urls list`).
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct AddUrl {
    /// The offer whose conversions fire this URL.
    #[arg(long, value_name = "ID")]
    pub offer: String,
    /// URL template with macros such as {clickid}, {status}, {sum}.
    #[arg(long, value_name = "TEMPLATE")]
    pub url: String,
    /// HTTP method.
    #[arg(long, value_enum, default_value_t = HttpMethod::Get)]
    pub method: HttpMethod,
    /// Only conversions with this goal (case-insensitive).
    #[arg(long, value_name = "GOAL")]
    pub goal: Option<String>,
    /// Only these statuses, comma-separated (approved, declined, pending).
    #[arg(long, value_delimiter = ',', value_name = "STATUSES")]
    pub statuses: Option<Vec<String>>,
    /// POST body template (JSON by default; see --content-type).
    #[arg(long, value_name = "TEMPLATE")]
    pub body: Option<String>,
    /// Content type of a POST body.
    #[arg(long, value_enum, default_value_t = ContentType::Json)]
    pub content_type: ContentType,
    /// Follow up to 3 redirects.
    #[arg(long)]
    pub follow_redirects: bool,
    /// A request header `Name: value`, repeatable; the value may hold macros (control
    /// characters in their values are percent-encoded). Host, Content-Length, Content-Type,
    /// Transfer-Encoding, Connection and other hop-by-hop names, Expect, Idempotency-Key and
    /// User-Agent are refused.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// This URL's request timeout, like 2s or 500ms; at most the global delivery.timeout.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<Dur>,
    /// Add it even when an enabled URL of the offer has exactly these settings.
    #[arg(long)]
    pub allow_duplicate: bool,
    /// At most this many requests: `N/s` or `N/m`, across every replica; sends over it wait.
    #[arg(long, value_name = "N/s|N/m")]
    pub rate: Option<String>,
    /// Requests allowed at once after a quiet spell (default: one second's worth of --rate).
    #[arg(long, value_name = "N", requires = "rate")]
    pub burst: Option<u32>,
}

/// Options not given are left as they are; `--no-…` clears an optional setting.
#[derive(Debug, Args)]
pub struct EditUrl {
    /// The URL's id (see `urls list`).
    pub id: i64,
    /// New URL template.
    #[arg(long, value_name = "TEMPLATE")]
    pub url: Option<String>,
    /// New HTTP method.
    #[arg(long, value_enum)]
    pub method: Option<HttpMethod>,
    /// Only conversions with this goal (case-insensitive).
    #[arg(long, value_name = "GOAL", conflicts_with = "no_goal")]
    pub goal: Option<String>,
    /// Fire for every goal (clears --goal).
    #[arg(long)]
    pub no_goal: bool,
    /// Only these statuses, comma-separated (approved, declined, pending).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "STATUSES",
        conflicts_with = "all_statuses"
    )]
    pub statuses: Option<Vec<String>>,
    /// Fire for every announced status (clears --statuses).
    #[arg(long)]
    pub all_statuses: bool,
    /// New POST body template.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "no_body")]
    pub body: Option<String>,
    /// Send the event's canonical JSON as a POST's body (clears --body).
    #[arg(long)]
    pub no_body: bool,
    /// New content type of a POST body.
    #[arg(long, value_enum)]
    pub content_type: Option<ContentType>,
    /// Whether to follow up to 3 redirects.
    #[arg(long, value_name = "BOOL")]
    pub follow_redirects: Option<bool>,
    /// A request header `Name: value`, repeatable; given at all, these replace every header
    /// of the URL.
    #[arg(long = "header", value_name = "NAME: VALUE", conflicts_with = "no_headers")]
    pub headers: Vec<String>,
    /// Remove every header of the URL.
    #[arg(long)]
    pub no_headers: bool,
    /// This URL's request timeout; at most the global delivery.timeout.
    #[arg(long, value_name = "DURATION", conflicts_with = "no_timeout")]
    pub timeout: Option<Dur>,
    /// Use the global delivery.timeout (clears --timeout).
    #[arg(long)]
    pub no_timeout: bool,
    /// Save it even when another enabled URL of the offer has exactly these settings.
    #[arg(long)]
    pub allow_duplicate: bool,
    /// A new rate limit, `N/s` or `N/m` (see `urls add --rate`).
    #[arg(long, value_name = "N/s|N/m", conflicts_with = "no_rate")]
    pub rate: Option<String>,
    /// Its burst (default: one second's worth of --rate).
    #[arg(long, value_name = "N", requires = "rate")]
    pub burst: Option<u32>,
    /// Remove the URL's rate limit.
    #[arg(long)]
    pub no_rate: bool,
}

/// Each `Name: value` split here rather than by clap, whose error would quote the value.
fn parse_headers(given: Vec<String>) -> Result<Vec<Header>, HeaderError> {
    given.iter().map(|h| url_spec::headers::parse_arg(h)).collect()
}

/// The spec of `urls add`'s arguments.
pub fn spec_of(add: AddUrl) -> Result<(UrlSpec, bool), HeaderError> {
    let headers = parse_headers(add.headers)?;
    let spec = UrlSpec {
        offer_id: add.offer,
        url: add.url,
        method: add.method.into(),
        goal: add.goal,
        statuses: add.statuses,
        body: add.body,
        content_type: add.content_type.into(),
        follow_redirects: add.follow_redirects,
        headers,
        timeout: add.timeout.map(|d| d.0),
    };
    Ok((spec, add.allow_duplicate))
}

/// The rate of `--rate` and `--burst`, checked.
fn rate_of(rate: Option<String>, burst: Option<u32>) -> anyhow::Result<Option<url_spec::RateLimit>> {
    match rate {
        Some(text) => Ok(Some(url_spec::RateLimit::parse(&text, burst).context("--rate")?)),
        None if burst.is_some() => Err(url_spec::RateError::BurstWithoutRate).context("--burst"),
        None => Ok(None),
    }
}

/// `Some(None)` when cleared, `Some(Some(v))` when given, `None` when left alone.
fn change<T>(given: Option<T>, cleared: bool) -> Option<Option<T>> {
    if cleared { Some(None) } else { given.map(Some) }
}

fn patch_of(e: EditUrl) -> Result<UrlPatch, HeaderError> {
    let headers = parse_headers(e.headers)?;
    Ok(UrlPatch {
        url: e.url,
        method: e.method.map(Into::into),
        goal: change(e.goal, e.no_goal),
        statuses: change(e.statuses, e.all_statuses),
        body: change(e.body, e.no_body),
        content_type: e.content_type.map(Into::into),
        follow_redirects: e.follow_redirects,
        headers: if e.no_headers {
            Some(vec![])
        } else {
            (!headers.is_empty()).then_some(headers)
        },
        timeout: change(e.timeout.map(|d| d.0), e.no_timeout),
    })
}

pub(super) async fn run(cmd: UrlsCommand, cfg: &Config) -> anyhow::Result<()> {
    let pool = store::pool(&cfg.database.url, 2)?;
    let service = UrlService::new(pool, cfg);
    match cmd {
        UrlsCommand::Add(mut add) => {
            // Checked first, so a bad rate adds nothing.
            let rate = rate_of(add.rate.take(), add.burst)?;
            let (spec, allow_duplicate) = spec_of(add)?;
            let id = service.add(spec, allow_duplicate).await?;
            if rate.is_some() {
                service.set_rate(id, rate).await?;
            }
            println!("{id}");
        }
        UrlsCommand::Edit(mut edit) => {
            let (id, allow_duplicate) = (edit.id, edit.allow_duplicate);
            let rate = rate_of(edit.rate.take(), edit.burst)?;
            let clear_rate = edit.no_rate;
            service.edit(id, patch_of(edit)?, allow_duplicate).await?;
            if rate.is_some() || clear_rate {
                service.set_rate(id, rate).await?;
            }
            println!("edited {id}; pending deliveries use the new settings at their next attempt");
        }
        UrlsCommand::List {
            offer,
            format,
            show_secrets,
        } => print_list(&service.list(offer.as_deref()).await?, format, show_secrets),
        UrlsCommand::Test(args) => return test_url::run(&service, args).await,
        UrlsCommand::Disable { id } => println!(
            "disabled {id}; cancelled {} pending deliveries",
            service.disable(id).await?
        ),
        UrlsCommand::Enable { id } => {
            service.enable(id).await?;
            println!("enabled {id}");
        }
        UrlsCommand::Remove { id } => println!(
            "removed {id}; cancelled {} pending deliveries",
            service.remove(id).await?
        ),
    }
    Ok(())
}

/// A header as shown: its value masked unless `show_secrets`.
pub(super) fn shown_header(name: &str, value: &str, show_secrets: bool) -> String {
    if show_secrets {
        format!("{name}: {value}")
    } else {
        format!("{name}: ***")
    }
}

/// A URL as shown: its secrets masked unless `show_secrets`.
pub(super) fn shown_url(url: &str, show_secrets: bool) -> String {
    if show_secrets {
        url.to_owned()
    } else {
        crate::mask::mask_url(url)
    }
}

fn print_list(rows: &[urls::UrlRow], format: Format, show_secrets: bool) {
    let header = [
        "id",
        "offer_id",
        "method",
        "url",
        "goal",
        "statuses",
        "content_type",
        "headers",
        "timeout_ms",
        "enabled",
        "disabled_reason",
        "rate",
    ];
    let cells: Vec<Vec<table::Cell>> = rows
        .iter()
        .map(|u| {
            vec![
                table::Cell::Int(u.id),
                table::Cell::text(&u.offer_id),
                table::Cell::text(&u.method),
                table::Cell::Text(shown_url(&u.url, show_secrets)),
                table::Cell::opt_text(u.goal.clone()),
                table::Cell::List(u.statuses.clone()),
                table::Cell::text(&u.content_type),
                table::Cell::List(
                    u.headers
                        .iter()
                        .map(|h| shown_header(&h.name, &h.value, show_secrets))
                        .collect(),
                ),
                u.timeout_ms
                    .map_or(table::Cell::Null, |t| table::Cell::Int(t.into())),
                table::Cell::Bool(u.enabled),
                table::Cell::opt_text(u.disabled_reason.clone()),
                table::Cell::opt_text(u.rate.map(|r| r.to_string())),
            ]
        })
        .collect();
    table::print(format, &header, &cells);
}

/// Reads an event file for `urls test`.
pub(super) fn read_event(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
