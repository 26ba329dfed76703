//! The benchmark's floor (`dist/trivial.wasm`, built by `./wasm-build.sh trivial`): a proxy-wasm
//! filter that sets one response header and nothing else. What it costs is what the proxy-wasm
//! boundary costs on the machine; a KEA module skipping every request should cost the same.
//!
//! With a configuration naming probes (`"<kind> <count>[, <kind> <count>...]"`, a JSON string), it
//! also makes `count` host calls of each kind per request: the bench's price list of a crossing,
//! and the price of a whole plugin's host calls without the plugin's work, measured beside the
//! plain floor. Kinds: see [`ProbeKind::parse`].

/// The header the filter sets on every response.
pub const HEADER: (&str, &str) = ("x-trivial", "1");

/// The host calls `kea.wasm` makes for the benchmark's suite miss (audit, auth with a cached token,
/// validate, cache per user; the origin says `no-store`), as a probe: `kea-bench`'s row "probe:
/// trivial + a suite miss's 18 host calls" makes them without the suite's work, and
/// plugins/suite/tests/host_calls.rs asserts that the suite makes exactly these.
pub const SUITE_MISS_HOST_CALLS: &str = "request-headers 2, response-headers 2, log 1, clock 2, \
     property 2, set-header 6, shared-data 3";

/// Host calls made per request on top of the floor: `count` calls of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub kind: ProbeKind,
    pub count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// The whole request header map (`proxy_get_header_map_pairs`), in the request callback.
    RequestHeaders,
    /// The whole response header map, in the response callback.
    ResponseHeaders,
    /// One request header (`proxy_get_header_map_value`).
    Header,
    /// The clock (`proxy_get_current_time_nanoseconds`).
    Clock,
    /// A property (`proxy_get_property`, `xds.route_name`).
    Property,
    /// A request header written (`proxy_replace_header_map_value`).
    SetHeader,
    /// A 600-byte line logged at info (`proxy_log`): an audit record's size, at the level Envoy
    /// prints.
    Log,
    /// A shared-data key read that is not there (`proxy_get_shared_data`): a cache miss's lookup.
    SharedData,
}

impl ProbeKind {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "request-headers" => Self::RequestHeaders,
            "response-headers" => Self::ResponseHeaders,
            "header" => Self::Header,
            "clock" => Self::Clock,
            "property" => Self::Property,
            "set-header" => Self::SetHeader,
            "log" => Self::Log,
            "shared-data" => Self::SharedData,
            _ => return None,
        })
    }
}

impl Probe {
    /// Reads `"<kind> <count>[, <kind> <count>...]"` (JSON string quotes allowed); `None` for
    /// anything else, such as the floor's `{}`.
    pub fn parse(configuration: &str) -> Option<Vec<Self>> {
        let text = configuration.trim().trim_matches('"');
        text.split(',')
            .map(|probe| {
                let (kind, count) = probe.trim().split_once(' ')?;
                Some(Self {
                    kind: ProbeKind::parse(kind)?,
                    count: count.trim().parse().ok()?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_read_from_their_configuration() {
        assert_eq!(
            Probe::parse("\"request-headers 4\""),
            Some(vec![Probe {
                kind: ProbeKind::RequestHeaders,
                count: 4
            }])
        );
        assert_eq!(
            Probe::parse("\"log 1, response-headers 2\""),
            Some(vec![
                Probe {
                    kind: ProbeKind::Log,
                    count: 1
                },
                Probe {
                    kind: ProbeKind::ResponseHeaders,
                    count: 2
                }
            ])
        );
        assert_eq!(Probe::parse("\"log 1, sleep 2\""), None);
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
    use std::rc::Rc;

    /// What a probe's log line weighs: about one audit record.
    const LOG_LINE_BYTES: usize = 600;

    #[derive(Default)]
    struct Root {
        probes: Rc<[Probe]>,
        log_line: Rc<str>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let configuration = self.get_plugin_configuration().unwrap_or_default();
            self.probes = Probe::parse(&String::from_utf8_lossy(&configuration))
                .unwrap_or_default()
                .into();
            self.log_line = "x".repeat(LOG_LINE_BYTES).into();
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Request {
                probes: Rc::clone(&self.probes),
                log_line: Rc::clone(&self.log_line),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Request {
        probes: Rc<[Probe]>,
        log_line: Rc<str>,
    }

    impl Request {
        /// Makes the probes' calls that belong to `phase` (the kinds `in_phase` selects).
        fn run(&self, in_phase: impl Fn(ProbeKind) -> bool) {
            for probe in self.probes.iter().filter(|p| in_phase(p.kind)) {
                for _ in 0..probe.count {
                    self.call(probe.kind);
                }
            }
        }

        fn call(&self, kind: ProbeKind) {
            match kind {
                ProbeKind::RequestHeaders => {
                    black_box(self.get_http_request_headers_bytes());
                }
                ProbeKind::ResponseHeaders => {
                    black_box(self.get_http_response_headers_bytes());
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
                ProbeKind::Log => {
                    // Straight to the host: the SDK's own level filter is set to warn.
                    black_box(proxy_wasm::hostcalls::log(LogLevel::Info, &self.log_line)).ok();
                }
                ProbeKind::SharedData => {
                    black_box(self.get_shared_data("kea-probe-absent"));
                }
            }
        }
    }

    impl Context for Request {}

    impl HttpContext for Request {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            self.run(|kind| !matches!(kind, ProbeKind::ResponseHeaders | ProbeKind::Log));
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            self.run(|kind| kind == ProbeKind::ResponseHeaders);
            let (name, value) = super::HEADER;
            self.set_http_response_header(name, Some(value));
            Action::Continue
        }

        fn on_log(&mut self) {
            self.run(|kind| kind == ProbeKind::Log);
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
