//! The one proxy-wasm adapter of every KEA module: a root context over a list of [`Stage`]s and an
//! HTTP context running their streams in one [`Chain`]. A single-plugin module is a list of one;
//! the combined module (`kea.wasm`) lists every plugin and configures the ones its configuration
//! names. Nothing here decides anything about a request. Only built for `wasm32-wasip1`.
//!
//! The stages talk to the proxy through one [`CachingHost`] per VM, told at every entry into the
//! VM that the header maps may have changed: within a callback, the stages share one read of each
//! map and of the clock. Their counter increments wait in it for the root tick, which flushes them
//! (at most every [`METRICS_FLUSH_PERIOD`]) and when the VM stops.

use crate::caching::{CachingHost, METRICS_FLUSH_PERIOD};
use crate::chain::Chain;
use crate::proxy::{load_configuration, report_vm_memory, sync_log_level, ProxyHost};
use crate::stage::{Flow, Stage};
use crate::{ConfigError, Host};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::{Duration, SystemTime};

/// The host the stages see.
pub type ModuleHost = CachingHost<ProxyHost>;

/// A module's stages.
pub type Stages = crate::stage::Stages<ModuleHost>;

/// Configures the stages from the module's configuration (one plugin's, or the combined one's).
pub type Configure = fn(&mut Stages, &ModuleHost, &[u8]) -> Result<(), ConfigError>;

/// Requests whose holding stage polls, by context id.
type Polled = Rc<RefCell<Vec<(u32, Weak<RefCell<Chain<ModuleHost>>>)>>>;

/// The root context.
pub struct Module {
    name: &'static str,
    stages: Stages,
    configure: Configure,
    configured: bool,
    host: Rc<ModuleHost>,
    /// When each stage's next tick is due (`None`: it wants none).
    due: Vec<Option<(Duration, SystemTime)>>,
    polled: Polled,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("stages", &self.stages.len())
            .field("configured", &self.configured)
            .finish()
    }
}

impl Module {
    /// A module of one plugin, configured with that plugin's configuration.
    pub fn single(stage: Box<dyn Stage<ModuleHost>>) -> Self {
        let name = stage.name();
        Self::new(name, vec![stage], configure_single)
    }

    pub fn new(name: &'static str, stages: Stages, configure: Configure) -> Self {
        Self {
            name,
            stages,
            configure,
            configured: false,
            host: Rc::new(CachingHost::new(ProxyHost)),
            due: Vec::new(),
            polled: Polled::default(),
        }
    }

    /// Schedules every stage's timer and sets the root tick to the shortest period any stage
    /// needs (the cache's 10 ms, which also polls held requests), and at most the counters' flush
    /// period; each stage still only runs when its own period is due.
    fn schedule(&mut self) {
        let now = self.host.now();
        self.due = self
            .stages
            .iter()
            .map(|stage| stage.tick_period().map(|period| (period, now)))
            .collect();
        let shortest = self.due.iter().flatten().map(|(period, _)| *period).min();
        let period = shortest.map_or(METRICS_FLUSH_PERIOD, |p| p.min(METRICS_FLUSH_PERIOD));
        ProxyHost.set_tick_period(period);
    }

    fn poll_held(&self) {
        let host = &self.host;
        self.polled.borrow_mut().retain(|(context_id, chain)| {
            let Some(chain) = chain.upgrade() else {
                return false;
            };
            // Replies and resumptions act on the effective context: make it the request's.
            if proxy_wasm::hostcalls::set_effective_context(*context_id).is_err() {
                return false;
            }
            host.begin();
            let Ok(mut chain) = chain.try_borrow_mut() else {
                return true;
            };
            chain.poll(host) == Flow::Pause && chain.wants_poll()
        });
    }
}

fn configure_single(stages: &mut Stages, host: &ModuleHost, raw: &[u8]) -> Result<(), ConfigError> {
    match stages.first_mut() {
        Some(stage) => stage.configure(host, raw),
        None => Ok(()),
    }
}

