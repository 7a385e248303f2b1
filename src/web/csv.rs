//! The CSV export of the table (API, page, partner link): every row the filter matches, in
//! the given columns, streamed as it is read with flat memory. RFC 4180 quoting, a header row,
//! formula cells neutralised (one rule with the CLI's: [`crate::output::csv_record`]); values
//! come masked from the store.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::error::ApiError;
use super::state::AppState;
use crate::output::{Cell, csv_record};
use crate::store::stats::{self, Filter};

/// Rows are sent in chunks of about this size.
const CHUNK_BYTES: usize = 64 * 1024;

/// A streamed CSV response; `filename` is offered for saving. Over the number of exports
/// allowed at once ([`AppState::exports`]) it answers 503 at once rather than wait for a
/// connection that the page and the API need.
pub async fn response(
    state: &AppState,
    filter: &Filter,
    columns: &[String],
    filename: &str,
) -> Result<Response, ApiError> {
    let Ok(permit) = state.exports.clone().try_acquire_owned() else {
        return Err(ApiError::busy(
            "too many CSV exports at once: try again in a moment",
        ));
    };
    let client = state.pool.get().await?;
    let rows = stats::stream(client, filter, columns).await?;
    let header = csv_record(columns.iter().map(String::as_str));
    // The permit lives as long as the body: it is released when the stream ends or the
    // client goes away.
    let body = Body::from_stream(chunks(header, rows).map(move |chunk| {
        let _held = &permit;
        chunk
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The header, then the rows as CSV in chunks of about [`CHUNK_BYTES`]. A database error
/// midway ends the stream with an error, which cuts the response short (the client sees an
/// incomplete transfer, never a silently short file).
pub(crate) fn chunks<S>(header: String, rows: S) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: Stream<Item = crate::store::Result<Vec<Cell>>> + Send + 'static,
{
    let rows = Box::pin(rows);
    futures_util::stream::unfold((rows, Next::Chunk(header)), |(mut rows, next)| async move {
        let mut buf = match next {
            Next::Chunk(buf) => buf,
            Next::Fail => {
                let e = std::io::Error::other("CSV export cut short");
                return Some((Err(e), (rows, Next::Done)));
            }
            Next::Done => return None,
        };
        while buf.len() < CHUNK_BYTES {
            match rows.next().await {
                Some(Ok(cells)) => {
                    let texts: Vec<String> = cells.iter().map(Cell::as_text).collect();
                    buf.push_str(&csv_record(texts.iter().map(String::as_str)));
                }
                Some(Err(e)) => {
                    let text = crate::report::one_line(&e);
                    tracing::error!(error = %text, "CSV export cut short");
                    return Some((Ok(Bytes::from(buf)), (rows, Next::Fail)));
                }
                None => return Some((Ok(Bytes::from(buf)), (rows, Next::Done))),
            }
        }
        Some((Ok(Bytes::from(buf)), (rows, Next::Chunk(String::new()))))
    })
}

/// What the CSV stream sends next.
enum Next {
    Chunk(String),
    Fail,
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_come_in_chunks_neutralised_and_an_error_cuts_the_stream() {
        let rows = futures_util::stream::iter(
            (0..5_000)
                .map(|i| Ok(vec![Cell::Int(i), Cell::text("=1+1")]))
                .chain([Err(crate::store::StoreError::Invalid("gone".into()))]),
        );
        let got: Vec<_> = chunks("n,f\r\n".into(), rows).collect().await;
        assert!(got.len() > 1, "more than one chunk");
        let (last, body) = got.split_last().expect("chunks");
        assert!(last.is_err(), "the error ends the stream");
        let text: String = body
            .iter()
            .map(|c| String::from_utf8_lossy(c.as_ref().expect("ok")).into_owned())
            .collect();
        assert!(text.starts_with("n,f\r\n0,'=1+1\r\n"), "{}", &text[..20]);
        assert_eq!(text.lines().count(), 5_001);
    }
}
