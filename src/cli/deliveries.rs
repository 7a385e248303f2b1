//! `cross-postback deliveries list|show`: what became of each conversion's postback.

use anyhow::{Context, bail};
use clap::Subcommand;
use clap::builder::TypedValueParser;

use super::{Format, table};
use crate::config::Config;
use crate::output::Cell;
use crate::store::dispatch::DeliveryState;
use crate::store::{self, deliveries};

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// Only this offer's.
        #[arg(long, value_name = "ID")]
        offer: Option<String>,
        /// Only this conversion's.
        #[arg(long, value_name = "ID")]
        conversion: Option<String>,
        /// Only this URL's (its id, see `urls list`).
        #[arg(long = "url", value_name = "ID")]
        url_id: Option<i64>,
        /// Only deliveries in this state.
        #[arg(long, value_parser = state_arg())]
        state: Option<DeliveryState>,
        /// Most deliveries shown.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One delivery: its state, next attempt, who superseded it, and every attempt.
    Show {
        /// The delivery's id (see `deliveries list` or `attempts --columns delivery_id,…`).
        id: i64,
        /// Output format (csv lists the attempts only).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `--state`: one of the delivery states (clap lists them when another word is given).
fn state_arg() -> impl TypedValueParser<Value = DeliveryState> {
    clap::builder::PossibleValuesParser::new(DeliveryState::ALL.map(DeliveryState::as_str))
        .try_map(|text| DeliveryState::parse(&text).ok_or_else(|| format!("{text:?} is not a state")))
}

const LIST_HEADER: [&str; 8] = [
    "id",
    "conversion_id",
    "offer_id",
    "url_id",
    "status",
    "state",
    "attempts",
    "next_attempt_at",
];

const ATTEMPT_HEADER: [&str; 8] = [
    "attempt",
    "sent_at",
    "method",
    "http_code",
    "error_code",
    "duration_ms",
    "error",
    "response_excerpt",
];

pub async fn run(cmd: DeliveriesCommand, cfg: &Config) -> anyhow::Result<()> {
    let pool = store::pool(&cfg.database.url, 2)?;
    let client = pool.get().await.context("connecting to the database")?;
    match cmd {
        DeliveriesCommand::List {
            offer,
            conversion,
            url_id,
            state,
            limit,
            format,
        } => {
            let filter = deliveries::Filter {
                offer,
                conversion,
                url_id,
                state: state.map(|s| s.as_str().to_owned()),
                limit,
            };
            let rows: Vec<Vec<Cell>> = deliveries::list(&client, &filter)
                .await?
                .iter()
                .map(list_row)
                .collect();
            table::print(format, &LIST_HEADER, &rows);
        }
        DeliveriesCommand::Show { id, format } => {
            let Some(shown) = deliveries::show(&client, id).await? else {
                bail!("no delivery with id {id}");
            };
            print!("{}", render_show(&shown, format));
        }
    }
    Ok(())
}

fn list_row(d: &deliveries::Delivery) -> Vec<Cell> {
    vec![
        Cell::Int(d.id),
        Cell::text(&d.conversion_id),
        Cell::text(&d.offer_id),
        Cell::Int(d.url_id),
        Cell::text(&d.status),
        Cell::text(&d.state),
        Cell::Int(i64::from(d.attempts)),
        Cell::opt_time(d.next_attempt_at),
    ]
}

fn attempt_row(a: &deliveries::Attempt) -> Vec<Cell> {
    vec![
        Cell::Int(i64::from(a.attempt)),
        Cell::Time(a.sent_at),
        Cell::text(&a.method),
        a.http_code.map_or(Cell::Null, |c| Cell::Int(i64::from(c))),
        Cell::opt_text(a.error_code.clone()),
        Cell::Int(i64::from(a.duration_ms)),
        Cell::opt_text(a.error.clone()),
        Cell::opt_text(a.response_excerpt.clone()),
    ]
}

/// A delivery as text (its fields, then its attempts as a table), CSV (the attempts) or one
/// JSON object.
pub fn render_show(shown: &deliveries::Shown, format: Format) -> String {
    let d = &shown.delivery;
    let attempts: Vec<Vec<Cell>> = shown.attempts.iter().map(attempt_row).collect();
    let superseded_by = shown.superseded_by.map_or(Cell::Null, Cell::Int);
    let fields: Vec<(&str, Cell)> = LIST_HEADER
        .iter()
        .copied()
        .zip(list_row(d))
        .chain([
            ("superseded_by", superseded_by),
            ("created_at", Cell::Time(d.created_at)),
            ("updated_at", Cell::Time(d.updated_at)),
        ])
        .collect();
    match format {
        Format::Csv => table::render(format, &ATTEMPT_HEADER, &attempts, &|_| None),
        Format::Json => {
            let mut parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}: {}", serde_json::Value::from(*k), v.to_json()))
                .collect();
            let objects: Vec<String> = attempts
                .iter()
                .map(|row| {
                    let kv: Vec<String> = ATTEMPT_HEADER
                        .iter()
                        .zip(row)
                        .map(|(k, v)| format!("{}: {}", serde_json::Value::from(*k), v.to_json()))
                        .collect();
                    format!("{{{}}}", kv.join(", "))
                })
                .collect();
            parts.push(format!("\"attempts\": [{}]", objects.join(", ")));
            format!("{{{}}}\n", parts.join(", "))
        }
        Format::Table => {
            let mut out = String::new();
            for (k, v) in &fields {
                let text = match v {
                    Cell::Null => "-".to_owned(),
                    other => crate::output::printable(&other.as_text()).into_owned(),
                };
                out += &format!("{k:<16}{text}\n");
            }
            out += "\n";
            if attempts.is_empty() {
                out += "no attempts\n";
            } else {
                out += &table::render(format, &ATTEMPT_HEADER, &attempts, &|c| {
                    (c == "error" || c == "response_excerpt").then_some(60)
                });
            }
            out
        }
    }
}
