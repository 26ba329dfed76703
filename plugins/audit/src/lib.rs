//! KEA audit plugin: one structured, redacted record per request (Elastic Common Schema field
//! names), written to the proxy log and/or shipped in batches to a log store over HTTP.
//!
//! Host-free logic lives in the modules below and is tested natively with `MockHost`; the
//! proxy-wasm adapter in `wasm` (built only for `wasm32-wasip1`) forwards the proxy's callbacks to it.

pub mod buffer;
pub mod config;
pub mod metrics;
pub mod plugin;
pub mod record;
pub mod redact;
pub mod sink;
pub mod stage;
pub mod stream;

#[cfg(all(target_arch = "wasm32", target_os = "wasi", feature = "entry"))]
mod wasm;

pub use config::AuditConfig;
pub use plugin::{AuditRoot, Runtime};
pub use stage::AuditStage;
pub use stream::{AuditStream, LogOutcome};
