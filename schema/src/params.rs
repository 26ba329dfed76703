//! Parameters and form bodies arrive as text; their schemas speak of integers, arrays and objects.
//! This reads the text by the parameter's `style` and `explode` (OpenAPI 3.0.3 §4.7.12.4), or the
//! form property's Encoding Object (§4.7.14), and coerces each piece to the type its schema names,
//! so the JSON Schema validator can check the value.
//!
//! - Coercion looks through `$ref`, `allOf`, `anyOf` and `oneOf`: text that reads as an integer,
//!   number or boolean the schema allows becomes one, anything else stays a string.
//! - Bracketed keys are read at any depth, the way Stripe, Rails, PHP and `qs` write them:
//!   `metadata[order_id]=1`, `items[0][price]=p`, `expand[]=a`. Where the schema allows an array,
//!   `[]` appends to it and indices make it (counting from 0 without gaps); elsewhere `[]` is the
//!   empty key and other keys make objects. A key is followed for [`MAX_KEY_DEPTH`] brackets and a
//!   schema for [`MAX_SHAPE_DEPTH`] levels (fewer when that would visit over [`MAX_SHAPE_SCHEMAS`]
//!   schemas), cycles stop.
//!   Form bodies read brackets whatever their `encoding` says (Stripe sends them for properties it
//!   declares `style: form`); query parameters read them for `deepObject` and exploded `form`.
//! - Where a schema allows an array (or object) and a scalar — Stripe's
//!   `anyOf: [{type: array}, {enum: [""]}]`, "set or unset" — an empty value is the scalar and a
//!   non-empty one an array of one; an object needs its `[key]`s or, unexploded, a delimiter.
//! - A value given twice where one is expected is refused: the upstream may read the other one.

use crate::bundle::{EncodingSpec, ParameterSpec};
use crate::model::Style;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

/// Levels of nested properties and items a shape follows; deeper values stay text. Stripe's
/// deepest form fields (`phases[0][items][0][price_data][recurring][interval]`) need 7.
pub const MAX_SHAPE_DEPTH: usize = 12;

/// Brackets a key may have (`a[b][c]` has 2); deeper keys are refused rather than built into
/// values that nest without bound.
pub const MAX_KEY_DEPTH: usize = 16;

/// Schemas visited to build one shape, at most. Depth alone does not bound it: 12 levels of
/// schemas that each refer to three others (without a cycle) are half a million nodes, built at
/// configuration time in a VM of bounded memory. A shape over budget is built again less deep,
/// so it is complete down to one depth everywhere; below it values stay text.
pub const MAX_SHAPE_SCHEMAS: usize = 4096;

/// The scalar types text may be read as, a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scalars(u8);

