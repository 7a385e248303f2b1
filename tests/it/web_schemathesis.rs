//! A bounded schemathesis pass over `/api/v1` from its own OpenAPI document: generated and
//! mutated requests (with a valid token) never get a 500, and answers match the document.
//! `scripts/test` installs schemathesis from PyPI when it is missing.

use crate::web_api::Web;

#[tokio::test]
async fn the_api_survives_schemathesis_from_its_own_document() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    w.seed(url_id, "c1", 20, "2026-01-01T00:00:00Z").await;
    let mut cmd = std::process::Command::new("schemathesis");
    cmd.args([
        "run",
        &format!("{}/api/v1/openapi.json", w.base),
        "--header",
        &format!("Authorization: Bearer {}", w.token),
        // Every check that holds of a strict API: positive_data_acceptance is left out because
        // the document's types are looser than the checks behind them (a string that is not a
        // time, a URL the URL rules refuse), which are answered 400 or 422 by design.
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,\
         response_schema_conformance,negative_data_rejection,use_after_free,ignored_auth",
        "--max-examples",
        "8",
        "--seed",
        "1",
        "--workers",
        "2",
        "--max-time",
        "40",
        "--request-timeout",
        "10",
        "--no-color",
        "--output-truncate",
        "true",
    ]);
    cmd.env("SCHEMATHESIS_TELEMETRY", "false");
    // It keeps a `.schemathesis/` example database in its working directory: not the repository.
    cmd.current_dir(std::env::temp_dir());
    let started = std::time::Instant::now();
    let run = tokio::process::Command::from(cmd).output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), run)
        .await
        .expect("schemathesis ends within 90 s")
        .expect("schemathesis runs (scripts/test installs it: pip install 'schemathesis>=4,<5')");
    let code = out.status.code().unwrap_or(-1);
    let (out, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        code == 0,
        "schemathesis found problems (exit {code}) in {:?}:\n{out}\n{err}",
        started.elapsed()
    );
    assert!(
        out.contains("passed") && !out.contains("ST101"),
        "the checks ran, no server error:\n{out}"
    );
}
