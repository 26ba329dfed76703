//! The operator's HTTP endpoint, served by every replica (leader or not): `/healthz`, `/readyz`,
//! `/metrics` (Prometheus), `/bundles/<namespace>/<api>` (the validate plugin's bundles, with
//! `ETag` = the bundle's sha256 and `If-None-Match` → 304) and the docs portal `/docs/`
//! ([`super::portal`]), read from the bundle ConfigMaps and watched resources, and `POST
//! /v3/discovery:listeners|clusters`: the xDS resources of standalone gateways (Envoy's REST-JSON
//! transport), read from their xDS ConfigMaps.

use super::metrics::{Metrics, ResultLabel};
use crate::crd::{ApiDefinition, GatewayBinding, Model};
use crate::render::objects::{api_object_name, BUNDLE_KEY, BUNDLE_SHA_ANNOTATION};
use crate::render::standalone::{
    self, CLUSTERS_KEY, CLUSTER_TYPE, LISTENERS_KEY, LISTENER_TYPE, XDS_VERSION_ANNOTATION,
};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::{ObjectRef, Store};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::instrument;

#[derive(Debug, Clone)]
pub struct HttpState {
    pub bundles: Store<ConfigMap>,
    /// What the docs portal lists.
    pub apis: Store<ApiDefinition>,
    pub gateways: Store<GatewayBinding>,
    pub models: Store<Model>,
    /// Where the in-browser validator's files are (`dist/web` built by `scripts/web-build.sh`).
    pub portal_assets: Option<std::path::PathBuf>,
    /// Portal files gzip-compressed, by the digest of their content.
    pub gzipped: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<[u8]>>>>,
    /// Documents summarised for the portal's index, by bundle sha256.
    pub summaries: Arc<std::sync::Mutex<std::collections::HashMap<String, crate::render::portal::Summary>>>,
    /// Standalone gateways' listeners and clusters.
    pub xds: Store<ConfigMap>,
    pub metrics: Arc<Metrics>,
    /// Set once the bundle ConfigMaps are listed.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/bundles/{namespace}/{api}", get(bundle))
        .route("/v3/discovery:listeners", post(listeners))
        .route("/v3/discovery:clusters", post(clusters))
        .merge(super::portal::routes())
        .with_state(state)
}

/// Serves until `shutdown` resolves.
#[instrument(level = "info", skip(state, shutdown), err(Display))]
pub async fn serve(
    address: SocketAddr,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving /healthz /readyz /metrics /bundles /docs /v3/discovery");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "bundles not listed yet").into_response()
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[instrument(level = "debug", skip(state, headers))]
async fn bundle(
    State(state): State<HttpState>,
    Path((namespace, api)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let found = state
        .bundles
        .get(&ObjectRef::new(&api_object_name(&api)).within(&namespace));
    let Some(config_map) = found else {
        state
            .metrics
            .bundle_requests
            .get_or_create(&ResultLabel { result: "not_found" })
            .inc();
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no bundle for API {namespace}/{api}"),
        );
    };
    let sha256 = config_map
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(BUNDLE_SHA_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    let etag = format!("\"{sha256}\"");
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        // Weak comparison (RFC 9110 13.1.2): `W/"x"` matches `"x"`.
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    if matches {
        state
            .metrics
            .bundle_requests
            .get_or_create(&ResultLabel {
                result: "not_modified",
            })
            .inc();
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, "no-cache".to_string()),
            ],
        )
            .into_response();
    }
    let body = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(BUNDLE_KEY))
        .cloned()
        .unwrap_or_default();
    state
        .metrics
        .bundle_requests
        .get_or_create(&ResultLabel { result: "ok" })
        .inc();
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

async fn listeners(State(state): State<HttpState>, body: axum::body::Bytes) -> Response {
    discovery(&state, &body, LISTENERS_KEY, LISTENER_TYPE)
}

async fn clusters(State(state): State<HttpState>, body: axum::body::Bytes) -> Response {
    discovery(&state, &body, CLUSTERS_KEY, CLUSTER_TYPE)
}

/// Answers an Envoy `DiscoveryRequest` (REST-JSON): the resources of the gateway its
/// `node.cluster` names (`namespace/name`), with their version. Envoy keeps what it has when the
/// answer is an error, so an unknown gateway or a missing ConfigMap never empties a gateway.
#[instrument(level = "debug", skip(state, body))]
fn discovery(state: &HttpState, body: &[u8], key: &str, type_url: &str) -> Response {
    let count = |result: &'static str| {
        state
            .metrics
            .xds_requests
            .get_or_create(&ResultLabel { result })
            .inc();
    };
    let request: serde_json::Value = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => {
            count("bad_request");
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("not a DiscoveryRequest: {error}"),
            );
        }
    };
    let node_cluster = request
        .pointer("/node/cluster")
        .and_then(|cluster| cluster.as_str())
        .unwrap_or_default();
    let Some(gateway) = standalone::gateway_of_node_cluster(node_cluster) else {
        count("bad_request");
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("node.cluster {node_cluster:?} is not NAMESPACE/GATEWAY (Envoy's --service-cluster)"),
        );
    };
    let found = state
        .xds
        .get(&ObjectRef::new(&standalone::xds_object_name(&gateway.name)).within(&gateway.namespace));
    let resources = found.as_ref().and_then(|config_map| {
        let text = config_map.data.as_ref()?.get(key)?;
        serde_json::from_str::<serde_json::Value>(text).ok()
    });
    let version = found
        .as_ref()
        .and_then(|config_map| config_map.metadata.annotations.as_ref())
        .and_then(|annotations| annotations.get(XDS_VERSION_ANNOTATION))
        .cloned();
    let (Some(resources), Some(version)) = (resources, version) else {
        count("not_found");
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no configuration for gateway {gateway} yet"),
        );
    };
    count("ok");
    let answer = serde_json::json!({
        "version_info": version,
        "resources": resources,
        "type_url": type_url,
        "nonce": version,
    });
    ([(header::CONTENT_TYPE, "application/json")], answer.to_string()).into_response()
}

/// An RFC 9457 problem+json answer.
pub(super) fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}
