//! The benchmark's floor (`dist/trivial.wasm`, built by `./wasm-build.sh trivial`): a proxy-wasm
//! filter that sets one response header and nothing else. What it costs is what the proxy-wasm
//! boundary costs on the machine; a KEA module skipping every request should cost the same.
//!
//! With a configuration naming a probe (`"<kind> <count>"`, a JSON string), it also makes `count`
//! host calls of one kind in each request's headers callback: the bench's price list of a
//! crossing, measured beside the plain floor. Kinds: see [`Probe::parse`].

/// The header the filter sets on every response.
pub const HEADER: (&str, &str) = ("x-trivial", "1");

/// Host calls made per request on top of the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub kind: ProbeKind,
    pub count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// The whole request header map (`proxy_get_header_map_pairs`).
    RequestHeaders,
    /// One request header (`proxy_get_header_map_value`).
    Header,
    /// The clock (`proxy_get_current_time_nanoseconds`).
    Clock,
    /// A property (`proxy_get_property`, `xds.route_name`).
    Property,
    /// A request header written (`proxy_replace_header_map_value`).
    SetHeader,
}

impl Probe {
    /// Reads `"<kind> <count>"` (JSON string quotes allowed); `None` for anything else, such as
    /// the floor's `{}`.
    pub fn parse(configuration: &str) -> Option<Self> {
        let text = configuration.trim().trim_matches('"');
        let (kind, count) = text.split_once(' ')?;
        let kind = match kind {
            "request-headers" => ProbeKind::RequestHeaders,
            "header" => ProbeKind::Header,
            "clock" => ProbeKind::Clock,
            "property" => ProbeKind::Property,
            "set-header" => ProbeKind::SetHeader,
            _ => return None,
        };
        Some(Self {
            kind,
            count: count.trim().parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_read_from_their_configuration() {
        assert_eq!(
            Probe::parse("\"request-headers 4\""),
            Some(Probe {
                kind: ProbeKind::RequestHeaders,
                count: 4
            })
        );
        assert_eq!(Probe::parse("{}"), None);
        assert_eq!(Probe::parse("\"clock many\""), None);
        assert_eq!(Probe::parse("\"sleep 4\""), None);
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod filter {
    use super::{Probe, ProbeKind};
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::hint::black_box;

    #[derive(Default)]
    struct Root {
        probe: Option<Probe>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let configuration = self.get_plugin_configuration().unwrap_or_default();
            self.probe = Probe::parse(&String::from_utf8_lossy(&configuration));
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Request { probe: self.probe }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Request {
        probe: Option<Probe>,
    }

    impl Context for Request {}

    impl HttpContext for Request {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            let Some(probe) = self.probe else {
                return Action::Continue;
            };
            for _ in 0..probe.count {
                match probe.kind {
                    ProbeKind::RequestHeaders => {
                        black_box(self.get_http_request_headers_bytes());
                    }
                    ProbeKind::Header => {
                        black_box(self.get_http_request_header_bytes(":path"));
                    }
                    ProbeKind::Clock => {
                        black_box(self.get_current_time());
                    }
                    ProbeKind::Property => {
                        black_box(self.get_property(vec!["xds", "route_name"]));
                    }
                    ProbeKind::SetHeader => self.set_http_request_header("x-probe", Some("1")),
                }
            }
            Action::Continue
        }

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
            proxy_wasm::set_root_context(|_| Box::<super::Root>::default());
        }}
    }
}
