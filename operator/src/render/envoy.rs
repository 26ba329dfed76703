//! A whole Envoy bootstrap for one gateway (`kea render`): the listener with its routes (one per
//! API, split across the API's backends by weight), the clusters the routes and the plugins
//! call, and the four KEA plugins in chain order before the router.
//!
//! Routes and plugin rules agree on which API a request belongs to: both take APIs with longer
//! base paths first (ties by namespace/name), both treat a base path as segment-aware (`/pets`
//! serves `/pets` and `/pets/1`, not `/petshop`), and both ignore the port in the host.

use super::objects::{mark_headers, route_shapes};
use super::plugins::{Module, PluginConfigs};
use super::spec::Checked;
use super::{Key, Problem};
use crate::crd::ApiDefinitionSpec;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;
use tracing::instrument;

/// Response header naming the backend version that answered.
pub const VERSION_HEADER: &str = "x-kea-backend-version";

/// Where Envoy connects: a host name or IP address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl FromStr for Address {
    type Err = String;

    /// `HOST:PORT`, `[IPV6]:PORT`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("{text:?} is not HOST:PORT");
        let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| wrong())?;
        if host.is_empty() || port == 0 || host.contains(['/', '[', ']', ' ']) {
            return Err(wrong());
        }
        if host.contains(':') && host.parse::<IpAddr>().is_err() {
            return Err(wrong());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `NAME=HOST:PORT` (`--service`, `--cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub address: Address,
}

impl FromStr for Named {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, address) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not NAME=HOST:PORT"))?;
        if name.is_empty() {
            return Err(format!("{text:?}: the name before '=' is empty"));
        }
        Ok(Self {
            name: name.to_string(),
            address: address.parse()?,
        })
    }
}

/// What the rendered configuration listens on and where it finds things.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway's listener.
    pub listen: SocketAddr,
    /// Envoy's admin interface.
    pub admin: SocketAddr,
    /// Directory of `audit.wasm`, `auth.wasm`, `validate.wasm`, `cache.wasm`, as Envoy will see
    /// it (relative paths are relative to Envoy's working directory).
    pub plugins_dir: String,
    /// Backend addresses by service: `NAME`, `NAME.NAMESPACE`, `NAME:PORT` or
    /// `NAME.NAMESPACE:PORT` (the most specific wins). Others are
    /// `NAME.NAMESPACE.svc.cluster.local:PORT`.
    pub services: Vec<Named>,
    /// Addresses of the clusters the plugin configurations name (identity providers, the audit
    /// sink, bundle or JWKS hosts). Others are derived from the URL they serve.
    pub clusters: Vec<Named>,
    /// CA bundle verifying the TLS clusters' servers.
    pub ca_file: String,
    /// Host names with a known address (in-cluster Service names → their cluster IPs): a
    /// cluster reaching one of them connects to the address instead of resolving the name.
    pub hosts: BTreeMap<String, IpAddr>,
    /// Modules fetched over HTTP (an OCI registry's blob URL) instead of read from
    /// `plugins_dir`, by module name (`kea`, or the plugin's).
    pub remote_plugins: BTreeMap<String, RemoteModule>,
    /// The docs portal's routes, if the gateway serves it.
    pub docs: Option<DocsRoutes>,
}

/// The docs portal's routes (`/docs/...`), put before the APIs' routes of the docs host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocsRoutes {
    pub host: String,
    pub routes: Vec<Value>,
    /// Largest file answered by a `direct_response` route (Envoy's default is 4 KiB).
    pub max_direct_response_bytes: Option<u64>,
}

/// A plugin module Envoy downloads and checks against its sha256 before loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteModule {
    /// `http(s)://` URL of the module's bytes.
    pub url: String,
    /// Hex sha256 of the module.
    pub sha256: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            plugins_dir: "dist".into(),
            services: Vec::new(),
            clusters: Vec::new(),
            ca_file: DEFAULT_CA_FILE.into(),
            hosts: BTreeMap::new(),
            remote_plugins: BTreeMap::new(),
            docs: None,
        }
    }
}

/// Debian/Ubuntu/Alpine's CA bundle (also the path in Envoy's own images).
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An API with its checked spec.
#[derive(Debug, Clone, Copy)]
pub struct RoutedApi<'a> {
    pub key: &'a Key,
    pub spec: &'a ApiDefinitionSpec,
    pub checked: &'a Checked,
}

/// The configuration, and the `--service`/`--cluster` entries nothing used (likely typos).
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    pub config: Value,
    pub unused: Vec<String>,
}

