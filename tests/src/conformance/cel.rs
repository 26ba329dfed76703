//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated as kube-apiserver does on create:
//! every rule at every node of the (pruned, defaulted) object where the schema declares it, with
//! `self` bound to that node, typed by the schema (declared property names escaped, `number`s as
//! doubles), plus the parts of Kubernetes' CEL library the vendored rules use.
//!
//! Transition rules (those naming `oldSelf`) are skipped: they compare with the stored object, and
//! a create has none (the API server skips them on create too).

use super::schema::{self, JsonPath};
use super::Violation;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::extractors::This;
use cel::objects::{Key, Map as CelMap, Opaque};
use cel::{Context, Env, ExecutionError, Value as CelValue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The global function the rules' `duration(string)` calls are renamed to: the `cel` crate's own
/// `duration` is not Go's `time.ParseDuration` (it takes `1e3s`, refuses `+1s` and `µs`), and a
/// standard overload cannot be replaced, so compiled rules call this one instead.
const GO_DURATION: &str = "kubernetesDuration";

/// The functions a rule may call: the CEL standard library the `cel` crate implements, the
/// `ext.Strings` library Kubernetes enables, and the Kubernetes library functions registered in
/// [`kubernetes_library`]. Operators (`_==_`, `@in`, ...) are not listed.
pub(crate) const KNOWN_FUNCTIONS: &[&str] = &[
    // standard library
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getMonth",
    // ext.Strings
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    // Kubernetes: URLs (`isURL`, `url` and its accessors), Go durations
    "isURL",
    "url",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    GO_DURATION,
];

/// Compiles and evaluates the rules; compiled rules are cached by their text.
pub(crate) struct RuleEngine {
    env: Arc<Env>,
    compiled: Mutex<HashMap<String, Arc<Result<IdedExpr, String>>>>,
}

impl std::fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleEngine").finish_non_exhaustive()
    }
}

