//! The root-level logic: configuration into a shared [`Runtime`], and bundle fetching on tick.

use crate::config::{Compiled, Origin, ValidateConfig};
use crate::metrics::ValidateMetrics;
use crate::remote::Fetched;
use kea_plugin_sdk::{parse_json, ConfigError, Host, Phase};
use kea_schema::Api;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Tick period: fetches are started from ticks (callouts from `on_configure` are unreliable).
pub const TICK: Duration = Duration::from_secs(1);

/// What every stream of a worker shares.
#[derive(Debug)]
pub struct Runtime {
    pub config: Compiled,
    /// By API index; `Some` for fetched APIs.
    fetched: Vec<Option<RefCell<Fetched>>>,
    pub metrics: ValidateMetrics,
}

impl Runtime {
    /// The API's current bundle; `None` while a fetched one has not arrived.
    pub fn api(&self, index: usize) -> Option<Rc<Api>> {
        match &self.config.apis.get(index)?.origin {
            Origin::Fixed(api) => Some(Rc::clone(api)),
            Origin::Fetched(_) => self.fetched.get(index)?.as_ref()?.borrow().api.clone(),
        }
    }

    /// Starts the fetches that are due: (callout token, API index).
    pub fn on_tick(&self, host: &impl Host) -> Vec<(u32, usize)> {
        let mut started = Vec::new();
        for (index, fetched) in self.fetched.iter().enumerate() {
            if let Some(token) = fetched.as_ref().and_then(|f| f.borrow_mut().on_tick(host)) {
                started.push((token, index));
            }
        }
        started
    }

    /// A fetch answered.
    pub fn on_fetch_answer(&self, host: &impl Host, index: usize, body_size: usize) {
        let _phase = Phase::enter("validate.bundle_answer");
        if let Some(Some(fetched)) = self.fetched.get(index) {
            fetched.borrow_mut().on_answer(host, &self.metrics, body_size);
        }
    }

    /// Whether any API is fetched (the root needs ticks then).
    pub fn fetches(&self) -> bool {
        self.fetched.iter().any(Option::is_some)
    }
}

/// Parses and compiles a configuration; errors name the field.
pub fn configure(host: &impl Host, raw: &[u8]) -> Result<Rc<Runtime>, ConfigError> {
    let _phase = Phase::enter("validate.configure");
    let started = host.now();
    let config: ValidateConfig = parse_json(raw)?;
    let compiled = config.compile()?;
    let took = host.now().duration_since(started).unwrap_or_default();
    // Once per configuration, not per request: the schema says more than is checked.
    for api in &compiled.apis {
        for warning in &api.warnings {
            host.log(
                log::Level::Warn,
                &format!("kea-validate: API {:?}: {warning}", api.name),
            );
        }
    }
    let fetched = compiled
        .apis
        .iter()
        .map(|api| match &api.origin {
            Origin::Fetched(remote) => Some(RefCell::new(Fetched::new(remote.clone()))),
            Origin::Fixed(_) => None,
        })
        .collect();
    let metrics = ValidateMetrics::define(host);
    metrics
        .configure_ms
        .set(host, u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    log::info!(
        "kea-validate: {} APIs configured in {} ms",
        compiled.apis.len(),
        took.as_millis()
    );
    Ok(Rc::new(Runtime {
        config: compiled,
        fetched,
        metrics,
    }))
}
