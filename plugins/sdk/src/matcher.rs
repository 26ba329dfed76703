//! Rule matching shared by every plugin: one config per gateway holds `rules`, each with a `match`
//! block; the first rule whose match holds applies to a request.
//!
//! A match block may name hosts (exact or `*.suffix`), a path prefix (segment-aware), an
//! OpenAPI-style path template (`/pets/{petId}`, `/files/{name}.{ext}`), methods and Envoy route
//! names. Every condition given must hold; an empty block matches everything.

use serde::{Deserialize, Serialize};

/// What a rule's `match` block says, as written in the plugin configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchSpec {
    /// Hosts (`:authority` without port), exact or `*.example.com`; `*` matches any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Path prefix. `/api` matches `/api`, `/api/` and `/api/x` but not `/apiary`; a prefix that
    /// ends in `/` matches any path starting with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// OpenAPI path template, e.g. `/pets/{petId}`; each `{name}` matches one non-empty segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_template: Option<String>,
    /// HTTP methods, case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Envoy route names (the `name` of a route in the route configuration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_names: Vec<String>,
}

/// Why a match block was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("pathPrefix {0:?} must start with '/'")]
    PrefixNotAbsolute(String),
    #[error("pathTemplate {0:?} must start with '/'")]
    TemplateNotAbsolute(String),
    #[error("pathTemplate {template:?}: {reason}")]
    BadTemplate { template: String, reason: &'static str },
    #[error("host {0:?} is not a host name or *.suffix wildcard")]
    BadHost(String),
    #[error("method {0:?} is not an HTTP method token")]
    BadMethod(String),
}

/// The facts about a request that rules look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestView<'a> {
    /// `:authority`, possibly with a port.
    pub authority: &'a str,
    /// `:path` without the query string.
    pub path: &'a str,
    pub method: &'a str,
    /// Envoy's `route_name` property; only fetched when some rule needs it.
    pub route_name: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

impl HostPattern {
    fn parse(raw: &str) -> Result<Self, MatchError> {
        let host = raw.trim().to_ascii_lowercase();
        let valid =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
        if host == "*" {
            Ok(Self::Any)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if valid(suffix) {
                Ok(Self::Suffix(format!(".{suffix}")))
            } else {
                Err(MatchError::BadHost(raw.to_string()))
            }
        } else if valid(&host) {
            Ok(Self::Exact(host))
        } else {
            Err(MatchError::BadHost(raw.to_string()))
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact.eq_ignore_ascii_case(host),
            Self::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// One piece of a template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Param(String),
}

/// A compiled OpenAPI path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Vec<Piece>>,
}

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, MatchError> {
        let bad = |reason| MatchError::BadTemplate {
            template: template.to_string(),
            reason,
        };
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| MatchError::TemplateNotAbsolute(template.into()))?;
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let mut pieces = Vec::new();
            let mut remaining = raw;
            while !remaining.is_empty() {
                match remaining.find('{') {
                    Some(0) => {
                        let close = remaining.find('}').ok_or_else(|| bad("unclosed '{'"))?;
                        let name = remaining.get(1..close).unwrap_or_default();
                        if name.is_empty() || name.contains('{') {
                            return Err(bad("empty or nested parameter name"));
                        }
                        if matches!(pieces.last(), Some(Piece::Param(_))) {
                            return Err(bad("two parameters without a literal between them"));
                        }
                        pieces.push(Piece::Param(name.to_string()));
                        remaining = remaining.get(close + 1..).unwrap_or_default();
                    }
                    Some(open) => {
                        let literal = remaining.get(..open).unwrap_or_default();
                        if literal.contains('}') {
                            return Err(bad("'}' without '{'"));
                        }
                        pieces.push(Piece::Literal(literal.to_string()));
                        remaining = remaining.get(open..).unwrap_or_default();
                    }
                    None => {
                        if remaining.contains('}') {
                            return Err(bad("'}' without '{'"));
                        }
                        pieces.push(Piece::Literal(remaining.to_string()));
                        remaining = "";
                    }
                }
            }
            segments.push(pieces);
        }
        Ok(Self { segments })
    }

    /// Number of template parameters; literal templates rank before templated ones.
    pub fn param_count(&self) -> usize {
        self.segments
            .iter()
            .flatten()
            .filter(|p| matches!(p, Piece::Param(_)))
            .count()
    }

    /// Matches a path (without query) and returns the raw, still percent-encoded parameter values.
    pub fn captures<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let rest = path.strip_prefix('/')?;
        let mut captures = Vec::new();
        let mut parts = rest.split('/');
        for pieces in &self.segments {
            let segment = parts.next()?;
            match_segment(pieces, segment, &mut captures)?;
        }
        parts.next().is_none().then_some(captures)
    }

    pub fn matches(&self, path: &str) -> bool {
        self.captures(path).is_some()
    }
}

