//! Is an object KEA writes accepted by a real cluster? Checks one object against the real,
//! vendored Istio and Gateway API CRDs (`manifests/third-party/`) the way an up-to-date API
//! server and istiod would: pruning, defaulting, the OpenAPI schema, the CRDs' CEL rules
//! (`x-kubernetes-validations`, which the 1.20 test API server ignores) and istiod's validating
//! webhook.

mod cel;
pub mod istio;
mod schema;

use crate::kube::{yaml_documents, THIRD_PARTY_CRD_FILES};
use anyhow::{bail, Context};
use schema::JsonPath;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// One reason a real cluster would refuse (or silently change) an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where in the object, as a JSON path (`spec.rules[0].timeouts.request`).
    pub path: String,
    /// Why, in the words of the rule that refuses it.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The CRDs a check knows: per (group, kind), every version with its schema.
#[derive(Debug)]
pub struct Crds {
    kinds: HashMap<(String, String), Vec<CrdVersion>>,
    rules: cel::RuleEngine,
}

#[derive(Debug)]
struct CrdVersion {
    name: String,
    served: bool,
    /// `schema.openAPIV3Schema`, as written.
    schema: Value,
}

impl Crds {
    /// Loads the vendored CRD files ([`THIRD_PARTY_CRD_FILES`]), unmodified.
    pub fn vendored() -> anyhow::Result<Crds> {
        let root = crate::repo_root();
        let mut documents = Vec::new();
        for file in THIRD_PARTY_CRD_FILES {
            documents.extend(yaml_documents(&root.join(file))?);
        }
        Crds::from_documents(&documents)
    }

