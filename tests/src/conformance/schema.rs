//! Pruning, defaulting and OpenAPI validation of a custom resource against its CRD's structural
//! schema, as kube-apiserver does them (k8s.io/apiextensions-apiserver: `structural/pruning`,
//! `structural/defaulting`, and kube-openapi's `validate` for the schema).
//!
//! Hand-written rather than the `jsonschema` crate: the Kubernetes-only keywords (`nullable`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-list-type`, `x-kubernetes-preserve-unknown-fields`)
//! change what the standard ones mean (`type` with `nullable`, the empty schema of an int-or-string),
//! Kubernetes checks only some `format`s, and the violations need Kubernetes' field paths
//! (`spec.rules[0].matches`, `spec.selector.matchLabels[istio]`). The walk is short.

use super::Violation;
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

/// A field path as Kubernetes prints it: `spec.rules[0].matches`, map keys as `[key]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JsonPath(String);

impl JsonPath {
    pub(crate) fn root() -> JsonPath {
        JsonPath(String::new())
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// A declared property.
    pub(crate) fn field(&self, name: &str) -> JsonPath {
        if self.0.is_empty() {
            JsonPath(name.to_string())
        } else {
            JsonPath(format!("{}.{name}", self.0))
        }
    }

    /// A key of an `additionalProperties` map.
    pub(crate) fn key(&self, key: &str) -> JsonPath {
        JsonPath(format!("{}[{key}]", self.0))
    }

    pub(crate) fn index(&self, index: usize) -> JsonPath {
        JsonPath(format!("{}[{index}]", self.0))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("<root>")
        } else {
            f.write_str(&self.0)
        }
    }
}

fn violation(path: &JsonPath, message: impl Into<String>) -> Violation {
    Violation {
        path: path.to_string(),
        message: message.into(),
    }
}

/// The schema of declared property `name`.
pub(crate) fn property<'s>(schema: &'s Value, name: &str) -> Option<&'s Value> {
    schema.get("properties")?.get(name)
}

/// The value schema of an `additionalProperties` map (`true` counts as the empty schema).
pub(crate) fn additional_properties(schema: &Value) -> Option<&Value> {
    static EMPTY: OnceLock<Value> = OnceLock::new();
    match schema.get("additionalProperties")? {
        Value::Bool(true) => Some(EMPTY.get_or_init(|| Value::Object(Map::new()))),
        Value::Object(_) => schema.get("additionalProperties"),
        _ => None,
    }
}

fn flag(schema: &Value, keyword: &str) -> bool {
    schema.get(keyword).and_then(Value::as_bool) == Some(true)
}

/// Pruning: removes every field the schema does not declare (reporting each, since a real API
/// server drops it silently), and — silently, as Kubernetes does — `null`s of non-nullable
/// properties (they get their default next, if they have one). At the root, `apiVersion`, `kind`
/// and `metadata` are always kept; `metadata` is not looked into.
pub(crate) fn prune(value: &mut Value, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
    match value {
        Value::Object(map) => {
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let additional = additional_properties(schema);
            map.retain(|name, child| {
                if path.is_root() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                    return true;
                }
                if let Some(child_schema) = property(schema, name) {
                    if child.is_null() && !flag(child_schema, "nullable") {
                        return false;
                    }
                    prune(child, child_schema, &path.field(name), out);
                    true
                } else if let Some(child_schema) = additional {
                    if child.is_null() && !flag(child_schema, "nullable") {
                        return false;
                    }
                    prune(child, child_schema, &path.key(name), out);
                    true
                } else if preserve {
                    true
                } else {
                    out.push(violation(
                        &path.field(name),
                        "field not declared in the schema: a real API server drops it silently",
                    ));
                    false
                }
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune(item, item_schema, &path.index(index), out);
                }
            }
        }
        _ => {}
    }
}

