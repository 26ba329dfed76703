//! The route table: base paths from `servers`, path templates, and which operation a request is.
//!
//! Concrete paths win over templated ones (OpenAPI 3.0.3 §4.7.8): templates are tried from the most
//! literal to the least, segment by segment. A template variable matches one non-empty segment, or
//! part of one (`/files/{name}.{ext}`). A path whose template has no operation for the method tries
//! the next matching template; when none has it, the answer is 405 with the methods that exist.

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;

/// A path template split into segments of literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    segments: Vec<Vec<Piece>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Piece {
    Text(String),
    Var(String),
}

impl Template {
    /// Parses `/pets/{petId}`; errors say what is wrong with the template.
    pub fn parse(template: &str) -> Result<Self, String> {
        let Some(rest) = template.strip_prefix('/') else {
            return Err("a path must start with '/'".into());
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let mut pieces = Vec::new();
            let mut text = raw;
            while !text.is_empty() {
                match text.find('{') {
                    Some(0) => {
                        let end = text.find('}').ok_or("unclosed '{'")?;
                        let name = text.get(1..end).unwrap_or("");
                        if name.is_empty() || name.contains('{') {
                            return Err("empty or nested variable name".into());
                        }
                        if matches!(pieces.last(), Some(Piece::Var(_))) {
                            return Err("two variables must be separated by text".into());
                        }
                        pieces.push(Piece::Var(name.to_string()));
                        text = text.get(end + 1..).unwrap_or("");
                    }
                    found => {
                        let end = found.unwrap_or(text.len());
                        let literal = text.get(..end).unwrap_or("");
                        if literal.contains('}') {
                            return Err("'}' without '{'".into());
                        }
                        pieces.push(Piece::Text(literal.to_string()));
                        text = text.get(end..).unwrap_or("");
                    }
                }
            }
            segments.push(pieces);
        }
        Ok(Self { segments })
    }

    /// The variable names, in order.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().flatten().filter_map(|p| match p {
            Piece::Var(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Per segment: 0 when literal, 1 when it has variables. Lower sorts first (more specific).
    /// Per segment: literal before templated, then more literal text first (`{name}.json` before
    /// `{id}`). Lower sorts first (more specific).
    fn rank(&self) -> Vec<(u8, Reverse<usize>)> {
        self.segments
            .iter()
            .map(|pieces| {
                let templated = pieces.iter().any(|p| matches!(p, Piece::Var(_)));
                let literal: usize = pieces
                    .iter()
                    .map(|p| if let Piece::Text(t) = p { t.len() } else { 0 })
                    .sum();
                (u8::from(templated), Reverse(literal))
            })
            .collect()
    }

    /// The variables' values when `segments` (decoded) match.
    /// The last segment that is plain text (no variable), with its position.
    fn last_literal(&self) -> Option<(usize, &str)> {
        self.segments
            .iter()
            .enumerate()
            .rev()
            .find_map(|(position, pieces)| match pieces.as_slice() {
                [Piece::Text(text)] => Some((position, text.as_str())),
                // An empty segment (`/a//b`, a trailing `/`) has no pieces and matches only "".
                [] => Some((position, "")),
                _ => None,
            })
    }

    pub fn captures<'p>(&self, segments: &[&'p str]) -> Option<Vec<(&str, &'p str)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut captures = Vec::new();
        for (pieces, segment) in self.segments.iter().zip(segments) {
            match_segment(pieces, segment, &mut captures)?;
        }
        Some(captures)
    }
}

fn match_segment<'t, 'p>(
    pieces: &'t [Piece],
    segment: &'p str,
    out: &mut Vec<(&'t str, &'p str)>,
) -> Option<()> {
    let mut rest = segment;
    let mut index = 0;
    while let Some(piece) = pieces.get(index) {
        match piece {
            Piece::Text(text) => rest = rest.strip_prefix(text.as_str())?,
            Piece::Var(name) => {
                // A variable runs to the next literal (to its last occurrence when that literal
                // ends the segment: `{name}.json` matches `a.json.json`), or to the segment's end.
                let value = match pieces.get(index + 1) {
                    Some(Piece::Text(next)) if index + 2 == pieces.len() => {
                        rest.strip_suffix(next.as_str())?
                    }
                    Some(Piece::Text(next)) => rest.get(..rest.find(next.as_str())?)?,
                    _ => rest,
                };
                if value.is_empty() {
                    return None;
                }
                out.push((name.as_str(), value));
                rest = rest.get(value.len()..)?;
            }
        }
        index += 1;
    }
    rest.is_empty().then_some(())
}

/// Where a request lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// Operation index and the path variables, percent-decoded.
    Found {
        operation: usize,
        params: Vec<(String, String)>,
    },
    /// The path exists, not with this method: the methods it has.
    MethodNotAllowed {
        allow: Vec<String>,
    },
    NotFound,
}

#[derive(Debug, Clone)]
struct Route {
    template: Template,
    rank: Vec<(u8, Reverse<usize>)>,
    /// Upper-case method → operation index.
    methods: Vec<(String, usize)>,
}