/// Renders the bootstrap of gateway `gateway` serving `apis` with the plugin configurations
/// `configs` (rendered by [`super::plugins::render`]).
#[instrument(level = "debug", skip_all, fields(gateway = %gateway, apis = apis.len()), err(level = "debug", Display))]
pub fn bootstrap(
    gateway: &Key,
    apis: &[RoutedApi<'_>],
    configs: &PluginConfigs,
    options: &Options,
) -> Result<Bootstrap, Problem> {
    let mut ordered: Vec<&RoutedApi<'_>> = apis.iter().collect();
    ordered.sort_by(|a, b| super::precedence((a.spec, a.key), (b.spec, b.key)));
    let mut used = BTreeSet::new();
    let mut clusters = Clusters::default();
    let mut routes = Vec::with_capacity(ordered.len());
    for api in &ordered {
        routes.push(route(api, options, &mut clusters, &mut used)?);
    }
    let virtual_hosts = virtual_hosts(&ordered, &routes, options.docs.as_ref())?;
    referenced_clusters(&references(configs), &mut clusters, options, &mut used)?;
    let filters = http_filters(configs, options, &mut clusters)?;
    let unused = options
        .services
        .iter()
        .map(|named| ("--service", named))
        .chain(options.clusters.iter().map(|named| ("--cluster", named)))
        .filter(|(flag, named)| !used.contains(&format!("{flag} {}", named.name)))
        .map(|(flag, named)| format!("{flag} {}={}", named.name, named.address))
        .collect();
    let config = json!({
        "admin": {"address": socket_address(&options.admin)},
        "static_resources": {
            "listeners": [{
                "name": gateway.name,
                "address": socket_address(&options.listen),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": gateway.name,
                        // Dot-segments and duplicate slashes resolved, encoded slashes refused,
                        // before routing and before any plugin matches the path: what a rule
                        // sees is what the upstream gets.
                        "normalize_path": true,
                        "merge_slashes": true,
                        "path_with_escaped_slashes_action": "REJECT_REQUEST",
                        "route_config": route_config(&gateway.name, virtual_hosts, options.docs.as_ref()),
                        "http_filters": filters,
                    },
                }]}],
            }],
            "clusters": clusters.into_values(),
        },
    });
    Ok(Bootstrap { config, unused })
}

fn route_config(name: &str, virtual_hosts: Vec<Value>, docs: Option<&DocsRoutes>) -> Value {
    let mut config = json!({
        "name": name,
        // `api.example.com:8080` is `api.example.com`, as in the plugins' rules.
        "ignore_port_in_host_matching": true,
        "virtual_hosts": virtual_hosts,
    });
    if let (Some(bytes), Some(map)) = (
        docs.and_then(|d| d.max_direct_response_bytes),
        config.as_object_mut(),
    ) {
        map.insert("max_direct_response_body_size_bytes".into(), json!(bytes));
    }
    config
}

fn socket_address(address: &SocketAddr) -> Value {
    json!({"socket_address": {"address": address.ip().to_string(), "port_value": address.port()}})
}

/// Envoy's JSON duration: `5s`, `0.250s`.
pub fn duration(duration: Duration) -> String {
    match duration.subsec_nanos() {
        0 => format!("{}s", duration.as_secs()),
        nanos => {
            let fraction = format!("{nanos:09}");
            format!("{}.{}s", duration.as_secs(), fraction.trim_end_matches('0'))
        }
    }
}

