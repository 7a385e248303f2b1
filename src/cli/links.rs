//! `cross-postback links`: partner links, with the API's checks (`web::links`).

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};

use super::{Format, table};
use crate::config::{Config, Dur};
use crate::output::Cell;
use crate::store::{self, access};
use crate::web::links::{self, LinkError};
use crate::web::scope::LinkInput;

#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// Make a partner link; prints its full address alone on the last line.
    Create(CreateLink),
    /// List links with their scope, last use and use count.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Revoke a link: its address answers 410 from now on.
    Revoke {
        /// The link's id (see `links list`).
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct CreateLink {
    /// An affiliate it shows (repeatable); at least one affiliate or offer.
    #[arg(long = "affiliate", value_name = "ID")]
    pub affiliates: Vec<String>,
    /// An offer it shows (repeatable).
    #[arg(long = "offer", value_name = "ID")]
    pub offers: Vec<String>,
    /// The window's start: RFC 3339, YYYY-MM-DD (UTC) or a span back from now like 7d.
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// The window's end (same forms as --from).
    #[arg(long, value_name = "T", conflicts_with = "last")]
    pub to: Option<String>,
    /// A rolling window back from each visit, like 30d.
    #[arg(long, value_name = "D", conflicts_with = "from")]
    pub last: Option<String>,
    /// Columns it may show, comma-separated (default: the statistics view's without revenue).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub columns: Option<Vec<String>>,
    /// Do not allow the CSV export.
    #[arg(long)]
    pub no_export: bool,
    /// Lifetime, like 30d (the default) or 90s; at most web.max_link_lifetime.
    #[arg(long, value_name = "D")]
    pub expires: Option<String>,
    /// A label to recognise it by in `links list`.
    #[arg(long, value_name = "L")]
    pub label: Option<String>,
}

pub async fn run(cmd: LinksCommand, cfg: &Config) -> anyhow::Result<()> {
    let pool = store::pool(&cfg.database.url, 2)?;
    let client = pool.get().await.context("connecting to the database")?;
    match cmd {
        LinksCommand::Create(c) => {
            let input = LinkInput {
                affiliate_ids: c.affiliates,
                offer_ids: c.offers,
                from: c.from,
                to: c.to,
                last: c.last,
                columns: c.columns,
                export: Some(!c.no_export),
                expires: c.expires,
                label: c.label,
            };
            let made = links::create(&client, cfg, input).await.map_err(|e| match e {
                LinkError::Invalid(p) => anyhow::anyhow!("--{}: {}", flag(&p.param), p.message),
                LinkError::Store(s) => anyhow::Error::new(s),
            })?;
            eprintln!(
                "link {} expires {}; the address is shown this once:",
                made.id,
                Cell::Time(made.link.expires_at).as_text()
            );
            println!("{}", made.address);
        }
        LinksCommand::List { format } => {
            let now = Utc::now();
            let rows: Vec<Vec<Cell>> = access::list_links(&client)
                .await?
                .into_iter()
                .map(|l| {
                    let s = &l.scope;
                    vec![
                        Cell::Int(l.id),
                        Cell::opt_text(l.label.clone()),
                        Cell::text(links::state(&l, now)),
                        Cell::List(s.affiliate_ids.clone()),
                        Cell::List(s.offer_ids.clone()),
                        Cell::opt_time(s.from),
                        Cell::opt_time(s.to),
                        Cell::opt_text(s.last.map(|d| Dur(d).to_string())),
                        Cell::List(s.columns.clone()),
                        Cell::Bool(s.export),
                        Cell::Time(l.expires_at),
                        Cell::opt_time(l.last_used_at),
                        Cell::Int(l.use_count),
                    ]
                })
                .collect();
            let header = [
                "id",
                "label",
                "state",
                "affiliates",
                "offers",
                "from",
                "to",
                "last",
                "columns",
                "export",
                "expires_at",
                "last_used_at",
                "uses",
            ];
            table::print(format, &header, &rows);
        }
        LinksCommand::Revoke { id } => match access::revoke_link(&client, id).await? {
            Some(at) => println!("revoked link {id} at {}", Cell::Time(at).as_text()),
            None => anyhow::bail!("no link with id {id}"),
        },
    }
    Ok(())
}

/// The option that sets a checked field.
fn flag(param: &str) -> &str {
    match param {
        "affiliate_ids" => "affiliate",
        "offer_ids" => "offer",
        other => other,
    }
}
