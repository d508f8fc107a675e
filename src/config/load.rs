//! Reading config files: TOML parsing, `include`, `${ENV}` interpolation, and turning every
//! problem into a located [`Diagnostic`].
//!
//! Files are parsed into toml's spanned document tree first, and each section (each `[[probe]]`
//! on its own) is deserialized separately, so one broken probe does not hide the errors of the
//! next: `vantage validate` reports them all.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::raw::{RawAlert, RawDefaults, RawScheduler, RawServer, RawSlo, RawState};
use crate::secret::{Redactor, Secret};

/// One located problem (or warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file's position in reading order, to sort diagnostics by file.
    pub file_order: usize,
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// The config's files, kept to turn byte offsets into lines and columns.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<(String, PathBuf, String)>,
    /// Byte offset of the start of each line, per file: locating a diagnostic is a binary
    /// search, not a scan from the file's start (which made loading quadratic in its size).
    line_starts: Vec<Vec<usize>>,
}

/// Which file a span belongs to.
pub type FileId = usize;

impl Sources {
    pub(crate) fn add(&mut self, display: String, path: PathBuf, text: String) -> FileId {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.line_starts.push(starts);
        self.files.push((display, path, text));
        self.files.len() - 1
    }

    pub fn text(&self, file: FileId) -> &str {
        &self.files[file].2
    }

    /// The directory relative paths in `file` are resolved against.
    pub fn dir(&self, file: FileId) -> PathBuf {
        self.files[file]
            .1
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// A problem with a file that could not be read (so has no lines): reported at 1:1.
    fn whole_file(&self, display: String, message: String) -> Diagnostic {
        Diagnostic {
            file_order: self.files.len(),
            file: display,
            line: 1,
            col: 1,
            message,
        }
    }

    pub fn diag(&self, file: FileId, offset: usize, message: impl Into<String>) -> Diagnostic {
        let (display, _, text) = &self.files[file];
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let starts = &self.line_starts[file];
        // The last line start at or before `offset` (the first is always 0).
        let line = starts.partition_point(|&s| s <= offset).max(1);
        let line_start = starts[line - 1];
        let col = text[line_start..offset].chars().count() + 1;
        Diagnostic {
            file_order: file,
            file: display.clone(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// A value and the file and byte range it came from.
#[derive(Debug)]
pub struct Located<T> {
    pub file: FileId,
    pub span: std::ops::Range<usize>,
    pub value: T,
}

/// Everything read from the config files, before validation.
#[derive(Debug, Default)]
pub struct RawConfig {
    pub sources: Sources,
    pub defaults: Option<Located<RawDefaults>>,
    /// `[[probe]]`s, each read into its kind's schema.
    pub probes: Vec<Located<super::kinds::RawKindProbe>>,
    pub server: Option<Located<RawServer>>,
    pub scheduler: Option<Located<RawScheduler>>,
    /// `[module.NAME]` templates, name with its location.
    pub modules: Vec<(Spanned<String>, Located<super::kinds::RawKindProbe>)>,
    pub state: Option<Located<RawState>>,
    pub slos: Vec<Located<RawSlo>>,
    pub alert: Option<Located<RawAlert>>,
    /// `[metrics]`.
    pub metrics: Option<Located<super::raw::RawMetrics>>,
    pub redactor: Redactor,
}

const MAIN_KEYS: &[&str] = &[
    "include",
    "defaults",
    "server",
    "scheduler",
    "state",
    "probe",
    "slo",
    "alert",
    "module",
    "metrics",
];
const INCLUDED_KEYS: &[&str] = &["include", "probe", "module", "slo"];
/// Bounds the include graph: a config is a handful of files, not thousands.
const MAX_FILES: usize = 256;

/// Read `path` and everything it includes. Problems go to `errors`; whatever could be read is
/// returned so validation can still report more.
pub fn read(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<Diagnostic>,
) -> RawConfig {
    let mut raw = RawConfig::default();
    let mut seen = HashSet::new();
    // (path, how to show it, whether it is the main file, the include entry that named it)
    let mut queue = vec![(path.to_path_buf(), path.display().to_string(), true, None)];
    while let Some((path, display, main, named_at)) = queue.pop() {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if !seen.insert(canonical) {
            continue;
        }
        if seen.len() > MAX_FILES {
            errors.push(raw.sources.whole_file(
                display,
                format!("more than {MAX_FILES} config files included"),
            ));
            break;
        }
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(match named_at {
                    Some((f, at)) => {
                        raw.sources
                            .diag(f, at, format!("cannot read included file: {e}"))
                    }
                    None => raw
                        .sources
                        .whole_file(display, format!("cannot read config file: {e}")),
                });
                continue;
            }
        };
        let file = raw.sources.add(display, path, text);
        let includes = read_file(&mut raw, file, main, env, errors);
        // Reverse so files are read in the order written (the queue pops from the back).
        queue.extend(includes.into_iter().rev().map(|(p, at)| {
            let d = p.display().to_string();
            (p, d, false, Some((file, at)))
        }));
    }
    raw
}

/// The largest file the config may name (config files, includes, CA and client certificates,
/// keys, token files): a config names small files, and a bound keeps `/dev/zero` or a huge file
/// from eating memory.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Read a file the config names: it must be a regular file (not a device, FIFO, socket or
/// directory, which could block forever or never end) of at most [`MAX_FILE_BYTES`]. The error
/// says why, without the path (callers locate it).
pub fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    fn kind(m: &std::fs::Metadata) -> Option<&'static str> {
        use std::os::unix::fs::FileTypeExt as _;
        let t = m.file_type();
        if t.is_file() {
            None
        } else if t.is_dir() {
            Some("a directory")
        } else if t.is_fifo() {
            Some("a FIFO")
        } else if t.is_char_device() || t.is_block_device() {
            Some("a device")
        } else if t.is_socket() {
            Some("a socket")
        } else {
            Some("not a regular file")
        }
    }
    let check = |m: &std::fs::Metadata| -> Result<(), String> {
        if let Some(k) = kind(m) {
            return Err(format!(
                "{} is {k}, expected a regular file",
                path.display()
            ));
        }
        if m.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{} is {} bytes, more than the limit of {MAX_FILE_BYTES} (10 MiB)",
                path.display(),
                m.len()
            ));
        }
        Ok(())
    };
    // Check before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    check(&meta)?;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // And again on the opened file, in case the path was swapped in between.
    check(
        &file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?,
    )?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} grew past the limit of {MAX_FILE_BYTES} bytes (10 MiB) while being read",
            path.display()
        ));
    }
    Ok(bytes)
}