/// The routes of one API ([`route_shapes`]): its base path, its backends by weight (or the one a
/// request is marked for), its timeout, its mirror.
fn route(
    api: &RoutedApi<'_>,
    options: &Options,
    clusters: &mut Clusters,
    used: &mut BTreeSet<String>,
) -> Result<Vec<Value>, Problem> {
    if api.spec.hosts.is_empty() {
        // The CRD requires one; without, the plugins' rules would match every host and no route any.
        return Err(Problem::invalid(
            "NoHosts",
            format!("ApiDefinition {}: spec.hosts: give at least one host", api.key),
        ));
    }
    let base = &api.spec.base_path;
    if !base.starts_with('/') || base.contains(['?', '#']) {
        return Err(Problem::invalid(
            "InvalidBasePath",
            format!(
                "ApiDefinition {}: spec.basePath {base:?} must be a path without '?' or '#'",
                api.key
            ),
        ));
    }
    // Segment-aware like the plugins' `pathPrefix`: `/pets` serves `/pets` and `/pets/1`, not
    // `/petshop`. A base path ending in `/` (including `/`) serves everything below it.
    let matcher = if base.ends_with('/') {
        json!({"prefix": base})
    } else {
        json!({"path_separated_prefix": base})
    };
    let version_header = |version: &str| json!([{"header": {"key": VERSION_HEADER, "value": version}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]);
    let mirror_cluster = api
        .checked
        .split
        .mirror
        .as_ref()
        .map(|mirror| clusters.backend(api.key, &mirror.service, mirror.port, options, used));
    let mut routes = Vec::new();
    for shape in route_shapes(api.checked) {
        let mut action = Map::new();
        let mut route_headers = None;
        match shape.backends.as_slice() {
            [single] => {
                let name = clusters.backend(api.key, &single.service, single.port, options, used);
                action.insert("cluster".into(), json!(name));
                route_headers = single.version.as_deref().map(version_header);
            }
            backends => {
                let weighted: Vec<Value> = backends
                    .iter()
                    .map(|backend| {
                        let name = clusters.backend(api.key, &backend.service, backend.port, options, used);
                        let mut entry = json!({"name": name, "weight": backend.weight});
                        if let (Some(version), Some(map)) = (&backend.version, entry.as_object_mut()) {
                            map.insert("response_headers_to_add".into(), version_header(version));
                        }
                        entry
                    })
                    .collect();
                action.insert("weighted_clusters".into(), json!({"clusters": weighted}));
            }
        }
        action.insert("timeout".into(), json!(duration(api.checked.timeout)));
        if let (Some(cluster), Some(hundredths)) = (&mirror_cluster, shape.mirror_hundredths) {
            action.insert(
                "request_mirror_policies".into(),
                json!([{"cluster": cluster, "runtime_fraction": {"default_value": fraction(hundredths)}}]),
            );
        }
        let mut matcher = matcher.clone();
        let headers: Vec<Value> = mark_headers(&shape)
            .into_iter()
            .map(|(name, value)| json!({"name": name, "string_match": {"exact": value}}))
            .collect();
        if let (false, Some(map)) = (headers.is_empty(), matcher.as_object_mut()) {
            map.insert("headers".into(), json!(headers));
        }
        let mut route = json!({
            "name": format!("{}{}", api.key.name, shape.suffix),
            "match": matcher,
            "route": action,
        });
        if let (Some(headers), Some(map)) = (route_headers, route.as_object_mut()) {
            map.insert("response_headers_to_add".into(), headers);
        }
        routes.push(route);
    }
    Ok(routes)
}

/// Envoy's `FractionalPercent` for a percent in hundredths: per hundred when whole, else per
/// ten thousand.
fn fraction(hundredths: u32) -> Value {
    if hundredths.is_multiple_of(100) {
        json!({"numerator": hundredths / 100, "denominator": "HUNDRED"})
    } else {
        json!({"numerator": hundredths, "denominator": "TEN_THOUSAND"})
    }
}

/// Whether every host `domain` stands for is matched by `pattern` (`*`, `*.suffix` or exact).
fn covers(pattern: &str, domain: &str) -> bool {
    if pattern == "*" || pattern == domain {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => domain.len() > suffix.len() && domain.ends_with(suffix),
        _ => false,
    }
}

/// One virtual host per set of domains that share the same routes. Envoy picks one virtual host
/// per request (the most specific domain), so each domain's routes are those of every API whose
/// hosts cover it — an API on `*` is also served on `api.example.com` when another API names
/// that host — in the plugins' order.
/// The docs host gets a virtual host of its own, the portal's routes first.
fn virtual_hosts(
    ordered: &[&RoutedApi<'_>],
    routes: &[Vec<Value>],
    docs: Option<&DocsRoutes>,
) -> Result<Vec<Value>, Problem> {
    let hosts: Vec<Vec<String>> = ordered
        .iter()
        .map(|api| {
            api.spec
                .hosts
                .iter()
                .map(|host| host.to_ascii_lowercase())
                .collect()
        })
        .collect();
    let docs_host = docs.map(|docs| docs.host.to_ascii_lowercase());
    let mut domains: BTreeSet<&String> = hosts.iter().flatten().collect();
    if let Some(host) = &docs_host {
        domains.insert(host);
    }
    // (indexes into `ordered` of the APIs a domain is served by, whether it is the docs host) →
    // the domains served so.
    let mut served: BTreeMap<(Vec<usize>, bool), Vec<String>> = BTreeMap::new();
    for domain in domains {
        let apis: Vec<usize> = (0..ordered.len())
            .filter(|&index| {
                hosts
                    .get(index)
                    .is_some_and(|hosts| hosts.iter().any(|host| covers(host, domain)))
            })
            .collect();
        let named_here = |api: &RoutedApi<'_>| {
            api.spec
                .hosts
                .iter()
                .any(|host| host.eq_ignore_ascii_case(domain))
        };
        let here: Vec<&RoutedApi<'_>> = apis
            .iter()
            .filter_map(|&index| ordered.get(index).copied())
            .filter(|api| named_here(api))
            .collect();
        for (position, a) in here.iter().enumerate() {
            if let Some(b) = here
                .iter()
                .skip(position + 1)
                .find(|b| b.spec.base_path == a.spec.base_path)
            {
                return Err(Problem::invalid(
                    "Conflict",
                    format!(
                        "ApiDefinitions {} and {} both serve host {domain:?} under base path {:?}",
                        a.key, b.key, a.spec.base_path
                    ),
                ));
            }
        }
        let is_docs = docs_host.as_ref() == Some(domain);
        served.entry((apis, is_docs)).or_default().push(domain.clone());
    }
    Ok(served
        .into_iter()
        .map(|((apis, is_docs), domains)| {
            let portal = docs
                .filter(|_| is_docs)
                .map(|docs| docs.routes.as_slice())
                .unwrap_or_default();
            let routes: Vec<&Value> = portal
                .iter()
                .chain(apis.iter().filter_map(|&index| routes.get(index)).flatten())
                .collect();
            json!({"name": domains.join(","), "domains": domains, "routes": routes})
        })
        .collect())
}

/// A cluster a plugin configuration names, and the URL it is used for, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    cluster: String,
    url: Option<String>,
    /// Where it is named, for messages.
    at: String,
}

/// The clusters the plugin configurations call out to.
fn references(configs: &PluginConfigs) -> Vec<Reference> {
    let mut out = Vec::new();
    if let Some(auth) = &configs.auth {
        use kea_auth::config::JwksSource;
        for (index, provider) in auth.providers.iter().enumerate() {
            let at = format!("auth providers[{index}] ({})", provider.name);
            match &provider.jwks {
                Some(JwksSource::Remote(remote)) => out.push(Reference {
                    cluster: remote.cluster.clone(),
                    url: Some(remote.uri.clone()),
                    at: format!("{at} jwks.remote"),
                }),
                Some(JwksSource::Discovery(discovery)) => out.push(Reference {
                    cluster: discovery.cluster.clone(),
                    url: Some(provider.issuer.clone()),
                    at: format!("{at} jwks.discovery"),
                }),
                Some(JwksSource::Inline(_)) | None => {}
            }
        }
        if let Some(sso) = &auth.sso {
            if let Some(cluster) = &sso.cluster {
                let url = match &sso.endpoints {
                    Some(endpoints) => Some(endpoints.token.clone()),
                    None => auth
                        .providers
                        .iter()
                        .find(|p| p.name == sso.provider)
                        .map(|p| p.issuer.clone()),
                };
                out.push(Reference {
                    cluster: cluster.clone(),
                    url,
                    at: "auth sso.cluster".into(),
                });
            }
        }
    }
    if let Some(sink) = configs.audit.as_ref().and_then(|audit| audit.sinks.http.as_ref()) {
        out.push(Reference {
            cluster: sink.cluster.clone(),
            url: None,
            at: "audit sinks.http".into(),
        });
    }
    if let Some(validate) = &configs.validate {
        for api in &validate.apis {
            if let Some(cluster) = &api.cluster {
                out.push(Reference {
                    cluster: cluster.clone(),
                    url: api.url.clone(),
                    at: format!("validate apis ({})", api.name),
                });
            }
        }
    }
    out
}

