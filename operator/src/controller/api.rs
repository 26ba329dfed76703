//! The ApiDefinition controller: checks the spec against its gateway, compiles the schema, writes
//! the bundle ConfigMap and the weighted routes, hands the compiled API to the gateway controller
//! and reports conditions. A bad spec is a condition, never an error loop.

use super::registry::{Compiled, Entry};
use super::Context;
use crate::crd::{
    condition, ApiDefinition, ApiDefinitionStatus, CommonStatus, Conditions, GatewayBinding,
    SplitBackendStatus, SplitMode, SplitStatus, Verdict,
};
use crate::render::objects::{self, HTTP_ROUTE_API_VERSION, VIRTUAL_SERVICE_API_VERSION};
use crate::render::plugins::{self, BoundApi};
use crate::render::targets::RouteTargets;
use crate::render::{schema, spec, Key, Problem};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::instrument;

/// Transient failures (the API server): retried with backoff; the gateway keeps what it serves.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// The GatewayBinding an API names.
pub fn gateway_key(api: &ApiDefinition) -> Key {
    let namespace = api
        .spec
        .gateway_namespace
        .clone()
        .or_else(|| api.namespace())
        .unwrap_or_default();
    Key::new(namespace, api.spec.gateway.clone())
}

/// Which version of a GatewayBinding an evaluation saw.
pub fn binding_stamp(binding: &GatewayBinding) -> (String, i64) {
    (
        binding.metadata.uid.clone().unwrap_or_default(),
        binding.metadata.generation.unwrap_or(0),
    )
}

pub fn owner(api: &ApiDefinition) -> OwnerReference {
    api.controller_owner_ref(&()).unwrap_or_default()
}

#[instrument(level = "debug", skip_all, fields(api = %format!("{}/{}", api.namespace().unwrap_or_default(), api.name_any())), err(Display))]
pub async fn reconcile(api: Arc<ApiDefinition>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let in_flight = ctx
        .metrics
        .in_flight
        .get_or_create(&super::metrics::ControllerLabel { controller: "api" })
        .clone();
    in_flight.inc();
    let result = reconcile_inner(&api, &ctx).await;
    in_flight.dec();
    let outcome = match &result {
        Ok((_, true)) => "ok",
        Ok((_, false)) => "rejected",
        Err(_) => "error",
    };
    ctx.metrics.observe("api", outcome, started.elapsed());
    result.map(|(action, _)| action)
}

