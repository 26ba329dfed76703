//! JWT parsing and verification (`kea_auth::verify`): `header`, `unverified_issuer`, `verify` and
//! `still_valid`, differential against a second JOSE library (`jsonwebtoken`).
//!
//! Two valid tokens are minted once with fixed keys (HS256 and ES256); the fuzzer edits their
//! header and payload JSON (re-signed with the real key, so the signature check is passed and the
//! parsers behind it are reached), flips bytes in the compact form, or gives arbitrary text.
//!
//! Property: no panic, and whenever KEA accepts a token:
//! 1. `jsonwebtoken` accepts it too with the same key, algorithm, issuer, audience, clock and
//!    leeway (its defaults relaxed to KEA's documented ones: `exp` required, `nbf` checked);
//! 2. **RFC 7515/7519 structure**: the header and the payload segments each decode to a JSON
//!    *object* (not an array, not a scalar) without duplicate member names
//!    (`kea_fuzz::strict_json_object`). A JSON-array header such as `["HS256"]` that KEA accepts
//!    fails this assertion with "structure".
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use kea_auth::config::{AuthConfig, Compiled, KeySource};
use kea_auth::jwks::KeySet;
use kea_auth::native::NativeVerifier;
use kea_auth::verify::{self, Verified};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "orders";
const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-fuzz";
/// The fixed ES256 private scalar (any value in [1, n) works).
const EC_SCALAR: [u8; 32] = [
    0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x79, 0x88, 0x97, 0xa6, 0xb5, 0xc4, 0xd3, 0xe2, 0xf1, 0x0f, 0x1e,
    0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0, 0x01,
];

struct Fixture {
    compiled: Compiled,
    /// Index of the HS256 and ES256 providers.
    hs: usize,
    es: usize,
    keys: KeySet,
    ec: SigningKey,
    /// The public point, base64url (for `jsonwebtoken`).
    ec_xy: (String, String),
}

fn fixture() -> &'static Fixture {
    // Compiled configurations hold `Rc`s: one per thread (libFuzzer runs one), leaked.
    thread_local! {
        static FIXTURE: &'static Fixture = Box::leak(Box::new(build()));
    }
    FIXTURE.with(|f| *f)
}

fn build() -> Fixture {
    {
        std::env::set_var("KEA_FUZZ_HMAC", std::str::from_utf8(HMAC_SECRET).unwrap());
        let ec = SigningKey::from_bytes(&EC_SCALAR.into()).unwrap();
        let point = ec.verifying_key().to_encoded_point(false);
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }]});
        let config = serde_json::json!({"providers": [
            {"name": "hs", "issuer": ISSUER, "audiences": [AUDIENCE], "algorithms": ["HS256"],
             "hmacSecretEnv": "KEA_FUZZ_HMAC"},
            {"name": "es", "issuer": ISSUER, "audiences": [AUDIENCE], "algorithms": ["ES256"],
             "jwks": {"inline": jwks}}
        ]});
        let config: AuthConfig = kea_plugin_sdk::parse_json(config.to_string().as_bytes()).unwrap();
        let compiled = config.compile().unwrap();
        let keys = match &compiled.providers[1].keys {
            KeySource::Inline(document) => KeySet::parse(document, 16).unwrap(),
            other => panic!("{other:?}"),
        };
        let ec_xy = (
            URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        );
        Fixture {
            compiled,
            hs: 0,
            es: 1,
            keys,
            ec,
            ec_xy,
        }
    }
}

/// Signature checks in the VM only (the proxy's `verify_signature` is not there).
struct NoNative;
impl NativeVerifier for NoNative {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        None
    }
}

#[derive(Debug, Arbitrary)]
enum Shape {
    /// A token built from (possibly edited) header and payload JSON, signed with the real key.
    Signed {
        es256: bool,
        header: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        /// Seconds added to `now` for `exp` in the default payload.
        lifetime: i32,
        edits: Vec<(u16, u8)>,
    },
    /// Arbitrary text as the token.
    Raw(String),
}