/// Matches one path segment against literal/parameter pieces. A parameter is non-empty and
/// ends at an occurrence of the next literal; later occurrences are tried when the rest does not
/// match (`{name}.json` matches `a.json.json` with `name = a.json`).
fn match_segment<'t, 'p>(
    pieces: &'t [Piece],
    segment: &'p str,
    out: &mut Vec<(&'t str, &'p str)>,
) -> Option<()> {
    let Some((piece, tail)) = pieces.split_first() else {
        return segment.is_empty().then_some(());
    };
    match piece {
        Piece::Literal(literal) => match_segment(tail, segment.strip_prefix(literal.as_str())?, out),
        Piece::Param(name) => match tail.first() {
            None => {
                (!segment.is_empty()).then(|| out.push((name.as_str(), segment)))?;
                Some(())
            }
            Some(Piece::Literal(next)) => {
                // `match_indices` yields byte offsets on character boundaries, so splitting is safe.
                for (at, _) in segment.match_indices(next.as_str()).filter(|(at, _)| *at > 0) {
                    let (value, rest) = segment.split_at(at);
                    let mark = out.len();
                    out.push((name.as_str(), value));
                    if match_segment(tail, rest, out).is_some() {
                        return Some(());
                    }
                    out.truncate(mark);
                }
                None
            }
            // Rejected when the template is parsed.
            Some(Piece::Param(_)) => None,
        },
    }
}

/// Whether a path holds dot-segments or encoded dots/slashes, which the upstream may resolve
/// to a different path than the one matched (`/public/../admin`). Such paths match no path
/// condition: a rule meant for `/public` must not apply to them.
pub fn is_ambiguous_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return true;
    }
    path.split('/').any(|segment| segment == "." || segment == "..")
}

/// A compiled match block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matcher {
    hosts: Vec<HostPattern>,
    path_prefix: Option<String>,
    path_template: Option<PathTemplate>,
    methods: Vec<String>,
    route_names: Vec<String>,
}

impl Matcher {
    pub fn compile(spec: &MatchSpec) -> Result<Self, MatchError> {
        let hosts = spec
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h))
            .collect::<Result<_, _>>()?;
        if let Some(prefix) = &spec.path_prefix {
            if !prefix.starts_with('/') {
                return Err(MatchError::PrefixNotAbsolute(prefix.clone()));
            }
        }
        let path_template = spec
            .path_template
            .as_deref()
            .map(PathTemplate::parse)
            .transpose()?;
        let methods = spec
            .methods
            .iter()
            .map(|m| {
                let valid = !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
                if valid {
                    Ok(m.to_ascii_uppercase())
                } else {
                    Err(MatchError::BadMethod(m.clone()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            hosts,
            path_prefix: spec.path_prefix.clone(),
            path_template,
            methods,
            route_names: spec.route_names.clone(),
        })
    }

    pub fn needs_route_name(&self) -> bool {
        !self.route_names.is_empty()
    }

    /// Matches every request (an empty match block).
    pub fn is_unconditional(&self) -> bool {
        *self == Self::default()
    }

    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(request.method))
        {
            return false;
        }
        if !self.hosts.is_empty() {
            let host = crate::host::split_host_port(request.authority).0;
            if !self.hosts.iter().any(|pattern| pattern.matches(host)) {
                return false;
            }
        }
        if (self.path_prefix.is_some() || self.path_template.is_some()) && is_ambiguous_path(request.path) {
            return false;
        }
        if let Some(prefix) = &self.path_prefix {
            if !prefix_matches(prefix, request.path) {
                return false;
            }
        }
        if let Some(template) = &self.path_template {
            if !template.matches(request.path) {
                return false;
            }
        }
        if !self.route_names.is_empty() {
            let Some(route) = request.route_name else {
                return false;
            };
            if !self.route_names.iter().any(|r| r == route) {
                return false;
            }
        }
        true
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// An ordered list of compiled rules; the first match wins.
#[derive(Debug, Clone)]
pub struct RuleSet<T> {
    rules: Vec<(Matcher, T)>,
    needs_route_name: bool,
}

impl<T> Default for RuleSet<T> {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            needs_route_name: false,
        }
    }
}