/// [`read_limited`], as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read_limited(path)?)
        .map_err(|e| format!("{} is not UTF-8 text: {e}", path.display()))
}

/// Every certificate of a PEM file the config names, read with [`read_limited`].
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_limited(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read PEM file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cannot read PEM file {}: no certificates found",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file the config names, read with [`read_limited`].
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_limited(path)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("cannot read PEM file {}: {e}", path.display()))
}

/// Parse one file into `raw`; return the files it includes.
fn read_file(
    raw: &mut RawConfig,
    file: FileId,
    main: bool,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<(PathBuf, usize)> {
    // Borrow the text from a clone: the tree borrows it while `raw` is mutated.
    let text = raw.sources.text(file).to_string();
    let (root, parse_errors) = DeTable::parse_recoverable(&text);
    if !parse_errors.is_empty() {
        for e in parse_errors {
            let at = e.span().map_or(0, |s| s.start);
            errors.push(raw.sources.diag(file, at, humanize(e.message())));
        }
        return Vec::new();
    }
    let mut root = root.into_inner();
    let allowed = if main { MAIN_KEYS } else { INCLUDED_KEYS };
    let mut includes = Vec::new();
    for (key, value) in root.iter_mut() {
        let span = value.span();
        interpolate(value, file, &raw.sources, env, &mut raw.redactor, errors);
        let value = std::mem::replace(value, Spanned::new(span.clone(), DeValue::Boolean(false)));
        match key.get_ref().as_ref() {
            "include" if allowed.contains(&"include") => {
                if let Some(globs) =
                    deserialize::<Vec<Spanned<String>>>(value, file, &raw.sources, errors)
                {
                    includes.extend(expand_includes(&globs, file, &raw.sources, errors));
                }
            }
            "defaults" if allowed.contains(&"defaults") => {
                raw.defaults = located(value, file, &raw.sources, errors);
            }
            "server" if allowed.contains(&"server") => {
                raw.server = located(value, file, &raw.sources, errors)
            }
            "alert" if allowed.contains(&"alert") => {
                raw.alert = located(value, file, &raw.sources, errors)
            }
            "metrics" if allowed.contains(&"metrics") => {
                raw.metrics = located(value, file, &raw.sources, errors)
            }
            "state" if allowed.contains(&"state") => {
                raw.state = located(value, file, &raw.sources, errors)
            }
            "scheduler" if allowed.contains(&"scheduler") => {
                raw.scheduler = located(value, file, &raw.sources, errors);
            }
            "slo" => {
                let slos = located_array(value, "slo", file, &raw.sources, errors);
                raw.slos.extend(slos);
            }
            "module" => match value.into_inner() {
                DeValue::Table(modules) => {
                    for (name, item) in modules.iter() {
                        let name = Spanned::new(name.span(), name.get_ref().to_string());
                        let m = super::kinds::read_module(
                            &name,
                            item.clone(),
                            file,
                            &raw.sources,
                            errors,
                        );
                        raw.modules.extend(m.map(|m| (name, m)));
                    }
                }
                _ => errors.push(raw.sources.diag(
                    file,
                    span.start,
                    "\"module\" must be a table of modules, written [module.NAME]",
                )),
            },
            "probe" => match value.into_inner() {
                // Each table is read into its kind's own schema (config/kinds/).
                DeValue::Array(items) => {
                    for item in items {
                        let p = super::kinds::read(item, file, &raw.sources, errors);
                        raw.probes.extend(p);
                    }
                }
                _ => errors.push(raw.sources.diag(
                    file,
                    span.start,
                    "\"probe\" must be an array of tables, written [[probe]]",
                )),
            },
            other => {
                let message = if !main && MAIN_KEYS.contains(&other) {
                    format!("key {other:?} is only allowed in the main config file")
                } else {
                    format!(
                        "unknown key {other:?}, expected one of: {}",
                        allowed.join(", ")
                    )
                };
                errors.push(raw.sources.diag(file, key.span().start, message));
            }
        }
    }
    includes
}

/// A `[section]`, deserialized with its location.
fn located<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<Diagnostic>,
) -> Option<Located<T>> {
    let span = value.span();
    deserialize(value, file, sources, errors).map(|value| Located { file, span, value })
}