impl RuleEngine {
    pub(crate) fn new() -> anyhow::Result<RuleEngine> {
        let mut env = Env::stdlib();
        // Kubernetes enables cel-go's ext.Strings (`lowerAscii`, `split`, ...).
        env.add_extension(cel::extensions::strings)
            .map_err(|e| anyhow::anyhow!("CEL strings extension: {e}"))?;
        Ok(RuleEngine {
            env: Arc::new(env),
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// Parses `rule` (macros expanded, `duration()` redirected to Go's syntax) and checks that
    /// every function it calls exists. Kubernetes also type-checks a rule when the CRD is
    /// created; the vendored CRDs passed that, so this is about what this evaluator supports.
    pub(crate) fn compile(&self, rule: &str) -> Arc<Result<IdedExpr, String>> {
        let mut cache = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(compiled) = cache.get(rule) {
            return Arc::clone(compiled);
        }
        let compiled = Arc::new(self.compile_uncached(rule));
        cache.insert(rule.to_string(), Arc::clone(&compiled));
        compiled
    }

    fn compile_uncached(&self, rule: &str) -> Result<IdedExpr, String> {
        let mut expr = self.env.parser().parse(rule).map_err(|e| e.to_string())?;
        redirect_duration(&mut expr);
        let references = expr.references();
        let mut unknown: Vec<&str> = references
            .functions()
            .into_iter()
            .filter(|f| !is_operator(f) && !KNOWN_FUNCTIONS.contains(f))
            .collect();
        unknown.sort_unstable();
        if !unknown.is_empty() {
            return Err(format!("unsupported function(s): {}", unknown.join(", ")));
        }
        Ok(expr)
    }

    /// Evaluates every rule of `schema` and below on `value` (at `path`), appending a violation
    /// for each rule that is false or cannot be evaluated.
    pub(crate) fn check(&self, value: &Value, schema: &Value, path: &JsonPath, out: &mut Vec<Violation>) {
        if let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
            let this = to_cel(value, Some(schema));
            for rule in rules {
                if let Some(violation) = self.check_rule(rule, &this, path) {
                    out.push(violation);
                }
            }
        }
        match value {
            Value::Object(map) => {
                for (name, child) in map {
                    if path.is_root() && name == "metadata" {
                        continue;
                    }
                    if let Some(child_schema) = schema::property(schema, name) {
                        self.check(child, child_schema, &path.field(name), out);
                    } else if let Some(child_schema) = schema::additional_properties(schema) {
                        self.check(child, child_schema, &path.key(name), out);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.check(item, item_schema, &path.index(index), out);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_rule(&self, rule: &Value, this: &CelValue, path: &JsonPath) -> Option<Violation> {
        let violation = |message: String| {
            Some(Violation {
                path: path.to_string(),
                message,
            })
        };
        let Some(source) = rule.get("rule").and_then(Value::as_str) else {
            return violation(format!("x-kubernetes-validations entry without a rule: {rule}"));
        };
        let compiled = self.compile(source);
        let expr = match compiled.as_ref() {
            Ok(expr) => expr,
            Err(error) => return violation(format!("could not compile rule `{source}`: {error}")),
        };
        // Transition rules need the stored object; a create has none.
        if expr.references().has_variable("oldSelf") {
            return None;
        }
        match self.evaluate(expr, this.clone()) {
            Ok(CelValue::Bool(true)) => None,
            Ok(CelValue::Bool(false)) => violation(failure_message(rule, source)),
            Ok(other) => violation(format!(
                "could not evaluate rule `{source}`: it returned {other:?}, not a bool"
            )),
            Err(error) => violation(format!("could not evaluate rule `{source}`: {error}")),
        }
    }

    /// Evaluates `expr` with `self` bound to `this`.
    pub(crate) fn evaluate(&self, expr: &IdedExpr, this: CelValue) -> Result<CelValue, ExecutionError> {
        let mut context = Context::with_env(Arc::clone(&self.env));
        kubernetes_library(&mut context).map_err(|e| ExecutionError::InternalError(e.to_string()))?;
        context.add_variable_from_value("self", this);
        CelValue::resolve(expr, &context)
    }
}

/// What Kubernetes says when a rule is false: its `message`, else its `messageExpression` (as
/// written: it is not evaluated here), else the rule.
fn failure_message(rule: &Value, source: &str) -> String {
    if let Some(message) = rule.get("message").and_then(Value::as_str) {
        message.to_string()
    } else if let Some(expression) = rule.get("messageExpression").and_then(Value::as_str) {
        expression.to_string()
    } else {
        format!("failed rule: {source}")
    }
}

/// `_==_`, `!_`, `@in`, ...: operators, which the `cel` crate implements.
fn is_operator(function: &str) -> bool {
    function.starts_with(['_', '!', '-', '@'])
}

/// Renames global `duration(x)` calls to [`GO_DURATION`].
fn redirect_duration(expr: &mut IdedExpr) {
    match &mut expr.expr {
        Expr::Call(call) => {
            if call.func_name == "duration" && call.target.is_none() && call.args.len() == 1 {
                call.func_name = GO_DURATION.to_string();
            }
            if let Some(target) = call.target.as_mut() {
                redirect_duration(target);
            }
            call.args.iter_mut().for_each(redirect_duration);
        }
        Expr::Comprehension(comprehension) => {
            for part in [
                &mut comprehension.iter_range,
                &mut comprehension.accu_init,
                &mut comprehension.loop_cond,
                &mut comprehension.loop_step,
                &mut comprehension.result,
            ] {
                redirect_duration(part);
            }
        }
        Expr::List(list) => list.elements.iter_mut().for_each(redirect_duration),
        Expr::Map(map) => map.entries.iter_mut().for_each(|entry| match &mut entry.expr {
            EntryExpr::MapEntry(entry) => {
                redirect_duration(&mut entry.key);
                redirect_duration(&mut entry.value);
            }
            EntryExpr::StructField(field) => redirect_duration(&mut field.value),
        }),
        Expr::Struct(structure) => structure
            .entries
            .iter_mut()
            .for_each(|entry| match &mut entry.expr {
                EntryExpr::MapEntry(entry) => {
                    redirect_duration(&mut entry.key);
                    redirect_duration(&mut entry.value);
                }
                EntryExpr::StructField(field) => redirect_duration(&mut field.value),
            }),
        Expr::Select(select) => redirect_duration(&mut select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// `value` as the CEL value Kubernetes binds for a node of `schema`: objects with declared
/// properties keep only those, under their escaped names; `additionalProperties` maps keep their
/// keys as they are; `type: number` is a double even when written as an integer.
pub(crate) fn to_cel(value: &Value, schema: Option<&Value>) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let is_number = schema.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("number");
            match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) if !is_number => CelValue::Int(i),
                (None, Some(u), _) if !is_number => CelValue::UInt(u),
                (_, _, Some(f)) => CelValue::Float(f),
                _ => CelValue::Null,
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            CelValue::List(Arc::new(
                items.iter().map(|item| to_cel(item, item_schema)).collect(),
            ))
        }
        Value::Object(map) => {
            let declared = schema
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object);
            let additional = schema.and_then(schema::additional_properties);
            let mut entries = HashMap::new();
            for (name, child) in map {
                let (key, child_schema) = match (declared.and_then(|d| d.get(name)), declared) {
                    (Some(child_schema), _) => match escape(name) {
                        Some(escaped) => (escaped, Some(child_schema)),
                        // Kubernetes leaves names it cannot escape out of the CEL object.
                        None => continue,
                    },
                    (None, Some(_)) if additional.is_none() => continue,
                    _ => (name.clone(), additional),
                };
                entries.insert(Key::String(Arc::new(key)), to_cel(child, child_schema));
            }
            CelValue::Map(CelMap {
                map: Arc::new(entries),
            })
        }
    }
}

/// CEL's reserved words, which Kubernetes escapes as `__{word}__` in property names
/// (k8s.io/apiserver/pkg/cel/escaping.go).
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A declared property name as a CEL rule sees it, or `None` when Kubernetes cannot escape it
/// (empty, starts with a digit, or has characters other than letters, digits, `_ - . /`).
pub(crate) fn escape(name: &str) -> Option<String> {
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut escaped = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            escaped.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => escaped.push_str("__dot__"),
            '-' => escaped.push_str("__dash__"),
            '/' => escaped.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => escaped.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(escaped)
}

/// Registers the Kubernetes CEL library functions the vendored rules use (and the URL accessors
/// next to them): k8s.io/apiserver/pkg/cel/library/urls.go, and Go durations.
fn kubernetes_library(context: &mut Context<'_, '_>) -> Result<(), cel::DeclarationError> {
    context.add_function("isURL", |s: Arc<String>| go_url::parse_request_uri(&s).is_ok())?;
    context.add_function("url", |s: Arc<String>| -> Result<CelValue, ExecutionError> {
        go_url::parse_request_uri(&s)
            .map(|url| CelValue::Opaque(Arc::new(url)))
            .map_err(|e| {
                ExecutionError::function_error(
                    "url",
                    format!("URL parse error during conversion from string: {e}"),
                )
            })
    })?;
    context.add_function("getScheme", |This(this): This<CelValue>| {
        with_url("getScheme", &this, |u| CelValue::from(u.scheme.clone()))
    })?;
    context.add_function("getHost", |This(this): This<CelValue>| {
        with_url("getHost", &this, |u| CelValue::from(u.host.clone()))
    })?;
    context.add_function("getHostname", |This(this): This<CelValue>| {
        with_url("getHostname", &this, |u| CelValue::from(u.hostname()))
    })?;
    context.add_function("getPort", |This(this): This<CelValue>| {
        with_url("getPort", &this, |u| CelValue::from(u.port()))
    })?;
    context.add_function("getEscapedPath", |This(this): This<CelValue>| {
        with_url("getEscapedPath", &this, |u| CelValue::from(u.path.clone()))
    })?;
    context.add_function("getQuery", |This(this): This<CelValue>| {
        with_url("getQuery", &this, |u| {
            let query: HashMap<String, Vec<CelValue>> = u.query();
            let entries: HashMap<Key, CelValue> = query
                .into_iter()
                .map(|(k, v)| (Key::String(Arc::new(k)), CelValue::List(Arc::new(v))))
                .collect();
            CelValue::Map(CelMap {
                map: Arc::new(entries),
            })
        })
    })?;
    context.add_function(
        GO_DURATION,
        |This(this): This<CelValue>| -> Result<CelValue, ExecutionError> {
            match this {
                CelValue::String(s) => go_duration::parse(&s)
                    .map(|nanos| CelValue::Duration(chrono::Duration::nanoseconds(nanos)))
                    .map_err(|e| ExecutionError::function_error("duration", e)),
                CelValue::Duration(d) => Ok(CelValue::Duration(d)),
                other => Err(ExecutionError::function_error(
                    "duration",
                    format!("no such overload: duration({:?})", other.type_of()),
                )),
            }
        },
    )?;
    Ok(())
}

fn with_url(
    function: &str,
    this: &CelValue,
    get: impl FnOnce(&go_url::Url) -> CelValue,
) -> Result<CelValue, ExecutionError> {
    match this {
        CelValue::Opaque(opaque) => match opaque.downcast_ref::<go_url::Url>() {
            Some(url) => Ok(get(url)),
            None => Err(ExecutionError::function_error(function, "not a URL")),
        },
        other => Err(ExecutionError::function_error(
            function,
            format!("not a URL: {:?}", other.type_of()),
        )),
    }
}

impl Opaque for go_url::Url {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

/// Go's `net/url.ParseRequestURI`, which Kubernetes' `isURL` and `url` use: an absolute URI
/// (`scheme:opaque`, `scheme://authority/path`) or an absolute path, no fragment splitting.
pub(crate) mod go_url {
    use cel::Value as CelValue;
    use std::collections::HashMap;

    /// A parsed URL; `path` is kept as written (Go's `EscapedPath` for a valid encoding).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Url {
        pub scheme: String,
        pub opaque: String,
        pub host: String,
        pub path: String,
        pub raw_query: String,
    }

    impl Url {
        /// Go's `URL.Hostname`: the host without port and IPv6 brackets.
        pub fn hostname(&self) -> String {
            let (host, _) = split_host_port(&self.host);
            host.trim_start_matches('[').trim_end_matches(']').to_string()
        }

        /// Go's `URL.Port`: the digits after the host's last `:`, or "".
        pub fn port(&self) -> String {
            split_host_port(&self.host).1.to_string()
        }

        /// Go's `URL.Query`: values by key, `+` as space (undecodable pairs are dropped).
        pub fn query(&self) -> HashMap<String, Vec<CelValue>> {
            let mut query: HashMap<String, Vec<CelValue>> = HashMap::new();
            for pair in self
                .raw_query
                .split('&')
                .filter(|p| !p.is_empty() && !p.contains(';'))
            {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if let (Some(key), Some(value)) = (query_unescape(key), query_unescape(value)) {
                    query.entry(key).or_default().push(CelValue::from(value));
                }
            }
            query
        }
    }

    fn split_host_port(host: &str) -> (&str, &str) {
        match host.rfind(':') {
            Some(colon) if !host[colon..].contains(']') => (&host[..colon], &host[colon + 1..]),
            _ => (host, ""),
        }
    }

    fn query_unescape(s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = s.get(i + 1..i + 3)?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    }

    pub fn parse_request_uri(raw: &str) -> Result<Url, String> {
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("invalid control character in URL".into());
        }
        if raw.is_empty() {
            return Err("empty url".into());
        }
        let mut url = Url {
            scheme: String::new(),
            opaque: String::new(),
            host: String::new(),
            path: String::new(),
            raw_query: String::new(),
        };
        if raw == "*" {
            url.path = "*".into();
            return Ok(url);
        }
        let (scheme, rest) = scheme(raw)?;
        url.scheme = scheme.to_ascii_lowercase();
        let mut rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
            &rest[..rest.len() - 1]
        } else if let Some((before, query)) = rest.split_once('?') {
            url.raw_query = query.to_string();
            before
        } else {
            rest
        };
        if !rest.starts_with('/') {
            if !url.scheme.is_empty() {
                url.opaque = rest.to_string();
                return Ok(url);
            }
            return Err("invalid URI for request".into());
        }
        if !url.scheme.is_empty() && rest.starts_with("//") {
            let after = &rest[2..];
            let (authority, path) = match after.find('/') {
                Some(slash) => (&after[..slash], &after[slash..]),
                None => (after, ""),
            };
            url.host = parse_authority(authority)?;
            rest = path;
        }
        unescape(rest, Mode::Path)?;
        url.path = rest.to_string();
        Ok(url)
    }

    /// Go's `getScheme`.
    fn scheme(raw: &str) -> Result<(&str, &str), String> {
        for (i, c) in raw.bytes().enumerate() {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' => {}
                b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
                b':' if i == 0 => return Err("missing protocol scheme".into()),
                b':' => return Ok((&raw[..i], &raw[i + 1..])),
                _ => return Ok(("", raw)),
            }
        }
        Ok(("", raw))
    }

    fn parse_authority(authority: &str) -> Result<String, String> {
        let (userinfo, host) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let host = parse_host(host)?;
        if let Some(userinfo) = userinfo {
            let valid = userinfo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c));
            if !valid {
                return Err("net/url: invalid userinfo".into());
            }
        }
        Ok(host)
    }

