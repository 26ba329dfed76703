//! OpenAPI 3.0 schema objects → JSON Schema (draft 7) for the `jsonschema` crate.
//!
//! What differs between the two, and what this does about it:
//! - `nullable: true` → `null` added to an explicit `type` (an `enum` must list `null` itself);
//! - boolean `exclusiveMinimum`/`exclusiveMaximum` → the numeric draft-6+ form;
//! - `readOnly` properties are forbidden in requests and `writeOnly` ones in responses, and are
//!   not `required` there (OpenAPI 3.0.3 §4.7.24.1);
//! - `discriminator` over `oneOf`/`anyOf` of references → the property is required, must name a
//!   mapped schema, and selects the one schema the value is checked against (clear errors instead
//!   of "valid against none of oneOf");
//! - `format`: `int32`/`int64` become range bounds, `byte` a base64 check, `float`/`double`/`binary`
//!   constrain nothing; `date`, `date-time`, `uuid`, `email`, … are the JSON Schema formats;
//! - `$ref` siblings are ignored (as OpenAPI 3.0 says), references become `#/definitions/<key>`,
//!   one definition per referenced schema and direction, so recursive schemas stay recursive;
//! - annotations (`description`, `example`, `xml`, `x-*`, …) are dropped to keep bundles small;
//! - keywords outside OpenAPI 3.0's Schema Object (`const`, `propertyNames`, `if`, `$defs`, …) are
//!   dropped too, but each is reported as a warning: validation is looser than the document reads.

use crate::error::DocumentError;
use crate::sources::{ref_of, Location, Sources};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Which message a schema checks: `readOnly`/`writeOnly` apply to one direction each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Request,
    Response,
}

/// Where converted schemas put their shared definitions.
pub const DEFINITIONS: &str = "definitions";

const TYPES: [&str; 6] = ["integer", "number", "string", "boolean", "array", "object"];

/// Keywords that mean the same in OpenAPI 3.0 and JSON Schema draft 7 and hold no subschema.
const COPIED: [&str; 14] = [
    "type",
    "enum",
    "multipleOf",
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "title",
];

/// The fields of OpenAPI 3.0's Schema Object (3.0.3 §4.7.24.1); anything else but `x-*` is not
/// checked and gets a warning.
const OPENAPI_KEYWORDS: [&str; 35] = [
    "title",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "items",
    "properties",
    "additionalProperties",
    "description",
    "format",
    "default",
    "nullable",
    "discriminator",
    "readOnly",
    "writeOnly",
    "xml",
    "externalDocs",
    "example",
    "deprecated",
];

/// Converts schemas, collecting the definitions their references need and the keywords they drop.
#[derive(Debug)]
pub struct Converter<'s> {
    sources: &'s Sources,
    keys: BTreeMap<(Location, Direction), String>,
    definitions: BTreeMap<String, Value>,
    /// Definitions keyed but not converted yet. Converted from a worklist, not by recursing into
    /// each reference: a chain of schemas referring to the next (500 of them in large real
    /// documents) would otherwise recurse as deep as the chain is long and overflow the stack.
    pending: Vec<(Location, Direction, String)>,
    /// Where a keyword that is not checked was met; a set, as a schema converts once per direction.
    dropped: BTreeSet<Location>,
}

impl<'s> Converter<'s> {
    pub fn new(sources: &'s Sources) -> Self {
        Self {
            sources,
            keys: BTreeMap::new(),
            definitions: BTreeMap::new(),
            pending: Vec::new(),
            dropped: BTreeSet::new(),
        }
    }

    /// One line per keyword met so far that is not OpenAPI 3.0 and so not checked, by document
    /// and pointer: `api.yaml#/components/schemas/Pet/propertyNames: keyword "propertyNames" …`.
    pub fn warnings(&self) -> Vec<String> {
        self.dropped
            .iter()
            .map(|at| {
                let keyword = at.pointer.rsplit('/').next().unwrap_or("");
                let keyword = keyword.replace("~1", "/").replace("~0", "~");
                format!(
                    "{}#{}: keyword {keyword:?} is not part of OpenAPI 3.0 and is not checked",
                    at.document, at.pointer
                )
            })
            .collect()
    }

