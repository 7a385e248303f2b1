//! `cross-postback config show`: every key's effective value and where it came from.

use std::path::Path;

use super::{Format, table};
use crate::config::Config;
use crate::output::Cell;

/// Keys whose values are URLs that may carry a password or a token.
const URL_KEYS: &[&str] = &["amqp.url", "database.url"];

/// Prints `key, value, source` rows; `source` is `default`, the file, or the variable.
pub fn print(cfg: &Config, file: Option<&Path>, format: Format) -> anyhow::Result<()> {
    // Loaded again for the origins; the values are those `cfg` holds (same file, same env).
    let origins = Config::load_with_origins(file, std::env::vars())
        .map(|l| l.origins)
        .unwrap_or_default();
    let rows: Vec<Vec<Cell>> = entries(cfg)?
        .into_iter()
        .map(|(key, value)| {
            let source = origins.get(&key).cloned().unwrap_or_else(|| "default".to_owned());
            vec![Cell::Text(key), value, Cell::Text(source)]
        })
        .collect();
    table::print(format, &["key", "value", "source"], &rows);
    Ok(())
}

/// Every `section.key` in file order, with its value typed and secrets masked.
pub fn entries(cfg: &Config) -> anyhow::Result<Vec<(String, Cell)>> {
    let tree = toml::Table::try_from(cfg)?;
    let mut out = Vec::new();
    for (section, keys) in &tree {
        let toml::Value::Table(keys) = keys else {
            continue;
        };
        for (name, value) in keys {
            let key = format!("{section}.{name}");
            let cell = match value {
                toml::Value::String(s) if URL_KEYS.contains(&key.as_str()) => {
                    Cell::Text(crate::mask::mask_url(s))
                }
                // A webhook's path is its secret (Slack's /services/T…/B…/…): only the origin.
                toml::Value::String(s) if key == "alerts.webhook_url" && !s.is_empty() => {
                    Cell::Text(url::Url::parse(s).map_or_else(
                        |_| "***".to_owned(),
                        |u| format!("{}/***", u.origin().ascii_serialization()),
                    ))
                }
                toml::Value::String(s) => Cell::text(s),
                toml::Value::Integer(n) => Cell::Int(*n),
                toml::Value::Boolean(b) => Cell::Bool(*b),
                toml::Value::Array(items) => Cell::List(
                    items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect(),
                ),
                other => Cell::Text(other.to_string()),
            };
            out.push((key, cell));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_shown_and_url_passwords_are_masked() {
        let mut cfg = Config::default();
        cfg.database.url = "postgres://app:S3CRET@db.test:5432/xpb".into();
        cfg.amqp.url = "amqp://bunny:H1DDEN@mq.test:5672/%2f".into();
        cfg.alerts.webhook_url = "https://hooks.test/services/T1/B2/W3BHOOK".into();
        let entries = entries(&cfg).expect("entries");
        let text = format!("{entries:?}");
        assert!(!text.contains("S3CRET") && !text.contains("H1DDEN"), "{text}");
        assert!(
            !text.contains("W3BHOOK") && text.contains("https://hooks.test/***"),
            "{text}"
        );
        assert!(text.contains("app:***@db.test"), "{text}");
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        for key in [
            "amqp.prefetch",
            "delivery.retry_schedule",
            "log.level",
            "http.listen",
            "web.listen",
            "retention.attempts",
            "amqp.mode",
            "alerts.failure_ratio",
        ] {
            assert!(keys.contains(&key), "{key} missing: {keys:?}");
        }
        let schedule = entries
            .iter()
            .find(|(k, _)| k == "delivery.retry_schedule")
            .map(|(_, v)| v.clone());
        assert!(matches!(schedule, Some(Cell::List(l)) if l.first().map(String::as_str) == Some("5s")));
    }
}
