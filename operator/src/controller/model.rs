//! The Model controller: builds each version's image with a Job (unless the version names one),
//! deploys each version (Deployment + Service), publishes the model through owned ApiDefinitions
//! once every version is available, removes versions that left the spec, and reports conditions.
//! Until a new spec is fully available the ApiDefinitions keep what they served: a broken
//! version never takes the model down, and nothing is published half-deployed.

use super::Context;
use crate::crd::{
    condition, is_true, ApiDefinition, CommonStatus, Conditions, Model, ModelStatus, Verdict, VersionStatus,
};
use crate::render::model::objects::{self, Images, MODEL_LABEL, VERSION_LABEL};
use crate::render::model::{self as render, CheckedVersion, Source};
use crate::render::Key;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, Service};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::instrument;

/// Condition types of a Model besides `Ready` and `Accepted`.
pub mod model_condition {
    /// Every version has its serving image (built or given).
    pub const IMAGES_READY: &str = "ImagesReady";
    /// Every version's Pods are available.
    pub const VERSIONS_READY: &str = "VersionsReady";
    /// The gateway serves the model as specified (its ApiDefinitions are ready).
    pub const PUBLISHED: &str = "Published";
}
use model_condition::{IMAGES_READY, PUBLISHED, VERSIONS_READY};

/// How often a model that is building or rolling out is looked at again (Jobs, Deployments and
/// ApiDefinitions it owns also trigger a reconcile when they change).
const PROGRESS_PERIOD: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

#[instrument(level = "debug", skip_all, fields(model = %format!("{}/{}", model.namespace().unwrap_or_default(), model.name_any())), err(Display))]
pub async fn reconcile(model: Arc<Model>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&model, &ctx).await;
    let outcome = match &result {
        Ok((_, true)) => "ok",
        Ok((_, false)) => "rejected",
        Err(_) => "error",
    };
    ctx.metrics.observe("model", outcome, started.elapsed());
    result.map(|(action, _)| action)
}

