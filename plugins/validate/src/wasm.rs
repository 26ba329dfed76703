//! proxy-wasm adapter: forwards the proxy's callbacks to the host-free logic.

use crate::plugin::{configure, Runtime, TICK};
use crate::stream::{Action as StreamAction, ValidateStream};
use kea_plugin_sdk::proxy::{load_configuration, report_vm_memory, sync_log_level, ProxyHost};
use kea_plugin_sdk::Host;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::collections::HashMap;
use std::rc::Rc;

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
    /// Bundle fetches in flight: callout token → API index.
    pending: HashMap<u32, usize>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if let (Some(runtime), Some(index)) = (self.runtime.as_ref(), self.pending.remove(&token)) {
            runtime.on_fetch_answer(&ProxyHost, index, body_size);
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        sync_log_level();
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let Some(runtime) = load_configuration("kea-validate", plugin_configuration_size, |raw| {
            configure(&ProxyHost, raw)
        }) else {
            return false;
        };
        report_vm_memory(runtime.metrics.vm_memory_bytes);
        self.runtime = Some(runtime);
        self.pending.clear();
        // Fetches start from the first tick; ticks also follow log-level changes.
        ProxyHost.set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        sync_log_level();
        let Some(runtime) = self.runtime.as_ref() else {
            return;
        };
        report_vm_memory(runtime.metrics.vm_memory_bytes);
        if runtime.fetches() {
            self.pending.extend(runtime.on_tick(&ProxyHost));
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let runtime = Rc::clone(self.runtime.as_ref()?);
        Some(Box::new(Http {
            runtime,
            stream: ValidateStream::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    runtime: Rc<Runtime>,
    stream: ValidateStream,
}

impl Context for Http {}

fn action(action: StreamAction) -> Action {
    match action {
        StreamAction::Continue => Action::Continue,
        // Headers are held (StopIteration, with `allow_on_headers_stop_iteration`) and the body
        // buffered (StopIterationAndBuffer) until it is complete.
        StreamAction::Wait | StreamAction::Answered => Action::Pause,
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(
            self.stream
                .on_request_headers(&ProxyHost, &self.runtime, end_of_stream),
        )
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.stream
                .on_request_body(&ProxyHost, &self.runtime, body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        action(self.stream.on_request_trailers(&ProxyHost, &self.runtime))
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(
            self.stream
                .on_response_headers(&ProxyHost, &self.runtime, end_of_stream),
        )
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.stream
                .on_response_body(&ProxyHost, &self.runtime, body_size, end_of_stream),
        )
    }
}