#[instrument(level = "debug", skip_all)]
pub fn error_policy(_api: Arc<ApiDefinition>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Returns the next action and whether the API is ready.
#[instrument(level = "debug", skip_all)]
async fn reconcile_inner(api: &ApiDefinition, ctx: &Context) -> Result<(Action, bool), Error> {
    // Both caches must be listed: an empty gateway cache would read as "GatewayNotFound".
    super::caches_ready(ctx).await;
    let key = Key::new(api.namespace().unwrap_or_default(), api.name_any());
    let generation = api.metadata.generation.unwrap_or(0);
    let gateway_key = gateway_key(api);
    let binding = ctx
        .gateways
        .get(&ObjectRef::new(&gateway_key.name).within(&gateway_key.namespace));
    let config_map = read_config_map(api, ctx).await?;
    let inputs = fingerprint(api, binding.as_deref(), config_map.as_ref());

    let cached = ctx.registry.lock().ok().and_then(|registry| {
        registry.apis.get(&key).and_then(|entry| {
            let fresh = entry.evaluated == generation
                && entry.inputs == inputs
                && !entry.retry
                && entry.evaluated_at.elapsed() < ctx.settings.resync;
            fresh.then(|| (entry.verdicts.clone(), entry.warnings.clone()))
        })
    });
    let (verdicts, warnings) = match cached {
        Some(cached) => cached,
        None => {
            let Evaluation {
                verdicts,
                warnings,
                compiled,
                retry,
            } = evaluate(api, &key, binding.as_deref(), config_map.as_ref(), ctx).await?;
            let covered = compiled.is_some()
                || ctx.registry.lock().ok().is_some_and(|registry| {
                    registry
                        .apis
                        .get(&key)
                        .and_then(|entry| entry.serving.as_ref())
                        .is_some_and(|serving| serving.gateway == gateway_key)
                });
            if !covered {
                // No version of this API is in its gateway's plugins: routes would serve it unchecked.
                withdraw_routes(&key, ctx).await?;
            }
            if let Ok(mut registry) = ctx.registry.lock() {
                let entry = registry.apis.entry(key.clone()).or_insert_with(|| Entry {
                    gateway: gateway_key.clone(),
                    binding: None,
                    evaluated: generation,
                    inputs,
                    evaluated_at: Instant::now(),
                    verdicts: Vec::new(),
                    warnings: Vec::new(),
                    retry,
                    serving: None,
                    included: None,
                });
                let previous_gateway = std::mem::replace(&mut entry.gateway, gateway_key.clone());
                entry.evaluated = generation;
                entry.binding = binding.as_deref().map(binding_stamp);
                entry.inputs = inputs;
                entry.evaluated_at = Instant::now();
                entry.verdicts = verdicts.clone();
                entry.warnings = warnings.clone();
                entry.retry = retry;
                if let Some(compiled) = compiled {
                    entry.serving = Some(Arc::new(compiled));
                }
                if previous_gateway != gateway_key {
                    let _ = ctx.gateway_trigger.unbounded_send(
                        ObjectRef::new(&previous_gateway.name).within(&previous_gateway.namespace),
                    );
                }
            }
            let _ = ctx
                .gateway_trigger
                .unbounded_send(ObjectRef::new(&gateway_key.name).within(&gateway_key.namespace));
            (verdicts, warnings)
        }
    };
    let (included, serving) = ctx
        .registry
        .lock()
        .ok()
        .and_then(|registry| {
            registry
                .apis
                .get(&key)
                .map(|entry| (entry.included, entry.serving.as_ref().map(|s| s.generation)))
        })
        .unwrap_or((None, None));
    let mut all = verdicts.clone();
    all.push(plugins_verdict(generation, included, serving, binding.is_some()));
    let ready = Conditions::ready(&all, "served by the gateway as written");
    let is_ready = ready.ok;
    all.insert(0, ready);
    let retry = all.iter().any(|verdict| verdict.reason == "ServiceNotFound");
    write_status(api, &key, &all, &warnings, serving_compiled(ctx, &key), ctx).await?;
    let action = if retry {
        Action::requeue(Duration::from_secs(10))
    } else {
        Action::requeue(ctx.settings.resync)
    };
    Ok((action, is_ready))
}

fn serving_compiled(ctx: &Context, key: &Key) -> Option<Arc<Compiled>> {
    ctx.registry
        .lock()
        .ok()
        .and_then(|registry| registry.apis.get(key).and_then(|entry| entry.serving.clone()))
}

#[instrument(level = "debug", ret)]
fn plugins_verdict(
    generation: i64,
    included: Option<i64>,
    serving: Option<i64>,
    gateway_found: bool,
) -> Verdict {
    match (included, serving) {
        _ if !gateway_found => Verdict::failed(
            condition::PLUGINS_READY,
            "GatewayNotFound",
            "no GatewayBinding to attach to",
        ),
        (Some(included), _) if included == generation => Verdict::ok(
            condition::PLUGINS_READY,
            "Configured",
            "the gateway's WasmPlugins carry this generation",
        ),
        (Some(included), _) => Verdict::failed(
            condition::PLUGINS_READY,
            "ServingPreviousGeneration",
            format!("the gateway's WasmPlugins still carry generation {included}"),
        ),
        (None, Some(_)) | (None, None) => Verdict::failed(
            condition::PLUGINS_READY,
            "Pending",
            "waiting for the gateway's WasmPlugins to be written",
        ),
    }
}

/// The referenced ConfigMap, when the schema names one (absent is a verdict, not an error).
#[instrument(level = "debug", skip_all, err(Display))]
async fn read_config_map(api: &ApiDefinition, ctx: &Context) -> Result<Option<ConfigMap>, Error> {
    let Some(reference) = &api.spec.schema.config_map_ref else {
        return Ok(None);
    };
    let config_maps: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &api.namespace().unwrap_or_default());
    Ok(config_maps.get_opt(&reference.name).await?)
}