fn sign(es256: bool, signing_input: &str) -> String {
    if es256 {
        let signature: Signature = fixture().ec.sign(signing_input.as_bytes());
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    } else {
        let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET).unwrap();
        mac.update(signing_input.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

fn token(shape: &Shape, now: u64) -> String {
    match shape {
        Shape::Raw(text) => text.clone(),
        Shape::Signed {
            es256,
            header,
            payload,
            lifetime,
            edits,
        } => {
            let header = header.clone().unwrap_or_else(|| {
                let alg = if *es256 { "ES256" } else { "HS256" };
                format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"ec-1"}}"#).into_bytes()
            });
            let payload = payload.clone().unwrap_or_else(|| {
                let exp = now.saturating_add_signed(i64::from(*lifetime));
                format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"alice","iat":{now},"exp":{exp}}}"#)
                    .into_bytes()
            });
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            let mut token = format!("{input}.{}", sign(*es256, &input)).into_bytes();
            for (at, byte) in edits.iter().take(8) {
                if !token.is_empty() {
                    let at = usize::from(*at) % token.len();
                    token[at] = *byte;
                }
            }
            String::from_utf8_lossy(&token).into_owned()
        }
    }
}

/// `jsonwebtoken`'s verdict with KEA's settings.
fn second_opinion(token: &str, es256: bool, skew: Duration, require_exp: bool) -> Result<(), String> {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let (key, alg) = if es256 {
        (
            DecodingKey::from_ec_components(&fixture().ec_xy.0, &fixture().ec_xy.1)
                .map_err(|e| e.to_string())?,
            Algorithm::ES256,
        )
    } else {
        (DecodingKey::from_secret(HMAC_SECRET), Algorithm::HS256)
    };
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = skew.as_secs();
    validation.validate_nbf = true;
    if !require_exp {
        validation.required_spec_claims.clear();
    }
    decode::<serde_json::Value>(token, &key, &validation)
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

fn check_accepted(token: &str, verified: &Verified, es256: bool, fixture: &Fixture) {
    // `KEA_FUZZ_VERBOSE=1`: show accepted tokens (to see the differential is exercised).
    if std::env::var_os("KEA_FUZZ_VERBOSE").is_some() {
        eprintln!("accepted ({}): {token}", if es256 { "ES256" } else { "HS256" });
    }
    let provider = &fixture.compiled.providers[if es256 { fixture.es } else { fixture.hs }];
    // (2) RFC 7515/7519 structure.
    let mut parts = token.split('.');
    let (header, payload) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    for (name, part) in [("header", header), ("payload", payload)] {
        let bytes = URL_SAFE_NO_PAD.decode(part).unwrap_or_default();
        if let Err(why) = kea_fuzz::strict_json_object(&bytes) {
            panic!(
                "structure: KEA accepted a token whose {name} is not a JSON object without duplicate \
                 members ({why}): {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    assert_eq!(verified.payload, payload);
    // (1) A second library agrees.
    if let Err(why) = second_opinion(token, es256, provider.clock_skew, provider.require_expiration) {
        panic!("differential: KEA accepted a token jsonwebtoken rejects ({why}): {token}");
    }
}

fuzz_target!(|shape: Shape| {
    let fixture = fixture();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let token = token(&shape, now);
    let _ = verify::unverified_issuer(&token);
    let Ok(header) = verify::header(&token) else {
        return;
    };
    for (index, es256) in [(fixture.hs, false), (fixture.es, true)] {
        let provider = &fixture.compiled.providers[index];
        if let Ok(verified) = verify::verify(provider, &fixture.keys, &token, &header, now, &NoNative) {
            check_accepted(&token, &verified, es256, fixture);
            assert!(verify::still_valid(&verified, provider.clock_skew, now).is_ok());
        }
    }
});
