//! Helpers: write configs into temp dirs, load them, run probes, run the binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vantage::cli::check::{self, CheckOptions};
use vantage::config::{self, Config, ConfigError};
use vantage_probes::Outcome;

pub struct Cfg {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn write_config(text: &str) -> Cfg {
    let dir = tempfile::tempdir().unwrap();
    write_config_in(dir, text)
}

pub fn write_config_in(dir: tempfile::TempDir, text: &str) -> Cfg {
    let path = dir.path().join("vantage.toml");
    std::fs::write(&path, text).unwrap();
    Cfg { dir, path }
}

pub fn load_in(path: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config::load_with_env(path, &move |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

pub fn load(text: &str) -> Config {
    let cfg = write_config(text);
    load_in(&cfg.path, &[]).unwrap_or_else(|e| panic!("config does not load:\n{e}"))
}

/// Run every probe of `config` once; outcomes by probe name.
pub async fn run_all(config: Config) -> Vec<(String, Outcome)> {
    let probes = config.probes.into_iter().map(Arc::new).collect();
    let results = check::run(probes, &CheckOptions::default(), &config.redactor).await;
    results.into_iter().map(|r| (r.name, r.outcome)).collect()
}

pub fn outcome<'a>(all: &'a [(String, Outcome)], name: &str) -> &'a Outcome {
    &all.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no probe {name}"))
        .1
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the vantage binary in `dir`, bounded to 60 s.
pub async fn vantage(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vantage"));
    cmd.args(args).current_dir(dir).kill_on_drop(true);
    cmd.env_remove("GITHUB_ACTIONS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("vantage did not finish within 60 s")
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// GET with vantage's own HTTP client (rustls with ring; reqwest is built without a default
/// crypto provider).
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    vantage::alerting::notify::http_client()
        .get(url)
        .send()
        .await
}
