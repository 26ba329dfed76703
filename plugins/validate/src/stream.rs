//! One HTTP stream through the validate plugin.
//!
//! Headers phase: rule, API, operation, parameters. A request whose operation takes a body is
//! held — headers included — until the body is complete and checked, so an invalid request never
//! reaches the upstream (Envoy must run the filter with `allow_on_headers_stop_iteration`).
//! Rejections are RFC 9457 problem+json listing every problem found (up to `maxErrors`).

use crate::config::{Effective, Mode, Unknown};
use crate::plugin::Runtime;
use kea_plugin_sdk::host::request_header;
use kea_plugin_sdk::identity::VALIDATION;
use kea_plugin_sdk::matcher::{is_ambiguous_path, split_path};
use kea_plugin_sdk::{Buffer, HeaderMap, Host, Phase, Problem, RequestView};
use kea_schema::{Api, BodyRejection, Issue, OperationId, RouteMatch};
use serde_json::{json, Value};
use std::rc::Rc;

/// Response header carrying the result of response validation.
pub const RESPONSE_VALIDATION: &str = "x-kea-response-validation";
/// Problem type of requests that do not match the API description.
pub const INVALID_REQUEST: &str = "https://kea.dev/problems/invalid-request";

/// What the adapter tells the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Keep headers (and buffer body) until the body is complete.
    Wait,
    /// A local reply was sent.
    Answered,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    /// Request headers held until the body is complete.
    AwaitingBody {
        checked: Checked,
        issues: Vec<Issue>,
        received: usize,
    },
    /// Passed on; the response may still be checked.
    Forwarded {
        checked: Checked,
    },
    /// Response held until its body is complete.
    AwaitingResponse {
        checked: Checked,
        status: u16,
        content_type: Option<String>,
    },
    Finished,
}

#[derive(Debug)]
struct Checked {
    api: Rc<Api>,
    operation: OperationId,
    settings: Effective,
    content_type: Option<String>,
}

/// Per-stream state.
#[derive(Debug, Default)]
pub struct ValidateStream {
    state: State,
}