/// A URL's scheme (`true` for https), host and port (default 80/443).
pub fn split_url(url: &str) -> Option<(bool, Address)> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let default_port = if tls { 443 } else { 80 };
    let explicit = authority.rsplit_once(':').filter(|(_, port)| !port.contains(']'));
    let address = match explicit {
        Some(_) => authority.parse().ok()?,
        None => {
            let host = authority
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(authority);
            if host.is_empty() {
                return None;
            }
            Address {
                host: host.to_string(),
                port: default_port,
            }
        }
    };
    Some((tls, address))
}

/// The clusters by name, in the order they were first needed.
#[derive(Debug, Default)]
struct Clusters {
    order: Vec<String>,
    by_name: BTreeMap<String, Value>,
}

impl Clusters {
    fn insert(&mut self, name: String, cluster: Value) {
        if !self.by_name.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.by_name.insert(name, cluster);
    }

    fn into_values(mut self) -> Vec<Value> {
        self.order
            .iter()
            .filter_map(|name| self.by_name.remove(name))
            .collect()
    }

    /// The cluster of a backend Service, named `<service>.<namespace>:<port>`.
    fn backend(
        &mut self,
        api: &Key,
        service: &str,
        port: u16,
        options: &Options,
        used: &mut BTreeSet<String>,
    ) -> String {
        let name = format!("{service}.{}:{port}", api.namespace);
        if self.by_name.contains_key(&name) {
            return name;
        }
        let candidates = [
            format!("{service}.{}:{port}", api.namespace),
            format!("{service}.{}", api.namespace),
            format!("{service}:{port}"),
            service.to_string(),
        ];
        let given = candidates
            .iter()
            .find_map(|candidate| options.services.iter().find(|named| &named.name == candidate));
        let address = match given {
            Some(named) => {
                used.insert(format!("--service {}", named.name));
                named.address.clone()
            }
            None => Address {
                host: format!("{service}.{}.svc.cluster.local", api.namespace),
                port,
            },
        };
        self.insert(
            name.clone(),
            single_address_cluster(&name, &address, None, options),
        );
        name
    }
}

/// The clusters the plugins call, each defined once: with the address `--cluster` gives, or with
/// the host and port of the URLs it serves (all of them must agree). A name that is also a
/// backend's cluster is that cluster. An `https` URL makes the cluster speak TLS to its host.
fn referenced_clusters(
    references: &[Reference],
    clusters: &mut Clusters,
    options: &Options,
    used: &mut BTreeSet<String>,
) -> Result<(), Problem> {
    let mut names: Vec<&str> = Vec::new();
    for reference in references {
        if !names.contains(&reference.cluster.as_str()) {
            names.push(&reference.cluster);
        }
    }
    for name in names {
        let mut derived: Option<(bool, Address, &str)> = None;
        let mut unnamed = None;
        for reference in references.iter().filter(|reference| reference.cluster == name) {
            let Some(url) = &reference.url else {
                unnamed.get_or_insert(reference.at.as_str());
                continue;
            };
            let (tls, address) = split_url(url).ok_or_else(|| {
                Problem::invalid(
                    "InvalidUrl",
                    format!("{}: {url:?} is not an absolute http(s) URL", reference.at),
                )
            })?;
            match &derived {
                None => derived = Some((tls, address, &reference.at)),
                Some((known_tls, known, at)) if (*known_tls, known) != (tls, &address) => {
                    if options.clusters.iter().any(|named| named.name == name) {
                        continue;
                    }
                    return Err(Problem::invalid(
                        "ConflictingCluster",
                        format!(
                            "cluster {name:?} reaches {known} for {at} but {address} for {}; give it with --cluster {name}=HOST:PORT",
                            reference.at
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let sni = derived
            .as_ref()
            .filter(|(tls, _, _)| *tls)
            .map(|(_, address, _)| address.host.clone());
        if let Some(named) = options.clusters.iter().find(|named| named.name == name) {
            used.insert(format!("--cluster {name}"));
            clusters.insert(
                name.to_string(),
                single_address_cluster(name, &named.address, sni.as_deref(), options),
            );
        } else if clusters.by_name.contains_key(name) {
            // A backend's cluster: the plugin calls a Service the routes use too.
        } else if let Some((_, address, _)) = derived {
            clusters.insert(
                name.to_string(),
                single_address_cluster(name, &address, sni.as_deref(), options),
            );
        } else {
            let at = unnamed.unwrap_or("a plugin configuration");
            return Err(Problem::invalid(
                "UnknownCluster",
                format!("{at}: cluster {name:?} has no address; give it with --cluster {name}=HOST:PORT"),
            ));
        }
    }
    Ok(())
}

/// How long an idle upstream connection stays pooled: below the shortest keep-alive timeout
/// of common HTTP servers (gunicorn's 2 s).
const UPSTREAM_IDLE_TIMEOUT: &str = "1.5s";

/// A cluster with one address: STATIC for an IP (or a host `options.hosts` knows), STRICT_DNS
/// for a name; TLS with SNI and certificate checks against `options.ca_file` when `tls_host` is
/// given.
pub fn single_address_cluster(
    name: &str,
    address: &Address,
    tls_host: Option<&str>,
    options: &Options,
) -> Value {
    let host = match options.hosts.get(&address.host.to_ascii_lowercase()) {
        Some(ip) => ip.to_string(),
        None => address.host.clone(),
    };
    let ip = host.parse::<IpAddr>().is_ok();
    let mut cluster = json!({
        "name": name,
        "type": if ip { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "2s",
        // A pooled connection is dropped before the server's own keep-alive timeout ends it:
        // otherwise a request sent as the server closes an idle connection fails with 503 "upstream
        // connect error ... connection termination". Uvicorn (MLServer), Node and Apache close
        // after 5 s idle, gunicorn after 2 s; Envoy's default keeps them for an hour.
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"idle_timeout": UPSTREAM_IDLE_TIMEOUT},
            "explicit_http_config": {"http_protocol_options": {}},
        }},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": address.port}}}}
        ]}]},
    });
    if let (Some(host), Some(map)) = (tls_host, cluster.as_object_mut()) {
        map.insert(
            "transport_socket".into(),
            json!({
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": host,
                    "common_tls_context": {"validation_context": {
                        "trusted_ca": {"filename": options.ca_file},
                        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": host}}],
                    }},
                },
            }),
        );
    }
    cluster
}