#[instrument(level = "debug", skip_all)]
pub fn error_policy(_model: Arc<Model>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "model reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The settings the controller needs from the operator's flags.
fn images(ctx: &Context) -> Images {
    Images {
        repository: ctx.settings.model_registry.clone().unwrap_or_default(),
        builder: ctx.settings.builder_image.clone().unwrap_or_default(),
        insecure_registries: ctx.settings.insecure_registry.clone(),
    }
}

/// One version's state after this reconcile.
#[derive(Debug)]
struct VersionState {
    status: VersionStatus,
    /// Why it is not available (condition, reason, message).
    problem: Option<(&'static str, String, String)>,
}

impl VersionState {
    fn new(name: &str) -> Self {
        Self {
            status: VersionStatus {
                name: name.into(),
                phase: "Pending".into(),
                ..Default::default()
            },
            problem: None,
        }
    }

    fn fail(mut self, phase: &str, kind: &'static str, reason: &str, message: String) -> Self {
        self.status.phase = phase.into();
        self.status.message = Some(message.clone());
        self.problem = Some((kind, reason.into(), message));
        self
    }
}

#[instrument(level = "debug", skip_all)]
async fn reconcile_inner(model: &Model, ctx: &Context) -> Result<(Action, bool), Error> {
    let key = Key::new(model.namespace().unwrap_or_default(), model.name_any());
    let owner = model.controller_owner_ref(&()).unwrap_or_default();
    let checked = match render::check(&key.name, &model.spec) {
        Ok(checked) => checked,
        Err(problem) => {
            let verdicts = vec![Verdict::failed(
                condition::ACCEPTED,
                &problem.reason,
                problem.message.clone(),
            )];
            write_status(model, &key, &verdicts, vec![], ctx).await?;
            return Ok((Action::requeue(ctx.settings.resync), false));
        }
    };
    let images = images(ctx);
    let mut states = Vec::new();
    for version in &checked.versions {
        states.push(reconcile_version(model, &key, version, &images, &owner, ctx).await?);
    }
    let mut verdicts = vec![Verdict::ok(
        condition::ACCEPTED,
        "Accepted",
        format!("{} version(s)", checked.versions.len()),
    )];
    let first_problem = |kind: &'static str| {
        states
            .iter()
            .find_map(|state| state.problem.clone().filter(|(k, _, _)| *k == kind))
    };
    verdicts.push(match first_problem(IMAGES_READY) {
        Some((_, reason, message)) => Verdict::failed(IMAGES_READY, &reason, message),
        None => Verdict::ok(IMAGES_READY, "ImagesReady", "every version has its serving image"),
    });
    let all_available = states.iter().all(|state| state.problem.is_none());
    verdicts.push(match states.iter().find_map(|state| state.problem.clone()) {
        None => Verdict::ok(VERSIONS_READY, "Available", "every version's Pods are ready"),
        Some((_, reason, message)) => Verdict::failed(VERSIONS_READY, &reason, message),
    });
    if all_available {
        for api in objects::api_definitions(&key, &model.spec, &checked.versions, &owner) {
            ctx.apply(&api).await?;
        }
        remove_stale(&key, &checked.versions, ctx).await?;
    }
    verdicts.push(published(&key, &checked.versions, all_available, ctx));
    let ready = Conditions::ready(&verdicts, "the gateway serves every version");
    let is_ready = ready.ok;
    verdicts.insert(0, ready);
    write_status(
        model,
        &key,
        &verdicts,
        states.into_iter().map(|state| state.status).collect(),
        ctx,
    )
    .await?;
    let next = if is_ready {
        ctx.settings.resync
    } else {
        PROGRESS_PERIOD
    };
    Ok((Action::requeue(next), is_ready))
}

/// Builds (when needed) and deploys one version; reports where it stands.
#[instrument(level = "debug", skip_all, fields(version = version.name), err(Display))]
async fn reconcile_version(
    model: &Model,
    key: &Key,
    version: &CheckedVersion,
    images: &Images,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ctx: &Context,
) -> Result<VersionState, Error> {
    let state = VersionState::new(&version.name);
    let (image, package_digest) = match &version.source {
        Source::Image(image) => (image.clone(), None),
        _ => {
            let Some(runtime) = objects::runtime_image(&ctx.settings.runtime_image, model.spec.framework)
            else {
                let message = format!(
                    "the operator has no runtime image for {} (--runtime-image {}=IMAGE)",
                    model.spec.framework.name(),
                    model.spec.framework.name()
                );
                return Ok(state.fail("BuildFailed", IMAGES_READY, "NoRuntimeImage", message));
            };
            if images.repository.is_empty() || images.builder.is_empty() {
                let message = "the operator has no --model-registry or --builder-image to build images with; give the version an image".to_string();
                return Ok(state.fail("BuildFailed", IMAGES_READY, "NoBuilder", message));
            }
            let package = objects::version_package(key, &model.spec, version, runtime);
            match build(key, version, &package, runtime, images, owner, ctx).await? {
                Built::Image(image) => (image, Some(package.digest())),
                Built::Running => {
                    let mut state = state.fail(
                        "Building",
                        IMAGES_READY,
                        "Building",
                        format!("version {}: building its image", version.name),
                    );
                    state.status.message = Some("building the serving image".into());
                    return Ok(state);
                }
                Built::Failed(message) => {
                    return Ok(state.fail(
                        "BuildFailed",
                        IMAGES_READY,
                        "BuildFailed",
                        format!("version {}: the image build failed: {message}", version.name),
                    ));
                }
            }
        }
    };
    let mut state = state;
    state.status.image = Some(image.clone());
    state.status.service = Some(format!(
        "{}/{}",
        key.namespace,
        render::version_object_name(&key.name, &version.name)
    ));
    let deployment = objects::deployment(
        key,
        &model.spec,
        version,
        &image,
        package_digest.as_deref(),
        owner,
    );
    ctx.apply(&deployment).await?;
    ctx.apply(&objects::service(key, &version.name, owner)).await?;
    rollout(key, version, state, ctx).await
}

enum Built {
    Image(String),
    Running,
    Failed(String),
}

/// The build Job of a package: started when absent; its pushed digest once it succeeded.
#[instrument(level = "debug", skip_all, fields(version = version.name), err(Display))]
async fn build(
    key: &Key,
    version: &CheckedVersion,
    package: &crate::render::model::package::Package,
    runtime: &str,
    images: &Images,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ctx: &Context,
) -> Result<Built, Error> {
    let name = objects::build_name(&key.name, &version.name, package);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(job) = jobs.get_opt(&name).await? else {
        ctx.apply(&objects::build_context(key, &version.name, package, owner))
            .await?;
        ctx.apply(&objects::build_job(
            key,
            &version.name,
            package,
            runtime,
            images,
            owner,
        ))
        .await?;
        tracing::info!(job = name, "image build started");
        return Ok(Built::Running);
    };
    let status = job.status.unwrap_or_default();
    let finished = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|condition| condition.type_ == kind && condition.status == "True")
    };
    let succeeded = status.succeeded.unwrap_or(0) > 0 || finished("Complete");
    if !succeeded && !finished("Failed") {
        return Ok(Built::Running);
    }
    // The digest (or the failure) is the build container's termination message.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let messages: Vec<(bool, String)> = pods
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await?
        .items
        .into_iter()
        .filter_map(|pod| {
            let terminated = pod
                .status?
                .container_statuses?
                .into_iter()
                .next()?
                .state?
                .terminated?;
            Some((
                terminated.exit_code == 0,
                terminated.message.unwrap_or_default().trim().to_string(),
            ))
        })
        .collect();
    if succeeded {
        let digest = messages
            .iter()
            .find(|(ok, message)| *ok && message.starts_with("sha256:") && message.len() == 71)
            .map(|(_, digest)| digest.clone());
        return Ok(match digest {
            Some(digest) => {
                let tag = objects::built_image_tag(images, key, &version.name, package);
                let repository = tag
                    .rsplit_once(':')
                    .map(|(repository, _)| repository)
                    .unwrap_or(&tag);
                Built::Image(format!("{repository}@{digest}"))
            }
            None => Built::Failed(format!("Job {name} succeeded but reported no image digest")),
        });
    }
    let reason = messages
        .iter()
        .rev()
        .find(|(ok, message)| !ok && !message.is_empty())
        .map(|(_, message)| message.clone())
        .unwrap_or_else(|| format!("Job {name} failed"));
    Ok(Built::Failed(reason))
}

