//! KEA cache plugin: an RFC 9111 shared HTTP response cache. Host-free logic —
//! `Cache-Control` parsing, storability, freshness and age, canonical keys, the stored-response
//! format, the request/response flow over the SDK's bounded `SlotStore`, background refreshes for
//! `stale-while-revalidate` — tested natively with
//! `MockHost`; the proxy-wasm adapter is `wasm`.

pub use kea_plugin_sdk::cache_control;
pub mod collapse;
pub mod config;
pub mod entry;
pub mod freshness;
pub mod key;
pub mod metrics;
pub mod plugin;
pub mod range;
pub mod refresh;
pub mod stage;
pub mod storage;
pub mod stream;
pub mod surrogate;
pub mod update;

#[cfg(all(target_arch = "wasm32", target_os = "wasi", feature = "entry"))]
mod wasm;