/// Names of the VM environment variables a configuration refers to (`...Env` fields, e.g.
/// `clientSecretEnv`, `sessionKeys[].secretEnv`, `hashKeyEnv`).
fn env_names(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(name) if key.ends_with("Env") => {
                        out.insert(name.clone());
                    }
                    other => env_names(other, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| env_names(item, out)),
        _ => {}
    }
}

/// The modules the gateway loads (the combined module, or each configured plugin's own in chain
/// order), then the router. A module fetched over HTTP gets a cluster for its host.
fn http_filters(
    configs: &PluginConfigs,
    options: &Options,
    clusters: &mut Clusters,
) -> Result<Vec<Value>, Problem> {
    let mut filters = Vec::new();
    for (module, config) in configs.modules() {
        let code = match options.remote_plugins.get(module.name()) {
            None => json!({"local": {"filename": format!(
                "{}/{}.wasm",
                options.plugins_dir.trim_end_matches('/'),
                module.name()
            )}}),
            Some(remote) => {
                let (tls, address) = split_url(&remote.url).ok_or_else(|| {
                    Problem::invalid(
                        "InvalidPluginUrl",
                        format!(
                            "{}.url: {:?} is not an absolute http(s) URL",
                            module.field(),
                            remote.url
                        ),
                    )
                })?;
                let name = format!("kea-modules|{address}");
                let tls_host = tls.then_some(address.host.as_str());
                clusters.insert(
                    name.clone(),
                    single_address_cluster(&name, &address, tls_host, options),
                );
                json!({"remote": {
                    "http_uri": {"uri": remote.url, "cluster": name, "timeout": "10s"},
                    "sha256": remote.sha256,
                    // Envoy retries the download with backoff; the listener waits for it.
                    "retry_policy": {"num_retries": 10},
                }})
            }
        };
        filters.push(wasm_filter(module, &config, code));
    }
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    Ok(filters)
}

/// The filter's name, VM id and root id: `kea` for the combined module, `kea.<plugin>` otherwise.
pub fn filter_id(module: Module) -> String {
    match module {
        Module::Combined => "kea".into(),
        Module::Plugin(plugin) => format!("kea.{}", plugin.name()),
    }
}