/// A version's rollout from its Deployment and Pods: available, progressing, or failing and why.
#[instrument(level = "debug", skip_all, fields(version = version.name), err(Display))]
async fn rollout(
    key: &Key,
    version: &CheckedVersion,
    mut state: VersionState,
    ctx: &Context,
) -> Result<VersionState, Error> {
    let name = render::version_object_name(&key.name, &version.name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let deployment = deployments.get_opt(&name).await?;
    let wanted = version.replicas;
    let status = deployment
        .as_ref()
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    state.status.replicas = wanted;
    state.status.ready_replicas = ready;
    let current = status.observed_generation.is_some()
        && status.observed_generation == deployment.as_ref().and_then(|d| d.metadata.generation);
    // Available: the current template's Pods are all ready and no old ones are left.
    if current && updated >= wanted && ready >= wanted && total <= wanted {
        state.status.phase = "Available".into();
        state.status.message = None;
        return Ok(state);
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let selector = format!("{MODEL_LABEL}={},{VERSION_LABEL}={}", key.name, version.name);
    let failure = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .find_map(|pod| pod_failure(&pod));
    Ok(match failure {
        Some((reason, message)) => state.fail(
            "Failing",
            VERSIONS_READY,
            &reason,
            format!("version {}: {message}; {ready}/{wanted} Pods ready", version.name),
        ),
        None => state.fail(
            "Deploying",
            VERSIONS_READY,
            "Progressing",
            format!(
                "version {}: {ready}/{wanted} Pods ready, {updated} updated",
                version.name
            ),
        ),
    })
}

/// Why a Pod does not run: the first init or serving container that waits for a reason other
/// than starting, or an init container that failed.
#[instrument(level = "trace", skip_all, ret)]
fn pod_failure(pod: &Pod) -> Option<(String, String)> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let describe = |container: &ContainerStatus, init: bool| -> Option<(String, String)> {
        let state = container.state.as_ref()?;
        let last = container
            .last_state
            .as_ref()
            .and_then(|last| last.terminated.as_ref())
            .and_then(|terminated| terminated.message.as_deref())
            .and_then(last_line)
            .map(|line| format!(" (last exit: {line})"))
            .unwrap_or_default();
        let kind = if init { "init container" } else { "container" };
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.clone().unwrap_or_default();
            if !reason.is_empty() && reason != "ContainerCreating" && reason != "PodInitializing" {
                let message = waiting.message.clone().unwrap_or_default();
                return Some((
                    reason.clone(),
                    format!("Pod {name}, {kind} {}: {reason} {message}{last}", container.name),
                ));
            }
        }
        if let Some(terminated) = state.terminated.as_ref().filter(|t| t.exit_code != 0) {
            let message = terminated
                .message
                .as_deref()
                .and_then(last_line)
                .unwrap_or_default();
            let reason = if init {
                "InitFailed".to_string()
            } else {
                terminated.reason.clone().unwrap_or_else(|| "Error".into())
            };
            return Some((
                reason,
                format!(
                    "Pod {name}, {kind} {} exited {}: {}",
                    container.name,
                    terminated.exit_code,
                    message.trim()
                ),
            ));
        }
        None
    };
    let init = status
        .init_container_statuses
        .iter()
        .flatten()
        .find_map(|c| describe(c, true));
    init.or_else(|| {
        status
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| describe(c, false))
    })
}