    fn parse_host(host: &str) -> Result<String, String> {
        let valid_port = |colon_port: &str| {
            colon_port.is_empty()
                || (colon_port.starts_with(':') && colon_port[1..].bytes().all(|b| b.is_ascii_digit()))
        };
        if host.starts_with('[') {
            let Some(close) = host.rfind(']') else {
                return Err("missing ']' in host".into());
            };
            if !valid_port(&host[close + 1..]) {
                return Err(format!("invalid port {:?} after host", &host[close + 1..]));
            }
        } else if let Some(colon) = host.rfind(':') {
            if !valid_port(&host[colon..]) {
                return Err(format!("invalid port {:?} after host", &host[colon..]));
            }
        }
        unescape(host, Mode::Host)?;
        Ok(host.to_string())
    }

    #[derive(PartialEq, Eq, Clone, Copy)]
    enum Mode {
        Host,
        Path,
    }

    /// Go's `unescape`, for its error cases only: bad `%` escapes, and characters a host may
    /// not contain.
    fn unescape(s: &str, mode: Mode) -> Result<(), String> {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let escape = s.get(i..i + 3).unwrap_or(&s[i..]);
                let hex_ok = escape.len() == 3 && escape[1..].bytes().all(|h| h.is_ascii_hexdigit());
                if !hex_ok {
                    return Err(format!("invalid URL escape {escape:?}"));
                }
                // In a host, %-escapes are only for non-ASCII bytes (and "%25" in zones).
                if mode == Mode::Host && escape[1..2] < *"8" && escape != "%25" {
                    return Err(format!("invalid URL escape {escape:?}"));
                }
                i += 3;
                continue;
            }
            if mode == Mode::Host
                && b < 0x80
                && !(b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&b))
            {
                return Err(format!("invalid character {:?} in host name", b as char));
            }
            i += 1;
        }
        Ok(())
    }
}

