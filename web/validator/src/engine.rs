//! The engine behind the browser API, in plain Rust (natively testable): the validate plugin's own
//! configuration and stream code run against a [`PageHost`].

use crate::host::PageHost;
use kea_plugin_sdk::host::is_token;
use kea_plugin_sdk::{Bytes, ConfigError};
use kea_schema::{Bundle, Sources};
use kea_validate::config::Origin;
use kea_validate::plugin::{configure, Runtime};
use kea_validate::stream::{Action, ValidateStream};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::rc::Rc;

/// A configured validator: the plugin's [`Runtime`] for one `ValidateConfig`.
#[derive(Debug)]
pub struct Engine {
    runtime: Rc<Runtime>,
    operations: Vec<OperationInfo>,
}

/// One request as a page would send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub method: String,
    /// Origin-form request target: `/path?query`, percent-encoded as sent on the wire.
    pub target: String,
    /// Header names and values; `host` or `:authority` gives the authority.
    pub headers: Vec<(String, String)>,
    /// Empty: no body.
    pub body: Bytes,
}

/// What the gateway's validate plugin does with a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    /// The `x-kea-validation` value the plugin set: `passed`, `failed`, `reported` or `skipped`.
    pub verdict: Option<String>,
    /// The local reply's status, when the plugin answered instead of forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// The local reply's body, parsed (always problem+json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Value>,
    /// The reply's body as text, only if it is not JSON (never, from this plugin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Lines the gateway would log for this request (report mode lists the problems there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// The reply's body bytes exactly as sent.
    #[serde(skip)]
    pub raw_body: Option<Bytes>,
}

/// An operation of a configured API, for a page's request builder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationInfo {
    /// `apis[].name`.
    pub api: String,
    pub method: String,
    /// The full path template: base path (from `servers`) and the template under `paths`.
    pub path: String,
    pub operation_id: Option<String>,
}

impl Engine {
    /// Configures the validate plugin with `config` (its `ValidateConfig` JSON). Errors are the
    /// plugin's own (`invalid configuration at FIELD: REASON`). APIs must come inline (`bundle` or
    /// `document`): a page fetches nothing, so a `url` source is refused rather than answering every
    /// request with 503 like a gateway whose bundle has not arrived.
    pub fn new(config: &str) -> Result<Self, ConfigError> {
        let runtime = configure(&PageHost::default(), config.as_bytes())?;
        if let Some(index) = runtime
            .config
            .apis
            .iter()
            .position(|api| matches!(api.origin, Origin::Fetched(_)))
        {
            return Err(ConfigError::new(
                format!("apis[{index}].url"),
                "a page fetches no bundles: give the bundle inline (`bundle`), e.g. as fetched from the operator's /bundles/ endpoint",
            ));
        }
        Ok(Self {
            runtime,
            operations: operations(config),
        })
    }

    /// Runs one request through the plugin (request headers, then the body in one piece, as Envoy
    /// delivers a buffered body) and reports what it did.
    pub fn check(&self, request: &PageRequest) -> Result<Outcome, String> {
        let host = self.run(request)?;
        let reply = host.reply();
        let (problem, body) = match reply.as_ref() {
            Some(reply) => match serde_json::from_slice::<Value>(&reply.body) {
                Ok(problem) => (Some(problem), None),
                Err(_) => (None, Some(String::from_utf8_lossy(&reply.body).into_owned())),
            },
            None => (None, None),
        };
        Ok(Outcome {
            verdict: host.request_header(kea_plugin_sdk::identity::VALIDATION),
            status: reply.as_ref().map(|r| r.status),
            headers: reply.as_ref().map(|r| r.headers.clone()),
            problem,
            body,
            log: host.logs(),
            raw_body: reply.map(|r| r.body),
        })
    }

    /// The plugin's stream over a [`PageHost`] for `request`; the host holds what it did.
    pub fn run(&self, request: &PageRequest) -> Result<PageHost, String> {
        let host = PageHost::new(request.header_list()?, request.body.clone());
        let mut stream = ValidateStream::new();
        let has_body = !request.body.is_empty();
        let action = stream.on_request_headers(&host, &self.runtime, !has_body);
        if action == Action::Wait && has_body {
            stream.on_request_body(&host, &self.runtime, request.body.len(), true);
        }
        Ok(host)
    }

    /// Every operation of every API with an inline bundle or document.
    pub fn operations(&self) -> &[OperationInfo] {
        &self.operations
    }
}

