//! `cross-postback tokens`: admin tokens of the page and the API.

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;

use super::{Format, table};
use crate::config::{Config, Dur};
use crate::output::Cell;
use crate::store::{self, access};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token; prints it alone on stdout, this once (only its hash is kept).
    Create {
        /// Who or what it is for.
        #[arg(long, value_name = "N")]
        name: String,
        /// Lifetime, like 90d or 12h (default: until revoked).
        #[arg(long, value_name = "D")]
        expires: Option<Dur>,
    },
    /// List tokens (never their text).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (see `tokens list`).
        id: i64,
    },
}

pub async fn run(cmd: TokensCommand, cfg: &Config) -> anyhow::Result<()> {
    let pool = store::pool(&cfg.database.url, 2)?;
    let client = pool.get().await.context("connecting to the database")?;
    match cmd {
        TokensCommand::Create { name, expires } => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty(), "--name: give the token a name");
            let expires_at = expires
                .map(|d| {
                    chrono::Duration::from_std(d.0)
                        .ok()
                        .and_then(|d| Utc::now().checked_add_signed(d))
                        .context("--expires: too far in the future")
                })
                .transpose()?;
            let (id, raw) = access::create_token(&client, name, expires_at).await?;
            eprintln!("token {id} ({name}); shown this once, keep it secret");
            println!("{raw}");
        }
        TokensCommand::List { format } => {
            let now = Utc::now();
            let rows: Vec<Vec<Cell>> = access::list_tokens(&client)
                .await?
                .into_iter()
                .map(|t| {
                    let state = match (t.revoked_at, t.expires_at) {
                        (Some(_), _) => "revoked",
                        (None, Some(e)) if e <= now => "expired",
                        _ => "active",
                    };
                    vec![
                        Cell::Int(t.id),
                        Cell::Text(t.name),
                        Cell::text(state),
                        Cell::Time(t.created_at),
                        Cell::opt_time(t.expires_at),
                        Cell::opt_time(t.last_used_at),
                        Cell::opt_time(t.revoked_at),
                    ]
                })
                .collect();
            let header = [
                "id",
                "name",
                "state",
                "created_at",
                "expires_at",
                "last_used_at",
                "revoked_at",
            ];
            table::print(format, &header, &rows);
        }
        TokensCommand::Revoke { id } => match access::revoke_token(&client, id).await? {
            Some(at) => println!("revoked token {id} at {}", Cell::Time(at).as_text()),
            None => anyhow::bail!("no token with id {id}"),
        },
    }
    Ok(())
}
