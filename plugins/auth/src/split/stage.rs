//! The per-request part: after the auth decision lets a request through, the first matching split
//! marks it with its backend and, when due, for mirroring.

use super::compile::{Split, Splits, StickyKey};
use super::config::{BACKEND_HEADER, MIRROR_HEADER};
use super::pick::{mirrored, rendezvous, smooth_weighted, MIRROR_CYCLE};
use super::shared::{self, SharedError};
use crate::metrics::AuthMetrics;
use crate::sources::RequestHeaders;
use kea_plugin_sdk::host::request_header;
use kea_plugin_sdk::{HeaderMap, Host, RequestView};
use std::borrow::Cow;

/// What the stage knows about the request besides its headers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub view: &'a RequestView<'a>,
    /// The verified principal (`x-kea-sub`), `None` for anonymous requests.
    pub principal: Option<&'a str>,
    pub headers: &'a RequestHeaders,
    /// Headers the auth stage sets from verified claims: a sticky header among them is read back
    /// from the proxy (the verified value), not from the client's request.
    pub forwarded_headers: &'a [String],
}

/// Creates the shared state of every split that no worker created yet, so requests never race to
/// create it (a write without a CAS token cannot detect a concurrent one).
pub fn prepare(host: &impl Host, splits: &Splits) {
    for split in splits.iter() {
        shared::prepare(
            host,
            &split.state_key,
            &shared::encode_currents(&vec![0; split.weights.len()]),
        );
        if split.mirror_basis_points.is_some() {
            shared::prepare(host, &split.mirror_key, &0u64.to_le_bytes());
        }
    }
}

/// Marks the request for the first split that matches it. Client-sent `x-kea-backend` and
/// `x-kea-mirror` are already gone: the auth stage removes every client `x-kea-*` header first.
pub fn mark(host: &impl Host, splits: &Splits, metrics: &AuthMetrics, request: &Request<'_>) {
    let Some(split) = splits.for_request(request.view) else {
        return;
    };
    match pick_backend(host, split, request) {
        Ok(index) => {
            if let Some(key) = split.keys.get(index) {
                host.set_header(HeaderMap::RequestHeaders, BACKEND_HEADER, Some(key.as_bytes()));
                metrics.split_marked.add(host, 1);
                log::debug!("kea-auth: split {} -> {key}", split.name);
            }
        }
        Err(err) => {
            // No mark: the route's weighted fallback serves the request.
            metrics.split_unmarked.add(host, 1);
            log::debug!("kea-auth: split {} not marked: {err}", split.name);
        }
    }
    if let Some(basis_points) = split.mirror_basis_points {
        match mirror_due(host, split, basis_points) {
            Ok(true) => {
                host.set_header(HeaderMap::RequestHeaders, MIRROR_HEADER, Some(b"1"));
                metrics.mirror_marked.add(host, 1);
            }
            Ok(false) => {}
            Err(err) => {
                metrics.mirror_unmarked.add(host, 1);
                log::debug!("kea-auth: mirror of {} not decided: {err}", split.name);
            }
        }
    }
    // The route was chosen before this filter ran; Envoy clears its route cache when a wasm filter
    // changes request headers, so the router matches again, now on the marks (the end-to-end test
    // shows exactness only that re-match can give). Envoy's `clear_route_cache` foreign function
    // would do the same at one more host call per request (−4 % throughput measured).
}

/// Why a request of a split route was not marked.
#[derive(Debug, thiserror::Error)]
enum Unmarked {
    #[error(transparent)]
    Shared(#[from] SharedError),
    /// Compilation refuses such splits; kept as an error rather than a panic.
    #[error("no backend has a positive weight")]
    NoWeight,
}

fn pick_backend(host: &impl Host, split: &Split, request: &Request<'_>) -> Result<usize, Unmarked> {
    if let Some(identifier) = sticky_identifier(host, split, request) {
        let backends = split
            .keys
            .iter()
            .map(String::as_str)
            .zip(split.weights.iter().copied());
        if let Some(index) = rendezvous(identifier.as_bytes(), backends) {
            return Ok(index);
        }
    }
    exact(host, split)
}

/// The sticky identifier, when the split is sticky and the request carries one.
fn sticky_identifier<'r>(host: &impl Host, split: &Split, request: &Request<'r>) -> Option<Cow<'r, str>> {
    let value = match split.sticky.as_ref()? {
        StickyKey::Principal => Cow::Borrowed(request.principal?),
        StickyKey::Header(name) if request.forwarded_headers.contains(name) => {
            Cow::Owned(request_header(host, name)?)
        }
        StickyKey::Header(name) => Cow::Owned(request.headers.get(name)?),
    };
    (!value.is_empty()).then_some(value)
}

/// The next backend of the split's smooth weighted round-robin, shared by every worker.
fn exact(host: &impl Host, split: &Split) -> Result<usize, Unmarked> {
    let backends = split.weights.len();
    shared::update(host, &split.state_key, |raw| {
        let mut currents = shared::decode_currents(raw, backends);
        let picked = smooth_weighted(&mut currents, &split.weights);
        (shared::encode_currents(&currents), picked)
    })?
    .ok_or(Unmarked::NoWeight)
}

/// Whether this request is one of the mirrored ones, by the shared counter.
fn mirror_due(host: &impl Host, split: &Split, basis_points: u32) -> Result<bool, SharedError> {
    shared::update(host, &split.mirror_key, |raw| {
        let n = shared::decode_counter(raw) % MIRROR_CYCLE;
        (
            ((n + 1) % MIRROR_CYCLE).to_le_bytes().to_vec(),
            mirrored(n, basis_points),
        )
    })
}
