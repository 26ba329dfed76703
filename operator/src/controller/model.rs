//! The Model controller: builds each version's image with a Job (unless the version names one),
//! deploys each version (Deployment + Service), publishes the model through owned ApiDefinitions
//! once every version is available, removes versions that left the spec, and reports conditions.
//! A `custom` model without `spec.signature` has each version's serving class read by its build
//! Job; the report (the Job's `signature` init container's termination message) goes into
//! `status.versions[]`, the `Documented` condition and the published documents.
//! Until a new spec is fully available the ApiDefinitions keep what they served: a broken
//! version never takes the model down, and nothing is published half-deployed.

use super::Context;
use crate::crd::{
    condition, is_true, ApiDefinition, CommonStatus, Conditions, Model, ModelStatus, Verdict, VersionStatus,
};
use crate::render::model::documented::{self, Report, VersionDocs, SIGNATURE_CONTAINER};
use crate::render::model::objects::{self, Images, SourceReader, MODEL_LABEL, VERSION_LABEL};
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
    // `Documented` (not part of `Ready`): crate::render::model::documented::DOCUMENTED.
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
    /// Where its serving class's docs stand, when the operator reads them.
    docs: Option<VersionDocs>,
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
            docs: None,
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
        let statuses: Vec<VersionStatus> = states.iter().map(|state| state.status.clone()).collect();
        let read = documented::from_status(&statuses);
        for api in objects::documented_api_definitions(&key, &model.spec, &checked.versions, &read, &owner) {
            ctx.apply(&api).await?;
        }
        remove_stale(&key, &checked.versions, ctx).await?;
    }
    verdicts.push(published(&key, &checked.versions, all_available, ctx));
    let ready = Conditions::ready(&verdicts, "the gateway serves every version");
    let is_ready = ready.ok;
    verdicts.insert(0, ready);
    // After `Ready`: a model whose classes declare nothing still serves.
    let docs: Vec<(String, VersionDocs)> = states
        .iter()
        .filter_map(|state| Some((state.status.name.clone(), state.docs.clone()?)))
        .collect();
    verdicts.push(documented::documented(&model.spec, &docs));
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
    let mut state = VersionState::new(&version.name);
    let declared = model.spec.versions.iter().find(|v| v.name == version.name);
    // The class the build reads, for a custom model without `spec.signature`.
    let class = declared.and_then(|declared| documented::reads_source(&model.spec, declared));
    if model.spec.framework == crate::crd::Framework::Custom && model.spec.signature.is_none() {
        state.docs = Some(match (&version.source, class, &ctx.settings.operator_image) {
            (Source::Image(_), _, _) | (_, None, _) => VersionDocs::Problem {
                reason: "ReadyImage".into(),
                message: "a ready image: no serving class is read from it; give spec.signature".into(),
            },
            (_, Some(_), None) => operator_image_unknown(),
            (_, Some(_), Some(_)) => VersionDocs::Problem {
                reason: "NotBuilt".into(),
                message: "the serving class is read when the version's image is built (ImagesReady says why it is not)".into(),
            },
        });
    }
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
            let reader =
                class
                    .zip(ctx.settings.operator_image.as_deref())
                    .map(|(class_name, operator_image)| SourceReader {
                        source: &version.source,
                        class_name,
                        operator_image,
                    });
            let (built, job_docs) =
                build(key, version, &package, runtime, images, reader, owner, ctx).await?;
            if class.is_some() {
                let name = objects::build_name(&key.name, &version.name, &package);
                let previous = model
                    .status
                    .as_ref()
                    .and_then(|status| status.versions.iter().find(|v| v.name == version.name));
                let image = match &built {
                    Built::Image(image) => Some(image.as_str()),
                    _ => None,
                };
                state.docs = Some(read_docs(
                    &mut state.status,
                    &name,
                    job_docs,
                    image,
                    previous,
                    ctx.settings.operator_image.is_some(),
                ));
            }
            match built {
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

/// What a build Job says about the serving class it read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JobDocs {
    /// The Job has no [`SIGNATURE_CONTAINER`] (created without `--operator-image`).
    NotAsked,
    /// Not finished yet.
    Pending,
    /// The container's termination message.
    Reported(String),
    /// Finished, but no Pod holds the message (deleted Pods).
    Missing,
}

/// `Documented=False`, `OperatorImageUnknown`.
#[instrument(level = "trace")]
fn operator_image_unknown() -> VersionDocs {
    VersionDocs::Problem {
        reason: "OperatorImageUnknown".into(),
        message: "the operator has no --operator-image (KEA_OPERATOR_IMAGE) to read the serving class with; set it, or give spec.signature".into(),
    }
}

