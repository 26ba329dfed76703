//! The documents of a bundle and `$ref` resolution between them.
//!
//! A bundle is compiled from one root document plus the documents its references name
//! (`common.yaml#/components/schemas/Error`), resolved relative to the referring document.
//! Remote (`http:`) references are not fetched: every document must be given to the compiler.

use crate::error::DocumentError;
use percent_encoding::percent_decode_str;
use serde_json::Value;
use std::collections::BTreeMap;

/// A JSON value's address: document name + JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub document: String,
    pub pointer: String,
}

impl Location {
    pub fn new(document: &str, pointer: impl Into<String>) -> Self {
        Self {
            document: document.to_string(),
            pointer: pointer.into(),
        }
    }

    pub fn child(&self, token: &str) -> Self {
        Self::new(&self.document, crate::error::pointer_push(&self.pointer, token))
    }

    pub fn error(&self, reason: impl Into<String>) -> DocumentError {
        DocumentError::new(&self.document, &self.pointer, reason)
    }
}

/// Parsed documents by name; the first one added is the root.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    root: Option<String>,
    documents: BTreeMap<String, Value>,
}

/// Parses a document, JSON or (with the `yaml` feature) YAML. YAML is a superset of JSON, but the
/// JSON parser is faster and gives better errors, so text that looks like JSON is read as JSON.
pub fn parse_document(name: &str, bytes: &[u8]) -> Result<Value, DocumentError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| DocumentError::new(name, "", format!("not UTF-8: {e}")))?;
    let looks_like_json = text.trim_start().starts_with('{');
    if looks_like_json {
        return serde_json::from_str(text)
            .map_err(|e| DocumentError::new(name, "", format!("invalid JSON: {e}")));
    }
    parse_yaml(name, text)
}

#[cfg(feature = "yaml")]
fn parse_yaml(name: &str, text: &str) -> Result<Value, DocumentError> {
    // Not `serde_yaml_ng::from_str::<Value>`: it refuses integers beyond 64 bits (see `yaml`).
    crate::yaml::from_str(text).map_err(|e| DocumentError::new(name, "", format!("invalid YAML: {e}")))
}

#[cfg(not(feature = "yaml"))]
fn parse_yaml(name: &str, _text: &str) -> Result<Value, DocumentError> {
    Err(DocumentError::new(
        name,
        "",
        "not JSON (this build reads YAML only through the `kea` CLI)",
    ))
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    /// One document, no external references.
    pub fn single(name: &str, root: Value) -> Self {
        let mut sources = Self::new();
        sources.add(name, root);
        sources
    }

    /// Adds a document; the first one is the root.
    pub fn add(&mut self, name: &str, document: Value) {
        if self.root.is_none() {
            self.root = Some(name.to_string());
        }
        self.documents.insert(name.to_string(), document);
    }

    /// Loads `root` and every document its references name, transitively, with `read`.
    pub fn load(
        root: &str,
        mut read: impl FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Self, DocumentError> {
        let mut sources = Self::new();
        let mut queue = vec![root.to_string()];
        while let Some(name) = queue.pop() {
            if sources.documents.contains_key(&name) {
                continue;
            }
            let bytes = read(&name).map_err(|e| DocumentError::new(&name, "", e))?;
            let document = parse_document(&name, &bytes)?;
            let mut refs = Vec::new();
            collect_refs(&document, &mut refs);
            for reference in refs {
                let (file, _) = split_ref(&reference);
                if !file.is_empty() && !is_remote(file) {
                    queue.push(join_relative(&name, file));
                }
            }
            sources.add(&name, document);
        }
        Ok(sources)
    }

    pub fn root_name(&self) -> &str {
        self.root.as_deref().unwrap_or("")
    }

    pub fn root(&self) -> Option<&Value> {
        self.documents.get(self.root_name())
    }

    pub fn get(&self, at: &Location) -> Option<&Value> {
        self.documents.get(&at.document)?.pointer(&at.pointer)
    }

    /// Where `reference`, written in document `from`, points; errors for remote or missing targets.
    pub fn target(&self, from: &Location, reference: &str) -> Result<Location, DocumentError> {
        let (file, fragment) = split_ref(reference);
        if is_remote(file) {
            return Err(from.error(format!(
                "remote reference {reference:?} is not fetched; add the document to the bundle"
            )));
        }
        let document = if file.is_empty() {
            from.document.clone()
        } else {
            join_relative(&from.document, file)
        };
        if !self.documents.contains_key(&document) {
            return Err(from.error(format!(
                "reference {reference:?}: document {document:?} is not part of the bundle"
            )));
        }
        let pointer = percent_decode_str(fragment).decode_utf8_lossy().into_owned();
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(from.error(format!(
                "reference {reference:?}: the fragment must be a JSON pointer"
            )));
        }
        let target = Location::new(&document, pointer);
        if self.get(&target).is_none() {
            return Err(from.error(format!("reference {reference:?} points to nothing")));
        }
        Ok(target)
    }

    /// Follows `$ref` chains from `at` to a node that is not a reference. Chains that come back to
    /// themselves are errors (an object cannot be its own definition).
    pub fn resolve(&self, at: &Location) -> Result<(Location, &Value), DocumentError> {
        let mut current = at.clone();
        let mut seen = vec![current.clone()];
        loop {
            let value = self.get(&current).ok_or_else(|| current.error("nothing here"))?;
            let Some(reference) = ref_of(value) else {
                return Ok((current, value));
            };
            let next = self.target(&current.child("$ref"), reference)?;
            if seen.contains(&next) {
                let chain: Vec<String> = seen
                    .iter()
                    .map(|l| format!("{}#{}", l.document, l.pointer))
                    .collect();
                return Err(at.error(format!(
                    "reference cycle: {} → {}#{}",
                    chain.join(" → "),
                    next.document,
                    next.pointer
                )));
            }
            seen.push(next.clone());
            current = next;
        }
    }
}

