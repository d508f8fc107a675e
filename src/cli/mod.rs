//! The command line: `check`, `validate`, `probe` and `demo`, each returning an exit code
//! (0 ok, 1 a probe failed, 2 bad config or usage).

pub mod check;
pub mod demo;
pub mod report;
pub mod rules;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing::{error, info, warn};

use std::io::IsTerminal as _;

use self::check::CheckOptions;
use self::report::{Format, Report};
use crate::config::{self, Kind, Probe};
use crate::daemon;
use crate::daemon::evaluator::Evaluator;
use crate::daemon::store::Store;
use crate::logging::LogFormat;
use crate::secret::SharedRedactor;
use crate::Clock;

/// Exit codes.
pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "vantage",
    version,
    about = "Synthetic prober and SLO evaluator"
)]
pub struct Cli {
    /// Log level or filter (e.g. `debug`, `vantage=debug,hyper=info`).
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// Log format; default text on a terminal, json otherwise.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every probe once (or N times) and report; exit 1 when any failed.
    Check(CheckArgs),
    /// Load and validate the config, printing every problem.
    Validate(ConfigArg),
    /// The daemon: schedule probes, serve /metrics, /probe, /api and the status page.
    Run(RunArgs),
    /// Print Prometheus recording and alerting rules (YAML) for the config's SLOs.
    Rules(RulesArgs),
    /// Probe one URL without a config.
    Probe(ProbeArgs),
    /// The embedded default: loopback demo targets, probed and served on 127.0.0.1:9464.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Run only shard i of n (`0/2`): the probes whose stable name hash is i modulo n.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::config::Shard>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write the rules here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Prometheus' scrape interval for vantage: no range in the rules is shorter than 4 × this
    /// (shorter alert windows are widened, with a comment and a warning). 1s … 1h.
    #[arg(long, default_value = "15s", value_parser = parse_scrape_interval)]
    pub scrape_interval: Duration,
}

fn parse_scrape_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!("scrape interval {s} is outside 1s … 1h"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to serve the demo's daemon.
    #[arg(long, default_value = crate::config::DEFAULT_LISTEN)]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file.
    #[arg(short, long, default_value = "vantage.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only these probes (names or globs); repeatable.
    #[arg(long = "probe", value_name = "NAME")]
    pub probes: Vec<String>,
    /// Runs per probe, one after the other.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub runs: u32,
    /// Pause between runs of the same probe.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub spacing: Duration,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Most probe runs in flight at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// URL (http) or host:port / https URL (tls).
    pub url: String,
    #[arg(long, value_enum, default_value = "http")]
    pub kind: KindArg,
    /// Limit for the whole run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    Http,
    Tls,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    config::raw::parse_duration(s)
}

impl Cli {
    /// Run the chosen command to completion.
    pub async fn execute(self, redactor: SharedRedactor) -> ExitCode {
        let code = match self.command {
            Command::Check(args) => check_cmd(args, &redactor).await,
            Command::Validate(args) => validate_cmd(&args.config),
            Command::Probe(args) => probe_cmd(args).await,
            Command::Run(args) => run_cmd(&args.config.config, args.shard, redactor).await,
            Command::Rules(args) => rules_cmd(&args),
            Command::Demo(args) => demo_cmd(&args.listen, redactor).await,
        };
        ExitCode::from(code)
    }
}

fn load(path: &Path, redactor: Option<&SharedRedactor>) -> Result<config::Config, u8> {
    match config::load(path) {
        Ok(c) => {
            if let Some(shared) = redactor {
                if let Ok(mut r) = shared.write() {
                    r.extend(&c.redactor);
                }
            }
            for w in &c.warnings {
                warn!(warning = %w, "Config warning.");
            }
            Ok(c)
        }
        Err(e) => {
            // Printed plainly (not as a log line): this is the command's answer.
            let _ = writeln!(std::io::stderr(), "{e}");
            let _ = writeln!(
                std::io::stderr(),
                "{} problem{} in {}",
                e.errors.len(),
                if e.errors.len() == 1 { "" } else { "s" },
                path.display()
            );
            Err(USAGE)
        }
    }
}

fn validate_cmd(path: &Path) -> u8 {
    match load(path, None) {
        Ok(c) => {
            println!("{}: ok, {} probes", path.display(), c.probes.len());
            OK
        }
        Err(code) => code,
    }
}

async fn check_cmd(args: CheckArgs, redactor: &SharedRedactor) -> u8 {
    let config = match load(&args.config.config, Some(redactor)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let probes = match check::select(config.probes, &args.probes) {
        Ok(p) => p,
        Err(e) => {
            error!("{e}.");
            return USAGE;
        }
    };
    let options = CheckOptions {
        runs: args.runs,
        spacing: args.spacing,
        concurrency: args.concurrency as usize,
        clock: Clock::system(),
    };
    info!(probes = probes.len(), runs = options.runs, "Checking.");
    let results = check::run(probes, &options, &config.redactor).await;
    let slos = if args.runs > 1 {
        check::evaluate_slos(&config.slos, &results)
    } else {
        Vec::new()
    };
    let report = Report {
        results,
        slos,
        multi_run: args.runs > 1,
        now: options.clock.unix_secs(),
    };
    let rendered = config
        .redactor
        .redact(&report.render(args.format))
        .into_owned();
    let annotations = if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        config
            .redactor
            .redact(&report.github_annotations())
            .into_owned()
    } else {
        String::new()
    };
    let to_stdout = args.output.is_none();
    if let Some(path) = &args.output {
        if let Err(e) = std::fs::write(path, &rendered) {
            error!(path = %path.display(), error = %e, "Cannot write the report.");
            return USAGE;
        }
    } else {
        let _ = std::io::stdout().write_all(rendered.as_bytes());
    }
    // GitHub reads workflow commands from stdout; keep machine formats on stdout parseable.
    if !annotations.is_empty() {
        if to_stdout && args.format != Format::Text {
            let _ = std::io::stderr().write_all(annotations.as_bytes());
        } else {
            let _ = std::io::stdout().write_all(annotations.as_bytes());
        }
    }
    let _ = std::io::stdout().flush();
    if report.failed() > 0 || report.slos.iter().any(|s| !s.met) {
        FAILED
    } else {
        OK
    }
}