impl Scalars {
    pub const NONE: Self = Self(0);
    pub const INTEGER: Self = Self(1);
    pub const NUMBER: Self = Self(2);
    pub const BOOLEAN: Self = Self(4);
    pub const STRING: Self = Self(8);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn add(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

/// What a schema expects, as far as reading text goes: the scalar types it allows and, when it
/// allows them, the shape of array items and of an object's properties. Alternatives (`anyOf`,
/// `oneOf`, a `type` list) are merged: `anyOf: [{type: object, …}, {type: integer}]` allows both.
/// [`Shape::ANY`] (no schema, or one that names no type) leaves text as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shape {
    scalars: Scalars,
    items: Option<Box<Shape>>,
    object: Option<Box<ObjectShape>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ObjectShape {
    properties: BTreeMap<String, Shape>,
    /// Of properties not declared (`additionalProperties`).
    other: Shape,
}

static ANY: Shape = Shape::ANY;

impl Shape {
    /// Text stays text.
    pub const ANY: Shape = Shape {
        scalars: Scalars::NONE,
        items: None,
        object: None,
    };

    /// The shape of a converted schema (`#/definitions/…` references looked up in `definitions`).
    pub fn of(schema: &Value, definitions: &BTreeMap<String, Value>) -> Self {
        let mut max_depth = MAX_SHAPE_DEPTH;
        loop {
            let mut builder = ShapeBuilder {
                definitions,
                expanding: Vec::new(),
                visited: 0,
                max_depth,
            };
            let mut shape = Self::ANY;
            builder.merge(&mut shape, schema, 0);
            if builder.visited <= MAX_SHAPE_SCHEMAS || max_depth == 0 {
                return shape;
            }
            log::debug!("shape over {MAX_SHAPE_SCHEMAS} schemas at depth {max_depth}: built less deep");
            max_depth -= 1;
        }
    }

    /// The scalar types the schema allows.
    pub fn scalars(&self) -> Scalars {
        self.scalars
    }

    /// Whether the schema allows an array.
    pub fn allows_array(&self) -> bool {
        self.items.is_some()
    }

    /// Whether the schema allows an object.
    pub fn allows_object(&self) -> bool {
        self.object.is_some()
    }

    /// The shape of array items.
    pub fn item(&self) -> &Shape {
        self.items.as_deref().unwrap_or(&ANY)
    }

    /// The shape of an object property (declared or not).
    pub fn property(&self, name: &str) -> &Shape {
        match &self.object {
            Some(object) => object.properties.get(name).unwrap_or(&object.other),
            None => &ANY,
        }
    }

    fn declares(&self, name: &str) -> bool {
        self.object
            .as_ref()
            .is_some_and(|object| object.properties.contains_key(name))
    }

    fn declared_properties(&self) -> impl Iterator<Item = (&String, &Shape)> {
        self.object.iter().flat_map(|object| object.properties.iter())
    }

    fn is_any(&self) -> bool {
        *self == Self::ANY
    }

    /// Reads text as the first scalar type it fits of integer, number, boolean; text that fits
    /// none stays a string, so the validator reports it as the wrong type.
    pub fn coerce(&self, text: &str) -> Value {
        let scalars = self.scalars;
        if scalars.contains(Scalars::INTEGER) && is_integer_text(text) {
            return integer(text);
        }
        if scalars.contains(Scalars::NUMBER) {
            if let Ok(number) = serde_json::from_str::<Number>(text) {
                return Value::Number(number);
            }
        }
        if scalars.contains(Scalars::BOOLEAN) {
            match text {
                "true" => return Value::Bool(true),
                "false" => return Value::Bool(false),
                _ => {}
            }
        }
        Value::String(text.to_string())
    }

    /// Whether one piece of text is read as an array of one: an empty value stays the scalar
    /// when there is one (`""` is how Stripe unsets a list).
    fn wraps_single(&self, text: &str) -> bool {
        self.allows_array() && (!text.is_empty() || self.scalars.is_empty())
    }
}

struct ShapeBuilder<'d> {
    definitions: &'d BTreeMap<String, Value>,
    /// The definitions being expanded on the way here: a reference back to one is a cycle.
    expanding: Vec<&'d str>,
    /// Schemas merged so far, against [`MAX_SHAPE_SCHEMAS`].
    visited: usize,
    /// Arrays and objects nested deeper than this are not followed.
    max_depth: usize,
}

impl<'d> ShapeBuilder<'d> {
    fn merge(&mut self, shape: &mut Shape, schema: &'d Value, depth: usize) {
        self.visited += 1;
        if self.visited > MAX_SHAPE_SCHEMAS && self.max_depth > 0 {
            // Over budget: this attempt is thrown away and done again less deep.
            return;
        }
        if let Some(key) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/definitions/"))
        {
            if self.expanding.contains(&key) {
                return;
            }
            if let Some(target) = self.definitions.get(key) {
                self.expanding.push(key);
                self.merge(shape, target, depth);
                self.expanding.pop();
            }
            return;
        }
        // `true` and `false` (hidden readOnly/writeOnly properties) say nothing about text.
        let Some(map) = schema.as_object() else { return };
        let kinds: Vec<&str> = match map.get("type") {
            Some(Value::String(kind)) => vec![kind.as_str()],
            Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for kind in &kinds {
            match *kind {
                "integer" => shape.scalars.add(Scalars::INTEGER),
                "number" => shape.scalars.add(Scalars::NUMBER),
                "boolean" => shape.scalars.add(Scalars::BOOLEAN),
                "string" => shape.scalars.add(Scalars::STRING),
                _ => {}
            }
        }
        let is_array = kinds.contains(&"array") || (kinds.is_empty() && map.contains_key("items"));
        let is_object = kinds.contains(&"object")
            || (kinds.is_empty()
                && (map.contains_key("properties") || map.contains_key("additionalProperties")));
        if is_array {
            let items = shape.items.get_or_insert_with(Box::default);
            if let (Some(schema), true) = (map.get("items"), depth < self.max_depth) {
                self.merge(items, schema, depth + 1);
            }
        }
        if is_object {
            let object = shape.object.get_or_insert_with(Box::default);
            if depth < self.max_depth {
                if let Some(Value::Object(properties)) = map.get("properties") {
                    for (name, property) in properties {
                        let entry = object.properties.entry(name.clone()).or_default();
                        self.merge(entry, property, depth + 1);
                    }
                }
                if let Some(other @ Value::Object(_)) = map.get("additionalProperties") {
                    self.merge(&mut object.other, other, depth + 1);
                }
            }
        }
        for list in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(members)) = map.get(list) {
                for member in members {
                    self.merge(shape, member, depth);
                }
            }
        }
    }
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

/// Why a parameter's or form body's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    /// JSON pointer inside the value; `""` is the whole value.
    pub pointer: String,
    pub message: String,
}

impl ReadError {
    fn at(pointer: &str, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.to_string(),
            message: message.into(),
        }
    }

    fn twice(pointer: &str) -> Self {
        Self::at(pointer, "given more than once")
    }
}

impl From<&str> for ReadError {
    fn from(message: &str) -> Self {
        Self::at("", message)
    }
}

impl From<String> for ReadError {
    fn from(message: String) -> Self {
        Self::at("", message)
    }
}

/// A query parameter as found in the query string.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Absent,
    /// Sent empty (`?flag`, `?flag=`) with `allowEmptyValue: true`: present, whatever the schema.
    AllowedEmpty,
    Present(Value),
}

