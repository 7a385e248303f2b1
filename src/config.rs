//! Layered settings (docs/configuration.md), validated once at start.
//!
//! Highest first: `XPB_<SECTION>__<KEY>` variables; `DATABASE_URL` / `AMQP_URL`; the file
//! named by `--config` (or `XPB_CONFIG`); the compiled-in defaults, which
//! `config/default.toml` documents (a test keeps the two equal). An unknown key, a value of the
//! wrong shape or out of its range, is an error that names the key, where its value came from,
//! and what is allowed. Once loaded, every value is typed and within its bounds, so the
//! accessors cannot fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod bounds;
mod defaults;
mod values;

pub use bounds::{MAX_LEASE, MAX_RETRY_STEP};
pub use values::{Dur, QueueType};

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
    pub web: Web,
    pub retention: Retention,
    pub alerts: Alerts,
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
    /// `shared` (one queue) or `ordered` (sharded by conversion, one active consumer a shard).
    pub mode: AmqpMode,
    /// Shard queues `<queue>.<n>` in ordered mode.
    pub shards: usize,
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
    #[serde(with = "values::cidrs")]
    pub allow_cidrs: Vec<ipnet::IpNet>,
    pub poll_interval: Dur,
    pub lease: Dur,
    pub max_response_bytes: usize,
    /// A URL whose attempts have all failed this long (and at least 20 times) is disabled;
    /// zero never disables.
    pub disable_after: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub shutdown_timeout: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(with = "values::listen")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

/// The statistics page, partner links and the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    pub enabled: bool,
    #[serde(with = "values::listen")]
    pub listen: SocketAddr,
    /// The address partner links are built on; empty means `http://` + `listen`.
    pub public_url: String,
    /// Longest expiry a partner link may be given.
    pub max_link_lifetime: Dur,
}

/// How long records are kept; zero keeps them forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub attempts: Dur,
    pub deliveries: Dur,
    pub conversions: Dur,
    pub rejected: Dur,
    /// How often the daemon applies retention.
    pub interval: Dur,
}

/// Announcements of URLs disabled or failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// Where alerts are POSTed as JSON; empty sends none.
    pub webhook_url: String,
    /// A URL's share of 2xx attempts over an hour under this is announced.
    pub failure_ratio: f64,
}

/// How the daemon consumes: one shared queue, or shards by conversion id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmqpMode {
    Shared,
    Ordered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A loaded configuration with where each value came from, and warnings for the operator.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `section.key` → the file or variable that set it; a key not here has its default.
    pub origins: HashMap<String, String>,
    /// Variables that look like configuration but are not (each named, once).
    pub warnings: Vec<String>,
}

/// `XPB_` variables that are not configuration keys: the config file's, the build's, and the
/// scripts' and tests' (by prefix).
const NOT_KEYS: &[&str] = &[
    "XPB_CONFIG",
    "XPB_COMMIT",
    "XPB_SKIP_SERVICES",
    "XPB_SERVICES_TIMEOUT",
    "XPB_RABBITMQ_MAX_MESSAGE_SIZE",
];
const NOT_KEY_PREFIXES: &[&str] = &["XPB_TEST_", "XPB_CHAOS_"];