/// Go's `time.ParseDuration`, which cel-go's `duration(string)` uses: a sign, then one or more
/// decimal numbers (`1`, `1.5`, `.5`) each with a unit `ns us µs μs ms s m h`; "0" alone.
pub(crate) mod go_duration {
    /// The duration in nanoseconds.
    pub fn parse(original: &str) -> Result<i64, String> {
        let invalid = || format!("time: invalid duration {original:?}");
        let mut s = original;
        let mut negative = false;
        if let Some(rest) = s.strip_prefix('-') {
            negative = true;
            s = rest;
        } else if let Some(rest) = s.strip_prefix('+') {
            s = rest;
        }
        if s == "0" {
            return Ok(0);
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut total: u128 = 0;
        while !s.is_empty() {
            if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
                return Err(invalid());
            }
            let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (int_part, rest) = s.split_at(int_len);
            s = rest;
            let mut fraction = "";
            if let Some(rest) = s.strip_prefix('.') {
                let len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                fraction = &rest[..len];
                s = &rest[len..];
            }
            if int_part.is_empty() && fraction.is_empty() {
                return Err(invalid());
            }
            let unit_len = s
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(s.len());
            let (unit, rest) = s.split_at(unit_len);
            s = rest;
            let nanos_per_unit: u128 = match unit {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => return Err(format!("time: missing unit in duration {original:?}")),
                _ => return Err(format!("time: unknown unit {unit:?} in duration {original:?}")),
            };
            let whole: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| invalid())?
            };
            let mut value = whole.checked_mul(nanos_per_unit).ok_or_else(invalid)?;
            if !fraction.is_empty() {
                // Go scales the fraction in floating point and truncates.
                let f: f64 = format!("0.{fraction}").parse().map_err(|_| invalid())?;
                value += (f * nanos_per_unit as f64) as u128;
            }
            total = total.checked_add(value).ok_or_else(invalid)?;
            if total > i64::MAX as u128 + u128::from(negative) {
                return Err(invalid());
            }
        }
        let total = total as i128;
        i64::try_from(if negative { -total } else { total }).map_err(|_| invalid())
    }
}
