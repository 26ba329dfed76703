//! Verified claims, and the conditions rules put on them.

use crate::config::ClaimRule;
use regex_lite::Regex;
use serde_json::{Map, Value};

/// Where a claim lives in the payload: `email`, `realm_access.roles` (dots descend into objects), or
/// a JSON pointer (`/https:~1~1example.com~1roles`) for names that contain dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(Vec<String>);

impl ClaimPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let segments: Vec<String> = if let Some(pointer) = text.strip_prefix('/') {
            pointer
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect()
        } else {
            text.split('.').map(str::to_owned).collect()
        };
        if text.is_empty() || segments.iter().any(String::is_empty) {
            return Err(format!(
                "{text:?} is not a claim path (e.g. \"email\", \"realm_access.roles\")"
            ));
        }
        Ok(Self(segments))
    }

    pub fn lookup<'v>(&self, claims: &'v Map<String, Value>) -> Option<&'v Value> {
        let (first, rest) = self.0.split_first()?;
        rest.iter().try_fold(claims.get(first)?, |value, segment| {
            value.as_object()?.get(segment)
        })
    }
}

#[derive(Debug)]
enum Condition {
    Equals(Value),
    OneOf(Vec<Value>),
    Contains(Value),
    Regex(Regex),
}

/// A compiled [`ClaimRule`].
#[derive(Debug)]
pub struct ClaimMatcher {
    path: ClaimPath,
    condition: Condition,
}

impl ClaimMatcher {
    /// Errors are `(field suffix, reason)`.
    pub fn compile(rule: &ClaimRule) -> Result<Self, (&'static str, String)> {
        let path = ClaimPath::parse(&rule.claim).map_err(|reason| (".claim", reason))?;
        let given = [
            rule.equals.is_some(),
            rule.one_of.is_some(),
            rule.contains.is_some(),
            rule.regex.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(("", "give exactly one of equals, oneOf, contains, regex".into()));
        }
        let condition = if let Some(value) = &rule.equals {
            Condition::Equals(value.clone())
        } else if let Some(values) = &rule.one_of {
            if values.is_empty() {
                return Err((".oneOf", "list at least one value".into()));
            }
            Condition::OneOf(values.clone())
        } else if let Some(value) = &rule.contains {
            Condition::Contains(value.clone())
        } else {
            let pattern = rule.regex.as_deref().unwrap_or_default();
            // Bounded so a configured pattern cannot make matching expensive.
            if pattern.len() > 1024 {
                return Err((".regex", "at most 1024 characters".into()));
            }
            Condition::Regex(Regex::new(pattern).map_err(|e| (".regex", e.to_string()))?)
        };
        Ok(Self { path, condition })
    }

    pub fn holds(&self, claims: &Map<String, Value>) -> bool {
        let Some(value) = self.path.lookup(claims) else {
            return false;
        };
        match &self.condition {
            Condition::Equals(expected) => value == expected,
            Condition::OneOf(options) => options.contains(value),
            Condition::Contains(needle) => match value {
                Value::Array(items) => items.contains(needle),
                Value::String(words) => needle
                    .as_str()
                    .is_some_and(|needle| words.split(' ').any(|w| w == needle)),
                _ => false,
            },
            Condition::Regex(regex) => value.as_str().is_some_and(|text| regex.is_match(text)),
        }
    }
}

/// Granted scopes: `scope` (space-separated string, RFC 8693) and `scp` (array or string).
pub fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(text)) => {
                scopes.extend(text.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
            }
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
    }
    scopes.sort();
    scopes.dedup();
    scopes
}

/// A claim as header text: strings as they are, other values as compact JSON.
pub fn claim_header_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> Map<String, Value> {
        json!({
            "sub": "alice", "scope": "read write", "scp": ["admin"],
            "realm_access": {"roles": ["user", "editor"]},
            "https://example.com/tenant": "acme", "email": "alice@example.com", "level": 3
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn rule(value: Value) -> ClaimMatcher {
        ClaimMatcher::compile(&serde_json::from_value(value).unwrap()).unwrap()
    }

    #[test]
    fn paths_descend_and_pointers_escape() {
        let c = claims();
        assert_eq!(
            ClaimPath::parse("realm_access.roles").unwrap().lookup(&c),
            Some(&json!(["user", "editor"]))
        );
        assert_eq!(
            ClaimPath::parse("/https:~1~1example.com~1tenant")
                .unwrap()
                .lookup(&c),
            Some(&json!("acme"))
        );
        assert_eq!(ClaimPath::parse("sub.x").unwrap().lookup(&c), None);
        assert!(ClaimPath::parse("a..b").is_err());
        assert!(ClaimPath::parse("").is_err());
    }

    #[test]
    fn conditions() {
        let c = claims();
        assert!(rule(json!({"claim": "sub", "equals": "alice"})).holds(&c));
        assert!(!rule(json!({"claim": "sub", "equals": "bob"})).holds(&c));
        assert!(rule(json!({"claim": "level", "oneOf": [1, 3]})).holds(&c));
        assert!(rule(json!({"claim": "realm_access.roles", "contains": "editor"})).holds(&c));
        assert!(!rule(json!({"claim": "realm_access.roles", "contains": "admin"})).holds(&c));
        assert!(rule(json!({"claim": "scope", "contains": "write"})).holds(&c));
        assert!(!rule(json!({"claim": "scope", "contains": "wri"})).holds(&c));
        assert!(rule(json!({"claim": "email", "regex": "^[^@]+@example\\.com$"})).holds(&c));
        assert!(!rule(json!({"claim": "missing", "equals": null})).holds(&c));
        assert!(
            !rule(json!({"claim": "level", "regex": "3"})).holds(&c),
            "regex applies to strings only"
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        let compile = |v: Value| ClaimMatcher::compile(&serde_json::from_value(v).unwrap()).unwrap_err();
        assert_eq!(compile(json!({"claim": "a", "regex": "("})).0, ".regex");
        assert_eq!(compile(json!({"claim": "a"})).0, "");
        assert_eq!(compile(json!({"claim": "a", "equals": 1, "regex": "x"})).0, "");
        assert_eq!(compile(json!({"claim": "a", "oneOf": []})).0, ".oneOf");
    }

    #[test]
    fn scopes_merge_scope_and_scp() {
        assert_eq!(scopes_of(&claims()), vec!["admin", "read", "write"]);
        assert!(scopes_of(&Map::new()).is_empty());
    }
}
