//! The docs portal on the operator's HTTP endpoint (`/docs/`), served by every replica from
//! watched ApiDefinitions, GatewayBindings, Models and bundle ConfigMaps — so the page follows the
//! cluster without a restart. Gateways route their `docsHost`'s `/docs/` here; the `Host` header
//! names the gateway whose APIs are listed.

use super::http::{problem, HttpState};
use crate::crd::{ApiDefinition, GatewayBinding};
use crate::render::model::documented;
use crate::render::model::objects::{MODEL_LABEL, VERSION_LABEL};
use crate::render::objects::{api_object_name, BUNDLE_KEY, BUNDLE_SHA_ANNOTATION, DOCUMENT_KEY};
use crate::render::portal::{
    self, Catalog, ModelSource, Readiness, Source, Summary, ASSETS, SECURITY_HEADERS, VALIDATOR_FILES,
};
use crate::render::Key;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tracing::instrument;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/docs", get(|| async { Redirect::permanent(portal::PREFIX) }))
        .route("/docs/", get(index))
        .route("/docs/catalog.json", get(catalog))
        .route("/docs/assets/{file}", get(asset))
        .route("/docs/{namespace}/{api}/{file}", get(entry_file))
}

/// A portal file: its media type, the portal's security headers, revalidation on every use
/// (`no-cache` + `ETag`), so an edit shows at once and an unchanged file costs a 304, and gzip
/// for clients that take it (compressed once per content: see [`HttpState::gzipped`]).
fn file(state: &HttpState, request: &HeaderMap, content_type: &str, body: Vec<u8>) -> Response {
    let digest = crate::render::standalone::hex(Sha256::digest(&body).get(..12).unwrap_or_default());
    let compress = body.len() >= portal::GZIP_MIN_BYTES
        && request
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(portal::accepts_gzip);
    // Each representation has its own strong validator (RFC 9110 8.8.3).
    let etag = if compress {
        format!("\"{digest}-gz\"")
    } else {
        format!("\"{digest}\"")
    };
    let body = if compress {
        gzipped(state, &digest, &body)
    } else {
        body
    };
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim().trim_start_matches("W/") == etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type.to_string())], body).into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if compress {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// Compressed bodies kept; past this many the cache starts over.
const GZIPPED: usize = 256;

/// `body` gzip-compressed, from the cache when this content was compressed before (the validator
/// is 2.4 MB: compressing it per request would cost every visitor ~100 ms of CPU).
fn gzipped(state: &HttpState, digest: &str, body: &[u8]) -> Vec<u8> {
    if let Some(known) = state
        .gzipped
        .lock()
        .ok()
        .and_then(|cache| cache.get(digest).cloned())
    {
        return known.to_vec();
    }
    let compressed: Arc<[u8]> = portal::gzip(body).into();
    if let Ok(mut cache) = state.gzipped.lock() {
        if cache.len() >= GZIPPED {
            cache.clear();
        }
        cache.insert(digest.to_string(), Arc::clone(&compressed));
    }
    compressed.to_vec()
}

async fn index(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let [page, ..] = ASSETS;
    file(&state, &headers, page.content_type, page.body.as_bytes().to_vec())
}

#[instrument(level = "debug", skip(state, headers))]
async fn asset(State(state): State<HttpState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(found) = ASSETS.iter().find(|asset| asset.path == format!("assets/{name}")) {
        return file(
            &state,
            &headers,
            found.content_type,
            found.body.as_bytes().to_vec(),
        );
    }
    // Only the validator's own files, by exact name: nothing else of the directory is served.
    let Some(dir) = state
        .portal_assets
        .as_ref()
        .filter(|_| VALIDATOR_FILES.contains(&name.as_str()))
    else {
        return problem(StatusCode::NOT_FOUND, &format!("no portal file {name}"));
    };
    match std::fs::read(dir.join(&name)) {
        Ok(body) => file(&state, &headers, portal::content_type(&name), body),
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(), name, "portal validator file missing");
            problem(
                StatusCode::NOT_FOUND,
                &format!("the in-browser validator is not installed ({name})"),
            )
        }
    }
}

