//! Per-request audit logic: what each phase of a request does, written against [`Host`].
//!
//! The work is kept to a minimum on the way in (one header-map read, one clock read) and done in
//! `on_log`, after the response has gone to the client, so auditing never delays a request.

use crate::config::{Compiled, Policy};
use crate::record::{rfc3339_millis, AuditRecord};
use crate::redact::Direction;
use kea_plugin_sdk::host::{lossy, property_i64, property_string, route_name, split_host_port, status_of};
use kea_plugin_sdk::matcher::split_path;
use kea_plugin_sdk::{identity, Body, Buffer, HeaderMap, Host, Phase, RequestView};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// One direction's body: its size, and (when capture is on) its first `cap` bytes.
#[derive(Debug, Default)]
struct Capture {
    active: bool,
    /// Bytes seen, whether captured or not.
    total: u64,
    data: Vec<u8>,
    truncated: bool,
}

impl Capture {
    /// Counts a body chunk and, when capturing, copies what fits under `cap`.
    fn on_chunk(&mut self, host: &impl Host, buffer: Buffer, body: Body, cap: usize) {
        let chunk_size = body.chunk_len();
        self.total += chunk_size as u64;
        if !self.active || chunk_size == 0 {
            return;
        }
        let room = cap.saturating_sub(self.data.len());
        if room > 0 {
            let chunk = host
                .buffer(buffer, body.chunk_start, chunk_size.min(room))
                .unwrap_or_default();
            self.data.extend_from_slice(&chunk);
        }
        self.truncated |= chunk_size > room;
    }
}

/// Outcome of `on_log`.
#[derive(Debug, PartialEq, Eq)]
pub enum LogOutcome {
    /// The record, as a JSON line.
    Record(String),
    /// A rule said not to audit this request.
    Skipped,
    /// Sampling left this request out.
    SampledOut,
}

/// State of one request.
#[derive(Debug, Default)]
pub struct AuditStream {
    started: Option<SystemTime>,
    request_id: String,
    method: String,
    path_and_query: String,
    authority: String,
    scheme: Option<String>,
    route: Option<String>,
    policy: Option<Rc<Policy>>,
    spoofed_identity: bool,
    request_body: Capture,
    response_body: Capture,
}

