//! proxy-wasm adapter: forwards the proxy's callbacks to the host-free logic. Nothing here
//! decides anything.

use crate::plugin::{AuditRoot, Runtime};
use crate::stream::AuditStream;
use kea_plugin_sdk::proxy::{load_configuration, report_vm_memory, sync_log_level, ProxyHost};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
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
    inner: AuditRoot,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, headers: usize, body_size: usize, _trailers: usize) {
        self.inner
            .on_call_response(&ProxyHost, token_id, headers, body_size);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        sync_log_level();
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        load_configuration("kea-audit", plugin_configuration_size, |raw| {
            self.inner.configure(&ProxyHost, raw)
        })
        .is_some()
    }

    fn on_tick(&mut self) {
        sync_log_level();
        if let Some(runtime) = self.inner.runtime() {
            report_vm_memory(runtime.metrics.vm_memory_bytes);
        }
        self.inner.on_tick(&ProxyHost);
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if self.inner.queue_id() == Some(queue_id) {
            self.inner.on_queue_ready(&ProxyHost);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let runtime = self.inner.runtime()?;
        Some(Box::new(Http {
            runtime,
            stream: AuditStream::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    runtime: Rc<Runtime>,
    stream: AuditStream,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.stream.on_request_headers(&ProxyHost, &self.runtime.config);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        self.stream.on_request_body(&ProxyHost, body_size);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.stream.on_response_headers(&ProxyHost);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        self.stream.on_response_body(&ProxyHost, body_size);
        Action::Continue
    }

    fn on_log(&mut self) {
        let outcome = self.stream.on_log(&ProxyHost, &self.runtime.config);
        self.runtime.emit(&ProxyHost, outcome);
    }
}
