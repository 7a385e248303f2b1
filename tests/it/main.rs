//! Integration tests against the real RabbitMQ and Postgres and a loopback HTTP receiver.
//! One binary; every test owns its database, exchange and queues, so they run in parallel.

mod harness;

mod bench;
mod bench_quiet;
mod bodies;
mod cancel;
mod channel;
mod chaos;
mod clean_stop;
mod cli_and_config;
mod crash;
mod day_one;
mod delivery;
mod guard;
mod history;
mod hostile;
mod intake_budget;
mod intake_log;
mod interrupt_twice;
mod invalid;
mod log_caps;
mod macros;
mod mask_rule;
mod masking;
mod ops;
mod order;
mod outages;
mod per_host;
mod publishers;
mod publishing;
mod redeliver;
mod redeliver_locks;
mod rejected;
mod replicas;
mod retries;
mod routing_key_log;
mod stale;
mod startup;
mod startup_errors;
mod superseded_in_flight;
mod supervision;
mod unsendable;
mod url_service;
mod url_service_api;
mod walkthrough;
