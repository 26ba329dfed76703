//! What the API controller learned about each ApiDefinition, for the gateway controller: the
//! compiled version each gateway should serve (the last good one when a newer spec is invalid) and
//! which generation the gateway's WasmPlugins carry. In memory: a new leader rebuilds it by
//! evaluating every API before any gateway is rendered.

use crate::crd::{ApiDefinitionSpec, Verdict};
use crate::render::spec::Checked;
use crate::render::Key;
use kea_schema::Bundle;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// An API version that passed every check.
#[derive(Debug)]
pub struct Compiled {
    pub generation: i64,
    /// The gateway this version was checked against (and is served by).
    pub gateway: Key,
    pub spec: ApiDefinitionSpec,
    pub checked: Checked,
    pub bundle: Bundle,
    pub document: Value,
}

#[derive(Debug)]
pub struct Entry {
    pub gateway: Key,
    /// The GatewayBinding (uid, generation) the evaluation saw; a changed binding means the API
    /// must be evaluated again before the gateway renders.
    pub binding: Option<(String, i64)>,
    /// The generation last evaluated, and what went into that evaluation.
    pub evaluated: i64,
    pub inputs: u64,
    pub evaluated_at: Instant,
    /// Verdicts of that evaluation (Accepted, SchemaValid, RoutesReady).
    pub verdicts: Vec<Verdict>,
    /// The schema's warnings in that evaluation (`status.warnings`).
    pub warnings: Vec<String>,
    /// Whether the evaluation should be repeated soon (a Service was missing).
    pub retry: bool,
    /// The version the gateway serves: the evaluated one if it passed, else the last good one.
    pub serving: Option<Arc<Compiled>>,
    /// Generation of `serving` the gateway's WasmPlugins carry.
    pub included: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Registry {
    pub apis: HashMap<Key, Entry>,
}
