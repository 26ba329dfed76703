//! Where an API's routes go — an Istio `VirtualService`, a Gateway API `HTTPRoute`, a standalone
//! gateway's own Envoy configuration — and what each of them can express. The spec checks refuse
//! an input a target cannot express (with the field and the reason) instead of rendering an
//! object the cluster refuses or reads differently: a bare `*` host on a mesh-bound
//! VirtualService (istiod's webhook), a host or duration outside Gateway API's patterns, a base
//! path the real HTTPRoute rules refuse.

use super::Problem;
use crate::crd::{GatewayBindingSpec, ParentRef};
use std::time::Duration;

/// The route objects written for every API of a gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTargets {
    /// A VirtualService per API, bound to these Istio Gateways (`namespace/name`; none = the mesh).
    pub virtual_service: Option<Vec<String>>,
    /// An HTTPRoute per API, attached to these parents (namespace filled in).
    pub http_route: Option<Vec<ParentRef>>,
}

impl RouteTargets {
    /// What a binding asks for: a VirtualService when it says so, or by default unless the
    /// operator runs the gateway itself (a standalone gateway routes in its own Envoy
    /// configuration); an HTTPRoute when it says so. Names without a namespace are resolved in
    /// the binding's, as Istio and Gateway API would resolve them in the route's.
    pub fn of(binding: &GatewayBindingSpec, binding_namespace: &str) -> Self {
        let routing = &binding.routing;
        let standalone = binding.standalone.is_some();
        let virtual_service =
            (routing.virtual_service.is_some() || (routing.http_route.is_none() && !standalone)).then(|| {
                routing
                    .virtual_service
                    .iter()
                    .flat_map(|vs| vs.gateways.iter())
                    .map(|gateway| {
                        if gateway.contains('/') || gateway == MESH {
                            gateway.clone()
                        } else {
                            format!("{binding_namespace}/{gateway}")
                        }
                    })
                    .collect()
            });
        let http_route = routing.http_route.as_ref().map(|http_route| {
            http_route
                .parent_refs
                .iter()
                .map(|parent| ParentRef {
                    namespace: parent
                        .namespace
                        .clone()
                        .or_else(|| Some(binding_namespace.to_string())),
                    ..parent.clone()
                })
                .collect()
        });
        Self {
            virtual_service,
            http_route,
        }
    }

    /// Where a binding's docs route goes: a VirtualService on Istio gateways (whatever the API
    /// routes are), nothing on a standalone gateway (its Envoy serves the portal itself).
    pub fn docs(binding: &GatewayBindingSpec, binding_namespace: &str) -> Self {
        let gateways = Self::of(binding, binding_namespace)
            .virtual_service
            .unwrap_or_default();
        Self {
            virtual_service: binding.standalone.is_none().then_some(gateways),
            http_route: None,
        }
    }

    /// Whether the VirtualServices apply to the mesh's sidecars (no gateways, or `mesh` named).
    pub fn binds_mesh(&self) -> bool {
        self.virtual_service
            .as_ref()
            .is_some_and(|gateways| gateways.is_empty() || gateways.iter().any(|g| g == MESH))
    }

    /// Whether a Kubernetes route object (rather than a standalone gateway) carries the hosts.
    fn routes_in_cluster(&self) -> bool {
        self.virtual_service.is_some() || self.http_route.is_some()
    }
}

/// Istio's reserved gateway name for the sidecars of the mesh.
pub const MESH: &str = "mesh";

/// Gateway API's limit of `hostnames` and of `backendRefs` per rule (`maxItems` in the CRD).
pub const GATEWAY_API_MAX_ITEMS: usize = 16;

/// The longest duration Gateway API's `Duration` can write: at most 5 digits per unit
/// (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`, GEP-2257).
pub const GATEWAY_API_MAX_DURATION: Duration =
    Duration::from_millis(99_999 * 3_600_000 + 59 * 60_000 + 59 * 1000 + 999);

