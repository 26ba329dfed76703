//! JSON Schema validators for a bundle, with every definition compiled once and shared.
//!
//! The `jsonschema` crate compiles each validator from one self-contained document: given every
//! operation's schema with the definitions it reaches, a document of N operations over M
//! interlinked definitions compiles N × M schemas (Stripe's API: a minute and gigabytes; the
//! plugin ran out of memory in `on_configure`). The crate has no way to share compiled
//! subschemas between validators, so this module does it with a custom keyword: every
//! `{"$ref": "#/definitions/<key>"}` becomes `{"x-kea-definition": <index>}`, whose validator
//! calls the definition's own validator, compiled once into a table all validators of the
//! bundle point to. Cost: one compilation per definition plus one per (small) operation schema.
//!
//! The keyword holds a `Weak` pointer to the table: definitions refer to each other (and to
//! themselves) in cycles, and strong pointers would keep the table alive forever.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Keyword, ValidationError, Validator};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

/// The keyword converted references become.
const DEFINITION_KEYWORD: &str = "x-kea-definition";

/// Errors of one definition reported through a reference are capped: the caller keeps only the
/// first few anyway, and a hostile array must not make a reference collect without bound.
const ERRORS_PER_REFERENCE: usize = 64;

/// Compiled definitions by index; a slot is set once, right after compilation.
type Table = [OnceLock<Validator>];

/// The compiled definitions of one bundle, which every [`Compiler::build`] validator refers to.
/// Keep it alive as long as those validators: they find definitions through it.
#[derive(Debug)]
pub struct Definitions {
    /// Only held: the validators reach it through their `Weak` pointers.
    _table: Arc<Table>,
}

/// Builds validators whose references point into one [`Definitions`] table.
#[derive(Debug)]
pub struct Compiler<'d> {
    keys: BTreeMap<&'d str, usize>,
    table: Weak<Table>,
}

impl<'d> Compiler<'d> {
    /// Compiles every definition once. Errors name the definition.
    pub fn new(definitions: &'d BTreeMap<String, Value>) -> Result<(Self, Definitions), String> {
        log::debug!("compiling {} shared definitions", definitions.len());
        let table: Arc<Table> = definitions.keys().map(|_| OnceLock::new()).collect();
        let compiler = Self {
            keys: definitions
                .keys()
                .enumerate()
                .map(|(index, key)| (key.as_str(), index))
                .collect(),
            table: Arc::downgrade(&table),
        };
        for ((key, definition), slot) in definitions.iter().zip(table.iter()) {
            let validator = compiler
                .build(definition)
                .map_err(|e| format!("definition {key:?}: {e}"))?;
            // Each slot is set exactly once, here.
            let _ = slot.set(validator);
        }
        log::debug!("compiled {} shared definitions", definitions.len());
        Ok((compiler, Definitions { _table: table }))
    }

    /// A validator for `schema` (draft 7, converted by `convert.rs`), its references resolved
    /// through the shared definitions.
    pub fn build(&self, schema: &Value) -> Result<Validator, String> {
        let rewritten = self.rewrite(schema)?;
        let table = self.table.clone();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .with_format("byte", is_base64)
            // `uuid` is a format from draft 2019-09 on; OpenAPI 3.0 documents use it everywhere.
            .with_format("uuid", is_uuid)
            .with_keyword(DEFINITION_KEYWORD, move |_, value, _| {
                let index = value
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or_else(|| ValidationError::schema("a definition index"))?;
                Ok(Box::new(DefinitionReference {
                    table: table.clone(),
                    index,
                }))
            })
            .build(&rewritten)
            .map_err(|e| e.to_string())
    }

