//! Parameters arrive as text; their schemas speak of integers, arrays and objects. This reads the
//! text by the parameter's `style` and `explode` (OpenAPI 3.0.3 §4.7.12.4) and coerces each piece
//! to the type its schema names, so the JSON Schema validator can check the value.

use crate::bundle::ParameterSpec;
use crate::model::Style;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

/// The primitive type a piece of text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Integer,
    Number,
    Boolean,
    String,
    /// No single type is named: the text stays a string.
    Any,
}

/// What a parameter's schema expects, as far as reading text goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Scalar(Scalar),
    Array(Scalar),
    Object {
        properties: BTreeMap<String, Field>,
        other: Scalar,
    },
}

/// A property of an object shape (form bodies and exploded objects spread them out as pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Scalar(Scalar),
    /// Repeated pairs (`tag=a&tag=b`), or one.
    Array(Scalar),
    /// An object exploded into pairs of its own properties (`login=kea&since=…`).
    Object(BTreeMap<String, Scalar>),
}

impl Shape {
    /// The shape of a converted schema (`#/definitions/…` references looked up in `definitions`).
    pub fn of(schema: &Value, definitions: &BTreeMap<String, Value>) -> Self {
        let schema = resolve(schema, definitions);
        match declared_type(schema, definitions) {
            Some("array") => Self::Array(
                schema
                    .get("items")
                    .map_or(Scalar::Any, |items| scalar_of(items, definitions)),
            ),
            Some("object") => {
                let mut properties = BTreeMap::new();
                for (name, property) in object_properties(schema, definitions) {
                    let property = resolve(property, definitions);
                    let field = match declared_type(property, definitions) {
                        Some("array") => Field::Array(
                            property
                                .get("items")
                                .map_or(Scalar::Any, |i| scalar_of(i, definitions)),
                        ),
                        Some("object") => Field::Object(
                            object_properties(property, definitions)
                                .into_iter()
                                .map(|(n, p)| (n.clone(), scalar_of(p, definitions)))
                                .collect(),
                        ),
                        _ => Field::Scalar(scalar_of(property, definitions)),
                    };
                    properties.insert(name.clone(), field);
                }
                let other = match schema.get("additionalProperties") {
                    Some(Value::Object(_)) => schema
                        .get("additionalProperties")
                        .map_or(Scalar::Any, |s| scalar_of(s, definitions)),
                    _ => Scalar::Any,
                };
                Self::Object { properties, other }
            }
            _ => Self::Scalar(scalar_of(schema, definitions)),
        }
    }

    fn property(&self, name: &str) -> Scalar {
        match self {
            Self::Object { properties, other } => match properties.get(name) {
                Some(Field::Scalar(scalar) | Field::Array(scalar)) => *scalar,
                Some(Field::Object(_)) => Scalar::Any,
                None => *other,
            },
            Self::Array(item) | Self::Scalar(item) => *item,
        }
    }
}

