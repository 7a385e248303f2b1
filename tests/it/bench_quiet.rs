//! `bench` ends quietly: its connections close without the AMQP client logging an error.

use crate::harness::*;

#[tokio::test]
async fn a_bench_run_logs_nothing_above_info() {
    let env = Env::new().await;
    let mut cmd = tokio::process::Command::from(env.command());
    cmd.args([
        "bench",
        "--events",
        "100",
        "--rate",
        "20",
        "--seconds",
        "1",
        "--json",
    ])
    .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .expect("bench finishes within 3 minutes")
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let loud: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(loud.is_empty(), "lines above INFO: {loud:#?}");
}
