//! The split stage: assigns each request of a split route to one backend — exactly by weight with
//! smooth weighted round-robin over state shared by every worker, or stickily per principal — and
//! marks the share of requests to mirror.

pub mod compile;
pub mod config;
pub mod hash;
pub mod pick;
pub mod shared;
pub mod stage;