/// Operations by path template (base path included) and method.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// In matching order (most specific first).
    routes: Vec<Route>,
    /// Which routes may match a path, so a lookup does not try every template of a large API:
    /// by segment count and the position and text of a route's last fully literal segment.
    keyed: HashMap<(usize, usize), HashMap<String, Vec<usize>>>,
    /// By segment count: routes with no fully literal segment, tried for every path that long.
    unkeyed: HashMap<usize, Vec<usize>>,
}

impl RouteTable {
    /// Operations as (method, template with the base path, index).
    pub fn new(operations: &[(String, Template, usize)]) -> Self {
        let mut routes: Vec<Route> = Vec::new();
        for (method, template, index) in operations {
            let method = method.to_ascii_uppercase();
            match routes.iter_mut().find(|r| r.template == *template) {
                Some(route) => route.methods.push((method, *index)),
                None => routes.push(Route {
                    rank: template.rank(),
                    template: template.clone(),
                    methods: vec![(method, *index)],
                }),
            }
        }
        routes.sort_by(|a, b| compare_rank(&a.rank, &b.rank));
        let mut keyed: HashMap<(usize, usize), HashMap<String, Vec<usize>>> = HashMap::new();
        let mut unkeyed: HashMap<usize, Vec<usize>> = HashMap::new();
        for (index, route) in routes.iter().enumerate() {
            let count = route.template.segments.len();
            match route.template.last_literal() {
                Some((position, text)) => keyed
                    .entry((count, position))
                    .or_default()
                    .entry(text.to_string())
                    .or_default()
                    .push(index),
                None => unkeyed.entry(count).or_default().push(index),
            }
        }
        Self {
            routes,
            keyed,
            unkeyed,
        }
    }

