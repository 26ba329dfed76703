//! istiod's validating webhook, ported for the kinds KEA writes.
//!
//! Ported from github.com/istio/istio at tag `1.30.3` (commit
//! 56df41f63e513f834c9a3af33d8aed82d1d961f2); function names in comments are Istio's, so a
//! reader can find the original:
//!
//! - the webhook itself, `pkg/webhooks/validation/server/server.go` (`Webhook.validate`): the
//!   object's spec is converted to the proto with `crd.ConvertObject` (a conversion error
//!   refuses the object before any validation runs), then `ValidateConfig`, then `checkFields`;
//! - `pkg/config/validation/validation.go` (`validateMetadata`, `ValidateVirtualService`,
//!   `ValidateWasmPlugin` and the functions they call) and `virtualservice.go`
//!   (`validateHTTPRoute` and friends);
//! - `pkg/config/validation/agent/validation.go` (`ValidateDuration`, `ValidatePort`,
//!   `ValidateWildcardDomain`, `ValidateFQDN`, ...), `header_value_validator.go`,
//!   `pkg/config/labels/instance.go`, `pkg/config/host/name.go`, `pkg/jwt/routing.go`,
//!   `pkg/config/visibility/visibility.go`.
//!
//! The conversion (`crd.FromJSON` → `config.ApplyJSON` → `protomarshal.ApplyJSON`) uses the
//! legacy `github.com/golang/protobuf/jsonpb` unmarshaler (v1.5.4, `wrapJSONUnmarshalV2 =
//! false`), **not** `protojson`: a `google.protobuf.Duration` is parsed with Go's
//! `time.ParseDuration`, so `"1500ms"`, `"1.5s"`, `"1m30s"` and `"2h"` are all accepted, while
//! `"5"` (no unit) or `"5 s"` is refused ("bad Duration: time: missing unit in duration ...").
//! `ValidateDuration` then wants at least 1ms and whole milliseconds. This module ports that
//! parser (`go_parse_duration`), the integer and enum decoding of the fields KEA writes, and
//! reports conversion errors the way the webhook does: alone, since nothing else runs (istiod
//! stops at the first one; every one found is reported here).
//!
//! The CRDs' own rules (OpenAPI schema, CEL such as `duration(self) >= duration('1ms')`) run in
//! the API server before the webhook and are not repeated here.
//!
//! Only refusals are reported; istiod's warnings (legacy gateway names, unreachable rules,
//! `mirrorPercent`, empty workload selectors, ...) admit the object and are left out.

use super::Violation;
use serde_json::{Map, Value};

/// What istiod's webhook refuses in `object` (a WasmPlugin or VirtualService); nothing for
/// other kinds.
pub fn check(object: &Value) -> Vec<Violation> {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api_version.split('/').next().unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    // `FindByGroupKind`: the version is not looked at.
    let which = match (group, kind) {
        ("networking.istio.io", "VirtualService") => Kind::VirtualService,
        ("extensions.istio.io", "WasmPlugin") => Kind::WasmPlugin,
        _ => return Vec::new(),
    };
    let empty = Value::Object(Map::new());
    let spec = field(object, "spec").unwrap_or(&empty);

    // `crd.ConvertObject`: "error decoding configuration: ..." ends the review.
    let mut r = Report::default();
    match which {
        Kind::VirtualService => decode_virtual_service(spec, &mut r),
        Kind::WasmPlugin => decode_wasm_plugin(spec, &mut r),
    }
    if !r.out.is_empty() {
        for v in &mut r.out {
            v.message = format!("error decoding configuration: {}", v.message);
        }
        return r.out;
    }

    // `validateMetadata`: an annotation error ends the review too.
    validate_metadata(object, &mut r);
    if !r.out.is_empty() {
        return r.out;
    }

    match which {
        Kind::VirtualService => validate_virtual_service(object, spec, &mut r),
        Kind::WasmPlugin => validate_wasm_plugin(spec, &mut r),
    }
    // `checkFields` (only reached when the spec is valid in istiod; reported regardless here).
    check_fields(object, kind, &mut r);
    r.out
}

#[derive(Clone, Copy)]
enum Kind {
    VirtualService,
    WasmPlugin,
}

#[derive(Default)]
struct Report {
    out: Vec<Violation>,
}

impl Report {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn result(&mut self, path: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.err(path, message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON access with proto3 semantics: `null` is absent, absent scalars are their zero value.

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|v| !v.is_null())
}

fn string<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    field(v, key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn object<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    field(v, key).and_then(Value::as_object)
}

fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    list(v, key).iter().map(|s| s.as_str().unwrap_or("")).collect()
}

/// An integer scalar (already checked by the decoding pass): JSON number or quoted number.
fn int(v: &Value, key: &str) -> i64 {
    match field(v, key) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)).unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn number(v: &Value, key: &str) -> f64 {
    match field(v, key) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn at(base: &str, key: &str) -> String {
    format!("{base}.{key}")
}

fn nth(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

fn entry(base: &str, key: &str) -> String {
    format!("{base}[{key:?}]")
}

/// Go's `%q` for the ASCII strings these messages quote.
fn q(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `%v` of a `[]string`.
fn go_list(items: &[&str]) -> String {
    format!("[{}]", items.join(" "))
}

// ---------------------------------------------------------------------------------------------
// Decoding (`jsonpb.Unmarshaler.Unmarshal` into the proto): durations, integers, enums.

#[derive(Clone, Copy)]
enum IntType {
    Int32,
    Uint32,
}

/// `unmarshalSingularValue` for an int32/uint32 field: a JSON number, or a quoted one, that
/// fits (`json.Unmarshal` into the Go type).
fn decode_int(v: &Value, key: &str, ty: IntType, path: &str, r: &mut Report) {
    let Some(raw) = field(v, key) else { return };
    let (go_type, min, max) = match ty {
        IntType::Int32 => ("int32", i64::from(i32::MIN), i64::from(i32::MAX)),
        IntType::Uint32 => ("uint32", 0, i64::from(u32::MAX)),
    };
    let text = match raw {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(_) => {
            return r.err(
                path,
                format!("json: cannot unmarshal bool into Go value of type {go_type}"),
            )
        }
        Value::Array(_) => {
            return r.err(
                path,
                format!("json: cannot unmarshal array into Go value of type {go_type}"),
            )
        }
        Value::Object(_) => {
            return r.err(
                path,
                format!("json: cannot unmarshal object into Go value of type {go_type}"),
            )
        }
        Value::Null => return,
    };
    match text.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => {}
        _ => r.err(
            path,
            format!("json: cannot unmarshal number {text} into Go value of type {go_type}"),
        ),
    }
}

/// An enum field: a known value name (jsonpb's "unknown value ... for enum ...") or a number.
fn decode_enum(v: &Value, key: &str, enum_name: &str, names: &[&str], path: &str, r: &mut Report) {
    match field(v, key) {
        None => {}
        Some(Value::String(s)) if !names.contains(&s.as_str()) => {
            r.err(
                path,
                format!("unknown value \"\\\"{s}\\\"\" for enum {enum_name}"),
            );
        }
        Some(Value::String(_)) => {}
        Some(_) => decode_int(v, key, IntType::Int32, path, r),
    }
}

/// A `google.protobuf.Duration` field: jsonpb's `case "Duration"` (a JSON string through
/// `time.ParseDuration`).
fn decode_duration(v: &Value, key: &str, path: &str, r: &mut Report) {
    match field(v, key) {
        None => {}
        Some(Value::String(s)) => {
            if let Err(e) = go_parse_duration(s) {
                r.err(path, format!("bad Duration: {e}"));
            }
        }
        Some(other) => r.err(
            path,
            format!(
                "json: cannot unmarshal {} into Go value of type string",
                json_kind(other)
            ),
        ),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A duration field's value in nanoseconds, once decoded (`durationpb.AsDuration`).
fn duration(v: &Value, key: &str) -> Option<i64> {
    field(v, key)
        .and_then(Value::as_str)
        .and_then(|s| go_parse_duration(s).ok())
}

/// Go's `time.ParseDuration`, nanoseconds: the port the CEL rules use too.
pub fn go_parse_duration(orig: &str) -> Result<i64, String> {
    super::cel::go_duration::parse(orig)
}

/// `agent.ValidateDuration`.
fn validate_duration(nanos: i64) -> Result<(), String> {
    const MS: i64 = 1_000_000;
    if nanos < MS {
        return Err("duration must be greater than 1ms".into());
    }
    if nanos % MS != 0 {
        return Err("only durations to ms precision are supported".into());
    }
    Ok(())
}

fn decode_virtual_service(spec: &Value, r: &mut Report) {
    for (i, http) in list(spec, "http").iter().enumerate() {
        let p = nth("spec.http", i);
        for (j, m) in list(http, "match").iter().enumerate() {
            let mp = nth(&at(&p, "match"), j);
            decode_int(m, "port", IntType::Uint32, &at(&mp, "port"), r);
        }
        for (j, d) in list(http, "route").iter().enumerate() {
            let dp = nth(&at(&p, "route"), j);
            decode_int(d, "weight", IntType::Int32, &at(&dp, "weight"), r);
            decode_destination(field(d, "destination"), &at(&dp, "destination"), r);
        }
        if let Some(redirect) = field(http, "redirect") {
            let rp = at(&p, "redirect");
            decode_int(redirect, "port", IntType::Uint32, &at(&rp, "port"), r);
            decode_int(
                redirect,
                "redirectCode",
                IntType::Uint32,
                &at(&rp, "redirectCode"),
                r,
            );
            decode_enum(
                redirect,
                "derivePort",
                "istio.networking.v1alpha3.HTTPRedirect.RedirectPortSelection",
                &["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"],
                &at(&rp, "derivePort"),
                r,
            );
        }
        if let Some(direct) = field(http, "directResponse") {
            decode_int(
                direct,
                "status",
                IntType::Uint32,
                &at(&p, "directResponse.status"),
                r,
            );
        }
        decode_duration(http, "timeout", &at(&p, "timeout"), r);
        if let Some(retries) = field(http, "retries") {
            let rp = at(&p, "retries");
            decode_int(retries, "attempts", IntType::Int32, &at(&rp, "attempts"), r);
            decode_duration(retries, "perTryTimeout", &at(&rp, "perTryTimeout"), r);
            decode_duration(retries, "backoff", &at(&rp, "backoff"), r);
        }
        if let Some(fault) = field(http, "fault") {
            if let Some(delay) = field(fault, "delay") {
                let dp = at(&p, "fault.delay");
                decode_duration(delay, "fixedDelay", &at(&dp, "fixedDelay"), r);
                decode_duration(delay, "exponentialDelay", &at(&dp, "exponentialDelay"), r);
                decode_int(delay, "percent", IntType::Int32, &at(&dp, "percent"), r);
            }
            if let Some(abort) = field(fault, "abort") {
                let ap = at(&p, "fault.abort");
                decode_int(abort, "httpStatus", IntType::Int32, &at(&ap, "httpStatus"), r);
            }
        }
        if let Some(cors) = field(http, "corsPolicy") {
            decode_duration(cors, "maxAge", &at(&p, "corsPolicy.maxAge"), r);
        }
        decode_destination(field(http, "mirror"), &at(&p, "mirror"), r);
        decode_int(
            http,
            "mirrorPercent",
            IntType::Uint32,
            &at(&p, "mirrorPercent"),
            r,
        );
        for (j, m) in list(http, "mirrors").iter().enumerate() {
            let mp = nth(&at(&p, "mirrors"), j);
            decode_destination(field(m, "destination"), &at(&mp, "destination"), r);
        }
    }
    for route_kind in ["tcp", "tls"] {
        for (i, route) in list(spec, route_kind).iter().enumerate() {
            let p = nth(&at("spec", route_kind), i);
            for (j, m) in list(route, "match").iter().enumerate() {
                let mp = nth(&at(&p, "match"), j);
                decode_int(m, "port", IntType::Uint32, &at(&mp, "port"), r);
            }
            for (j, d) in list(route, "route").iter().enumerate() {
                let dp = nth(&at(&p, "route"), j);
                decode_int(d, "weight", IntType::Int32, &at(&dp, "weight"), r);
                decode_destination(field(d, "destination"), &at(&dp, "destination"), r);
            }
        }
    }
}

fn decode_destination(destination: Option<&Value>, path: &str, r: &mut Report) {
    if let Some(port) = destination.and_then(|d| field(d, "port")) {
        decode_int(port, "number", IntType::Uint32, &at(path, "port.number"), r);
    }
}

fn decode_wasm_plugin(spec: &Value, r: &mut Report) {
    // `priority` is a `google.protobuf.Int32Value`.
    decode_int(spec, "priority", IntType::Int32, "spec.priority", r);
    decode_enum(
        spec,
        "phase",
        "istio.extensions.v1alpha1.PluginPhase",
        &["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"],
        "spec.phase",
        r,
    );
    decode_enum(
        spec,
        "failStrategy",
        "istio.extensions.v1alpha1.FailStrategy",
        &["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"],
        "spec.failStrategy",
        r,
    );
    decode_enum(
        spec,
        "type",
        "istio.extensions.v1alpha1.PluginType",
        &["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"],
        "spec.type",
        r,
    );
    decode_enum(
        spec,
        "imagePullPolicy",
        "istio.extensions.v1alpha1.PullPolicy",
        &["UNSPECIFIED_POLICY", "IfNotPresent", "Always"],
        "spec.imagePullPolicy",
        r,
    );
    for (i, m) in list(spec, "match").iter().enumerate() {
        let p = nth("spec.match", i);
        decode_enum(
            m,
            "mode",
            "istio.type.v1beta1.WorkloadMode",
            &["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"],
            &at(&p, "mode"),
            r,
        );
        for (j, port) in list(m, "ports").iter().enumerate() {
            decode_int(
                port,
                "number",
                IntType::Uint32,
                &at(&nth(&at(&p, "ports"), j), "number"),
                r,
            );
        }
    }
    if let Some(vm) = field(spec, "vmConfig") {
        for (i, env) in list(vm, "env").iter().enumerate() {
            decode_enum(
                env,
                "valueFrom",
                "istio.extensions.v1alpha1.EnvValueSource",
                &["INLINE", "HOST"],
                &at(&nth("spec.vmConfig.env", i), "valueFrom"),
                r,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook around the validation functions.

const ANNOTATION_DRY_RUN: &str = "istio.io/dry-run";
const ANNOTATION_ALWAYS_REJECT: &str = "internal.istio.io/webhook-always-reject";
const ANNOTATION_PARENT_NAMESPACE: &str = "internal.istio.io/parent-namespace";
const ANNOTATION_PARENT_NAMES: &str = "internal.istio.io/parents";
const ANNOTATION_ROUTE_SEMANTICS: &str = "internal.istio.io/route-semantics";

fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    field(obj, "metadata").and_then(|m| object(m, "annotations"))
}

fn metadata_str<'a>(object: &'a Value, key: &str) -> &'a str {
    field(object, "metadata").map(|m| string(m, key)).unwrap_or("")
}

/// `validateMetadata` (and `checkDryRunAnnotation`: neither kind here is an
/// AuthorizationPolicy, so `istio.io/dry-run` is refused).
fn validate_metadata(object: &Value, r: &mut Report) {
    let Some(annotations) = annotations(object) else {
        return;
    };
    let path = |key: &str| entry("metadata.annotations", key);
    if annotations.contains_key(ANNOTATION_DRY_RUN) {
        r.err(
            path(ANNOTATION_DRY_RUN),
            format!(
                "{}/{} has unsupported annotation {ANNOTATION_DRY_RUN}, please remove the annotation",
                metadata_str(object, "namespace"),
                metadata_str(object, "name")
            ),
        );
        return;
    }
    if annotations.contains_key(ANNOTATION_ALWAYS_REJECT) {
        r.err(
            path(ANNOTATION_ALWAYS_REJECT),
            format!("{} annotation found, rejecting", q(ANNOTATION_ALWAYS_REJECT)),
        );
        return;
    }
    for key in [ANNOTATION_PARENT_NAMESPACE, ANNOTATION_PARENT_NAMES] {
        if annotations.contains_key(key) {
            r.err(
                path(key),
                format!("{} annotation found, this may not be set by users", q(key)),
            );
            return;
        }
    }
}

/// `checkFields`: only apiVersion, kind, metadata, spec and status at the top level.
fn check_fields(object: &Value, kind: &str, r: &mut Report) {
    let Some(fields) = object.as_object() else { return };
    for key in fields.keys() {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            r.err(
                key.clone(),
                format!(
                    "unknown field {} on {kind} resource {}/{}",
                    q(key),
                    metadata_str(object, "namespace"),
                    metadata_str(object, "name")
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Names: `labels`, `agent` domain checks, `host.Name`.

/// `labels.IsDNS1123Label`: `[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63.
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// `labels.IsWildcardDNS1123Label`: `*`, or a DNS-1123 label optionally prefixed by `*` or `*-`.
fn is_wildcard_dns1123_label(s: &str) -> bool {
    if s.len() > 63 {
        return false;
    }
    if s == "*" {
        return true;
    }
    if let Some(rest) = s.strip_prefix("*-") {
        if is_dns1123_label(rest) {
            return true;
        }
    }
    is_dns1123_label(s.strip_prefix('*').unwrap_or(s))
}

/// `qualifiedNameFmt`: `(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `labels.validateTagKey`.
fn validate_tag_key(k: &str) -> Result<(), String> {
    let invalid = || format!("invalid tag key: {}", q(k));
    let (prefix, name) = match k.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, k),
    };
    if let Some(prefix) = prefix {
        if !prefix.split('.').all(is_dns1123_label) {
            return Err(invalid());
        }
    }
    if !is_qualified_name(name) {
        return Err(invalid());
    }
    if prefix.is_some_and(|p| p.len() > 253) {
        return Err(format!("invalid tag key: {} (DNS prefix is too long)", q(k)));
    }
    if name.len() > 63 {
        return Err(format!("invalid tag key: {} (name is too long)", q(k)));
    }
    Ok(())
}

/// `labels.Instance.Validate`.
fn validate_labels(labels: Option<&Map<String, Value>>, path: &str, r: &mut Report) {
    for (k, v) in labels.into_iter().flatten() {
        let p = entry(path, k);
        r.result(&p, validate_tag_key(k));
        let v = v.as_str().unwrap_or("");
        if !(v.is_empty() || is_qualified_name(v)) {
            r.err(&p, format!("invalid tag value: {}", q(v)));
        }
    }
}

/// `agent.CheckDNS1123Preconditions`.
fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {} too long (max 255)", q(name)));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    Ok(())
}

/// `agent.ValidateDNS1123Labels`.
fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts[parts.len() - 1];
    // `strconv.Atoi` succeeds: an optionally signed decimal that fits in 64 bits.
    if tld.parse::<i64>().is_ok() {
        return Err(format!(
            "domain name {} invalid (top level domain {} cannot be all-numeric)",
            q(domain),
            q(tld)
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {} invalid (label {} invalid)",
                q(domain),
                q(label)
            ));
        }
    }
    Ok(())
}

/// `agent.ValidateFQDN`.
fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    check_dns1123_preconditions(fqdn)?;
    validate_dns1123_labels(fqdn)
}

/// `agent.ValidateWildcardDomain`.
fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {} invalid (label {} invalid)",
            q(domain),
            q(first)
        ));
    }
    match rest {
        Some(rest) => validate_dns1123_labels(rest),
        None => Ok(()),
    }
}