impl AuditStream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on_request_headers(&mut self, host: &impl Host, config: &Compiled) {
        let _phase = Phase::enter("audit.on_request_headers");
        self.started = Some(host.now());
        let mut request_id = None;
        let mut content_type = None;
        for (name, value) in host.headers(HeaderMap::RequestHeaders) {
            match name.as_str() {
                ":method" => self.method = lossy(value),
                ":path" => self.path_and_query = lossy(value),
                ":authority" => self.authority = lossy(value),
                ":scheme" => self.scheme = Some(lossy(value)),
                "x-request-id" => request_id = Some(lossy(value)),
                "content-type" => content_type = Some(lossy(value)),
                other if identity::is_kea_header(other) => {
                    // Identity headers are set by KEA's plugins behind this one; a client sending
                    // them is trying to impersonate someone.
                    host.set_header(HeaderMap::RequestHeaders, other, None);
                    self.spoofed_identity = true;
                }
                _ => {}
            }
        }
        self.request_id = match request_id.filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => {
                let id = new_request_id(host);
                host.set_header(HeaderMap::RequestHeaders, "x-request-id", Some(id.as_bytes()));
                id
            }
        };
        if config.rules.needs_route_name() {
            self.route = route_name(host);
        }
        let view = RequestView {
            authority: &self.authority,
            path: split_path(&self.path_and_query).0,
            method: &self.method,
            route_name: self.route.as_deref(),
        };
        let policy = Rc::clone(config.policy_for(&view));
        self.request_body.active =
            !policy.skip && policy.body.request && policy.body.wants(content_type.as_deref());
        self.policy = Some(policy);
    }

    /// A request body chunk of `chunk_size` new bytes, alone in the buffer.
    pub fn on_request_body(&mut self, host: &impl Host, chunk_size: usize) {
        self.on_request_chunk(host, Body::whole(chunk_size, false));
    }

    /// The request body bytes new to this stage (counted once, however the buffer grows).
    pub fn on_request_chunk(&mut self, host: &impl Host, body: Body) {
        let _phase = Phase::enter("audit.on_request_body");
        let cap = self.policy.as_ref().map_or(0, |p| p.body.max_bytes);
        self.request_body.on_chunk(host, Buffer::RequestBody, body, cap);
    }

    /// Decides, from the response's content type, whether its body is captured.
    pub fn on_response_headers(&mut self, host: &impl Host) {
        if let Some(policy) = self.policy.as_ref().filter(|p| !p.skip && p.body.response) {
            let _phase = Phase::enter("audit.on_response_headers");
            let content_type = host.header(HeaderMap::ResponseHeaders, "content-type").map(lossy);
            self.response_body.active = policy.body.wants(content_type.as_deref());
        }
    }

    /// A response body chunk of `chunk_size` new bytes, alone in the buffer.
    pub fn on_response_body(&mut self, host: &impl Host, chunk_size: usize) {
        self.on_response_chunk(host, Body::whole(chunk_size, false));
    }

    /// The response body bytes new to this stage.
    pub fn on_response_chunk(&mut self, host: &impl Host, body: Body) {
        let _phase = Phase::enter("audit.on_response_body");
        let cap = self.policy.as_ref().map_or(0, |p| p.body.max_bytes);
        self.response_body.on_chunk(host, Buffer::ResponseBody, body, cap);
    }

    /// Builds the record once the exchange is over (Envoy's access-log phase).
    pub fn on_log(&mut self, host: &impl Host, config: &Compiled) -> LogOutcome {
        let _phase = Phase::enter("audit.on_log");
        // A request that never reached on_request_headers (e.g. reset early) has no policy.
        let policy = match self.policy.take() {
            Some(policy) => policy,
            None => Rc::clone(&config.default_policy),
        };
        if policy.skip {
            return LogOutcome::Skipped;
        }
        let response_headers = host.headers(HeaderMap::ResponseHeaders);
        let status = status_of(&response_headers)
            .or_else(|| property_i64(host, &["response", "code"]).and_then(|c| u16::try_from(c).ok()))
            .unwrap_or(0);
        if !sampled(&policy, &self.request_id, status) {
            return LogOutcome::SampledOut;
        }

        let now = host.now();
        let started = self.started.unwrap_or(now);
        let mut record = AuditRecord::new();
        record.timestamp = rfc3339_millis(started);
        record.event_duration =
            u64::try_from(now.duration_since(started).unwrap_or(Duration::ZERO).as_nanos())
                .unwrap_or(u64::MAX);
        record.event_outcome = match status {
            0 => "unknown",
            s if s >= 400 => "failure",
            _ => "success",
        };
        record.status = status;
        record.request_id = std::mem::take(&mut self.request_id);
        record.method = std::mem::take(&mut self.method);
        let (path, query) = split_path(&self.path_and_query);
        record.path = path.to_string();
        record.query = query.filter(|q| !q.is_empty()).map(|q| config.redactor.query(q));
        let (domain, port) = split_host_port(&self.authority);
        record.domain = domain.to_ascii_lowercase();
        record.port = port;
        record.scheme = self.scheme.take();
        record.route = self.route.take().or_else(|| route_name(host));
        if let Some(address) = property_string(host, &["source", "address"]) {
            let (ip, port) = split_host_port(&address);
            record.client_ip = Some(ip.to_string());
            record.client_port = port;
            record.client_address = Some(ip.to_string());
        }
        record.spoofed_identity = self.spoofed_identity;
        record.request_body_bytes = self.request_body.total;
        record.response_body_bytes = self.response_body.total;

        // Request headers as they are now: identity headers set by auth and the validation
        // outcome set by validate are visible here.
        let request_headers = host.headers(HeaderMap::RequestHeaders);
        // Without the request phase (Envoy rejected the request before the filter chain ran), no
        // plugin set the identity headers and nothing stripped them: any present came from the client.
        let identity_trusted = self.started.is_some();
        for (name, value) in &request_headers {
            if !identity_trusted && identity::is_kea_header(name) {
                record.spoofed_identity = true;
                continue;
            }
            let field = match name.as_str() {
                "user-agent" => &mut record.user_agent,
                "content-type" => &mut record.request_mime_type,
                identity::SUBJECT => &mut record.user_id,
                identity::ISSUER => &mut record.issuer,
                identity::CLIENT => &mut record.client_name,
                identity::SESSION => &mut record.session_id,
                identity::VALIDATION => &mut record.validation,
                _ => continue,
            };
            *field = Some(String::from_utf8_lossy(value).into_owned());
        }
        for (name, value) in &response_headers {
            let field = match name.as_str() {
                "content-type" => &mut record.response_mime_type,
                identity::CACHE => &mut record.cache_status,
                _ => continue,
            };
            *field = Some(String::from_utf8_lossy(value).into_owned());
        }
        let lines = |headers: &[(String, Vec<u8>)]| {
            let regular = headers.iter().filter(|(name, _)| !name.starts_with(':'));
            regular
                .map(|(name, value)| config.redactor.header_line(name, value))
                .collect()
        };
        record.request_headers = config.headers.request.then(|| lines(&request_headers));
        record.response_headers = config.headers.response.then(|| lines(&response_headers));

        if self.request_body.active {
            record.request_body = Some(config.redactor.body(
                Direction::Request,
                &self.request_body.data,
                self.request_body.truncated,
            ));
            record.request_body_truncated = self.request_body.truncated;
        }
        if self.response_body.active {
            record.response_body = Some(config.redactor.body(
                Direction::Response,
                &self.response_body.data,
                self.response_body.truncated,
            ));
            record.response_body_truncated = self.response_body.truncated;
        }
        LogOutcome::Record(record.to_json())
    }
}

/// Whether a request is recorded. Errors (per policy) always are; otherwise a stable hash of the
/// request id decides, so every sampled request is recorded by all gateways alike.
fn sampled(policy: &Policy, request_id: &str, status: u16) -> bool {
    if policy
        .always_log_status_at_least
        .is_some_and(|floor| status >= floor)
    {
        return true;
    }
    match policy.sample_basis_points {
        bp if bp >= 10_000 => true,
        0 => false,
        bp => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(request_id.as_bytes());
            let head = digest.first_chunk::<4>().copied().unwrap_or_default();
            let bucket = u32::from_le_bytes(head) % 10_000;
            bucket < bp
        }
    }
}

/// A random (version 4) UUID for requests that arrive without `x-request-id`.
fn new_request_id(host: &impl Host) -> String {
    let mut bytes = [0u8; 16];
    if host.random_bytes(&mut bytes).is_err() {
        // No randomness: fall back to the clock, still unique enough to correlate records.
        let nanos = host
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = nanos.to_le_bytes();
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