    /// Every definition referenced so far, by key. Refuses definitions that refer back to
    /// themselves without going deeper into the value (`A: {allOf: [{$ref: A}]}`): checking them
    /// would recurse forever on any request.
    pub fn into_definitions(self) -> Result<BTreeMap<String, Value>, DocumentError> {
        for ((at, _), key) in &self.keys {
            let mut path = vec![key.clone()];
            if self.loops_back(key, &mut path) {
                return Err(at.error(format!(
                    "schema refers to itself without nesting: {}",
                    path.join(" → ")
                )));
            }
        }
        Ok(self.definitions)
    }

    /// Depth-first over references reached without descending into properties or items.
    fn loops_back(&self, start: &str, path: &mut Vec<String>) -> bool {
        let Some(current) = path.last().and_then(|k| self.definitions.get(k)) else {
            return false;
        };
        let mut next = Vec::new();
        unguarded_refs(current, &mut next);
        for key in next {
            if key == start {
                path.push(key);
                return true;
            }
            if path.contains(&key) {
                continue;
            }
            path.push(key);
            if self.loops_back(start, path) {
                return true;
            }
            path.pop();
        }
        false
    }

    /// Converts the schema object at `at` for `direction`, and every definition it refers to.
    pub fn schema(&mut self, at: &Location, direction: Direction) -> Result<Value, DocumentError> {
        let converted = self.convert(at, direction)?;
        while let Some((target, direction, key)) = self.pending.pop() {
            let definition = self.convert(&target, direction)?;
            self.definitions.insert(key, definition);
        }
        Ok(converted)
    }

    /// Converts one schema object; the definitions it refers to are keyed and left pending.
    fn convert(&mut self, at: &Location, direction: Direction) -> Result<Value, DocumentError> {
        let node = self.sources.get(at).ok_or_else(|| at.error("nothing here"))?;
        if ref_of(node).is_some() {
            // Pure reference chains that come back to themselves are rejected here.
            let (target, _) = self.sources.resolve(at)?;
            let key = self.define(&target, direction)?;
            return Ok(json!({ "$ref": format!("#/{DEFINITIONS}/{key}") }));
        }
        let Some(schema) = node.as_object() else {
            return Err(at.error("a schema must be an object"));
        };
        self.object(at, schema, direction)
    }

    fn define(&mut self, target: &Location, direction: Direction) -> Result<String, DocumentError> {
        if let Some(key) = self.keys.get(&(target.clone(), direction)) {
            return Ok(key.clone());
        }
        let key = self.new_key(target, direction);
        self.keys.insert((target.clone(), direction), key.clone());
        // Reserved now (the key is taken), converted from the worklist.
        self.definitions.insert(key.clone(), Value::Bool(true));
        self.pending.push((target.clone(), direction, key.clone()));
        Ok(key)
    }

    fn new_key(&self, target: &Location, direction: Direction) -> String {
        let root = self.sources.root_name();
        let base = match target.pointer.strip_prefix("/components/schemas/") {
            Some(name) if target.document == root && !name.contains('/') => {
                name.replace("~1", "/").replace("~0", "~")
            }
            _ => format!("{}{}", target.document, target.pointer),
        };
        let mut key: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if direction == Direction::Response {
            key.push_str(".response");
        }
        if self.definitions.contains_key(&key) {
            let mut n = 2;
            while self.definitions.contains_key(&format!("{key}-{n}")) {
                n += 1;
            }
            key = format!("{key}-{n}");
        }
        key
    }

