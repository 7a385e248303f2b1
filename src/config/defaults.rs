//! The compiled-in defaults. `config/default.toml` documents them; a test keeps both equal.

use std::time::Duration;

use super::*;

fn secs(s: u64) -> Dur {
    Dur(Duration::from_secs(s))
}

impl Default for Config {
    fn default() -> Config {
        Config {
            amqp: Amqp {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                exchange: "conversions".into(),
                routing_key: "conversion.#".into(),
                queue: "cross-postback".into(),
                queue_type: QueueType::Quorum,
                prefetch: 256,
                dead_letter_exchange: "conversions.dlx".into(),
                dead_letter_queue: "cross-postback.dead".into(),
                max_message_bytes: 65_536,
                batch_size: 128,
                lanes: 2,
                mode: AmqpMode::Shared,
                shards: 8,
            },
            database: Database {
                url: "postgres://postgres@127.0.0.1:5432/cross_postback".into(),
                pool_size: 16,
            },
            delivery: Delivery {
                concurrency: 256,
                per_host_concurrency: 32,
                connect_timeout: secs(3),
                timeout: secs(10),
                retry_schedule: [5, 30, 120, 600, 1_800, 3_600, 7_200, 21_600, 43_200, 86_400]
                    .into_iter()
                    .map(secs)
                    .collect(),
                allow_private_networks: false,
                allow_cidrs: Vec::new(),
                poll_interval: secs(1),
                lease: secs(60),
                max_response_bytes: 65_536,
                disable_after: secs(3 * 86_400),
            },
            run: Run {
                shutdown_timeout: secs(30),
            },
            http: Http {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9090)),
            },
            log: Log {
                format: LogFormat::Pretty,
                level: "info".into(),
            },
            web: Web {
                enabled: true,
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
                public_url: String::new(),
                max_link_lifetime: secs(365 * 86_400),
            },
            retention: Retention {
                attempts: secs(90 * 86_400),
                deliveries: secs(90 * 86_400),
                conversions: secs(400 * 86_400),
                rejected: secs(30 * 86_400),
                interval: secs(3_600),
            },
            alerts: Alerts {
                webhook_url: String::new(),
                failure_ratio: 0.5,
            },
        }
    }
}
