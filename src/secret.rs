//! Redaction at the edges of the process: the log writer. The [`Secret`] and [`Redactor`] types
//! live in the probes crate, which redacts evidence as it builds it.

use std::io::{self, Write};
use std::sync::{Arc, RwLock};

pub use vantage_probes::secret::{Redactor, Secret, MASK};

/// The redactor the log writer consults. Shared because secrets are known only once the config
/// is loaded, after logging has started.
pub type SharedRedactor = Arc<RwLock<Redactor>>;

/// A `tracing_subscriber` writer that redacts each event before it reaches stderr. The fmt layer
/// formats a whole event and then writes it, so buffering until drop sees the entire line.
pub struct RedactingWriter {
    redactor: SharedRedactor,
    buf: Vec<u8>,
}

impl RedactingWriter {
    pub fn new(redactor: SharedRedactor) -> Self {
        Self {
            redactor,
            buf: Vec::new(),
        }
    }
}

impl Write for RedactingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        let clean = match self.redactor.read() {
            Ok(r) => r.redact(&text).into_owned(),
            // A poisoned lock must not let a secret through: drop the line instead.
            Err(_) => "log line withheld: redactor unavailable\n".to_string(),
        };
        io::stderr().write_all(clean.as_bytes())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
