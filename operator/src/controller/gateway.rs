//! The GatewayBinding controller: once every API bound to the gateway has been evaluated, renders
//! the four plugins' configurations from all of them and writes one WasmPlugin per plugin (and the
//! docs route), then tells the API controller which APIs the plugins now carry.

use super::api::{self as api_controller, Error};
use super::Context;
use crate::crd::{condition, CommonStatus, Conditions, GatewayBinding, GatewayBindingStatus, Verdict};
use crate::render::objects::{self, VIRTUAL_SERVICE_API_VERSION, WASM_PLUGIN_API_VERSION};
use crate::render::plugins::{self, BoundApi, Module};
use crate::render::targets::RouteTargets;
use crate::render::Key;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::instrument;

#[instrument(level = "debug", skip_all, fields(gateway = %format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any())), err(Display))]
pub async fn reconcile(binding: Arc<GatewayBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let in_flight = ctx
        .metrics
        .in_flight
        .get_or_create(&super::metrics::ControllerLabel {
            controller: "gateway",
        })
        .clone();
    in_flight.inc();
    let result = reconcile_inner(&binding, &ctx).await;
    in_flight.dec();
    let outcome = match &result {
        Ok(Some(true)) => "ok",
        Ok(Some(false)) => "rejected",
        Ok(None) => "waiting",
        Err(_) => "error",
    };
    ctx.metrics.observe("gateway", outcome, started.elapsed());
    result.map(|done| match done {
        // Some APIs are not evaluated yet: their reconciles trigger this one again.
        None => Action::requeue(Duration::from_secs(2)),
        // A gateway not ready yet (Pods starting, failing): look again soon.
        Some(false) => Action::requeue(Duration::from_secs(5)),
        // Also a safety net for watch events that reach this controller before the API cache.
        Some(true) => Action::requeue(ctx.settings.resync.min(Duration::from_secs(60))),
    })
}

