//! Provider keys for every worker of a proxy, fetched once per proxy.
//!
//! Envoy runs one VM per worker. The keys of a remote provider live in shared data
//! (`kea.auth.keys.<provider>`), next to a small fetch record (`kea.auth.fetch.<provider>`) that
//! works as a lease: the worker whose compare-and-swap takes the lease fetches, the others only
//! read. Each worker keeps parsed keys and re-parses when the shared record changes (checked on
//! tick, and on demand when it has no keys or meets an unknown `kid`).
//!
//! Failures never drop keys: the last good set stays in use and the fetch is retried with
//! exponential backoff. Until a provider's first keys arrive, requests that need them fail closed.
//! Both records are fixed keys overwritten in place, so shared memory stays bounded.

use crate::config::{Compiled, KeySource, Provider};
use crate::fetch::{self, Answer, FetchError};
use crate::jwks::KeySet;
use crate::metrics::AuthMetrics;
use crate::sso::config::Endpoints;
use kea_plugin_sdk::callout::backoff;
use kea_plugin_sdk::{Host, HostError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

/// What a worker knows about one provider's keys.
#[derive(Debug, Default)]
struct Local {
    keys: Rc<KeySet>,
    /// CAS token of the shared record the keys were parsed from.
    cas: Option<u32>,
}

/// The shared fetch record (milliseconds since the epoch).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchRecord {
    /// A fetch is in flight until then.
    lease_until: u64,
    /// When the next scheduled fetch is due (refresh or retry).
    next_attempt: u64,
    failures: u32,
    /// Earliest time a token with an unknown `kid` may cause a refetch.
    kid_refetch_after: u64,
    /// `jwks_uri` found by discovery, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    #[serde(default)]
    discovered_at: u64,
    /// Endpoints found by discovery, for single sign-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoints: Option<Endpoints>,
}

/// The step a callout belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Discovery,
    Jwks,
}

/// A callout in flight, to be matched with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub provider: usize,
    pub step: Step,
}

/// Outcome of a finished callout.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keys stored (and loaded locally).
    Updated,
    /// Discovery done; the JWKS callout with this token follows.
    Next(u32, Pending),
    Failed,
}

#[derive(Debug)]
pub struct Keystore {
    local: RefCell<Vec<Local>>,
    keys_key: Vec<String>,
    fetch_key: Vec<String>,
    /// Bumped whenever some provider's keys change; cached verifications carry it.
    generation: std::cell::Cell<u64>,
}

const MAX_BACKOFF_MS: u64 = 30_000;
const INITIAL_BACKOFF_MS: u64 = 500;

fn now_ms(host: &impl Host) -> u64 {
    host.now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Shared-data key suffix: the provider name plus a hash of what defines its keys, so two
/// configurations that reuse a name for different issuers never share keys.
fn record_id(provider: &Provider) -> String {
    let mut digest = Sha256::new();
    digest.update(provider.issuer.as_bytes());
    if let KeySource::Remote { uri, .. } = &provider.keys {
        digest.update(uri.as_bytes());
    }
    let hash = digest.finalize();
    let short: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}.{short}", provider.name)
}

impl Keystore {
    /// Inline keys are parsed here; remote ones start empty.
    pub fn new(config: &Compiled) -> Self {
        let local = config
            .providers
            .iter()
            .map(|p| match &p.keys {
                KeySource::Inline(document) => Local {
                    keys: Rc::new(KeySet::parse(document, config.jwks_max_keys).unwrap_or_default()),
                    cas: None,
                },
                _ => Local::default(),
            })
            .collect();
        let ids: Vec<String> = config.providers.iter().map(record_id).collect();
        Self {
            local: RefCell::new(local),
            keys_key: ids.iter().map(|id| format!("kea.auth.keys.{id}")).collect(),
            fetch_key: ids.iter().map(|id| format!("kea.auth.fetch.{id}")).collect(),
            generation: std::cell::Cell::new(0),
        }
    }

