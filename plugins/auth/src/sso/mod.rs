//! Browser single sign-on: the OpenID Connect authorization-code flow with PKCE, and sessions
//! kept in encrypted cookies that every gateway replica can read.

pub mod config;
pub mod exchange;
pub mod flow;
pub mod leases;
pub mod login;
pub mod seal;
pub mod session;
