//! Thin entry point: CLI → logging → lib → exit code.

use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use clap::Parser;
use vantage::cli::{Cli, USAGE};
use vantage::secret::Redactor;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let redactor = Arc::new(RwLock::new(Redactor::default()));
    if let Err(e) = vantage::logging::init(&cli.log_level, cli.log_format, redactor.clone()) {
        eprintln!("vantage: {e}");
        return ExitCode::from(USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vantage: cannot start the async runtime: {e}");
            return ExitCode::from(USAGE);
        }
    };
    runtime.block_on(cli.execute(redactor))
}