/// A version's docs from its build Job (`job` is its name), written into its status. A finished
/// Job whose Pods are gone keeps what the previous status read for the same image.
#[instrument(level = "debug", skip(status, previous), ret)]
fn read_docs(
    status: &mut VersionStatus,
    job: &str,
    docs: JobDocs,
    image: Option<&str>,
    previous: Option<&VersionStatus>,
    operator_image_known: bool,
) -> VersionDocs {
    let message = match docs {
        JobDocs::Pending => return VersionDocs::Pending,
        JobDocs::NotAsked if !operator_image_known => return operator_image_unknown(),
        JobDocs::NotAsked => {
            return VersionDocs::Problem {
                reason: "SourceNotRead".into(),
                message: format!("build Job {job} was started without --operator-image and did not read the serving class; delete it to rebuild the version and read it"),
            }
        }
        JobDocs::Missing => {
            let kept = previous.filter(|previous| image.is_some() && previous.image.as_deref() == image);
            if let Some(signature) = kept.and_then(|previous| previous.signature.clone()) {
                status.signature = Some(signature);
                status.signature_source = kept.and_then(|previous| previous.signature_source.clone());
                status.descriptions = kept.and_then(|previous| previous.descriptions.clone());
                return VersionDocs::Read(status.signature_source.clone().unwrap_or_default());
            }
            return VersionDocs::Problem {
                reason: "SourceNotRead".into(),
                message: format!("build Job {job} finished, but none of its Pods reports what the serving class declares; delete the Job to rebuild the version and read it"),
            };
        }
        JobDocs::Reported(message) => message,
    };
    report_docs(status, job, &message)
}

/// A version's docs from the termination message of its build's [`SIGNATURE_CONTAINER`].
#[instrument(level = "debug", skip(status, message), ret)]
fn report_docs(status: &mut VersionStatus, job: &str, message: &str) -> VersionDocs {
    match Report::parse(message) {
        Ok(Report::Read(read)) => {
            let source = read.signature_source();
            status.signature = Some(read.signature);
            status.signature_source = Some(source.clone());
            status.descriptions = (read.descriptions != Default::default()).then_some(read.descriptions);
            VersionDocs::Read(source)
        }
        Ok(Report::Problem { problem }) => VersionDocs::Problem {
            reason: problem.reason.clone(),
            message: problem.located(),
        },
        Err(error) => VersionDocs::Problem {
            reason: "UnreadableReport".into(),
            message: format!("build Job {job}, container {SIGNATURE_CONTAINER}: {error}"),
        },
    }
}

/// The build Job of a package: started when absent; its pushed digest once it succeeded, and what
/// its [`SIGNATURE_CONTAINER`] read.
#[allow(clippy::too_many_arguments)]
#[instrument(level = "debug", skip_all, fields(version = version.name), err(Display))]
async fn build(
    key: &Key,
    version: &CheckedVersion,
    package: &crate::render::model::package::Package,
    runtime: &str,
    images: &Images,
    reader: Option<SourceReader<'_>>,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ctx: &Context,
) -> Result<(Built, JobDocs), Error> {
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
            reader,
            owner,
        ))
        .await?;
        tracing::info!(job = name, "image build started");
        let docs = if reader.is_some() {
            JobDocs::Pending
        } else {
            JobDocs::NotAsked
        };
        return Ok((Built::Running, docs));
    };
    let reads = job
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|spec| spec.init_containers.as_ref())
        .is_some_and(|init| init.iter().any(|container| container.name == SIGNATURE_CONTAINER));
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
        let docs = if reads {
            JobDocs::Pending
        } else {
            JobDocs::NotAsked
        };
        return Ok((Built::Running, docs));
    }
    // The digest (or the failure) is the build container's termination message; what the class
    // declares, the signature container's; a failed fetch, the fetch container's.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let pods = pods
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await?
        .items;
    let docs = match (reads, signature_report(&pods)) {
        (false, _) => JobDocs::NotAsked,
        (true, Some(message)) => JobDocs::Reported(message),
        (true, None) => JobDocs::Missing,
    };
    let messages: Vec<(bool, String)> = pods.iter().filter_map(build_message).collect();
    Ok((
        built(&name, succeeded, &messages, key, version, package, images),
        docs,
    ))
}

/// The report of the first build Pod whose [`SIGNATURE_CONTAINER`] finished with one.
#[instrument(level = "trace", skip_all, ret)]
fn signature_report(pods: &[Pod]) -> Option<String> {
    pods.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
        let terminated = statuses
            .iter()
            .find(|status| status.name == SIGNATURE_CONTAINER)?
            .state
            .as_ref()?
            .terminated
            .as_ref()?;
        let message = terminated.message.as_deref()?.trim();
        (!message.is_empty()).then(|| message.to_string())
    })
}