/// Gateway API's duration format: hours, minutes, seconds, milliseconds, each at most 5 digits,
/// never rounding a positive duration down to zero ("no timeout"). `None` past
/// [`GATEWAY_API_MAX_DURATION`].
pub fn gateway_api_duration(duration: Duration) -> Option<String> {
    if duration > GATEWAY_API_MAX_DURATION {
        return None;
    }
    let mut millis = duration.as_nanos().div_ceil(1_000_000).max(1);
    let mut text = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        let count = millis / size;
        millis %= size;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
        }
    }
    Some(text)
}

/// The hostnames of the API's HTTPRoute: "any host" is an empty list (a bare `*` is not a Gateway
/// API hostname), so a `*` among the hosts makes the list empty.
pub fn http_route_hostnames(hosts: &[String]) -> Vec<String> {
    if hosts.iter().any(|host| host == "*") {
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::with_capacity(hosts.len());
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    names
}

/// Checks hosts (`at` names the field) against what the targets can express.
pub fn check_hosts(at: &str, hosts: &[String], targets: &RouteTargets) -> Result<(), Problem> {
    if !targets.routes_in_cluster() {
        return Ok(());
    }
    for (index, host) in hosts.iter().enumerate() {
        if host == "*" {
            if targets.binds_mesh() {
                return Err(Problem::invalid(
                    "WildcardHostOnMesh",
                    format!(
                        "{at}[{index}] \"*\": Istio refuses a wildcard host on VirtualServices bound to the mesh (the GatewayBinding gives no spec.routing.virtualService.gateways): name the hosts, or bind the routes to an Istio Gateway"
                    ),
                ));
            }
            continue;
        }
        if let Err(reason) = host_name(host) {
            return Err(Problem::invalid(
                "InvalidHost",
                format!("{at}[{index}] {host:?}: {reason}"),
            ));
        }
    }
    if targets.http_route.is_some() && http_route_hostnames(hosts).len() > GATEWAY_API_MAX_ITEMS {
        return Err(Problem::invalid(
            "TooManyHosts",
            format!("{at}: an HTTPRoute holds at most {GATEWAY_API_MAX_ITEMS} hostnames"),
        ));
    }
    Ok(())
}

/// A host Istio and Gateway API both take: a lowercase DNS name (RFC 1123), optionally with a
/// leading `*.` wildcard label — no port, no IP address, at most 253 characters.
fn host_name(host: &str) -> Result<(), &'static str> {
    if host.contains(':') {
        return Err("a host without a port is needed (routes match the host name only)");
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.is_empty() || host.len() > 253 {
        return Err("must be a DNS name of at most 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |label: &&str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-')
    };
    if !labels.iter().all(label_ok) {
        return Err(
            "must be a lowercase DNS name (letters, digits, '-' and '.'), optionally starting with '*.'",
        );
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("an IP address is not a host name (Gateway API refuses it)");
    }
    Ok(())
}

/// Checks a base path against the path rules of Gateway API's HTTPRoute (the strictest target;
/// a path they refuse is also one no normalised request path matches): starts with `/`, only
/// RFC 3986 path characters and `%XX` escapes, no `%2F`, `#`, `//`, `/./`, `/../`, no trailing
/// `/.` or `/..`.
pub fn check_base_path(base_path: &str) -> Result<(), Problem> {
    let refuse =
        |why: &str| Problem::invalid("InvalidBasePath", format!("spec.basePath {base_path:?}: {why}"));
    if !base_path.starts_with('/') {
        return Err(refuse("must start with '/'"));
    }
    for needle in ["//", "/./", "/../"] {
        if base_path.contains(needle) {
            return Err(refuse(&format!("must not contain {needle:?}")));
        }
    }
    if base_path.ends_with("/.") || base_path.ends_with("/..") {
        return Err(refuse("must not end with a '.' or '..' segment"));
    }
    if base_path.to_ascii_lowercase().contains("%2f") {
        return Err(refuse("must not contain an encoded '/' (%2F)"));
    }
    let bytes = base_path.as_bytes();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let escape = bytes.get(index + 1..index + 3);
            if !escape.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
                return Err(refuse("'%' must start a %XX escape"));
            }
            index += 3;
            continue;
        }
        if !(byte.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&byte)) {
            let shown = base_path[index..].chars().next().unwrap_or(char::from(byte));
            return Err(refuse(&format!(
                "{shown:?} is not a path character (escape it as %XX)"
            )));
        }
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_api_durations_use_at_most_five_digits_per_unit() {
        let cases = [
            (Duration::from_millis(100_500), "1m40s500ms"),
            (Duration::from_secs(30 * 3600), "30h"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_nanos(1), "1ms"),
            (Duration::from_secs(3661), "1h1m1s"),
            (GATEWAY_API_MAX_DURATION, "99999h59m59s999ms"),
        ];
        for (duration, text) in cases {
            assert_eq!(gateway_api_duration(duration).as_deref(), Some(text));
        }
        assert_eq!(
            gateway_api_duration(GATEWAY_API_MAX_DURATION + Duration::from_millis(1)),
            None
        );
    }

    #[test]
    fn any_host_is_an_empty_hostname_list() {
        let hosts = |list: &[&str]| list.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert!(http_route_hostnames(&hosts(&["*"])).is_empty());
        assert!(http_route_hostnames(&hosts(&["a.example", "*"])).is_empty());
        assert_eq!(
            http_route_hostnames(&hosts(&["a.example", "*.b.example", "a.example"])),
            hosts(&["a.example", "*.b.example"])
        );
    }

    fn istio(gateways: &[&str]) -> RouteTargets {
        RouteTargets {
            virtual_service: Some(gateways.iter().map(|g| g.to_string()).collect()),
            http_route: None,
        }
    }

    #[test]
    fn a_wildcard_host_is_refused_only_on_the_mesh() {
        let star = ["*".to_string()];
        let refused = check_hosts("spec.hosts", &star, &istio(&[])).unwrap_err();
        assert_eq!(refused.reason, "WildcardHostOnMesh");
        assert!(check_hosts("spec.hosts", &star, &istio(&["mesh", "ns/gw"])).is_err());
        assert!(check_hosts("spec.hosts", &star, &istio(&["istio-system/ingress"])).is_ok());
        let standalone = RouteTargets::default();
        assert!(check_hosts("spec.hosts", &star, &standalone).is_ok());
    }

    #[test]
    fn hosts_are_lowercase_dns_names_without_ports() {
        let targets = istio(&["ns/gw"]);
        for good in ["shop.example.com", "*.example.com", "localhost", "a-1.b2"] {
            assert!(check_hosts("h", &[good.into()], &targets).is_ok(), "{good}");
        }
        for bad in [
            "Shop.example.com",
            "shop.example.com:8080",
            "shop..example",
            "-shop.example",
            "shop.*",
            "*",
            "10.0.0.1",
            "*.",
            "sh_op",
        ] {
            if bad == "*" {
                continue;
            }
            let refused = check_hosts("h", &[bad.into()], &targets).unwrap_err();
            assert_eq!(refused.reason, "InvalidHost", "{bad}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("h{i}.example")).collect();
        let gateway_api = RouteTargets {
            virtual_service: None,
            http_route: Some(vec![]),
        };
        assert_eq!(
            check_hosts("h", &many, &gateway_api).unwrap_err().reason,
            "TooManyHosts"
        );
        assert!(check_hosts("h", &many, &targets).is_ok());
    }

    #[test]
    fn base_paths_follow_the_http_route_path_rules() {
        for good in ["/", "/pets", "/v2/models/iris", "/a%20b", "/a:b@c", "/pets/"] {
            assert!(check_base_path(good).is_ok(), "{good}");
        }
        for bad in [
            "pets", "/a//b", "/a/./b", "/a/../b", "/a/.", "/a/..", "/a%2Fb", "/a%2fb", "/a#b", "/a?b",
            "/a b", "/a%zz", "/a%2", "/ä",
        ] {
            assert_eq!(
                check_base_path(bad).unwrap_err().reason,
                "InvalidBasePath",
                "{bad}"
            );
        }
    }
}
