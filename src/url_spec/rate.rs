//! A URL's rate limit: `N/s` or `N/m`, with a burst (pure).

use std::fmt;

/// The most requests a rate or a burst may name.
const MAX: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
}

impl Per {
    /// As stored in `cross_postback_urls.rate_unit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Per::Second => "s",
            Per::Minute => "m",
        }
    }

    pub fn from_stored(text: &str) -> Per {
        if text == "m" { Per::Minute } else { Per::Second }
    }
}

/// At most `count` requests per second or minute, `burst` of them at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Per,
    pub burst: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("rate {0:?}: expected N/s or N/m with N from 1 to 100000 (for example 50/s)")]
    Rate(String),
    #[error("burst {0}: expected 1 to 100000")]
    Burst(u32),
    #[error("burst given without a rate (pass --rate N/s or N/m)")]
    BurstWithoutRate,
}

impl RateLimit {
    /// Parses `N/s` or `N/m` (`sec`, `second`, `min`, `minute` too); the burst defaults to one
    /// second's worth, rounded up (N for `/s`).
    pub fn parse(text: &str, burst: Option<u32>) -> Result<RateLimit, RateError> {
        let bad = || RateError::Rate(text.to_owned());
        let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Per::Second,
            "m" | "min" | "minute" => Per::Minute,
            _ => return Err(bad()),
        };
        if !(1..=MAX).contains(&count) {
            return Err(bad());
        }
        let burst = burst.unwrap_or(match per {
            Per::Second => count,
            Per::Minute => count.div_ceil(60),
        });
        if !(1..=MAX).contains(&burst) {
            return Err(RateError::Burst(burst));
        }
        Ok(RateLimit { count, per, burst })
    }

    /// Requests a second.
    pub fn per_second(&self) -> f64 {
        match self.per {
            Per::Second => f64::from(self.count),
            Per::Minute => f64::from(self.count) / 60.0,
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} burst {}", self.count, self.per.as_str(), self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_their_default_burst_or_are_refused() {
        let ok = |count, per, burst| Ok(RateLimit { count, per, burst });
        let cases: &[(&str, Option<u32>, Result<RateLimit, RateError>)] = &[
            ("20/s", None, ok(20, Per::Second, 20)),
            ("20/s", Some(5), ok(20, Per::Second, 5)),
            (" 50 / sec ", None, ok(50, Per::Second, 50)),
            ("90/m", None, ok(90, Per::Minute, 2)),
            ("1/minute", None, ok(1, Per::Minute, 1)),
            ("120/M", Some(10), ok(120, Per::Minute, 10)),
            ("0/s", None, Err(RateError::Rate("0/s".into()))),
            ("100001/s", None, Err(RateError::Rate("100001/s".into()))),
            ("20", None, Err(RateError::Rate("20".into()))),
            ("20/h", None, Err(RateError::Rate("20/h".into()))),
            ("-1/s", None, Err(RateError::Rate("-1/s".into()))),
            ("x/s", None, Err(RateError::Rate("x/s".into()))),
            ("20/s", Some(0), Err(RateError::Burst(0))),
        ];
        for (text, burst, want) in cases {
            assert_eq!(&RateLimit::parse(text, *burst), want, "{text} {burst:?}");
        }
    }

    #[test]
    fn a_rate_shows_and_counts_per_second() {
        let r = RateLimit::parse("30/m", None).expect("valid");
        assert_eq!(r.to_string(), "30/m burst 1");
        assert!((r.per_second() - 0.5).abs() < 1e-9);
    }
}
