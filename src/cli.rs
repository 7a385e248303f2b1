//! The command line (SPEC §7): subcommands → library calls; output as table, CSV or JSON.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Dur};
use crate::event::Status;
use crate::store::{self, stats, urls};
use crate::url_spec::{self, UrlSpec};

mod publish;
mod redeliver;
mod rejected;
mod table;

pub use publish::routing_key;
pub use redeliver::RedeliverArgs;
pub use rejected::RejectedCommand;

#[derive(Debug, Parser)]
#[command(
    name = "cross-postback",
    version,
    about = "Delivers affiliate conversion cross-postbacks from RabbitMQ events, recorded in Postgres"
)]
pub struct Cli {
    /// Configuration file (over XPB_CONFIG); see config/default.toml for every key.
    #[arg(long, global = true, env = "XPB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: migrate, declare the topology, consume, deliver, retry.
    Run,
    /// Apply the schema migrations.
    Migrate,
    /// Manage cross-postback URLs.
    #[command(subcommand)]
    Urls(UrlsCommand),
    /// Publish events, one JSON document per line, with publisher confirms.
    Publish(PublishArgs),
    /// Show attempts, like Statistics > Cross-postbacks.
    Attempts(AttemptsArgs),
    /// Send deliveries again, as new attempts with the same idempotency key.
    Redeliver(RedeliverArgs),
    /// Invalid messages: list them, publish one again.
    #[command(subcommand)]
    Rejected(RejectedCommand),
    /// Measure this machine's broker, HTTP and database, and the pipeline end to end.
    Bench(crate::bench::BenchArgs),
    /// A throwaway HTTP receiver that prints each request and answers 200.
    Receiver {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub enum UrlsCommand {
    /// Add a URL (validates the template); prints its id.
    Add(AddUrl),
    /// List URLs (secrets in them masked).
    List {
        #[arg(long, value_name = "ID")]
        offer: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Show the URLs' tokens, keys and passwords instead of ***.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Disable a URL; its pending deliveries are cancelled.
    Disable { id: i64 },
    /// Enable a URL again (cancelled deliveries stay cancelled).
    Enable { id: i64 },
    /// Remove a URL; its attempts are kept.
    Remove { id: i64 },
}

#[derive(Debug, Args)]
pub struct AddUrl {
    #[arg(long, value_name = "ID")]
    pub offer: String,
    /// URL template with macros such as {clickid}, {status}, {sum}.
    #[arg(long, value_name = "TEMPLATE")]
    pub url: String,
    #[arg(long, value_enum, default_value_t = HttpMethod::Get)]
    pub method: HttpMethod,
    /// Only conversions with this goal (case-insensitive).
    #[arg(long)]
    pub goal: Option<String>,
    /// Only these statuses, comma-separated (approved, declined, pending).
    #[arg(long, value_delimiter = ',')]
    pub statuses: Option<Vec<String>>,
    /// POST body template (JSON by default; see --content-type).
    #[arg(long, value_name = "TEMPLATE")]
    pub body: Option<String>,
    #[arg(long, value_enum, default_value_t = ContentType::Json)]
    pub content_type: ContentType,
    /// Follow up to 3 redirects.
    #[arg(long)]
    pub follow_redirects: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HttpMethod {
    #[value(name = "GET", alias = "get")]
    Get,
    #[value(name = "POST", alias = "post")]
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContentType {
    Json,
    Form,
}

impl From<HttpMethod> for url_spec::Method {
    fn from(m: HttpMethod) -> url_spec::Method {
        match m {
            HttpMethod::Get => url_spec::Method::Get,
            HttpMethod::Post => url_spec::Method::Post,
        }
    }
}

impl From<ContentType> for url_spec::ContentType {
    fn from(c: ContentType) -> url_spec::ContentType {
        match c {
            ContentType::Json => url_spec::ContentType::Json,
            ContentType::Form => url_spec::ContentType::Form,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// File of events, one per line; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
    /// Routing key for every message (default conversion.<status>).
    #[arg(long, value_name = "K")]
    pub routing_key: Option<String>,
    /// Validate each line as the daemon would and publish nothing; exit 1 if any is invalid.
    #[arg(long, conflicts_with_all = ["routing_key", "declare"])]
    pub check: bool,
    /// Declare the daemon's exchanges, queues and bindings first (by default the exchange
    /// must exist).
    #[arg(long)]
    pub declare: bool,
}

#[derive(Debug, Args)]
pub struct AttemptsArgs {
    #[arg(long, value_name = "ID")]
    pub offer: Option<String>,
    #[arg(long, value_name = "ID")]
    pub affiliate: Option<String>,
    #[arg(long, value_name = "ID")]
    pub conversion: Option<String>,
    /// The conversion status (approved, pending, declined).
    #[arg(long, value_name = "S")]
    pub status: Option<String>,
    /// Only deliveries in state `failed`.
    #[arg(long)]
    pub failed: bool,
    /// RFC 3339, YYYY-MM-DD (UTC) or a span back from now like 2h.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Columns to show, comma-separated (default: the statistics view's).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

/// Runs a subcommand that needs the configuration.
pub async fn execute(command: Command, cfg: Config, config_file: Option<PathBuf>) -> anyhow::Result<()> {
    match command {
        Command::Run => crate::run_until_signalled(cfg).await,
        Command::Migrate => {
            let pool = store::pool(&cfg.database.url, 2)?;
            let applied = store::migrate(&pool).await.context("migrating")?;
            println!("migrations applied: {applied:?}");
            Ok(())
        }
        Command::Urls(cmd) => urls_command(cmd, &cfg).await,
        Command::Publish(args) => publish::run(args, &cfg).await,
        Command::Attempts(args) => attempts(args, &cfg).await,
        Command::Redeliver(args) => redeliver::run(args, &cfg).await,
        Command::Rejected(cmd) => rejected::run(cmd, &cfg).await,
        Command::Receiver { listen } => crate::receiver::run(listen).await,
        Command::Bench(args) => crate::bench::run(args, &cfg, config_file.as_deref()).await,
    }
}

async fn urls_command(cmd: UrlsCommand, cfg: &Config) -> anyhow::Result<()> {
    let pool = store::pool(&cfg.database.url, 2)?;
    let mut client = pool.get().await.context("connecting to the database")?;
    match cmd {
        UrlsCommand::Add(add) => {
            let new = validate_url(add)?;
            let id = urls::add(&client, &new).await?;
            println!("{id}");
        }
        UrlsCommand::List {
            offer,
            format,
            show_secrets,
        } => {
            let rows = urls::list(&client, offer.as_deref()).await?;
            let shown = |url: &str| {
                if show_secrets {
                    url.to_owned()
                } else {
                    crate::mask::mask_url(url)
                }
            };
            let header = [
                "id",
                "offer_id",
                "method",
                "url",
                "goal",
                "statuses",
                "content_type",
                "enabled",
            ];
            let cells: Vec<Vec<Option<String>>> = rows
                .iter()
                .map(|u| {
                    vec![
                        Some(u.id.to_string()),
                        Some(u.offer_id.clone()),
                        Some(u.method.clone()),
                        Some(shown(&u.url)),
                        u.goal.clone(),
                        Some(u.statuses.join(",")),
                        Some(u.content_type.clone()),
                        Some(u.enabled.to_string()),
                    ]
                })
                .collect();
            table::print(format, &header, &cells, &["id"]);
        }
        UrlsCommand::Disable { id } => println!(
            "disabled {id}; cancelled {} pending deliveries",
            urls::set_enabled(&mut client, id, false).await?
        ),
        UrlsCommand::Enable { id } => {
            urls::set_enabled(&mut client, id, true).await?;
            println!("enabled {id}");
        }
        UrlsCommand::Remove { id } => println!(
            "removed {id}; cancelled {} pending deliveries",
            urls::remove(&mut client, id).await?
        ),
    }
    Ok(())
}

/// Checks a new URL given on the command line (see [`url_spec::validate`]).
pub fn validate_url(add: AddUrl) -> anyhow::Result<urls::NewUrl> {
    Ok(url_spec::validate(UrlSpec {
        offer_id: add.offer,
        url: add.url,
        method: add.method.into(),
        goal: add.goal,
        statuses: add.statuses,
        body: add.body,
        content_type: add.content_type.into(),
        follow_redirects: add.follow_redirects,
    })?)
}

async fn attempts(args: AttemptsArgs, cfg: &Config) -> anyhow::Result<()> {
    let columns: Vec<String> = args
        .columns
        .unwrap_or_else(|| stats::DEFAULT_COLUMNS.iter().map(|c| (*c).to_owned()).collect());
    stats::check_columns(&columns).map_err(|e| anyhow::anyhow!("--columns: {e}"))?;
    let now = Utc::now();
    let filter = stats::Filter {
        offer: args.offer,
        affiliate: args.affiliate,
        conversion: args.conversion,
        status: args
            .status
            .map(|s| Status::parse(&s).map(|st| st.as_str().to_owned()).unwrap_or(s)),
        failed: args.failed,
        since: args
            .since
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()
            .context("--since")?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()
            .context("--until")?,
        limit: args.limit,
    };
    let pool = store::pool(&cfg.database.url, 2)?;
    let client = pool.get().await.context("connecting to the database")?;
    let rows = stats::attempts(&client, &columns, &filter).await?;
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    table::print(args.format, &header, &rows, stats::NUMERIC_COLUMNS);
    Ok(())
}

/// RFC 3339, `YYYY-MM-DD` (UTC midnight), or a span back from `now` like `2h`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = crate::event::parse_timestamp(text) {
        return Ok(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(span) = text.parse::<Dur>() {
        return Ok(now - chrono::Duration::from_std(span.0)?);
    }
    bail!("{text:?} is not a time: use RFC 3339, YYYY-MM-DD or a span like 2h")
}
