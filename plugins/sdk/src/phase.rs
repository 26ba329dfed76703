//! Entry/exit logging for plugin phases at debug level.
//!
//! The mission asks every function to log on entry and exit. In a plugin that must cost nothing
//! when debug logging is off: [`Phase::enter`] checks the level once (an atomic load) and the guard
//! logs the exit when dropped, on every return path.

/// Logs `-> name` now and `<- name` when dropped, if debug logging is enabled.
#[derive(Debug)]
#[must_use = "the guard logs the exit when it is dropped"]
pub struct Phase {
    name: &'static str,
    active: bool,
}

impl Phase {
    #[inline]
    pub fn enter(name: &'static str) -> Self {
        let active = log::log_enabled!(log::Level::Debug);
        if active {
            log::debug!("-> {name}");
        }
        Self { name, active }
    }
}

impl Drop for Phase {
    #[inline]
    fn drop(&mut self) {
        if self.active {
            log::debug!("<- {}", self.name);
        }
    }
}
