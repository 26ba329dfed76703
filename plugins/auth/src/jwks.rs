//! JSON Web Key Sets (RFC 7517) into verification keys.
//!
//! Keys that cannot be used are skipped, as RFC 7517 section 5 asks, rather than failing the whole
//! set: unknown `kty`/`crv`, `use` other than `sig`, `key_ops` without `verify`, an `alg` that
//! does not fit the key type, RSA moduli under 2048 bits (RFC 7518 3.3), and symmetric (`oct`)
//! keys, which are never taken from a key set (HMAC secrets come only from configuration, so a
//! public key can never be used as an HMAC secret).

use crate::config::Algorithm;
use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use serde_json::Value;

/// Why a key set was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("a JWK Set is an object with a \"keys\" array")]
    NoKeysArray,
}

/// RSA public keys, one per algorithm family member (jwt-simple types a key by algorithm).
#[allow(missing_debug_implementations)] // key material is not for logs; `Material` prints the type
pub struct RsaKeys {
    rs256: RS256PublicKey,
    rs384: RS384PublicKey,
    rs512: RS512PublicKey,
    ps256: PS256PublicKey,
    ps384: PS384PublicKey,
    ps512: PS512PublicKey,
}

/// A verification key, with its DER SubjectPublicKeyInfo where the proxy can verify natively.
pub enum Material {
    Rsa(Box<RsaKeys>, Vec<u8>),
    P256(ES256PublicKey, Vec<u8>),
    P384(ES384PublicKey, Vec<u8>),
    Ed25519(Ed25519PublicKey),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rsa(..) => "RSA",
            Self::P256(..) => "EC P-256",
            Self::P384(..) => "EC P-384",
            Self::Ed25519(_) => "OKP Ed25519",
        })
    }
}

impl Material {
    /// Whether this key type can verify `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa(..) => matches!(alg, Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512),
            Self::P256(..) => alg == Es256,
            Self::P384(..) => alg == Es384,
            Self::Ed25519(_) => alg == EdDsa,
        }
    }

    /// Verifies signature and registered claims with jwt-simple.
    pub fn verify(
        &self,
        alg: Algorithm,
        token: &str,
        options: VerificationOptions,
    ) -> Result<(), jwt_simple::Error> {
        use Algorithm::*;
        let options = Some(options);
        match (self, alg) {
            (Self::Rsa(k, _), Rs256) => k.rs256.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::Rsa(k, _), Rs384) => k.rs384.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::Rsa(k, _), Rs512) => k.rs512.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::Rsa(k, _), Ps256) => k.ps256.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::Rsa(k, _), Ps384) => k.ps384.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::Rsa(k, _), Ps512) => k.ps512.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::P256(k, _), Es256) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::P384(k, _), Es384) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            (Self::Ed25519(k), EdDsa) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            _ => Err(jwt_simple::JWTError::AlgorithmMismatch.into()),
        }
    }

    /// DER SubjectPublicKeyInfo, for the proxy's native `verify_signature`.
    pub fn spki_der(&self) -> Option<&[u8]> {
        match self {
            Self::Rsa(_, der) | Self::P256(_, der) | Self::P384(_, der) => Some(der),
            Self::Ed25519(_) => None,
        }
    }
}

#[derive(Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one.
    pub alg: Option<Algorithm>,
    pub material: Material,
}

impl Jwk {
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.material.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }
}

/// The usable keys of one provider.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

fn b64(value: Option<&Value>) -> Option<Vec<u8>> {
    Base64UrlSafeNoPadding::decode_to_vec(value?.as_str()?, None).ok()
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn rsa_keys(jwk: &Value) -> Option<Material> {
    let n = b64(jwk.get("n"))?;
    let e = b64(jwk.get("e"))?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    // RFC 7518 3.3: 2048 bits or larger. Bounded above so a hostile set cannot make verification slow.
    if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
        return None;
    }
    let rs256 = RS256PublicKey::from_components(n, e).ok()?;
    let spki = rs256.to_der().ok()?;
    Some(Material::Rsa(
        Box::new(RsaKeys {
            rs256,
            rs384: RS384PublicKey::from_components(n, e).ok()?,
            rs512: RS512PublicKey::from_components(n, e).ok()?,
            ps256: PS256PublicKey::from_components(n, e).ok()?,
            ps384: PS384PublicKey::from_components(n, e).ok()?,
            ps512: PS512PublicKey::from_components(n, e).ok()?,
        }),
        spki,
    ))
}

fn ec_point(jwk: &Value, size: usize) -> Option<Vec<u8>> {
    let x = b64(jwk.get("x"))?;
    let y = b64(jwk.get("y"))?;
    if x.len() != size || y.len() != size {
        return None;
    }
    // SEC1 uncompressed point; the curve library rejects points not on the curve.
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

fn material(jwk: &Value) -> Option<Material> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    match (text("kty")?, text("crv")) {
        ("RSA", _) => rsa_keys(jwk),
        ("EC", Some("P-256")) => {
            let key = ES256PublicKey::from_bytes(&ec_point(jwk, 32)?).ok()?;
            let spki = key.to_der().ok()?;
            Some(Material::P256(key, spki))
        }
        ("EC", Some("P-384")) => {
            let key = ES384PublicKey::from_bytes(&ec_point(jwk, 48)?).ok()?;
            let spki = key.to_der().ok()?;
            Some(Material::P384(key, spki))
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64(jwk.get("x"))?;
            Some(Material::Ed25519(Ed25519PublicKey::from_bytes(&x).ok()?))
        }
        _ => None,
    }
}