/// The `$ref` string of a reference object.
pub fn ref_of(value: &Value) -> Option<&str> {
    value.as_object()?.get("$ref")?.as_str()
}

fn split_ref(reference: &str) -> (&str, &str) {
    reference.split_once('#').unwrap_or((reference, ""))
}

fn is_remote(file: &str) -> bool {
    file.contains("://")
}

/// Resolves `file` against the directory of `base` (`specs/api.yaml` + `../common.yaml` → `common.yaml`).
fn join_relative(base: &str, file: &str) -> String {
    let mut parts: Vec<&str> = if file.starts_with('/') {
        Vec::new()
    } else {
        let mut dir: Vec<&str> = base.split('/').collect();
        dir.pop();
        dir
    };
    for part in file.split('/') {
        match part {
            "." => {}
            ".." if parts.last().is_some_and(|p| !p.is_empty() && *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_documents_resolve_against_the_referrer() {
        assert_eq!(join_relative("api.yaml", "common.yaml"), "common.yaml");
        assert_eq!(
            join_relative("specs/api.yaml", "./common.yaml"),
            "specs/common.yaml"
        );
        assert_eq!(
            join_relative("specs/v1/api.yaml", "../common.yaml"),
            "specs/common.yaml"
        );
    }

    #[test]
    fn reference_chains_resolve_and_cycles_are_named() {
        let mut sources = Sources::new();
        sources.add(
            "api.json",
            json!({"a": {"$ref": "#/b"}, "b": {"$ref": "other.json#/c"}, "x": {"$ref": "#/y"}, "y": {"$ref": "#/x"}}),
        );
        sources.add("other.json", json!({"c": {"type": "string"}}));
        let (at, value) = sources.resolve(&Location::new("api.json", "/a")).unwrap();
        assert_eq!(at, Location::new("other.json", "/c"));
        assert_eq!(value, &json!({"type": "string"}));
        let cycle = sources.resolve(&Location::new("api.json", "/x")).unwrap_err();
        assert!(cycle.reason.contains("reference cycle"), "{cycle}");
        assert_eq!(cycle.pointer, "/x");
        let missing = sources
            .target(&Location::new("api.json", "/a"), "#/nowhere")
            .unwrap_err();
        assert!(missing.reason.contains("points to nothing"));
        let remote = sources
            .target(&Location::new("api.json", "/a"), "https://x/y.json#/a")
            .unwrap_err();
        assert!(remote.reason.contains("remote reference"));
    }
}
