//! The validate plugin's engine for the browser: a docs page checks a request before sending it,
//! with the gateway's own code and bundle, and shows exactly the problem+json the gateway would
//! answer (same status, `errors`, `detail`).
//!
//! Nothing is re-implemented: [`engine::Engine`] runs `kea_validate::plugin::configure` and
//! `kea_validate::stream::ValidateStream` against [`host::PageHost`], a `Host` for one page
//! request. `scripts/web-build.sh` builds this crate for `wasm32-unknown-unknown` with
//! wasm-bindgen into `dist/web/kea_validator.js` + `kea_validator_bg.wasm`.
//!
//! ```js
//! import init, { Validator } from './kea_validator.js';
//! await init();
//! const v = new Validator(JSON.stringify({apis: [{name: 'pets', bundle}], defaults: {api: 'pets'}}));
//! const r = JSON.parse(v.check('POST', '/v1/pets', '[["content-type","application/json"]]',
//!                              new TextEncoder().encode('{"id": "x"}')));
//! // {"verdict":"failed","status":400,"headers":[["content-type","application/problem+json"],
//! //  ["cache-control","no-store"]],"problem":{"type":"https://kea.dev/problems/invalid-request",...}}
//! ```

pub mod engine;
pub mod host;

use engine::{parse_headers, Engine, PageRequest};
use wasm_bindgen::prelude::*;

/// A validator configured like the gateway's validate plugin.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Validator {
    engine: Engine,
}

#[wasm_bindgen]
impl Validator {
    /// `new Validator(configJson)`: the validate plugin's `ValidateConfig` as JSON text, APIs
    /// inline (`bundle` or `document`). Throws an `Error` with the plugin's own message
    /// (`invalid configuration at FIELD: REASON`) when the configuration is refused.
    #[wasm_bindgen(constructor)]
    pub fn new(config: &str) -> Result<Validator, JsError> {
        console::init();
        Engine::new(config)
            .map(|engine| Validator { engine })
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// `check(method, target, headers, body)` → JSON text
    /// `{"verdict", "status"?, "headers"?, "problem"?, "log"?}`.
    ///
    /// - `target`: `/path?query` as sent on the wire (percent-encoded);
    /// - `headers`: JSON text, `[["name", "value"], ...]` or `{"name": "value"}` (or empty /
    ///   `undefined`); `host` (or `:authority`) sets the authority rules match on;
    ///   `content-length` is taken from the body;
    /// - `body`: `Uint8Array`, or `undefined`/`null`/empty for none.
    ///
    /// Throws on what a browser would not send (a method or header name that is no token, CR/LF in
    /// a header value, a target that is not a path).
    pub fn check(
        &self,
        method: &str,
        target: &str,
        headers: Option<String>,
        body: Option<Box<[u8]>>,
    ) -> Result<String, JsError> {
        let request = PageRequest {
            method: method.to_string(),
            target: target.to_string(),
            headers: parse_headers(headers.as_deref().unwrap_or_default()).map_err(|e| JsError::new(&e))?,
            body: body.map(Vec::from).unwrap_or_default(),
        };
        let outcome = self.engine.check(&request).map_err(|e| JsError::new(&e))?;
        serde_json::to_string(&outcome).map_err(|e| JsError::new(&e.to_string()))
    }

    /// `operations()` → JSON text `[{"api", "method", "path", "operationId"}, ...]`: every
    /// operation of the configured APIs, paths with their base path.
    pub fn operations(&self) -> String {
        serde_json::to_string(self.engine.operations()).unwrap_or_else(|_| "[]".into())
    }
}

/// The browser's clock (`SystemTime::now` traps on `wasm32-unknown-unknown`).
pub(crate) mod clock {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    pub fn now_millis() -> u64 {
        use wasm_bindgen::prelude::*;
        #[wasm_bindgen]
        extern "C" {
            #[wasm_bindgen(js_namespace = Date, js_name = now)]
            fn date_now() -> f64;
        }
        let millis = date_now();
        if millis.is_finite() && millis > 0.0 {
            millis as u64
        } else {
            0
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    pub fn now_millis() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The plugin's diagnostics (`log` facade) in the browser: warnings and errors to the console,
/// nothing below (debug phase logging then costs one comparison, as in the gateway).
mod console {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    pub fn init() {
        use wasm_bindgen::prelude::*;
        #[wasm_bindgen]
        extern "C" {
            #[wasm_bindgen(js_namespace = console, js_name = warn)]
            fn console_warn(message: &str);
            #[wasm_bindgen(js_namespace = console, js_name = error)]
            fn console_error(message: &str);
        }
        struct Console;
        impl log::Log for Console {
            fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
                metadata.level() <= log::Level::Warn
            }
            fn log(&self, record: &log::Record<'_>) {
                if !self.enabled(record.metadata()) {
                    return;
                }
                let line = record.args().to_string();
                if record.level() == log::Level::Error {
                    console_error(&line);
                } else {
                    console_warn(&line);
                }
            }
            fn flush(&self) {}
        }
        static CONSOLE: Console = Console;
        if log::set_logger(&CONSOLE).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    pub fn init() {}
}
