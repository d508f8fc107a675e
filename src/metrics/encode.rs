//! The exposition text, written by hand for the per-probe and per-SLO families: each probe's
//! label set is escaped and joined once per reload (its *prefix*, kept in `ProbeMeta`; an SLO's
//! once per scrape), and every sample of every family is one `push_str` of it. Both formats come from the same writer: Prometheus text 0.0.4
//! (counter families named with `_total`, no `# UNIT`) and OpenMetrics (`# UNIT`, `# EOF`).
//!
//! A [`Fam`] collects one family's samples while the render walks the probes once (one record
//! lock per probe per scrape), and [`Fam::finish`] hands over its header and samples together,
//! as both formats require. The exposition is the list of these pieces, sent as they are (or
//! gzipped piece by piece), never joined into one string.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::histogram::Buckets;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
            Type::Histogram => "histogram",
            Type::Summary => "summary",
        }
    }
}

/// One family: its header and, as they are added, its samples.
#[derive(Debug)]
pub struct Fam {
    /// The family's name, with its unit and without `_total`.
    name: &'static str,
    help: &'static str,
    ty: Type,
    unit: Option<&'static str>,
    body: String,
    /// A histogram family's `le` values, formatted once.
    les: Vec<String>,
}

impl Fam {
    pub fn new(name: &'static str, help: &'static str, ty: Type) -> Self {
        Self {
            name,
            help,
            ty,
            unit: None,
            body: String::new(),
            les: Vec::new(),
        }
    }

    /// A family measured in seconds: `name` must end in `_seconds`.
    pub fn seconds(name: &'static str, help: &'static str, ty: Type) -> Self {
        debug_assert!(name.ends_with("_seconds"), "{name}");
        Self {
            unit: Some("seconds"),
            ..Self::new(name, help, ty)
        }
    }

    /// `name_suffix{prefix,extra…,le="…"} ` (the `le` of a histogram bucket, when given).
    fn line(&mut self, suffix: &str, prefix: &str, extra: &[(&str, &str)], le: Option<&str>) {
        self.body.push_str(self.name);
        self.body.push_str(suffix);
        if prefix.is_empty() && extra.is_empty() && le.is_none() {
            self.body.push(' ');
            return;
        }
        self.body.push('{');
        self.body.push_str(prefix);
        let mut first = prefix.is_empty();
        for (k, v) in extra.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.body.push(',');
            }
            first = false;
            push_label(&mut self.body, k, v);
        }
        self.body.push_str("} ");
    }

    /// A gauge sample (or a summary's quantile): `prefix` is [`prefix`]'s text.
    pub fn gauge(&mut self, prefix: &str, extra: &[(&str, &str)], v: f64) {
        self.line("", prefix, extra, None);
        push_f64(&mut self.body, v);
        self.body.push('\n');
    }

    pub fn counter(&mut self, prefix: &str, extra: &[(&str, &str)], v: u64) {
        self.line("_total", prefix, extra, None);
        push_u64(&mut self.body, v);
        self.body.push('\n');
    }

    /// A summary's `_sum` and `_count`.
    pub fn sum_count(&mut self, prefix: &str, extra: &[(&str, &str)], sum: f64, count: u64) {
        self.line("_sum", prefix, extra, None);
        push_f64(&mut self.body, sum);
        self.body.push('\n');
        self.line("_count", prefix, extra, None);
        push_u64(&mut self.body, count);
        self.body.push('\n');
    }

    pub fn histogram<const N: usize>(
        &mut self,
        prefix: &str,
        extra: &[(&str, &str)],
        h: &Buckets<N>,
    ) {
        if self.les.len() != N {
            self.les = h.bounds().iter().map(|b| f64_text(*b)).collect();
        }
        let les = std::mem::take(&mut self.les);
        for (le, n) in les.iter().zip(h.cumulative()) {
            self.line("_bucket", prefix, extra, Some(le));
            push_u64(&mut self.body, n);
            self.body.push('\n');
        }
        self.les = les;
        self.line("_bucket", prefix, extra, Some("+Inf"));
        push_u64(&mut self.body, h.count());
        self.body.push('\n');
        self.sum_count(prefix, extra, h.sum(), h.count());
    }

    /// The family's header and samples, as two pieces of the exposition (none if it has no
    /// samples). The samples are moved out, not copied: a 50,000-probe scrape is ~100 MiB.
    pub fn finish(&mut self, out: &mut Vec<String>, openmetrics: bool) {
        if self.body.is_empty() {
            return;
        }
        let total = if self.ty == Type::Counter && !openmetrics {
            "_total"
        } else {
            ""
        };
        let mut head = String::with_capacity(256);
        let _ = writeln!(head, "# HELP {}{total} {}", self.name, self.help);
        let _ = writeln!(head, "# TYPE {}{total} {}", self.name, self.ty.as_str());
        if let (Some(unit), true) = (self.unit, openmetrics) {
            let _ = writeln!(head, "# UNIT {} {unit}", self.name);
        }
        out.push(head);
        out.push(std::mem::take(&mut self.body));
    }

    /// Make room for `bytes` of samples.
    pub fn reserve(&mut self, bytes: usize) {
        self.body.reserve(bytes);
    }

    /// Bytes of samples so far.
    pub fn text_len(&self) -> usize {
        self.body.len()
    }
}