/// The value of a query parameter.
pub fn read_query(
    spec: &ParameterSpec,
    shape: &Shape,
    pairs: &[(String, String)],
) -> Result<QueryValue, ReadError> {
    let plain: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| *n == spec.name)
        .map(|(_, v)| v.as_str())
        .collect();
    let exploded = spec.style == Style::DeepObject || spec.explode;
    let nested =
        spec.style == Style::DeepObject || (exploded && (shape.allows_object() || shape.allows_array()));
    let bracketed: Vec<(&str, &str)> = if nested {
        pairs
            .iter()
            .filter_map(|(n, v)| {
                let rest = n.strip_prefix(spec.name.as_str())?;
                rest.starts_with('[').then_some((rest, v.as_str()))
            })
            .collect()
    } else {
        Vec::new()
    };
    if spec.allow_empty_value && bracketed.is_empty() && matches!(plain.as_slice(), [""]) {
        return Ok(QueryValue::AllowedEmpty);
    }
    if spec.json {
        return match plain.as_slice() {
            [] => Ok(QueryValue::Absent),
            [one] => crate::json::parse_strict(one.as_bytes())
                .map(QueryValue::Present)
                .map_err(|e| ReadError::from(format!("not JSON: {e}"))),
            _ => Err(ReadError::twice("")),
        };
    }
    if !exploded {
        let delimiter = match spec.style {
            Style::SpaceDelimited => ' ',
            Style::PipeDelimited => '|',
            _ => ',',
        };
        return match plain.as_slice() {
            [] => Ok(QueryValue::Absent),
            [one] => Ok(QueryValue::Present(split_value(one, shape, delimiter, false))),
            _ => Err(ReadError::twice("")),
        };
    }
    let mut root = Node::default();
    // `p=x` for an object-only parameter is another, undocumented parameter: OpenAPI writes the
    // object as `p[k]=v` (deepObject) or its properties spread out (form).
    let object_only = shape.allows_object() && !shape.allows_array() && shape.scalars.is_empty();
    if !object_only {
        for value in &plain {
            root.texts.push((*value).to_string());
        }
    }
    for (rest, value) in bracketed {
        let key = || format!("{}{rest}", spec.name);
        let segments = key_segments(rest)
            .map_err(|e| ReadError::from(format!("{}: {e}", key())))?
            .ok_or_else(|| ReadError::from(format!("{}: malformed brackets", key())))?;
        root.insert(&segments, value);
    }
    // Exploded form objects spread their properties out (`login=kea&since=2024`), into the same
    // tree as `p[login]=…`: a property given both ways is given twice.
    if spec.style == Style::Form && root.texts.is_empty() {
        for (name, value) in pairs {
            let base = name.split_once('[').map_or(name.as_str(), |(base, _)| base);
            if base == spec.name || !shape.declares(base) {
                continue;
            }
            let Ok(Some(segments)) = key_segments(&name[base.len()..]) else {
                continue;
            };
            let mut path = vec![base];
            path.extend(segments);
            root.insert(&path, value);
        }
    }
    if root.is_empty() {
        return Ok(QueryValue::Absent);
    }
    // Repeated values are an array or refused, even when the schema names no type.
    if root.children.is_empty() && root.texts.len() > 1 && !shape.allows_array() {
        return Err(ReadError::twice(""));
    }
    root.value(shape, "").map(QueryValue::Present)
}

/// The value of a path or header parameter (style `simple`, `label` or `matrix`), or a cookie.
pub fn read_simple(spec: &ParameterSpec, shape: &Shape, text: &str) -> Result<Value, ReadError> {
    if spec.json {
        return crate::json::parse_strict(text.as_bytes())
            .map_err(|e| ReadError::from(format!("not JSON: {e}")));
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
            if shape.allows_array() && spec.explode {
                let repeated = format!(";{}=", spec.name);
                return Ok(split_value(&rest.replace(&repeated, ","), shape, ',', false));
            }
            Ok(split_value(
                rest,
                shape,
                if spec.explode { ';' } else { ',' },
                spec.explode,
            ))
        }
        _ => Ok(split_value(text, shape, ',', spec.explode)),
    }
}

/// Splits delimited text into the shape: arrays of items, objects as `k,v,k,v` or (exploded)
/// `k=v,k=v`, scalars whole. Empty text is one empty item: `?type=` is `[""]`, not `[]`.
fn split_value(text: &str, shape: &Shape, delimiter: char, exploded_pairs: bool) -> Value {
    if shape.wraps_single(text) {
        return Value::Array(text.split(delimiter).map(|v| shape.item().coerce(v)).collect());
    }
    // An object alternative needs its delimiter: `created=5` is the integer of
    // `anyOf: [{type: object}, {type: integer}]`.
    let pairs_mark = if exploded_pairs { '=' } else { delimiter };
    if !shape.allows_object() || (!shape.scalars.is_empty() && !text.contains(pairs_mark)) {
        return shape.coerce(text);
    }
    let mut object = Map::new();
    if exploded_pairs {
        for pair in text.split(delimiter).filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            object.insert(name.to_string(), shape.property(name).coerce(value));
        }
    } else {
        let parts: Vec<&str> = text.split(delimiter).collect();
        for pair in parts.chunks(2) {
            if let [name, value] = pair {
                object.insert((*name).to_string(), shape.property(name).coerce(value));
            } else if let [name] = pair {
                object.insert((*name).to_string(), Value::String(String::new()));
            }
        }
    }
    Value::Object(object)
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

