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
        assert_eq!(one_line(&Root), "root cause here");
        let wrapped = anyhow::Error::new(Echoing(Root)).context("connecting");
        let line = one_line(wrapped.as_ref());
        assert_eq!(line, "connecting: io failed: root cause here");
        assert_eq!(count(&line, "root cause here"), 1);
    }

    #[test]
    fn line_breaks_inside_a_message_become_spaces() {
        #[derive(Debug, thiserror::Error)]
        #[error("ERROR: no\nDETAIL: key (a)=(1)\n")]
        struct MultiLine;
        assert_eq!(one_line(&MultiLine), "ERROR: no DETAIL: key (a)=(1)");
    }
}