impl Config {
    /// Loads the layers from `file` and the given environment, then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::load_with_origins(file, env).map(|l| l.config)
    }

    /// [`Config::load`], keeping where each value came from and warnings about variables.
    pub fn load_with_origins(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut tree = toml::Table::try_from(Config::default())
            .map_err(|e| err(format!("defaults do not serialise: {e}")))?;
        // Where each key's value came from, for the messages.
        let mut origins = Origins::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            let layer: toml::Table = toml::from_str(&text)
                .map_err(|e| err(format!("{} is not valid TOML: {}", path.display(), e.message())))?;
            merge_file(&mut tree, layer, path, &mut origins)?;
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        for (name, key) in [("DATABASE_URL", "database.url"), ("AMQP_URL", "amqp.url")] {
            if let Some((_, v)) = env.iter().find(|(k, _)| k == name) {
                set_from_text(&mut tree, key, v, name)?;
                origins.insert(key.to_owned(), name.to_owned());
            }
        }
        let mut warnings = Vec::new();
        for (name, value) in &env {
            // Only XPB_<SECTION>__<KEY> names configuration; other XPB_ variables (XPB_CONFIG,
            // the scripts' XPB_SKIP_SERVICES, the tests' XPB_TEST_…) are not keys.
            let Some(rest) = name.strip_prefix("XPB_") else {
                continue;
            };
            if !rest.contains("__") {
                warnings.extend(stray_variable(name, &tree));
                continue;
            }
            let key = rest.to_ascii_lowercase().replacen("__", ".", 1);
            set_from_text(&mut tree, &key, value, name)?;
            origins.insert(key, name.clone());
        }
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
            let inner = e.inner().to_string();
            let first = inner.lines().next().unwrap_or_default().to_owned();
            let path = e.path().to_string();
            let key = path.split('[').next().unwrap_or_default();
            err(format!("`{path}`{}: {first}", from(&origins, key)))
        })?;
        config.check().map_err(|bad| {
            err(format!(
                "`{}`{}: {}",
                bad.key,
                from(&origins, bad.key),
                bad.message
            ))
        })?;
        Ok(Loaded {
            config,
            origins,
            warnings,
        })
    }

    /// Checks what the types alone cannot: ranges, and values that must agree.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check()
            .map_err(|bad| err(format!("`{}`: {}", bad.key, bad.message)))
    }

    pub fn http_listen(&self) -> SocketAddr {
        self.http.listen
    }

    /// The retry schedule. Each step is at most [`MAX_RETRY_STEP`] (checked at load; clamped
    /// here too, so that a configuration built in code cannot make `now() + delay` overflow).
    pub fn retry_schedule(&self) -> crate::retry::Schedule {
        crate::retry::Schedule::new(
            self.delivery
                .retry_schedule
                .iter()
                .map(|d| d.0.min(MAX_RETRY_STEP))
                .collect(),
        )
    }

    pub fn allow_cidrs(&self) -> Vec<ipnet::IpNet> {
        self.delivery.allow_cidrs.clone()
    }

    /// The address partner links are built on, without a trailing slash.
    pub fn web_public_url(&self) -> String {
        let configured = self.web.public_url.trim().trim_end_matches('/');
        if configured.is_empty() {
            format!("http://{}", self.web.listen)
        } else {
            configured.to_owned()
        }
    }

    /// The alert webhook, if one is configured.
    pub fn alerts_webhook_url(&self) -> Option<&str> {
        Some(self.alerts.webhook_url.trim()).filter(|u| !u.is_empty())
    }
}

/// Key → the variable or file its value came from.
type Origins = HashMap<String, String>;

fn from(origins: &Origins, key: &str) -> String {
    origins
        .get(key)
        .map(|o| format!(" (from {o})"))
        .unwrap_or_default()
}

/// A warning for an `XPB_` variable with one underscore where a key has two (or none at all),
/// which would otherwise be ignored in silence; `None` for the variables that are not keys.
fn stray_variable(name: &str, tree: &toml::Table) -> Option<String> {
    if NOT_KEYS.contains(&name) || NOT_KEY_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return None;
    }
    let rest = name.strip_prefix("XPB_").unwrap_or(name).to_ascii_lowercase();
    // XPB_DELIVERY_TIMEOUT: the section, one underscore, the key.
    let meant = tree.iter().find_map(|(section, keys)| {
        let key = rest.strip_prefix(section.as_str())?.strip_prefix('_')?;
        let known = matches!(keys, toml::Value::Table(t) if t.contains_key(key));
        known.then(|| {
            format!(
                "XPB_{}__{}",
                section.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            )
        })
    });
    Some(match meant {
        Some(m) => format!("{name} is not a configuration variable and is ignored: did you mean {m}?"),
        None => format!(
            "{name} is not a configuration variable and is ignored: keys are XPB_<SECTION>__<KEY>, two underscores"
        ),
    })
}

/// Merges a file layer, refusing keys the defaults do not have.
fn merge_file(
    tree: &mut toml::Table,
    layer: toml::Table,
    path: &Path,
    origins: &mut Origins,
) -> Result<(), ConfigError> {
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
            origins.insert(format!("{section}.{key}"), path.display().to_string());
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
        toml::Value::Float(_) => text
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| err(format!("{var} (`{key}`) must be a number, got {text:?}")))?,
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