/// A form-urlencoded body as an object, each property read by its Encoding Object (`encoding`,
/// by property name; the default is style `form`, exploded: arrays repeat their name and object
/// properties spread their own properties out as pairs) and coerced by the body schema.
pub fn read_form(
    body: &str,
    shape: &Shape,
    encoding: &BTreeMap<String, EncodingSpec>,
) -> Result<Value, ReadError> {
    let encoding_of = |name: &str| encoding.get(name).unwrap_or(&EncodingSpec::DEFAULT);
    // Inner property → the exploded form property that spreads it out (the first, by name).
    let mut spread: BTreeMap<&str, &str> = BTreeMap::new();
    for (owner, property) in shape.declared_properties() {
        let owner_encoding = encoding_of(owner);
        if owner_encoding.style == Style::Form && owner_encoding.explode && !owner_encoding.json {
            for (inner, _) in property.declared_properties() {
                spread.entry(inner.as_str()).or_insert(owner.as_str());
            }
        }
    }
    let pairs = query_pairs(body);
    let mut root = Node::default();
    for (name, value) in &pairs {
        // A declared name is itself, brackets and all; otherwise `base[…]…` nests.
        let (base, segments) = match name.split_once('[') {
            Some((base, _)) if !shape.declares(name) && !base.is_empty() => {
                match key_segments(&name[base.len()..])
                    .map_err(|e| ReadError::at("", format!("{name}: {e}")))?
                {
                    Some(segments) => (base, segments),
                    None => (name.as_str(), Vec::new()),
                }
            }
            _ => (name.as_str(), Vec::new()),
        };
        let mut path = Vec::with_capacity(segments.len() + 2);
        match spread.get(base) {
            Some(owner) if !shape.declares(base) => path.extend([*owner, base]),
            _ => path.push(base),
        }
        path.extend(segments);
        root.insert(&path, value);
    }
    let mut object = Map::new();
    for (name, node) in root.children {
        let pointer = format!("/{}", escape(&name));
        let property = shape.property(&name);
        let property_encoding = encoding_of(&name);
        let value = if property_encoding.json {
            let text = node.single_text(&pointer)?;
            crate::json::parse_strict(text.as_bytes())
                .map_err(|e| ReadError::at(&pointer, format!("not JSON: {e}")))?
        } else if !property_encoding.explode
            && property_encoding.style != Style::DeepObject
            && node.children.is_empty()
        {
            let delimiter = match property_encoding.style {
                Style::SpaceDelimited => ' ',
                Style::PipeDelimited => '|',
                _ => ',',
            };
            split_value(node.single_text(&pointer)?, property, delimiter, false)
        } else {
            node.value(property, &pointer)?
        };
        object.insert(name, value);
    }
    Ok(Value::Object(object))
}

/// `[a][0][]` → `["a", "0", ""]`, each segment up to the next `]`. A key that does not split
/// that way (`[a]b]`, `[a`) is one segment, its outer brackets removed, as OpenAPI's one-level
/// deepObject reads it; `None` when it does not even start with `[` and end with `]`.
fn brackets(rest: &str) -> Option<Vec<&str>> {
    let mut segments = Vec::new();
    let mut remaining = rest;
    while !remaining.is_empty() {
        let split = remaining
            .strip_prefix('[')
            .and_then(|inner| inner.split_once(']'));
        let Some((segment, after)) = split else {
            let whole = rest.strip_prefix('[')?.strip_suffix(']')?;
            return Some(vec![whole]);
        };
        segments.push(segment);
        remaining = after;
    }
    Some(segments)
}

/// The segments of a key's brackets, `None` when they are malformed; refused when too deep.
fn key_segments(rest: &str) -> Result<Option<Vec<&str>>, ReadError> {
    match brackets(rest) {
        Some(segments) if segments.len() > MAX_KEY_DEPTH => Err(ReadError::from(format!(
            "a key nests deeper than {MAX_KEY_DEPTH} brackets"
        ))),
        segments => Ok(segments),
    }
}

