//! Layered settings (SPEC §8), validated once at start.
//!
//! Highest first: `XPB_<SECTION>__<KEY>` variables; `DATABASE_URL` / `AMQP_URL`; the file
//! named by `--config` (or `XPB_CONFIG`); the compiled-in defaults, which
//! `config/default.toml` documents (a test keeps the two equal). An unknown key, or a value
//! of the wrong shape, is an error that names the key and what is allowed.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod defaults;

/// A start-up error: one line naming the key and what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub amqp: Amqp,
    pub database: Database,
    pub delivery: Delivery,
    pub run: Run,
    pub http: Http,
    pub log: Log,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amqp {
    pub url: String,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
    pub queue_type: QueueType,
    pub prefetch: u16,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub max_message_bytes: usize,
    /// Most messages decided and logged in one database transaction.
    pub batch_size: usize,
    /// Intake lanes: conversions are spread over them, each commits its batches in turn.
    pub lanes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Quorum,
    Classic,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    pub pool_size: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub concurrency: usize,
    pub per_host_concurrency: usize,
    pub connect_timeout: Dur,
    pub timeout: Dur,
    pub retry_schedule: Vec<Dur>,
    pub allow_private_networks: bool,
    pub allow_cidrs: Vec<String>,
    pub poll_interval: Dur,
    pub lease: Dur,
    pub max_response_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub shutdown_timeout: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub listen: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A duration written like `250ms`, `5s`, `2m`, `1h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Dur, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad_duration(s))?;
        let ms = match unit {
            "ms" => n,
            "s" => n.saturating_mul(1_000),
            "m" => n.saturating_mul(60_000),
            "h" => n.saturating_mul(3_600_000),
            "d" => n.saturating_mul(86_400_000),
            _ => return Err(bad_duration(s)),
        };
        Ok(Dur(Duration::from_millis(ms)))
    }
}

fn bad_duration(s: &str) -> String {
    format!("invalid duration {s:?}: use a whole number with ms, s, m, h or d, like 5s or 250ms")
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
        for (size, unit) in units {
            if ms != 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Loads the layers from `file` and the given environment, then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = toml::Table::try_from(Config::default())
            .map_err(|e| err(format!("defaults do not serialise: {e}")))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            let layer: toml::Table = toml::from_str(&text)
                .map_err(|e| err(format!("{} is not valid TOML: {}", path.display(), e.message())))?;
            merge_file(&mut tree, layer, path)?;
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        for (name, key) in [("DATABASE_URL", "database.url"), ("AMQP_URL", "amqp.url")] {
            if let Some((_, v)) = env.iter().find(|(k, _)| k == name) {
                set_from_text(&mut tree, key, v, name)?;
            }
        }
        for (name, value) in &env {
            // Only XPB_<SECTION>__<KEY> names configuration; other XPB_ variables (XPB_CONFIG,
            // the scripts' XPB_SKIP_SERVICES, the tests' XPB_TEST_…) are not keys.
            let Some(rest) = name.strip_prefix("XPB_") else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let key = rest.to_ascii_lowercase().replacen("__", ".", 1);
            set_from_text(&mut tree, &key, value, name)?;
        }
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
            let inner = e.inner().to_string();
            let first = inner.lines().next().unwrap_or_default().to_owned();
            err(format!("`{}`: {first}", e.path()))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("amqp.prefetch", self.amqp.prefetch as usize),
            ("amqp.max_message_bytes", self.amqp.max_message_bytes),
            ("amqp.batch_size", self.amqp.batch_size),
            ("amqp.lanes", self.amqp.lanes),
            ("database.pool_size", self.database.pool_size),
            ("delivery.concurrency", self.delivery.concurrency),
            (
                "delivery.per_host_concurrency",
                self.delivery.per_host_concurrency,
            ),
            ("delivery.max_response_bytes", self.delivery.max_response_bytes),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(err(format!("`{key}` must be at least 1")));
            }
        }
        // Each lane holds a connection while it commits; dispatch needs at least two more.
        if self.database.pool_size < self.amqp.lanes + 2 {
            return Err(err(format!(
                "`database.pool_size` ({}) must be at least `amqp.lanes` ({}) + 2",
                self.database.pool_size, self.amqp.lanes
            )));
        }
        for (key, d) in [
            ("delivery.connect_timeout", self.delivery.connect_timeout),
            ("delivery.timeout", self.delivery.timeout),
            ("delivery.poll_interval", self.delivery.poll_interval),
        ] {
            if d.0.is_zero() {
                return Err(err(format!("`{key}` must be longer than 0")));
            }
        }
        // A claimed delivery may wait for a free slot before it starts, and its attempt may
        // take connect_timeout + timeout: the lease must cover both with room to spare.
        if self.delivery.lease.0 < (self.delivery.timeout.0 + self.delivery.connect_timeout.0) * 2 {
            return Err(err(format!(
                "`delivery.lease` ({}) must be at least twice `delivery.timeout` plus `delivery.connect_timeout`",
                self.delivery.lease
            )));
        }
        for cidr in &self.delivery.allow_cidrs {
            cidr.parse::<ipnet::IpNet>().map_err(|_| {
                err(format!(
                    "`delivery.allow_cidrs`: {cidr:?} is not a CIDR like 10.0.0.0/8 or fd00::/8"
                ))
            })?;
        }
        self.http.listen.parse::<SocketAddr>().map_err(|_| {
            err(format!(
                "`http.listen`: {:?} is not an address like 127.0.0.1:9090",
                self.http.listen
            ))
        })?;
        tokio_postgres::Config::from_str(&self.database.url)
            .map_err(|e| err(format!("`database.url` is not a Postgres URL: {e}")))?;
        if !(self.amqp.url.starts_with("amqp://") || self.amqp.url.starts_with("amqps://")) {
            return Err(err("`amqp.url` must start with amqp:// or amqps://"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            err(format!(
                "`log.level` {:?} is not a level or filter like info or cross_postback=debug: {e}",
                self.log.level
            ))
        })?;
        Ok(())
    }

    pub fn http_listen(&self) -> SocketAddr {
        // Checked by validate().
        self.http
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9090)))
    }

    pub fn retry_schedule(&self) -> crate::retry::Schedule {
        crate::retry::Schedule::new(self.delivery.retry_schedule.iter().map(|d| d.0).collect())
    }

    pub fn allow_cidrs(&self) -> Vec<ipnet::IpNet> {
        self.delivery
            .allow_cidrs
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    }
}

/// Merges a file layer, refusing keys the defaults do not have.
fn merge_file(tree: &mut toml::Table, layer: toml::Table, path: &Path) -> Result<(), ConfigError> {
    for (section, value) in layer {
        let Some(toml::Value::Table(target)) = tree.get_mut(&section) else {
            return Err(err(format!("{}: unknown section `{section}`", path.display())));
        };
        let toml::Value::Table(keys) = value else {
            return Err(err(format!("{}: `{section}` must be a table", path.display())));
        };
        for (key, v) in keys {
            if !target.contains_key(&key) {
                return Err(err(format!("{}: unknown key `{section}.{key}`", path.display())));
            }
            target.insert(key, v);
        }
    }
    Ok(())
}

/// Sets `section.key` from an environment variable's text, typed like the default.
fn set_from_text(tree: &mut toml::Table, key: &str, text: &str, var: &str) -> Result<(), ConfigError> {
    let (section, name) = key.split_once('.').unwrap_or((key, ""));
    let slot = match tree.get_mut(section) {
        Some(toml::Value::Table(t)) => t.get_mut(name),
        _ => None,
    };
    let Some(slot) = slot else {
        return Err(err(format!("{var}: unknown key `{key}`")));
    };
    let value = match slot {
        toml::Value::Boolean(_) => match text.trim() {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" => toml::Value::Boolean(false),
            _ => {
                return Err(err(format!(
                    "{var} (`{key}`) must be true or false, got {text:?}"
                )));
            }
        },
        toml::Value::Integer(_) => text
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| err(format!("{var} (`{key}`) must be a whole number, got {text:?}")))?,
        toml::Value::Array(_) => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        _ => toml::Value::String(text.to_owned()),
    };
    *slot = value;
    Ok(())
}

#[cfg(test)]
mod tests;