/// `agent.ValidateWildcardDomainForVirtualServiceBoundToGateway`.
fn validate_wildcard_domain_for_gateway(sni: bool, domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    if sni && domain.starts_with("outbound_") {
        const FORMAT: &str = "outbound_.<PORT>_._.<HOSTNAME>";
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow '{FORMAT}' format"
            ));
        }
        let (direction, port, hostname) = (parts[0], parts[1].trim_matches('.'), parts[3].trim_matches('.'));
        if direction != "outbound" {
            return Err(format!(
                "domain name {} invalid (label {} invalid)",
                q(domain),
                q(direction)
            ));
        }
        if !port.bytes().any(|c| c.is_ascii_digit()) {
            return Err(format!(
                "domain name {} invalid (label {} invalid). should follow {FORMAT} format",
                q(domain),
                q(port)
            ));
        }
        if !hostname.bytes().any(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {} invalid (label {} invalid). should follow {FORMAT} format",
                q(domain),
                q(hostname)
            ));
        }
        return Ok(());
    }
    validate_wildcard_domain(domain)
}

/// `netutil.IsValidIPAddress` (`netip.ParseAddr`, zones allowed on IPv6).
fn is_valid_ip_address(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('%') {
        Some((addr, zone)) => !zone.is_empty() && addr.parse::<std::net::Ipv6Addr>().is_ok(),
        None => false,
    }
}

/// `agent.ValidateIPSubnet`.
fn validate_ip_subnet(subnet: &str) -> Result<(), String> {
    if subnet.matches('/').count() == 1 {
        let (addr, bits) = subnet.split_once('/').unwrap_or_default();
        let max = match addr.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => 32,
            Ok(std::net::IpAddr::V6(_)) => 128,
            Err(_) => return Err(format!("{subnet} is not a valid CIDR block")),
        };
        let ok = !bits.is_empty()
            && bits.bytes().all(|c| c.is_ascii_digit())
            && !(bits.len() > 1 && bits.starts_with('0'))
            && bits.parse::<u32>().is_ok_and(|b| b <= max);
        return if ok {
            Ok(())
        } else {
            Err(format!("{subnet} is not a valid CIDR block"))
        };
    }
    if is_valid_ip_address(subnet) {
        Ok(())
    } else {
        Err(format!("{subnet} is not a valid IP"))
    }
}

/// `agent.ValidatePort`.
fn validate_port(port: i64) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// `host.Name.Matches`.
fn host_matches(n: &str, o: &str) -> bool {
    match (n.strip_prefix('*'), o.strip_prefix('*')) {
        (Some(ns), Some(os)) => {
            if n.len() < o.len() {
                os.ends_with(ns)
            } else {
                ns.ends_with(os)
            }
        }
        (Some(ns), None) => o.ends_with(ns),
        (None, Some(os)) => n.ends_with(os),
        (None, None) => n == o,
    }
}

/// `host.Name.SubsetOf`.
fn host_subset_of(n: &str, o: &str) -> bool {
    match (n.strip_prefix('*'), o.strip_prefix('*')) {
        (Some(ns), Some(os)) => n.len() >= o.len() && ns.ends_with(os),
        (Some(_), None) => false,
        (None, Some(os)) => n.ends_with(os),
        (None, None) => n == o,
    }
}

