//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! `renewTime`; a candidate takes over when the record has not changed for `leaseDurationSeconds`
//! of its own clock (so clock skew between nodes does not matter). kube-rs has no leader election,
//! hence this small module.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::instrument;

/// One candidate for the lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The last record seen (holder, renewTime) and when it was first seen, by our clock.
    observed: Mutex<Option<(String, String, Instant)>>,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration,
            observed: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How long a leader may go without renewing before it must stop writing: two thirds of the
    /// lease, so it stops before any candidate can take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// How often to try: a third of the deadline.
    pub fn retry_period(&self) -> Duration {
        (self.renew_deadline() / 3).max(Duration::from_millis(200))
    }

    /// Takes or renews the lease; `Ok(true)` when this candidate holds it afterwards.
    #[instrument(level = "debug", skip(self), fields(identity = %self.identity), ret, err(Display))]
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec
            .renew_time
            .as_ref()
            .map(|time| time.0.to_string())
            .unwrap_or_default();
        let held_by_me = holder == self.identity;
        if !held_by_me && !holder.is_empty() && !self.expired(&holder, &renewed, spec.lease_duration_seconds)
        {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!held_by_me);
        let renewed_lease = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: if held_by_me {
                    spec.acquire_time.clone()
                } else {
                    Some(now.clone())
                },
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..spec
            }),
        };
        // `replace` carries the resourceVersion read above: of two candidates, one wins.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &renewed_lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether the record (holder, renewTime) has stayed the same for the lease's duration.
    fn expired(&self, holder: &str, renewed: &str, seconds: Option<i32>) -> bool {
        let duration = seconds
            .map(|s| Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1)))
            .unwrap_or(self.duration);
        let Ok(mut observed) = self.observed.lock() else {
            return false;
        };
        match observed.as_ref() {
            Some((seen_holder, seen_renewed, since)) if seen_holder == holder && seen_renewed == renewed => {
                since.elapsed() >= duration
            }
            _ => {
                *observed = Some((holder.to_string(), renewed.to_string(), Instant::now()));
                false
            }
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once instead of waiting for it
    /// to expire.
    #[instrument(level = "debug", skip(self), fields(identity = %self.identity), err(Display))]
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let released = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                ..spec
            }),
        };
        self.api
            .replace(&self.name, &PostParams::default(), &released)
            .await
            .map(|_| ())
    }
}
