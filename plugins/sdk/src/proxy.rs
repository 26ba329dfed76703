//! The thin adapter: [`Host`] implemented with proxy-wasm host calls. Only built for `wasm32-wasip1`.

use crate::host::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, MetricKind};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
use std::time::{Duration, SystemTime};

/// The proxy the module runs in. Host calls act on the context the proxy is currently calling,
/// so one zero-sized value serves every context.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyHost;

fn map_type(map: HeaderMap) -> MapType {
    match map {
        HeaderMap::RequestHeaders => MapType::HttpRequestHeaders,
        HeaderMap::RequestTrailers => MapType::HttpRequestTrailers,
        HeaderMap::ResponseHeaders => MapType::HttpResponseHeaders,
        HeaderMap::ResponseTrailers => MapType::HttpResponseTrailers,
        HeaderMap::CallResponseHeaders => MapType::HttpCallResponseHeaders,
    }
}

fn buffer_type(buffer: Buffer) -> BufferType {
    match buffer {
        Buffer::RequestBody => BufferType::HttpRequestBody,
        Buffer::ResponseBody => BufferType::HttpResponseBody,
        Buffer::CallResponseBody => BufferType::HttpCallResponseBody,
        Buffer::PluginConfiguration => BufferType::PluginConfiguration,
    }
}

fn error(status: Status) -> HostError {
    match status {
        Status::CasMismatch => HostError::CasMismatch,
        Status::NotFound => HostError::NotFound,
        Status::BadArgument => HostError::BadArgument,
        other => HostError::Status(other as u32),
    }
}

impl Host for ProxyHost {
    fn header(&self, map: HeaderMap, name: &str) -> Option<Bytes> {
        hostcalls::get_map_value_bytes(map_type(map), name).ok().flatten()
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, Bytes)> {
        hostcalls::get_map_bytes(map_type(map)).unwrap_or_default()
    }

    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&[u8]>) {
        let _ = hostcalls::set_map_value_bytes(map_type(map), name, value);
    }

    fn add_header(&self, map: HeaderMap, name: &str, value: &[u8]) {
        let _ = hostcalls::add_map_value_bytes(map_type(map), name, value);
    }

    fn buffer(&self, buffer: Buffer, start: usize, max_size: usize) -> Option<Bytes> {
        hostcalls::get_buffer(buffer_type(buffer), start, max_size)
            .ok()
            .flatten()
    }

    fn set_buffer(&self, buffer: Buffer, start: usize, size: usize, value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(buffer_type(buffer), start, size, value).map_err(error)
    }

    fn property(&self, path: &[&str]) -> Option<Bytes> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn shared_data(&self, key: &str) -> (Option<Bytes>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(error)
    }

    fn register_queue(&self, name: &str) -> Result<u32, HostError> {
        hostcalls::register_shared_queue(name).map_err(error)
    }

    fn resolve_queue(&self, vm_id: &str, name: &str) -> Result<Option<u32>, HostError> {
        hostcalls::resolve_shared_queue(vm_id, name).map_err(error)
    }

    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        hostcalls::enqueue_shared_queue(queue, Some(value)).map_err(error)
    }

    fn dequeue(&self, queue: u32) -> Result<Option<Bytes>, HostError> {
        hostcalls::dequeue_shared_queue(queue).map_err(error)
    }

    fn dispatch_http_call(&self, call: &HttpCall<'_>) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(
            call.cluster,
            call.headers.clone(),
            call.body,
            vec![],
            call.timeout,
        )
        .map_err(error)
    }

    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body)).map_err(error)
    }

    fn resume_request(&self) {
        let _ = hostcalls::resume_http_request();
    }

    fn resume_response(&self) {
        let _ = hostcalls::resume_http_response();
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).map_err(error)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        hostcalls::increment_metric(id, delta).map_err(error)
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        hostcalls::record_metric(id, value).map_err(error)
    }

    fn now(&self) -> SystemTime {
        hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn random_bytes(&self, out: &mut [u8]) -> Result<(), HostError> {
        // WASI `random_get`, which Envoy implements with its own CSPRNG.
        getrandom::fill(out).map_err(|_| HostError::Status(u32::MAX))
    }

    fn set_tick_period(&self, period: Duration) {
        let _ = hostcalls::set_tick_period(period);
    }

    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Result<Option<Bytes>, HostError> {
        hostcalls::call_foreign_function(name, Some(arguments)).map_err(error)
    }

    fn log(&self, level: log::Level, message: &str) {
        let level = match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        };
        let _ = hostcalls::log(level, message);
    }
}

/// Installs the `log` → proxy log bridge and sets `log`'s max level to the proxy's current wasm
/// log level, so disabled levels cost one comparison. Call from `on_vm_start`/`on_configure` and
/// on tick to follow runtime changes (Envoy's `/logging` admin endpoint).
pub fn sync_log_level() {
    let level = hostcalls::get_log_level().unwrap_or(LogLevel::Info);
    proxy_wasm::set_log_level(level);
}

/// The VM's linear memory in bytes (it grows in 64 KiB pages and never shrinks).
pub fn vm_memory_bytes() -> u64 {
    const PAGE: u64 = 64 * 1024;
    u64::try_from(core::arch::wasm32::memory_size(0)).unwrap_or(u64::MAX) * PAGE
}

/// Raises `gauge` to this VM's linear memory when it is larger. Every VM of a plugin (the main
/// thread's and one per worker) shares the gauge, so it holds the largest VM's memory: a gauge
/// each VM simply set would show whichever VM ticked last. Wasm memory never shrinks, so the
/// largest only grows, and any VM that grows shows. (Two VMs racing can briefly lower it; the
/// larger one's next report restores it.)
pub fn report_vm_memory(gauge: crate::Metric) {
    let Some(id) = gauge.id() else {
        return;
    };
    let now = vm_memory_bytes();
    if hostcalls::get_metric(id).map_or(true, |shown| now > shown) {
        let _ = hostcalls::record_metric(id, now);
    }
}

/// Reads the plugin configuration and hands it to `compile`; logs acceptance, or the field and
/// reason of a rejection at error level. `None` tells `on_configure` to return false.
pub fn load_configuration<T>(
    plugin: &str,
    size: usize,
    compile: impl FnOnce(&[u8]) -> Result<T, crate::ConfigError>,
) -> Option<T> {
    sync_log_level();
    let raw = ProxyHost
        .buffer(Buffer::PluginConfiguration, 0, size)
        .unwrap_or_default();
    match compile(&raw) {
        Ok(value) => {
            log::info!("{plugin}: configuration accepted");
            Some(value)
        }
        Err(err) => {
            ProxyHost.log(
                log::Level::Error,
                &format!("{plugin}: configuration rejected: {err}"),
            );
            None
        }
    }
}