/// `jwt.ToRoutingClaim(name).Match`.
fn is_jwt_claim_route(name: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    if name.len() < PREFIX.len() || !name.is_char_boundary(PREFIX.len()) {
        return false;
    }
    if !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let rest = &name[PREFIX.len()..];
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

// ---------------------------------------------------------------------------------------------
// Headers.

/// `validHeaderNameRegex`: `^[!#$%&'*+-.^_`|~A-Za-z0-9]+$`. Note `+-.` in the class is a
/// range, so `,` is accepted too.
fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+,-.^_`|~".contains(&c))
}

/// `ValidateHTTPHeaderNameOrJwtClaimRoute`.
fn validate_header_name_or_jwt_claim_route(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_jwt_claim_route(name) || [":method", ":scheme", ":authority", ":path", ":status"].contains(&name) {
        return Ok(());
    }
    if !is_valid_header_name(name) {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

/// `ValidateCORSHTTPHeaderName`.
fn validate_cors_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name == "*" || is_valid_header_name(name) {
        return Ok(());
    }
    Err(format!("header name {name} is not a valid header name"))
}

/// `isInternalHeader`.
fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

/// `isAuthorityHeader`.
fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// `ValidateHTTPHeaderWithAuthorityOperationName` (request add/set).
fn validate_header_with_authority_operation_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_internal_header(name) && !is_authority_header(name) {
        return Err(format!(
            "invalid header {}: header cannot have \":\" prefix",
            q(name)
        ));
    }
    Ok(())
}

/// `ValidateHTTPHeaderOperationName` (request remove, response add/set/remove). Only these
/// three rules: istiod does not check the header name's characters here.
fn validate_header_operation_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {}: cannot set Host header", q(name)));
    }
    if is_internal_header(name) {
        return Err(format!(
            "invalid header {}: header cannot have \":\" prefix",
            q(name)
        ));
    }
    Ok(())
}

/// `ValidateHTTPHeaderValue`.
fn validate_header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'))
    {
        return Err(format!("header value configuration {value} is invalid"));
    }
    envoy_header_value(value).map_err(|e| format!("header value configuration: {e}"))
}

/// `validateHeaderValue` (header_value_validator.go): Envoy's `%VAR(...)%` formatter syntax.
fn envoy_header_value(value: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum S {
        Literal,
        VariableName,
        ExpectArray,
        ExpectString,
        String,
        ExpectArrayDelimiterOrEnd,
        ExpectArgsEnd,
        ExpectVariableEnd,
    }
    let b = value.as_bytes();
    let mut state = S::Literal;
    let mut pos = 0;
    while pos < b.len() {
        let ch = b[pos];
        let has_next = pos + 1 < b.len();
        match state {
            S::Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err("invalid header configuration. Un-escaped %".into());
                    }
                    if b[pos + 1] == b'%' {
                        pos += 1;
                    } else {
                        state = S::VariableName;
                    }
                }
            }
            S::VariableName => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch == b'(' {
                    state = S::ExpectArray;
                }
            }
            S::ExpectArray => {
                if ch == b'[' {
                    state = S::ExpectString;
                } else if ch != b' ' {
                    state = S::String;
                }
            }
            S::ExpectArrayDelimiterOrEnd => {
                if ch == b',' {
                    state = S::ExpectString;
                } else if ch == b']' {
                    state = S::ExpectArgsEnd;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting ',', ']', or whitespace".into());
                }
            }
            S::ExpectString => {
                if ch == b'"' {
                    state = S::String;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting '\"'".into());
                }
            }
            S::String => {
                if ch == b'\\' {
                    if !has_next {
                        return Err(
                            "invalid header configuration. Un-terminated backslash in JSON string".into(),
                        );
                    }
                    pos += 1;
                } else if ch == b')' {
                    state = S::ExpectVariableEnd;
                } else if ch == b'"' {
                    state = S::ExpectArrayDelimiterOrEnd;
                }
            }
            S::ExpectArgsEnd => {
                if ch == b')' {
                    state = S::ExpectVariableEnd;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting ')' or whitespace after '{}', but found '{}'".into());
                }
            }
            S::ExpectVariableEnd => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting '%' or whitespace after".into());
                }
            }
        }
        pos += 1;
    }
    if state != S::Literal {
        return Err(format!(
            "invalid header configuration. Un-terminated variable expression '{value}'"
        ));
    }
    Ok(())
}

/// The header manipulations of `validateHTTPRoute` and `validateHTTPRouteDestinations`.
fn validate_headers(headers: Option<&Value>, path: &str, r: &mut Report) {
    let Some(headers) = headers else { return };
    for (side, request) in [("request", true), ("response", false)] {
        let Some(ops) = field(headers, side) else { continue };
        let sp = at(path, side);
        for op in ["add", "set"] {
            for (name, value) in object(ops, op).into_iter().flatten() {
                let p = entry(&at(&sp, op), name);
                let name_check = if request {
                    validate_header_with_authority_operation_name(name)
                } else {
                    validate_header_operation_name(name)
                };
                r.result(&p, name_check);
                r.result(&p, validate_header_value(value.as_str().unwrap_or("")));
            }
        }
        for (i, name) in strings(ops, "remove").into_iter().enumerate() {
            r.result(&nth(&at(&sp, "remove"), i), validate_header_operation_name(name));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regular expressions: Go's `regexp.Compile` (RE2 syntax).

/// The error compiling `re` gives. The `regex` crate implements RE2's syntax and guarantees
/// (no look-around, no back-references, linear time), so it refuses what Go's `regexp` refuses,
/// with other messages — except nested repetition (`a**`), which Go refuses and the crate
/// accepts: checked here. (The crate also takes a few extensions RE2 lacks, e.g. class set
/// operations `[a-z&&[^x]]`, which KEA never writes.)
fn go_regexp_error(re: &str) -> Option<String> {
    if let Some(operator) = nested_repetition(re) {
        return Some(format!(
            "error parsing regexp: invalid nested repetition operator: `{operator}`"
        ));
    }
    regex::Regex::new(re)
        .err()
        .map(|error| format!("error parsing regexp: {error}"))
}

/// A repetition operator applied to a repetition (`**`, `+*`, `{2}*`, `*??`), outside classes
/// and escapes; one `?` after a repetition makes it lazy and is allowed.
fn nested_repetition(re: &str) -> Option<String> {
    let chars: Vec<char> = re.chars().collect();
    let (mut index, mut in_class, mut after_repetition, mut lazy) = (0, false, false, false);
    while let Some(&c) = chars.get(index) {
        let repetition_end = match c {
            '\\' => {
                index += 2;
                after_repetition = false;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                None
            }
            ']' if in_class => {
                in_class = false;
                None
            }
            _ if in_class => None,
            '*' | '+' | '?' => Some(index + 1),
            '{' => chars[index..]
                .iter()
                .position(|&c| c == '}')
                .filter(|end| {
                    let inner: String = chars[index + 1..index + end].iter().collect();
                    !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == ',')
                })
                .map(|end| index + end + 1),
            _ => None,
        };
        match repetition_end {
            Some(end) if after_repetition && c == '?' && !lazy => {
                lazy = true;
                index = end;
            }
            Some(end) if after_repetition => return Some(chars[..end].iter().collect::<String>()),
            Some(end) => {
                after_repetition = true;
                lazy = false;
                index = end;
            }
            None => {
                after_repetition = false;
                lazy = false;
                index += 1;
            }
        }
    }
    None
}

/// `validateStringRegexp`.
fn validate_string_regexp(re: &str, wherein: &str) -> Result<(), String> {
    if re.len() > 1024 {
        return Err(format!(
            "{}: regex is too large, max length allowed is 1024",
            q(wherein)
        ));
    }
    match go_regexp_error(re) {
        None => Ok(()),
        Some(e) => Err(format!(
            "{}: {e}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)",
            q(wherein)
        )),
    }
}

/// Which member of a `StringMatch` oneof is set (jsonpb sets them in field order, the last
/// one present wins) and its value.
fn string_match_type(sm: &Value) -> Option<(&'static str, &str)> {
    let mut found = None;
    for key in ["exact", "prefix", "regex"] {
        if let Some(v) = field(sm, key) {
            found = Some((key, v.as_str().unwrap_or("")));
        }
    }
    found
}

/// `validateStringMatch`.
fn validate_string_match(sm: Option<&Value>, wherein: &str) -> Result<(), String> {
    match sm.and_then(string_match_type) {
        Some(("prefix", "")) => Err(format!("{}: prefix string match should not be empty", q(wherein))),
        Some(("regex", _)) => validate_string_match_regexp(sm, wherein),
        _ => Ok(()),
    }
}

/// `validateStringMatchRegexp`.
fn validate_string_match_regexp(sm: Option<&Value>, wherein: &str) -> Result<(), String> {
    match sm.and_then(string_match_type) {
        Some(("regex", "")) => Err(format!("{}: regex string match should not be empty", q(wherein))),
        Some(("regex", re)) => validate_string_regexp(re, wherein),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// URLs: Go's `net/url` as `strictParseURL` uses it.

/// `url.ParseRequestURI` (`via_request`) or the part of `url.Parse` after the fragment is cut:
/// the lower-cased scheme, or the parse error (without the `parse "...": ` wrapper).
fn go_url_parse(raw: &str, via_request: bool) -> Result<String, String> {
    if raw.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".into());
    }
    if raw == "*" {
        return Ok(String::new());
    }
    // getScheme
    let mut scheme = "";
    let mut rest = raw;
    for (i, c) in raw.bytes().enumerate() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.') {
            if i == 0 {
                break;
            }
            continue;
        }
        if c == b':' {
            if i == 0 {
                return Err("missing protocol scheme".into());
            }
            scheme = &raw[..i];
            rest = &raw[i + 1..];
        }
        break;
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        &rest[..rest.len() - 1]
    } else {
        rest.split('?').next().unwrap_or("")
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            return Ok(scheme); // opaque
        }
        if via_request {
            return Err("invalid URI for request".into());
        }
        if rest.split('/').next().unwrap_or("").contains(':') {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    let mut path = rest;
    if (!scheme.is_empty() || !via_request && !rest.starts_with("///")) && rest.starts_with("//") {
        let authority = &rest[2..];
        let (authority, p) = match authority.find('/') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        };
        path = p;
        go_parse_authority(authority)?;
    }
    go_unescape(path, Escape::Path)?;
    Ok(scheme)
}

#[derive(PartialEq, Clone, Copy)]
enum Escape {
    Path,
    Host,
    UserPassword,
    Fragment,
}

/// `parseAuthority`.
fn go_parse_authority(authority: &str) -> Result<(), String> {
    match authority.rfind('@') {
        None => go_parse_host(authority),
        Some(i) => {
            go_parse_host(&authority[i + 1..])?;
            let userinfo = &authority[..i];
            if !userinfo
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&c))
            {
                return Err("net/url: invalid userinfo".into());
            }
            go_unescape(userinfo, Escape::UserPassword)
        }
    }
}

/// `parseHost`.
fn go_parse_host(host: &str) -> Result<(), String> {
    let valid_optional_port = |port: &str| {
        port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|c| c.is_ascii_digit()))
    };
    if let Some(inner) = host.strip_prefix('[') {
        let Some(i) = host.rfind(']') else {
            return Err("missing ']' in host".into());
        };
        let colon_port = &host[i + 1..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {} after host", q(colon_port)));
        }
        let literal = &inner[..i - 1];
        let address = literal.split("%25").next().unwrap_or("");
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid IP-literal {}", q(&host[..=i])));
        }
        return Ok(());
    }
    if let Some(i) = host.rfind(':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {} after host", q(colon_port)));
        }
    }
    go_unescape(host, Escape::Host)
}

/// `unescape`: `%` escapes well-formed; in a host, no character that must be escaped.
fn go_unescape(s: &str, mode: Escape) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                    let end = (i + 3).min(b.len());
                    return Err(format!("invalid URL escape {}", q(&s[i..end])));
                }
                if mode == Escape::Host && hex_value(b[i + 1]) < 8 && &s[i..i + 3] != "%25" {
                    return Err(format!("invalid URL escape {}", q(&s[i..i + 3])));
                }
                i += 3;
            }
            c => {
                if mode == Escape::Host && c < 0x80 && host_must_escape(c) {
                    return Err(format!("invalid character {} in host name", q(&s[i..i + 1])));
                }
                i += 1;
            }
        }
    }
    Ok(())
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// `shouldEscape(c, encodeHost)`.
fn host_must_escape(c: u8) -> bool {
    !(c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c))
}

/// `strictParseURL`: the scheme.
fn strict_parse_url(original: &str) -> Result<String, String> {
    let wrap = |u: &str, e: String| format!("parse {}: {e}", q(u));
    // `url.Parse`: the fragment is cut off first, then must unescape.
    let strict = |u: &str| -> Result<(), String> {
        let (u2, fragment) = u.split_once('#').unwrap_or((u, ""));
        go_url_parse(u2, false).map_err(|e| wrap(u, e))?;
        go_unescape(fragment, Escape::Fragment).map_err(|e| wrap(u, e))
    };
    match go_url_parse(original, true) {
        Ok(scheme) => {
            strict(original).map_err(|e| format!("failed to strict parse url: {e}"))?;
            Ok(scheme)
        }
        Err(e) => {
            let err = wrap(original, e);
            let u = format!("http://{original}");
            let scheme = go_url_parse(&u, true).map_err(|_| format!("failed to parse url: {err}"))?;
            strict(&u).map_err(|e| format!("failed to strict parse url: {e}"))?;
            Ok(scheme)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VirtualService: `ValidateVirtualService`.

fn validate_virtual_service(obj: &Value, spec: &Value, r: &mut Report) {
    let hosts = strings(spec, "hosts");
    let gateways = strings(spec, "gateways");
    if hosts.is_empty() {
        // A delegate.
        if !gateways.is_empty() {
            r.err(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !list(spec, "tls").is_empty() {
            r.err(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !list(spec, "tcp").is_empty() {
            r.err(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    let gateway_semantics = annotations(obj)
        .and_then(|a| a.get(ANNOTATION_ROUTE_SEMANTICS))
        .and_then(Value::as_str)
        == Some("gateway");

    let (applies_to_mesh, applies_to_gateway) = if gateways.is_empty() {
        (true, false)
    } else {
        validate_gateway_names(&gateways, gateway_semantics, "spec.gateways", r);
        let gateway = is_gateway(&gateways);
        (!gateway, gateway)
    };

    if !applies_to_gateway {
        for (i, http) in list(spec, "http").iter().enumerate() {
            for (j, m) in list(http, "match").iter().enumerate() {
                for headers in ["headers", "withoutHeaders"] {
                    for key in object(m, headers).into_iter().flatten().map(|(k, _)| k) {
                        if is_jwt_claim_route(key) {
                            r.err(
                                entry(&at(&nth(&at(&nth("spec.http", i), "match"), j), headers), key),
                                format!(
                                    "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: {}",
                                    go_list(&gateways)
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    let sni = is_sni_host(spec);
    let mut all_hosts_valid = true;
    for (i, host) in hosts.iter().enumerate() {
        let path = nth("spec.hosts", i);
        let result = if applies_to_gateway {
            validate_wildcard_domain_for_gateway(sni, host)
        } else {
            validate_wildcard_domain(host)
        };
        match result {
            Err(e) => {
                if !is_valid_ip_address(host) {
                    r.err(path, e);
                    all_hosts_valid = false;
                }
            }
            Ok(()) if applies_to_mesh && *host == "*" => {
                r.err(
                    path,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_hosts_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_hosts_valid {
        for i in 0..hosts.len() {
            for j in i + 1..hosts.len() {
                if host_matches(hosts[i], hosts[j]) {
                    r.err(
                        nth("spec.hosts", j),
                        format!("duplicate hosts in virtual service: {} & {}", hosts[i], hosts[j]),
                    );
                }
            }
        }
    }

    let (http, tcp, tls) = (list(spec, "http"), list(spec, "tcp"), list(spec, "tls"));
    if http.is_empty() && tcp.is_empty() && tls.is_empty() {
        r.err("spec", "http, tcp or tls must be provided in virtual service");
    }
    for (i, route) in http.iter().enumerate() {
        let path = nth("spec.http", i);
        if route.is_null() {
            r.err(path, "http route may not be null");
            continue;
        }
        validate_http_route(route, hosts.is_empty(), gateway_semantics, &path, r);
    }
    for (i, route) in tls.iter().enumerate() {
        validate_tls_route(
            route,
            &hosts,
            &gateways,
            gateway_semantics,
            &nth("spec.tls", i),
            r,
        );
    }
    for (i, route) in tcp.iter().enumerate() {
        validate_tcp_route(route, gateway_semantics, &nth("spec.tcp", i), r);
    }
    validate_export_to(metadata_str(obj, "namespace"), &strings(spec, "exportTo"), r);
}

/// `isGateway`: bound to gateways only, unless `mesh` is among them.
fn is_gateway(gateways: &[&str]) -> bool {
    !gateways.contains(&"mesh")
}

/// `isSniHost`.
fn is_sni_host(spec: &Value) -> bool {
    list(spec, "tls")
        .iter()
        .any(|tls| list(tls, "match").iter().any(|m| !list(m, "sniHosts").is_empty()))
}

/// `validateGatewayNames`. Faithfully stops at the first name without a `/` (istiod returns
/// from inside the loop there).
fn validate_gateway_names(names: &[&str], gateway_semantics: bool, path: &str, r: &mut Report) {
    for (i, name) in names.iter().enumerate() {
        let p = nth(path, i);
        let Some((namespace, gateway)) = name.split_once('/') else {
            // `mesh`, or the legacy `name.namespace` form (a warning), checked as an FQDN.
            r.result(&p, validate_fqdn(name));
            return;
        };
        if namespace.is_empty() || gateway.is_empty() {
            r.err(&p, "config namespace and gateway name cannot be empty");
        }
        if !is_dns1123_label(namespace) {
            r.err(&p, format!("invalid value for namespace: {}", q(namespace)));
        }
        if !is_dns1123_label(gateway) && !gateway_semantics {
            r.err(&p, format!("invalid value for gateway name: {}", q(gateway)));
        }
    }
}

/// `validateExportTo` for a VirtualService (not a ServiceEntry, no selector).
fn validate_export_to(namespace: &str, export_to: &[&str], r: &mut Report) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, e) in export_to.iter().enumerate() {
        let p = nth("spec.exportTo", i);
        let key = if *e == "." { namespace } else { e };
        if seen.contains(&key) {
            if key != *e {
                r.err(
                    p,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                r.err(p, format!("duplicate entries in exportTo for entry {e}"));
            }
            continue;
        }
        let valid = match key {
            "." | "*" => Ok(()),
            "~" => Err("exportTo ~ (none) is not allowed for Istio configuration objects".to_string()),
            k if is_dns1123_label(k) => Ok(()),
            _ => Err("only .,*, or a valid DNS 1123 label is allowed as exportTo entry".to_string()),
        };
        match valid {
            Ok(()) => seen.push(key),
            Err(m) => r.err(p, m),
        }
    }
    if seen.contains(&"*") && export_to.len() > 1 {
        r.err(
            "spec.exportTo",
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
}

/// `validateHTTPRoute` (virtualservice.go).
fn validate_http_route(http: &Value, delegate: bool, gateway_semantics: bool, path: &str, r: &mut Report) {
    validate_http_route_conflict(http, delegate, path, r);
    validate_http_route_match_request(http, path, r);
    validate_headers(field(http, "headers"), &at(path, "headers"), r);
    validate_cors_policy(field(http, "corsPolicy"), &at(path, "corsPolicy"), r);
    validate_http_fault_injection(field(http, "fault"), &at(path, "fault"), r);

    if field(http, "mirrorPercent").is_some() {
        let value = int(http, "mirrorPercent");
        if value > 100 {
            r.err(
                at(path, "mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {value})"),
            );
        }
    }
    if let Some(percentage) = field(http, "mirrorPercentage") {
        let value = number(percentage, "value");
        let p = at(path, "mirrorPercentage.value");
        if value > 100.0 {
            r.err(
                &p,
                format!("mirror_percentage must have a max value of 100 (it has {value:.6})"),
            );
        }
        if value < 0.0 {
            r.err(
                &p,
                format!("mirror_percentage must have a min value of 0 (it has {value:.6})"),
            );
        }
    }

    validate_destination(field(http, "mirror"), &at(path, "mirror"), r);
    validate_http_mirrors(http, &at(path, "mirrors"), r);
    r.result(
        &at(path, "redirect"),
        validate_http_redirect(field(http, "redirect")),
    );
    validate_http_direct_response(field(http, "directResponse"), &at(path, "directResponse"), r);
    validate_http_retry(field(http, "retries"), &at(path, "retries"), r);
    r.result(
        &at(path, "rewrite"),
        validate_http_rewrite(field(http, "rewrite")),
    );
    r.result(&at(path, "headers.request"), validate_authority_rewrite(http));
    validate_http_route_destinations(list(http, "route"), gateway_semantics, &at(path, "route"), r);
    if let Some(timeout) = duration(http, "timeout") {
        r.result(&at(path, "timeout"), validate_duration(timeout));
    }
}

/// `validateHTTPRouteConflict` (with `getHTTPRouteType`).
fn validate_http_route_conflict(http: &Value, delegate: bool, path: &str, r: &mut Report) {
    let name = string(http, "name");
    let has = |key: &str| field(http, key).is_some();
    let has_route = !list(http, "route").is_empty();
    if !delegate && has("delegate") {
        // A root route: only `delegate` may be given.
        if has("redirect") {
            r.err(
                at(path, "redirect"),
                format!("root HTTP route {name} must not specify redirect"),
            );
        }
        if has_route {
            r.err(
                at(path, "route"),
                format!("root HTTP route {name} must not specify route"),
            );
        }
        return;
    }
    if delegate && has("delegate") {
        r.err(
            at(path, "delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    if has("redirect") {
        if has_route {
            r.err(path, "HTTP route cannot contain both route and redirect");
        }
        if has("fault") {
            r.err(path, "HTTP route cannot contain both fault and redirect");
        }
        if has("rewrite") {
            r.err(path, "HTTP route rule cannot contain both rewrite and redirect");
        }
        if has("directResponse") {
            r.err(
                path,
                "HTTP route rule cannot contain both direct_response and redirect",
            );
        }
    } else if has("directResponse") {
        if has_route {
            r.err(path, "HTTP route cannot contain both route and direct_response");
        }
        if has("fault") {
            r.err(path, "HTTP route cannot contain both fault and direct_response");
        }
        if has("rewrite") {
            r.err(
                path,
                "HTTP route rule cannot contain both rewrite and direct_response",
            );
        }
    } else if !has_route {
        r.err(path, "HTTP route, redirect or direct_response is required");
    }
    if has("mirror") && !list(http, "mirrors").is_empty() {
        r.err(path, "HTTP route cannot contain both mirror and mirrors");
    }
}

/// `validateHTTPRouteMatchRequest`.
fn validate_http_route_match_request(http: &Value, path: &str, r: &mut Report) {
    for (i, m) in list(http, "match").iter().enumerate() {
        if m.is_null() {
            continue;
        }
        let mp = nth(&at(path, "match"), i);
        for (name, header) in object(m, "headers").into_iter().flatten() {
            let p = entry(&at(&mp, "headers"), name);
            if header.is_null() {
                r.err(&p, format!("header match {name} cannot be null"));
            }
            r.result(&p, validate_header_name_or_jwt_claim_route(name));
            r.result(&p, validate_string_match(Some(header), "headers"));
        }
        for (name, header) in object(m, "withoutHeaders").into_iter().flatten() {
            let p = entry(&at(&mp, "withoutHeaders"), name);
            r.result(&p, validate_header_name_or_jwt_claim_route(name));
            // `*` is not a regex here but "present".
            if !header.is_null() && string(header, "regex") != "*" {
                r.result(&p, validate_string_match(Some(header), "withoutHeaders"));
            }
        }
        // uri allows an empty prefix; scheme, method and authority do not.
        r.result(
            &at(&mp, "uri"),
            validate_string_match_regexp(field(m, "uri"), "uri"),
        );
        for key in ["scheme", "method", "authority"] {
            r.result(&at(&mp, key), validate_string_match(field(m, key), key));
        }
        for (name, qp) in object(m, "queryParams").into_iter().flatten() {
            let p = entry(&at(&mp, "queryParams"), name);
            r.result(&p, validate_string_match(Some(qp), "queryParams"));
        }
    }
    for (i, m) in list(http, "match").iter().enumerate() {
        if m.is_null() {
            continue;
        }
        let mp = nth(&at(path, "match"), i);
        let port = int(m, "port");
        if port != 0 {
            r.result(&at(&mp, "port"), validate_port(port));
        }
        validate_labels(object(m, "sourceLabels"), &at(&mp, "sourceLabels"), r);
        validate_gateway_names(&strings(m, "gateways"), false, &at(&mp, "gateways"), r);
        let source_namespace = string(m, "sourceNamespace");
        if !source_namespace.is_empty() && !is_dns1123_label(source_namespace) {
            r.err(
                at(&mp, "sourceNamespace"),
                format!("sourceNamespace match {source_namespace} is invalid"),
            );
        }
    }
}

/// `validateAuthorityRewrite`: the authority is rewritten in one place at most.
fn validate_authority_rewrite(http: &Value) -> Result<(), String> {
    let mut current = field(http, "rewrite")
        .map(|rw| string(rw, "authority"))
        .unwrap_or("");
    let request = field(http, "headers").and_then(|h| field(h, "request"));
    for op in ["set", "add"] {
        let Some(request) = request else { break };
        for (k, v) in object(request, op).into_iter().flatten() {
            if !is_authority_header(k) {
                continue;
            }
            let v = v.as_str().unwrap_or("");
            if !current.is_empty() {
                return Err(format!(
                    "authority header cannot be set multiple times: have {}, attempting to set {}",
                    q(current),
                    q(v)
                ));
            }
            current = v;
        }
    }
    Ok(())
}

/// `validateCORSPolicy`.
fn validate_cors_policy(policy: Option<&Value>, path: &str, r: &mut Report) {
    let Some(policy) = policy else { return };
    for (i, origin) in list(policy, "allowOrigins").iter().enumerate() {
        let p = nth(&at(path, "allowOrigins"), i);
        // `validateAllowOrigins`
        let value = string_match_type(origin).map(|(_, v)| v).unwrap_or("");
        if value.is_empty() {
            r.err(
                p,
                format!("'{value}' is not a valid match type for CORS allow origins"),
            );
        } else {
            r.result(
                &p,
                validate_string_match_regexp(Some(origin), "corsPolicy.allowOrigins"),
            );
        }
    }
    const METHODS: [&str; 10] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
    ];
    for (i, method) in strings(policy, "allowMethods").into_iter().enumerate() {
        if !METHODS.contains(&method) {
            r.err(
                nth(&at(path, "allowMethods"), i),
                format!("{} is not a supported HTTP method", q(method)),
            );
        }
    }
    for key in ["allowHeaders", "exposeHeaders"] {
        for (i, name) in strings(policy, key).into_iter().enumerate() {
            r.result(&nth(&at(path, key), i), validate_cors_header_name(name));
        }
    }
    if let Some(max_age) = duration(policy, "maxAge") {
        let p = at(path, "maxAge");
        r.result(&p, validate_duration(max_age));
        if max_age % 1_000_000_000 > 0 {
            r.err(p, "max_age duration is accurate only to seconds precision");
        }
    }
}

/// `validatePercentage` for a `Percent` message.
fn validate_percentage(percentage: Option<&Value>, path: &str, r: &mut Report) {
    let Some(percentage) = percentage else { return };
    let v = number(percentage, "value");
    if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
        r.err(
            at(path, "value"),
            format!(
                "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
                go_float(v)
            ),
        );
    }
}

/// Go's `%v` of a float64 (shortest representation).
fn go_float(v: f64) -> String {
    let s = format!("{v}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// `validateHTTPFaultInjection` with `validateHTTPFaultInjectionAbort` and `...Delay`.
fn validate_http_fault_injection(fault: Option<&Value>, path: &str, r: &mut Report) {
    let Some(fault) = fault else { return };
    let abort = field(fault, "abort");
    let delay = field(fault, "delay");
    if abort.is_none() && delay.is_none() {
        r.err(path, "HTTP fault injection must have an abort and/or a delay");
    }
    if let Some(abort) = abort {
        let p = at(path, "abort");
        validate_percentage(field(abort, "percentage"), &at(&p, "percentage"), r);
        // The `error_type` oneof, in field order: httpStatus, grpcStatus, http2Error.
        let mut error_type = None;
        for key in ["httpStatus", "grpcStatus", "http2Error"] {
            if field(abort, key).is_some() {
                error_type = Some(key);
            }
        }
        match error_type {
            Some("grpcStatus") => {
                let status = string(abort, "grpcStatus");
                const CODES: [&str; 17] = [
                    "OK",
                    "CANCELLED",
                    "UNKNOWN",
                    "INVALID_ARGUMENT",
                    "DEADLINE_EXCEEDED",
                    "NOT_FOUND",
                    "ALREADY_EXISTS",
                    "PERMISSION_DENIED",
                    "RESOURCE_EXHAUSTED",
                    "FAILED_PRECONDITION",
                    "ABORTED",
                    "OUT_OF_RANGE",
                    "UNIMPLEMENTED",
                    "INTERNAL",
                    "UNAVAILABLE",
                    "DATA_LOSS",
                    "UNAUTHENTICATED",
                ];
                if !CODES.contains(&status) {
                    r.err(at(&p, "grpcStatus"), format!("gRPC status {} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'", q(status)));
                }
            }
            Some("http2Error") => r.err(
                at(&p, "http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            ),
            Some(_) => r.result(
                &at(&p, "httpStatus"),
                validate_http_status(int(abort, "httpStatus")),
            ),
            None => {} // a warning only
        }
    }
    if let Some(delay) = delay {
        let p = at(path, "delay");
        validate_percentage(field(delay, "percentage"), &at(&p, "percentage"), r);
        // The `http_delay_type` oneof: fixedDelay, exponentialDelay (last one present wins).
        if field(delay, "exponentialDelay").is_some() {
            let ep = at(&p, "exponentialDelay");
            if let Some(d) = duration(delay, "exponentialDelay") {
                r.result(&ep, validate_duration(d));
            }
            r.err(ep, "exponentialDelay not supported yet");
        } else if let Some(d) = duration(delay, "fixedDelay") {
            r.result(&at(&p, "fixedDelay"), validate_duration(d));
        }
    }
}

/// `validateHTTPStatus`.
fn validate_http_status(status: i64) -> Result<(), String> {
    if !(200..=600).contains(&status) {
        return Err(format!("HTTP status {status} is not in range 200-599"));
    }
    Ok(())
}

/// `validateDestination`.
fn validate_destination(destination: Option<&Value>, path: &str, r: &mut Report) {
    let Some(destination) = destination else { return };
    let host = string(destination, "host");
    let hp = at(path, "host");
    if host == "*" {
        r.err(hp, format!("invalid destination host {host}"));
    } else {
        r.result(&hp, validate_wildcard_domain(host));
    }
    let subset = string(destination, "subset");
    if !subset.is_empty() && !is_dns1123_label(subset) {
        r.err(at(path, "subset"), format!("subset name is invalid: {subset}"));
    }
    if let Some(port) = field(destination, "port") {
        // `validatePortSelector`
        r.result(&at(path, "port.number"), validate_port(int(port, "number")));
    }
}

/// `validateHTTPRouteDestinations` (`gateway_semantics` skips `validateDestination`).
fn validate_http_route_destinations(route: &[Value], gateway_semantics: bool, path: &str, r: &mut Report) {
    let mut total: i32 = 0;
    for (i, d) in route.iter().enumerate() {
        let p = nth(path, i);
        if d.is_null() {
            r.err(p, "weight may not be nil");
            continue;
        }
        if field(d, "destination").is_none() {
            r.err(&p, "destination is required");
        }
        validate_headers(field(d, "headers"), &at(&p, "headers"), r);
        if !gateway_semantics {
            validate_destination(field(d, "destination"), &at(&p, "destination"), r);
        }
        let weight = int(d, "weight") as i32;
        if weight < 0 {
            r.err(at(&p, "weight"), format!("weight {weight} < 0"));
        }
        total = total.wrapping_add(weight);
    }
    if route.len() > 1 && total == 0 {
        r.err(path, "total destination weight = 0");
    }
}

/// `validateRouteDestinations` (TCP and TLS).
fn validate_route_destinations(route: &[Value], gateway_semantics: bool, path: &str, r: &mut Report) {
    let mut total: i32 = 0;
    for (i, d) in route.iter().enumerate() {
        let p = nth(path, i);
        if d.is_null() {
            r.err(p, "weight may not be nil");
            continue;
        }
        if field(d, "destination").is_none() {
            r.err(&p, "destination is required");
        }
        if !gateway_semantics {
            validate_destination(field(d, "destination"), &at(&p, "destination"), r);
        }
        let weight = int(d, "weight") as i32;
        if weight < 0 {
            r.err(at(&p, "weight"), format!("weight {weight} < 0"));
        }
        total = total.wrapping_add(weight);
    }
    if route.len() > 1 && total == 0 {
        r.err(path, "total destination weight = 0");
    }
}

/// `validateHTTPMirrors`.
fn validate_http_mirrors(http: &Value, path: &str, r: &mut Report) {
    for (i, mirror) in list(http, "mirrors").iter().enumerate() {
        let p = nth(path, i);
        if mirror.is_null() {
            r.err(p, "mirror cannot be null");
            continue;
        }
        let Some(destination) = field(mirror, "destination") else {
            r.err(p, "destination is required for mirrors");
            continue;
        };
        validate_destination(Some(destination), &at(&p, "destination"), r);
        if let Some(percentage) = field(mirror, "percentage") {
            let value = number(percentage, "value");
            let pp = at(&p, "percentage.value");
            if value > 100.0 {
                r.err(
                    &pp,
                    format!("mirror percentage must have a max value of 100 (it has {value:.6})"),
                );
            }
            if value < 0.0 {
                r.err(
                    &pp,
                    format!("mirror percentage must have a min value of 0 (it has {value:.6})"),
                );
            }
        }
    }
}

/// `validateHTTPRedirect` (the first error only, as istiod).
fn validate_http_redirect(redirect: Option<&Value>) -> Result<(), String> {
    let Some(redirect) = redirect else { return Ok(()) };
    let port_set = field(redirect, "port").is_some() || field(redirect, "derivePort").is_some();
    let scheme = string(redirect, "scheme");
    if string(redirect, "uri").is_empty()
        && string(redirect, "authority").is_empty()
        && !port_set
        && scheme.is_empty()
    {
        return Err("redirect must specify URI, authority, scheme, or port".into());
    }
    let code = int(redirect, "redirectCode");
    if code != 0 && !(300..=399).contains(&code) {
        return Err(format!("{code} is not a valid redirect code, must be 3xx"));
    }
    if !scheme.is_empty() && scheme != "http" && scheme != "https" {
        return Err("invalid redirect scheme, must be \"http\" or \"https\"".into());
    }
    let port = int(redirect, "port");
    if port > 0 {
        validate_port(port)?;
    }
    Ok(())
}

/// `validateHTTPDirectResponse`.
fn validate_http_direct_response(direct: Option<&Value>, path: &str, r: &mut Report) {
    let Some(direct) = direct else { return };
    if let Some(body) = field(direct, "body") {
        let size = match (field(body, "string"), field(body, "bytes")) {
            (_, Some(bytes)) => bytes.as_str().map(|b| b.trim_end_matches('=').len() * 3 / 4),
            (Some(s), None) => s.as_str().map(str::len),
            (None, None) => None,
        }
        .unwrap_or(0);
        if size > 1024 * 1024 {
            r.err(
                at(path, "body"),
                "large direct_responses may impact control plane performance, must be less than 1MB",
            );
        }
    }
    r.result(&at(path, "status"), validate_http_status(int(direct, "status")));
}

/// `validateHTTPRetry`.
fn validate_http_retry(retries: Option<&Value>, path: &str, r: &mut Report) {
    let Some(retries) = retries else { return };
    let attempts = int(retries, "attempts");
    if attempts < 0 {
        r.err(at(path, "attempts"), "attempts cannot be negative");
    }
    let retry_on = string(retries, "retryOn");
    if attempts == 0
        && (field(retries, "perTryTimeout").is_some()
            || !retry_on.is_empty()
            || field(retries, "retryRemoteLocalities").is_some())
    {
        r.err(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(d) = duration(retries, "perTryTimeout") {
        r.result(&at(path, "perTryTimeout"), validate_duration(d));
    }
    if !retry_on.is_empty() {
        const POLICIES: [&str; 16] = [
            "5xx",
            "gateway-error",
            "reset",
            "reset-before-request",
            "connect-failure",
            "retriable-4xx",
            "refused-stream",
            "retriable-status-codes",
            "retriable-headers",
            "envoy-ratelimited",
            "http3-post-connect-failure",
            "cancelled",
            "deadline-exceeded",
            "internal",
            "resource-exhausted",
            "unavailable",
        ];
        for policy in retry_on.split(',') {
            // `strconv.Atoi` then `http.StatusText(i) == ""`.
            let code = policy.parse::<i64>().unwrap_or(0);
            if !is_known_http_status(code) && !POLICIES.contains(&policy) {
                r.err(
                    at(path, "retryOn"),
                    format!("{} is not a valid retryOn policy", q(policy)),
                );
            }
        }
    }
    if let Some(d) = duration(retries, "backoff") {
        r.result(&at(path, "backoff"), validate_duration(d));
    }
}

/// Go's `http.StatusText(code) != ""`.
fn is_known_http_status(code: i64) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

/// `validateHTTPRewrite` with `validateURIRegexRewrite`.
fn validate_http_rewrite(rewrite: Option<&Value>) -> Result<(), String> {
    let Some(rewrite) = rewrite else { return Ok(()) };
    let uri = string(rewrite, "uri");
    let regex_rewrite = field(rewrite, "uriRegexRewrite");
    if !uri.is_empty() && regex_rewrite.is_some() {
        return Err("rewrite may only contain one of URI or UriRegexRewrite".into());
    }
    if uri.is_empty() && regex_rewrite.is_none() && string(rewrite, "authority").is_empty() {
        return Err("rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified".into());
    }
    if let Some(rr) = regex_rewrite {
        let (m, rw) = (string(rr, "match"), string(rr, "rewrite"));
        let result = if m.is_empty() || rw.is_empty() {
            Err("UriRegexRewrite requires both Rewrite and Match fields to be specified".to_string())
        } else {
            validate_string_regexp(m, "HTTPRewrite.UriRegexRewrite.Match")
        };
        result.map_err(|e| format!("UriRegexRewrite has errors\n{e}"))?;
    }
    Ok(())
}

/// `validateTLSRoute` with `validateTLSMatch` and `validateSniHost`.
fn validate_tls_route(
    tls: &Value,
    hosts: &[&str],
    gateways: &[&str],
    gateway_semantics: bool,
    path: &str,
    r: &mut Report,
) {
    if tls.is_null() {
        return;
    }
    let matches = list(tls, "match");
    if matches.is_empty() {
        r.err(path, "TLS route must have at least one match condition");
    }
    for (i, m) in matches.iter().enumerate() {
        let mp = nth(&at(path, "match"), i);
        if m.is_null() {
            r.err(mp, "TLS match may not be null");
            continue;
        }
        let sni_hosts = strings(m, "sniHosts");
        if sni_hosts.is_empty() {
            r.err(&mp, "TLS match must have at least one SNI host");
        }
        for (j, sni) in sni_hosts.iter().enumerate() {
            let sp = nth(&at(&mp, "sniHosts"), j);
            let result = if is_gateway(gateways) {
                validate_wildcard_domain_for_gateway(true, sni)
            } else {
                validate_wildcard_domain(sni)
            };
            if let Err(e) = result {
                if !is_valid_ip_address(sni) {
                    r.err(sp, e);
                }
                continue;
            }
            if !hosts.iter().any(|h| host_subset_of(sni, h)) {
                r.err(
                    sp,
                    format!(
                        "SNI host {} is not a compatible subset of any of the virtual service hosts: [{}]",
                        q(sni),
                        hosts.join(", ")
                    ),
                );
            }
        }
        validate_l4_match(m, &mp, r);
    }
    let route = list(tls, "route");
    if route.is_empty() {
        r.err(path, "TLS route is required");
    }
    validate_route_destinations(route, gateway_semantics, &at(path, "route"), r);
}

/// The common part of `validateTLSMatch` and `validateTCPMatch`.
fn validate_l4_match(m: &Value, path: &str, r: &mut Report) {
    for (i, subnet) in strings(m, "destinationSubnets").into_iter().enumerate() {
        r.result(
            &nth(&at(path, "destinationSubnets"), i),
            validate_ip_subnet(subnet),
        );
    }
    let port = int(m, "port");
    if port != 0 {
        r.result(&at(path, "port"), validate_port(port));
    }
    validate_labels(object(m, "sourceLabels"), &at(path, "sourceLabels"), r);
    validate_gateway_names(&strings(m, "gateways"), false, &at(path, "gateways"), r);
}

/// `validateTCPRoute` with `validateTCPMatch`.
fn validate_tcp_route(tcp: &Value, gateway_semantics: bool, path: &str, r: &mut Report) {
    if tcp.is_null() {
        return;
    }
    for (i, m) in list(tcp, "match").iter().enumerate() {
        let mp = nth(&at(path, "match"), i);
        if m.is_null() {
            r.err(mp, "tcp match may not be nil");
            continue;
        }
        validate_l4_match(m, &mp, r);
    }
    let route = list(tcp, "route");
    if route.is_empty() {
        r.err(path, "TCP route is required");
    }
    validate_route_destinations(route, gateway_semantics, &at(path, "route"), r);
}

// ---------------------------------------------------------------------------------------------
// WasmPlugin: `ValidateWasmPlugin`.

fn validate_wasm_plugin(spec: &Value, r: &mut Report) {
    let selector = field(spec, "selector");
    let target_ref = field(spec, "targetRef");
    let target_refs = list(spec, "targetRefs");

    // `validateOneOfSelectorType`
    let set = usize::from(selector.is_some())
        + usize::from(target_ref.is_some())
        + usize::from(!target_refs.is_empty());
    if set > 1 {
        r.err("spec", "only one of targetRefs or workloadSelector can be set");
    }
    // `validateWorkloadSelector`: only empty keys and wildcards (no label syntax check).
    if let Some(selector) = selector {
        for (k, v) in object(selector, "matchLabels").into_iter().flatten() {
            let v = v.as_str().unwrap_or("");
            let p = entry("spec.selector.matchLabels", k);
            if k.is_empty() {
                r.err(
                    &p,
                    format!(
                        "empty key is not supported in selector: {}",
                        q(&format!("{k}={v}"))
                    ),
                );
            }
            if k.contains('*') || v.contains('*') {
                r.err(
                    &p,
                    format!(
                        "wildcard is not supported in selector: {}",
                        q(&format!("{k}={v}"))
                    ),
                );
            }
        }
    }
    if let Some(target_ref) = target_ref {
        validate_policy_target_reference(target_ref, "spec.targetRef", r);
    }
    for (i, target_ref) in target_refs.iter().enumerate() {
        if !target_ref.is_null() {
            validate_policy_target_reference(target_ref, &nth("spec.targetRefs", i), r);
        }
    }
    // `validateWasmPluginURL` with `strictParseURL`: a URL `url.ParseRequestURI` refuses is
    // retried as `http://` + it, which accepts almost anything (`oci://host:bad/x` reads as
    // `http://oci:/...`); control characters and bad `%` escapes are what still fail.
    let url = string(spec, "url");
    if url.is_empty() {
        r.err("spec.url", "url field needs to be set");
    } else {
        match strict_parse_url(url) {
            Err(e) => r.err("spec.url", e),
            Ok(scheme) => {
                if !["", "file", "http", "https", "oci"].contains(&scheme.as_str()) {
                    r.err("spec.url", format!("url contains unsupported scheme: {scheme}"));
                }
            }
        }
    }
    // `validateWasmPluginSHA`
    let sha = string(spec, "sha256");
    if !sha.is_empty() {
        if sha.len() != 64 {
            r.err("spec.sha256", "sha256 field must be 64 characters long");
        } else if !sha
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            r.err("spec.sha256", "sha256 field must match [a-f0-9]{64} pattern");
        }
    }
    // `validateWasmPluginImagePullSecret`, `validateWasmPluginName`
    if string(spec, "imagePullSecret").len() > 253 {
        r.err(
            "spec.imagePullSecret",
            "imagePullSecret field must be less than 253 characters long",
        );
    }
    if string(spec, "pluginName").len() > 256 {
        r.err(
            "spec.pluginName",
            "pluginName field must be less than 255 characters long",
        );
    }
    // `validateWasmPluginVMConfig` (the first error only)
    if let Some(vm) = field(spec, "vmConfig") {
        let mut names: Vec<&str> = Vec::new();
        for (i, env) in list(vm, "env").iter().enumerate() {
            if env.is_null() {
                continue;
            }
            let p = nth("spec.vmConfig.env", i);
            let name = string(env, "name");
            let value_from = field(env, "valueFrom");
            let inline = value_from.is_none_or(|v| v == "INLINE" || v == 0);
            let error = if name.is_empty() {
                Some("spec.vmConfig.env invalid")
            } else if name.len() > 256 {
                Some("env.name field must be less than 255 characters long")
            } else if names.contains(&name) {
                Some("duplicate env")
            } else if !inline && !string(env, "value").is_empty() {
                Some("value may only be set when valueFrom is INLINE")
            } else {
                None
            };
            if let Some(error) = error {
                r.err(p, error);
                break;
            }
            names.push(name);
        }
    }
    // `validateWasmPluginMatch` (the first error only)
    'selectors: for (i, sel) in list(spec, "match").iter().enumerate() {
        let p = nth("spec.match", i);
        if sel.is_null() {
            r.err(p, format!("spec.Match[{i}] is nil"));
            break;
        }
        for (j, port) in list(sel, "ports").iter().enumerate() {
            let pp = nth(&at(&p, "ports"), j);
            if port.is_null() {
                r.err(pp, format!("spec.Match[{i}].Ports[{j}] is nil"));
                break 'selectors;
            }
            let number = int(port, "number");
            if number <= 0 || number > 65535 {
                r.err(
                    at(&pp, "number"),
                    format!("spec.Match[{i}].Ports[{j}] is out of range: {number}"),
                );
                break 'selectors;
            }
        }
    }
}