    fn object(
        &mut self,
        at: &Location,
        schema: &Map<String, Value>,
        direction: Direction,
    ) -> Result<Value, DocumentError> {
        for keyword in schema.keys() {
            if !keyword.starts_with("x-") && !OPENAPI_KEYWORDS.contains(&keyword.as_str()) {
                self.dropped.insert(at.child(keyword));
            }
        }
        let mut out = Map::new();
        for keyword in COPIED {
            if let Some(value) = schema.get(keyword) {
                check_keyword(at, keyword, value)?;
                out.insert(keyword.to_string(), value.clone());
            }
        }
        if let Some(kind) = schema.get("type") {
            if !kind.as_str().is_some_and(|t| TYPES.contains(&t)) {
                return Err(at
                    .child("type")
                    .error(format!("type must be one of {}", TYPES.join(", "))));
            }
        }
        if let Some(required) = schema.get("required") {
            let names = required
                .as_array()
                .filter(|a| !a.is_empty() && a.iter().all(Value::is_string));
            if names.is_none() {
                return Err(at
                    .child("required")
                    .error("required must be a non-empty array of property names"));
            }
            out.insert("required".into(), required.clone());
        }
        self.exclusive_bounds(at, schema, &mut out)?;
        self.subschemas(at, schema, direction, &mut out)?;
        self.hide_properties(at, schema, direction, &mut out);
        self.format(schema, &mut out);
        if let Some(discriminator) = schema.get("discriminator") {
            self.discriminator(&at.child("discriminator"), discriminator, direction, &mut out)?;
        }
        let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        Ok(if nullable {
            make_nullable(out)
        } else {
            Value::Object(out)
        })
    }

