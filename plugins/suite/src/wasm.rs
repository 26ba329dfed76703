//! proxy-wasm entry point of the combined module: the SDK's module over every plugin's stage.

use kea_plugin_sdk::module::Module;
use kea_plugin_sdk::module::ModuleHost;
use proxy_wasm::types::LogLevel;

fn module() -> Module {
    Module::new("kea", crate::stages::<ModuleHost>(), |stages, host, raw| {
        crate::configure(stages, host, raw)
    })
}

// The proxy-wasm entry point (`_initialize`) is an exported, unmangled function.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Info);
        proxy_wasm::set_root_context(|_| Box::new(super::module()));
    }}
}