/// Follows `$ref`s into `definitions` (bounded: definitions may refer to each other in a loop).
fn resolve<'v>(mut schema: &'v Value, definitions: &'v BTreeMap<String, Value>) -> &'v Value {
    for _ in 0..16 {
        let Some(key) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/definitions/"))
        else {
            break;
        };
        match definitions.get(key) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// Declared properties of an object schema and its `allOf` members.
fn object_properties<'v>(
    schema: &'v Value,
    definitions: &'v BTreeMap<String, Value>,
) -> Vec<(&'v String, &'v Value)> {
    object_parts(schema, definitions)
        .into_iter()
        .filter_map(|part| part.get("properties").and_then(Value::as_object))
        .flatten()
        .collect()
}

/// The schema itself plus its `allOf` members (where object properties are often declared).
fn object_parts<'v>(schema: &'v Value, definitions: &'v BTreeMap<String, Value>) -> Vec<&'v Value> {
    let mut parts = vec![schema];
    if let Some(Value::Array(all)) = schema.get("allOf") {
        parts.extend(all.iter().map(|s| resolve(s, definitions)));
    }
    parts
}

fn declared_type<'v>(schema: &'v Value, definitions: &'v BTreeMap<String, Value>) -> Option<&'v str> {
    for part in object_parts(schema, definitions) {
        let kind = match part.get("type") {
            Some(Value::String(kind)) => Some(kind.as_str()),
            Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null"),
            _ => None,
        };
        if kind.is_some() {
            return kind;
        }
        if part.get("properties").is_some() {
            return Some("object");
        }
    }
    None
}

fn scalar_of(schema: &Value, definitions: &BTreeMap<String, Value>) -> Scalar {
    match declared_type(resolve(schema, definitions), definitions) {
        Some("integer") => Scalar::Integer,
        Some("number") => Scalar::Number,
        Some("boolean") => Scalar::Boolean,
        Some("string") => Scalar::String,
        _ => Scalar::Any,
    }
}

/// Reads text as `scalar`; text that is not of that type stays a string, so the validator
/// reports it as the wrong type.
pub fn coerce(text: &str, scalar: Scalar) -> Value {
    let number = || serde_json::from_str::<Number>(text).ok();
    let coerced = match scalar {
        Scalar::Integer if is_integer_text(text) => Some(integer(text)),
        Scalar::Integer => None,
        Scalar::Number => number().map(Value::Number),
        Scalar::Boolean => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        Scalar::String | Scalar::Any => None,
    };
    coerced.unwrap_or_else(|| Value::String(text.to_string()))
}

/// An integer of any size (`type: integer` has no range without a format). Beyond 64 bits an f64
/// would round onto the `int64` bounds (-9223372036854775809 → -2^63), so those read as ±1e300:
/// still an integer, and outside every 64-bit range.
fn integer(text: &str) -> Value {
    if let Ok(small) = text.parse::<i64>() {
        return Value::from(small);
    }
    if let Ok(large) = text.parse::<u64>() {
        return Value::from(large);
    }
    Value::from(if text.starts_with('-') { -1e300 } else { 1e300 })
}

/// `-?(0|[1-9][0-9]*)`: the JSON grammar of an integer.
fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Query pairs, decoded as `application/x-www-form-urlencoded` (`+` is a space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Why a parameter's text could not be read.
pub type ReadError = String;

/// The value of a query parameter, `None` when absent.
pub fn read_query(
    spec: &ParameterSpec,
    shape: &Shape,
    pairs: &[(String, String)],
) -> Option<Result<Value, ReadError>> {
    let values: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| *n == spec.name)
        .map(|(_, v)| v.as_str())
        .collect();
    // An empty scalar is an empty-valued parameter; an array may hold an empty string item.
    if !spec.allow_empty_value && matches!(shape, Shape::Scalar(_)) && values.iter().any(|v| v.is_empty()) {
        return Some(Err("empty value is not allowed (allowEmptyValue is false)".into()));
    }
    // A value given twice where one is expected is refused: the upstream may read the other one.
    let twice = || Some(Err("given more than once".into()));
    if spec.json {
        return match values.as_slice() {
            [] => None,
            [one] => Some(crate::json::parse_strict(one.as_bytes()).map_err(|e| format!("not JSON: {e}"))),
            _ => twice(),
        };
    }
    if spec.style == Style::DeepObject {
        let mut object = Map::new();
        for (name, value) in pairs {
            let Some(property) = name
                .strip_prefix(spec.name.as_str())
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.strip_suffix(']'))
            else {
                continue;
            };
            let declared =
                matches!(shape, Shape::Object { properties, .. } if properties.contains_key(property));
            let coerced = coerce(value, shape.property(property));
            // A declared property given twice is ambiguous; an undeclared one repeats as a list.
            if declared && object.contains_key(property) {
                return twice();
            }
            push_repeated(&mut object, property, coerced, false);
        }
        return (!object.is_empty()).then_some(Ok(Value::Object(object)));
    }
    let delimiter = match spec.style {
        Style::SpaceDelimited => ' ',
        Style::PipeDelimited => '|',
        _ => ',',
    };
    match shape {
        Shape::Array(item) if spec.explode => {
            (!values.is_empty()).then(|| Ok(Value::Array(values.iter().map(|v| coerce(v, *item)).collect())))
        }
        Shape::Object { properties, .. } if spec.explode => {
            let mut object = Map::new();
            for (name, value) in pairs.iter().filter(|(name, _)| properties.contains_key(name)) {
                if object
                    .insert(name.clone(), coerce(value, shape.property(name)))
                    .is_some()
                {
                    return twice();
                }
            }
            (!object.is_empty()).then_some(Ok(Value::Object(object)))
        }
        _ => match values.as_slice() {
            [] => None,
            [one] => Some(Ok(split_value(one, shape, delimiter, false))),
            _ => Some(Err("given more than once".into())),
        },
    }
}