/// What an evaluation depended on: the API (uid: a re-created API is a new one), its gateway's
/// spec, the ConfigMap holding its schema.
pub fn fingerprint(
    api: &ApiDefinition,
    binding: Option<&GatewayBinding>,
    config_map: Option<&ConfigMap>,
) -> u64 {
    let mut hasher = DefaultHasher::new();
    (api.metadata.uid.clone(), api.metadata.generation).hash(&mut hasher);
    binding
        .map(|binding| (binding.metadata.uid.clone(), binding.metadata.generation))
        .hash(&mut hasher);
    config_map
        .map(|config_map| config_map.metadata.resource_version.clone())
        .hash(&mut hasher);
    hasher.finish()
}

/// What one evaluation of an API found.
#[derive(Debug)]
struct Evaluation {
    /// Accepted, SchemaValid, RoutesReady.
    verdicts: Vec<Verdict>,
    /// What the schema says that is not checked (`status.warnings`).
    warnings: Vec<String>,
    /// The compiled version, when everything passed.
    compiled: Option<Compiled>,
    /// Whether to evaluate again soon (a Service was missing).
    retry: bool,
}

/// Checks, compiles and writes one API.
#[instrument(level = "debug", skip_all, fields(api = %key), err(Display))]
async fn evaluate(
    api: &ApiDefinition,
    key: &Key,
    binding: Option<&GatewayBinding>,
    config_map: Option<&ConfigMap>,
    ctx: &Context,
) -> Result<Evaluation, Error> {
    let spec = &api.spec;
    let config_map_text = spec.schema.config_map_ref.as_ref().and_then(|reference| {
        let wanted = reference
            .key
            .clone()
            .unwrap_or_else(|| schema::DEFAULT_CONFIG_MAP_KEY.into());
        config_map
            .and_then(|config_map| config_map.data.as_ref())
            .and_then(|data| data.get(&wanted))
            .cloned()
    });
    let compiled_schema =
        schema::document(&key.to_string(), spec, config_map_text.as_deref()).and_then(|document| {
            schema::compile(&key.to_string(), document.clone()).map(|bundle| (document, bundle))
        });
    let (schema_verdict, warnings) = schema_verdict(key, &compiled_schema);
    let accepted = match binding {
        None => Err(Problem::invalid(
            "GatewayNotFound",
            format!(
                "spec.gateway: no GatewayBinding {}/{}",
                gateway_key(api).namespace,
                gateway_key(api).name
            ),
        )),
        Some(binding) => spec::check(
            spec,
            &binding.spec,
            &RouteTargets::of(&binding.spec, &binding.namespace().unwrap_or_default()),
        )
        .and_then(|checked| {
            // The API alone through the plugins' own compilers: its rules are attributed to it.
            if let Ok((_, bundle)) = &compiled_schema {
                let bound = BoundApi { key, spec, bundle };
                plugins::render(&binding.spec, &[bound], Some(&ctx.endpoint(binding)))?;
            }
            Ok(checked)
        }),
    };
    let accepted_verdict = match &accepted {
        Ok(_) => Verdict::ok(condition::ACCEPTED, "Accepted", "the spec is consistent"),
        Err(problem) => Verdict::failed(condition::ACCEPTED, &problem.reason, problem.message.clone()),
    };
    let (Ok(checked), Ok((document, bundle)), Some(binding)) = (accepted, compiled_schema, binding) else {
        let routes = Verdict::failed(
            condition::ROUTES_READY,
            "NotAccepted",
            "routes are written once the spec and schema are valid",
        );
        return Ok(Evaluation {
            verdicts: vec![accepted_verdict, schema_verdict, routes],
            warnings,
            compiled: None,
            retry: false,
        });
    };
    if let Some(missing) = missing_service(api, ctx).await? {
        let routes = Verdict::failed(
            condition::ROUTES_READY,
            "ServiceNotFound",
            format!(
                "spec.backends: Service {}/{missing} does not exist",
                key.namespace
            ),
        );
        return Ok(Evaluation {
            verdicts: vec![accepted_verdict, schema_verdict, routes],
            warnings,
            compiled: None,
            retry: true,
        });
    }
    if let Err(rejected) = write_objects(api, key, binding, &checked, &bundle, &document, ctx).await? {
        // The API server refused an object (too large, a field the cluster's CRD does not
        // declare, ...): a condition, not a retry loop.
        let routes = Verdict::failed(condition::ROUTES_READY, "ApplyRejected", rejected);
        return Ok(Evaluation {
            verdicts: vec![accepted_verdict, schema_verdict, routes],
            warnings,
            compiled: None,
            retry: false,
        });
    }
    let split = checked
        .backends
        .iter()
        .map(|backend| format!("{}:{} {}%", backend.service, backend.port, backend.weight))
        .collect::<Vec<_>>()
        .join(", ");
    let mode = match (checked.backends.len() > 1, checked.split.marks) {
        (false, _) => "",
        (true, true) => " (exact)",
        (true, false) => " (random)",
    };
    let mirror = checked
        .split
        .mirror
        .as_ref()
        .map(|mirror| {
            format!(
                ", mirror {}:{} {}%",
                mirror.service,
                mirror.port,
                mirror.percent()
            )
        })
        .unwrap_or_default();
    let routes = Verdict::ok(
        condition::ROUTES_READY,
        "Applied",
        format!("{} → {split}{mode}{mirror}", spec.base_path),
    );
    let compiled = Compiled {
        generation: api.metadata.generation.unwrap_or(0),
        gateway: gateway_key(api),
        spec: spec.clone(),
        checked,
        bundle,
        document,
    };
    Ok(Evaluation {
        verdicts: vec![accepted_verdict, schema_verdict, routes],
        warnings,
        compiled: Some(compiled),
        retry: false,
    })
}

