//! cross-postback: delivers affiliate conversion cross-postbacks.
//!
//! Two flows meet at one table. **Intake** takes messages from RabbitMQ, decides each (de-duplication and order),
//! logs the conversion's state and its `pending` deliveries in one transaction, and acks.
//! **Dispatch** claims due deliveries, renders, sends, records the attempt and schedules the
//! next one. A channel from intake to dispatch makes first attempts immediate; the table
//! makes them durable.
//!
//! Pure logic (no I/O; imports none of the modules below it):
//! - [`event`]     the message: parse, validate, normalise
//! - [`dedupe`]    the de-duplication and order decision over a conversion's history
//! - [`plan`]      the intake decision plan of a batch: a snapshot in, rows and hand-offs out
//! - [`macros`]    URL and body templates: parse, validate, render
//! - [`url_spec`]  a cross-postback URL as given, checked before it is stored
//! - [`retry`]     schedule, classification, `Retry-After`
//! - [`guard`]     the network guard's rule: which resolved addresses may be sent to
//! - [`mask`]      secrets in URLs masked for logs and output (the SQL view's rule too)
//! - [`output`]    printed text made safe: control characters escaped, CSV formula cells
//!   neutralised
//! - [`report`]    an error and its causes on one line, each cause once
//!
//! I/O at the edges:
//! - [`config`]    layered settings (a file, the environment), parsed once into typed,
//!   bounded values
//! - [`store`]     migrations and every SQL statement
//! - [`amqp`]      connection, topology, publishing with confirms
//! - [`intake`]    consumer, batched decide-and-log transaction, acks, dead-lettering
//! - [`sender`]    the HTTP client: timeouts, body cap, redirects, network guard
//! - [`dispatch`]  claiming, per-host limits, sending, recording, handing off
//! - [`ops`]       `/healthz`, `/readyz`, `/metrics`
//! - [`web`]       the statistics page, partner links and the HTTP API (`/api/v1`)
//! - [`telemetry`] logging setup; caps the libraries that log secrets when verbose
//! - [`daemon`]    wires intake, dispatch and ops together until shutdown
//! - [`lifecycle`] partitions of `attempts` made ahead; retention, in the daemon and `prune`
//! - [`urls_service`] add, edit, list, disable, enable, remove and test URLs: the one service
//!   the CLI and the HTTP API call
//! - [`cli`]       subcommands → library calls
//! - [`receiver`]  a throwaway HTTP receiver for demos and tests
//! - [`alerts`]    automatic disabling of failing URLs and alerts to `alerts.webhook_url`
//! - [`bench`]     the throughput instrument: the parts bare, then the daemon end to end

pub mod config;
pub mod dedupe;
pub mod event;
pub mod guard;
pub mod macros;
pub mod mask;
pub mod output;
pub mod plan;
pub mod report;
pub mod retry;
pub mod url_spec;

pub mod alerts;
pub mod amqp;
pub mod cli;
pub mod daemon;
pub mod dispatch;
pub mod intake;
pub mod ops;
pub mod receiver;
pub mod sender;
pub mod store;
pub mod telemetry;
pub mod urls_service;
pub mod web;

/// Runs the daemon until SIGTERM or SIGINT, then shuts down gracefully; a second signal
/// abandons the sends still in flight (their leases expire and they are sent again) and the
/// daemon ends with an error.
pub async fn run_until_signalled(cfg: config::Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = tokio_util::sync::CancellationToken::new();
    let abandon = tokio_util::sync::CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (on_signal, on_second) = (shutdown.clone(), abandon.clone());
    // Listening before start-up, so a signal while waiting for a service also stops it.
    tokio::spawn(async move {
        for first in [true, false] {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if first {
                tracing::info!("{name}: shutting down");
                on_signal.cancel();
            } else {
                tracing::warn!("{name} again: abandoning the sends in flight");
                on_second.cancel();
            }
        }
    });
    let daemon = daemon::start_abandonable(cfg, shutdown, abandon).await?;
    daemon.wait().await
}
pub mod bench;
pub mod lifecycle;
