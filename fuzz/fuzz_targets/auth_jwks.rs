//! Key material from identity providers: JWKS documents (`KeySet::parse_bytes`,
//! `fetch::check_jwks`), OpenID Connect discovery documents (`fetch::discovery`), the callout
//! answer reader (`fetch::read_answer`: status, size, `Cache-Control: max-age`), and the proxy's
//! `verify_signature` answer and ECDSA DER conversion (`native`).
//!
//! Every parsed key set is then used to check a few fixed tokens (RS256, PS256, ES256, ES384,
//! EdDSA, with and without `kid`), so hostile key material reaches the signature code.
//!
//! Property: no panic, and
//! - a key set never holds more than `max_keys` keys, and `check_jwks` succeeds exactly when
//!   `parse_bytes` gives a non-empty set;
//! - a discovery document is accepted only with the exact issuer, and every URL it yields is an
//!   absolute http(s) URL;
//! - a converted ECDSA signature is well-formed DER (`SEQUENCE` of two `INTEGER`s) of the stated
//!   length;
//! - a JWKS signed by nobody verifies none of the fixed tokens.
#![no_main]

use arbitrary::Arbitrary;
use kea_auth::config::{AuthConfig, Compiled};
use kea_auth::fetch;
use kea_auth::jwks::KeySet;
use kea_auth::native::{self, NativeVerifier};
use kea_auth::verify;
use kea_plugin_sdk::host::split_url;
use kea_plugin_sdk::mock::MockHost;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const ISSUER: &str = "https://idp.example.com";

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    document: &'a [u8],
    max_keys: u8,
    status: u16,
    cache_control: &'a str,
    native_answer: &'a [u8],
    signature: &'a [u8],
}

struct NoNative;
impl NativeVerifier for NoNative {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        None
    }
}

fn provider_config() -> &'static Compiled {
    thread_local! {
        static COMPILED: &'static Compiled = Box::leak(Box::new(compile()));
    }
    COMPILED.with(|c| *c)
}

fn compile() -> Compiled {
    {
        // Any usable key compiles the provider; the fuzzed key sets replace it below.
        let config = serde_json::json!({"providers": [{
            "name": "idp", "issuer": ISSUER, "requireExpiration": false,
            "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}
        }]});
        let config: AuthConfig = kea_plugin_sdk::parse_json(config.to_string().as_bytes()).unwrap();
        config.compile().unwrap()
    }
}

/// Tokens with a well-formed shape for each asymmetric algorithm and garbage signatures.
fn tokens() -> &'static Vec<String> {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{ISSUER}","sub":"s"}}"#));
        let mut out = Vec::new();
        for (alg, len) in [
            ("RS256", 256),
            ("PS256", 256),
            ("ES256", 64),
            ("ES384", 96),
            ("EdDSA", 64),
        ] {
            for kid in [None, Some("k1")] {
                let header = match kid {
                    Some(kid) => format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#),
                    None => format!(r#"{{"alg":"{alg}"}}"#),
                };
                let signature = URL_SAFE_NO_PAD.encode(vec![0x5a; len]);
                out.push(format!(
                    "{}.{payload}.{signature}",
                    URL_SAFE_NO_PAD.encode(header)
                ));
            }
        }
        out
    })
}

fuzz_target!(|input: Input<'_>| {
    let max_keys = usize::from(input.max_keys % 16) + 1;
    // JWKS.
    let parsed = KeySet::parse_bytes(input.document, max_keys);
    let checked = fetch::check_jwks(input.document, max_keys);
    match &parsed {
        Ok(keys) => {
            assert!(keys.len() <= max_keys, "{} keys > {max_keys}", keys.len());
            assert_eq!(checked.is_ok(), !keys.is_empty());
            let provider = &provider_config().providers[0];
            for token in tokens() {
                let Ok(header) = verify::header(token) else {
                    continue;
                };
                let _ = keys.has_kid("k1");
                let result = verify::verify(provider, keys, token, &header, 1_800_000_000, &NoNative);
                assert!(result.is_err(), "a garbage signature verified: {token}");
            }
        }
        Err(_) => assert!(checked.is_err()),
    }
    // Discovery.
    if let Ok(found) = fetch::discovery(input.document, ISSUER) {
        assert!(split_url(&found.jwks_uri).is_some());
        if let Some(endpoints) = &found.endpoints {
            assert!(split_url(&endpoints.authorization).is_some());
            assert!(split_url(&endpoints.token).is_some());
            assert!(endpoints
                .end_session
                .as_deref()
                .is_none_or(|u| split_url(u).is_some()));
        }
        let document: serde_json::Value = serde_json::from_slice(input.document).unwrap();
        assert_eq!(document["issuer"], ISSUER);
    }
    // The callout answer.
    let host = MockHost::new();
    host.answer_call(
        input.status,
        &[("cache-control", input.cache_control)],
        input.document,
    );
    let _ = fetch::read_answer(&host, input.document.len(), 1 << 16);
    // The proxy's verify_signature answer and the DER form of ECDSA signatures.
    let _ = native::decode_result(input.native_answer);
    for scalar in [32, 48] {
        if let Some(der) = native::ecdsa_der(input.signature, scalar) {
            assert_eq!(der.first(), Some(&0x30));
            assert_eq!(usize::from(der[1]) + 2, der.len(), "{der:?}");
            let mut at = 2;
            for _ in 0..2 {
                assert_eq!(der[at], 0x02);
                let len = usize::from(der[at + 1]);
                assert!(len >= 1 && (der[at + 2] & 0x80) == 0, "{der:?}");
                at += 2 + len;
            }
            assert_eq!(at, der.len());
        }
    }
});