/// A `[[key]]` array of tables, each element deserialized on its own with its location.
fn located_array<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    key: &str,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Located<T>> {
    let at = value.span().start;
    match value.into_inner() {
        DeValue::Array(items) => items
            .iter()
            .filter_map(|item| located(item.clone(), file, sources, errors))
            .collect(),
        _ => {
            errors.push(sources.diag(
                file,
                at,
                format!("\"{key}\" must be an array of tables, written [[{key}]]"),
            ));
            Vec::new()
        }
    }
}

/// Deserialize one section. serde stops at the first problem, so after each error the offending
/// entry is removed and the rest is tried again: every problem of the section is reported, and
/// what remains still reaches validation, which may find more.
pub(super) fn deserialize<T: DeserializeOwned>(
    mut value: Spanned<DeValue<'_>>,
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<Diagnostic>,
) -> Option<T> {
    let fallback = value.span().start;
    let mut removed = false;
    // Each retry removes one entry, so this is bounded by the number of entries; the cap is a
    // second guard against a surprise in the parser.
    for _ in 0..256 {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => return Some(v),
            Err(e) => {
                // A required key we removed ourselves is not the user's problem.
                let consequence = removed && e.message().starts_with("missing field");
                if !consequence {
                    let at = e.span().map_or(fallback, |s| s.start);
                    errors.push(sources.diag(file, at, humanize(e.message())));
                }
                let span = e.span()?;
                if consequence || !remove_entry_at(&mut value, span.start) {
                    return None;
                }
                removed = true;
            }
        }
    }
    None
}

