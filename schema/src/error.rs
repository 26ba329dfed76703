//! Errors of document loading and bundle compilation: each names the document and the JSON pointer
//! of the offending node, so a user can find it in their file.

use std::fmt;

/// An invalid OpenAPI document or bundle: where (document + JSON pointer) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DocumentError {
    /// Document name as given to the compiler (a file name, or `inline`).
    pub document: String,
    /// JSON pointer (RFC 6901) of the offending node; empty for the whole document.
    pub pointer: String,
    pub reason: String,
}

impl DocumentError {
    pub fn new(document: &str, pointer: &str, reason: impl Into<String>) -> Self {
        Self {
            document: document.to_string(),
            pointer: pointer.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}: {}", self.document, self.pointer, self.reason)
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` (RFC 6901 §3).
pub fn pointer_push(pointer: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{pointer}/{escaped}")
}
