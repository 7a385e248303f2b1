//! cross-postback: delivers affiliate conversion cross-postbacks.
//!
//! Two flows meet at one table. **Intake** takes messages from RabbitMQ, decides each (§4),
//! logs the conversion's state and its `pending` deliveries in one transaction, and acks.
//! **Dispatch** claims due deliveries, renders, sends, records the attempt and schedules the
//! next one. A channel from intake to dispatch makes first attempts immediate; the table
//! makes them durable.
//!
//! Pure logic (no I/O):
//! - [`event`]    the message: parse, validate, normalise
//! - [`dedupe`]   the §4 decision over a conversion's history
//! - [`macros`]   URL and body templates: parse, validate, render
//! - [`retry`]    schedule, classification, `Retry-After`
//! - [`config`]   layered settings, validated once
//!
//! I/O at the edges:
//! - [`store`]    migrations and every SQL statement
//! - [`amqp`]     connection, topology, publishing with confirms
//! - [`intake`]   consumer, batched decide-and-log transaction, acks, dead-lettering
//! - [`sender`]   the HTTP client: timeouts, body cap, redirects, network guard
//! - [`dispatch`] claiming, per-host limits, sending, recording, handing off
//! - [`ops`]      `/healthz`, `/readyz`, `/metrics`
//! - [`daemon`]   wires intake, dispatch and ops together until shutdown
//! - [`cli`]      subcommands → library calls
//! - [`receiver`] a throwaway HTTP receiver for demos and tests

pub mod config;
pub mod dedupe;
pub mod event;
pub mod guard;
pub mod macros;
pub mod mask;
pub mod plan;
pub mod retry;

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

/// Runs the daemon until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run_until_signalled(cfg: config::Config) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let on_signal = shutdown.clone();
    // Listening before start-up, so a signal while waiting for a service also stops it.
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        on_signal.cancel();
    });
    let daemon = daemon::start(cfg, shutdown.clone()).await?;
    daemon.wait().await
}
pub mod bench;
