//! KEA auth plugin: verifies JWTs (keys from remote JWKS, OIDC discovery or inline, shared by all
//! workers and refreshed in the background) and API keys, applies per-route rules (required
//! credentials, scopes, claims), and forwards the verified identity to the upstream as `x-kea-*`
//! headers. Fails closed: no keys yet means 503, never a pass.
//!
//! All logic is host-free and tested natively with `MockHost`; `wasm` is the proxy-wasm adapter.

pub mod claims;
pub mod config;
pub mod fetch;
pub mod jwks;
pub mod keystore;
pub mod metrics;
pub mod native;
pub mod plugin;
pub mod sources;
pub mod split;
pub mod sso;
pub mod stage;
pub mod stream;
pub mod token_cache;
pub mod verify;

#[cfg(all(target_arch = "wasm32", target_os = "wasi", feature = "entry"))]
mod wasm;

pub use config::AuthConfig;
pub use plugin::configure;
pub use stage::AuthStage;
pub use stream::{AuthStream, RequestAction, Runtime};