    fn exclusive_bounds(
        &self,
        at: &Location,
        schema: &Map<String, Value>,
        out: &mut Map<String, Value>,
    ) -> Result<(), DocumentError> {
        for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
            match schema.get(exclusive) {
                None | Some(Value::Bool(false)) => {}
                Some(Value::Bool(true)) => {
                    let Some(limit) = schema.get(bound) else {
                        return Err(at.child(exclusive).error(format!("{exclusive} needs {bound}")));
                    };
                    out.remove(bound);
                    out.insert(exclusive.to_string(), limit.clone());
                }
                Some(_) => {
                    return Err(at
                        .child(exclusive)
                        .error(format!("{exclusive} must be a boolean in OpenAPI 3.0")))
                }
            }
        }
        Ok(())
    }

    fn subschemas(
        &mut self,
        at: &Location,
        schema: &Map<String, Value>,
        direction: Direction,
        out: &mut Map<String, Value>,
    ) -> Result<(), DocumentError> {
        if let Some(properties) = schema.get("properties") {
            let Some(properties) = properties.as_object() else {
                return Err(at.child("properties").error("properties must be an object"));
            };
            let base = at.child("properties");
            let mut converted = Map::new();
            for name in properties.keys() {
                converted.insert(name.clone(), self.convert(&base.child(name), direction)?);
            }
            out.insert("properties".into(), Value::Object(converted));
        }
        for single in ["items", "not"] {
            if schema.contains_key(single) {
                out.insert(single.into(), self.convert(&at.child(single), direction)?);
            }
        }
        match schema.get("additionalProperties") {
            None => {}
            Some(Value::Bool(allowed)) => {
                out.insert("additionalProperties".into(), Value::Bool(*allowed));
            }
            Some(_) => {
                let converted = self.convert(&at.child("additionalProperties"), direction)?;
                out.insert("additionalProperties".into(), converted);
            }
        }
        for list in ["allOf", "anyOf", "oneOf"] {
            let Some(items) = schema.get(list) else { continue };
            let Some(items) = items.as_array().filter(|a| !a.is_empty()) else {
                return Err(at
                    .child(list)
                    .error(format!("{list} must be a non-empty array of schemas")));
            };
            let base = at.child(list);
            let converted = (0..items.len())
                .map(|i| self.convert(&base.child(&i.to_string()), direction))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(list.into(), Value::Array(converted));
        }
        Ok(())
    }

    /// `readOnly` properties in requests and `writeOnly` ones in responses must not be sent, and
    /// their `required` applies only to the other direction.
    fn hide_properties(
        &self,
        at: &Location,
        schema: &Map<String, Value>,
        direction: Direction,
        out: &mut Map<String, Value>,
    ) {
        let flag = match direction {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        };
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let base = at.child("properties");
        let hidden: Vec<&String> = properties
            .keys()
            .filter(|name| {
                self.sources
                    .resolve(&base.child(name))
                    .is_ok_and(|(_, v)| v.get(flag).and_then(Value::as_bool) == Some(true))
            })
            .collect();
        if hidden.is_empty() {
            return;
        }
        if let Some(Value::Object(converted)) = out.get_mut("properties") {
            for name in &hidden {
                converted.insert((*name).clone(), Value::Bool(false));
            }
        }
        if let Some(Value::Array(required)) = out.get_mut("required") {
            required.retain(|r| !hidden.iter().any(|h| r.as_str() == Some(h.as_str())));
            if required.is_empty() {
                out.remove("required");
            }
        }
    }

    fn format(&self, schema: &Map<String, Value>, out: &mut Map<String, Value>) {
        let Some(format) = schema.get("format").and_then(Value::as_str) else {
            return;
        };
        let integer = schema.get("type").and_then(Value::as_str) == Some("integer");
        match format {
            "int32" if integer => tighten_range(out, i64::from(i32::MIN), i64::from(i32::MAX)),
            "int64" if integer => tighten_range(out, i64::MIN, i64::MAX),
            "int32" | "int64" | "float" | "double" | "binary" | "password" => {}
            other => {
                out.insert("format".into(), Value::String(other.to_string()));
            }
        }
    }

    fn discriminator(
        &mut self,
        at: &Location,
        discriminator: &Value,
        direction: Direction,
        out: &mut Map<String, Value>,
    ) -> Result<(), DocumentError> {
        let Some(property) = discriminator.get("propertyName").and_then(Value::as_str) else {
            return Err(at
                .child("propertyName")
                .error("discriminator needs a propertyName string"));
        };
        let schema_at = Location::new(&at.document, at.pointer.trim_end_matches("/discriminator"));
        let list = ["oneOf", "anyOf"].into_iter().find(|l| out.contains_key(*l));
        let members: Vec<Location> = match list {
            Some(list) => {
                let items = self
                    .sources
                    .get(&schema_at.child(list))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !items.iter().all(|i| ref_of(i).is_some()) {
                    // Inline alternatives have no names to map to: plain oneOf/anyOf applies.
                    return Ok(());
                }
                let base = schema_at.child(list).child("$ref");
                items
                    .iter()
                    .filter_map(ref_of)
                    .map(|r| self.sources.target(&base, r))
                    .collect::<Result<_, _>>()?
            }
            None => Vec::new(),
        };
        let mut names: Vec<(String, Location)> = Vec::new();
        if let Some(mapping) = discriminator.get("mapping") {
            let Some(mapping) = mapping.as_object() else {
                return Err(at.child("mapping").error("mapping must be an object"));
            };
            for (name, reference) in mapping {
                let Some(reference) = reference.as_str() else {
                    return Err(at
                        .child("mapping")
                        .child(name)
                        .error("mapping values are schema names or references"));
                };
                let reference = if reference.contains('#') || reference.contains('/') {
                    reference.to_string()
                } else {
                    format!("#/components/schemas/{reference}")
                };
                let target = self
                    .sources
                    .target(&at.child("mapping").child(name), &reference)?;
                names.push((name.clone(), target));
            }
        }
        for member in &members {
            let implicit = member
                .pointer
                .rsplit('/')
                .next()
                .unwrap_or("")
                .replace("~1", "/")
                .replace("~0", "~");
            if !names
                .iter()
                .any(|(name, target)| *name == implicit || target == member)
            {
                names.push((implicit, member.clone()));
            }
        }
        let mut all_of = out
            .remove("allOf")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if list.is_none() || names.is_empty() {
            // A parent schema (children refer to it with allOf): the property must be present.
            all_of.push(json!({ "required": [property] }));
        } else {
            if let Some(list) = list {
                out.remove(list);
            }
            let allowed: Vec<&String> = names.iter().map(|(name, _)| name).collect();
            all_of.push(json!({ "required": [property], "properties": { property: { "enum": allowed } } }));
            for (name, target) in &names {
                let key = self.define(target, direction)?;
                all_of.push(json!({
                    "if": { "properties": { property: { "const": name } }, "required": [property] },
                    "then": { "$ref": format!("#/{DEFINITIONS}/{key}") },
                }));
            }
        }
        out.insert("allOf".into(), Value::Array(all_of));
        Ok(())
    }
}