/// Defaulting: every absent declared property with a `default` gets it (a copy), in every object
/// present, recursively — defaults inside a default included, as the API server does.
pub(crate) fn apply_defaults(value: &mut Value, schema: &Value, path: &JsonPath) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property_schema) in properties {
                    if path.is_root() && name == "metadata" {
                        continue;
                    }
                    if let (false, Some(default)) = (map.contains_key(name), property_schema.get("default")) {
                        map.insert(name.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(name) {
                        apply_defaults(child, property_schema, &path.field(name));
                    }
                }
            }
            if let Some(child_schema) = additional_properties(schema) {
                for (name, child) in map.iter_mut() {
                    if property(schema, name).is_none() {
                        apply_defaults(child, child_schema, &path.key(name));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    apply_defaults(item, item_schema, &path.index(index));
                }
            }
        }
        _ => {}
    }
}

/// The OpenAPI v3 validation of `value` against `schema`, with Kubernetes' extensions.
pub(crate) fn validate(value: &Value, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
    if value.is_null() {
        // `nullable: true` accepts null and nothing else applies; without it, null is not of any
        // type (a null that reaches here is in a list, or a property without a schema type).
        if !flag(schema, "nullable") {
            if let Some(expected) = schema.get("type").and_then(Value::as_str) {
                out.push(violation(path, format!("must be of type {expected}: \"null\"")));
            }
        }
        return;
    }
    if !type_matches(value, schema, path, out) {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.iter().any(|a| json_equal(a, value)) {
            let supported: Vec<String> = allowed.iter().map(Value::to_string).collect();
            out.push(violation(
                path,
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    supported.join(", ")
                ),
            ));
        }
    }
    match value {
        Value::String(s) => validate_string(s, schema, path, out),
        Value::Number(_) => validate_number(value, schema, path, out),
        Value::Array(items) => validate_array(items, schema, path, out),
        Value::Object(map) => validate_object(map, schema, path, out),
        Value::Bool(_) | Value::Null => {}
    }
    validate_combinators(value, schema, path, out);
}

/// `type`, with `x-kubernetes-int-or-string` (an integer or a string, whatever `type` says) and
/// integral floats counting as integers (JSON has one number type).
fn type_matches(value: &Value, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) -> bool {
    if flag(schema, "x-kubernetes-int-or-string") {
        let ok = value.is_string() || is_integer(value);
        if !ok {
            out.push(violation(
                path,
                format!("must be of type integer-or-string: {value}"),
            ));
        }
        return ok;
    }
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        return true;
    };
    let ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => is_integer(value),
        _ => true,
    };
    if !ok {
        out.push(violation(
            path,
            format!("must be of type {expected}: {}", json_type(value)),
        ));
    }
    ok
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "\"null\"",
        Value::Bool(_) => "\"boolean\"",
        Value::Number(n) if n.is_f64() => "\"number\"",
        Value::Number(_) => "\"integer\"",
        Value::String(_) => "\"string\"",
        Value::Array(_) => "\"array\"",
        Value::Object(_) => "\"object\"",
    }
}

/// Equality as JSON: numbers by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn validate_string(s: &str, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
    // Lengths are in characters (Go runes), not bytes.
    let length = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if length > max {
            out.push(violation(
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if length < min {
            out.push(violation(
                path,
                format!("Invalid value: \"{s}\": should be at least {min} chars long"),
            ));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match compiled_pattern(pattern) {
            Ok(regex) if !regex.is_match(s) => out.push(violation(
                path,
                format!("Invalid value: \"{s}\": should match '{pattern}'"),
            )),
            Ok(_) => {}
            Err(error) => out.push(violation(
                path,
                format!("pattern '{pattern}' does not compile: {error}"),
            )),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        if let Some(problem) = check_format(s, format) {
            out.push(violation(path, format!("Invalid value: \"{s}\": {problem}")));
        }
    }
}

/// Go's regexp (RE2) syntax is what Kubernetes uses; the `regex` crate accepts the same syntax
/// for everything the vendored patterns use. Both search (unanchored) like `MatchString`.
fn compiled_pattern(pattern: &str) -> Result<Regex, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Result<Regex, String>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string()))
        .clone()
}

