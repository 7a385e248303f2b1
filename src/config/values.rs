//! Typed configuration values read from text: durations, addresses, CIDRs, the queue type.
//! Each refuses a bad value with what is allowed; the key is named by the loader.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written like `250ms`, `5s`, `2m`, `1h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Dur, String> {
        let t = s.trim();
        if t == "0" {
            // Zero needs no unit: it is how a retention or a limit is turned off.
            return Ok(Dur(Duration::ZERO));
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad_duration(s))?;
        // Saturating: a value too large for a u64 of milliseconds is refused by its key's
        // bounds, with the range, rather than here.
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

/// `quorum` (replicated) or `classic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl FromStr for QueueType {
    type Err = String;
    fn from_str(s: &str) -> Result<QueueType, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            _ => Err(format!("{s:?} is not a queue type: use quorum or classic")),
        }
    }
}

/// `http.listen` as text in the file, an address once loaded.
pub mod listen {
    use super::*;

    pub fn serialize<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(addr)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not an address like 127.0.0.1:9090 or [::1]:9090"
            ))
        })
    }
}

/// `delivery.allow_cidrs` as text in the file, networks once loaded.
pub mod cidrs {
    use super::*;

    pub fn serialize<S: Serializer>(nets: &[ipnet::IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| {
                t.trim().parse().map_err(|_| {
                    serde::de::Error::custom(format!("{t:?} is not a CIDR like 10.0.0.0/8 or fd00::/8"))
                })
            })
            .collect()
    }
}
