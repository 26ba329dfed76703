//! The benchmark's floor (`dist/trivial.wasm`, built by `./wasm-build.sh trivial`): a proxy-wasm
//! filter that sets one response header and nothing else. What it costs is what the proxy-wasm
//! boundary costs on the machine; a KEA module skipping every request should cost the same.

/// The header the filter sets on every response.
pub const HEADER: (&str, &str) = ("x-trivial", "1");

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Request))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Request;

    impl Context for Request {}

    impl HttpContext for Request {
        fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            let (name, value) = super::HEADER;
            self.set_http_response_header(name, Some(value));
            Action::Continue
        }
    }

    // The proxy-wasm entry point (`_initialize`) is an exported, unmangled function.
    #[allow(unsafe_code)]
    mod entry {
        proxy_wasm::main! {{
            proxy_wasm::set_log_level(super::LogLevel::Warn);
            proxy_wasm::set_root_context(|_| Box::new(super::Root));
        }}
    }
}