/// A finished build Pod: whether it succeeded, and its build container's termination message (or
/// the last line of the init container that failed).
#[instrument(level = "trace", skip_all, ret)]
fn build_message(pod: &Pod) -> Option<(bool, String)> {
    let status = pod.status.as_ref()?;
    let failed_init = status.init_container_statuses.iter().flatten().find_map(|init| {
        let terminated = init.state.as_ref()?.terminated.as_ref()?;
        (terminated.exit_code != 0).then(|| {
            let why = terminated
                .message
                .as_deref()
                .and_then(last_line)
                .unwrap_or_else(|| terminated.reason.clone().unwrap_or_default());
            format!(
                "init container {} exited {}: {why}",
                init.name, terminated.exit_code
            )
        })
    });
    if let Some(message) = failed_init {
        return Some((false, message));
    }
    let terminated = status
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()?;
    Some((
        terminated.exit_code == 0,
        terminated.message.clone().unwrap_or_default().trim().to_string(),
    ))
}

/// The image a finished build pushed, or why it failed.
#[instrument(level = "trace", skip_all)]
fn built(
    name: &str,
    succeeded: bool,
    messages: &[(bool, String)],
    key: &Key,
    version: &CheckedVersion,
    package: &crate::render::model::package::Package,
    images: &Images,
) -> Built {
    if succeeded {
        let digest = messages
            .iter()
            .find(|(ok, message)| *ok && message.starts_with("sha256:") && message.len() == 71)
            .map(|(_, digest)| digest.clone());
        return match digest {
            Some(digest) => {
                let tag = objects::built_image_tag(images, key, &version.name, package);
                let repository = tag
                    .rsplit_once(':')
                    .map(|(repository, _)| repository)
                    .unwrap_or(&tag);
                Built::Image(format!("{repository}@{digest}"))
            }
            None => Built::Failed(format!("Job {name} succeeded but reported no image digest")),
        };
    }
    let reason = messages
        .iter()
        .rev()
        .find(|(ok, message)| !ok && !message.is_empty())
        .map(|(_, message)| message.clone())
        .unwrap_or_else(|| format!("Job {name} failed"));
    Built::Failed(reason)
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A build Pod as the API server returns it: its init containers' and build container's
    /// states.
    fn pod(init: serde_json::Value, build: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "kea-build-scorer-v1-0123456789-abcde"},
            "status": {"initContainerStatuses": init, "containerStatuses": build},
        }))
        .unwrap()
    }

    fn terminated(name: &str, exit: i32, message: &str) -> serde_json::Value {
        json!({
            "name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit, "message": message, "reason": if exit == 0 { "Completed" } else { "Error" }}},
        })
    }

    const READ: &str = r#"{"signature":{"inputs":[{"name":"x","datatype":"FP64","shape":[-1,3]}],"outputs":[{"name":"score","datatype":"FP64","shape":[-1]}]},"descriptions":{"operation":"Scores each row.","inputs":{"x":"three features per row."}},"source":"documented.py:7","class":"Scorer","convention":"MLRun"}"#;

    #[test]
    fn the_signature_containers_report_is_read_from_the_build_pod() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let done = pod(
            json!([
                terminated("fetch", 0, ""),
                terminated(SIGNATURE_CONTAINER, 0, READ)
            ]),
            json!([terminated("build", 0, &digest)]),
        );
        assert_eq!(
            signature_report(std::slice::from_ref(&done)).as_deref(),
            Some(READ)
        );
        assert_eq!(build_message(&done), Some((true, digest)));

        let mut status = VersionStatus {
            name: "v1".into(),
            ..Default::default()
        };
        let docs = read_docs(
            &mut status,
            "kea-build-scorer-v1-0",
            JobDocs::Reported(READ.into()),
            Some("reg/img@sha256:1"),
            None,
            true,
        );
        assert_eq!(
            docs,
            VersionDocs::Read("documented.py:7, MLRun class Scorer".into())
        );
        assert_eq!(
            status.signature_source.as_deref(),
            Some("documented.py:7, MLRun class Scorer")
        );
        assert_eq!(status.signature.as_ref().unwrap().inputs[0].name, "x");
        let descriptions = status.descriptions.as_ref().unwrap();
        assert_eq!(descriptions.inputs["x"], "three features per row.");
        // The status as `kubectl get -o json` shows it.
        let shown = serde_json::to_value(&status).unwrap();
        assert_eq!(shown["signatureSource"], "documented.py:7, MLRun class Scorer");
        assert_eq!(shown["descriptions"]["operation"], "Scores each row.");

        // The status → the published documents.
        let read = documented::from_status(&[status.clone()]);
        let mut spec = crate::crd::ModelSpec {
            framework: crate::crd::Framework::Custom,
            versions: vec![crate::crd::ModelVersion {
                name: "v1".into(),
                class_name: Some("documented.Scorer".into()),
                git: Some(crate::crd::GitSource {
                    url: "git://10.0.0.1/scorer".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            gateway: "edge".into(),
            hosts: vec!["*".into()],
            ..Default::default()
        };
        let checked = render::check("scorer", &spec).unwrap();
        let apis = objects::documented_api_definitions(
            &Key::new("ml", "scorer"),
            &spec,
            &checked.versions,
            &read,
            &Default::default(),
        );
        for api in &apis {
            let document = &api["spec"]["schema"]["openapi"];
            assert_eq!(
                document["components"]["schemas"]["Output0"]["properties"]["name"]["enum"],
                json!(["score"])
            );
            assert_eq!(
                document["paths"]["/infer"]["post"]["description"],
                "Scores each row."
            );
        }
        // The condition.
        let verdict = documented::documented(&spec, &[("v1".into(), docs)]);
        assert!(verdict.ok);
        assert_eq!(verdict.reason, "FromSource");
        assert_eq!(verdict.message, "read from documented.py:7, MLRun class Scorer");
        spec.signature = read["v1"].signature.clone().into();
        assert_eq!(documented::documented(&spec, &[]).reason, "FromResource");
    }

    #[test]
    fn problems_and_missing_reports_are_conditions() {
        let problem = r#"{"problem":{"reason":"NoTensorsDeclared","file":"serving.py","line":19,"message":"Scorer.predict(self, body) takes the whole request body"}}"#;
        let mut status = VersionStatus::default();
        let docs = read_docs(
            &mut status,
            "job",
            JobDocs::Reported(problem.into()),
            None,
            None,
            true,
        );
        assert_eq!(
            docs,
            VersionDocs::Problem {
                reason: "NoTensorsDeclared".into(),
                message: "serving.py:19: Scorer.predict(self, body) takes the whole request body".into()
            }
        );
        assert!(status.signature.is_none());

        let docs = read_docs(
            &mut status,
            "job",
            JobDocs::Reported("garbage".into()),
            None,
            None,
            true,
        );
        let VersionDocs::Problem { reason, message } = docs else {
            panic!()
        };
        assert_eq!(reason, "UnreadableReport");
        assert!(
            message.starts_with("build Job job, container signature: not a signature report"),
            "{message}"
        );

        let reason = |docs: VersionDocs| match docs {
            VersionDocs::Problem { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        let mut status = VersionStatus::default();
        assert_eq!(
            reason(read_docs(
                &mut status,
                "job",
                JobDocs::NotAsked,
                None,
                None,
                false
            )),
            "OperatorImageUnknown"
        );
        assert_eq!(
            reason(read_docs(&mut status, "job", JobDocs::NotAsked, None, None, true)),
            "SourceNotRead"
        );
        assert_eq!(
            read_docs(&mut status, "job", JobDocs::Pending, None, None, true),
            VersionDocs::Pending
        );
        // Pods gone: what the status read for the same image is kept.
        let mut previous = VersionStatus {
            name: "v1".into(),
            image: Some("img@sha256:1".into()),
            ..Default::default()
        };
        read_docs(
            &mut previous,
            "job",
            JobDocs::Reported(READ.into()),
            None,
            None,
            true,
        );
        let mut status = VersionStatus::default();
        let docs = read_docs(
            &mut status,
            "job",
            JobDocs::Missing,
            Some("img@sha256:1"),
            Some(&previous),
            true,
        );
        assert_eq!(
            docs,
            VersionDocs::Read("documented.py:7, MLRun class Scorer".into())
        );
        assert_eq!(status.signature, previous.signature);
        let mut status = VersionStatus::default();
        assert_eq!(
            reason(read_docs(
                &mut status,
                "job",
                JobDocs::Missing,
                Some("img@sha256:2"),
                Some(&previous),
                true
            )),
            "SourceNotRead"
        );

        // A failed fetch is the build's failure.
        let failed = pod(
            json!([terminated(
                "fetch",
                1,
                "cloning...\nfatal: repository not found\n"
            )]),
            json!([{"name": "build", "image": "b", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]),
        );
        assert_eq!(
            build_message(&failed),
            Some((
                false,
                "init container fetch exited 1: fatal: repository not found".into()
            ))
        );
        assert_eq!(signature_report(&[failed]), None);
    }
}