/// A JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Text values gathered under one key (`a`, `a[b]`, `a[]`), before the schema reads them. `a[]`
/// is the child `""`: an array's next item where the schema allows an array, else the empty key.
#[derive(Debug, Default)]
struct Node {
    texts: Vec<String>,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.texts.is_empty() && self.children.is_empty()
    }

    /// Adds `text` under the key `path`.
    fn insert(&mut self, path: &[&str], text: &str) {
        let mut node = self;
        for segment in path {
            node = node.children.entry((*segment).to_string()).or_default();
        }
        node.texts.push(text.to_string());
    }

    fn single_text(&self, pointer: &str) -> Result<&str, ReadError> {
        match (self.texts.as_slice(), self.children.is_empty()) {
            ([one], true) => Ok(one),
            ([], _) | (_, false) => Err(ReadError::at(
                pointer,
                "is given with [keys] where its encoding expects one value",
            )),
            _ => Err(ReadError::twice(pointer)),
        }
    }

    /// The value of this key and everything under it, read by `shape`.
    fn value(&self, shape: &Shape, pointer: &str) -> Result<Value, ReadError> {
        if self.children.is_empty() {
            return read_texts(&self.texts, shape, pointer);
        }
        if !self.texts.is_empty() {
            return Err(ReadError::at(pointer, "is given both as a value and with [keys]"));
        }
        if shape.allows_array() {
            // `a[]=x&a[]=y`: items in order.
            if let Some(appended) = self.children.get("").filter(|child| child.children.is_empty()) {
                if self.children.len() == 1 {
                    let item = shape.item();
                    return Ok(Value::Array(
                        appended.texts.iter().map(|t| item.coerce(t)).collect(),
                    ));
                }
            }
            let mut indexed: Vec<(usize, &Node)> = Vec::with_capacity(self.children.len());
            for (key, child) in &self.children {
                match index(key) {
                    Some(position) => indexed.push((position, child)),
                    None => break,
                }
            }
            if indexed.len() == self.children.len() {
                indexed.sort_by_key(|(position, _)| *position);
                if indexed
                    .iter()
                    .enumerate()
                    .all(|(i, (position, _))| i == *position)
                {
                    return indexed
                        .iter()
                        .map(|(position, child)| child.value(shape.item(), &format!("{pointer}/{position}")))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Value::Array);
                }
            }
            if !shape.allows_object() {
                return Err(ReadError::at(
                    pointer,
                    "array items are written a[]=v, or a[0]…, a[1]… counting from 0 without gaps",
                ));
            }
        }
        let mut object = Map::new();
        for (key, child) in &self.children {
            let value = child.value(shape.property(key), &format!("{pointer}/{}", escape(key)))?;
            object.insert(key.clone(), value);
        }
        Ok(Value::Object(object))
    }
}

/// The value of texts given under one key: repeated for an array (or an untyped value), once for
/// anything else.
fn read_texts(texts: &[String], shape: &Shape, pointer: &str) -> Result<Value, ReadError> {
    let items = || Value::Array(texts.iter().map(|t| shape.item().coerce(t)).collect());
    match texts {
        [one] if !shape.wraps_single(one) => Ok(shape.coerce(one)),
        _ if shape.allows_array() => Ok(items()),
        // Undeclared keys of an open object: a list, which the schema may refuse.
        _ if shape.is_any() => Ok(Value::Array(
            texts.iter().map(|t| Value::String(t.clone())).collect(),
        )),
        _ => Err(ReadError::twice(pointer)),
    }
}