impl ValidateStream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on_request_headers(&mut self, host: &impl Host, runtime: &Runtime, end_of_stream: bool) -> Action {
        let _phase = Phase::enter("validate.request_headers");
        if runtime.config.checks_nothing {
            return self.skip(host, runtime);
        }
        // Single lookups, not the whole map: each parameter header costs one host call only when
        // the operation declares it.
        let find = |name: &str| request_header(host, name);
        let method = find(":method").unwrap_or_default();
        let target = find(":path").unwrap_or_else(|| "/".into());
        let (path, query) = split_path(&target);
        let authority = find(":authority").unwrap_or_default();
        let route_name = if runtime.config.rules.needs_route_name() {
            kea_plugin_sdk::host::route_name(host)
        } else {
            None
        };
        let view = RequestView {
            authority: &authority,
            path,
            method: &method,
            route_name: route_name.as_deref(),
        };
        let settings = *runtime
            .config
            .rules
            .first_match(&view)
            .unwrap_or(&runtime.config.defaults);
        let Some(api_index) = settings.api.filter(|_| settings.mode != Mode::Off) else {
            return self.skip(host, runtime);
        };
        let Some(api) = runtime.api(api_index) else {
            return self.unavailable(host, runtime, settings);
        };
        if is_ambiguous_path(path) {
            // Dot-segments and encoded dots or slashes: the upstream may resolve them to another
            // operation than the one checked.
            return self.ambiguous(host, runtime, settings, path);
        }
        let (operation, path_params) = match api.route(&method, path) {
            Ok(found) => found,
            Err(miss) => return self.unknown_operation(host, runtime, settings, &api, &method, path, miss),
        };
        let lookup = |name: &str| {
            if name != "cookie" {
                return find(name);
            }
            // Several Cookie headers (HTTP/2 splits them) are one list.
            let cookies: Vec<String> = host
                .headers(HeaderMap::RequestHeaders)
                .into_iter()
                .filter(|(n, _)| n == "cookie")
                .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
                .collect();
            (!cookies.is_empty()).then(|| cookies.join("; "))
        };
        let issues = api.check_parameters(operation, &path_params, query, lookup, settings.max_errors);
        let takes_body = api.takes_body(operation);
        let content_type = if takes_body { find("content-type") } else { None };
        let content_length = if takes_body {
            find("content-length").and_then(|v| v.trim().parse::<usize>().ok())
        } else {
            None
        };
        let checked = Checked {
            api: Rc::clone(&api),
            operation,
            settings,
            content_type,
        };
        if !issues.is_empty() && settings.mode == Mode::Enforce {
            return self.reject_invalid(host, runtime, &checked, issues);
        }
        if !takes_body {
            return self.decide(host, runtime, checked, issues);
        }
        if content_length.is_some_and(|length| length > settings.max_body_bytes) {
            return self.too_large(host, runtime, checked, issues);
        }
        if end_of_stream {
            return self.check_body(host, runtime, checked, issues, &[]);
        }
        self.state = State::AwaitingBody {
            checked,
            issues,
            received: 0,
        };
        Action::Wait
    }

    pub fn on_request_body(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let State::AwaitingBody {
            checked, received, ..
        } = &mut self.state
        else {
            return Action::Continue;
        };
        *received = body_size;
        if body_size > checked.settings.max_body_bytes {
            let State::AwaitingBody { checked, issues, .. } = std::mem::take(&mut self.state) else {
                return Action::Continue;
            };
            return self.too_large(host, runtime, checked, issues);
        }
        if !end_of_stream {
            return Action::Wait;
        }
        let _phase = Phase::enter("validate.request_body");
        let State::AwaitingBody { checked, issues, .. } = std::mem::take(&mut self.state) else {
            return Action::Continue;
        };
        let body = host.buffer(Buffer::RequestBody, 0, body_size).unwrap_or_default();
        self.check_body(host, runtime, checked, issues, &body)
    }

    /// Trailers end a body too.
    pub fn on_request_trailers(&mut self, host: &impl Host, runtime: &Runtime) -> Action {
        match self.state {
            State::AwaitingBody { received, .. } => self.on_request_body(host, runtime, received, true),
            _ => Action::Continue,
        }
    }

    pub fn on_response_headers(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        end_of_stream: bool,
    ) -> Action {
        let State::Forwarded { checked } = std::mem::take(&mut self.state) else {
            return Action::Continue;
        };
        let _phase = Phase::enter("validate.response_headers");
        let status = kea_plugin_sdk::host::status_of(&host.headers(HeaderMap::ResponseHeaders)).unwrap_or(0);
        let content_type = kea_plugin_sdk::host::response_header(host, "content-type");
        if end_of_stream {
            self.check_response(host, runtime, &checked, status, content_type.as_deref(), &[]);
            return Action::Continue;
        }
        self.state = State::AwaitingResponse {
            checked,
            status,
            content_type,
        };
        Action::Wait
    }

    pub fn on_response_body(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let State::AwaitingResponse { checked, .. } = &self.state else {
            return Action::Continue;
        };
        if body_size > checked.settings.max_body_bytes {
            // Too large to check: passed on unchecked rather than held.
            log::info!(
                "kea-validate: response of {} over maxBodyBytes, not checked",
                checked.api.label(checked.operation)
            );
            self.state = State::Finished;
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Wait;
        }
        let _phase = Phase::enter("validate.response_body");
        let State::AwaitingResponse {
            checked,
            status,
            content_type,
        } = std::mem::take(&mut self.state)
        else {
            return Action::Continue;
        };
        let body = host
            .buffer(Buffer::ResponseBody, 0, body_size)
            .unwrap_or_default();
        self.check_response(host, runtime, &checked, status, content_type.as_deref(), &body);
        Action::Continue
    }

    fn check_response(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        checked: &Checked,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) {
        self.state = State::Finished;
        let issues = checked.api.check_response(
            checked.operation,
            status,
            content_type,
            body,
            checked.settings.max_errors,
        );
        if issues.is_empty() {
            host.set_header(HeaderMap::ResponseHeaders, RESPONSE_VALIDATION, Some(b"passed"));
            return;
        }
        runtime.metrics.responses_invalid.add(host, 1);
        let line = format!(
            "kea-validate: response {status} of {} does not match the API: {}",
            checked.api.label(checked.operation),
            summary(&issues)
        );
        host.log(log::Level::Warn, &line);
        host.set_header(HeaderMap::ResponseHeaders, RESPONSE_VALIDATION, Some(b"failed"));
    }

    fn check_body(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        checked: Checked,
        mut issues: Vec<Issue>,
        body: &[u8],
    ) -> Action {
        let content_type = checked.content_type.as_deref();
        let bodies = checked.settings.bodies;
        let reads = move |media_type: &str| bodies.covers(media_type);
        match checked.api.check_body_reading(
            checked.operation,
            content_type,
            body,
            checked.settings.max_errors,
            &reads,
        ) {
            Ok(()) => self.decide(host, runtime, checked, issues),
            Err(BodyRejection::Invalid(found)) => {
                issues.extend(found);
                issues.truncate(checked.settings.max_errors);
                self.decide(host, runtime, checked, issues)
            }
            Err(BodyRejection::UnsupportedMediaType { allowed }) => {
                if checked.settings.mode == Mode::Enforce {
                    let detail = format!(
                        "{} takes {}, not {}",
                        checked.api.label(checked.operation),
                        allowed.join(", "),
                        content_type.unwrap_or("a body without Content-Type")
                    );
                    let problem = Problem::new(415)
                        .with_detail(detail)
                        .with_extension("accepted", json!(allowed));
                    return self.reject(host, runtime, &problem, &[]);
                }
                self.report(
                    host,
                    runtime,
                    &checked,
                    &[Issue {
                        location: kea_schema::In::Header,
                        name: Some("Content-Type".into()),
                        pointer: None,
                        message: format!("media type not accepted (accepted: {})", allowed.join(", ")),
                    }],
                )
            }
        }
    }

    /// Passes a checked request on (marking it), or rejects it in enforce mode.
    fn decide(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        checked: Checked,
        issues: Vec<Issue>,
    ) -> Action {
        if issues.is_empty() {
            runtime.metrics.passed.add(host, 1);
            host.set_header(HeaderMap::RequestHeaders, VALIDATION, Some(b"passed"));
            self.forward(checked);
            return Action::Continue;
        }
        match checked.settings.mode {
            Mode::Enforce => self.reject_invalid(host, runtime, &checked, issues),
            _ => {
                let action = self.report(host, runtime, &checked, &issues);
                self.forward(checked);
                action
            }
        }
    }

    fn forward(&mut self, checked: Checked) {
        self.state = if checked.settings.responses {
            State::Forwarded { checked }
        } else {
            State::Finished
        };
    }

    fn report(&mut self, host: &impl Host, runtime: &Runtime, checked: &Checked, issues: &[Issue]) -> Action {
        runtime.metrics.reported.add(host, 1);
        let line = format!(
            "kea-validate: {} request does not match the API (report mode): {}",
            checked.api.label(checked.operation),
            summary(issues)
        );
        host.log(log::Level::Warn, &line);
        host.set_header(HeaderMap::RequestHeaders, VALIDATION, Some(b"reported"));
        Action::Continue
    }

    fn reject_invalid(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        checked: &Checked,
        issues: Vec<Issue>,
    ) -> Action {
        let count = issues.len();
        let more = if count >= checked.settings.max_errors {
            " or more"
        } else {
            ""
        };
        let problem = Problem::new(400)
            .with_type(INVALID_REQUEST, "Request does not match the API description")
            .with_detail(format!(
                "{count}{more} problem{} with this {} request",
                if count == 1 && more.is_empty() { "" } else { "s" },
                checked.api.label(checked.operation)
            ))
            .with_extension("errors", serde_json::to_value(&issues).unwrap_or(Value::Null));
        self.reject(host, runtime, &problem, &[])
    }

    fn too_large(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        checked: Checked,
        issues: Vec<Issue>,
    ) -> Action {
        let limit = checked.settings.max_body_bytes;
        if checked.settings.mode == Mode::Enforce {
            let problem =
                Problem::new(413).with_detail(format!("request bodies are limited to {limit} bytes"));
            return self.reject(host, runtime, &problem, &[]);
        }
        let mut issues = issues;
        issues.push(Issue {
            location: kea_schema::In::Body,
            name: None,
            pointer: None,
            message: format!("body over {limit} bytes, not checked"),
        });
        let action = self.report(host, runtime, &checked, &issues);
        self.state = State::Finished;
        action
    }

    #[allow(clippy::too_many_arguments)]
    fn unknown_operation(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        settings: Effective,
        api: &Api,
        method: &str,
        path: &str,
        miss: RouteMatch,
    ) -> Action {
        if settings.unknown_operations == Unknown::Pass {
            return self.skip(host, runtime);
        }
        let (problem, allow) = match miss {
            RouteMatch::MethodNotAllowed { allow } => {
                let detail = format!("{path} of {} takes {}, not {method}", api.title, allow.join(", "));
                (Problem::new(405).with_detail(detail), allow.join(", "))
            }
            _ => (
                Problem::new(404).with_detail(format!(
                    "{} describes no operation for {method} {path}",
                    api.title
                )),
                String::new(),
            ),
        };
        if settings.mode == Mode::Enforce {
            let headers: Vec<(&str, &str)> = if allow.is_empty() {
                vec![]
            } else {
                vec![("allow", allow.as_str())]
            };
            return self.reject(host, runtime, &problem, &headers);
        }
        runtime.metrics.reported.add(host, 1);
        host.log(
            log::Level::Warn,
            &format!(
                "kea-validate: {method} {path} is not in {} (report mode)",
                api.title
            ),
        );
        host.set_header(HeaderMap::RequestHeaders, VALIDATION, Some(b"reported"));
        self.state = State::Finished;
        Action::Continue
    }

    fn ambiguous(&mut self, host: &impl Host, runtime: &Runtime, settings: Effective, path: &str) -> Action {
        if settings.mode == Mode::Enforce {
            let problem = Problem::new(400)
                .with_type(INVALID_REQUEST, "Request does not match the API description")
                .with_detail("the path has dot-segments or encoded dots or slashes; send it normalised")
                .with_extension(
                    "errors",
                    json!([{"in": "path", "message": "not a normalised path"}]),
                );
            return self.reject(host, runtime, &problem, &[]);
        }
        host.log(
            log::Level::Warn,
            &format!("kea-validate: {path} is not a normalised path (report mode)"),
        );
        runtime.metrics.reported.add(host, 1);
        host.set_header(HeaderMap::RequestHeaders, VALIDATION, Some(b"reported"));
        self.state = State::Finished;
        Action::Continue
    }

    fn unavailable(&mut self, host: &impl Host, runtime: &Runtime, settings: Effective) -> Action {
        runtime.metrics.unavailable.add(host, 1);
        if settings.mode == Mode::Enforce {
            // Fail closed: without the API description nothing can be let through unchecked.
            let problem = Problem::new(503).with_detail("the API description has not been loaded yet");
            return self.reject(host, runtime, &problem, &[("retry-after", "5")]);
        }
        host.set_header(HeaderMap::RequestHeaders, VALIDATION, Some(b"skipped"));
        self.state = State::Finished;
        Action::Continue
    }

    fn skip(&mut self, host: &impl Host, runtime: &Runtime) -> Action {
        runtime.metrics.skipped.add(host, 1);
        host.set_header(HeaderMap::RequestHeaders, VALIDATION, Some(b"skipped"));
        self.state = State::Finished;
        Action::Continue
    }

    fn reject(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        problem: &Problem,
        headers: &[(&str, &str)],
    ) -> Action {
        self.state = State::Finished;
        if problem.status < 500 {
            runtime.metrics.rejected.add(host, 1);
        }
        // The audit plugin (earlier in the chain) reads this at log time.
        host.set_header(HeaderMap::RequestHeaders, VALIDATION, Some(b"failed"));
        if let Err(error) = problem.send(host, headers) {
            log::warn!("kea-validate: cannot send the {} reply: {error}", problem.status);
        }
        Action::Answered
    }
}

/// `query limit: …; body /name: …` for logs.
fn summary(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|issue| {
            let location = serde_json::to_value(issue.location)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let at = issue.name.as_deref().or(issue.pointer.as_deref()).unwrap_or("");
            format!("{location} {at}: {}", issue.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}