/// Remove the innermost table entry whose key or value covers `offset`.
fn remove_entry_at(value: &mut Spanned<DeValue<'_>>, offset: usize) -> bool {
    let covers = |r: &std::ops::Range<usize>| r.start <= offset && offset < r.end.max(r.start + 1);
    match value.get_mut() {
        DeValue::Table(table) => {
            let mut target = None;
            for (key, item) in table.iter_mut() {
                if covers(&key.span()) {
                    target = Some(key.clone());
                    break;
                }
                if covers(&item.span()) {
                    if remove_entry_at(item, offset) {
                        return true;
                    }
                    target = Some(key.clone());
                    break;
                }
            }
            if let Some(key) = target {
                return table.remove(&key).is_some();
            }
            // A table opened by a `[a.b]` header spans only its header: look inside anyway.
            table.iter_mut().any(|(_, item)| {
                matches!(item.get_ref(), DeValue::Table(_)) && remove_entry_at(item, offset)
            })
        }
        DeValue::Array(items) => items.iter_mut().any(|i| remove_entry_at(i, offset)),
        _ => false,
    }
}

/// Paths matched by the `include` entries, relative to the including file, sorted per entry.
/// A literal path (no `*`, `?` or `[`) must exist: a missing include is an error, not a silently
/// smaller config. A pattern may match nothing (an empty drop-in directory is a valid config).
fn expand_includes(
    globs: &[Spanned<String>],
    file: FileId,
    sources: &Sources,
    errors: &mut Vec<Diagnostic>,
) -> Vec<(PathBuf, usize)> {
    let dir = sources.dir(file);
    let mut out = Vec::new();
    for g in globs {
        let pattern = dir.join(g.get_ref());
        let literal = !g.get_ref().contains(['*', '?', '[']);
        if literal {
            let path = dir.join(g.get_ref());
            if std::fs::symlink_metadata(&path).is_err() {
                errors.push(sources.diag(
                    file,
                    g.span().start,
                    format!("included file {:?} does not exist", g.get_ref()),
                ));
            } else {
                out.push((path, g.span().start));
            }
            continue;
        }
        // `**` walks whole trees (`/proc/**/*.toml` never ends): include patterns match within
        // the directories they name, one level per component.
        if g.get_ref().contains("**") {
            errors.push(sources.diag(
                file,
                g.span().start,
                format!(
                    "include pattern {:?}: `**` is not supported (it walks whole directory trees); name the directories, e.g. \"probes/*.toml\"",
                    g.get_ref()
                ),
            ));
            continue;
        }
        let pattern = pattern.to_string_lossy();
        match glob::glob(&pattern) {
            Ok(paths) => {
                let mut found = Vec::new();
                // Stop early: more matches than the include graph may hold is an error anyway.
                for p in paths.take(MAX_FILES + 1) {
                    match p {
                        Ok(p) => found.push((p, g.span().start)),
                        Err(e) => errors.push(sources.diag(
                            file,
                            g.span().start,
                            format!("include pattern {:?}: {e}", g.get_ref()),
                        )),
                    }
                }
                found.sort();
                out.extend(found);
            }
            Err(e) => errors.push(sources.diag(
                file,
                g.span().start,
                format!("invalid include pattern {:?}: {e}", g.get_ref()),
            )),
        }
    }
    out
}

/// Replace `${NAME}` in every string below `value` with the environment variable `NAME`.
/// `$${` writes a literal `${`. The variable's value becomes a secret.
fn interpolate(
    value: &mut Spanned<DeValue<'_>>,
    file: FileId,
    sources: &Sources,
    env: &dyn Fn(&str) -> Option<String>,
    redactor: &mut Redactor,
    errors: &mut Vec<Diagnostic>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => {
            if !s.contains("${") {
                return;
            }
            match expand(s, env) {
                Ok((text, secrets)) => {
                    for secret in secrets {
                        redactor.add(secret);
                    }
                    *s = std::borrow::Cow::Owned(text);
                }
                Err(message) => errors.push(sources.diag(file, span.start, message)),
            }
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                interpolate(item, file, sources, env, redactor, errors);
            }
        }
        DeValue::Table(table) => {
            for (_, item) in table.iter_mut() {
                interpolate(item, file, sources, env, redactor, errors);
            }
        }
        _ => {}
    }
}

