//! Building blocks shared by KEA's proxy-wasm plugins.
//!
//! Everything here is host-free and tested natively, except [`proxy`], the thin adapter that
//! implements [`Host`] with proxy-wasm host calls on `wasm32-wasip1` (WASI: the proxies' target; a
//! `wasm32-unknown-unknown` build, such as the browser validator, gets no proxy-wasm imports).

pub mod cache_control;
pub mod caching;
pub mod callout;
pub mod chain;
pub mod config;
pub mod host;
pub mod identity;
pub mod json;
pub mod matcher;
pub mod metrics;
pub mod mock;
pub mod phase;
pub mod problem;
pub mod stage;
pub mod store;
pub mod units;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub mod module;
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub mod proxy;

pub use caching::CachingHost;
pub use chain::Chain;
pub use config::{parse_json, ConfigError};
pub use host::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, MetricKind};
pub use matcher::{MatchSpec, Matcher, PathTemplate, RequestView, RuleSet};
pub use metrics::Metric;
pub use phase::Phase;
pub use problem::Problem;
pub use stage::{Body, Flow, Stage, Stages, Stream};
pub use store::{PutOutcome, SlotStore, StoreError};
pub use units::{ByteSize, ConfigDuration};
