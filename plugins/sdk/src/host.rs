//! The one interface between plugin logic and the proxy.
//!
//! Plugin logic is written against [`Host`] and never against the proxy-wasm ABI directly, so every
//! decision can be driven natively by [`crate::mock::MockHost`] in unit tests. On `wasm32-wasip1` the
//! [`crate::proxy::ProxyHost`] implements it with proxy-wasm host calls.
//!
//! Diagnostics use the `log` facade, which the SDK forwards to the proxy's log (see
//! `proxy::sync_log_level`); [`Host::log`] is for lines that are the plugin's output.

use std::time::{Duration, SystemTime};

/// Raw bytes as the proxy hands them over. Header values are bytes because HTTP allows obs-text
/// (0x80-0xFF) in them; converting with `unwrap` would trap the VM on the first such request.
pub type Bytes = Vec<u8>;

/// Header maps a plugin can read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMap {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    /// Headers of the response to the last `dispatch_http_call`, valid inside its callback.
    CallResponseHeaders,
}

/// Buffers a plugin can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Buffer {
    RequestBody,
    ResponseBody,
    /// Body of the response to the last `dispatch_http_call`, valid inside its callback.
    CallResponseBody,
    PluginConfiguration,
}

/// Kinds of metric the proxy keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Why a host call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// `set_shared_data` with a CAS value that no longer matches: someone else wrote first.
    #[error("compare-and-swap mismatch")]
    CasMismatch,
    #[error("not found")]
    NotFound,
    #[error("bad argument")]
    BadArgument,
    /// Any other status the proxy returned.
    #[error("host call failed with status {0}")]
    Status(u32),
}

/// An outgoing HTTP callout. `headers` must contain `:method`, `:path` and `:authority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall<'a> {
    /// Envoy cluster name the call goes to.
    pub cluster: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: Option<&'a [u8]>,
    pub timeout: Duration,
}

/// Everything a plugin may ask of the proxy.
///
/// Methods take `&self`: the proxy's state lives outside the plugin, and a mock records effects
/// through interior mutability.
pub trait Host {
    /// One header value (the first if repeated), as bytes.
    fn header(&self, map: HeaderMap, name: &str) -> Option<Bytes>;
    /// All headers of a map, in order, including pseudo-headers (`:path`, `:method`, ...).
    fn headers(&self, map: HeaderMap) -> Vec<(String, Bytes)>;
    /// Replaces (or with `None` removes) a header.
    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&[u8]>);
    /// Adds a header value, keeping existing ones.
    fn add_header(&self, map: HeaderMap, name: &str, value: &[u8]);

    /// A slice of a buffer; `None` when the buffer is absent or empty.
    fn buffer(&self, buffer: Buffer, start: usize, max_size: usize) -> Option<Bytes>;
    /// Replaces `size` bytes at `start` of a body buffer with `value`.
    fn set_buffer(&self, buffer: Buffer, start: usize, size: usize, value: &[u8]) -> Result<(), HostError>;

    /// A request, connection or plugin attribute, e.g. `["request", "time"]`, `["source", "address"]`.
    fn property(&self, path: &[&str]) -> Option<Bytes>;

    /// Shared data visible to every VM with the same `vm_id`, and its CAS token.
    fn shared_data(&self, key: &str) -> (Option<Bytes>, Option<u32>);
    /// Writes shared data; with `cas` set the write only succeeds if nobody wrote since that token.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;

    /// Registers (or takes over) a shared queue; this VM then receives its `on_queue_ready`.
    fn register_queue(&self, name: &str) -> Result<u32, HostError>;
    /// Finds a queue another VM registered.
    fn resolve_queue(&self, vm_id: &str, name: &str) -> Result<Option<u32>, HostError>;
    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError>;
    /// Takes the oldest item, or `None` when the queue is empty.
    fn dequeue(&self, queue: u32) -> Result<Option<Bytes>, HostError>;

    /// Starts an HTTP callout; the answer comes in the root or stream context's call response
    /// callback with the returned token.
    fn dispatch_http_call(&self, call: &HttpCall<'_>) -> Result<u32, HostError>;
    /// Answers the current request locally instead of forwarding it.
    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError>;
    /// Resumes a request paused in a request callback.
    fn resume_request(&self);
    /// Resumes a response paused in a response callback.
    fn resume_response(&self);

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError>;
    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError>;
    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError>;

    /// Wall-clock time as the proxy sees it.
    fn now(&self) -> SystemTime;
    /// Cryptographically secure random bytes.
    fn random_bytes(&self, out: &mut [u8]) -> Result<(), HostError>;
    /// Period of the root context's `on_tick`.
    fn set_tick_period(&self, period: Duration);
    /// Calls a function the proxy registered by name (Envoy: `verify_signature`, `compress`, ...).
    /// `Err(NotFound)` when the proxy has no such function.
    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Result<Option<Bytes>, HostError>;
    /// Writes a line to the proxy's log. Diagnostics go through the `log` facade instead; this is
    /// for output that *is* the product, such as audit records written to the proxy log.
    fn log(&self, level: log::Level, message: &str);
}

