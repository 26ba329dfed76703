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
    applied: Mutex<HashMap<String, (u64, Instant)>>,
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

    /// Applies `object` (apiVersion, kind, metadata.name/namespace set); `Ok(false)` when skipped
    /// as unchanged.
    #[instrument(level = "debug", skip_all, fields(kind = text(object, "/kind"), name = text(object, "/metadata/name")), ret, err(Display))]
    pub async fn apply(&self, object: &Value) -> Result<bool, kube::Error> {
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
            if let Some((seen, when)) = applied.get(&id) {
                if *seen == digest && when.elapsed() < self.refresh {
                    return Ok(false);
                }
            }
        }
        self.api(api_version, kind, namespace)
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await?;
        if let Ok(mut applied) = self.applied.lock() {
            applied.insert(id, (digest, Instant::now()));
        }
        Ok(true)
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