    /// `schema` with every `#/definitions/<key>` reference replaced by the shared keyword. A
    /// reference's siblings are dropped: draft 7 ignores them too.
    fn rewrite(&self, schema: &Value) -> Result<Value, String> {
        Ok(match schema {
            Value::Object(map) => match map.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let key = reference
                        .strip_prefix("#/definitions/")
                        .ok_or_else(|| format!("reference {reference:?} is not to a definition"))?;
                    let index = self
                        .keys
                        .get(key)
                        .ok_or_else(|| format!("reference to an unknown definition {key:?}"))?;
                    let mut keyword = Map::new();
                    keyword.insert(DEFINITION_KEYWORD.into(), Value::from(*index));
                    Value::Object(keyword)
                }
                None => Value::Object(
                    map.iter()
                        .map(|(name, value)| Ok((name.clone(), self.rewrite_member(name, value)?)))
                        .collect::<Result<_, String>>()?,
                ),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.rewrite(item))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Values that are data, not schemas (`enum` members, `default`s), are kept as they are: an
    /// enum value may well be an object with a `$ref` member.
    fn rewrite_member(&self, name: &str, value: &Value) -> Result<Value, String> {
        match name {
            "enum" | "const" | "default" | "examples" | "example" => Ok(value.clone()),
            "properties" => match value {
                // Property names are not keywords: `{"properties": {"$ref": {...}}}` names a
                // property `$ref`.
                Value::Object(properties) => Ok(Value::Object(
                    properties
                        .iter()
                        .map(|(property, schema)| Ok((property.clone(), self.rewrite(schema)?)))
                        .collect::<Result<_, String>>()?,
                )),
                other => self.rewrite(other),
            },
            _ => self.rewrite(value),
        }
    }
}

/// The validator of `{"x-kea-definition": index}`: the definition's shared validator.
struct DefinitionReference {
    table: Weak<Table>,
    index: usize,
}

impl DefinitionReference {
    /// Runs `check` on the definition's validator; `None` when the table is gone or the slot
    /// not yet set (neither happens while the [`Definitions`] live, which callers keep beside
    /// their validators): the value is then refused, not let through.
    fn with_validator<T>(&self, check: impl FnOnce(&Validator) -> T) -> Option<T> {
        let table = self.table.upgrade()?;
        let validator = table.get(self.index)?.get()?;
        Some(check(validator))
    }
}

impl<'i> Keyword<'i> for DefinitionReference {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        match self.iter_errors(instance).next() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.with_validator(|validator| validator.is_valid(instance))
            .unwrap_or(false)
    }

