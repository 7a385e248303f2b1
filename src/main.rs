//! Wires: parse the command line, load the configuration, start telemetry, call the library.

use std::process::ExitCode;

use clap::Parser;
use cross_postback::cli::Cli;
use cross_postback::config::Config;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line, not clap's usage block: the error's first paragraph, joined.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{}", first.join(" "));
            return ExitCode::from(2);
        }
    };
    let (cfg, warnings) = if cli.command.needs_config() {
        match Config::load_with_origins(cli.config.as_deref(), std::env::vars()) {
            Ok(loaded) => (loaded.config, loaded.warnings),
            Err(e) => return fail(&anyhow::Error::new(e)),
        }
    } else {
        (Config::default(), Vec::new())
    };
    cross_postback::telemetry::init(&cfg.log);
    // Once, at start, through the log (so a JSON log gets them as JSON).
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e)),
    };
    match runtime.block_on(cross_postback::cli::execute(cli.command, cfg, cli.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One line on stderr: the error and each of its causes once.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", cross_postback::report::one_line(e.as_ref()));
    ExitCode::FAILURE
}