impl<T> RuleSet<T> {
    pub fn new(rules: Vec<(Matcher, T)>) -> Self {
        let needs_route_name = rules.iter().any(|(m, _)| m.needs_route_name());
        Self {
            rules,
            needs_route_name,
        }
    }

    /// Whether the caller must fetch the `route_name` property before matching.
    pub fn needs_route_name(&self) -> bool {
        self.needs_route_name
    }

    pub fn first_match(&self, request: &RequestView<'_>) -> Option<&T> {
        self.rules
            .iter()
            .find(|(m, _)| m.matches(request))
            .map(|(_, rule)| rule)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What any request can be given: each rule's value up to the first rule that matches every
    /// request, then `otherwise` if no rule does.
    pub fn reachable<'a>(&'a self, otherwise: &'a T) -> impl Iterator<Item = &'a T> {
        let catch_all = self.rules.iter().position(|(m, _)| m.is_unconditional());
        let rules = match catch_all {
            Some(last) => self.rules.get(..=last).unwrap_or_default(),
            None => self.rules.as_slice(),
        };
        rules
            .iter()
            .map(|(_, rule)| rule)
            .chain(catch_all.is_none().then_some(otherwise))
    }
}

/// Splits `:path` into path and query (without the `?`).
pub fn split_path(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(method: &'a str, authority: &'a str, path: &'a str) -> RequestView<'a> {
        RequestView {
            authority,
            path,
            method,
            route_name: None,
        }
    }

    #[test]
    fn reachable_values_stop_at_the_first_catch_all() {
        let rule = |prefix: Option<&str>| {
            Matcher::compile(&MatchSpec {
                path_prefix: prefix.map(str::to_string),
                ..MatchSpec::default()
            })
            .unwrap()
        };
        let rules = RuleSet::new(vec![
            (rule(Some("/a")), 1),
            (rule(None), 2),
            (rule(Some("/b")), 3),
        ]);
        assert_eq!(rules.reachable(&0).collect::<Vec<_>>(), [&1, &2]);
        let rules = RuleSet::new(vec![(rule(Some("/a")), 1)]);
        assert_eq!(rules.reachable(&0).collect::<Vec<_>>(), [&1, &0]);
        assert!(rule(None).is_unconditional() && !rule(Some("/a")).is_unconditional());
    }

    fn spec(json: &str) -> Matcher {
        Matcher::compile(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn empty_match_matches_everything() {
        assert!(Matcher::default().matches(&view("GET", "x", "/")));
    }

    #[test]
    fn prefix_is_segment_aware() {
        let m = spec(r#"{"pathPrefix": "/api"}"#);
        assert!(m.matches(&view("GET", "h", "/api")));
        assert!(m.matches(&view("GET", "h", "/api/v1")));
        assert!(!m.matches(&view("GET", "h", "/apiary")));
        let slash = spec(r#"{"pathPrefix": "/api/"}"#);
        assert!(slash.matches(&view("GET", "h", "/api/x")));
        assert!(!slash.matches(&view("GET", "h", "/api")));
    }

    #[test]
    fn hosts_exact_wildcard_and_port() {
        let m = spec(r#"{"hosts": ["api.example.com", "*.corp.io"]}"#);
        assert!(m.matches(&view("GET", "API.example.com:8080", "/")));
        assert!(m.matches(&view("GET", "a.b.corp.io", "/")));
        assert!(!m.matches(&view("GET", "corp.io", "/")));
        assert!(!m.matches(&view("GET", "evil.com", "/")));
    }

    #[test]
    fn methods_and_route_names() {
        let m = spec(r#"{"methods": ["get", "HEAD"], "routeNames": ["pets"]}"#);
        let mut v = view("GET", "h", "/");
        assert!(!m.matches(&v), "route name required but unknown");
        v.route_name = Some("pets");
        assert!(m.matches(&v));
        v.method = "POST";
        assert!(!m.matches(&v));
    }

    #[test]
    fn templates_capture_parameters() {
        let t = PathTemplate::parse("/pets/{petId}/photos/{name}.{ext}").unwrap();
        assert_eq!(
            t.captures("/pets/42/photos/cat.v2.png").unwrap(),
            vec![("petId", "42"), ("name", "cat"), ("ext", "v2.png")]
        );
        assert!(t.captures("/pets//photos/a.png").is_none());
        assert!(t.captures("/pets/1/photos/a.png/more").is_none());
        assert!(t.captures("/pets/1/photos/.png").is_none());
        assert_eq!(PathTemplate::parse("/a/{x}").unwrap().param_count(), 1);
    }

    #[test]
    fn templates_backtrack_and_handle_multibyte_segments() {
        let t = PathTemplate::parse("/files/{name}.json").unwrap();
        assert_eq!(
            t.captures("/files/a.json.json").unwrap(),
            vec![("name", "a.json")]
        );
        assert_eq!(t.captures("/files/é.json").unwrap(), vec![("name", "é")]);
        assert!(t.captures("/files/.json").is_none());
        let t = PathTemplate::parse("/u/{id}").unwrap();
        assert_eq!(t.captures("/u/ümlaut").unwrap(), vec![("id", "ümlaut")]);
        assert!(PathTemplate::parse("/a}{b}").is_err());
    }

    #[test]
    fn dot_segments_and_encoded_separators_match_no_path_rule() {
        let m = spec(r#"{"pathPrefix": "/health"}"#);
        assert!(!m.matches(&view("GET", "h", "/health/../admin")));
        assert!(!m.matches(&view("GET", "h", "/health/%2e%2e/admin")));
        assert!(!m.matches(&view("GET", "h", "/health%2F..%2Fadmin")));
        assert!(m.matches(&view("GET", "h", "/health/ok..not-a-dot-segment")));
        let t = spec(r#"{"pathTemplate": "/pets/{id}"}"#);
        assert!(!t.matches(&view("GET", "h", "/pets/..")));
        assert!(
            Matcher::default().matches(&view("GET", "h", "/a/../b")),
            "no path condition, no check"
        );
    }

    #[test]
    fn invalid_specs_are_rejected_with_reason() {
        let err = |json: &str| {
            Matcher::compile(&serde_json::from_str(json).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"pathPrefix": "api"}"#).contains("must start with '/'"));
        assert!(err(r#"{"pathTemplate": "/a/{b"}"#).contains("unclosed"));
        assert!(err(r#"{"pathTemplate": "/a/{x}{y}"}"#).contains("two parameters"));
        assert!(err(r#"{"hosts": ["bad host"]}"#).contains("bad host"));
        assert!(err(r#"{"methods": ["G T"]}"#).contains("G T"));
        assert!(
            serde_json::from_str::<MatchSpec>(r#"{"path": "/"}"#).is_err(),
            "unknown field"
        );
    }

    #[test]
    fn first_match_wins() {
        let rules = RuleSet::new(vec![
            (spec(r#"{"pathPrefix": "/health"}"#), "skip"),
            (spec(r#"{}"#), "all"),
        ]);
        assert_eq!(rules.first_match(&view("GET", "h", "/health")), Some(&"skip"));
        assert_eq!(rules.first_match(&view("GET", "h", "/x")), Some(&"all"));
        assert_eq!(split_path("/a?b=1"), ("/a", Some("b=1")));
    }
}