/// The value of a path or header parameter (style `simple`, `label` or `matrix`).
pub fn read_simple(spec: &ParameterSpec, shape: &Shape, text: &str) -> Result<Value, ReadError> {
    if spec.json {
        return crate::json::parse_strict(text.as_bytes()).map_err(|e| format!("not JSON: {e}"));
    }
    match spec.style {
        Style::Label => {
            let rest = text
                .strip_prefix('.')
                .ok_or("a label-style value starts with '.'")?;
            let delimiter = if spec.explode { '.' } else { ',' };
            Ok(split_value(rest, shape, delimiter, spec.explode))
        }
        Style::Matrix => {
            let prefix = format!(";{}", spec.name);
            let rest = text
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| format!("a matrix-style value starts with {prefix:?}"))?;
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            match shape {
                Shape::Array(_) if spec.explode => {
                    let repeated = format!(";{}=", spec.name);
                    Ok(split_value(&rest.replace(&repeated, ","), shape, ',', false))
                }
                _ => Ok(split_value(
                    rest,
                    shape,
                    if spec.explode { ';' } else { ',' },
                    spec.explode,
                )),
            }
        }
        _ => Ok(split_value(text, shape, ',', spec.explode)),
    }
}

/// Splits delimited text into the shape: arrays of items, objects as `k,v,k,v` or (exploded)
/// `k=v,k=v`, scalars whole.
fn split_value(text: &str, shape: &Shape, delimiter: char, exploded_pairs: bool) -> Value {
    match shape {
        Shape::Scalar(scalar) => coerce(text, *scalar),
        Shape::Array(item) => {
            if text.is_empty() {
                return Value::Array(Vec::new());
            }
            Value::Array(text.split(delimiter).map(|v| coerce(v, *item)).collect())
        }
        Shape::Object { .. } => {
            let mut object = Map::new();
            if exploded_pairs {
                for pair in text.split(delimiter).filter(|p| !p.is_empty()) {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    object.insert(name.to_string(), coerce(value, shape.property(name)));
                }
            } else {
                let parts: Vec<&str> = text.split(delimiter).collect();
                for pair in parts.chunks(2) {
                    if let [name, value] = pair {
                        object.insert((*name).to_string(), coerce(value, shape.property(name)));
                    } else if let [name] = pair {
                        object.insert((*name).to_string(), Value::String(String::new()));
                    }
                }
            }
            Value::Object(object)
        }
    }
}

/// Adds a value under `name`: a second value turns the first into a list; `array` starts a list.
fn push_repeated(object: &mut Map<String, Value>, name: &str, value: Value, array: bool) {
    match object.get_mut(name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            object.insert(
                name.to_string(),
                if array { Value::Array(vec![value]) } else { value },
            );
        }
    }
}