async fn probe_cmd(args: ProbeArgs) -> u8 {
    let kind = match args.kind {
        KindArg::Http => Kind::Http,
        KindArg::Tls => Kind::Tls,
    };
    let probe = match Probe::adhoc(&args.url, kind, args.timeout) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "vantage probe: {e}");
            return USAGE;
        }
    };
    let clock = Clock::system();
    let outcome = probe.run(&clock, clock.now()).await;
    print!(
        "{}",
        report::describe(kind.as_str(), &probe.target, &outcome, clock.unix_secs())
    );
    if outcome.success() {
        OK
    } else {
        FAILED
    }
}

/// SIGHUP reloads; SIGTERM and SIGINT shut down. Runs until shutdown.
fn spawn_signal_handlers(control: daemon::Control) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("Cannot install signal handlers; use POST /-/reload and kill -9.");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the config.");
                    let control = control.clone();
                    // The verdict is logged by the daemon.
                    tokio::spawn(async move { let _ = control.request_reload().await; });
                }
                _ = term.recv() => { info!("SIGTERM: shutting down."); control.shutdown.cancel(); return; }
                _ = int.recv() => { info!("SIGINT: shutting down."); control.shutdown.cancel(); return; }
                _ = control.shutdown.cancelled() => return,
            }
        }
    });
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, u8> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        error!(%addr, error = %e, "Cannot listen.");
        USAGE
    })
}

async fn run_cmd(path: &Path, shard: Option<crate::config::Shard>, redactor: SharedRedactor) -> u8 {
    let config = match load(path, Some(&redactor)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let listener = match bind(&config.server.listen.to_string()).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (control, requests) = daemon::control();
    spawn_signal_handlers(control.clone());
    let d = daemon::Daemon {
        config_path: path.to_path_buf(),
        config,
        listener,
        store: Arc::new(Store::new(Clock::system())),
        evaluator: Arc::new(Evaluator::default()),
        log_redactor: Some(redactor),
        shard,
    };
    match daemon::run(d, control, requests).await {
        Ok(()) => OK,
        Err(e) => {
            error!(error = %e, "The daemon failed.");
            USAGE
        }
    }
}

async fn demo_cmd(listen: &str, redactor: SharedRedactor) -> u8 {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            error!(error = %e, "Cannot create a directory for the demo.");
            return USAGE;
        }
    };
    let (control, requests) = daemon::control();
    let clock = Clock::system();
    let (path, _targets) =
        match demo::start(dir.path(), listen, &clock, control.shutdown.clone()).await {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "Cannot start the demo targets.");
                return USAGE;
            }
        };
    let config = match load(&path, Some(&redactor)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let listener = match bind(listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    spawn_signal_handlers(control.clone());
    let store = Arc::new(Store::new(clock));
    let evaluator = Arc::new(Evaluator::default());
    let printer = {
        let (store, evaluator, stop, listen) = (
            store.clone(),
            evaluator.clone(),
            control.shutdown.clone(),
            listen.to_string(),
        );
        tokio::spawn(async move {
            let tty = std::io::stdout().is_terminal();
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            let mut first = true;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let text = demo::summary(&store, &evaluator, &listen, tty);
                let mut out = std::io::stdout().lock();
                if tty {
                    // Redraw in place; the first frame starts on a clean screen.
                    if first {
                        let _ = write!(out, "\x1b[2J");
                        first = false;
                    }
                    let _ = write!(out, "{}", demo::redraw(&text));
                } else {
                    let _ = writeln!(out, "{text}");
                }
                let _ = out.flush();
            }
        })
    };
    let d = daemon::Daemon {
        config_path: path,
        config,
        listener,
        store,
        evaluator,
        log_redactor: Some(redactor),
        shard: None,
    };
    let result = daemon::run(d, control, requests).await;
    printer.abort();
    match result {
        Ok(()) => OK,
        Err(e) => {
            error!(error = %e, "The demo failed.");
            USAGE
        }
    }
}

fn rules_cmd(args: &RulesArgs) -> u8 {
    let path = &args.config.config;
    let config = match load(path, None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = crate::cli::rules::Options {
        scrape_interval: args.scrape_interval,
    };
    let text = match crate::cli::rules::generate(&config, &path.display().to_string(), &opts) {
        Ok(g) => {
            for w in &g.warnings {
                let _ = writeln!(std::io::stderr(), "warning: {w}.");
            }
            config.redactor.redact(&g.text).into_owned()
        }
        Err(errors) => {
            for e in errors {
                let _ = writeln!(std::io::stderr(), "{e}");
            }
            return USAGE;
        }
    };
    match &args.output {
        Some(out) => match std::fs::write(out, text) {
            Ok(()) => OK,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "cannot write {}: {e}", out.display());
                USAGE
            }
        },
        None => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            OK
        }
    }
}
