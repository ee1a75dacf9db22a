//! Gmail refresh tokens at rest: sealed with AES-256-GCM (ring, which rustls already
//! builds) under a key from the environment (`BILLABLE_TOKEN_KEY`), bound to the user
//! they belong to, so a sealed token copied into another user's row does not open.
//! The store only ever holds the sealed text; the plaintext lives in memory while a
//! scan uses it and is never logged or returned.
//!
//! Sealed text is `v1:<key id>:<base64 of nonce, ciphertext and tag>`; the key id (the
//! first bytes of the key's SHA-256) tells "sealed under another key" apart from
//! "tampered with".

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The environment variable holding the key.
pub const KEY_VAR: &str = "BILLABLE_TOKEN_KEY";
const VERSION: &str = "v1";

/// Why a sealed token could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error(
        "{KEY_VAR} must be 32 random bytes in base64 (make one with `openssl rand -base64 32`): {0}"
    )]
    BadKey(String),
    #[error(
        "the stored Gmail authorisation was sealed under another {KEY_VAR} (key id {0}); \
         restore that key, or connect Gmail again"
    )]
    OtherKey(String),
    #[error(
        "the stored Gmail authorisation is damaged or belongs to another user; connect Gmail again"
    )]
    Unreadable,
}

/// The key that seals and opens stored Gmail tokens.
pub struct TokenKey {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("id", &self.id).finish()
    }
}

impl PartialEq for TokenKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl TokenKey {
    /// The key from its base64 text (standard or URL-safe alphabet, padded or not).
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .map_err(|e| VaultError::BadKey(format!("not base64 ({e})")))?;
        if bytes.len() != 32 {
            return Err(VaultError::BadKey(format!("it is {} bytes", bytes.len())));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let id = digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| VaultError::BadKey("rejected by AES-256-GCM".to_owned()))?;
        Ok(TokenKey {
            key: LessSafeKey::new(key),
            id,
        })
    }

    /// Which key this is, safe to show: it reveals nothing of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `secret`, sealed for `user`.
    pub fn seal(&self, user: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        // The system's RNG failing is not something a caller can act on.
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system random number generator works");
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(user)),
                &mut sealed,
            )
            // Only fails for inputs of more than 64 GiB.
            .expect("a refresh token fits AES-GCM's limits");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!(
            "{VERSION}:{}:{}",
            self.id,
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// The secret `sealed` holds, when it was sealed for `user` under this key.
    pub fn open(&self, user: &str, sealed: &str) -> Result<String, VaultError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(VaultError::Unreadable);
        };
        if id != self.id {
            return Err(VaultError::OtherKey(id.to_owned()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| VaultError::Unreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(VaultError::Unreadable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Unreadable)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(user)), &mut buffer)
            .map_err(|_| VaultError::Unreadable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Unreadable)
    }
}

fn aad(user: &str) -> Vec<u8> {
    format!("billable gmail refresh token for {user}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn a_sealed_token_opens_only_for_its_user_under_its_key() {
        let key = TokenKey::parse(KEY).unwrap();
        let sealed = key.seal("alice", "1//refresh-secret");
        assert!(sealed.starts_with(&format!("v1:{}:", key.id())));
        assert!(!sealed.contains("refresh-secret"), "{sealed}");
        assert_eq!(key.open("alice", &sealed).unwrap(), "1//refresh-secret");
        // Every seal draws a fresh nonce.
        assert_ne!(sealed, key.seal("alice", "1//refresh-secret"));
        assert_eq!(key.open("bob", &sealed), Err(VaultError::Unreadable));
        let other = TokenKey::parse(OTHER).unwrap();
        assert_eq!(
            other.open("alice", &sealed),
            Err(VaultError::OtherKey(key.id().to_owned()))
        );
        // Another key with this key's id (forged): the tag check still refuses.
        let forged = sealed.replacen(key.id(), other.id(), 1);
        assert_eq!(other.open("alice", &forged), Err(VaultError::Unreadable));
    }

    #[test]
    fn tampered_or_malformed_text_is_unreadable_not_a_panic() {
        let key = TokenKey::parse(KEY).unwrap();
        let sealed = key.seal("alice", "tok");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            flipped.as_str(),
            "",
            "v1",
            "v2:x:y",
            &format!("v1:{}:", key.id()),
            &format!("v1:{}:!!!", key.id()),
            &format!("v1:{}:AAAA", key.id()),
        ] {
            assert_eq!(key.open("alice", bad), Err(VaultError::Unreadable), "{bad}");
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(matches!(
            TokenKey::parse("c2hvcnQ="),
            Err(VaultError::BadKey(_))
        ));
        assert!(matches!(
            TokenKey::parse("not base64 at all!"),
            Err(VaultError::BadKey(_))
        ));
        let url_safe = KEY.trim_end_matches('=');
        assert_eq!(
            TokenKey::parse(url_safe).unwrap().id(),
            TokenKey::parse(KEY).unwrap().id()
        );
        assert!(!format!("{:?}", TokenKey::parse(KEY).unwrap()).contains(KEY));
    }
}
