//! KEA cache plugin (in progress): an RFC 9111 shared HTTP response cache. Host-free logic —
//! `Cache-Control` parsing, storability, freshness and age, canonical keys, the stored-response
//! format, the request/response flow over the SDK's bounded `SlotStore` — tested natively with
//! `MockHost`. The proxy-wasm adapter and the real-Envoy tests come next.

pub mod cache_control;
pub mod config;
pub mod entry;
pub mod freshness;
pub mod key;
pub mod metrics;
pub mod plugin;
pub mod stream;
