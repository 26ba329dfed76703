//! proxy-wasm entry point of the cache plugin alone: the SDK's module over this plugin's stage.

use crate::stage::CacheStage;
use kea_plugin_sdk::module::Module;
use proxy_wasm::types::LogLevel;

// The proxy-wasm entry point (`_initialize`) is an exported, unmangled function.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Info);
        proxy_wasm::set_root_context(|_| Box::new(super::Module::single(Box::<super::CacheStage>::default())));
    }}
}