impl PageRequest {
    /// The request headers the plugin sees, as Envoy would hand them over: `:method`, `:path`,
    /// `:authority` (from `:authority` or `host`), then the other headers with names lower-cased
    /// and values trimmed; `content-length` is the body's (a browser sets it; a page cannot).
    /// Refuses what a browser would refuse to send: a method or header name that is no token,
    /// a header value with CR, LF or NUL, a target that is not `/path?query` as sent on the wire
    /// (browsers percent-encode spaces, controls and non-ASCII).
    pub fn header_list(&self) -> Result<Vec<(String, Bytes)>, String> {
        if !is_token(&self.method) {
            return Err(format!("method {:?} is not an HTTP token", self.method));
        }
        // Browsers never send the fragment.
        let target = self.target.split('#').next().unwrap_or_default();
        if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(format!(
                "target {target:?} must be a path with an optional ?query, percent-encoded as sent (e.g. new URL(...).pathname + search)"
            ));
        }
        let mut authority: Option<&str> = None;
        let mut rest = Vec::with_capacity(self.headers.len() + 1);
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if lower != ":authority" && !is_token(&lower) {
                return Err(format!("header name {name:?} is not an HTTP token"));
            }
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(format!("header {name} has CR, LF or NUL in its value"));
            }
            let value = value.trim_matches([' ', '\t']);
            match lower.as_str() {
                ":authority" => authority = Some(value),
                "host" => {
                    authority.get_or_insert(value);
                }
                "content-length" => {}
                _ => rest.push((lower, value.as_bytes().to_vec())),
            }
        }
        let mut list = vec![
            (":method".to_string(), self.method.as_bytes().to_vec()),
            (":path".to_string(), target.as_bytes().to_vec()),
            (
                ":authority".to_string(),
                authority.unwrap_or_default().as_bytes().to_vec(),
            ),
        ];
        list.extend(rest);
        if !self.body.is_empty() {
            list.push((
                "content-length".to_string(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        Ok(list)
    }
}

/// Reads headers given as JSON: `[["name", "value"], ...]` (repeats allowed, order kept) or
/// `{"name": "value" | ["value", ...]}`; empty text means none.
pub fn parse_headers(json: &str) -> Result<Vec<(String, String)>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(json).map_err(|e| format!("headers are not JSON: {e}"))?;
    let text = |name: &str, v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(format!("header {name}: the value must be a string")),
        }
    };
    let mut headers = Vec::new();
    match value {
        Value::Array(pairs) => {
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(name), value]) => headers.push((name.clone(), text(name, value)?)),
                    _ => return Err("headers: each item must be a [name, value] pair of strings".into()),
                }
            }
        }
        Value::Object(map) => {
            for (name, value) in map {
                match value {
                    Value::Array(values) => {
                        for value in &values {
                            headers.push((name.clone(), text(&name, value)?));
                        }
                    }
                    value => headers.push((name.clone(), text(&name, &value)?)),
                }
            }
        }
        Value::Null => {}
        _ => return Err("headers must be [[name, value], ...] or {name: value}".into()),
    }
    Ok(headers)
}

/// The operations the configuration's inline APIs describe. Bundles are read for their operation
/// list only; documents are compiled (again) — the configuration already compiled, so this
/// cannot fail in practice, and what does is left out.
fn operations(config: &str) -> Vec<OperationInfo> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        apis: Vec<Api>,
    }
    #[derive(Deserialize)]
    struct Api {
        name: String,
        #[serde(default)]
        bundle: Option<Operations>,
        #[serde(default)]
        document: Option<Value>,
    }
    #[derive(Deserialize)]
    struct Operations {
        operations: Vec<Operation>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Operation {
        #[serde(default)]
        id: Option<String>,
        method: String,
        path: String,
        base_paths: Vec<String>,
    }
    let Ok(parsed) = serde_json::from_str::<Config>(config) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for api in parsed.apis {
        let listed: Vec<Operation> = match (api.bundle, api.document) {
            (Some(bundle), _) => bundle.operations,
            (None, Some(document)) => match Bundle::compile(&Sources::single(&api.name, document)) {
                Ok(bundle) => bundle
                    .operations
                    .into_iter()
                    .map(|o| Operation {
                        id: o.id,
                        method: o.method,
                        path: o.path,
                        base_paths: o.base_paths,
                    })
                    .collect(),
                Err(_) => Vec::new(),
            },
            (None, None) => Vec::new(),
        };
        for operation in listed {
            for base in &operation.base_paths {
                out.push(OperationInfo {
                    api: api.name.clone(),
                    method: operation.method.clone(),
                    path: format!("{base}{}", operation.path),
                    operation_id: operation.id.clone(),
                });
            }
        }
    }
    out
}