/// Cookie pairs from a `Cookie` header.
pub fn cookie_pairs(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((
                name.trim().to_string(),
                value.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

/// A form-urlencoded body as an object, each field read by the body schema's property types
/// (OpenAPI's default encoding: style `form`, exploded, so arrays repeat their name and object
/// properties spread their own properties out as pairs).
pub fn read_form(body: &str, shape: &Shape) -> Value {
    let empty = BTreeMap::new();
    let properties = match shape {
        Shape::Object { properties, .. } => properties,
        _ => &empty,
    };
    let mut object = Map::new();
    for (name, value) in query_pairs(body) {
        let nested = properties.iter().find_map(|(owner, field)| match field {
            Field::Object(inner) if !properties.contains_key(&name) => inner.get(&name).map(|s| (owner, *s)),
            _ => None,
        });
        if let Some((owner, scalar)) = nested {
            if let Value::Object(inner) = object
                .entry(owner.clone())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                inner.insert(name, coerce(&value, scalar));
            }
            continue;
        }
        let coerced = coerce(&value, shape.property(&name));
        let array = matches!(properties.get(&name), Some(Field::Array(_)));
        push_repeated(&mut object, &name, coerced, array);
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParameterIn;
    use serde_json::json;

    fn spec(style: Style, explode: bool) -> ParameterSpec {
        ParameterSpec {
            name: "p".into(),
            location: ParameterIn::Query,
            required: false,
            style,
            explode,
            allow_empty_value: false,
            json: false,
            schema: None,
        }
    }

    fn object_shape() -> Shape {
        Shape::of(
            &json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}),
            &BTreeMap::new(),
        )
    }

    #[test]
    fn shapes_follow_references_and_all_of() {
        let definitions = BTreeMap::from([("N".to_string(), json!({"type": ["integer", "null"]}))]);
        assert_eq!(
            Shape::of(&json!({"$ref": "#/definitions/N"}), &definitions),
            Shape::Scalar(Scalar::Integer)
        );
        assert_eq!(
            Shape::of(
                &json!({"type": "array", "items": {"$ref": "#/definitions/N"}}),
                &definitions
            ),
            Shape::Array(Scalar::Integer)
        );
        let merged = Shape::of(
            &json!({"allOf": [{"properties": {"a": {"type": "boolean"}}}]}),
            &definitions,
        );
        assert_eq!(merged.property("a"), Scalar::Boolean);
    }

    #[test]
    fn coercion_only_accepts_json_number_grammar() {
        assert_eq!(coerce("42", Scalar::Integer), json!(42));
        assert_eq!(coerce("-1", Scalar::Integer), json!(-1));
        assert_eq!(coerce("1.5", Scalar::Integer), json!("1.5"));
        assert_eq!(coerce("01", Scalar::Integer), json!("01"));
        assert!(coerce("17348512999956690748157890446491648", Scalar::Integer).is_number());
        assert_eq!(coerce("1e3", Scalar::Number), json!(1000.0));
        assert_eq!(coerce("+1", Scalar::Number), json!("+1"));
        assert_eq!(coerce("NaN", Scalar::Number), json!("NaN"));
        assert_eq!(coerce("true", Scalar::Boolean), json!(true));
        assert_eq!(coerce("True", Scalar::Boolean), json!("True"));
        assert_eq!(coerce("42", Scalar::String), json!("42"));
    }

    #[test]
    fn query_styles() {
        let pairs = query_pairs("p=1&p=2&a=3&b=x+y&p%5Ba%5D=7&q=1|2");
        let array = Shape::Array(Scalar::Integer);
        assert_eq!(
            read_query(&spec(Style::Form, true), &array, &pairs),
            Some(Ok(json!([1, 2])))
        );
        let single = query_pairs("p=1,2");
        assert_eq!(
            read_query(&spec(Style::Form, false), &array, &single),
            Some(Ok(json!([1, 2])))
        );
        assert_eq!(
            read_query(&spec(Style::Form, true), &object_shape(), &pairs),
            Some(Ok(json!({"a": 3, "b": "x y"})))
        );
        assert_eq!(
            read_query(&spec(Style::DeepObject, true), &object_shape(), &pairs),
            Some(Ok(json!({"a": 7})))
        );
        let piped = query_pairs("p=1|2");
        assert_eq!(
            read_query(&spec(Style::PipeDelimited, false), &array, &piped),
            Some(Ok(json!([1, 2])))
        );
        let twice = read_query(&spec(Style::Form, true), &Shape::Scalar(Scalar::Integer), &pairs);
        assert!(matches!(twice, Some(Err(_))));
        assert_eq!(
            read_query(&spec(Style::Form, true), &array, &query_pairs("x=1")),
            None
        );
    }

    #[test]
    fn path_and_header_styles() {
        let array = Shape::Array(Scalar::Integer);
        assert_eq!(
            read_simple(&spec(Style::Simple, false), &array, "3,4,5"),
            Ok(json!([3, 4, 5]))
        );
        assert_eq!(
            read_simple(&spec(Style::Simple, false), &object_shape(), "a,1,b,x"),
            Ok(json!({"a": 1, "b": "x"}))
        );
        assert_eq!(
            read_simple(&spec(Style::Simple, true), &object_shape(), "a=1,b=x"),
            Ok(json!({"a": 1, "b": "x"}))
        );
        assert_eq!(
            read_simple(&spec(Style::Label, false), &array, ".3,4"),
            Ok(json!([3, 4]))
        );
        assert_eq!(
            read_simple(&spec(Style::Label, true), &array, ".3.4"),
            Ok(json!([3, 4]))
        );
        assert_eq!(
            read_simple(
                &spec(Style::Matrix, false),
                &Shape::Scalar(Scalar::Integer),
                ";p=5"
            ),
            Ok(json!(5))
        );
        assert_eq!(
            read_simple(&spec(Style::Matrix, true), &array, ";p=3;p=4"),
            Ok(json!([3, 4]))
        );
        assert!(read_simple(&spec(Style::Label, false), &array, "3").is_err());
    }

    #[test]
    fn forms_and_cookies() {
        assert_eq!(
            read_form("a=1&b=two&a=2", &object_shape()),
            json!({"a": [1, 2], "b": "two"})
        );
        let nested = Shape::of(
            &json!({"properties": {"tags": {"type": "array", "items": {"type": "integer"}},
                "owner": {"type": "object", "properties": {"login": {"type": "string"}, "age": {"type": "integer"}}}}}),
            &BTreeMap::new(),
        );
        assert_eq!(
            read_form("tags=1&login=kea&age=3", &nested),
            json!({"tags": [1], "owner": {"login": "kea", "age": 3}})
        );
        assert_eq!(
            cookie_pairs("a=1; b=\"x\""),
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
    }
}