    /// Creates the fetch records that do not exist yet, before any tick. Envoy ignores the CAS
    /// token when a key does not exist, so the lease can only be competed for on a record that
    /// is already there; workers configuring at once all write the same empty record.
    pub fn prepare(&self, host: &impl Host, config: &Compiled) {
        for (index, provider) in config.providers.iter().enumerate() {
            if provider.keys.is_fetched() && self.read_record(host, index).1.is_none() {
                let _ = self.write_record(host, index, &FetchRecord::default(), None);
            }
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// The provider's keys as this worker knows them.
    pub fn keys(&self, provider: usize) -> Rc<KeySet> {
        self.local
            .borrow()
            .get(provider)
            .map(|l| Rc::clone(&l.keys))
            .unwrap_or_default()
    }

    /// Re-reads the shared record of a fetched provider; true if the local keys changed.
    pub fn sync(&self, host: &impl Host, config: &Compiled, provider: usize) -> bool {
        let Some(key) = self.keys_key.get(provider) else {
            return false;
        };
        if !config
            .providers
            .get(provider)
            .is_some_and(|p| p.keys.is_fetched())
        {
            return false;
        }
        let (value, cas) = host.shared_data(key);
        let mut local = self.local.borrow_mut();
        let Some(slot) = local.get_mut(provider) else {
            return false;
        };
        if cas.is_none() || cas == slot.cas {
            return false;
        }
        slot.cas = cas;
        let Some(raw) = value.filter(|v| !v.is_empty()) else {
            return false;
        };
        match KeySet::parse_bytes(&raw, config.jwks_max_keys) {
            Ok(keys) if !keys.is_empty() => {
                log::debug!(
                    "kea-auth: provider {provider}: {} keys loaded from shared data",
                    keys.len()
                );
                slot.keys = Rc::new(keys);
                self.generation.set(self.generation.get().wrapping_add(1));
                true
            }
            _ => false,
        }
    }

    /// The endpoints the provider's discovery document named (`None` before the first discovery).
    pub fn discovered_endpoints(&self, host: &impl Host, provider: usize) -> Option<Endpoints> {
        self.read_record(host, provider).0.endpoints
    }

    fn read_record(&self, host: &impl Host, provider: usize) -> (FetchRecord, Option<u32>) {
        let Some(key) = self.fetch_key.get(provider) else {
            return (FetchRecord::default(), None);
        };
        let (value, cas) = host.shared_data(key);
        let record = value
            .and_then(|raw| kea_plugin_sdk::json::from_slice(&raw).ok())
            .unwrap_or_default();
        (record, cas)
    }

    fn write_record(
        &self,
        host: &impl Host,
        provider: usize,
        record: &FetchRecord,
        cas: Option<u32>,
    ) -> Result<(), HostError> {
        let key = self.fetch_key.get(provider).ok_or(HostError::NotFound)?;
        let raw = serde_json::to_vec(record).map_err(|_| HostError::BadArgument)?;
        host.set_shared_data(key, &raw, cas)
    }

    /// Takes the fetch lease with compare-and-swap; `None` when another worker holds it.
    fn take_lease(
        &self,
        host: &impl Host,
        config: &Compiled,
        provider: usize,
        change: impl FnOnce(&mut FetchRecord),
    ) -> Option<FetchRecord> {
        let (mut record, cas) = self.read_record(host, provider);
        if cas.is_none() {
            // `prepare` creates the record at configuration; without it there is nothing to
            // compete on (Envoy ignores CAS tokens for missing keys). Create it, fetch next tick.
            let _ = self.write_record(host, provider, &record, None);
            return None;
        }
        let now = now_ms(host);
        if leased(&record, config, now) {
            return None;
        }
        record.lease_until = now + lease_ms(config);
        change(&mut record);
        self.write_record(host, provider, &record, cas).ok()?;
        Some(record)
    }

    /// Root-context tick: syncs every fetched provider and starts the fetches that are due and
    /// whose lease this worker wins.
    pub fn on_tick(&self, host: &impl Host, config: &Compiled, metrics: &AuthMetrics) -> Vec<(u32, Pending)> {
        let mut started = Vec::new();
        for (index, provider) in config.providers.iter().enumerate() {
            if !provider.keys.is_fetched() {
                continue;
            }
            self.sync(host, config, index);
            let (record, _) = self.read_record(host, index);
            let now = now_ms(host);
            if waiting(record.next_attempt, now, provider) || leased(&record, config, now) {
                continue;
            }
            let Some(record) = self.take_lease(host, config, index, |_| {}) else {
                continue;
            };
            if let Some(call) = self.start(host, config, metrics, index, &record) {
                started.push(call);
            }
        }
        started
    }

    /// A token named a `kid` no key has: if the rate limit allows and no fetch is in flight,
    /// takes the lease and starts a JWKS fetch whose answer the caller waits for.
    pub fn refetch_for_unknown_kid(
        &self,
        host: &impl Host,
        config: &Compiled,
        metrics: &AuthMetrics,
        provider: usize,
    ) -> Option<(u32, Pending)> {
        let (record, _) = self.read_record(host, provider);
        let now = now_ms(host);
        let interval = duration_ms(config.unknown_kid_refetch_interval);
        // A time beyond the interval means the clock stepped back: do not wait for it.
        let rate_limited = now < record.kid_refetch_after && record.kid_refetch_after <= now + interval;
        if rate_limited || leased(&record, config, now) {
            return None;
        }
        let record = self.take_lease(host, config, provider, |r| r.kid_refetch_after = now + interval)?;
        metrics.kid_refetches.add(host, 1);
        self.start(host, config, metrics, provider, &record)
    }

    fn start(
        &self,
        host: &impl Host,
        config: &Compiled,
        metrics: &AuthMetrics,
        index: usize,
        record: &FetchRecord,
    ) -> Option<(u32, Pending)> {
        let provider = config.providers.get(index)?;
        let now = now_ms(host);
        let (cluster, url, step) = match &provider.keys {
            KeySource::Remote { cluster, uri, .. } => (cluster, uri.clone(), Step::Jwks),
            KeySource::Discovery {
                cluster,
                cache_duration,
            } => match &record.jwks_uri {
                Some(uri) if now < record.discovered_at + duration_ms(*cache_duration) => {
                    (cluster, uri.clone(), Step::Jwks)
                }
                _ => (cluster, fetch::discovery_url(&provider.issuer), Step::Discovery),
            },
            _ => return None,
        };
        metrics.jwks_fetches.add(host, 1);
        match fetch::get(host, cluster, &url, config.callout_timeout) {
            Ok(token) => Some((
                token,
                Pending {
                    provider: index,
                    step,
                },
            )),
            Err(err) => {
                log::warn!(
                    "kea-auth: provider {}: cannot call cluster {cluster:?}: {err}",
                    provider.name
                );
                self.failed(host, metrics, index);
                None
            }
        }
    }

    /// Handles a callout answer (root or request context alike).
    pub fn on_answer(
        &self,
        host: &impl Host,
        config: &Compiled,
        metrics: &AuthMetrics,
        pending: Pending,
        body_size: usize,
    ) -> Progress {
        let Some(provider) = config.providers.get(pending.provider) else {
            return Progress::Failed;
        };
        let result = fetch::read_answer(host, body_size, config.jwks_max_bytes).and_then(|answer| {
            match pending.step {
                Step::Discovery => self.discovered(host, config, pending.provider, provider, &answer),
                Step::Jwks => self.store_keys(host, config, pending.provider, provider, answer),
            }
        });
        match result {
            Ok(progress) => progress,
            Err(err) => {
                let what = if pending.step == Step::Discovery {
                    "discovery"
                } else {
                    "JWKS"
                };
                log::warn!("kea-auth: provider {}: {what} fetch failed: {err}", provider.name);
                self.failed(host, metrics, pending.provider);
                Progress::Failed
            }
        }
    }

    fn discovered(
        &self,
        host: &impl Host,
        config: &Compiled,
        index: usize,
        provider: &Provider,
        answer: &Answer,
    ) -> Result<Progress, FetchError> {
        let discovered = fetch::discovery(&answer.body, &provider.issuer)?;
        let uri = discovered.jwks_uri;
        let KeySource::Discovery { cluster, .. } = &provider.keys else {
            return Err(FetchError::Invalid("provider has no discovery".into()));
        };
        let (mut record, cas) = self.read_record(host, index);
        record.jwks_uri = Some(uri.clone());
        record.endpoints = discovered.endpoints;
        record.discovered_at = now_ms(host);
        record.lease_until = now_ms(host) + lease_ms(config);
        // Losing this write only loses the cached URI; the lease holder is still this worker.
        let _ = self.write_record(host, index, &record, cas);
        let token = fetch::get(host, cluster, &uri, config.callout_timeout)
            .map_err(|e| FetchError::Invalid(format!("cannot call the jwks_uri: {e}")))?;
        Ok(Progress::Next(
            token,
            Pending {
                provider: index,
                step: Step::Jwks,
            },
        ))
    }

    fn store_keys(
        &self,
        host: &impl Host,
        config: &Compiled,
        index: usize,
        provider: &Provider,
        answer: Answer,
    ) -> Result<Progress, FetchError> {
        let keys = fetch::check_jwks(&answer.body, config.jwks_max_keys)?;
        let refresh = match &provider.keys {
            KeySource::Remote { cache_duration, .. } | KeySource::Discovery { cache_duration, .. } => {
                *cache_duration
            }
            _ => Duration::from_secs(600),
        };
        // A shorter max-age wins, but not below 30 s: a hostile or broken IdP cannot make every
        // tick a fetch.
        let refresh = answer
            .max_age
            .map_or(refresh, |age| age.min(refresh))
            .max(Duration::from_secs(30).min(refresh));
        if let Some(key) = self.keys_key.get(index) {
            host.set_shared_data(key, &answer.body, None)
                .map_err(|e| FetchError::Invalid(format!("cannot store keys: {e}")))?;
        }
        let (mut record, cas) = self.read_record(host, index);
        let now = now_ms(host);
        record.lease_until = 0;
        record.failures = 0;
        record.next_attempt = now + duration_ms(refresh);
        if self.write_record(host, index, &record, cas).is_err() {
            let _ = self.write_record(host, index, &record, None);
        }
        log::info!(
            "kea-auth: provider {}: {} keys fetched",
            provider.name,
            keys.len()
        );
        // Load them here at once; the CAS of our own write is picked up by the next sync.
        let mut local = self.local.borrow_mut();
        if let Some(slot) = local.get_mut(index) {
            slot.keys = Rc::new(keys);
            slot.cas = None;
            self.generation.set(self.generation.get().wrapping_add(1));
        }
        Ok(Progress::Updated)
    }

    /// A request that started a refetch went away before the answer (the client reset the
    /// stream; Envoy cancels its callouts): free the lease and leave the fetch to the next tick,
    /// so a rotation is still picked up. The refetch rate limit stays spent.
    pub fn abandon(&self, host: &impl Host, pending: Pending) {
        let (mut record, cas) = self.read_record(host, pending.provider);
        record.lease_until = 0;
        record.next_attempt = now_ms(host);
        if self.write_record(host, pending.provider, &record, cas).is_err() {
            let _ = self.write_record(host, pending.provider, &record, None);
        }
    }

    fn failed(&self, host: &impl Host, metrics: &AuthMetrics, index: usize) {
        metrics.jwks_failures.add(host, 1);
        let (mut record, cas) = self.read_record(host, index);
        record.failures = record.failures.saturating_add(1);
        let wait = duration_ms(backoff(
            Duration::from_millis(INITIAL_BACKOFF_MS),
            Duration::from_millis(MAX_BACKOFF_MS),
            record.failures,
        ));
        record.lease_until = 0;
        record.next_attempt = now_ms(host) + wait;
        if self.write_record(host, index, &record, cas).is_err() {
            let _ = self.write_record(host, index, &record, None);
        }
    }
}

/// How long a fetch may hold the lease: the callout timeout and a margin.
fn lease_ms(config: &Compiled) -> u64 {
    duration_ms(config.callout_timeout) + 1_000
}

/// Whether a fetch is in flight. A lease ending further out than any lease can (the wall clock
/// stepped back) has expired.
fn leased(record: &FetchRecord, config: &Compiled, now: u64) -> bool {
    now < record.lease_until && record.lease_until <= now + lease_ms(config)
}

/// Whether the next scheduled fetch is still ahead; like `leased`, a time further out than the
/// refresh interval plus the longest backoff is treated as due.
fn waiting(next_attempt: u64, now: u64, provider: &Provider) -> bool {
    let refresh = match &provider.keys {
        KeySource::Remote { cache_duration, .. } | KeySource::Discovery { cache_duration, .. } => {
            *cache_duration
        }
        _ => Duration::ZERO,
    };
    now < next_attempt && next_attempt <= now + duration_ms(refresh) + MAX_BACKOFF_MS
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