/// The string formats Kubernetes checks that appear in CRDs KEA meets; every other format
/// (`int32`, `double`, unknown names) is left alone, as Kubernetes leaves unknown ones.
fn check_format(s: &str, format: &str) -> Option<String> {
    let ok = match format {
        "byte" => is_base64(s),
        "date-time" | "datetime" => {
            let re =
                compiled_pattern(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$");
            re.is_ok_and(|re| re.is_match(s))
        }
        "date" => compiled_pattern(r"^\d{4}-\d{2}-\d{2}$").is_ok_and(|re| re.is_match(s)),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "uuid" => compiled_pattern(r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
            .is_ok_and(|re| re.is_match(s)),
        _ => true,
    };
    (!ok).then(|| format!("must be a valid {format}"))
}

/// Standard base64 with padding (Go's `base64.StdEncoding`).
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    s.len().is_multiple_of(4)
        && padding <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn validate_number(value: &Value, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
    let Some(n) = value.as_f64() else { return };
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMaximum");
        if n > max || (exclusive && n == max) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(violation(
                path,
                format!("Invalid value: {value}: should be {relation} {max}"),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMinimum");
        if n < min || (exclusive && n == min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(violation(
                path,
                format!("Invalid value: {value}: should be {relation} {min}"),
            ));
        }
    }
    if let Some(factor) = schema.get("multipleOf").and_then(Value::as_f64) {
        if factor > 0.0 && (n / factor).fract() != 0.0 {
            out.push(violation(
                path,
                format!("Invalid value: {value}: should be a multiple of {factor}"),
            ));
        }
    }
}

fn validate_array(items: &[Value], schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
    let count = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if count > max {
            out.push(violation(
                path,
                format!("Too many: {count}: must have at most {max} items"),
            ));
        }
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if count < min {
            out.push(violation(
                path,
                format!("Invalid value: {count}: should have at least {min} items"),
            ));
        }
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    if list_type == Some("set") || flag(schema, "uniqueItems") {
        for (index, item) in items.iter().enumerate() {
            if items[..index].iter().any(|earlier| json_equal(earlier, item)) {
                out.push(violation(&path.index(index), format!("Duplicate value: {item}")));
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let key_of =
            |item: &Value| -> Vec<Option<Value>> { keys.iter().map(|k| item.get(*k).cloned()).collect() };
        for (index, item) in items.iter().enumerate() {
            let key = key_of(item);
            if items[..index].iter().any(|earlier| key_of(earlier) == key) {
                let shown: Vec<String> = keys
                    .iter()
                    .zip(&key)
                    .map(|(k, v)| format!("\"{k}\":{}", v.as_ref().map_or("null".into(), Value::to_string)))
                    .collect();
                out.push(violation(
                    &path.index(index),
                    format!("Duplicate value: map[{}]", shown.join(" ")),
                ));
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (index, item) in items.iter().enumerate() {
            validate(item, item_schema, &path.index(index), out);
        }
    }
}

fn validate_object(map: &Map<String, Value>, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                out.push(violation(&path.field(name), "Required value"));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if count > max {
            out.push(violation(
                path,
                format!("Too many: {count}: must have at most {max} items"),
            ));
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
        if count < min {
            out.push(violation(
                path,
                format!("Invalid value: {count}: should have at least {min} properties"),
            ));
        }
    }
    let additional = additional_properties(schema);
    for (name, child) in map {
        if path.is_root() && name == "metadata" {
            if !child.is_object() {
                out.push(violation(&path.field(name), "must be of type object"));
            }
            continue;
        }
        if let Some(child_schema) = property(schema, name) {
            validate(child, child_schema, &path.field(name), out);
        } else if let Some(child_schema) = additional {
            validate(child, child_schema, &path.key(name), out);
        }
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not` (Istio expresses "at most one of" with them).
fn validate_combinators(value: &Value, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
    let passes = |branch: &Value| {
        let mut errors = Vec::new();
        validate(value, branch, path, &mut errors);
        errors.is_empty()
    };
    if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
        for branch in branches {
            validate(value, branch, path, out);
        }
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        if !branches.iter().any(passes) {
            out.push(violation(path, "must validate at least one schema (anyOf)"));
        }
    }
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        let valid = branches.iter().filter(|b| passes(b)).count();
        if valid != 1 {
            out.push(violation(
                path,
                format!("must validate one and only one schema (oneOf); {valid} alternatives are valid"),
            ));
        }
    }
    if let Some(branch) = schema.get("not") {
        if passes(branch) {
            out.push(violation(path, "must not validate the schema (not)"));
        }
    }
}
