//! proxy-wasm adapter: forwards the proxy's callbacks to the host-free logic.

use crate::plugin::configure;
use crate::refresh;
use crate::stream::{CacheStream, RequestAction, ResponseAction, Runtime, Wake};
use kea_plugin_sdk::proxy::{load_configuration, report_vm_memory, sync_log_level, ProxyHost};
use kea_plugin_sdk::Host;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// How often held requests (collapsed misses) look for the entry they wait for.
const WAIT_POLL: Duration = Duration::from_millis(10);

/// Requests of this worker held while another request fetches their key: context id and stream.
type Waiting = Rc<RefCell<Vec<(u32, Weak<RefCell<CacheStream>>)>>>;

// The proxy-wasm entry point (`_initialize`) is an exported, unmangled function.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Info);
        proxy_wasm::set_root_context(|_| Box::new(super::Root::default()));
    }}
}

#[derive(Default)]
struct Root {
    runtime: Option<Rc<Runtime>>,
    waiting: Waiting,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if let Some(runtime) = &self.runtime {
            refresh::on_call_response(&ProxyHost, runtime, token_id, body_size);
        }
    }
}

/// Tick period when the wake-up queue cannot be registered: refreshes then start on the tick.
const FALLBACK_TICK: Duration = Duration::from_millis(100);

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        sync_log_level();
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let Some(runtime) = load_configuration("kea-cache", plugin_configuration_size, |raw| {
            configure(&ProxyHost, raw)
        }) else {
            return false;
        };
        // Background refreshes start when the request path wakes this root context through its
        // own queue (the tick is their fallback).
        let tick = match runtime.refresh.listen(&ProxyHost) {
            Ok(_) => Duration::from_secs(5),
            Err(err) => {
                log::warn!("cache: no wake-up queue ({err}): background refreshes start on a tick");
                FALLBACK_TICK
            }
        };
        self.runtime = Some(runtime);
        // Held requests (collapsed misses) are looked at on every tick, a few µs when none wait;
        // the tick also sends any refresh left waiting.
        ProxyHost.set_tick_period(WAIT_POLL.min(tick));
        true
    }

    fn on_tick(&mut self) {
        sync_log_level();
        let Some(runtime) = self.runtime.as_ref() else {
            return;
        };
        report_vm_memory(runtime.metrics.vm_memory_bytes);
        refresh::dispatch_pending(&ProxyHost, runtime);
        // Each held stream is resumed in its own context: replies and resumptions act on it.
        self.waiting.borrow_mut().retain(|(context_id, stream)| {
            let Some(stream) = stream.upgrade() else {
                return false;
            };
            if proxy_wasm::hostcalls::set_effective_context(*context_id).is_err() {
                return false;
            }
            let Ok(mut stream) = stream.try_borrow_mut() else {
                return true;
            };
            match stream.resume_waiting(&ProxyHost, runtime) {
                Wake::Wait => true,
                Wake::Served => false,
                Wake::Proceed => {
                    ProxyHost.resume_request();
                    false
                }
            }
        });
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Some(runtime) = &self.runtime {
            if runtime.refresh.wakeup_queue() == Some(queue_id) {
                refresh::on_wakeup(&ProxyHost, runtime);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let runtime = Rc::clone(self.runtime.as_ref()?);
        Some(Box::new(Http {
            runtime,
            context_id,
            stream: Rc::new(RefCell::new(CacheStream::new())),
            waiting: Rc::clone(&self.waiting),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    runtime: Rc<Runtime>,
    context_id: u32,
    stream: Rc<RefCell<CacheStream>>,
    waiting: Waiting,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Ok(mut stream) = self.stream.try_borrow_mut() else {
            return Action::Continue;
        };
        match stream.on_request_headers(&ProxyHost, &self.runtime) {
            RequestAction::Continue => Action::Continue,
            RequestAction::Answered => Action::Pause,
            RequestAction::Wait => {
                self.waiting
                    .borrow_mut()
                    .push((self.context_id, Rc::downgrade(&self.stream)));
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let Ok(mut stream) = self.stream.try_borrow_mut() else {
            return Action::Continue;
        };
        match stream.on_response_headers(&ProxyHost, &self.runtime, end_of_stream) {
            ResponseAction::Continue => Action::Continue,
            // The origin's response was replaced by a local reply: stop it here.
            ResponseAction::Replaced => Action::Pause,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Ok(mut stream) = self.stream.try_borrow_mut() {
            stream.on_response_body(&ProxyHost, &self.runtime, body_size, end_of_stream);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Ok(mut stream) = self.stream.try_borrow_mut() {
            stream.on_done(&ProxyHost);
        }
    }
}
