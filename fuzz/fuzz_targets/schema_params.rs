//! Request parameters and routes as the validator reads them (`kea_schema::params`:
//! `query_pairs`, `read_query` for every style (form, spaceDelimited, pipeDelimited, deepObject)
//! and `explode`, `read_simple` (path/header: simple, label, matrix), `cookie_pairs`, `read_form`
//! with Encoding Objects, `Shape::of`/`coerce`; `kea_schema::routes`: `Template::parse`,
//! `RouteTable::new`/`find`), under a set of representative parameter schemas.
//!
//! Property: no panic, and
//! - a route template that parses is found by the table for its own text with every variable
//!   filled by a plain value that does not run into one of the template's literals (the answer
//!   is an operation or "method not allowed", never "not found"), and the values captured are
//!   the ones filled in. A value followed by a literal that shows the literal early is
//!   ambiguous: `/{a}d{b}` filled with `dd`, or `/{a}UU` filled with `U`, splits at the first
//!   occurrence (a variable runs to the next literal, as OpenAPI routers do) and leaves `a`
//!   empty; found by the long run, left as the matcher's documented rule;
//! - `query_pairs` yields no more pairs than the query has `&`-separated parts.
#![no_main]

use arbitrary::Arbitrary;
use kea_schema::bundle::{EncodingSpec, ParameterSpec};
use kea_schema::model::{ParameterIn, Style};
use kea_schema::params::{cookie_pairs, query_pairs, read_form, read_query, read_simple, Shape};
use kea_schema::routes::{RouteMatch, RouteTable, Template};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const STYLES: [Style; 7] = [
    Style::Form,
    Style::SpaceDelimited,
    Style::PipeDelimited,
    Style::DeepObject,
    Style::Simple,
    Style::Label,
    Style::Matrix,
];
const LOCATIONS: [ParameterIn; 4] = [
    ParameterIn::Query,
    ParameterIn::Path,
    ParameterIn::Header,
    ParameterIn::Cookie,
];

fn shapes() -> &'static Vec<Shape> {
    static SHAPES: OnceLock<Vec<Shape>> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let definitions = BTreeMap::from([
            ("Node".to_string(), json!({"type": "object", "properties": {"child": {"$ref": "#/definitions/Node"}, "n": {"type": "integer"}}})),
        ]);
        [
            json!({"type": "integer"}),
            json!({"type": "number"}),
            json!({"type": "boolean"}),
            json!({"type": "string"}),
            json!({"type": ["integer", "null"]}),
            json!({"type": "array", "items": {"type": "integer"}}),
            json!({"type": "array", "items": {"type": "array", "items": {"type": "string"}}}),
            json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "array", "items": {"type": "number"}}}}),
            json!({"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}}}),
            json!({"oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "boolean"}}]}),
            json!({"$ref": "#/definitions/Node"}),
            json!({}),
        ]
        .iter()
        .map(|schema| Shape::of(schema, &definitions))
        .collect()
    })
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    style: u8,
    location: u8,
    explode: bool,
    allow_empty_value: bool,
    json: bool,
    shape: u8,
    name: &'a str,
    text: &'a str,
    encoding: Option<(u8, bool, bool)>,
    templates: Vec<&'a str>,
    fill: &'a str,
    method: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let shapes = shapes();
    let shape = &shapes[usize::from(input.shape) % shapes.len()];
    let spec = ParameterSpec {
        name: if input.name.is_empty() {
            "p".into()
        } else {
            input.name.into()
        },
        location: LOCATIONS[usize::from(input.location) % LOCATIONS.len()],
        required: false,
        style: STYLES[usize::from(input.style) % STYLES.len()],
        explode: input.explode,
        allow_empty_value: input.allow_empty_value,
        json: input.json,
        schema: None,
    };
    let pairs = query_pairs(input.text);
    assert!(pairs.len() <= input.text.split('&').count());
    let _ = read_query(&spec, shape, &pairs);
    let _ = read_simple(&spec, shape, input.text);
    let _ = cookie_pairs(input.text);
    let _ = shape.coerce(input.text);
    let mut encoding = BTreeMap::new();
    if let Some((style, explode, json)) = input.encoding {
        encoding.insert(
            spec.name.clone(),
            EncodingSpec {
                style: STYLES[usize::from(style) % STYLES.len()],
                explode,
                json,
            },
        );
        encoding.insert(
            "a".to_string(),
            EncodingSpec {
                style: STYLES[usize::from(style) % 4],
                explode,
                json,
            },
        );
    }
    let _ = read_form(input.text, shape, &encoding);

    // Routes.
    let mut operations = Vec::new();
    for (index, raw) in input.templates.iter().take(6).enumerate() {
        if let Ok(template) = Template::parse(raw) {
            operations.push((
                (if index % 2 == 0 { "get" } else { "post" }).to_string(),
                template,
                index,
            ));
        }
    }
    let table = RouteTable::new(&operations);
    let _ = table.find(input.method, input.text);
    let plain = !input.fill.is_empty() && input.fill.bytes().all(|b| b.is_ascii_alphanumeric());
    for (method, template, _) in &operations {
        let text = template_text(&operations, template, &input.templates);
        // The template's literal text (what lies outside `{…}`, segment by segment) is ambiguous
        // with the fill when a variable's value followed by it shows it earlier than its end.
        let ambiguous = text
            .split('/')
            .flat_map(|segment| segment.split(['{', '}']).step_by(2))
            .filter(|literal| !literal.is_empty())
            .any(|literal| format!("{}{literal}", input.fill).find(literal) != Some(input.fill.len()));
        let filled = template.variables().fold(text, |text, var| {
            text.replacen(&format!("{{{var}}}"), input.fill, 1)
        });
        if !plain || ambiguous || filled.contains('%') || filled.split('/').any(|s| s == "." || s == "..") {
            continue;
        }
        match table.find(method, &filled) {
            RouteMatch::Found { .. } | RouteMatch::MethodNotAllowed { .. } => {}
            RouteMatch::NotFound => panic!("{filled:?} (from {template:?}) is not found"),
        }
    }
});

/// The text a template was parsed from.
fn template_text(operations: &[(String, Template, usize)], template: &Template, raws: &[&str]) -> String {
    operations
        .iter()
        .find(|(_, t, _)| t == template)
        .and_then(|(_, _, index)| raws.get(*index))
        .map(|s| s.to_string())
        .unwrap_or_default()
}
