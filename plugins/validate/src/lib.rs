//! KEA validate plugin: requests checked against OpenAPI 3.0 (bundles from `kea-schema`) before
//! any byte reaches the upstream; problem+json rejections listing every problem.
//!
//! Decision logic is host-free and tested natively with `MockHost`; `wasm` is the proxy-wasm
//! adapter, compiled only for `wasm32-wasip1` (the browser build, `web/validator`, runs the same
//! logic on `wasm32-unknown-unknown` without it).

pub mod config;
pub mod metrics;
pub mod plugin;
pub mod remote;
pub mod stage;
pub mod stream;

#[cfg(all(target_arch = "wasm32", target_os = "wasi", feature = "entry"))]
mod wasm;
