//! KEA's operator: Custom Resources (`crd`), the renderers that turn them into plugin
//! configurations, routes and bundles (`render`, shared with `kea render`), and the `kea` CLI's
//! OpenAPI commands (`openapi`) and model packaging (`package`).

pub mod controller;
pub mod crd;
pub mod offline;
pub mod openapi;
pub mod package;
pub mod render;