/// The value types of OpenAPI 3.0's validation keywords (§4.7.24.1), checked here so an error
/// names the keyword's pointer.
fn check_keyword(at: &Location, keyword: &str, value: &Value) -> Result<(), DocumentError> {
    let valid = match keyword {
        "multipleOf" => value.as_f64().is_some_and(|n| n > 0.0),
        "maximum" | "minimum" => value.is_number(),
        "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties" => {
            value.is_u64()
        }
        "uniqueItems" => value.is_boolean(),
        "pattern" | "title" => value.is_string(),
        "enum" => value.as_array().is_some_and(|a| !a.is_empty()),
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        let expected = match keyword {
            "multipleOf" => "a number above 0",
            "maximum" | "minimum" => "a number",
            "uniqueItems" => "a boolean",
            "pattern" | "title" => "a string",
            "enum" => "a non-empty array",
            _ => "a non-negative integer",
        };
        Err(at.child(keyword).error(format!("{keyword} must be {expected}")))
    }
}

/// Definition keys a schema refers to at the same depth of the value: through `$ref`, `allOf`,
/// `anyOf`, `oneOf`, `not`, `if`/`then`, not through `properties`, `items`, `additionalProperties`.
fn unguarded_refs(schema: &Value, out: &mut Vec<String>) {
    let Some(map) = schema.as_object() else { return };
    if let Some(key) = map
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
    {
        out.push(key.to_string());
    }
    for list in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = map.get(list) {
            items.iter().for_each(|item| unguarded_refs(item, out));
        }
    }
    for single in ["not", "if", "then"] {
        if let Some(sub) = map.get(single) {
            unguarded_refs(sub, out);
        }
    }
}

/// Narrows `minimum`/`maximum` to the range of an integer format.
fn tighten_range(out: &mut Map<String, Value>, low: i64, high: i64) {
    let below = |v: &Value| v.as_f64().is_some_and(|m| m >= low as f64);
    let above = |v: &Value| v.as_f64().is_some_and(|m| m <= high as f64);
    if !out.get("minimum").is_some_and(below) && !out.get("exclusiveMinimum").is_some_and(below) {
        out.insert("minimum".into(), json!(low));
    }
    if !out.get("maximum").is_some_and(above) && !out.get("exclusiveMaximum").is_some_and(above) {
        out.insert("maximum".into(), json!(high));
    }
}

