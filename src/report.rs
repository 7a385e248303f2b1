//! An error and its causes on one line, each cause once (pure).
//!
//! Our own errors keep their cause as `source()` and leave it out of their text; some library
//! errors (lapin's, for one) also write their cause into their own text. Walking the chain and
//! skipping a cause whose text the line already holds prints each once either way.

use std::error::Error;

/// `outer: cause: root cause`, on one line (line breaks inside a message become spaces).
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut line = flat(error);
    let mut source = error.source();
    while let Some(cause) = source {
        let text = flat(cause);
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

fn flat(error: &dyn Error) -> String {
    let text = error.to_string();
    let parts: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("root cause here")]
    struct Root;

    /// A library error that writes its cause into its text and returns it as its source.
    #[derive(Debug, thiserror::Error)]
    #[error("io failed: {0}")]
    struct Echoing(#[source] Root);

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    #[test]
    fn each_cause_once_on_one_line() {
        let store = crate::store::StoreError::Invalid("multi\nline".into());
        assert_eq!(one_line(&store), "multi line");

        let amqp = crate::amqp::AmqpError::Topology {
            what: "queue `q`".into(),
            source: lapin::Error::from(lapin::ErrorKind::ChannelsLimitReached),
        };
        let line = one_line(&amqp);
        assert_eq!(count(&line, "maximum number of channels"), 1, "{line}");
        assert!(line.starts_with("declaring queue `q`"), "{line}");

        let wrapped = anyhow::Error::new(Echoing(Root)).context("connecting");
        let line = one_line(wrapped.as_ref());
        assert_eq!(line, "connecting: io failed: root cause here");
        assert_eq!(count(&line, "root cause here"), 1);
    }

    #[test]
    fn a_store_error_shows_the_database_cause_once() {
        // A real tokio-postgres error with a source: a connection string that does not parse.
        let pg = "postgres://h/db?sslmode=bogus"
            .parse::<tokio_postgres::Config>()
            .expect_err("bad sslmode");
        let cause = pg.source().map(ToString::to_string).expect("has a source");
        let e = anyhow::Error::new(crate::store::StoreError::from(pg)).context("migrating");
        // anyhow's own `{:#}` walks the chain without skipping: each text must hold no cause.
        assert_eq!(count(&format!("{e:#}"), &cause), 1, "{e:#}");
        let line = one_line(e.as_ref());
        assert_eq!(count(&line, &cause), 1, "{line}");
        assert!(line.starts_with("migrating: database: "), "{line}");
        let amqp = crate::amqp::AmqpError::from(lapin::Error::from(lapin::ErrorKind::ChannelsLimitReached));
        let text = format!("{:#}", anyhow::Error::new(amqp));
        assert_eq!(count(&text, "maximum number of channels"), 1, "{text}");
    }
}