/// An array index in a key: `0` or digits without a leading zero, small enough to be real.
fn index(key: &str) -> Option<usize> {
    let canonical = key == "0" || (!key.starts_with('0') && key.len() <= 6);
    if canonical && !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
        key.parse().ok()
    } else {
        None
    }
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

    fn shape(schema: Value) -> Shape {
        Shape::of(&schema, &BTreeMap::new())
    }

    fn object_shape() -> Shape {
        shape(json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}))
    }

    fn query(spec: &ParameterSpec, shape: &Shape, query: &str) -> Result<QueryValue, ReadError> {
        read_query(spec, shape, &query_pairs(query))
    }

    fn present(value: Value) -> Result<QueryValue, ReadError> {
        Ok(QueryValue::Present(value))
    }

    fn form(body: &str, shape: &Shape) -> Result<Value, ReadError> {
        read_form(body, shape, &BTreeMap::new())
    }

    fn encoded(style: Style, explode: bool, json: bool) -> EncodingSpec {
        EncodingSpec { style, explode, json }
    }

    #[test]
    fn shapes_follow_references_all_of_and_alternatives() {
        let definitions = BTreeMap::from([("N".to_string(), json!({"type": ["integer", "null"]}))]);
        let reference = Shape::of(&json!({"$ref": "#/definitions/N"}), &definitions);
        assert_eq!(reference.coerce("5"), json!(5));
        let array = Shape::of(
            &json!({"type": "array", "items": {"$ref": "#/definitions/N"}}),
            &definitions,
        );
        assert_eq!(array.item().coerce("5"), json!(5));
        let merged = shape(json!({"allOf": [{"properties": {"a": {"type": "boolean"}}}]}));
        assert_eq!(merged.property("a").coerce("true"), json!(true));
        // Stripe's `created`: an object of integers or an integer.
        let created = shape(json!({"anyOf": [
            {"type": "object", "properties": {"gt": {"type": "integer"}, "lte": {"type": "integer"}}},
            {"type": "integer"}]}));
        assert!(created.allows_object());
        assert_eq!(created.coerce("1600000000"), json!(1600000000));
        assert_eq!(created.property("gt").coerce("7"), json!(7));
        // A numeric alternative wins over a string one when the text reads as it.
        let either = shape(json!({"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}));
        assert_eq!(either.coerce("2.5"), json!(2.5));
        assert_eq!(either.coerce("false"), json!(false));
        assert_eq!(either.coerce("two"), json!("two"));
        // Recursive definitions stop at the cycle.
        let definitions = BTreeMap::from([(
            "Node".to_string(),
            json!({"type": "object", "properties": {"value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}}}),
        )]);
        let node = Shape::of(&json!({"$ref": "#/definitions/Node"}), &definitions);
        assert_eq!(node.property("value").coerce("1"), json!(1));
        assert_eq!(*node.property("children").item(), Shape::ANY);
    }

    #[test]
    fn shapes_of_wide_reference_graphs_are_bounded() {
        // 40 definitions, each referring to the three next ones: no cycle within 12 levels, 3^12
        // paths through them.
        let definitions: BTreeMap<String, Value> = (0..40)
            .map(|i| {
                let reference = |j: usize| json!({"$ref": format!("#/definitions/D{}", j % 40)});
                (
                    format!("D{i}"),
                    json!({"type": "object", "properties": {
                        "a": reference(i + 1), "b": reference(i + 2), "c": reference(i + 3),
                        "n": {"type": "integer"}
                    }}),
                )
            })
            .collect();
        let shape = Shape::of(&json!({"$ref": "#/definitions/D0"}), &definitions);
        // The first levels are read as the schema says; far down values stay text.
        assert_eq!(shape.property("a").property("n").coerce("5"), json!(5));
        let mut deep = &shape;
        for _ in 0..12 {
            deep = deep.property("c");
        }
        assert_eq!(deep.property("n").coerce("5"), json!("5"));
    }

    #[test]
    fn coercion_only_accepts_json_number_grammar() {
        let integer = shape(json!({"type": "integer"}));
        let number = shape(json!({"type": "number"}));
        let boolean = shape(json!({"type": "boolean"}));
        assert_eq!(integer.coerce("42"), json!(42));
        assert_eq!(integer.coerce("-1"), json!(-1));
        assert_eq!(integer.coerce("1.5"), json!("1.5"));
        assert_eq!(integer.coerce("01"), json!("01"));
        assert!(integer.coerce("17348512999956690748157890446491648").is_number());
        assert_eq!(number.coerce("1e3"), json!(1000.0));
        assert_eq!(number.coerce("+1"), json!("+1"));
        assert_eq!(number.coerce("NaN"), json!("NaN"));
        assert_eq!(boolean.coerce("true"), json!(true));
        assert_eq!(boolean.coerce("True"), json!("True"));
        assert_eq!(shape(json!({"type": "string"})).coerce("42"), json!("42"));
        assert_eq!(Shape::ANY.coerce("42"), json!("42"));
    }

    #[test]
    fn query_styles() {
        let all = "p=1&p=2&a=3&b=x+y&p%5Ba%5D=7";
        let array = shape(json!({"type": "array", "items": {"type": "integer"}}));
        assert_eq!(
            query(&spec(Style::Form, true), &array, "p=1&p=2&a=3"),
            present(json!([1, 2]))
        );
        // PHP and Rails write arrays with brackets; mixing both ways is refused.
        assert_eq!(
            query(&spec(Style::Form, true), &array, "p[]=1&p[]=2"),
            present(json!([1, 2]))
        );
        assert_eq!(
            query(&spec(Style::Form, true), &array, "p[0]=1"),
            present(json!([1]))
        );
        assert!(query(&spec(Style::Form, true), &array, all).is_err());
        assert_eq!(
            query(&spec(Style::Form, false), &array, "p=1,2"),
            present(json!([1, 2]))
        );
        assert_eq!(
            query(&spec(Style::Form, true), &object_shape(), "a=3&b=x+y&p=1"),
            present(json!({"a": 3, "b": "x y"}))
        );
        assert_eq!(
            query(&spec(Style::Form, true), &object_shape(), "a=3&p[b]=x"),
            present(json!({"a": 3, "b": "x"}))
        );
        assert_eq!(
            query(&spec(Style::Form, true), &object_shape(), all),
            Err(ReadError::twice("/a"))
        );
        assert_eq!(
            query(&spec(Style::DeepObject, true), &object_shape(), all),
            present(json!({"a": 7}))
        );
        assert_eq!(
            query(&spec(Style::PipeDelimited, false), &array, "p=1|2"),
            present(json!([1, 2]))
        );
        let twice = query(&spec(Style::Form, true), &shape(json!({"type": "integer"})), all);
        assert_eq!(twice, Err(ReadError::twice("")));
        assert_eq!(
            query(&spec(Style::Form, true), &array, "x=1"),
            Ok(QueryValue::Absent)
        );
        // Repeated values need an array, even without a type.
        assert_eq!(
            query(&spec(Style::Form, true), &Shape::ANY, "p=1&p=2"),
            Err(ReadError::twice(""))
        );
        // An object parameter is never `p=x`: that is another parameter.
        assert_eq!(
            query(&spec(Style::DeepObject, true), &object_shape(), "p=x"),
            Ok(QueryValue::Absent)
        );
    }

    #[test]
    fn deep_objects_in_queries() {
        let filter = spec(Style::DeepObject, true);
        // A declared key twice is ambiguous; an undeclared one repeats as a list.
        assert_eq!(
            query(&filter, &object_shape(), "p[a]=1&p[a]=2"),
            Err(ReadError::twice("/a"))
        );
        assert_eq!(
            query(&filter, &object_shape(), "p[c]=1&p[c]=2"),
            present(json!({"c": ["1", "2"]}))
        );
        // Stripe's `created`: `created[gte]=…` or `created=…`, not both.
        let created = shape(json!({"anyOf": [
            {"type": "object", "properties": {"gte": {"type": "integer"}, "lt": {"type": "integer"}}},
            {"type": "integer"}]}));
        assert_eq!(
            query(&filter, &created, "p[gte]=1600000000&p[lt]=1700000000"),
            present(json!({"gte": 1600000000, "lt": 1700000000}))
        );
        assert_eq!(
            query(&filter, &created, "p=1600000000"),
            present(json!(1600000000))
        );
        assert!(query(&filter, &created, "p=1&p[gte]=2").is_err());
        // The same value as an exploded form object: spread properties, or the integer.
        let spread = spec(Style::Form, true);
        assert_eq!(query(&spread, &created, "gte=5"), present(json!({"gte": 5})));
        assert_eq!(query(&spread, &created, "p=5&gte=4"), present(json!(5)));
        // Unexploded: the object needs its delimiter.
        let flat = spec(Style::Form, false);
        assert_eq!(query(&flat, &created, "p=gte,5"), present(json!({"gte": 5})));
        assert_eq!(query(&flat, &created, "p=5"), present(json!(5)));
        // Malformed and over-deep keys.
        assert!(query(&filter, &object_shape(), "p[a=1").is_err());
        let deep = format!("p{}=1", "[a]".repeat(MAX_KEY_DEPTH + 1));
        assert!(query(&filter, &object_shape(), &deep).is_err());
    }

    #[test]
    fn empty_values() {
        let flag = ParameterSpec {
            allow_empty_value: true,
            ..spec(Style::Form, true)
        };
        let boolean = shape(json!({"type": "boolean"}));
        assert_eq!(query(&flag, &boolean, "p"), Ok(QueryValue::AllowedEmpty));
        assert_eq!(query(&flag, &boolean, "p="), Ok(QueryValue::AllowedEmpty));
        assert_eq!(query(&flag, &boolean, "p=true"), present(json!(true)));
        // Without allowEmptyValue, empty is the empty string, for the schema to judge.
        assert_eq!(
            query(&spec(Style::Form, true), &boolean, "p="),
            present(json!(""))
        );
        // An empty array value is one empty item, exploded or not.
        let kinds = shape(json!({"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}));
        assert_eq!(
            query(&spec(Style::Form, false), &kinds, "p="),
            present(json!([""]))
        );
        assert_eq!(
            query(&spec(Style::Form, true), &kinds, "p="),
            present(json!([""]))
        );
        assert_eq!(
            query(&spec(Style::Form, false), &kinds, "p=a,"),
            present(json!(["a", ""]))
        );
        assert_eq!(query(&flag, &kinds, "p="), Ok(QueryValue::AllowedEmpty));
        // "Set or unset": an empty value is the scalar alternative, anything else an array.
        let unset = shape(json!({"anyOf": [{"type": "array", "items": {"type": "string"}},
            {"type": "string", "enum": [""]}]}));
        assert_eq!(query(&spec(Style::Form, true), &unset, "p="), present(json!("")));
        assert_eq!(
            query(&spec(Style::Form, true), &unset, "p=x"),
            present(json!(["x"]))
        );
        assert_eq!(query(&spec(Style::Form, false), &unset, "p="), present(json!("")));
        assert_eq!(
            query(&spec(Style::Form, false), &unset, "p=x"),
            present(json!(["x"]))
        );
    }

    #[test]
    fn path_and_header_styles() {
        let array = shape(json!({"type": "array", "items": {"type": "integer"}}));
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
                &shape(json!({"type": "integer"})),
                ";p=5"
            ),
            Ok(json!(5))
        );
        assert_eq!(
            read_simple(&spec(Style::Matrix, true), &array, ";p=3;p=4"),
            Ok(json!([3, 4]))
        );
        assert!(read_simple(&spec(Style::Label, false), &array, "3").is_err());
        assert_eq!(
            read_simple(&spec(Style::Simple, false), &array, ""),
            Ok(json!([""]))
        );
    }

    #[test]
    fn forms_and_cookies() {
        assert_eq!(
            form("a=1&b=two", &object_shape()),
            Ok(json!({"a": 1, "b": "two"}))
        );
        assert_eq!(form("a=1&a=2", &object_shape()), Err(ReadError::twice("/a")));
        let nested = shape(
            json!({"properties": {"tags": {"type": "array", "items": {"type": "integer"}},
                "owner": {"type": "object", "properties": {"login": {"type": "string"}, "age": {"type": "integer"}}}}}),
        );
        assert_eq!(
            form("tags=1&login=kea&age=3", &nested),
            Ok(json!({"tags": [1], "owner": {"login": "kea", "age": 3}}))
        );
        // Undeclared names of an open body stay text, a list when repeated.
        assert_eq!(
            form("x=1&x=2&y=3", &nested),
            Ok(json!({"x": ["1", "2"], "y": "3"}))
        );
        assert_eq!(
            cookie_pairs("a=1; b=\"x\""),
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
    }

    /// A Stripe-like form body: objects, "set or unset" fields, arrays of objects, `expand[]`.
    fn stripe_body() -> Shape {
        shape(json!({"type": "object", "properties": {
            "amount": {"type": "integer"},
            "capture": {"type": "boolean"},
            "metadata": {"anyOf": [{"type": "object", "additionalProperties": {"type": "string"}},
                {"type": "string", "enum": [""]}]},
            "address": {"type": "object", "properties": {"city": {"type": "string"}, "line1": {"type": "string"}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "price": {"type": "string"}, "quantity": {"type": "integer"},
                "tax_rates": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string", "enum": [""]}]}}}},
            "expand": {"type": "array", "items": {"type": "string"}},
            "ids": {"type": "array", "items": {"type": "integer"}},
            "filters": {"type": "object", "properties": {"min": {"type": "integer"}}},
        }}))
    }

    #[test]
    fn form_bodies_read_brackets_at_any_depth() {
        let body = stripe_body();
        assert_eq!(
            form(
                "amount=2000&capture=true&metadata[order_id]=6735&address[city]=Berlin&expand[]=customer&expand[]=invoice",
                &body
            ),
            Ok(json!({"amount": 2000, "capture": true, "metadata": {"order_id": "6735"},
                "address": {"city": "Berlin"}, "expand": ["customer", "invoice"]}))
        );
        assert_eq!(
            form(
                "items[0][price]=price_1&items[0][quantity]=2&items[1][price]=price_2&items[1][tax_rates][0]=txr_1",
                &body
            ),
            Ok(json!({"items": [{"price": "price_1", "quantity": 2},
                {"price": "price_2", "tax_rates": ["txr_1"]}]}))
        );
        // Unsetting: the empty string alternative.
        assert_eq!(
            form("metadata=&items[0][tax_rates]=", &body),
            Ok(json!({"metadata": "", "items": [{"tax_rates": ""}]}))
        );
        // Indexed or repeated arrays of scalars; `[]` names an array of one.
        assert_eq!(form("ids[1]=5&ids[0]=4", &body), Ok(json!({"ids": [4, 5]})));
        assert_eq!(form("ids=4&ids=5", &body), Ok(json!({"ids": [4, 5]})));
        assert_eq!(form("expand[]=a", &body), Ok(json!({"expand": ["a"]})));
        // Indices beyond 9 sort as numbers.
        let many: Vec<String> = (0..12).map(|i| format!("ids[{i}]={i}")).collect();
        assert_eq!(
            form(&many.join("&"), &body),
            Ok(json!({"ids": (0..12).collect::<Vec<_>>()}))
        );
        // Gaps, mixed forms and malformed keys.
        assert_eq!(
            form("ids[1]=5", &body).map_err(|e| e.pointer),
            Err("/ids".to_string())
        );
        assert_eq!(
            form("metadata=x&metadata[a]=1", &body).map_err(|e| e.pointer),
            Err("/metadata".to_string())
        );
        assert!(form("items[][price]=x", &body).is_err());
        assert_eq!(form("address[city=B", &body), Ok(json!({"address[city": "B"})));
        // Outside arrays `[]` is the empty key; keys may hold brackets.
        assert_eq!(
            form("metadata[]=x&metadata[a[b]=y&metadata[c]d]=z", &body),
            Ok(json!({"metadata": {"": "x", "a[b": "y", "c]d": "z"}}))
        );
        assert_eq!(
            form("items[0][quantity]=1&items[0][quantity]=2", &body).map_err(|e| e.pointer),
            Err("/items/0/quantity".to_string())
        );
        // An object property given flat is text, for the schema to refuse.
        assert_eq!(form("address=Berlin", &body), Ok(json!({"address": "Berlin"})));
        let deep = format!("metadata{}=1", "[a]".repeat(MAX_KEY_DEPTH + 1));
        assert!(form(&deep, &body).is_err());
    }

    #[test]
    fn form_bodies_follow_their_encoding() {
        let body = stripe_body();
        let encoding = BTreeMap::from([
            ("ids".to_string(), encoded(Style::Form, false, false)),
            ("expand".to_string(), encoded(Style::PipeDelimited, false, false)),
            ("filters".to_string(), encoded(Style::Form, true, true)),
            ("address".to_string(), encoded(Style::DeepObject, true, false)),
        ]);
        let read = |text: &str| read_form(text, &body, &encoding);
        assert_eq!(
            read("ids=1,2,3&expand=a|b&address[city]=Berlin"),
            Ok(json!({"ids": [1, 2, 3], "expand": ["a", "b"], "address": {"city": "Berlin"}}))
        );
        assert_eq!(
            read("ids=1&ids=2").map_err(|e| e.pointer),
            Err("/ids".to_string())
        );
        assert_eq!(read("ids="), Ok(json!({"ids": [""]})));
        // Brackets are read whatever the encoding says.
        assert_eq!(read("ids[0]=1&ids[1]=2"), Ok(json!({"ids": [1, 2]})));
        // contentType application/json: the value is JSON text.
        assert_eq!(
            read("filters=%7B%22min%22%3A5%7D"),
            Ok(json!({"filters": {"min": 5}}))
        );
        assert_eq!(
            read("filters=%7Bmin").map_err(|e| e.pointer),
            Err("/filters".to_string())
        );
        assert!(read("filters[min]=5").is_err());
        // A deepObject property is not spread: `city=…` is a property of the body.
        assert_eq!(read("city=Berlin"), Ok(json!({"city": "Berlin"})));
        // The default (form, exploded) spreads an object's properties out.
        assert_eq!(
            form("city=Berlin&line1=Main", &body),
            Ok(json!({"address": {"city": "Berlin", "line1": "Main"}}))
        );
    }
}