fn usable(jwk: &Value) -> Option<Jwk> {
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        if !ops.as_array()?.iter().any(|op| op == "verify") {
            return None;
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(name) => Some(Algorithm::parse(name.as_str()?)?),
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(kid) => Some(kid.as_str()?.to_owned()),
    };
    let material = material(jwk)?;
    if alg.is_some_and(|alg| !material.fits(alg)) {
        return None;
    }
    Some(Jwk { kid, alg, material })
}

impl KeySet {
    /// Parses a JWK Set, keeping at most `max_keys` usable keys.
    pub fn parse(document: &Value, max_keys: usize) -> Result<Self, JwksError> {
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        let keys = entries.iter().filter_map(usable).take(max_keys).collect();
        Ok(Self { keys })
    }

    pub fn parse_bytes(raw: &[u8], max_keys: usize) -> Result<Self, JwksError> {
        let document: Value = serde_json::from_slice(raw).map_err(|e| JwksError::NotJson(e.to_string()))?;
        Self::parse(&document, max_keys)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Keys that may verify a token with this `alg` and `kid`. A token without `kid` may be
    /// verified by any fitting key (some issuers omit it when they have one key).
    pub fn candidates<'k>(
        &'k self,
        alg: Algorithm,
        kid: Option<&'k str>,
    ) -> impl Iterator<Item = &'k Jwk> + 'k {
        self.keys
            .iter()
            .filter(move |key| key.accepts(alg) && kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
    }

    /// Whether any key has this `kid` (whatever its type).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::reexports::ct_codecs::Encoder;
    use serde_json::json;

    fn enc(bytes: &[u8]) -> String {
        Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
    }

    pub fn rsa_jwk(kid: &str) -> (RS256KeyPair, Value) {
        let pair = RS256KeyPair::generate(2048).unwrap().with_key_id(kid);
        let c = pair.public_key().to_components();
        (
            pair,
            json!({"kty": "RSA", "kid": kid, "n": enc(&c.n), "e": enc(&c.e)}),
        )
    }

    #[test]
    fn parses_supported_keys_and_skips_the_rest() {
        let (_, rsa) = rsa_jwk("r1");
        let p256 = ES256KeyPair::generate();
        let point = p256.public_key().public_key().to_bytes_uncompressed();
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "e1", "alg": "ES256",
                        "x": enc(&point[1..33]), "y": enc(&point[33..65])});
        let ed = Ed25519KeyPair::generate();
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "kid": "o1", "x": enc(&ed.public_key().to_bytes())});
        let set = json!({"keys": [
            rsa, ec, okp,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "s"},
            {"kty": "RSA", "n": enc(&[1; 128]), "e": "AQAB", "kid": "short"},
            {"kty": "EC", "crv": "P-256", "x": enc(&[1; 32]), "y": enc(&[2; 32]), "kid": "off-curve"},
            {"kty": "EC", "crv": "P-256", "kid": "wrong-alg", "alg": "RS256", "x": enc(&point[1..33]), "y": enc(&point[33..65])},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": enc(&point[1..33]), "y": enc(&point[33..65])},
            "garbage", 42
        ]});
        let keys = KeySet::parse(&set, 10).unwrap();
        let kids: Vec<_> = keys.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["r1", "e1", "o1"]);
        assert_eq!(keys.candidates(Algorithm::Rs256, Some("r1")).count(), 1);
        assert_eq!(
            keys.candidates(Algorithm::Es256, Some("r1")).count(),
            0,
            "kty binds the algorithm"
        );
        assert_eq!(keys.candidates(Algorithm::Es256, None).count(), 1);
        assert_eq!(KeySet::parse(&set, 2).unwrap().len(), 2);
        // SubjectPublicKeyInfo (what BoringSSL's EVP_parse_public_key takes), not PKCS#1.
        let rsa_oid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        let ec_oid = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        let spki = |i: usize| keys.keys[i].material.spki_der().unwrap().to_vec();
        assert!(spki(0).windows(rsa_oid.len()).any(|w| w == rsa_oid));
        assert!(spki(1).windows(ec_oid.len()).any(|w| w == ec_oid));
        assert!(keys.keys[2].material.spki_der().is_none());
    }

    #[test]
    fn rejects_documents_that_are_not_key_sets() {
        assert_eq!(
            KeySet::parse(&json!({"nokeys": []}), 5).unwrap_err(),
            JwksError::NoKeysArray
        );
        assert!(matches!(
            KeySet::parse_bytes(b"{\"keys\": [", 5),
            Err(JwksError::NotJson(_))
        ));
        assert!(KeySet::parse(&json!({"keys": []}), 5).unwrap().is_empty());
    }
}