/// A label set's text, to be written inside the braces of every sample that carries it:
/// `probe="api",kind="http"`.
pub fn prefix<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        push_label(&mut out, k, v);
    }
    out
}

fn push_label(out: &mut String, k: &str, v: &str) {
    out.push_str(k);
    out.push_str("=\"");
    out.push_str(&escape_label(v));
    out.push('"');
}

/// Escape a label value for the text formats: backslash, double quote, newline.
pub fn escape_label(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// A float as both formats read it: shortest round-trip digits, `+Inf`, `-Inf`, `NaN`.
/// Whole numbers (flags, counts, timestamps) take a faster path with the same text (`1.0`).
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        if v == 0.0 && v.is_sign_negative() {
            out.push('-');
        }
        out.push_str(itoa::Buffer::new().format(v as i64));
        out.push_str(".0");
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

fn f64_text(v: f64) -> String {
    let mut s = String::new();
    push_f64(&mut s, v);
    s
}

fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Translate OpenMetrics text into Prometheus text format 0.0.4, for the part of `/metrics`
/// that prometheus-client writes (vantage's own metrics).
pub fn to_prometheus_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut lines = om.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        // A family without labels: `name{} 1` reads as `name 1`.
        if let Some((series, value)) = line.split_once("{} ") {
            out.push_str(series);
            out.push(' ');
            out.push_str(value);
            out.push('\n');
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            let is_counter = lines
                .peek()
                .is_some_and(|next| *next == format!("# TYPE {name} counter"));
            if is_counter {
                out.push_str(&format!("# HELP {name}_total{}\n", &rest[name.len()..]));
                lines.next();
                out.push_str(&format!("# TYPE {name}_total counter\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_to_prometheus_text() {
        let om = "# HELP a_runs Runs\n# TYPE a_runs counter\na_runs_total{x=\"1\"} 3\n# HELP b Gauge\n# TYPE b gauge\n# UNIT b seconds\nb{} 1.0\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_runs_total Runs\n# TYPE a_runs_total counter\na_runs_total{x=\"1\"} 3\n# HELP b Gauge\n# TYPE b gauge\nb 1.0\n"
        );
    }

    #[test]
    fn whole_numbers_read_as_ryu_writes_them() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            200.0,
            1_700_000_000.0,
            999_999_999_999_999.0,
            0.5,
            1e15,
            1e16,
            1e-7,
        ] {
            assert_eq!(f64_text(v), ryu::Buffer::new().format(v), "{v}");
        }
        assert_eq!(f64_text(f64::NAN), "NaN");
        assert_eq!(f64_text(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn families_in_both_formats() {
        static B: [f64; 2] = [0.5, 1.0];
        let p = prefix([("probe", "a\"b"), ("kind", "http")]);
        let mut runs = Fam::new("probe_runs", "Runs", Type::Counter);
        runs.counter(&p, &[("result", "success")], 3);
        let mut lat = Fam::seconds("probe_latency_seconds", "Latency", Type::Histogram);
        let mut h = Buckets::new(&B);
        h.observe(0.25);
        h.observe(2.0);
        lat.histogram(&p, &[], &h);
        let mut up = Fam::new("up", "Up", Type::Gauge);
        up.gauge("", &[], 1.0);
        let empty = Fam::new("none", "Nothing", Type::Gauge);

        let mut chunks = Vec::new();
        for mut f in [runs, lat, up, empty] {
            f.finish(&mut chunks, false);
        }
        let text = chunks.concat();
        assert_eq!(
            text,
            "# HELP probe_runs_total Runs\n# TYPE probe_runs_total counter\n\
             probe_runs_total{probe=\"a\\\"b\",kind=\"http\",result=\"success\"} 3\n\
             # HELP probe_latency_seconds Latency\n# TYPE probe_latency_seconds histogram\n\
             probe_latency_seconds_bucket{probe=\"a\\\"b\",kind=\"http\",le=\"0.5\"} 1\n\
             probe_latency_seconds_bucket{probe=\"a\\\"b\",kind=\"http\",le=\"1.0\"} 1\n\
             probe_latency_seconds_bucket{probe=\"a\\\"b\",kind=\"http\",le=\"+Inf\"} 2\n\
             probe_latency_seconds_sum{probe=\"a\\\"b\",kind=\"http\"} 2.25\n\
             probe_latency_seconds_count{probe=\"a\\\"b\",kind=\"http\"} 2\n\
             # HELP up Up\n# TYPE up gauge\nup 1.0\n"
        );

        let mut om = Vec::new();
        let mut runs = Fam::new("probe_runs", "Runs", Type::Counter);
        runs.counter("", &[], 1);
        let mut d = Fam::seconds("d_seconds", "D", Type::Gauge);
        d.gauge("", &[("phase", "tls")], f64::INFINITY);
        runs.finish(&mut om, true);
        assert_eq!(runs.text_len(), 0, "emptied");
        d.finish(&mut om, true);
        let om = om.concat();
        assert_eq!(
            om,
            "# HELP probe_runs Runs\n# TYPE probe_runs counter\nprobe_runs_total 1\n\
             # HELP d_seconds D\n# TYPE d_seconds gauge\n# UNIT d_seconds seconds\n\
             d_seconds{phase=\"tls\"} +Inf\n"
        );
    }
}