/// The last non-empty line of a termination message (the containers' is their log's tail), at
/// most 300 characters: what a condition message can carry.
fn last_line(message: &str) -> Option<String> {
    let line = message
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())?;
    Some(line.chars().take(300).collect())
}

/// `Published` from the owned ApiDefinitions' own conditions.
#[instrument(level = "debug", skip_all, ret)]
fn published(key: &Key, versions: &[CheckedVersion], applied: bool, ctx: &Context) -> Verdict {
    let mut names = vec![render::api_name(&key.name)];
    names.extend(
        versions
            .iter()
            .map(|v| render::version_api_name(&key.name, &v.name)),
    );
    for name in names {
        let api: Option<Arc<ApiDefinition>> = ctx.apis.get(&ObjectRef::new(&name).within(&key.namespace));
        let Some(api) = api else {
            let message = if applied {
                format!("ApiDefinition {name} is being created")
            } else {
                "waiting for every version to be available".into()
            };
            return Verdict::failed(PUBLISHED, "NotPublished", message);
        };
        let conditions = api
            .status
            .as_ref()
            .map(|s| s.common.conditions.clone())
            .unwrap_or_default();
        let current =
            api.status.as_ref().and_then(|s| s.common.observed_generation) == api.metadata.generation;
        if !(current && is_true(&conditions, condition::READY)) {
            let why = conditions
                .iter()
                .find(|c| c.type_ == condition::READY)
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "not evaluated yet".into());
            return Verdict::failed(PUBLISHED, "ApiNotReady", format!("ApiDefinition {name}: {why}"));
        }
    }
    if !applied {
        return Verdict::failed(
            PUBLISHED,
            "PreviousSpecServed",
            "the gateway serves the previous versions until every version of this spec is available",
        );
    }
    Verdict::ok(
        PUBLISHED,
        "Published",
        format!("served at {}", render::base_path(&key.name)),
    )
}

