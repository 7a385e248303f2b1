//! The command line: subcommands → library calls; output as table, CSV or JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::store;
use crate::url_spec;

mod attempts;
mod config_show;
mod deliveries;
mod generate;
mod links;
mod publish;
mod redeliver;
mod rejected;
pub mod table;
mod test_url;
mod tokens;
mod urls;

pub use attempts::{AttemptsArgs, HttpClass, parse_time};
pub use deliveries::DeliveriesCommand;
pub use generate::Shell;
pub use links::{CreateLink, LinksCommand};
pub use publish::routing_key;
pub use redeliver::RedeliverArgs;
pub use rejected::RejectedCommand;
pub use test_url::TestUrl;
pub use tokens::TokensCommand;
pub use urls::{AddUrl, EditUrl, UrlsCommand};

/// The version `--version` prints: the package's, and the commit it was built from (`unknown`
/// when built outside git, as in the Docker build without XPB_COMMIT).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("XPB_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "cross-postback",
    version = VERSION,
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
    /// Deliveries: their state, next attempt, who superseded them, and their attempts.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Send deliveries again, as new attempts with the same idempotency key.
    Redeliver(RedeliverArgs),
    /// Invalid messages: list them, publish one again.
    #[command(subcommand)]
    Rejected(RejectedCommand),
    /// Measure this machine's broker, HTTP and database, and the pipeline end to end.
    Bench(crate::bench::BenchArgs),
    /// Apply retention once and print, per table, what it removed.
    Prune {
        /// Print what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A throwaway HTTP receiver that prints each request and answers 200.
    Receiver {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
    },
    /// The effective configuration, each value with its source; secrets masked.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (source it, or install it where your shell looks).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), e.g. `cross-postback manpage | man -l -`.
    Manpage,
    /// Serve the statistics page and the HTTP API alone (no consuming, no sending).
    Web,
    /// Admin tokens of the page and the API.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Partner links: a scoped, read-only view of the statistics for someone without a token.
    #[command(subcommand)]
    Links(LinksCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every key's value and where it came from (default, the file, or a variable).
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

impl Command {
    /// Whether the command reads the configuration (the others run without one).
    pub fn needs_config(&self) -> bool {
        !matches!(
            self,
            Command::Receiver { .. } | Command::Completions { .. } | Command::Manpage
        )
    }
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
    /// application/json
    Json,
    /// application/x-www-form-urlencoded
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
    /// Aligned columns for a terminal (times in UTC).
    Table,
    /// RFC 4180 CSV; cells that a spreadsheet would run as formulas are neutralised.
    Csv,
    /// An array of objects with typed values, keys in column order, times in RFC 3339.
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

/// Runs a subcommand that needs the configuration.
pub async fn execute(command: Command, cfg: Config, config_file: Option<PathBuf>) -> anyhow::Result<()> {
    match command {
        Command::Run => crate::run_until_signalled(cfg).await,
        Command::Migrate => {
            let pool = store::pool(&cfg.database.url, 2)?;
            let applied = store::migrate(&pool).await.context("migrating")?;
            println!("{}", store::migration_summary(&applied));
            Ok(())
        }
        Command::Urls(cmd) => urls::run(cmd, &cfg).await,
        Command::Publish(args) => publish::run(args, &cfg).await,
        Command::Attempts(args) => attempts::run(args, &cfg).await,
        Command::Deliveries(cmd) => deliveries::run(cmd, &cfg).await,
        Command::Config(ConfigCommand::Show { format }) => {
            config_show::print(&cfg, config_file.as_deref(), format)
        }
        Command::Completions { shell } => {
            generate::completions(shell);
            Ok(())
        }
        Command::Manpage => generate::manpage(),
        Command::Redeliver(args) => redeliver::run(args, &cfg).await,
        Command::Rejected(cmd) => rejected::run(cmd, &cfg).await,
        Command::Prune { dry_run } => prune(&cfg, dry_run).await,
        Command::Receiver { listen } => crate::receiver::run(listen).await,
        Command::Bench(args) => crate::bench::run(args, &cfg, config_file.as_deref()).await,
        Command::Web => crate::web::run_until_signalled(cfg).await,
        Command::Tokens(cmd) => tokens::run(cmd, &cfg).await,
        Command::Links(cmd) => links::run(cmd, &cfg).await,
    }
}

/// `prune [--dry-run]`: retention once; refused while another replica applies it.
async fn prune(cfg: &Config, dry_run: bool) -> anyhow::Result<()> {
    match crate::lifecycle::prune(&cfg.database.url, &cfg.retention, dry_run)
        .await
        .context("applying retention")?
    {
        crate::lifecycle::Outcome::Done(removed) => {
            print!("{}", crate::lifecycle::report(&removed, dry_run));
            Ok(())
        }
        crate::lifecycle::Outcome::Busy => {
            anyhow::bail!(
                "retention is being applied by another process (a daemon replica or prune); try again later"
            )
        }
    }
}

/// Checks a new URL given on the command line against the global `delivery.timeout` (see
/// [`url_spec::validate`]).
pub fn validate_url(add: AddUrl, max_timeout: std::time::Duration) -> anyhow::Result<store::urls::NewUrl> {
    Ok(url_spec::validate(urls::spec_of(add)?.0, max_timeout)?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every option and argument of every subcommand says what it is in `--help`.
    #[test]
    fn every_option_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "cross-postback", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:?}");
        Cli::command().debug_assert();
    }

    #[test]
    fn the_version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(VERSION.ends_with(')') && VERSION.contains(" ("), "{VERSION}");
    }
}
