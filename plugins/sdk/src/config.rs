//! Parsing plugin configuration with errors that name the offending field.

use serde::de::DeserializeOwned;

/// Why a plugin configuration was rejected: the JSON path of the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration at {path}: {reason}")]
pub struct ConfigError {
    /// Dotted path to the field, e.g. `sinks.http.batchSize` or `rules[2].match.methods[0]`.
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Parses JSON into a config type; an empty configuration means "all defaults" (`{}`).
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ConfigError> {
    let raw = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        raw
    };
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    // A struct is read only from a JSON object (see `crate::json`, and its limit under flatten).
    let value =
        serde_path_to_error::deserialize(crate::json::ObjectsOnly(&mut deserializer)).map_err(|err| {
            let path = err.path().to_string();
            let path = if path == "." { "(root)".to_string() } else { path };
            ConfigError::new(path, err.into_inner().to_string())
        })?;
    deserializer
        .end()
        .map_err(|e| ConfigError::new("(root)", e.to_string()))?;
    Ok(value)
}

/// A SHA-256 digest written as 64 hex digits (secrets are configured by hash, never in clear).
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    // `from_str_radix` alone would also take a sign (`+f`).
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Set by tools that check configurations away from the proxy (the operator):
/// secrets named by environment variable live in the gateway's VM (Istio `vmConfig.env`), not
/// in the checking process.
static SECRETS_ELSEWHERE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Checks configurations without the secrets they reference: [`env_secret`] then answers a
/// placeholder of 64 bytes for variables this process does not have.
pub fn check_without_secrets() {
    SECRETS_ELSEWHERE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A secret configured by the name of a VM environment variable; `at` names the config field.
pub fn env_secret(at: &str, name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(_) if SECRETS_ELSEWHERE.load(std::sync::atomic::Ordering::Relaxed) => Ok("x".repeat(64)),
        Err(_) => Err(ConfigError::new(
            at,
            format!("the VM environment has no variable {name:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Inner {
        #[serde(default)]
        batch_size: u32,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        sinks: Vec<Inner>,
    }

    #[test]
    fn parses_sha256_hex() {
        let digest = parse_sha256_hex(&"ab".repeat(32)).unwrap();
        assert!(digest.iter().all(|b| *b == 0xab));
        assert!(parse_sha256_hex("ab").is_none());
        assert!(parse_sha256_hex(&"zz".repeat(32)).is_none());
        assert!(parse_sha256_hex(&"é".repeat(32)).is_none());
    }

    /// Found by fuzzing (`sdk_parsers`: "accepts exactly 64 hex digits"): `u8::from_str_radix`
    /// takes a sign, so `+f` passed as a hex pair and a digest with `+` signs was accepted.
    #[test]
    fn sha256_hex_takes_hex_digits_only() {
        assert!(parse_sha256_hex(&format!("+f{}", "0".repeat(62))).is_none());
        assert!(parse_sha256_hex(&format!("{}-0", "0".repeat(62))).is_none());
        assert!(parse_sha256_hex(&"AB".repeat(32)).is_some_and(|d| d.iter().all(|b| *b == 0xab)));
    }

    #[test]
    fn parses_valid_config() {
        let parsed = parse_json::<Outer>(br#"{"sinks": [{"batchSize": 7}]}"#).unwrap();
        assert_eq!(parsed.sinks[0].batch_size, 7);
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_json::<Outer>(br#"{"sinks": [{"batchSize": 1}, {"batchSize": "x"}]}"#).unwrap_err();
        assert_eq!(err.path, "sinks[1].batchSize");
        assert!(err.reason.contains("invalid type"), "{}", err.reason);
        let err = parse_json::<Outer>(br#"{"sink": 1}"#).unwrap_err();
        assert!(err.reason.contains("unknown field `sink`"), "{}", err.reason);
    }

    #[test]
    fn empty_means_defaults_and_trailing_garbage_is_rejected() {
        assert!(parse_json::<Outer>(b"").is_ok());
        assert!(parse_json::<Outer>(b"  \n").is_ok());
        assert!(parse_json::<Outer>(b"{} x").is_err());
        assert!(parse_json::<Outer>(b"not json").is_err());
        // serde would read `Outer` from `[[…]]` (its fields in order); a configuration is an object.
        let err = parse_json::<Outer>(br#"{"sinks": [[7]]}"#).unwrap_err();
        assert_eq!(err.path, "sinks[0]");
        assert!(parse_json::<Outer>(br#"[[]]"#).is_err());
    }
}