    /// The CRDs among `documents` (other kinds are ignored).
    pub fn from_documents(documents: &[Value]) -> anyhow::Result<Crds> {
        let mut kinds: HashMap<(String, String), Vec<CrdVersion>> = HashMap::new();
        for crd in documents {
            if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let text = |pointer: &str| -> anyhow::Result<String> {
                crd.pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .with_context(|| format!("CRD without {pointer}"))
            };
            let (group, kind) = (text("/spec/group")?, text("/spec/names/kind")?);
            let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) else {
                bail!("CRD {kind}.{group} without spec.versions");
            };
            let entry = kinds.entry((group.clone(), kind.clone())).or_default();
            for version in versions {
                let name = version
                    .get("name")
                    .and_then(Value::as_str)
                    .context("version without a name")?;
                let schema = version
                    .pointer("/schema/openAPIV3Schema")
                    .cloned()
                    .with_context(|| format!("{kind}.{group}/{name} without schema.openAPIV3Schema"))?;
                entry.push(CrdVersion {
                    name: name.to_string(),
                    served: version.get("served").and_then(Value::as_bool) == Some(true),
                    schema,
                });
            }
        }
        Ok(Crds {
            kinds,
            rules: cel::RuleEngine::new()?,
        })
    }

    /// Every reason a current API server (+ istiod) would refuse or silently alter `object` (a
    /// full object with apiVersion, kind, metadata, spec). Empty = accepted.
    ///
    /// In kube-apiserver's order: find the served version; prune undeclared fields (each is a
    /// violation: the server would drop it); apply the schema's defaults; validate the defaulted
    /// object against the OpenAPI schema; evaluate the CEL rules; then istiod's webhook checks.
    pub fn check(&self, object: &Value) -> Vec<Violation> {
        let top = |path: &str, message: String| {
            vec![Violation {
                path: path.to_string(),
                message,
            }]
        };
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        let Some((group, version)) = api_version.split_once('/') else {
            return top(
                "apiVersion",
                format!("{api_version:?} is not group/version: no CRD serves it"),
            );
        };
        let Some(versions) = self.kinds.get(&(group.to_string(), kind.to_string())) else {
            return top("kind", format!("no CRD for kind {kind:?} in group {group:?}"));
        };
        let Some(crd) = versions.iter().find(|v| v.name == version) else {
            return top("apiVersion", format!("{kind}.{group} has no version {version:?}"));
        };
        if !crd.served {
            return top(
                "apiVersion",
                format!("{kind}.{group} version {version} is not served"),
            );
        }
        if !object.get("metadata").is_some_and(Value::is_object) {
            return top("metadata", "must be an object".to_string());
        }

        let root = JsonPath::root();
        let mut violations = Vec::new();
        let mut defaulted = object.clone();
        schema::prune(&mut defaulted, &crd.schema, &root, &mut violations);
        schema::apply_defaults(&mut defaulted, &crd.schema, &root);
        schema::validate(&defaulted, &crd.schema, &root, &mut violations);
        self.rules.check(&defaulted, &crd.schema, &root, &mut violations);
        violations.extend(istio::check(&defaulted));
        violations
    }

    /// Every `x-kubernetes-validations` rule of every version, with where it is declared.
    #[cfg(test)]
    fn rules(&self) -> Vec<(String, String)> {
        fn walk(node: &Value, at: &str, out: &mut Vec<(String, String)>) {
            match node {
                Value::Object(map) => {
                    for rule in map
                        .get("x-kubernetes-validations")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(rule) = rule.get("rule").and_then(Value::as_str) {
                            out.push((at.to_string(), rule.to_string()));
                        }
                    }
                    for (key, child) in map {
                        walk(child, &format!("{at}/{key}"), out);
                    }
                }
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, item)| walk(item, &format!("{at}/{i}"), out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for ((group, kind), versions) in &self.kinds {
            for version in versions {
                walk(
                    &version.schema,
                    &format!("{kind}.{group}/{}", version.name),
                    &mut out,
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    fn crds() -> &'static Crds {
        static CRDS: OnceLock<Crds> = OnceLock::new();
        CRDS.get_or_init(|| Crds::vendored().expect("the vendored CRDs load"))
    }

    /// The violations of `object`, printed when a test fails.
    fn check(object: &Value) -> Vec<Violation> {
        let violations = crds().check(object);
        for violation in &violations {
            eprintln!("{violation}");
        }
        violations
    }

    fn assert_accepted(object: &Value) {
        let violations = check(object);
        assert!(
            violations.is_empty(),
            "expected no violations, got {violations:#?}"
        );
    }

    /// Asserts a violation at `path` whose message contains `needle`.
    fn assert_violation(object: &Value, path: &str, needle: &str) {
        let violations = check(object);
        assert!(
            violations
                .iter()
                .any(|v| v.path == path && v.message.contains(needle)),
            "expected a violation at {path} containing {needle:?}, got {violations:#?}"
        );
    }

    fn http_route() -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "pets", "namespace": "shop"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "hostnames": ["shop.example.com"],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/pets"}}],
                    "backendRefs": [
                        {"name": "pets", "port": 8080, "weight": 90},
                        {"name": "pets-v2", "port": 8080, "weight": 10}
                    ],
                    "timeouts": {"request": "5s"},
                    "filters": [{
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"set": [{"name": "x-kea-backend-version", "value": "v1"}]}
                    }]
                }]
            }
        })
    }

    /// `object` with the member at `pointer` set (its parent must exist).
    fn with(mut object: Value, pointer: &str, value: Value) -> Value {
        let (parent, name) = pointer.rsplit_once('/').expect("a JSON pointer");
        match object
            .pointer_mut(parent)
            .expect("the parent exists in the fixture")
        {
            Value::Object(map) => {
                map.insert(name.to_string(), value);
            }
            Value::Array(items) => items[name.parse::<usize>().expect("an index")] = value,
            other => panic!("cannot set {name} in {other}"),
        }
        object
    }

    #[test]
    fn valid_http_route_is_accepted() {
        assert_accepted(&http_route());
        let v1beta1 = with(
            http_route(),
            "/apiVersion",
            json!("gateway.networking.k8s.io/v1beta1"),
        );
        assert_accepted(&v1beta1);
    }

    #[test]
    fn backend_ref_filters_are_accepted() {
        let route = with(
            http_route(),
            "/spec/rules/0/backendRefs/0/filters",
            json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-a", "value": "b"}]}}]),
        );
        assert_accepted(&route);
    }

    #[test]
    fn wildcard_only_hostname_breaks_the_pattern() {
        let route = with(http_route(), "/spec/hostnames", json!(["*"]));
        assert_violation(&route, "spec.hostnames[0]", "should match");
    }

    #[test]
    fn timeouts_allow_at_most_five_digits_per_unit() {
        let route = with(http_route(), "/spec/rules/0/timeouts/request", json!("100500ms"));
        assert_violation(&route, "spec.rules[0].timeouts.request", "should match");
        let route = with(
            http_route(),
            "/spec/rules/0/timeouts/request",
            json!("1m40s500ms"),
        );
        assert_accepted(&route);
    }

    #[test]
    fn path_values_refused_by_the_cel_rules() {
        for (value, message) in [
            ("/a//b", "must not contain '//'"),
            ("/a%2Fb", "must not contain '%2F'"),
            ("/a#b", "must not contain '#'"),
            ("/a/./b", "must not contain '/./'"),
        ] {
            let route = with(http_route(), "/spec/rules/0/matches/0/path/value", json!(value));
            assert_violation(&route, "spec.rules[0].matches[0].path", message);
        }
    }

    #[test]
    fn backend_request_timeout_longer_than_request_is_refused() {
        let route = with(
            http_route(),
            "/spec/rules/0/timeouts",
            json!({"request": "1s", "backendRequest": "2s"}),
        );
        assert_violation(
            &route,
            "spec.rules[0].timeouts",
            "backendRequest timeout cannot be longer than request",
        );
    }

    #[test]
    fn defaults_apply_before_the_rules() {
        // No group, no kind: the defaults ("" and Service) make the port rule apply, and the
        // port is there.
        let route = with(
            http_route(),
            "/spec/rules/0/backendRefs",
            json!([{"name": "pets", "port": 8080}]),
        );
        assert_accepted(&route);
        // Without the port, the defaulted kind (Service) requires one.
        let route = with(
            http_route(),
            "/spec/rules/0/backendRefs",
            json!([{"name": "pets"}]),
        );
        assert_violation(
            &route,
            "spec.rules[0].backendRefs[0]",
            "Must have port for Service reference",
        );
    }

    #[test]
    fn undeclared_fields_are_pruning_violations() {
        let route = with(
            http_route(),
            "/spec/rules/0/sessionPersistence",
            json!({"sessionName": "s"}),
        );
        assert_violation(
            &route,
            "spec.rules[0].sessionPersistence",
            "not declared in the schema",
        );
        let mut route = http_route();
        route["spec"]["foo"] = json!(1);
        assert_violation(&route, "spec.foo", "not declared in the schema");
    }

    #[test]
    fn unknown_kinds_and_versions_are_refused() {
        assert_violation(&with(http_route(), "/kind", json!("TCPRoute")), "kind", "no CRD");
        assert_violation(
            &with(http_route(), "/apiVersion", json!("gateway.networking.k8s.io/v9")),
            "apiVersion",
            "no version",
        );
    }

    fn wasm_plugin() -> Value {
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "kea-auth", "namespace": "istio-system"},
            "spec": {
                "url": "oci://registry.example/kea/auth:1",
                "phase": "AUTHN",
                "priority": 100,
                "failStrategy": "FAIL_CLOSE",
                "type": "HTTP",
                "selector": {"matchLabels": {"istio": "ingressgateway"}},
                "pluginConfig": {"issuer": "https://idp.example", "audiences": ["shop"], "nested": {"a": 1}}
            }
        })
    }

    #[test]
    fn valid_wasm_plugin_is_accepted() {
        assert_accepted(&wasm_plugin());
        assert_accepted(&with(wasm_plugin(), "/spec/failStrategy", json!("FAIL_RELOAD")));
        // No scheme: the rule retries with http://.
        assert_accepted(&with(
            wasm_plugin(),
            "/spec/url",
            json!("registry.example/kea/auth:1"),
        ));
    }

    #[test]
    fn wasm_plugin_with_selector_and_target_refs_is_refused() {
        let mut plugin = wasm_plugin();
        plugin["spec"]["targetRefs"] =
            json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]);
        assert_violation(&plugin, "spec", "only one of targetRefs or selector can be set");
    }

    #[test]
    fn wasm_plugin_enum_and_url_scheme() {
        assert_violation(
            &with(wasm_plugin(), "/spec/failStrategy", json!("BOGUS")),
            "spec.failStrategy",
            "Unsupported value",
        );
        assert_violation(
            &with(wasm_plugin(), "/spec/url", json!("ftp://x")),
            "spec.url",
            "url must have schema one of",
        );
    }

    #[test]
    fn wasm_plugin_selector_labels_may_not_hold_wildcards() {
        let plugin = with(wasm_plugin(), "/spec/selector/matchLabels", json!({"app": "a*"}));
        assert_violation(
            &plugin,
            "spec.selector.matchLabels[app]",
            "wildcard not allowed in label value match",
        );
        // The key rule iterates the map's keys, unescaped.
        let plugin = with(
            wasm_plugin(),
            "/spec/selector/matchLabels",
            json!({"app*": "a", "x-y.z/w": "b"}),
        );
        let violations = check(&plugin);
        // The CRD's rule, and istiod's own check of the same key; nothing about the other key.
        assert!(
            violations.contains(&Violation {
                path: "spec.selector.matchLabels".to_string(),
                message: "wildcard not allowed in label key match".to_string()
            }),
            "{violations:?}"
        );
        assert!(
            violations.iter().all(|v| v.message.contains("app*")
                || v.message == "wildcard not allowed in label key match"),
            "{violations:?}"
        );
    }

    fn virtual_service(api_version: &str) -> Value {
        json!({
            "apiVersion": api_version,
            "kind": "VirtualService",
            "metadata": {"name": "pets", "namespace": "shop"},
            "spec": {
                "hosts": ["shop.example.com"],
                "gateways": ["istio-system/ingressgateway"],
                "http": [{
                    "name": "pets",
                    "match": [{"uri": {"prefix": "/pets/"}}],
                    "route": [{
                        "destination": {"host": "pets.shop.svc.cluster.local", "port": {"number": 8080}},
                        "weight": 100,
                        "headers": {"response": {"set": {"x-kea-backend-version": "v1"}}}
                    }],
                    "timeout": "5s"
                }]
            }
        })
    }

    #[test]
    fn valid_virtual_service_is_accepted() {
        assert_accepted(&virtual_service("networking.istio.io/v1beta1"));
        assert_accepted(&virtual_service("networking.istio.io/v1"));
        assert_accepted(&virtual_service("networking.istio.io/v1alpha3"));
    }

    #[test]
    fn virtual_service_timeout_below_a_millisecond_is_refused() {
        let service = with(
            virtual_service("networking.istio.io/v1beta1"),
            "/spec/http/0/timeout",
            json!("0.5ms"),
        );
        assert_violation(
            &service,
            "spec.http[0].timeout",
            "must be a valid duration greater than 1ms",
        );
    }

    #[test]
    fn virtual_service_string_match_takes_one_kind() {
        let service = with(
            virtual_service("networking.istio.io/v1"),
            "/spec/http/0/match/0/uri",
            json!({"prefix": "/pets/", "exact": "/pets"}),
        );
        assert_violation(&service, "spec.http[0].match[0].uri", "oneOf");
    }

    /// A small CRD exercising what the vendored ones use little: evaluation errors, transition
    /// rules, escaping, nullable, int-or-string, list types, nested defaults.
    fn widgets() -> Crds {
        let schema = json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "self.missing == 1", "message": "never shown"},
                        {"rule": "self == oldSelf", "message": "transition rules are skipped on create"},
                        {"rule": "!has(self.__namespace__) || self.__namespace__ != 'kube-system'", "message": "no kube-system"},
                        {"rule": "!has(self.ratio) || self.ratio < 1.0"}
                    ],
                    "properties": {
                        "missing": {"type": "integer"},
                        "namespace": {"type": "string"},
                        "ratio": {"type": "number"},
                        "note": {"type": "string", "nullable": true},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {"name": {"type": "string"}, "number": {"type": "integer"}}}
                        },
                        "limits": {
                            "type": "object",
                            "default": {},
                            "properties": {"burst": {"type": "integer", "default": 5, "maximum": 10}}
                        }
                    }
                }
            }
        });
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "spec": {
                "group": "example.kea.io",
                "names": {"kind": "Widget"},
                "versions": [
                    {"name": "v1", "served": true, "schema": {"openAPIV3Schema": schema}},
                    {"name": "v0", "served": false, "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        });
        Crds::from_documents(&[crd]).expect("the test CRD loads")
    }

    fn widget(spec: Value) -> Value {
        json!({"apiVersion": "example.kea.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
    }

    #[test]
    fn rules_that_cannot_be_evaluated_are_violations() {
        let crds = widgets();
        let violations = crds.check(&widget(json!({})));
        assert_eq!(violations.len(), 1, "{violations:#?}");
        assert_eq!(violations[0].path, "spec");
        assert!(
            violations[0]
                .message
                .starts_with("could not evaluate rule `self.missing == 1`"),
            "{violations:#?}"
        );
        assert!(crds.check(&widget(json!({"missing": 1}))).is_empty());
    }

    #[test]
    fn schema_details_kubernetes_adds() {
        let crds = widgets();
        // `spec` plus `missing: 1`, which the first rule needs.
        let check = |mut spec: Value| {
            spec["missing"] = json!(1);
            crds.check(&widget(spec))
        };
        // Escaped reserved words, numbers as doubles, nullable, int-or-string, nested defaults.
        assert!(check(json!({"namespace": "shop", "ratio": 0, "note": null, "port": "http"})).is_empty());
        assert!(check(json!({"port": 8080})).is_empty());
        let violations = check(json!({"namespace": "kube-system"}));
        assert_eq!(
            violations.iter().map(|v| v.message.as_str()).collect::<Vec<_>>(),
            ["no kube-system"]
        );
        assert_eq!(
            check(json!({"ratio": 2}))[0].message,
            "failed rule: !has(self.ratio) || self.ratio < 1.0"
        );
        assert_eq!(check(json!({"port": true}))[0].path, "spec.port");
        // The default object gets its own defaults, then validation runs on them.
        assert!(check(json!({"limits": {"burst": 11}}))[0]
            .message
            .contains("less than or equal to 10"));
        // A null of a non-nullable property is dropped (and defaulted), not refused.
        assert!(check(json!({"limits": null, "namespace": null})).is_empty());
        // List types.
        assert_eq!(check(json!({"tags": ["a", "b", "a"]}))[0].path, "spec.tags[2]");
        let duplicate =
            check(json!({"ports": [{"name": "http", "number": 1}, {"name": "http", "number": 2}]}));
        assert_eq!(duplicate[0].path, "spec.ports[1]");
        // An unserved version.
        let unserved =
            crds.check(&json!({"apiVersion": "example.kea.io/v0", "kind": "Widget", "metadata": {}}));
        assert!(unserved[0].message.contains("not served"));
    }

    #[test]
    fn every_vendored_rule_compiles() {
        let rules = crds().rules();
        assert!(
            rules.len() >= 100,
            "expected the vendored CRDs' rules, found {}",
            rules.len()
        );
        let failures: Vec<String> = rules
            .iter()
            .filter_map(|(at, rule)| match crds().rules.compile(rule).as_ref() {
                Ok(_) => None,
                Err(error) => Some(format!("{at}: `{rule}`: {error}")),
            })
            .collect();
        assert!(
            failures.is_empty(),
            "rules that do not compile:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn kubernetes_escapes_reserved_property_names() {
        assert_eq!(cel::escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(cel::escape("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(
            cel::escape("x-kea.io/v").as_deref(),
            Some("x__dash__kea__dot__io__slash__v")
        );
        assert_eq!(cel::escape("1st"), None);
        assert_eq!(cel::escape("a b"), None);
    }

    #[test]
    fn go_durations() {
        use super::cel::go_duration::parse;
        assert_eq!(parse("1m40s500ms"), Ok(100_500_000_000));
        assert_eq!(parse("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse(".5ms"), Ok(500_000));
        assert_eq!(parse("-2h"), Ok(-7_200_000_000_000));
        assert_eq!(parse("0"), Ok(0));
        for invalid in ["", "5", "1e3s", "1d", "s", ".s"] {
            assert!(parse(invalid).is_err(), "{invalid:?} should not parse");
        }
    }

    #[test]
    fn go_request_uris() {
        use super::cel::go_url::parse_request_uri;
        let url = parse_request_uri("oci://registry.example:5000/kea/auth:1").expect("an absolute URL");
        assert_eq!(
            (url.scheme.as_str(), url.host.as_str(), url.path.as_str()),
            ("oci", "registry.example:5000", "/kea/auth:1")
        );
        assert_eq!(
            (url.hostname(), url.port()),
            ("registry.example".to_string(), "5000".to_string())
        );
        // No scheme and not a path: not a request URI.
        assert!(parse_request_uri("registry.example/kea").is_err());
        // `host:port/...` reads as scheme `host` with an opaque part, as in Go.
        assert_eq!(
            parse_request_uri("registry.example:5000/kea").map(|u| u.scheme),
            Ok("registry.example".to_string())
        );
        assert!(parse_request_uri("http://a b/").is_err());
        assert!(parse_request_uri("/a%zz").is_err());
    }

    #[test]
    fn kubernetes_url_functions_evaluate() {
        let engine = cel::RuleEngine::new().expect("the CEL environment builds");
        for (rule, expected) in [
            (
                "url('https://a.example:8443/p?q=1').getHost() == 'a.example:8443'",
                true,
            ),
            (
                "url('https://a.example:8443/p').getHostname() == 'a.example'",
                true,
            ),
            ("url('https://a.example:8443/p').getPort() == '8443'", true),
            (
                "url('https://a.example/p%20q').getEscapedPath() == '/p%20q'",
                true,
            ),
            (
                "url('https://a.example/?k=v&k=w').getQuery()['k'] == ['v', 'w']",
                true,
            ),
            ("isURL('not a url')", false),
            ("duration('1m40s500ms') == duration('100500ms')", true),
            ("'abc'.matches(r\"\"\"^a.c$\"\"\")", true),
            ("[1, 2, 2].exists_one(x, x == 1) && size([1]) == [1].size()", true),
        ] {
            let compiled = engine.compile(rule);
            let expr = compiled.as_ref().as_ref().expect("the rule compiles");
            assert_eq!(
                engine.evaluate(expr, ::cel::Value::Null),
                Ok(::cel::Value::Bool(expected)),
                "{rule}"
            );
        }
    }
}
