//! proxy-wasm adapter: forwards the proxy's callbacks to the host-free logic.

use crate::keystore::{Pending, Progress};
use crate::plugin::{configure, TICK};
use crate::stream::{AuthStream, RequestAction, Runtime};
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
    /// Key fetches this worker started, by callout token.
    pending: HashMap<u32, Pending>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let (Some(runtime), Some(pending)) = (self.runtime.as_ref(), self.pending.remove(&token)) else {
            return;
        };
        if let Progress::Next(next, pending) =
            runtime
                .keystore
                .on_answer(&ProxyHost, &runtime.config, &runtime.metrics, pending, body_size)
        {
            self.pending.insert(next, pending);
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        sync_log_level();
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let Some(runtime) = load_configuration("kea-auth", plugin_configuration_size, |raw| {
            configure(&ProxyHost, raw)
        }) else {
            return false;
        };
        self.runtime = Some(runtime);
        self.pending.clear();
        // Fetching is not allowed in on_configure: the first tick starts it.
        ProxyHost.set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        sync_log_level();
        let Some(runtime) = self.runtime.as_ref() else {
            return;
        };
        report_vm_memory(runtime.metrics.vm_memory_bytes);
        for (token, pending) in runtime
            .keystore
            .on_tick(&ProxyHost, &runtime.config, &runtime.metrics)
        {
            self.pending.insert(token, pending);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let runtime = Rc::clone(self.runtime.as_ref()?);
        Some(Box::new(Http {
            runtime,
            stream: AuthStream::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    runtime: Rc<Runtime>,
    stream: AuthStream,
}

impl Context for Http {
    fn on_done(&mut self) -> bool {
        self.stream.on_done(&ProxyHost, &self.runtime);
        true
    }

    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        match self
            .stream
            .on_call_answer(&ProxyHost, &self.runtime, token, body_size)
        {
            RequestAction::Continue => ProxyHost.resume_request(),
            RequestAction::Answered | RequestAction::Wait => {}
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        match self.stream.on_request_headers(&ProxyHost, &self.runtime) {
            RequestAction::Continue => Action::Continue,
            RequestAction::Answered | RequestAction::Wait => Action::Pause,
        }
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.stream.on_response_headers(&ProxyHost);
        Action::Continue
    }
}
