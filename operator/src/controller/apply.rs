//! Server-side apply of the objects the renderers build, with the operator's field manager.
//! Identical objects applied again within `refresh` are skipped (1,000 APIs re-reconciled would
//! otherwise rewrite thousands of unchanged objects); after `refresh` they are applied anyway, which
//! repairs edits made by hand.

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::instrument;

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "kea-operator";

pub struct Applier {
    client: Client,
    refresh: Duration,
    /// Per object: the digest last applied, when, and the fields the cluster dropped then.
    applied: Mutex<HashMap<String, LastApplied>>,
}

type LastApplied = (u64, Instant, Vec<String>);

/// What became of an applied object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Sent to the API server (false: identical to what was applied within `refresh`).
    pub written: bool,
    /// Fields of `spec` the cluster did not store: its CRD predates them and pruned them
    /// silently (e.g. an HTTPRoute's `timeouts` before Gateway API v1.2).
    pub dropped: Vec<String>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// Writes the `status` of one of KEA's resources with server-side apply (field manager
/// [`FIELD_MANAGER`]).
pub async fn apply_status<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The REST resource of the kinds the operator writes.
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ConfigMap" => "configmaps",
        "WasmPlugin" => "wasmplugins",
        "VirtualService" => "virtualservices",
        "HTTPRoute" => "httproutes",
        other => return ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, other)),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Applier {
    pub fn new(client: Client, refresh: Duration) -> Self {
        Self {
            client,
            refresh,
            applied: Mutex::new(HashMap::new()),
        }
    }

    fn api(&self, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resource(api_version, kind))
    }

    /// Applies `object` (apiVersion, kind, metadata.name/namespace set); not `written` when skipped
    /// as unchanged (the fields dropped then are those of the last write).
    #[instrument(level = "debug", skip_all, fields(kind = text(object, "/kind"), name = text(object, "/metadata/name")), ret, err(Display))]
    pub async fn apply(&self, object: &Value) -> Result<Applied, kube::Error> {
        let (api_version, kind) = (text(object, "/apiVersion"), text(object, "/kind"));
        let (namespace, name) = (
            text(object, "/metadata/namespace"),
            text(object, "/metadata/name"),
        );
        let id = format!("{api_version}/{kind}/{namespace}/{name}");
        let mut hasher = DefaultHasher::new();
        object.to_string().hash(&mut hasher);
        let digest = hasher.finish();
        if let Ok(applied) = self.applied.lock() {
            if let Some((seen, when, dropped)) = applied.get(&id) {
                if *seen == digest && when.elapsed() < self.refresh {
                    return Ok(Applied {
                        written: false,
                        dropped: dropped.clone(),
                    });
                }
            }
        }
        let stored = self
            .api(api_version, kind, namespace)
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await?;
        let mut dropped = Vec::new();
        if let (Some(sent), Some(kept)) = (object.get("spec"), stored.data.get("spec")) {
            dropped_fields("spec", sent, kept, &mut dropped);
        }
        if let Ok(mut applied) = self.applied.lock() {
            applied.insert(id, (digest, Instant::now(), dropped.clone()));
        }
        Ok(Applied {
            written: true,
            dropped,
        })
    }

    /// Deletes an object the operator wrote earlier and no longer wants; absent is fine.
    #[instrument(level = "debug", skip(self), err(Display))]
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), kube::Error> {
        if let Ok(mut applied) = self.applied.lock() {
            applied.remove(&format!("{api_version}/{kind}/{namespace}/{name}"));
        }
        match self
            .api(api_version, kind, namespace)
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Forgets what was applied (a new leadership term starts from what the cluster holds).
    pub fn forget(&self) {
        if let Ok(mut applied) = self.applied.lock() {
            applied.clear();
        }
    }
}

/// Paths (under `at`) of the fields of `sent` that `stored` lacks: what the cluster pruned.
fn dropped_fields(at: &str, sent: &Value, stored: &Value, out: &mut Vec<String>) {
    match (sent, stored) {
        (Value::Object(sent), Value::Object(stored)) => {
            for (key, value) in sent {
                let path = format!("{at}.{key}");
                match stored.get(key) {
                    None if !value.is_null() => out.push(path),
                    None => {}
                    Some(kept) => dropped_fields(&path, value, kept, out),
                }
            }
        }
        (Value::Array(sent), Value::Array(stored)) => {
            for (index, (value, kept)) in sent.iter().zip(stored).enumerate() {
                dropped_fields(&format!("{at}[{index}]"), value, kept, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pruned_fields_are_named_by_path() {
        let sent =
            json!({"rules": [{"matches": [], "timeouts": {"request": "5s"}}], "hostnames": ["a"], "x": null});
        let stored = json!({"rules": [{"matches": []}], "hostnames": ["a"]});
        let mut out = Vec::new();
        dropped_fields("spec", &sent, &stored, &mut out);
        assert_eq!(out, ["spec.rules[0].timeouts"]);
        let mut none = Vec::new();
        dropped_fields("spec", &sent, &sent, &mut none);
        assert!(none.is_empty());
    }
}