#[instrument(level = "debug", skip_all)]
pub fn error_policy(_binding: Arc<GatewayBinding>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// `None` while APIs bound to the gateway wait for evaluation; else whether the plugins are ready.
#[instrument(level = "debug", skip_all)]
async fn reconcile_inner(binding: &GatewayBinding, ctx: &Context) -> Result<Option<bool>, Error> {
    // Rendering from a cache that is not listed yet would drop every API.
    super::caches_ready(ctx).await;
    let stamp = api_controller::binding_stamp(binding);
    let key = Key::new(binding.namespace().unwrap_or_default(), binding.name_any());
    let bound: Vec<_> = ctx
        .apis
        .state()
        .into_iter()
        .filter(|api| api_controller::gateway_key(api) == key)
        .collect();
    let live: HashSet<Key> = ctx
        .apis
        .state()
        .iter()
        .map(|api| Key::new(api.namespace().unwrap_or_default(), api.name_any()))
        .collect();

    // The compiled versions to serve; stop if any API is not evaluated at its current generation
    // (rendering without it would drop its rules from a live gateway).
    let (mut serving, pending) = {
        let Ok(mut registry) = ctx.registry.lock() else {
            return Ok(None);
        };
        registry.apis.retain(|api_key, _| live.contains(api_key));
        let mut pending = 0usize;
        let mut serving = Vec::new();
        for api in &bound {
            let api_key = Key::new(api.namespace().unwrap_or_default(), api.name_any());
            match registry.apis.get(&api_key) {
                // Evaluated at its generation, against this version of the binding.
                Some(entry)
                    if entry.evaluated == api.metadata.generation.unwrap_or(0)
                        && entry.binding.as_ref() == Some(&stamp) =>
                {
                    // A last good version checked against another gateway is not served here.
                    if let Some(compiled) = entry.serving.as_ref().filter(|compiled| compiled.gateway == key)
                    {
                        let current = compiled.generation == entry.evaluated;
                        serving.push((api_key, compiled.clone(), current));
                    }
                }
                // Evaluated against an older binding (the API controller may have read its cache
                // before this binding change reached it): ask for a new evaluation.
                Some(_) => {
                    pending += 1;
                    let _ = ctx.api_trigger.unbounded_send(ObjectRef::from(api.as_ref()));
                }
                // Not evaluated yet: its own watch event has queued it.
                None => pending += 1,
            }
        }
        let unevaluated = ctx
            .apis
            .state()
            .iter()
            .filter(|api| {
                let api_key = Key::new(api.namespace().unwrap_or_default(), api.name_any());
                registry.apis.get(&api_key).map(|entry| entry.evaluated)
                    != Some(api.metadata.generation.unwrap_or(0))
            })
            .count();
        ctx.metrics
            .queue_depth
            .set(i64::try_from(unevaluated).unwrap_or(i64::MAX));
        (serving, pending)
    };
    if pending > 0 {
        tracing::debug!(pending, "waiting for APIs to be evaluated");
        return Ok(None);
    }

    let owner = binding.controller_owner_ref(&()).unwrap_or_default();
    let mut verdicts = Vec::new();
    let endpoint = ctx.endpoint(binding);
    let render = |apis: &[(Key, Arc<super::registry::Compiled>, bool)]| {
        let bound: Vec<BoundApi<'_>> = apis
            .iter()
            .map(|(api_key, compiled, _)| BoundApi {
                key: api_key,
                spec: &compiled.spec,
                bundle: &compiled.bundle,
            })
            .collect();
        // A standalone gateway gets its bundles inline: a changed configuration starts new plugin
        // instances, which would answer 503 until they had fetched the bundles again.
        let fetched_from = match binding.spec.standalone {
            Some(_) => None,
            None => Some(&endpoint),
        };
        crate::render::spec::check_gateway(&binding.spec)
            .and_then(|()| plugins::render(&binding.spec, &bound, fetched_from))
    };
    let mut rendered = render(&serving);
    if rendered.is_err() && serving.iter().any(|(_, _, current)| !current) {
        // A last good version kept for an API whose new spec is invalid may not fit the binding
        // as it is now: serve the APIs whose current version passed.
        serving.retain(|(_, _, current)| *current);
        rendered = render(&serving);
    }
    let mut written = Vec::new();
    let mut gateway_status = None;
    match &rendered {
        Err(problem) => {
            verdicts.push(Verdict::failed(
                condition::ACCEPTED,
                &problem.reason,
                problem.message.clone(),
            ));
            verdicts.push(Verdict::failed(
                condition::PLUGINS_READY,
                "NotAccepted",
                "the WasmPlugins keep their previous configuration",
            ));
        }
        Ok(configs) => {
            verdicts.push(Verdict::ok(
                condition::ACCEPTED,
                "Accepted",
                "the spec is consistent",
            ));
            match &binding.spec.standalone {
                Some(standalone) => {
                    // The operator runs this gateway: no WasmPlugins, no docs VirtualService.
                    for module in Module::ALL {
                        let name = objects::wasm_plugin_name(&key.name, module);
                        ctx.applier
                            .delete(WASM_PLUGIN_API_VERSION, "WasmPlugin", &key.namespace, &name)
                            .await?;
                    }
                    delete_docs_route(&key, ctx).await?;
                    let outcome = super::standalone::reconcile(
                        binding, &key, standalone, configs, &serving, &owner, ctx,
                    )
                    .await?;
                    if outcome.configured {
                        let plugins = configs.plugins().count();
                        verdicts.push(Verdict::ok(
                            condition::PLUGINS_READY,
                            "Configured",
                            format!(
                                "{plugins} plugins carry the rules of {} APIs, served to the gateway over xDS",
                                serving.len()
                            ),
                        ));
                        mark_included(&serving, ctx);
                    } else if !outcome
                        .verdicts
                        .iter()
                        .any(|v| v.kind == condition::PLUGINS_READY)
                    {
                        verdicts.push(Verdict::failed(
                            condition::PLUGINS_READY,
                            "NotConfigured",
                            "the gateway keeps its previous configuration",
                        ));
                    }
                    verdicts.extend(outcome.verdicts);
                    gateway_status = outcome.status;
                }
                None => {
                    if let Some(verdict) =
                        write_wasm_plugins(binding, &key, configs, &owner, &mut written, ctx).await?
                    {
                        verdicts.push(verdict);
                    } else {
                        write_docs_route(binding, &key, &owner, ctx).await?;
                        verdicts.push(Verdict::ok(
                            condition::PLUGINS_READY,
                            "Configured",
                            format!(
                                "{} WasmPlugins carry the rules of {} APIs",
                                written.len(),
                                serving.len()
                            ),
                        ));
                        mark_included(&serving, ctx);
                    }
                }
            }
        }
    }
    let ready = Conditions::ready(&verdicts, "the gateway's plugins are configured");
    let is_ready = ready.ok;
    verdicts.insert(0, ready);
    write_status(
        binding,
        &key,
        &verdicts,
        serving.len(),
        written,
        gateway_status,
        ctx,
    )
    .await?;
    Ok(Some(is_ready))
}

/// Writes one WasmPlugin per module the gateway loads (deleting the others) and lists them in
/// `written`; a `PluginsReady` verdict instead when a module has no published source.
#[instrument(level = "debug", skip_all, fields(gateway = %key), err(Display))]
async fn write_wasm_plugins(
    binding: &GatewayBinding,
    key: &Key,
    configs: &plugins::PluginConfigs,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    written: &mut Vec<String>,
    ctx: &Context,
) -> Result<Option<Verdict>, Error> {
    let mut sources = std::collections::BTreeMap::new();
    let modules = configs.modules();
    for &(module, _) in &modules {
        match ctx.source(binding, module) {
            Some(source) => {
                match super::standalone::istio_source(source, &module.field(), ctx).await {
                    Ok(source) => {
                        sources.insert(module.name(), source);
                    }
                    Err(problem) => {
                        return Ok(Some(Verdict::failed(
                            condition::PLUGINS_READY,
                            &problem.reason,
                            format!("{}; the WasmPlugins keep their previous configuration", problem.message),
                        )))
                    }
                }
            }
            None => {
                return Ok(Some(Verdict::failed(
                    condition::PLUGINS_READY,
                    "NoPluginSource",
                    format!(
                        "{}.url: where is the module published? (the operator was started without --plugin-url); the WasmPlugins keep their previous configuration",
                        module.field()
                    ),
                )))
            }
        }
    }
    let source_of = |module: Module| sources.get(module.name()).cloned().unwrap_or_default();
    let wanted = objects::wasm_plugins(key, &binding.spec, &modules, &source_of, owner);
    for (_, object) in &wanted {
        if let Err(error) = ctx.apply(object).await {
            return match super::refused_for_good("WasmPlugin", &error) {
                Some(message) => Ok(Some(Verdict::failed(
                    condition::PLUGINS_READY,
                    "ApplyRejected",
                    message,
                ))),
                None => Err(error.into()),
            };
        }
    }
    for module in Module::ALL {
        let name = objects::wasm_plugin_name(&key.name, module);
        if wanted.iter().any(|(wanted_module, _)| *wanted_module == module) {
            written.push(format!("{}/{name}", key.namespace));
        } else {
            ctx.applier
                .delete(WASM_PLUGIN_API_VERSION, "WasmPlugin", &key.namespace, &name)
                .await?;
        }
    }
    Ok(None)
}

#[instrument(level = "debug", skip_all, fields(gateway = %key), err(Display))]
async fn delete_docs_route(key: &Key, ctx: &Context) -> Result<(), Error> {
    Ok(ctx
        .applier
        .delete(
            VIRTUAL_SERVICE_API_VERSION,
            "VirtualService",
            &key.namespace,
            &format!("kea-{}-docs", key.name),
        )
        .await?)
}

/// Records which generation of each API the WasmPlugins now carry, and has the API controller
/// update the APIs whose `PluginsReady` changes.
#[instrument(level = "debug", skip_all, fields(apis = serving.len()))]
fn mark_included(serving: &[(Key, Arc<super::registry::Compiled>, bool)], ctx: &Context) {
    let Ok(mut registry) = ctx.registry.lock() else {
        return;
    };
    for (api_key, compiled, _) in serving {
        if let Some(entry) = registry.apis.get_mut(api_key) {
            if entry.included != Some(compiled.generation) {
                entry.included = Some(compiled.generation);
                let _ = ctx
                    .api_trigger
                    .unbounded_send(ObjectRef::new(&api_key.name).within(&api_key.namespace));
            }
        }
    }
}

#[instrument(level = "debug", skip_all, err(Display))]
async fn write_docs_route(
    binding: &GatewayBinding,
    key: &Key,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ctx: &Context,
) -> Result<(), Error> {
    let Some(host) = &binding.spec.docs_host else {
        return delete_docs_route(key, ctx).await;
    };
    let endpoint = ctx.endpoint(binding);
    let authority = endpoint
        .url
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let (operator_host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse().unwrap_or(80)),
        None => (authority.to_string(), 80),
    };
    let gateways = RouteTargets::docs(&binding.spec, &key.namespace)
        .virtual_service
        .unwrap_or_default();
    let object = objects::docs_virtual_service(key, host, &operator_host, port, &gateways, owner);
    ctx.apply(&object).await?;
    Ok(())
}

#[instrument(level = "debug", skip_all, fields(gateway = %key), err(Display))]
async fn write_status(
    binding: &GatewayBinding,
    key: &Key,
    verdicts: &[Verdict],
    apis: usize,
    plugins: Vec<String>,
    gateway: Option<crate::crd::StandaloneStatus>,
    ctx: &Context,
) -> Result<(), Error> {
    let previous = binding.status.clone().unwrap_or_default();
    let generation = binding.metadata.generation;
    let status = GatewayBindingStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions: Conditions::merge(&previous.common.conditions, verdicts, generation),
        },
        apis: u32::try_from(apis).unwrap_or(u32::MAX),
        plugins: if plugins.is_empty() && binding.spec.standalone.is_none() {
            previous.plugins.clone()
        } else {
            plugins
        },
        gateway: match binding.spec.standalone {
            Some(_) => gateway.or(previous.gateway.clone()),
            None => None,
        },
    };
    if status == previous {
        return Ok(());
    }
    super::apply::apply_status::<GatewayBinding>(&ctx.client, &key.namespace, &key.name, &status).await?;
    ctx.metrics.writes.inc();
    Ok(())
}