    fn iter_errors(&self, instance: &'i Value) -> Box<dyn Iterator<Item = ValidationError<'i>> + 'i> {
        let errors = self
            .with_validator(|validator| {
                validator
                    .iter_errors(instance)
                    .take(ERRORS_PER_REFERENCE)
                    .map(|error| {
                        let (pointer, message) = located(&error);
                        // jsonschema puts a custom keyword's errors where the keyword is and
                        // keeps only the message: the pointer inside the definition travels in it.
                        ValidationError::custom(format!("{pointer}{POINTER_END}{message}"))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_else(|| vec![ValidationError::custom("schema definitions are not loaded")]);
        Box::new(errors.into_iter())
    }
}

/// Ends the pointer a reference's error message starts with (a control character, which
/// schema messages do not contain).
const POINTER_END: char = '\u{1f}';

/// Where an error is (a JSON pointer into the validated value) and what is wrong, following
/// errors reported through shared definitions down to where they happened. Request data is
/// masked: it may hold secrets, or be huge.
pub fn located(error: &ValidationError<'_>) -> (String, String) {
    let here = error.instance_path().to_string();
    if let ValidationErrorKind::Custom { keyword, message } = error.kind() {
        if keyword == DEFINITION_KEYWORD {
            if let Some((inner, message)) = message.split_once(POINTER_END) {
                return (format!("{here}{inner}"), message.to_string());
            }
        }
    }
    (here, error.masked().to_string())
}

/// RFC 4122 text form: 8-4-4-4-12 hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12] && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_base64(text: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definitions(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    fn problems(validator: &Validator, value: &Value) -> Vec<(String, String)> {
        validator.iter_errors(value).map(|e| located(&e)).collect()
    }

    #[test]
    fn errors_inside_nested_definitions_keep_their_full_pointer() {
        let defs = definitions(json!({
            "Customer": {"type": "object", "properties": {"address": {"$ref": "#/definitions/Address"}}},
            "Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }));
        let (compiler, _definitions) = Compiler::new(&defs).unwrap();
        let body = compiler
            .build(&json!({"type": "object", "properties": {"customer": {"$ref": "#/definitions/Customer"}}}))
            .unwrap();
        assert!(body.is_valid(&json!({"customer": {"address": {"city": "Berlin"}}})));
        let found = problems(&body, &json!({"customer": {"address": {"city": 5}}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "/customer/address/city");
        assert!(found[0].1.contains("string"), "{found:?}");
        let found = problems(&body, &json!({"customer": {"address": {}}}));
        assert_eq!(found[0].0, "/customer/address");
        assert!(found[0].1.contains("city"), "{found:?}");
    }

    #[test]
    fn recursive_definitions_check_every_level() {
        let defs = definitions(json!({
            "Node": {"type": "object", "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}
            }}
        }));
        let (compiler, _definitions) = Compiler::new(&defs).unwrap();
        let tree = compiler.build(&json!({"$ref": "#/definitions/Node"})).unwrap();
        let deep = json!({"value": 1, "children": [{"value": 2, "children": [{"value": "three"}]}]});
        assert_eq!(
            problems(&tree, &deep)
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>(),
            ["/children/0/children/0/value"]
        );
        assert!(tree.is_valid(&json!({"value": 1, "children": [{"value": 2}]})));
    }

    #[test]
    fn references_inside_combinators_and_data_that_looks_like_a_reference() {
        let defs = definitions(json!({
            "Id": {"type": "string", "format": "uuid"},
            "Range": {"type": "object", "properties": {"gte": {"type": "integer"}}, "additionalProperties": false}
        }));
        let (compiler, _definitions) = Compiler::new(&defs).unwrap();
        let created = compiler
            .build(&json!({"anyOf": [{"$ref": "#/definitions/Range"}, {"type": "integer"}]}))
            .unwrap();
        assert!(created.is_valid(&json!({"gte": 1})));
        assert!(created.is_valid(&json!(5)));
        assert!(!created.is_valid(&json!({"gte": "x"})));
        // An enum member and a property named `$ref` are data and names, not references.
        let odd = compiler
            .build(&json!({"type": "object", "properties": {
                "$ref": {"type": "string"},
                "kind": {"enum": [{"$ref": "#/definitions/Nowhere"}]},
                "id": {"$ref": "#/definitions/Id"}
            }}))
            .unwrap();
        assert!(odd.is_valid(&json!({"$ref": "a", "kind": {"$ref": "#/definitions/Nowhere"}})));
        assert!(!odd.is_valid(&json!({"$ref": 1})));
        assert!(!odd.is_valid(&json!({"id": "not-a-uuid"})));
    }

    #[test]
    fn unknown_definitions_and_foreign_references_are_refused() {
        let none = BTreeMap::new();
        let (compiler, _definitions) = Compiler::new(&none).unwrap();
        let unknown = compiler
            .build(&json!({"$ref": "#/definitions/Gone"}))
            .unwrap_err();
        assert!(unknown.contains("Gone"), "{unknown}");
        let foreign = compiler.build(&json!({"$ref": "other.json#/x"})).unwrap_err();
        assert!(foreign.contains("other.json"), "{foreign}");
        let bad = definitions(json!({"Bad": {"type": "strnig"}}));
        let error = Compiler::new(&bad).err().unwrap();
        assert!(error.contains("\"Bad\""), "{error}");
    }

    #[test]
    fn validators_outliving_their_table_refuse_rather_than_trap() {
        let defs = definitions(json!({"Id": {"type": "string"}}));
        let (compiler, definitions) = Compiler::new(&defs).unwrap();
        let id = compiler.build(&json!({"$ref": "#/definitions/Id"})).unwrap();
        assert!(id.is_valid(&json!("a")));
        drop(definitions);
        assert!(!id.is_valid(&json!("a")));
        assert_eq!(problems(&id, &json!("a")).len(), 1);
    }
}