/// Expand one string. Errors name the variable, never a value.
pub fn expand(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<Secret>), String> {
    let mut out = String::with_capacity(s.len());
    let mut secrets = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err("unterminated \"${\" in string: write \"$${\" for a literal".into());
            };
            let name = &after[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "invalid environment variable name {name:?} in \"${{...}}\""
                ));
            }
            let Some(value) = env(name) else {
                return Err(format!("environment variable {name} is not set"));
            };
            out.push_str(&value);
            secrets.push(Secret::new(value));
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok((out, secrets))
}

/// Rephrase serde's wording in the words of a config file: keys, not fields.
pub fn humanize(message: &str) -> String {
    fn expected(rest: &str) -> String {
        let rest = rest.replace('`', "");
        if let Some(list) = rest.strip_prefix(", expected one of ") {
            format!(", expected one of: {list}")
        } else if let Some(one) = rest.strip_prefix(", expected ") {
            format!(", expected {one}")
        } else {
            rest
        }
    }
    let message = message.trim();
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some((name, rest)) = message.strip_prefix(prefix).and_then(|r| r.split_once('`')) {
            if rest.contains("there are no fields") {
                return format!("unknown {what} {name:?}: this table takes no keys");
            }
            return format!("unknown {what} {name:?}{}", expected(rest));
        }
    }
    if let Some((key, _)) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
    {
        return format!("missing key {key:?}");
    }
    message.replace('`', "\"")
}

/// Load and validate `data` as the main config file, in a fresh temporary directory, with a
/// fixed environment (`TOKEN`, `USER`, `PASS` set). The fuzz target and the corpus replay test
/// call this: whatever the bytes, it returns (never panics, never hangs on a named file).
pub fn exercise(data: &[u8]) -> Result<usize, usize> {
    // `**` in an include walks whole directory trees (slow, not wrong): not what a fuzzer
    // should spend its time on.
    if data.windows(2).any(|w| w == b"**") {
        return Err(0);
    }
    let Ok(dir) = tempfile::tempdir() else {
        return Err(0);
    };
    let path = dir.path().join("vantage.toml");
    if std::fs::write(&path, data).is_err() {
        return Err(0);
    }
    let env = |name: &str| match name {
        "TOKEN" => Some("tok-\"SECRET\\abc".to_string()),
        "USER" => Some("user".to_string()),
        "PASS" => Some("p@ss w%rd".to_string()),
        _ => None,
    };
    match super::load_with_env(&path, &env) {
        Ok(c) => Ok(c.probes.len()),
        Err(e) => Err(e.errors.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables() {
        let (text, secrets) = expand("Bearer ${TOKEN}!", &env).unwrap();
        assert_eq!(text, "Bearer s3cr3t!");
        assert_eq!(secrets.len(), 1);
        assert_eq!(expand("$${TOKEN} $5 a$", &env).unwrap().0, "${TOKEN} $5 a$");
        assert_eq!(expand("${EMPTY}", &env).unwrap().0, "");
    }

    #[test]
    fn names_missing_variable_without_values() {
        let err = expand("${NOPE}", &env).unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
        assert!(expand("${TOKEN", &env).is_err());
        assert!(expand("${1X}", &env).is_err());
        assert!(expand("${}", &env).is_err());
    }

    #[test]
    fn humanizes_serde_messages() {
        assert_eq!(
            humanize("unknown field `intervall`, expected one of `interval`, `timeout`"),
            "unknown key \"intervall\", expected one of: interval, timeout"
        );
        assert_eq!(humanize("missing field `name`"), "missing key \"name\"");
    }

    #[test]
    fn lines_and_columns() {
        let mut s = Sources::default();
        let f = s.add("a.toml".into(), "a.toml".into(), "x = 1\n  yé = 2\n".into());
        let d = s.diag(f, 11, "m");
        assert_eq!((d.line, d.col), (2, 5));
        assert_eq!(d.to_string(), "a.toml:2:5: m");
        // Inside a multi-byte character: the character's own column.
        assert_eq!(s.diag(f, 10, "m").col, 4);
        assert_eq!(s.diag(f, 9999, "m").line, 3);
    }
}