/// `SchemaValid` for a compile result, and the schema's warnings. Warnings do not make the schema
/// invalid (the API is served), but the condition's reason says there are some, as Kubernetes
/// conditions carry the why in their reason, and `status.warnings` lists them.
#[instrument(level = "debug", skip_all, fields(api = %key))]
fn schema_verdict(
    key: &Key,
    compiled: &Result<(serde_json::Value, kea_schema::Bundle), Problem>,
) -> (Verdict, Vec<String>) {
    match compiled {
        Ok((_, bundle)) => {
            let summary = format!(
                "{} operations, bundle sha256 {}",
                bundle.operations.len(),
                bundle.sha256
            );
            let warnings = schema::warnings(&key.to_string(), bundle);
            let verdict = if warnings.is_empty() {
                Verdict::ok(condition::SCHEMA_VALID, "Compiled", summary)
            } else {
                Verdict::ok(
                    condition::SCHEMA_VALID,
                    "CompiledWithWarnings",
                    format!("{summary}; the schema says more than the gateway checks: see status.warnings"),
                )
            };
            (verdict, warnings)
        }
        Err(problem) if problem.condition == condition::SCHEMA_VALID => (verdict_of(problem), Vec::new()),
        Err(problem) => (
            Verdict::failed(condition::SCHEMA_VALID, &problem.reason, problem.message.clone()),
            Vec::new(),
        ),
    }
}