/// The gateway whose docs host the request came to; `None`: no binding names that host, and the
/// portal lists every gateway's APIs.
fn gateway_of_host(state: &HttpState, headers: &HeaderMap) -> Option<Arc<GatewayBinding>> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(|host| kea_plugin_sdk::host::split_host_port(host).0.to_ascii_lowercase())?;
    state.gateways.state().into_iter().find(|binding| {
        binding
            .spec
            .docs_host
            .as_ref()
            .is_some_and(|docs| docs.eq_ignore_ascii_case(&host))
    })
}

fn readiness(conditions: &[Condition]) -> Readiness {
    match conditions
        .iter()
        .find(|condition| condition.type_ == crate::crd::condition::READY)
    {
        Some(ready) => Readiness {
            status: ready.status.clone(),
            reason: ready.reason.clone(),
            message: ready.message.clone(),
        },
        None => Readiness {
            status: "Unknown".into(),
            reason: "Pending".into(),
            message: "not evaluated yet".into(),
        },
    }
}

/// The gateway an API is bound to.
fn binding_key(api: &ApiDefinition) -> Key {
    let namespace = api.namespace().unwrap_or_default();
    Key::new(
        api.spec.gateway_namespace.clone().unwrap_or(namespace),
        api.spec.gateway.clone(),
    )
}

fn bundle_map(state: &HttpState, key: &Key) -> Option<Arc<ConfigMap>> {
    state
        .bundles
        .get(&ObjectRef::new(&api_object_name(&key.name)).within(&key.namespace))
}

/// Bundles kept summarised; past this many the cache starts over (summaries are cheap to redo).
const SUMMARIES: usize = 10_000;

/// The document's summary, read once per bundle: 500 APIs polled every 2 s by every open page
/// would otherwise parse 500 documents per poll.
fn summary(state: &HttpState, sha256: &str, config_map: &ConfigMap) -> Option<Summary> {
    let cached = !sha256.is_empty();
    if let Some(known) = state
        .summaries
        .lock()
        .ok()
        .and_then(|cache| cache.get(sha256).cloned())
        .filter(|_| cached)
    {
        return Some(known);
    }
    let document: Value = serde_json::from_str(config_map.data.as_ref()?.get(DOCUMENT_KEY)?).ok()?;
    let summary = Summary::of(&document);
    if let (true, Ok(mut cache)) = (cached, state.summaries.lock()) {
        if cache.len() >= SUMMARIES {
            cache.clear();
        }
        cache.insert(sha256.to_string(), summary.clone());
    }
    Some(summary)
}