/// Deletes what belongs to versions no longer in the spec, and superseded build Jobs.
#[instrument(level = "debug", skip_all, fields(model = %key), err(Display))]
async fn remove_stale(key: &Key, versions: &[CheckedVersion], ctx: &Context) -> Result<(), Error> {
    let wanted: BTreeSet<&str> = versions.iter().map(|v| v.name.as_str()).collect();
    let selector = format!(
        "{MODEL_LABEL}={},{}",
        key.name,
        crate::render::objects::MANAGED_BY.0
    );
    let stale_version = |labels: &std::collections::BTreeMap<String, String>| {
        labels
            .get(VERSION_LABEL)
            .is_some_and(|version| !wanted.contains(version.as_str()))
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for deployment in deployments
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        if stale_version(deployment.labels()) {
            ctx.applier
                .delete("apps/v1", "Deployment", &key.namespace, &deployment.name_any())
                .await?;
        }
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for service in services
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        if stale_version(service.labels()) {
            ctx.applier
                .delete("v1", "Service", &key.namespace, &service.name_any())
                .await?;
        }
    }
    let apis: Api<ApiDefinition> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for api in apis.list(&ListParams::default().labels(&selector)).await?.items {
        if stale_version(api.labels()) {
            ctx.applier
                .delete(
                    "kea.dev/v1alpha1",
                    "ApiDefinition",
                    &key.namespace,
                    &api.name_any(),
                )
                .await?;
        }
    }
    // Build Jobs (and their ConfigMaps) of images no Deployment runs any more: every version is
    // available here, so each runs its current image.
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let current: Vec<String> = deployments
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .filter_map(|d| {
            d.spec
                .as_ref()?
                .template
                .metadata
                .as_ref()?
                .annotations
                .as_ref()?
                .get(objects::PACKAGE_ANNOTATION)
                .cloned()
        })
        .collect();
    for job in jobs.list(&ListParams::default().labels(&selector)).await?.items {
        let package = job
            .labels()
            .get(objects::PACKAGE_LABEL)
            .cloned()
            .unwrap_or_default();
        if !current.iter().any(|digest| digest.starts_with(&package)) {
            let name = job.name_any();
            // Foreground: the Job's Pods go with it.
            let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
            match jobs_api
                .delete(&name, &kube::api::DeleteParams::foreground())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
            ctx.applier
                .delete("v1", "ConfigMap", &key.namespace, &name)
                .await?;
        }
    }
    Ok(())
}

#[instrument(level = "debug", skip_all, fields(model = %key), err(Display))]
async fn write_status(
    model: &Model,
    key: &Key,
    verdicts: &[Verdict],
    versions: Vec<VersionStatus>,
    ctx: &Context,
) -> Result<(), Error> {
    let previous = model.status.clone().unwrap_or_default();
    let generation = model.metadata.generation;
    let mut verdicts = verdicts.to_vec();
    if !verdicts.iter().any(|v| v.kind == condition::READY) {
        let ready = Conditions::ready(&verdicts, "");
        verdicts.insert(0, ready);
    }
    let summary = (!versions.is_empty()).then(|| {
        versions
            .iter()
            .map(|v| {
                let weight = model
                    .spec
                    .versions
                    .iter()
                    .find(|s| s.name == v.name)
                    .and_then(|s| s.weight)
                    .unwrap_or(100);
                format!("{} {weight}% {}/{}", v.name, v.ready_replicas, v.replicas)
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let status = ModelStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions: Conditions::merge(&previous.common.conditions, &verdicts, generation),
        },
        versions,
        summary,
        api_definition: Some(render::api_name(&key.name)),
        openapi_path: Some(format!(
            "/docs/{}/{}/openapi.json",
            key.namespace,
            render::api_name(&key.name)
        )),
    };
    if status == previous {
        return Ok(());
    }
    super::apply::apply_status::<Model>(&ctx.client, &key.namespace, &key.name, &status).await?;
    ctx.metrics.writes.inc();
    Ok(())
}