/// Writes the bundle ConfigMap and the routes. `Ok(Err(message))` when the API server refuses one
/// of them for good ([`super::refused_for_good`]).
#[instrument(level = "debug", skip_all, err(Display))]
async fn write_objects(
    api: &ApiDefinition,
    key: &Key,
    binding: &GatewayBinding,
    checked: &spec::Checked,
    bundle: &kea_schema::Bundle,
    document: &serde_json::Value,
    ctx: &Context,
) -> Result<Result<(), String>, Error> {
    let owner = owner(api);
    let targets = RouteTargets::of(&binding.spec, &binding.namespace().unwrap_or_default());
    let route_name = objects::api_object_name(&key.name);
    let mut wanted = vec![objects::bundle_config_map(key, bundle, document, &owner)];
    wanted.extend(objects::routes(key, &api.spec, checked, &targets, &owner));
    if targets.virtual_service.is_none() {
        ctx.applier
            .delete(
                VIRTUAL_SERVICE_API_VERSION,
                "VirtualService",
                &key.namespace,
                &route_name,
            )
            .await?;
    }
    if targets.http_route.is_none() {
        ctx.applier
            .delete(HTTP_ROUTE_API_VERSION, "HTTPRoute", &key.namespace, &route_name)
            .await?;
    }
    for object in &wanted {
        let kind = object
            .pointer("/kind")
            .and_then(|kind| kind.as_str())
            .unwrap_or_default();
        if let Err(error) = ctx.apply(object).await {
            return match super::refused_for_good(kind, &error) {
                Some(message) => Ok(Err(message)),
                None => Err(error.into()),
            };
        }
    }
    Ok(Ok(()))
}

/// Removes the API's routes: used when no gateway's plugins cover the API any more, so that it
/// is not served unchecked.
#[instrument(level = "debug", skip_all, fields(api = %key), err(Display))]
async fn withdraw_routes(key: &Key, ctx: &Context) -> Result<(), Error> {
    let route_name = objects::api_object_name(&key.name);
    ctx.applier
        .delete(
            VIRTUAL_SERVICE_API_VERSION,
            "VirtualService",
            &key.namespace,
            &route_name,
        )
        .await?;
    ctx.applier
        .delete(HTTP_ROUTE_API_VERSION, "HTTPRoute", &key.namespace, &route_name)
        .await?;
    Ok(())
}

fn verdict_of(problem: &Problem) -> Verdict {
    Verdict::failed(problem.condition, &problem.reason, problem.message.clone())
}

/// The first backend Service that does not exist.
#[instrument(level = "debug", skip_all, ret, err(Display))]
async fn missing_service(api: &ApiDefinition, ctx: &Context) -> Result<Option<String>, Error> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &api.namespace().unwrap_or_default());
    let mirror = api.spec.mirror.iter().map(|mirror| &mirror.service);
    for service in api
        .spec
        .backends
        .iter()
        .map(|backend| &backend.service)
        .chain(mirror)
    {
        if services.get_opt(service).await?.is_none() {
            return Ok(Some(service.clone()));
        }
    }
    Ok(None)
}

/// `status.split`: the split in force, for APIs with several backends or a mirror.
fn split_status(spec: &crate::crd::ApiDefinitionSpec, checked: &spec::Checked) -> Option<SplitStatus> {
    if checked.backends.len() < 2 && checked.split.mirror.is_none() {
        return None;
    }
    Some(SplitStatus {
        mode: if checked.split.marks {
            SplitMode::Exact
        } else {
            SplitMode::Random
        },
        backends: checked
            .backends
            .iter()
            .map(|backend| SplitBackendStatus {
                key: backend.key.clone(),
                service: backend.service.clone(),
                port: backend.port,
                weight: backend.weight,
            })
            .collect(),
        sticky: checked.split.sticky.clone(),
        mirror: spec.mirror.clone(),
    })
}