#[instrument(level = "debug", skip_all)]
async fn catalog(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let gateway = gateway_of_host(&state, &headers);
    let gateway_key = gateway
        .as_ref()
        .map(|binding| Key::new(binding.namespace().unwrap_or_default(), binding.name_any()));
    let mut entries = Vec::new();
    for api in state.apis.state() {
        let bound_to = binding_key(&api);
        if gateway_key.as_ref().is_some_and(|key| *key != bound_to) {
            continue;
        }
        let labels = api.labels();
        // A model's per-version APIs are reached from its page (the weighted one).
        if labels.contains_key(VERSION_LABEL) {
            continue;
        }
        let key = Key::new(api.namespace().unwrap_or_default(), api.name_any());
        let Some(config_map) = bundle_map(&state, &key) else {
            continue;
        };
        let sha256 = config_map
            .annotations()
            .get(BUNDLE_SHA_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let Some(document) = summary(&state, &sha256, &config_map) else {
            continue;
        };
        let Some(binding) = state
            .gateways
            .get(&ObjectRef::new(&bound_to.name).within(&bound_to.namespace))
        else {
            continue;
        };
        let model = labels
            .get(MODEL_LABEL)
            .and_then(|name| state.models.get(&ObjectRef::new(name).within(&key.namespace)));
        let ready = match &model {
            Some(model) => readiness(&model.status.clone().unwrap_or_default().common.conditions),
            None => readiness(&api.status.clone().unwrap_or_default().common.conditions),
        };
        // A custom model's tensors may come from its serving class (read by its build Job).
        let documented = model.as_ref().map(|model| {
            let versions = model
                .status
                .as_ref()
                .map(|status| status.versions.as_slice())
                .unwrap_or_default();
            let read = documented::from_status(versions);
            let (spec, descriptions) = documented::documented_spec(&model.spec, &read, None);
            (spec.into_owned(), descriptions)
        });
        entries.push(portal::entry(
            &binding.spec,
            &Source {
                key: &key,
                spec: &api.spec,
                document: &document,
                sha256: &sha256,
                ready: Some(&ready),
                model: model
                    .as_ref()
                    .zip(documented.as_ref())
                    .map(|(model, (spec, descriptions))| ModelSource {
                        name: model.metadata.name.as_deref().unwrap_or_default(),
                        spec,
                        descriptions,
                    }),
            },
        ));
    }
    entries.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let catalog = Catalog {
        gateway: gateway_key.map_or_else(|| "*".to_string(), |key| key.to_string()),
        access: gateway
            .map(|binding| binding.spec.docs_access)
            .unwrap_or_default(),
        entries,
    };
    let body = serde_json::to_vec(&catalog).unwrap_or_default();
    file(&state, &headers, "application/json", body)
}

#[instrument(level = "debug", skip(state, headers))]
async fn entry_file(
    State(state): State<HttpState>,
    Path((namespace, api, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let key = Key::new(namespace, api);
    let not_found = || problem(StatusCode::NOT_FOUND, &format!("no document for API {key}"));
    let Some(config_map) = bundle_map(&state, &key) else {
        return not_found();
    };
    let data = |item: &str| config_map.data.as_ref().and_then(|data| data.get(item)).cloned();
    match name.as_str() {
        portal::DOCUMENT_JSON => match data(DOCUMENT_KEY) {
            Some(document) => file(&state, &headers, "application/json", document.into_bytes()),
            None => not_found(),
        },
        portal::DOCUMENT_YAML => {
            match data(DOCUMENT_KEY).and_then(|text| serde_json::from_str::<Value>(&text).ok()) {
                Some(document) => file(
                    &state,
                    &headers,
                    "application/yaml",
                    portal::yaml(&document).into_bytes(),
                ),
                None => not_found(),
            }
        }
        portal::VALIDATOR_CONFIG => validator(&state, &key, data(BUNDLE_KEY).as_deref(), &headers),
        _ => problem(
            StatusCode::NOT_FOUND,
            &format!("no portal file {name} for API {key}"),
        ),
    }
}

/// The validate plugin's configuration for one API, as its gateway runs it, with the bundle the
/// gateway fetches from `/bundles/` inline.
fn validator(state: &HttpState, key: &Key, bundle: Option<&str>, headers: &HeaderMap) -> Response {
    let api = state.apis.get(&ObjectRef::new(&key.name).within(&key.namespace));
    let binding = api.as_ref().and_then(|api| {
        let bound_to = binding_key(api);
        state
            .gateways
            .get(&ObjectRef::new(&bound_to.name).within(&bound_to.namespace))
    });
    let bundle = bundle.and_then(|text| serde_json::from_str::<kea_schema::Bundle>(text).ok());
    let (Some(api), Some(binding), Some(bundle)) = (api, binding, bundle) else {
        return problem(StatusCode::NOT_FOUND, &format!("no bundle for API {key}"));
    };
    match portal::validator_config(&binding.spec, key, &api.spec, &bundle) {
        Ok(config) => file(
            state,
            headers,
            "application/json",
            serde_json::to_vec(&config).unwrap_or_default(),
        ),
        Err(refused) => problem(StatusCode::CONFLICT, &format!("API {key}: {refused}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_become_readiness() {
        let ready: Condition = serde_json::from_value(serde_json::json!({
            "type": "Ready", "status": "False", "reason": "SchemaInvalid", "message": "paths./x: bad",
            "lastTransitionTime": "2026-12-06T17:00:00Z",
        }))
        .unwrap();
        let readiness = readiness(&[ready]);
        assert_eq!(readiness.status, "False");
        assert_eq!(readiness.reason, "SchemaInvalid");
        assert_eq!(super::readiness(&[]).status, "Unknown");
    }
}