/// `nullable: true` adds `null` to an explicitly declared `type` only; other keywords (`enum`,
/// `allOf`, …) keep their meaning and may still refuse `null` (OpenAPI 3.0.3 §4.7.24.1, as clarified
/// by the OpenAPI TSC).
fn make_nullable(mut out: Map<String, Value>) -> Value {
    if let Some(kind) = out.get_mut("type") {
        let name = kind.clone();
        *kind = json!([name, "null"]);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(document: Value, pointer: &str, direction: Direction) -> (Value, BTreeMap<String, Value>) {
        let sources = Sources::single("api.json", document);
        let mut converter = Converter::new(&sources);
        let schema = converter
            .schema(&Location::new("api.json", pointer), direction)
            .unwrap();
        (schema, converter.into_definitions().unwrap())
    }

    #[test]
    fn nullable_exclusive_bounds_and_integer_formats() {
        let doc = json!({"s": {"type": "integer", "format": "int32", "minimum": 0, "exclusiveMinimum": true,
            "nullable": true, "enum": [1, 2], "description": "dropped"}});
        let (schema, _) = convert(doc, "/s", Direction::Request);
        assert_eq!(
            schema,
            json!({"type": ["integer", "null"], "enum": [1, 2], "exclusiveMinimum": 0, "maximum": 2147483647})
        );
        let (untyped, _) = convert(
            json!({"s": {"nullable": true, "allOf": [{"type": "string"}]}}),
            "/s",
            Direction::Request,
        );
        // Without a type, nullable adds nothing: allOf still refuses null.
        assert_eq!(untyped, json!({"allOf": [{"type": "string"}]}));
    }

    #[test]
    fn read_only_and_write_only_apply_per_direction() {
        let doc = json!({"s": {"type": "object", "required": ["id", "name", "secret"], "properties": {
            "id": {"type": "integer", "readOnly": true}, "name": {"type": "string"},
            "secret": {"type": "string", "writeOnly": true}}}});
        let (request, _) = convert(doc.clone(), "/s", Direction::Request);
        assert_eq!(request["properties"]["id"], json!(false));
        assert_eq!(request["required"], json!(["name", "secret"]));
        let (response, _) = convert(doc, "/s", Direction::Response);
        assert_eq!(response["properties"]["secret"], json!(false));
        assert_eq!(response["required"], json!(["id", "name"]));
    }

    #[test]
    fn references_become_definitions_and_recursion_stays() {
        let doc = json!({"components": {"schemas": {"Node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}},
            "s": {"$ref": "#/components/schemas/Node", "description": "ignored sibling"}});
        let (schema, definitions) = convert(doc, "/s", Direction::Response);
        assert_eq!(schema, json!({"$ref": "#/definitions/Node.response"}));
        assert_eq!(
            definitions["Node.response"]["properties"]["children"]["items"],
            schema
        );
    }

    #[test]
    fn discriminator_selects_the_mapped_schema() {
        let doc = json!({"components": {"schemas": {
            "Cat": {"type": "object", "properties": {"kind": {"type": "string"}, "meow": {"type": "boolean"}}},
            "Dog": {"type": "object", "properties": {"kind": {"type": "string"}}},
            "Pet": {"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                    "discriminator": {"propertyName": "kind", "mapping": {"doggo": "Dog"}}}}},
            "s": {"$ref": "#/components/schemas/Pet"}});
        let (_, definitions) = convert(doc, "/s", Direction::Request);
        let pet = &definitions["Pet"];
        assert!(pet.get("oneOf").is_none());
        assert_eq!(
            pet["allOf"][0]["properties"]["kind"]["enum"],
            json!(["doggo", "Cat"])
        );
        assert_eq!(pet["allOf"][1]["then"], json!({"$ref": "#/definitions/Dog"}));
    }

    #[test]
    fn invalid_schemas_name_the_pointer() {
        let sources = Sources::single("api.json", json!({"s": {"properties": {"a": {"type": "text"}}}}));
        let error = Converter::new(&sources)
            .schema(&Location::new("api.json", "/s"), Direction::Request)
            .unwrap_err();
        assert_eq!(error.pointer, "/s/properties/a/type");
        let sources = Sources::single("api.json", json!({"a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}}));
        let error = Converter::new(&sources)
            .schema(&Location::new("api.json", "/a"), Direction::Request)
            .unwrap_err();
        assert!(error.reason.contains("reference cycle"), "{error}");
    }
}
