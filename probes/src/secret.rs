//! Secrets: values read from the environment. They are wrapped from the moment they are read,
//! and every text that leaves vantage (reports, logs, evidence, error messages) passes through a
//! [`Redactor`] that knows them all. Probes redact their own evidence before they shorten it, so
//! a target that echoes a token back cannot leak even a prefix of it.

use std::borrow::Cow;
use std::fmt;

use crate::outcome::Outcome;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A value from the environment. Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The real value, for the one place that needs it (building a request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Replaces every known secret value in a text with `***`.
#[derive(Clone, Default, Debug)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<Secret>,
}

impl Redactor {
    pub fn add(&mut self, secret: Secret) {
        if secret.expose().is_empty() || self.secrets.contains(&secret) {
            return;
        }
        self.secrets.push(secret);
        self.secrets
            .sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
    }

    pub fn extend(&mut self, other: &Redactor) {
        for s in &other.secrets {
            self.add(s.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Length of the longest secret, in bytes.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, |s| s.expose().len())
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in &self.secrets {
            if out.contains(s.expose()) {
                out = Cow::Owned(out.replace(s.expose(), MASK));
            }
        }
        out
    }

    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.redact(text) {
            *text = clean;
        }
    }

    /// Scrub every free-text field of an outcome.
    pub fn outcome(&self, outcome: &mut Outcome) {
        if self.secrets.is_empty() {
            return;
        }
        self.redact_in_place(&mut outcome.evidence);
        let facts = &mut outcome.facts;
        if let Some(tls) = &mut facts.tls {
            if let Some(d) = &mut tls.verify_detail {
                self.redact_in_place(d);
            }
            for c in &mut tls.chain {
                self.redact_in_place(&mut c.subject);
                self.redact_in_place(&mut c.issuer);
                c.sans.iter_mut().for_each(|s| self.redact_in_place(s));
            }
        }
        if let Some(h) = &mut facts.health {
            self.redact_in_place(&mut h.status);
            for c in &mut h.checks {
                self.redact_in_place(&mut c.name);
                self.redact_in_place(&mut c.status);
            }
        }
        for step in &mut facts.steps {
            self.redact_in_place(&mut step.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_mask() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn longest_secret_wins() {
        let mut r = Redactor::default();
        r.add(Secret::new("abc".into()));
        r.add(Secret::new("abcdef".into()));
        r.add(Secret::new(String::new()));
        assert_eq!(r.redact("x abcdef y abc"), "x *** y ***");
        assert!(matches!(r.redact("nothing"), Cow::Borrowed(_)));
    }
}
