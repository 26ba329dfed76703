//! The plugin's root-level logic: configuration, where records go, and the sink's timer. The
//! proxy-wasm adapter forwards its callbacks here.

use crate::buffer::SharedBuffer;
use crate::config::{AuditConfig, Compiled};
use crate::metrics::AuditMetrics;
use crate::sink::{Delivery, Flusher};
use crate::stream::LogOutcome;
use kea_plugin_sdk::{parse_json, ConfigError, Host, Phase};
use std::rc::Rc;
use std::time::Duration;

/// What every request context of a worker shares: compiled config, metrics, buffer handle.
#[derive(Debug)]
pub struct Runtime {
    pub config: Compiled,
    pub metrics: AuditMetrics,
    pub buffer: Option<SharedBuffer>,
}

impl Runtime {
    /// Sends a finished request's outcome to the sinks. Never blocks and never fails the request:
    /// the log sink is a host call, the HTTP sink only enqueues.
    pub fn emit(&self, host: &impl Host, outcome: LogOutcome) {
        let _phase = Phase::enter("audit.emit");
        match outcome {
            LogOutcome::Record(line) => {
                self.metrics.emitted(host);
                if let Some(level) = self.config.log_sink {
                    host.log(level, &line);
                }
                if let Some(buffer) = &self.buffer {
                    let pushed = buffer.push(host, line.as_bytes());
                    self.metrics.dropped(host, pushed.dropped);
                }
            }
            LogOutcome::SampledOut => self.metrics.sampled_out(host),
            LogOutcome::Skipped => {}
        }
    }
}

/// The root context's state.
#[derive(Debug, Default)]
pub struct AuditRoot {
    runtime: Option<Rc<Runtime>>,
    flusher: Option<Flusher>,
}

/// Tick period when only the log sink is on: just to follow log-level changes.
const IDLE_TICK: Duration = Duration::from_secs(5);

impl AuditRoot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and compiles the configuration. On error the previous configuration stays active
    /// (or, on the first configure, the proxy refuses the plugin) and the error names the field.
    pub fn configure(&mut self, host: &impl Host, raw: &[u8]) -> Result<(), ConfigError> {
        let _phase = Phase::enter("audit.configure");
        let config: AuditConfig = parse_json(raw)?;
        let compiled = config.compile()?;
        let metrics = AuditMetrics::define(host);
        let (buffer, flusher) = match &compiled.http_sink {
            Some(sink) => {
                let buffer = SharedBuffer::register(host, sink.max_records, sink.max_bytes).map_err(|e| {
                    ConfigError::new("sinks.http", format!("cannot register the shared queue: {e}"))
                })?;
                (Some(buffer), Some(Flusher::new(sink.clone(), buffer)))
            }
            None => (None, None),
        };
        // A batch the previous configuration still held (in flight or waiting for a retry) will
        // never be answered to this flusher: count it as dropped so the books still balance.
        if let Some(old) = self.flusher.as_ref() {
            metrics.dropped(host, old.held_records() as u64);
        }
        self.runtime = Some(Rc::new(Runtime {
            config: compiled,
            metrics,
            buffer,
        }));
        self.flusher = flusher;
        Ok(())
    }

    /// How often the root wants a tick: the sink's flush interval, or only to follow log-level
    /// changes when there is no HTTP sink.
    pub fn tick_period(&self) -> Option<Duration> {
        self.runtime.as_ref()?;
        Some(self.flusher.as_ref().map_or(IDLE_TICK, Flusher::flush_interval))
    }

    /// Forgets the configuration (the combined module's configuration dropped this plugin).
    pub fn unload(&mut self, host: &impl Host) {
        // As on a reconfiguration: a batch still held will never be delivered.
        if let (Some(old), Some(runtime)) = (self.flusher.as_ref(), self.runtime.as_ref()) {
            runtime.metrics.dropped(host, old.held_records() as u64);
        }
        self.runtime = None;
        self.flusher = None;
    }

    pub fn runtime(&self) -> Option<Rc<Runtime>> {
        self.runtime.clone()
    }

    /// The shared queue id, to recognise `on_queue_ready` for it.
    pub fn queue_id(&self) -> Option<u32> {
        self.runtime.as_ref()?.buffer.map(|b| b.queue_id())
    }

    pub fn on_tick(&mut self, host: &impl Host) {
        if let (Some(flusher), Some(runtime)) = (self.flusher.as_mut(), self.runtime.as_ref()) {
            flusher.on_tick(host, &runtime.metrics);
        }
    }

    pub fn on_queue_ready(&mut self, host: &impl Host) {
        if let (Some(flusher), Some(runtime)) = (self.flusher.as_mut(), self.runtime.as_ref()) {
            flusher.on_queue_ready(host, &runtime.metrics);
        }
    }

    pub fn on_call_response(
        &mut self,
        host: &impl Host,
        token: u32,
        headers: usize,
        body_size: usize,
    ) -> Option<Delivery> {
        let (flusher, runtime) = (self.flusher.as_mut()?, self.runtime.as_ref()?);
        flusher.on_call_response(host, &runtime.metrics, token, headers, body_size)
    }
}