/// `validatePolicyTargetReference`: Service, ServiceEntry, Gateway or GatewayClass, same
/// namespace.
fn validate_policy_target_reference(target_ref: &Value, path: &str, r: &mut Report) {
    if string(target_ref, "name").is_empty() {
        r.err(at(path, "name"), "targetRef name must be set");
    }
    if !string(target_ref, "namespace").is_empty() {
        r.err(
            at(path, "namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let group = string(target_ref, "group");
    let kind = string(target_ref, "kind");
    let canonical = if group.is_empty() { "core" } else { group };
    let allowed = [
        ("core", "Service"),
        ("networking.istio.io", "ServiceEntry"),
        ("gateway.networking.k8s.io", "Gateway"),
        ("gateway.networking.k8s.io", "GatewayClass"),
    ];
    if !allowed.contains(&(canonical, kind)) {
        r.err(
            path,
            format!(
                "targetRef must be to one of [core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass] but was {group}/{kind}"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pets_virtual_service() -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "pets", "namespace": "shop"},
            "spec": {
                "hosts": ["pets.example.com"],
                "gateways": ["istio-system/ingressgateway"],
                "http": [{
                    "name": "pets",
                    "match": [{"uri": {"exact": "/pets"}}, {"uri": {"prefix": "/pets/"}}],
                    "route": [
                        {
                            "destination": {"host": "pets-v1.shop.svc.cluster.local", "port": {"number": 8080}},
                            "weight": 90,
                            "headers": {"response": {"set": {"x-kea-backend-version": "v1"}}}
                        },
                        {
                            "destination": {"host": "pets-v2.shop.svc.cluster.local", "port": {"number": 8080}},
                            "weight": 10,
                            "headers": {"response": {"set": {"x-kea-backend-version": "v2"}}}
                        }
                    ],
                    "timeout": "5s"
                }]
            }
        })
    }

    fn docs_virtual_service() -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "docs", "namespace": "shop"},
            "spec": {
                "hosts": ["docs.example.com"],
                "http": [{
                    "name": "docs",
                    "match": [{"uri": {"prefix": "/docs/"}}, {"uri": {"exact": "/docs"}}],
                    "route": [{
                        "destination": {"host": "kea-docs.kea-system.svc.cluster.local", "port": {"number": 80}},
                        "weight": 100
                    }],
                    "timeout": "5s"
                }]
            }
        })
    }

    fn wasm_plugin() -> Value {
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "kea-validate", "namespace": "shop"},
            "spec": {
                "url": "oci://ghcr.io/kea/validate:1.0.0",
                "sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "phase": "AUTHZ",
                "priority": 10,
                "failStrategy": "FAIL_CLOSE",
                "type": "HTTP",
                "pluginConfig": {"api": {"title": "pets"}, "mode": "enforce"},
                "selector": {"matchLabels": {"app": "pets", "app.kubernetes.io/part-of": "shop"}}
            }
        })
    }

    /// `object` with the JSON value at `pointer` replaced (or added) by `value`.
    fn with(mut object: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = object
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"));
        match parent {
            Value::Object(map) => {
                map.insert(key.to_string(), value);
            }
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            _ => panic!("{pointer}: not a container"),
        }
        object
    }

    fn without(mut object: Value, pointer: &str) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        object
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key);
        object
    }

    #[track_caller]
    fn assert_ok(object: &Value) {
        let found = check(object);
        assert!(found.is_empty(), "expected no violations, got {found:#?}");
    }

    /// Exactly the one violation at `path`, its message containing `message`.
    #[track_caller]
    fn assert_refused(object: &Value, path: &str, message: &str) {
        let found = check(object);
        assert!(
            found
                .iter()
                .any(|v| v.path == path && v.message.contains(message)),
            "expected {path}: …{message}…, got {found:#?}"
        );
    }

    #[test]
    fn kea_objects_pass() {
        assert_ok(&pets_virtual_service());
        assert_ok(&docs_virtual_service());
        assert_ok(&with(
            pets_virtual_service(),
            "/apiVersion",
            json!("networking.istio.io/v1alpha3"),
        ));
        assert_ok(&wasm_plugin());
        let gateway_plugin = with(
            without(wasm_plugin(), "/spec/selector"),
            "/spec/targetRefs",
            json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shop-gateway"}]),
        );
        assert_ok(&gateway_plugin);
        for url in [
            "oci://ghcr.io/kea/validate:1.0.0",
            "file:///opt/kea/validate.wasm",
            "https://example.com/kea/validate.wasm",
            "http://127.0.0.1:8080/validate.wasm",
            "ghcr.io/kea/validate:1.0.0",
        ] {
            assert_ok(&with(wasm_plugin(), "/spec/url", json!(url)));
        }
        assert_ok(&without(wasm_plugin(), "/spec/sha256"));
    }

    #[test]
    fn other_kinds_are_not_checked() {
        let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "spec": {"hosts": ["*"]}});
        assert!(check(&route).is_empty());
        let gateway = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "spec": {}});
        assert!(check(&gateway).is_empty());
    }

    #[test]
    fn wildcard_host_is_refused_on_the_mesh() {
        let star = with(docs_virtual_service(), "/spec/hosts", json!(["*"]));
        assert_refused(
            &star,
            "spec.hosts[0]",
            "wildcard host * is not allowed for virtual services bound to the mesh gateway",
        );
        assert_ok(&with(
            star.clone(),
            "/spec/gateways",
            json!(["istio-system/ingressgateway"]),
        ));
        assert_refused(
            &with(
                star.clone(),
                "/spec/gateways",
                json!(["istio-system/ingressgateway", "mesh"]),
            ),
            "spec.hosts[0]",
            "wildcard host * is not allowed",
        );
        assert_refused(
            &with(star, "/spec/gateways", json!(["mesh"])),
            "spec.hosts[0]",
            "wildcard host * is not allowed",
        );
        // `*.example.com` is fine on the mesh.
        assert_ok(&with(
            docs_virtual_service(),
            "/spec/hosts",
            json!(["*.example.com"]),
        ));
    }

    #[test]
    fn hosts() {
        let vs = |hosts: Value| with(docs_virtual_service(), "/spec/hosts", hosts);
        assert_refused(
            &vs(json!(["Shop_Example"])),
            "spec.hosts[0]",
            "domain name \"Shop_Example\" invalid (label \"Shop_Example\" invalid)",
        );
        assert_refused(
            &vs(json!(["shop..example.com"])),
            "spec.hosts[0]",
            "invalid (label \"\" invalid)",
        );
        assert_refused(
            &vs(json!(["foo.*.com"])),
            "spec.hosts[0]",
            "(label \"*\" invalid)",
        );
        assert_refused(&vs(json!(["shop.123"])), "spec.hosts[0]", "cannot be all-numeric");
        assert_refused(&vs(json!([""])), "spec.hosts[0]", "empty domain name not allowed");
        // IP addresses, short names, trailing dots and upper case are accepted.
        assert_ok(&vs(json!(["10.0.0.1"])));
        assert_ok(&vs(json!(["pets"])));
        assert_ok(&vs(json!(["docs.example.com."])));
        assert_ok(&vs(json!(["Docs.Example.com"])));
        // Duplicates, wildcard ones included.
        assert_refused(
            &vs(json!(["docs.example.com", "*.example.com"])),
            "spec.hosts[1]",
            "duplicate hosts in virtual service: docs.example.com & *.example.com",
        );
        assert_refused(
            &with(
                vs(json!(["*", "docs.example.com"])),
                "/spec/gateways",
                json!(["shop/gw"]),
            ),
            "spec.hosts[1]",
            "duplicate hosts",
        );
        // No hosts: a delegate, which may not name gateways.
        let delegate = with(pets_virtual_service(), "/spec/hosts", json!([]));
        assert_refused(
            &delegate,
            "spec.gateways",
            "delegate virtual service must have no gateways specified",
        );
    }

    #[test]
    fn gateway_names() {
        let vs = |gateways: Value| with(docs_virtual_service(), "/spec/gateways", gateways);
        assert_ok(&vs(json!(["mesh"])));
        assert_ok(&vs(json!(["shop-gateway"])));
        assert_ok(&vs(json!(["istio-system/ingressgateway", "mesh"])));
        assert_refused(
            &vs(json!(["istio-system/Ingress_Gateway"])),
            "spec.gateways[0]",
            "invalid value for gateway name: \"Ingress_Gateway\"",
        );
        assert_refused(
            &vs(json!(["istio_system/gw"])),
            "spec.gateways[0]",
            "invalid value for namespace: \"istio_system\"",
        );
        assert_refused(
            &vs(json!(["/gw"])),
            "spec.gateways[0]",
            "config namespace and gateway name cannot be empty",
        );
        assert_refused(
            &vs(json!(["bad_gateway"])),
            "spec.gateways[0]",
            "domain name \"bad_gateway\" invalid",
        );
        // istiod stops at the first name without a `/`.
        assert_ok(&vs(json!(["mesh", "istio_system/gw"])));
        // The Gateway API semantics annotation relaxes the name.
        let annotated = with(
            vs(json!(["istio-system/Ingress_Gateway"])),
            "/metadata/annotations",
            json!({"internal.istio.io/route-semantics": "gateway"}),
        );
        assert_ok(&annotated);
    }

    #[test]
    fn matches() {
        let vs = |m: Value| with(docs_virtual_service(), "/spec/http/0/match", m);
        // istiod lets an empty uri prefix or exact through (Envoy accepts them); an empty regex not.
        assert_ok(&vs(json!([{"uri": {"prefix": ""}}])));
        assert_ok(&vs(json!([{"uri": {"exact": ""}}])));
        assert_ok(&vs(json!([{"uri": {}}])));
        assert_refused(
            &vs(json!([{"uri": {"regex": ""}}])),
            "spec.http[0].match[0].uri",
            "\"uri\": regex string match should not be empty",
        );
        assert_ok(&vs(json!([{"uri": {"regex": "^/pets/[0-9]+$"}}])));
        assert_refused(
            &vs(json!([{"uri": {"regex": "/pets/(a"}}])),
            "spec.http[0].match[0].uri",
            "error parsing regexp",
        );
        assert_refused(
            &vs(json!([{"uri": {"regex": "/pets/(?=x)"}}])),
            "spec.http[0].match[0].uri",
            "error parsing regexp",
        );
        assert_refused(
            &vs(json!([{"uri": {"regex": "a**"}}])),
            "spec.http[0].match[0].uri",
            "error parsing regexp",
        );
        assert_refused(
            &vs(json!([{"uri": {"regex": "*a"}}])),
            "spec.http[0].match[0].uri",
            "error parsing regexp",
        );
        assert_refused(
            &vs(json!([{"uri": {"regex": "[a-"}}])),
            "spec.http[0].match[0].uri",
            "error parsing regexp",
        );
        assert_refused(
            &vs(json!([{"uri": {"regex": "(a)\\1"}}])),
            "spec.http[0].match[0].uri",
            "error parsing regexp",
        );
        assert_ok(&vs(
            json!([{"uri": {"regex": "a*?b+?(?i:c){2,3}\\.[[:alpha:]]"}}]),
        ));
        assert_refused(
            &vs(json!([{"method": {"prefix": ""}}])),
            "spec.http[0].match[0].method",
            "\"method\": prefix string match should not be empty",
        );
        // Header matches: names must be valid; pseudo-headers and JWT claims allowed.
        assert_refused(
            &vs(json!([{"headers": {"x foo": {"exact": "a"}}}])),
            "spec.http[0].match[0].headers[\"x foo\"]",
            "header name x foo is not a valid header name",
        );
        assert_ok(&vs(
            json!([{"headers": {":authority": {"exact": "a"}, "x-version": {"prefix": "v"}}}]),
        ));
        assert_refused(
            &vs(json!([{"headers": {"x-version": {"prefix": ""}}}])),
            "spec.http[0].match[0].headers[\"x-version\"]",
            "\"headers\": prefix string match should not be empty",
        );
        assert_refused(&vs(json!([{"headers": {"@request.auth.claims.group": {"exact": "a"}}}])), "spec.http[0].match[0].headers[\"@request.auth.claims.group\"]", "JWT claim based routing (key: @request.auth.claims.group) is only supported for gateway, found no gateways: []");
        assert_refused(
            &vs(json!([{"port": 70000}])),
            "spec.http[0].match[0].port",
            "port number 70000 must be in the range 1..65535",
        );
        assert_refused(
            &vs(json!([{"sourceLabels": {"app/x/y": "a"}}])),
            "spec.http[0].match[0].sourceLabels[\"app/x/y\"]",
            "invalid tag key: \"app/x/y\"",
        );
        assert_refused(
            &vs(json!([{"sourceLabels": {"app": "-a"}}])),
            "spec.http[0].match[0].sourceLabels[\"app\"]",
            "invalid tag value: \"-a\"",
        );
        assert_refused(
            &vs(json!([{"sourceNamespace": "Shop_NS"}])),
            "spec.http[0].match[0].sourceNamespace",
            "sourceNamespace match Shop_NS is invalid",
        );
    }

    #[test]
    fn destinations_and_weights() {
        let vs = pets_virtual_service();
        assert_refused(
            &with(
                vs.clone(),
                "/spec/http/0/route/0/destination/host",
                json!("pets_v1.shop"),
            ),
            "spec.http[0].route[0].destination.host",
            "domain name \"pets_v1.shop\" invalid",
        );
        assert_refused(
            &with(vs.clone(), "/spec/http/0/route/0/destination/host", json!("*")),
            "spec.http[0].route[0].destination.host",
            "invalid destination host *",
        );
        for (port, shown) in [(json!(0), "0"), (json!(70000), "70000")] {
            assert_refused(
                &with(vs.clone(), "/spec/http/0/route/0/destination/port/number", port),
                "spec.http[0].route[0].destination.port.number",
                &format!("port number {shown} must be in the range 1..65535"),
            );
        }
        assert_refused(
            &with(vs.clone(), "/spec/http/0/route/0/destination/port", json!({})),
            "spec.http[0].route[0].destination.port.number",
            "port number 0 must be in the range",
        );
        assert_refused(
            &with(
                vs.clone(),
                "/spec/http/0/route/0/destination/subset",
                json!("V_1"),
            ),
            "spec.http[0].route[0].destination.subset",
            "subset name is invalid: V_1",
        );
        assert_refused(
            &with(vs.clone(), "/spec/http/0/route/1/weight", json!(-10)),
            "spec.http[0].route[1].weight",
            "weight -10 < 0",
        );
        // Weights need not add up to 100 in 1.30, but several destinations may not all be 0.
        assert_ok(&with(vs.clone(), "/spec/http/0/route/1/weight", json!(50)));
        let zero = with(
            with(vs.clone(), "/spec/http/0/route/0/weight", json!(0)),
            "/spec/http/0/route/1/weight",
            json!(0),
        );
        assert_refused(&zero, "spec.http[0].route", "total destination weight = 0");
        // One destination without a weight is fine.
        assert_ok(&without(docs_virtual_service(), "/spec/http/0/route/0/weight"));
        assert_refused(
            &without(vs.clone(), "/spec/http/0/route/0/destination"),
            "spec.http[0].route[0]",
            "destination is required",
        );
        assert_refused(
            &with(vs, "/spec/http/0/route", json!([])),
            "spec.http[0]",
            "HTTP route, redirect or direct_response is required",
        );
        assert_refused(
            &with(docs_virtual_service(), "/spec/http", json!([])),
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }

    #[test]
    fn header_operations() {
        let set = |side: &str, op: Value| {
            with(
                pets_virtual_service(),
                &format!("/spec/http/0/route/0/headers/{side}"),
                op,
            )
        };
        assert_refused(
            &set("response", json!({"set": {":status": "200"}})),
            "spec.http[0].route[0].headers.response.set[\":status\"]",
            "invalid header \":status\": header cannot have \":\" prefix",
        );
        assert_refused(
            &set("response", json!({"add": {"Host": "x"}})),
            "spec.http[0].route[0].headers.response.add[\"Host\"]",
            "invalid header \"Host\": cannot set Host header",
        );
        assert_refused(
            &set("request", json!({"remove": ["host"]})),
            "spec.http[0].route[0].headers.request.remove[0]",
            "cannot set Host header",
        );
        assert_refused(
            &set("request", json!({"set": {":path": "/x"}})),
            "spec.http[0].route[0].headers.request.set[\":path\"]",
            "header cannot have \":\" prefix",
        );
        // The authority may be set on requests, once.
        assert_ok(&set("request", json!({"set": {":authority": "pets.internal"}})));
        let twice = with(
            set("request", json!({"set": {"host": "a"}})),
            "/spec/http/0/headers",
            json!({"request": {"set": {":authority": "a"}}}),
        );
        assert_ok(&twice); // per route destination and per route are separate places
        let twice = with(
            pets_virtual_service(),
            "/spec/http/0/headers",
            json!({"request": {"set": {":authority": "a", "host": "b"}}}),
        );
        assert_refused(
            &twice,
            "spec.http[0].headers.request",
            "authority header cannot be set multiple times",
        );
        assert_refused(
            &set("response", json!({"set": {"": "x"}})),
            "spec.http[0].route[0].headers.response.set[\"\"]",
            "header name cannot be empty",
        );
        // istiod does not check the characters of operation header names.
        assert_ok(&set("response", json!({"set": {"x kea version": "v1"}})));
        // Header values: control characters and Envoy's %VAR% syntax.
        assert_refused(
            &set("response", json!({"set": {"x-kea": "a\u{1}b"}})),
            "spec.http[0].route[0].headers.response.set[\"x-kea\"]",
            "header value configuration a\u{1}b is invalid",
        );
        assert_refused(
            &set("response", json!({"set": {"x-kea": "100%"}})),
            "spec.http[0].route[0].headers.response.set[\"x-kea\"]",
            "header value configuration: invalid header configuration. Un-escaped %",
        );
        assert_refused(
            &set("response", json!({"set": {"x-kea": "%START_TIME"}})),
            "spec.http[0].route[0].headers.response.set[\"x-kea\"]",
            "Un-terminated variable expression",
        );
        assert_ok(&set(
            "response",
            json!({"set": {"x-kea": "100%% %HOSTNAME% %REQ(x-id)%"}}),
        ));
    }

    #[test]
    fn timeouts() {
        let vs = |timeout: Value| with(docs_virtual_service(), "/spec/http/0/timeout", timeout);
        // Go's time.ParseDuration (legacy jsonpb), then at least 1ms in whole milliseconds.
        for ok in ["5s", "1500ms", "1.5s", "1m30s", "2h", "0.001s", "1ms", "+5s"] {
            assert_ok(&vs(json!(ok)));
        }
        assert_refused(
            &vs(json!("5")),
            "spec.http[0].timeout",
            "error decoding configuration: bad Duration: time: missing unit in duration \"5\"",
        );
        assert_refused(
            &vs(json!("5 s")),
            "spec.http[0].timeout",
            "bad Duration: time: unknown unit \" s\" in duration \"5 s\"",
        );
        assert_refused(&vs(json!("5sec")), "spec.http[0].timeout", "unknown unit \"sec\"");
        assert_refused(
            &vs(json!("")),
            "spec.http[0].timeout",
            "bad Duration: time: invalid duration \"\"",
        );
        assert_refused(&vs(json!("PT5S")), "spec.http[0].timeout", "bad Duration");
        assert_refused(
            &vs(json!(5)),
            "spec.http[0].timeout",
            "error decoding configuration: json: cannot unmarshal number into Go value of type string",
        );
        assert_refused(
            &vs(json!("0s")),
            "spec.http[0].timeout",
            "duration must be greater than 1ms",
        );
        assert_refused(
            &vs(json!("0")),
            "spec.http[0].timeout",
            "duration must be greater than 1ms",
        );
        assert_refused(
            &vs(json!("-5s")),
            "spec.http[0].timeout",
            "duration must be greater than 1ms",
        );
        assert_refused(
            &vs(json!("500us")),
            "spec.http[0].timeout",
            "duration must be greater than 1ms",
        );
        assert_refused(
            &vs(json!("1500us")),
            "spec.http[0].timeout",
            "only durations to ms precision are supported",
        );
        assert_refused(
            &vs(json!("1.0005s")),
            "spec.http[0].timeout",
            "only durations to ms precision are supported",
        );
        // A decoding error is the only thing reported: istiod stops there.
        let both = with(vs(json!("5")), "/spec/hosts", json!(["*"]));
        assert_eq!(check(&both).len(), 1);
        // Retries.
        let retries = |r: Value| with(docs_virtual_service(), "/spec/http/0/retries", r);
        assert_ok(&retries(
            json!({"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset,503"}),
        ));
        assert_refused(
            &retries(json!({"attempts": 3, "perTryTimeout": "0.5ms"})),
            "spec.http[0].retries.perTryTimeout",
            "duration must be greater than 1ms",
        );
        assert_refused(
            &retries(json!({"attempts": 0, "perTryTimeout": "2s"})),
            "spec.http[0].retries",
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
        assert_refused(
            &retries(json!({"attempts": -1})),
            "spec.http[0].retries.attempts",
            "attempts cannot be negative",
        );
        assert_refused(
            &retries(json!({"attempts": 2, "retryOn": "5xx,sometimes"})),
            "spec.http[0].retries.retryOn",
            "\"sometimes\" is not a valid retryOn policy",
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_parse_duration("1h2m3.5s"), Ok(3_723_500_000_000));
        assert_eq!(go_parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(go_parse_duration("5.s"), Ok(5_000_000_000));
        assert_eq!(go_parse_duration("1\u{b5}s"), Ok(1_000));
        assert_eq!(go_parse_duration("-1.5ms"), Ok(-1_500_000));
        assert!(go_parse_duration(".s").is_err());
        assert!(go_parse_duration("s").is_err());
        assert!(go_parse_duration("3000000h").is_err()); // overflow
        assert_eq!(go_parse_duration("2562047h"), Ok(2_562_047 * 3_600_000_000_000));
    }

    #[test]
    fn decoding_of_numbers_and_enums() {
        assert_refused(
            &with(pets_virtual_service(), "/spec/http/0/route/0/weight", json!(3_000_000_000u64)),
            "spec.http[0].route[0].weight",
            "error decoding configuration: json: cannot unmarshal number 3000000000 into Go value of type int32",
        );
        assert_refused(
            &with(
                pets_virtual_service(),
                "/spec/http/0/route/0/destination/port/number",
                json!(-1),
            ),
            "spec.http[0].route[0].destination.port.number",
            "cannot unmarshal number -1 into Go value of type uint32",
        );
        assert_refused(
            &with(wasm_plugin(), "/spec/phase", json!("LATE")),
            "spec.phase",
            "error decoding configuration: unknown value",
        );
        assert_refused(
            &with(wasm_plugin(), "/spec/priority", json!(1.5)),
            "spec.priority",
            "cannot unmarshal number 1.5 into Go value of type int32",
        );
        // jsonpb takes quoted numbers.
        assert_ok(&with(wasm_plugin(), "/spec/priority", json!("-5")));
    }

    #[test]
    fn other_http_route_checks() {
        let route =
            |key: &str, value: Value| with(docs_virtual_service(), &format!("/spec/http/0/{key}"), value);
        assert_refused(
            &route("redirect", json!({"uri": "/x"})),
            "spec.http[0]",
            "HTTP route cannot contain both route and redirect",
        );
        let redirect = without(
            route("redirect", json!({"uri": "/x", "redirectCode": 200})),
            "/spec/http/0/route",
        );
        assert_refused(
            &redirect,
            "spec.http[0].redirect",
            "200 is not a valid redirect code, must be 3xx",
        );
        let redirect = without(route("redirect", json!({})), "/spec/http/0/route");
        assert_refused(
            &redirect,
            "spec.http[0].redirect",
            "redirect must specify URI, authority, scheme, or port",
        );
        let direct = without(
            route("directResponse", json!({"status": 700})),
            "/spec/http/0/route",
        );
        assert_refused(
            &direct,
            "spec.http[0].directResponse.status",
            "HTTP status 700 is not in range 200-599",
        );
        assert_refused(
            &route("rewrite", json!({})),
            "spec.http[0].rewrite",
            "rewrite must specify at least one of URI",
        );
        assert_ok(&route("rewrite", json!({"uri": "/"})));
        assert_refused(
            &route("fault", json!({})),
            "spec.http[0].fault",
            "HTTP fault injection must have an abort and/or a delay",
        );
        assert_refused(
            &route(
                "fault",
                json!({"abort": {"httpStatus": 100, "percentage": {"value": 10}}}),
            ),
            "spec.http[0].fault.abort.httpStatus",
            "HTTP status 100 is not in range 200-599",
        );
        assert_refused(
            &route("fault", json!({"delay": {"fixedDelay": "0.1ms"}})),
            "spec.http[0].fault.delay.fixedDelay",
            "duration must be greater than 1ms",
        );
        assert_refused(
            &route(
                "fault",
                json!({"abort": {"httpStatus": 503, "percentage": {"value": 101}}}),
            ),
            "spec.http[0].fault.abort.percentage.value",
            "percentage 101 is neither 0.0, nor in range [0.0001, 100.0]",
        );
        assert_refused(
            &route("corsPolicy", json!({"allowMethods": ["FETCH"]})),
            "spec.http[0].corsPolicy.allowMethods[0]",
            "\"FETCH\" is not a supported HTTP method",
        );
        assert_refused(
            &route("corsPolicy", json!({"maxAge": "1500ms"})),
            "spec.http[0].corsPolicy.maxAge",
            "max_age duration is accurate only to seconds precision",
        );
        assert_refused(
            &route("corsPolicy", json!({"allowOrigins": [{"exact": ""}]})),
            "spec.http[0].corsPolicy.allowOrigins[0]",
            "'' is not a valid match type for CORS allow origins",
        );
        assert_refused(
            &route("mirror", json!({"host": "Bad_Host"})),
            "spec.http[0].mirror.host",
            "domain name \"Bad_Host\" invalid",
        );
        assert_refused(
            &route("mirrorPercentage", json!({"value": 150})),
            "spec.http[0].mirrorPercentage.value",
            "mirror_percentage must have a max value of 100 (it has 150.000000)",
        );
        assert_refused(
            &route("delegate", json!({"name": "d", "namespace": "shop"})),
            "spec.http[0].route",
            "root HTTP route docs must not specify route",
        );
        assert_refused(
            &with(docs_virtual_service(), "/spec/exportTo", json!(["~"])),
            "spec.exportTo[0]",
            "exportTo ~ (none) is not allowed for Istio configuration objects",
        );
        assert_refused(
            &with(docs_virtual_service(), "/spec/exportTo", json!(["shop", "."])),
            "spec.exportTo[1]",
            "duplicate entries in exportTo: . and current namespace shop",
        );
        assert_refused(
            &with(docs_virtual_service(), "/spec/exportTo", json!(["*", "shop"])),
            "spec.exportTo",
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }

    #[test]
    fn tcp_and_tls_routes() {
        let tcp = with(
            without(docs_virtual_service(), "/spec/http"),
            "/spec/tcp",
            json!([{"match": [{"port": 99999}], "route": [{"destination": {"host": "db.shop.svc.cluster.local"}}]}]),
        );
        assert_refused(
            &tcp,
            "spec.tcp[0].match[0].port",
            "port number 99999 must be in the range 1..65535",
        );
        let tls = with(
            without(docs_virtual_service(), "/spec/http"),
            "/spec/tls",
            json!([{"match": [{"sniHosts": ["other.example.org"]}], "route": [{"destination": {"host": "docs.shop.svc.cluster.local"}}]}]),
        );
        assert_refused(&tls, "spec.tls[0].match[0].sniHosts[0]", "SNI host \"other.example.org\" is not a compatible subset of any of the virtual service hosts: [docs.example.com]");
    }

    #[test]
    fn metadata_and_top_level_fields() {
        let annotated = with(
            docs_virtual_service(),
            "/metadata/annotations",
            json!({"istio.io/dry-run": "true"}),
        );
        assert_refused(
            &annotated,
            "metadata.annotations[\"istio.io/dry-run\"]",
            "shop/docs has unsupported annotation istio.io/dry-run, please remove the annotation",
        );
        let annotated = with(
            wasm_plugin(),
            "/metadata/annotations",
            json!({"internal.istio.io/parents": "x"}),
        );
        assert_refused(
            &annotated,
            "metadata.annotations[\"internal.istio.io/parents\"]",
            "\"internal.istio.io/parents\" annotation found, this may not be set by users",
        );
        let extra = with(wasm_plugin(), "/data", json!({}));
        assert_refused(
            &extra,
            "data",
            "unknown field \"data\" on WasmPlugin resource shop/kea-validate",
        );
    }

    #[test]
    fn wasm_plugin_url() {
        let plugin = |url: &str| with(wasm_plugin(), "/spec/url", json!(url));
        assert_refused(
            &plugin("ftp://example.com/validate.wasm"),
            "spec.url",
            "url contains unsupported scheme: ftp",
        );
        assert_refused(
            &plugin("s3://bucket/validate.wasm"),
            "spec.url",
            "url contains unsupported scheme: s3",
        );
        // `host:port/path` without a scheme reads as the scheme `localhost`.
        assert_refused(
            &plugin("localhost:5000/validate"),
            "spec.url",
            "url contains unsupported scheme: localhost",
        );
        assert_refused(&plugin(""), "spec.url", "url field needs to be set");
        assert_refused(
            &plugin("https://example.com/%zz"),
            "spec.url",
            "failed to parse url: parse \"https://example.com/%zz\": invalid URL escape \"%zz\"",
        );
        assert_refused(
            &plugin("oci://ghcr.io/kea\tx"),
            "spec.url",
            "net/url: invalid control character in URL",
        );
        // A URL Go cannot parse is retried as `http://` + it: a bad port or host then reads as
        // `http://oci:/...` and passes.
        assert_ok(&plugin("oci://ghcr.io:port/kea"));
        assert_ok(&plugin("https://ex ample.com/x"));
        assert_eq!(strict_parse_url("oci://ghcr.io:port/kea").as_deref(), Ok("http"));
        assert_eq!(
            go_url_parse("oci://ghcr.io:port/kea", true),
            Err("invalid port \":port\" after host".to_string())
        );
        assert_eq!(
            go_url_parse("https://ex ample.com/x", true),
            Err("invalid character \" \" in host name".to_string())
        );
        assert_ok(&plugin("OCI://ghcr.io/kea/validate"));
    }

    #[test]
    fn wasm_plugin_fields() {
        assert_refused(
            &with(wasm_plugin(), "/spec/sha256", json!("abc")),
            "spec.sha256",
            "sha256 field must be 64 characters long",
        );
        assert_refused(
            &with(
                wasm_plugin(),
                "/spec/sha256",
                json!("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
            ),
            "spec.sha256",
            "sha256 field must match [a-f0-9]{64} pattern",
        );
        let both = with(
            wasm_plugin(),
            "/spec/targetRefs",
            json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]),
        );
        assert_refused(
            &both,
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
        let with_ref = |r: Value| {
            with(
                without(wasm_plugin(), "/spec/selector"),
                "/spec/targetRefs",
                json!([r]),
            )
        };
        assert_refused(
            &with_ref(json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"})),
            "spec.targetRefs[0]",
            "targetRef must be to one of [core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass] but was gateway.networking.k8s.io/HTTPRoute",
        );
        assert_refused(
            &with_ref(json!({"kind": "Gateway", "name": "gw"})),
            "spec.targetRefs[0]",
            "but was /Gateway",
        );
        assert_ok(&with_ref(json!({"kind": "Service", "name": "pets"})));
        assert_refused(
            &with_ref(json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": ""})),
            "spec.targetRefs[0].name",
            "targetRef name must be set",
        );
        assert_refused(
            &with_ref(
                json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "other"}),
            ),
            "spec.targetRefs[0].namespace",
            "cross namespace referencing is not supported",
        );
        // The selector: istiod refuses empty keys and wildcards only (label syntax is not checked).
        let labels = |l: Value| with(wasm_plugin(), "/spec/selector/matchLabels", l);
        assert_refused(
            &labels(json!({"": "pets"})),
            "spec.selector.matchLabels[\"\"]",
            "empty key is not supported in selector: \"=pets\"",
        );
        assert_refused(
            &labels(json!({"app*": "pets"})),
            "spec.selector.matchLabels[\"app*\"]",
            "wildcard is not supported in selector: \"app*=pets\"",
        );
        assert_refused(
            &labels(json!({"app": "pets-*"})),
            "spec.selector.matchLabels[\"app\"]",
            "wildcard is not supported in selector",
        );
        assert_ok(&labels(json!({"not a/valid/key": "x y"})));
        // vmConfig and match.
        let vm = |env: Value| with(wasm_plugin(), "/spec/vmConfig", json!({"env": env}));
        assert_refused(
            &vm(json!([{"name": "A", "value": "1"}, {"name": "A"}])),
            "spec.vmConfig.env[1]",
            "duplicate env",
        );
        assert_refused(
            &vm(json!([{"name": "A", "valueFrom": "HOST", "value": "1"}])),
            "spec.vmConfig.env[0]",
            "value may only be set when valueFrom is INLINE",
        );
        assert_ok(&vm(
            json!([{"name": "A", "valueFrom": "HOST"}, {"name": "B", "value": "x"}]),
        ));
        assert_refused(
            &with(
                wasm_plugin(),
                "/spec/match",
                json!([{"mode": "SERVER", "ports": [{"number": 0}]}]),
            ),
            "spec.match[0].ports[0].number",
            "spec.Match[0].Ports[0] is out of range: 0",
        );
        assert_refused(
            &with(wasm_plugin(), "/spec/pluginName", json!("x".repeat(257))),
            "spec.pluginName",
            "pluginName field must be less than 255 characters long",
        );
    }
}