    /// The routes that may match `segments`, in matching order: a route matches only paths with
    /// its segment count and its literal segments, so every other one is skipped unseen.
    fn candidates(&self, segments: &[&str]) -> Vec<usize> {
        let count = segments.len();
        let mut found: Vec<usize> = self.unkeyed.get(&count).cloned().unwrap_or_default();
        for (position, segment) in segments.iter().enumerate() {
            if let Some(routes) = self.keyed.get(&(count, position)).and_then(|by| by.get(*segment)) {
                found.extend_from_slice(routes);
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The operation for `method` on `path` (no query string).
    pub fn find(&self, method: &str, path: &str) -> RouteMatch {
        let mut allow: Option<Vec<String>> = None;
        let Some(rest) = path.strip_prefix('/') else {
            return RouteMatch::NotFound;
        };
        // Segments are decoded before literals are compared (`/pets/%6Dine` is `/pets/mine`);
        // callers refuse encoded slashes and dots, which decoding would turn into structure.
        let decoded: Vec<Cow<'_, str>> = rest
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy())
            .collect();
        let segments: Vec<&str> = decoded.iter().map(|s| s.as_ref()).collect();
        {
            for route in self
                .candidates(&segments)
                .into_iter()
                .filter_map(|i| self.routes.get(i))
            {
                let Some(captures) = route.template.captures(&segments) else {
                    continue;
                };
                // HEAD is answered by the GET operation when there is no HEAD one.
                let operation = route
                    .methods
                    .iter()
                    .find(|(m, _)| m.eq_ignore_ascii_case(method))
                    .or_else(|| {
                        method
                            .eq_ignore_ascii_case("HEAD")
                            .then(|| route.methods.iter().find(|(m, _)| m == "GET"))
                            .flatten()
                    });
                match operation {
                    Some((_, index)) => {
                        let params = captures
                            .into_iter()
                            .map(|(name, value)| (name.to_string(), value.to_string()))
                            .collect();
                        return RouteMatch::Found {
                            operation: *index,
                            params,
                        };
                    }
                    None => {
                        allow.get_or_insert_with(|| route.methods.iter().map(|(m, _)| m.clone()).collect());
                    }
                }
            }
        }
        match allow {
            Some(allow) => RouteMatch::MethodNotAllowed { allow },
            None => RouteMatch::NotFound,
        }
    }
}

fn compare_rank(a: &[(u8, Reverse<usize>)], b: &[(u8, Reverse<usize>)]) -> Ordering {
    a.cmp(b).then(a.len().cmp(&b.len()))
}

/// The base path of a server URL: `https://api.example.com/v1/` → `/v1`, `/api` → `/api`,
/// variables replaced by their defaults.
pub fn base_path(url: &str) -> String {
    let path = match url.find("://") {
        Some(scheme_end) => {
            let after = url.get(scheme_end + 3..).unwrap_or("");
            after.find('/').and_then(|i| after.get(i..)).unwrap_or("")
        }
        None if url.starts_with('/') => url,
        // Relative (`v1`, `.`) URLs are relative to where the document is served; take them as paths.
        None => url.trim_start_matches('.'),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(base: &str, ops: &[(&str, &str)]) -> RouteTable {
        let operations: Vec<(String, Template, usize)> = ops
            .iter()
            .enumerate()
            .map(|(i, (m, t))| (m.to_string(), Template::parse(&format!("{base}{t}")).unwrap(), i))
            .collect();
        RouteTable::new(&operations)
    }

    /// What `find` answered before routes were indexed: every route tried in order.
    fn find_trying_every_route(table: &RouteTable, method: &str, path: &str) -> RouteMatch {
        let every = RouteTable {
            routes: table.routes.clone(),
            keyed: HashMap::new(),
            unkeyed: (0..16).map(|n| (n, (0..table.routes.len()).collect())).collect(),
        };
        every.find(method, path)
    }

    #[test]
    fn indexed_lookups_answer_as_trying_every_route_would() {
        let table = table(
            "/v1",
            &[
                ("GET", "/customers"),
                ("POST", "/customers"),
                ("GET", "/customers/{id}"),
                ("GET", "/customers/search"),
                ("GET", "/customers/{id}/sources/{source}"),
                ("DELETE", "/customers/{id}/sources/{source}"),
                ("GET", "/{kind}/{id}"),
                ("GET", "/{kind}/{id}/sources/x{n}.json"),
                ("GET", "/files/{name}.{ext}"),
                ("GET", "/files/"),
                ("PUT", "/a//b"),
            ],
        );
        for path in [
            "/v1/customers",
            "/v1/customers/search",
            "/v1/customers/cus_1",
            "/v1/customers/cus_1/sources/src_2",
            "/v1/customers/cus_1/sources/x7.json",
            "/v1/charges/ch_1",
            "/v1/charges/ch_1/sources/x9.json",
            "/v1/files/report.pdf",
            "/v1/files/",
            "/v1/a//b",
            "/v1/a/b",
            "/v1/cust%6Fmers/search",
            "/v2/customers",
            "/v1",
            "/",
        ] {
            for method in ["GET", "POST", "DELETE", "HEAD", "PUT"] {
                assert_eq!(
                    table.find(method, path),
                    find_trying_every_route(&table, method, path),
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn literal_paths_win_over_templates() {
        let t = table(
            "/v1",
            &[
                ("get", "/pets/{id}"),
                ("get", "/pets/mine"),
                ("delete", "/pets/{id}"),
                ("get", "/{kind}/mine"),
            ],
        );
        assert_eq!(
            t.find("GET", "/v1/pets/mine"),
            RouteMatch::Found {
                operation: 1,
                params: vec![]
            }
        );
        // Percent-encoded literals are the same path.
        assert_eq!(
            t.find("GET", "/v1/pets/%6Dine"),
            RouteMatch::Found {
                operation: 1,
                params: vec![]
            }
        );
        assert_eq!(
            t.find("GET", "/v1/pets/a%20b"),
            RouteMatch::Found {
                operation: 0,
                params: vec![("id".into(), "a b".into())]
            }
        );
        // /pets/mine has no DELETE: the next matching template answers.
        assert_eq!(
            t.find("DELETE", "/v1/pets/mine"),
            RouteMatch::Found {
                operation: 2,
                params: vec![("id".into(), "mine".into())]
            }
        );
        assert_eq!(
            t.find("POST", "/v1/pets/1"),
            RouteMatch::MethodNotAllowed {
                allow: vec!["GET".into(), "DELETE".into()]
            }
        );
        assert_eq!(t.find("GET", "/pets/1"), RouteMatch::NotFound);
        assert_eq!(t.find("GET", "/v1/pets/"), RouteMatch::NotFound);
        assert_eq!(t.find("GET", "/v1x/pets/1"), RouteMatch::NotFound);
        assert!(matches!(
            t.find("HEAD", "/v1/pets/1"),
            RouteMatch::Found { operation: 0, .. }
        ));
    }

    #[test]
    fn variables_inside_segments() {
        let t = table("", &[("get", "/files/{name}.{ext}")]);
        assert_eq!(
            t.find("GET", "/files/report.tar.gz"),
            RouteMatch::Found {
                operation: 0,
                params: vec![("name".into(), "report".into()), ("ext".into(), "tar.gz".into())]
            }
        );
        assert_eq!(t.find("GET", "/files/.gz"), RouteMatch::NotFound);
        // The last literal of a segment is matched at its end; more literal text ranks first.
        let json = table("", &[("get", "/files/{id}"), ("get", "/files/{name}.json")]);
        assert_eq!(
            json.find("GET", "/files/a.json.json"),
            RouteMatch::Found {
                operation: 1,
                params: vec![("name".into(), "a.json".into())]
            }
        );
        assert!(matches!(
            json.find("GET", "/files/a.csv"),
            RouteMatch::Found { operation: 0, .. }
        ));
        assert!(Template::parse("/a/{x}{y}").is_err());
        assert!(Template::parse("/a/{x").is_err());
        assert!(Template::parse("a").is_err());
    }

    #[test]
    fn base_paths_from_server_urls() {
        assert_eq!(base_path("http://petstore.swagger.io/v1"), "/v1");
        assert_eq!(base_path("https://api.example.com/"), "");
        assert_eq!(base_path("/api/"), "/api");
        assert_eq!(base_path("v2"), "/v2");
        assert_eq!(base_path("{scheme}://developer.uspto.gov/ds-api"), "/ds-api");
    }
}
