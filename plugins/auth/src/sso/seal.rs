//! Authenticated encryption of cookie contents (AES-256-GCM, RFC 5116).
//!
//! A sealed value is `<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The nonce is 96 random
//! bits from the proxy's CSPRNG; with random nonces one key should seal fewer than 2^32 values
//! (NIST SP 800-38D 8.3), which is why keys rotate: the first configured key seals, all open.
//! The associated data names the purpose (`session` or `login`), the deployment (issuer, client,
//! credential name) and the cookie name, so a login cookie can never be presented as a session,
//! nor one cookie under another's name, nor a cookie of another gateway sharing the key secret.

use crate::sso::config::{SessionKey, Sso};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use kea_plugin_sdk::Host;

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// What a cookie is for; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Session,
    Login,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Session => b"kea/session/v1\0",
            Self::Login => b"kea/login/v1\0",
        }
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the cookie is malformed")]
    Malformed,
    #[error("the cookie was sealed with a key that is no longer configured")]
    UnknownKey,
    #[error("the cookie does not authenticate (tampered, or sealed for another purpose)")]
    Forged,
}

fn aad(sso: &Sso, purpose: Purpose, cookie_name: &str) -> Vec<u8> {
    [
        purpose.label(),
        sso.binding.as_bytes(),
        b"\0",
        cookie_name.as_bytes(),
    ]
    .concat()
}

fn cipher(key: &SessionKey) -> Aes256Gcm {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(key.key))
}

/// Seals `plaintext` with the active key; `None` when there is no key or no randomness.
pub fn seal(
    host: &impl Host,
    sso: &Sso,
    purpose: Purpose,
    cookie_name: &str,
    plaintext: &[u8],
) -> Option<String> {
    let key = sso.active_key()?;
    let mut nonce = [0u8; NONCE_BYTES];
    host.random_bytes(&mut nonce).ok()?;
    let sealed = cipher(key)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad(sso, purpose, cookie_name),
            },
        )
        .ok()?;
    let mut raw = Vec::with_capacity(NONCE_BYTES + sealed.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&sealed);
    let encoded = Base64UrlSafeNoPadding::encode_to_string(&raw).ok()?;
    Some(format!("{}.{encoded}", key.id))
}

/// Opens a value sealed by [`seal`] with any configured key.
pub fn open(sso: &Sso, purpose: Purpose, cookie_name: &str, sealed: &str) -> Result<Vec<u8>, OpenError> {
    let (id, encoded) = sealed.split_once('.').ok_or(OpenError::Malformed)?;
    let key = sso.key(id).ok_or(OpenError::UnknownKey)?;
    let raw = Base64UrlSafeNoPadding::decode_to_vec(encoded, None).map_err(|_| OpenError::Malformed)?;
    if raw.len() < NONCE_BYTES + TAG_BYTES {
        return Err(OpenError::Malformed);
    }
    let (nonce, sealed) = raw.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
    cipher(key)
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed,
                aad: &aad(sso, purpose, cookie_name),
            },
        )
        .map_err(|_| OpenError::Forged)
}

/// Random bytes as base64url text (state, nonce, PKCE verifier, session id).
pub fn random_text(host: &impl Host, bytes: usize) -> Option<String> {
    let mut raw = vec![0u8; bytes];
    host.random_bytes(&mut raw).ok()?;
    Base64UrlSafeNoPadding::encode_to_string(&raw).ok()
}
