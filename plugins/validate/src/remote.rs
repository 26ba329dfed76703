//! Bundles fetched over HTTP: each worker fetches on its tick through the configured cluster,
//! revalidates with `If-None-Match`, checks the bundle's digest (and the pinned one), and keeps
//! the last good bundle when a fetch fails or brings a bad one.

use crate::config::{compile_api, Remote};
use crate::metrics::ValidateMetrics;
use kea_plugin_sdk::callout::{backoff, AnswerError, CallAnswer};
use kea_plugin_sdk::ConfigError;
use kea_plugin_sdk::{Host, HttpCall};
use kea_schema::{Api, Bundle, BundleError};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// First retry after a failed fetch; doubles up to the refresh interval or `MAX_RETRY`.
const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries: a bundle server that comes back is found within minutes,
/// however long the refresh interval.
const MAX_RETRY: Duration = Duration::from_secs(256);
/// Largest bundle accepted.
const MAX_BUNDLE_BYTES: usize = 16 * 1024 * 1024;

/// What a fetch brought: a new bundle (with its warnings), or the one already loaded (304 or same
/// digest), each with the answer's ETag.
enum Answer {
    New(Rc<Api>, Vec<String>, Option<String>),
    Unchanged(Option<String>),
}

/// Why a fetch brought nothing usable.
#[derive(Debug, thiserror::Error)]
enum BundleFetchError {
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("bundle digest {0} is not the pinned {1}")]
    NotPinned(String, String),
    #[error(transparent)]
    Compile(#[from] ConfigError),
}

/// One fetched API on one worker.
#[derive(Debug)]
pub struct Fetched {
    pub remote: Remote,
    pub api: Option<Rc<Api>>,
    etag: Option<String>,
    next_fetch: Option<SystemTime>,
    in_flight: bool,
    failures: u32,
}

impl Fetched {
    pub fn new(remote: Remote) -> Self {
        Self {
            remote,
            api: None,
            etag: None,
            next_fetch: None,
            in_flight: false,
            failures: 0,
        }
    }

    /// Starts a fetch when one is due; the callout token when started.
    pub fn on_tick(&mut self, host: &impl Host) -> Option<u32> {
        let now = host.now();
        if self.in_flight || self.next_fetch.is_some_and(|at| now < at) {
            return None;
        }
        let mut headers = vec![
            (":method", "GET"),
            (":path", self.remote.path.as_str()),
            (":authority", self.remote.authority.as_str()),
            ("accept", "application/json"),
            ("user-agent", "kea-validate"),
        ];
        if let (Some(etag), Some(_)) = (&self.etag, &self.api) {
            headers.push(("if-none-match", etag.as_str()));
        }
        let call = HttpCall {
            cluster: &self.remote.cluster,
            headers,
            body: None,
            timeout: self.remote.timeout,
        };
        match host.dispatch_http_call(&call) {
            Ok(token) => {
                self.in_flight = true;
                Some(token)
            }
            Err(error) => {
                host.log(
                    log::Level::Warn,
                    &format!(
                        "kea-validate: cannot fetch bundle from cluster {}: {error}",
                        self.remote.cluster
                    ),
                );
                self.schedule_retry(now);
                None
            }
        }
    }

    /// Takes the fetch's answer (inside the callout callback).
    pub fn on_answer(&mut self, host: &impl Host, metrics: &ValidateMetrics, body_size: usize) {
        self.in_flight = false;
        let now = host.now();
        match self.read_answer(host, body_size) {
            Ok(Answer::New(api, warnings, etag)) => {
                let line = format!(
                    "kea-validate: bundle {} ({} {}) loaded from {}",
                    api.sha256, api.title, api.version, self.remote.path
                );
                host.log(log::Level::Info, &line);
                // Once per new bundle, like the configuration's own.
                for warning in &warnings {
                    host.log(
                        log::Level::Warn,
                        &format!("kea-validate: bundle from {}: {warning}", self.remote.path),
                    );
                }
                self.api = Some(api);
                self.etag = etag;
                metrics.bundle_updates.add(host, 1);
                self.schedule_refresh(now);
            }
            Ok(Answer::Unchanged(etag)) => {
                // A server may rotate ETags for the same content: revalidate with the newest.
                if etag.is_some() {
                    self.etag = etag;
                }
                self.schedule_refresh(now);
            }
            Err(reason) => {
                let keeping = if self.api.is_some() {
                    "keeping the last good bundle"
                } else {
                    "no bundle yet"
                };
                host.log(
                    log::Level::Warn,
                    &format!(
                        "kea-validate: bundle fetch from {} failed: {reason}; {keeping}",
                        self.remote.path
                    ),
                );
                metrics.bundle_fetch_failures.add(host, 1);
                self.schedule_retry(now);
            }
        }
    }

    /// What a fetch brought.
    fn read_answer(&self, host: &impl Host, body_size: usize) -> Result<Answer, BundleFetchError> {
        let answer = CallAnswer::read(host, body_size)?;
        let etag = answer.header("etag");
        if answer.status == 304 && self.api.is_some() {
            return Ok(Answer::Unchanged(etag));
        }
        let answer = answer.ok()?;
        let body = answer.body(host, MAX_BUNDLE_BYTES)?;
        let bundle = Bundle::from_json(&body)?;
        if let Some(pin) = &self.remote.sha256 {
            if !pin.eq_ignore_ascii_case(&bundle.sha256) {
                return Err(BundleFetchError::NotPinned(bundle.sha256, pin.clone()));
            }
        }
        if self.api.as_ref().is_some_and(|api| api.sha256 == bundle.sha256) {
            return Ok(Answer::Unchanged(etag));
        }
        let api = compile_api(&bundle, "bundle")?;
        Ok(Answer::New(Rc::new(api), bundle.warnings, etag))
    }

    fn schedule_refresh(&mut self, now: SystemTime) {
        self.failures = 0;
        // Bounded by the configuration (refresh ≤ 24h), so this cannot overflow.
        self.next_fetch = Some(now.checked_add(self.remote.refresh).unwrap_or(now));
    }

    fn schedule_retry(&mut self, now: SystemTime) {
        self.failures = self.failures.saturating_add(1);
        let wait = backoff(RETRY, self.remote.refresh.min(MAX_RETRY), self.failures);
        self.next_fetch = Some(now.checked_add(wait).unwrap_or(now));
    }
}