/// Reads an integer property (the proxy encodes them as 8 little-endian bytes).
pub fn property_i64(host: &impl Host, path: &[&str]) -> Option<i64> {
    let raw = host.property(path)?;
    let bytes: [u8; 8] = raw.as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// Reads a string property, replacing invalid UTF-8.
pub fn property_string(host: &impl Host, path: &[&str]) -> Option<String> {
    host.property(path).map(lossy)
}

/// Bytes to a `String`, replacing invalid UTF-8 with U+FFFD; reuses the buffer when it is valid.
pub fn lossy(raw: Bytes) -> String {
    match String::from_utf8(raw) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

/// Name of the Envoy route the request matched (`xds.route_name`; older Envoys: `route_name`).
pub fn route_name(host: &impl Host) -> Option<String> {
    property_string(host, &["xds", "route_name"])
        .filter(|r| !r.is_empty())
        .or_else(|| property_string(host, &["route_name"]).filter(|r| !r.is_empty()))
}

/// One request header as text (lossy), the common case for decision logic.
pub fn request_header(host: &impl Host, name: &str) -> Option<String> {
    host.header(HeaderMap::RequestHeaders, name).map(lossy)
}

/// One response header as text (lossy).
pub fn response_header(host: &impl Host, name: &str) -> Option<String> {
    host.header(HeaderMap::ResponseHeaders, name).map(lossy)
}

/// The `:status` of a header list (response or callout response).
pub fn status_of(headers: &[(String, Bytes)]) -> Option<u16> {
    let (_, value) = headers.iter().find(|(name, _)| name == ":status")?;
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether `text` is an HTTP token (RFC 9110 5.6.2): header names, methods.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Splits an `ip:port` or `[v6]:port` address into its parts.
pub fn split_host_port(address: &str) -> (&str, Option<u16>) {
    if let Some(rest) = address.strip_prefix('[') {
        if let Some((ip, port)) = rest.split_once("]:") {
            return (ip, port.parse().ok());
        }
        return (rest.trim_end_matches(']'), None);
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') => (ip, port.parse().ok()),
        _ => (address, None),
    }
}

/// Splits an absolute `http(s)` URL into authority and path-with-query. Written by hand because
/// only these two parts are needed and a URL crate would add size to every plugin instance.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let rest = rest.split('#').next()?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let valid_authority = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !valid_authority || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return None;
    }
    Some((authority, if path.starts_with('?') { "/" } else { path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("https://idp.example.com/jwks?x=1"),
            Some(("idp.example.com", "/jwks?x=1"))
        );
        assert_eq!(split_url("http://127.0.0.1:8080"), Some(("127.0.0.1:8080", "/")));
        assert_eq!(split_url("http://h?x"), Some(("h", "/")));
        assert_eq!(split_url("ftp://h/x"), None);
        assert_eq!(split_url("https://user@h/x"), None);
        assert_eq!(split_url("https:///x"), None);
        assert_eq!(split_url("https://h/a b"), None);
    }

    #[test]
    fn splits_addresses() {
        assert_eq!(split_host_port("10.0.0.1:443"), ("10.0.0.1", Some(443)));
        assert_eq!(split_host_port("[::1]:8080"), ("::1", Some(8080)));
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }

    #[test]
    fn statuses_and_tokens() {
        let headers = vec![(":status".to_string(), b"204".to_vec())];
        assert_eq!(status_of(&headers), Some(204));
        assert_eq!(status_of(&[(":status".to_string(), b"x".to_vec())]), None);
        assert!(is_token("x-api-key") && is_token("GET"));
        assert!(!is_token("") && !is_token("a b") && !is_token(":path"));
    }

    #[test]
    fn lossy_keeps_valid_and_replaces_invalid() {
        assert_eq!(lossy(b"abc".to_vec()), "abc");
        assert_eq!(lossy(vec![b'a', 0xff, b'b']), "a\u{fffd}b");
    }
}