fn wasm_filter(module: Module, config: &Value, code: Value) -> Value {
    let id = filter_id(module);
    let mut vm = json!({
        "vm_id": id,
        "runtime": "envoy.wasm.runtime.v8",
        "code": code,
    });
    let mut env = BTreeSet::new();
    env_names(config, &mut env);
    if let (false, Some(map)) = (env.is_empty(), vm.as_object_mut()) {
        // Secrets stay out of the file: the VM gets these variables from Envoy's environment.
        map.insert("environment_variables".into(), json!({"host_env_keys": env}));
    }
    let text = serde_json::to_string_pretty(config).unwrap_or_else(|_| config.to_string());
    let mut wasm = json!({
        "name": id,
        "root_id": id,
        "fail_open": false,
        "vm_config": vm,
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text},
    });
    if let (true, Some(map)) = (module.holds_headers(), wasm.as_object_mut()) {
        // Validation holds the request headers until the body is checked; Envoy (≥ 1.35) must
        // let that StopIteration stand instead of sending the headers on.
        map.insert("allow_on_headers_stop_iteration".into(), json!(true));
    }
    json!({
        "name": id,
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": wasm},
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::crd::{ApiSchema, Backend, Deployment};
    use crate::render::spec::WeightedBackend;
    use kea_audit::config::AuditConfig;
    use kea_auth::config::AuthConfig;
    use kea_cache::config::CacheConfig;
    use kea_validate::config::ValidateConfig;

    fn spec(hosts: &[&str], base_path: &str) -> ApiDefinitionSpec {
        ApiDefinitionSpec {
            gateway: "gw".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            base_path: base_path.into(),
            backends: vec![Backend {
                service: "svc".into(),
                port: 80,
                version: None,
                weight: None,
            }],
            schema: ApiSchema::default(),
            ..ApiDefinitionSpec::default()
        }
    }

    fn backend(service: &str, weight: u32, version: Option<&str>) -> WeightedBackend {
        WeightedBackend {
            service: service.into(),
            port: 8080,
            version: version.map(String::from),
            weight,
            key: version.unwrap_or(service).into(),
        }
    }

    /// Split by the routes' weights alone (`mode: Random`).
    fn checked(backends: Vec<WeightedBackend>) -> Checked {
        Checked {
            backends,
            timeout: Duration::from_millis(1500),
            split: crate::render::spec::SplitPlan::default(),
        }
    }

    fn all_plugins() -> PluginConfigs {
        PluginConfigs {
            audit: Some(AuditConfig::default()),
            auth: Some(AuthConfig::default()),
            validate: Some(ValidateConfig::default()),
            cache: Some(CacheConfig::default()),
            deployment: Deployment::Separate,
        }
    }

    fn render(
        apis: &[(Key, ApiDefinitionSpec, Checked)],
        configs: &PluginConfigs,
        options: &Options,
    ) -> Value {
        let routed: Vec<RoutedApi<'_>> = apis
            .iter()
            .map(|(key, spec, checked)| RoutedApi { key, spec, checked })
            .collect();
        bootstrap(&Key::new("default", "gw"), &routed, configs, options)
            .unwrap()
            .config
    }

    fn hcm(config: &Value) -> &Value {
        &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    }

    #[test]
    fn weights_become_weighted_clusters_with_versions() {
        let apis = vec![(
            Key::new("shop", "orders"),
            spec(&["api.example.com"], "/orders"),
            checked(vec![
                backend("orders-v1", 80, Some("v1")),
                backend("orders-v2", 20, None),
            ]),
        )];
        let options = Options {
            services: vec!["orders-v1=127.0.0.1:9001".parse().unwrap()],
            ..Options::default()
        };
        let config = render(&apis, &PluginConfigs::default(), &options);
        let route = &hcm(&config)["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["match"], json!({"path_separated_prefix": "/orders"}));
        assert_eq!(route["route"]["timeout"], "1.5s");
        let weighted = route["route"]["weighted_clusters"]["clusters"]
            .as_array()
            .unwrap();
        assert_eq!(weighted.len(), 2);
        assert_eq!(weighted[0]["name"], "orders-v1.shop:8080");
        assert_eq!(weighted[0]["weight"], 80);
        assert_eq!(
            weighted[0]["response_headers_to_add"][0]["header"],
            json!({"key": VERSION_HEADER, "value": "v1"})
        );
        assert_eq!(weighted[1]["name"], "orders-v2.shop:8080");
        assert_eq!(weighted[1]["weight"], 20);
        assert!(weighted[1].get("response_headers_to_add").is_none());
        let clusters = config["static_resources"]["clusters"].as_array().unwrap();
        let address = |i: usize| {
            &clusters[i]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]
        };
        assert_eq!(clusters[0]["type"], "STATIC");
        assert_eq!(address(0)["address"], "127.0.0.1");
        assert_eq!(address(0)["port_value"], 9001);
        assert_eq!(clusters[1]["type"], "STRICT_DNS");
        assert_eq!(address(1)["address"], "orders-v2.shop.svc.cluster.local");
        // Idle connections are closed by Envoy before the servers' keep-alive timeouts.
        for cluster in clusters {
            let options = &cluster["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
            assert_eq!(options["common_http_protocol_options"]["idle_timeout"], "1.5s");
        }
    }

    #[test]
    fn an_exact_mirrored_split_routes_by_mark_before_the_weighted_fallback() {
        let mut api = spec(&["api.example.com"], "/orders");
        api.backends = vec![
            crate::crd::Backend {
                service: "orders-v1".into(),
                port: 8080,
                version: Some("v1".into()),
                weight: Some(90),
            },
            crate::crd::Backend {
                service: "orders-v2".into(),
                port: 8080,
                version: Some("v2".into()),
                weight: Some(10),
            },
        ];
        api.mirror = Some(crate::crd::Mirror {
            service: "shadow".into(),
            port: 9090,
            percent: 0.25,
        });
        let (backends, split) = crate::render::spec::split(&api).unwrap();
        let checked = Checked {
            backends,
            timeout: Duration::from_secs(5),
            split,
        };
        let config = render(
            &[(Key::new("shop", "orders"), api, checked)],
            &PluginConfigs::default(),
            &Options::default(),
        );
        let routes = hcm(&config)["route_config"]["virtual_hosts"][0]["routes"].clone();
        let version = |v: &str| json!([{"header": {"key": VERSION_HEADER, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]);
        let marked = |key: &str, mirror: bool| {
            let mut headers = vec![json!({"name": "x-kea-backend", "string_match": {"exact": key}})];
            if mirror {
                headers.push(json!({"name": "x-kea-mirror", "string_match": {"exact": "1"}}));
            }
            json!({"path_separated_prefix": "/orders", "headers": headers})
        };
        let all = json!([{"cluster": "shadow.shop:9090", "runtime_fraction": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}}]);
        let keyed = |key: &str, mirror: bool| {
            let mut route = json!({
                "name": if mirror { format!("orders-{key}-mirror") } else { format!("orders-{key}") },
                "match": marked(key, mirror),
                "route": {"cluster": format!("orders-{key}.shop:8080"), "timeout": "5s"},
                "response_headers_to_add": version(key),
            });
            if mirror {
                route["route"]["request_mirror_policies"] = all.clone();
            }
            route
        };
        assert_eq!(
            routes,
            json!([
                keyed("v1", true),
                keyed("v1", false),
                keyed("v2", true),
                keyed("v2", false),
                {
                    "name": "orders",
                    "match": {"path_separated_prefix": "/orders"},
                    "route": {
                        "weighted_clusters": {"clusters": [
                            {"name": "orders-v1.shop:8080", "weight": 90, "response_headers_to_add": version("v1")},
                            {"name": "orders-v2.shop:8080", "weight": 10, "response_headers_to_add": version("v2")},
                        ]},
                        "timeout": "5s",
                        "request_mirror_policies": [{"cluster": "shadow.shop:9090",
                            "runtime_fraction": {"default_value": {"numerator": 25, "denominator": "TEN_THOUSAND"}}}],
                    },
                },
            ])
        );
        // The mirror is a cluster like the backends'.
        let clusters = config["static_resources"]["clusters"].as_array().unwrap();
        let shadow = clusters.iter().find(|c| c["name"] == "shadow.shop:9090").unwrap();
        assert_eq!(
            shadow["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["address"],
            "shadow.shop.svc.cluster.local"
        );
    }

    #[test]
    fn a_single_backend_is_a_plain_cluster() {
        let apis = vec![(
            Key::new("default", "pets"),
            spec(&["*"], "/"),
            checked(vec![backend("pets", 100, Some("2"))]),
        )];
        let config = render(&apis, &PluginConfigs::default(), &Options::default());
        let route = &hcm(&config)["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["match"], json!({"prefix": "/"}));
        assert_eq!(route["route"]["cluster"], "pets.default:8080");
        assert!(route["route"].get("weighted_clusters").is_none());
        assert_eq!(route["response_headers_to_add"][0]["header"]["value"], "2");
    }

    #[test]
    fn routes_take_longer_base_paths_first_and_hosts_share_wildcard_apis() {
        let one = || checked(vec![backend("svc", 100, None)]);
        let apis = vec![
            (Key::new("default", "root"), spec(&["*"], "/"), one()),
            (
                Key::new("default", "pets"),
                spec(&["api.example.com"], "/pets"),
                one(),
            ),
            (
                Key::new("default", "pet-photos"),
                spec(&["api.example.com"], "/pets/photos"),
                one(),
            ),
            (
                Key::new("default", "other"),
                spec(&["other.example.com", "API.example.com"], "/other"),
                one(),
            ),
        ];
        let config = render(&apis, &PluginConfigs::default(), &Options::default());
        let hosts = hcm(&config)["route_config"]["virtual_hosts"].as_array().unwrap();
        let names = |host: &Value| -> Vec<String> {
            host["routes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        };
        let find = |domain: &str| {
            hosts
                .iter()
                .find(|h| h["domains"].as_array().unwrap().contains(&json!(domain)))
                .unwrap()
        };
        assert_eq!(
            names(find("api.example.com")),
            ["pet-photos", "other", "pets", "root"]
        );
        assert_eq!(names(find("other.example.com")), ["other", "root"]);
        assert_eq!(names(find("*")), ["root"]);
        assert_eq!(hosts.len(), 3);
        assert_eq!(hcm(&config)["route_config"]["ignore_port_in_host_matching"], true);
    }

    #[test]
    fn two_apis_on_the_same_host_and_base_path_conflict() {
        let one = || checked(vec![backend("svc", 100, None)]);
        let apis = [
            (Key::new("default", "a"), spec(&["api.example.com"], "/x"), one()),
            (Key::new("default", "b"), spec(&["api.example.com"], "/x"), one()),
        ];
        let routed: Vec<RoutedApi<'_>> = apis
            .iter()
            .map(|(key, spec, checked)| RoutedApi { key, spec, checked })
            .collect();
        let problem = bootstrap(
            &Key::new("default", "gw"),
            &routed,
            &PluginConfigs::default(),
            &Options::default(),
        )
        .unwrap_err();
        assert_eq!(problem.reason, "Conflict");
    }

    #[test]
    fn plugins_come_in_chain_order_before_the_router() {
        let config = render(
            &[],
            &all_plugins(),
            &Options {
                plugins_dir: "/opt/kea/".into(),
                ..Options::default()
            },
        );
        let filters = hcm(&config)["http_filters"].as_array().unwrap();
        let names: Vec<&str> = filters.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "kea.audit",
                "kea.auth",
                "kea.validate",
                "kea.cache",
                "envoy.filters.http.router"
            ]
        );
        let wasm = &filters[0]["typed_config"]["config"];
        assert_eq!(
            wasm["vm_config"]["code"]["local"]["filename"],
            "/opt/kea/audit.wasm"
        );
        assert_eq!(wasm["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(wasm["fail_open"], false);
        let text = wasm["configuration"]["value"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            serde_json::to_value(AuditConfig::default()).unwrap()
        );

        let some = PluginConfigs {
            validate: Some(ValidateConfig::default()),
            deployment: Deployment::Separate,
            ..PluginConfigs::default()
        };
        let config = render(&[], &some, &Options::default());
        let names: Vec<&str> = hcm(&config)["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["kea.validate", "envoy.filters.http.router"]);
    }

    #[test]
    fn the_combined_deployment_is_one_filter_with_a_section_per_plugin() {
        let configs = PluginConfigs {
            deployment: Deployment::Combined,
            validate: None,
            ..all_plugins()
        };
        let config = render(&[], &configs, &Options::default());
        let filters = hcm(&config)["http_filters"].as_array().unwrap();
        let names: Vec<&str> = filters.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["kea", "envoy.filters.http.router"]);
        let wasm = &filters[0]["typed_config"]["config"];
        assert_eq!(wasm["vm_config"]["code"]["local"]["filename"], "dist/kea.wasm");
        assert_eq!(wasm["root_id"], "kea");
        assert_eq!(wasm["allow_on_headers_stop_iteration"], true);
        let text = wasm["configuration"]["value"].as_str().unwrap();
        let sections: kea_suite::SuiteConfig = serde_json::from_str(text).unwrap();
        assert_eq!(
            sections,
            kea_suite::SuiteConfig {
                audit: Some(AuditConfig::default()),
                auth: Some(AuthConfig::default()),
                validate: None,
                cache: Some(CacheConfig::default()),
            }
        );
        // No plugin, no module.
        let config = render(&[], &PluginConfigs::default(), &Options::default());
        assert_eq!(hcm(&config)["http_filters"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn only_the_validate_filter_allows_stopping_on_headers() {
        let config = render(&[], &all_plugins(), &Options::default());
        for filter in hcm(&config)["http_filters"].as_array().unwrap() {
            let wasm = &filter["typed_config"]["config"];
            let expected = filter["name"] == "kea.validate";
            assert_eq!(
                wasm.get("allow_on_headers_stop_iteration") == Some(&json!(true)),
                expected,
                "{filter}"
            );
        }
    }

    #[test]
    fn listener_normalises_paths_before_anything_matches_them() {
        let config = render(&[], &PluginConfigs::default(), &Options::default());
        let hcm = hcm(&config);
        assert_eq!(hcm["normalize_path"], true);
        assert_eq!(hcm["merge_slashes"], true);
        assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST");
        assert_eq!(config["admin"]["address"]["socket_address"]["port_value"], 9901);
        assert_eq!(
            config["static_resources"]["listeners"][0]["address"]["socket_address"]["address"],
            "0.0.0.0"
        );
    }

    fn auth_with(provider: Value) -> PluginConfigs {
        let auth: AuthConfig = serde_json::from_value(json!({"providers": [provider]})).unwrap();
        PluginConfigs {
            auth: Some(auth),
            ..PluginConfigs::default()
        }
    }

    #[test]
    fn provider_clusters_come_from_flags_or_their_urls() {
        let remote = auth_with(json!({"name": "idp", "issuer": "https://idp.example.com",
            "jwks": {"remote": {"cluster": "idp", "uri": "https://idp.example.com:8443/keys"}}}));
        let config = render(&[], &remote, &Options::default());
        let cluster = &config["static_resources"]["clusters"][0];
        assert_eq!(cluster["name"], "idp");
        assert_eq!(cluster["type"], "STRICT_DNS");
        let endpoint = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(endpoint["address"], "idp.example.com");
        assert_eq!(endpoint["port_value"], 8443);
        assert_eq!(
            cluster["transport_socket"]["typed_config"]["sni"],
            "idp.example.com"
        );

        let discovery = auth_with(json!({"name": "idp", "issuer": "http://127.0.0.1:8082",
            "jwks": {"discovery": {"cluster": "demo-idp"}}}));
        let config = render(&[], &discovery, &Options::default());
        let cluster = &config["static_resources"]["clusters"][0];
        assert_eq!(cluster["name"], "demo-idp");
        assert_eq!(cluster["type"], "STATIC");
        assert!(cluster.get("transport_socket").is_none());

        let options = Options {
            clusters: vec!["demo-idp=localhost:9000".parse().unwrap()],
            ..Options::default()
        };
        let rendered = bootstrap(&Key::new("default", "gw"), &[], &discovery, &options).unwrap();
        let endpoint = &rendered.config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
            ["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        assert_eq!(endpoint["address"], "localhost");
        assert!(rendered.unused.is_empty());
    }

    #[test]
    fn a_cluster_without_url_or_flag_is_an_error() {
        let audit: AuditConfig =
            serde_json::from_value(json!({"sinks": {"http": {"cluster": "logs", "format": "jsonLines"}}}))
                .unwrap();
        let configs = PluginConfigs {
            audit: Some(audit),
            ..PluginConfigs::default()
        };
        let problem = bootstrap(&Key::new("default", "gw"), &[], &configs, &Options::default()).unwrap_err();
        assert_eq!(problem.reason, "UnknownCluster");
        assert!(problem.message.contains("--cluster logs=HOST:PORT"), "{problem}");
        let options = Options {
            clusters: vec![
                "logs=10.0.0.1:9000".parse().unwrap(),
                "typo=1.2.3.4:1".parse().unwrap(),
            ],
            ..Options::default()
        };
        let rendered = bootstrap(&Key::new("default", "gw"), &[], &configs, &options).unwrap();
        assert_eq!(rendered.unused, ["--cluster typo=1.2.3.4:1"]);
    }

    #[test]
    fn secrets_named_by_env_fields_come_from_envoys_environment() {
        let audit: AuditConfig =
            serde_json::from_value(json!({"redact": {"hashKeyEnv": "AUDIT_KEY"}})).unwrap();
        let configs = PluginConfigs {
            audit: Some(audit),
            ..PluginConfigs::default()
        };
        let config = render(&[], &configs, &Options::default());
        let vm = &hcm(&config)["http_filters"][0]["typed_config"]["config"]["vm_config"];
        assert_eq!(vm["environment_variables"]["host_env_keys"], json!(["AUDIT_KEY"]));
    }

    #[test]
    fn addresses_and_durations() {
        assert_eq!(
            "[::1]:80".parse::<Address>().unwrap(),
            Address {
                host: "::1".into(),
                port: 80
            }
        );
        assert!("host".parse::<Address>().is_err());
        assert!("host:0".parse::<Address>().is_err());
        assert!("=h:1".parse::<Named>().is_err());
        assert_eq!(
            split_url("https://a.example.com/x").unwrap(),
            (
                true,
                Address {
                    host: "a.example.com".into(),
                    port: 443
                }
            )
        );
        assert_eq!(
            split_url("http://u@[::1]:81?q").unwrap(),
            (
                false,
                Address {
                    host: "::1".into(),
                    port: 81
                }
            )
        );
        assert!(split_url("ftp://x").is_none());
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_millis(250)), "0.25s");
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "*.a.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("a.example.com", "*"));
    }
}