impl Context for Module {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _trailers: usize) {
        self.host.begin();
        for stage in &mut self.stages {
            if stage.on_call_response(&self.host, token, headers, body_size) {
                return;
            }
        }
    }

    /// The VM stops (a new configuration, Envoy draining): the counters not yet flushed go now.
    fn on_done(&mut self) -> bool {
        self.host.flush_metrics();
        true
    }
}

impl RootContext for Module {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        sync_log_level();
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let configure = self.configure;
        self.host.begin();
        let host = Rc::clone(&self.host);
        let accepted = load_configuration(self.name, plugin_configuration_size, |raw| {
            configure(&mut self.stages, &host, raw)
        })
        .is_some();
        if accepted {
            self.configured = true;
            self.schedule();
            for gauge in self.stages.iter().filter_map(|s| s.vm_memory_gauge()) {
                report_vm_memory(gauge);
            }
        }
        accepted
    }

    fn on_tick(&mut self) {
        sync_log_level();
        self.host.begin();
        let now = self.host.now();
        for (stage, due) in self.stages.iter_mut().zip(self.due.iter_mut()) {
            let Some((period, at)) = due else {
                continue;
            };
            if now < *at {
                continue;
            }
            *at = now + *period;
            if let Some(gauge) = stage.vm_memory_gauge() {
                report_vm_memory(gauge);
            }
            stage.on_tick(&self.host);
        }
        self.poll_held();
        self.host.flush_metrics();
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        self.host.begin();
        for stage in &mut self.stages {
            if stage.on_queue_ready(&self.host, queue_id) {
                return;
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Envoy refuses a plugin whose first configuration failed, so this only runs configured.
        if !self.configured {
            return None;
        }
        let streams = self.stages.iter().filter_map(|s| s.new_stream()).collect();
        Some(Box::new(Request {
            context_id,
            chain: Rc::new(RefCell::new(Chain::new(streams))),
            polled: Rc::clone(&self.polled),
            host: Rc::clone(&self.host),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The HTTP context of one request.
struct Request {
    context_id: u32,
    chain: Rc<RefCell<Chain<ModuleHost>>>,
    polled: Polled,
    host: Rc<ModuleHost>,
}

impl Request {
    /// Runs one chain callback; a callback that finds the chain busy (a re-entrant call) lets the
    /// request go rather than trap.
    fn run(&self, callback: impl FnOnce(&mut Chain<ModuleHost>, &ModuleHost) -> Flow) -> Action {
        let Ok(mut chain) = self.chain.try_borrow_mut() else {
            return Action::Continue;
        };
        self.host.begin();
        let flow = callback(&mut chain, &self.host);
        if flow == Flow::Pause && chain.wants_poll() {
            let mut polled = self.polled.borrow_mut();
            if !polled.iter().any(|(id, _)| *id == self.context_id) {
                polled.push((self.context_id, Rc::downgrade(&self.chain)));
            }
        }
        match flow {
            Flow::Continue => Action::Continue,
            // Headers stopped (with `allow_on_headers_stop_iteration`), bodies buffered.
            Flow::Pause | Flow::Answered => Action::Pause,
        }
    }
}

impl Context for Request {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        // The chain resumes the request itself when every stage lets it go.
        self.run(|chain, host| chain.on_call_answer(host, token, body_size));
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut chain) = self.chain.try_borrow_mut() {
            self.host.begin();
            chain.on_done(&self.host);
        }
        true
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        self.run(|chain, host| chain.on_request_headers(host, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.run(|chain, host| chain.on_request_body(host, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.run(|chain, host| chain.on_request_trailers(host))
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        self.run(|chain, host| chain.on_response_headers(host, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.run(|chain, host| chain.on_response_body(host, body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        if let Ok(mut chain) = self.chain.try_borrow_mut() {
            self.host.begin();
            chain.on_log(&self.host);
        }
    }
}
