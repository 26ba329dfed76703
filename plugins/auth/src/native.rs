//! Signature checks by the proxy's own crypto: Envoy's `verify_signature` foreign function
//! (BoringSSL `EVP_DigestVerify`), about 20× faster than RSA or ECDSA compiled into the VM.
//!
//! It covers RSASSA-PKCS1-v1_5 (RS256/384/512) and ECDSA (ES256/384); PSS, EdDSA and HMAC stay in
//! the VM. When the proxy lacks the function, the plugin notices once and verifies in the VM.
//!
//! The arguments are the protobuf `VerifySignatureArguments` of Envoy's
//! `source/extensions/common/wasm/ext/verify_signature.proto` (`hash_function = 1`,
//! `public_key = 2` as DER SubjectPublicKeyInfo, `signature = 3`, `text = 4`) and the answer is
//! `VerifySignatureResult` (`result = 1`, `error = 2`). Four length-delimited fields and a bool
//! are encoded by hand: a protobuf crate and its code generation would add more to the module
//! than these few lines.

use crate::config::Algorithm;
use kea_plugin_sdk::{Host, HostError};
use std::cell::Cell;

/// The digest name Envoy expects, for algorithms it can verify.
pub fn hash_of(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::Rs256 | Algorithm::Es256 => Some("sha256"),
        Algorithm::Rs384 | Algorithm::Es384 => Some("sha384"),
        Algorithm::Rs512 => Some("sha512"),
        _ => None,
    }
}

/// Something that may check a signature natively; `None` means "cannot here, verify in the VM".
pub trait NativeVerifier {
    fn verify(&self, hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Option<bool>;
}

/// The proxy's `verify_signature`, switched off for the VM's lifetime the first time the proxy
/// says it has no such function.
#[derive(Debug)]
pub struct ProxyCrypto<'h, H: Host> {
    pub host: &'h H,
    pub available: &'h Cell<bool>,
}

impl<H: Host> NativeVerifier for ProxyCrypto<'_, H> {
    fn verify(&self, hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Option<bool> {
        if !self.available.get() {
            return None;
        }
        let arguments = encode_arguments(hash, spki_der, signature, text);
        match self.host.call_foreign_function("verify_signature", &arguments) {
            Ok(Some(answer)) => decode_result(&answer),
            Ok(None) => None,
            Err(HostError::NotFound) => {
                log::info!("kea-auth: the proxy has no verify_signature function; verifying in the VM");
                self.available.set(false);
                None
            }
            // The proxy could not import the key or parse the arguments: let the VM decide.
            Err(_) => None,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    put_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

pub fn encode_arguments(hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash.len() + spki_der.len() + signature.len() + text.len() + 16);
    put_bytes(&mut out, 1, hash.as_bytes());
    put_bytes(&mut out, 2, spki_der);
    put_bytes(&mut out, 3, signature);
    put_bytes(&mut out, 4, text);
    out
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `VerifySignatureResult.result`; `None` for an answer that is not one.
pub fn decode_result(bytes: &[u8]) -> Option<bool> {
    let mut at = 0;
    let mut result = false;
    while at < bytes.len() {
        let tag = read_varint(bytes, &mut at)?;
        match (tag >> 3, tag & 7) {
            (1, 0) => result = read_varint(bytes, &mut at)? != 0,
            (_, 0) => {
                read_varint(bytes, &mut at)?;
            }
            (_, 2) => {
                let len = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
                at = at.checked_add(len).filter(|end| *end <= bytes.len())?;
            }
            _ => return None,
        }
    }
    Some(result)
}

/// A JWS ECDSA signature (`r || s`, RFC 7518 3.4) as the DER `ECDSA-Sig-Value` BoringSSL takes;
/// `None` when it has the wrong length for the curve.
pub fn ecdsa_der(raw: &[u8], scalar_len: usize) -> Option<Vec<u8>> {
    if raw.len() != 2 * scalar_len {
        return None;
    }
    let (r, s) = raw.split_at(scalar_len);
    let mut body = Vec::with_capacity(raw.len() + 6);
    for scalar in [r, s] {
        let start = scalar
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(scalar.len().saturating_sub(1));
        let digits = scalar.get(start..)?;
        let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
        body.push(0x02);
        body.push(u8::try_from(digits.len() + usize::from(pad)).ok()?);
        if pad {
            body.push(0);
        }
        body.extend_from_slice(digits);
    }
    let mut der = Vec::with_capacity(body.len() + 2);
    der.push(0x30);
    // At most 2 × (2 + 49) = 102 bytes for P-384: the short length form suffices.
    der.push(u8::try_from(body.len()).ok().filter(|len| *len < 0x80)?);
    der.extend_from_slice(&body);
    Some(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_arguments_as_protobuf() {
        let encoded = encode_arguments("sha256", &[0x30, 0x01], &[9; 130], b"a.b");
        assert_eq!(&encoded[..8], &[0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6']);
        assert_eq!(&encoded[8..12], &[0x12, 2, 0x30, 0x01]);
        // 130 needs a two-byte varint.
        assert_eq!(&encoded[12..15], &[0x1a, 0x82, 0x01]);
        assert_eq!(&encoded[encoded.len() - 5..], &[0x22, 3, b'a', b'.', b'b']);
    }

    #[test]
    fn decodes_results() {
        assert_eq!(decode_result(&[0x08, 0x01]), Some(true));
        assert_eq!(decode_result(&[0x08, 0x01, 0x12, 0x00]), Some(true));
        assert_eq!(decode_result(&[0x12, 0x02, b'n', b'o']), Some(false));
        assert_eq!(decode_result(&[]), Some(false));
        assert_eq!(decode_result(&[0x12, 0x09, b'n']), None, "truncated");
        assert_eq!(decode_result(&[0x0d, 0, 0, 0, 0]), None, "unexpected wire type");
    }

    #[test]
    fn converts_ecdsa_signatures_to_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r with the high bit set: needs a 0x00 pad
        raw[63] = 0x05; // s = 5: leading zeros dropped
        let der = ecdsa_der(&raw, 32).unwrap();
        assert_eq!(&der[..4], &[0x30, 2 + 33 + 3, 0x02, 33]);
        assert_eq!(der[4], 0x00);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 0x05]);
        assert!(ecdsa_der(&raw, 48).is_none(), "wrong length for P-384");
        assert_eq!(ecdsa_der(&[0; 96], 48).unwrap(), vec![0x30, 6, 2, 1, 0, 2, 1, 0]);
    }
}