/// Writes the status when it differs from what the object shows.
#[instrument(level = "debug", skip_all, fields(api = %key), err(Display))]
async fn write_status(
    api: &ApiDefinition,
    key: &Key,
    verdicts: &[Verdict],
    warnings: &[String],
    serving: Option<Arc<Compiled>>,
    ctx: &Context,
) -> Result<(), Error> {
    let previous = api.status.clone().unwrap_or_default();
    let generation = api.metadata.generation;
    let status = ApiDefinitionStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions: Conditions::merge(&previous.common.conditions, verdicts, generation),
        },
        bundle_sha256: serving.as_ref().map(|compiled| compiled.bundle.sha256.clone()),
        operations: serving
            .as_ref()
            .map(|compiled| u32::try_from(compiled.bundle.operations.len()).unwrap_or(u32::MAX)),
        bundle_url: serving.as_ref().and_then(|_| {
            let key_ref = gateway_key(api);
            let binding = ctx
                .gateways
                .get(&ObjectRef::new(&key_ref.name).within(&key_ref.namespace))?;
            Some(ctx.endpoint(&binding).bundle_url(key))
        }),
        warnings: warnings.to_vec(),
        split: serving
            .as_ref()
            .and_then(|compiled| split_status(&compiled.spec, &compiled.checked)),
    };
    if status == previous {
        return Ok(());
    }
    super::apply::apply_status::<ApiDefinition>(&ctx.client, &key.namespace, &key.name, &status).await?;
    ctx.metrics.writes.inc();
    Ok(())
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
    use crate::crd::ApiDefinitionSpec;
    use serde_json::json;

    /// The SchemaValid verdict and warnings of an API whose inline schema is `openapi`.
    fn schema_of(openapi: serde_json::Value) -> (Verdict, Vec<String>) {
        let key = Key::new("shop", "pets");
        let spec: ApiDefinitionSpec = serde_json::from_value(json!({
            "gateway": "edge", "hosts": ["pets.example.com"], "backends": [{"service": "pets", "port": 80}],
            "schema": {"openapi": openapi},
        }))
        .unwrap();
        let compiled = schema::document(&key.to_string(), &spec, None).and_then(|document| {
            schema::compile(&key.to_string(), document.clone()).map(|bundle| (document, bundle))
        });
        schema_verdict(&key, &compiled)
    }

    fn pets(name_schema: serde_json::Value) -> serde_json::Value {
        json!({"openapi": "3.0.3", "info": {"title": "pets", "version": "1"},
            "paths": {"/pets": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                "responses": {"201": {"description": "created"}}}}},
            "components": {"schemas": {"Pet": {"type": "object", "properties": {"name": name_schema}}}}})
    }

    #[test]
    fn schema_warnings_are_a_reason_and_a_status_list() {
        let (verdict, warnings) =
            schema_of(pets(json!({"type": "string", "const": "Rex", "x-note": "fine"})));
        assert!(verdict.ok);
        assert_eq!(verdict.reason, "CompiledWithWarnings");
        assert!(
            verdict.message.ends_with("see status.warnings"),
            "{}",
            verdict.message
        );
        assert_eq!(
            warnings,
            ["/components/schemas/Pet/properties/name/const: keyword \"const\" is not part of OpenAPI 3.0 and is not checked"]
        );
        let (verdict, warnings) = schema_of(pets(json!({"type": "string", "enum": ["Rex"]})));
        assert_eq!((verdict.ok, verdict.reason.as_str()), (true, "Compiled"));
        assert!(warnings.is_empty());
        let (verdict, warnings) =
            schema_of(json!({"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}));
        assert_eq!((verdict.ok, verdict.reason.as_str()), (false, "InvalidOpenAPI"));
        assert!(
            verdict
                .message
                .starts_with("/swagger: this is a Swagger/OpenAPI 2.0 document"),
            "{}",
            verdict.message
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn status_lists_warnings_only_when_there_are_some() {
        let status = ApiDefinitionStatus {
            warnings: vec!["/components/schemas/Pet/const: keyword \"const\" is not part of OpenAPI 3.0 and is not checked".into()],
            ..ApiDefinitionStatus::default()
        };
        let written = serde_json::to_value(&status).unwrap();
        assert_eq!(written["warnings"][0], json!(status.warnings[0]));
        assert_eq!(
            serde_json::from_value::<ApiDefinitionStatus>(written).unwrap(),
            status
        );
        let clean = serde_json::to_value(ApiDefinitionStatus::default()).unwrap();
        assert!(clean.get("warnings").is_none(), "{clean}");
    }
}
