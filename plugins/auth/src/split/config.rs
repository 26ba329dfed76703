//! Configuration of the auth plugin's split stage: per route, which backend each request goes to
//! (exactly by weight, or stickily per principal) and which requests are mirrored. The stage marks
//! a request with [`BACKEND_HEADER`] (and [`MIRROR_HEADER`]); the routes KEA renders match on those
//! marks, with the route's own weights as the fallback when no mark is present.

use kea_plugin_sdk::MatchSpec;
use serde::{Deserialize, Serialize};

/// Request header naming the backend (its key) the route must send the request to.
pub const BACKEND_HEADER: &str = "x-kea-backend";
/// Request header present (value `1`) on requests the route must also mirror.
pub const MIRROR_HEADER: &str = "x-kea-mirror";

/// One split: the first split whose `match` holds applies to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitConfig {
    /// Which requests (hosts, base path, as the auth rules match).
    #[serde(rename = "match", default)]
    pub match_spec: MatchSpec,
    /// Names the split's state shared by every worker (e.g. `shop/pets`); changing backends or
    /// weights starts a new cycle.
    pub name: String,
    /// Backends and their weights; at least one, positive total.
    pub backends: Vec<SplitBackend>,
    /// Same principal → same backend while the weights stay the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Share of requests (percent, 0 < p ≤ 100, at most two decimals) marked for mirroring,
    /// exactly: p of every 100 consecutive requests (per 10,000 for fractional percents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<f64>,
}

/// A backend of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitBackend {
    /// The value of [`BACKEND_HEADER`] for this backend (a header value: visible ASCII).
    pub key: String,
    /// Relative weight (the operator writes percents summing to 100); 0 = receives nothing.
    pub weight: u32,
}

/// What keeps a client on one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sticky {
    pub by: StickyBy,
    /// With `by: Header`: the request header whose value identifies the client (e.g. a session id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StickyBy {
    /// The authenticated principal (`x-kea-sub`, from a token, API key or single sign-on session);
    /// anonymous requests are split exactly instead.
    Principal,
    /// The value of `header`; requests without it are split exactly instead.
    Header,
}
