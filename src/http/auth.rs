//! Who is calling. Local mode: one bearer token, one local user. Supabase mode: the
//! caller's Supabase JWT, verified with the project's JWT secret (HS256) or its JWKS
//! (ES256/RS256, cached, fetched again when a token names an unknown key); the user is
//! the token's `sub` and carries the raw JWT so the store acts as that user.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::config::{Secret, ServerConfig};
use crate::domain::UserId;

/// The audience and role of a signed-in Supabase user.
const AUDIENCE: &str = "authenticated";
/// A token naming an unknown key fetches the JWKS again at most this often.
/// The least time between two fetches of the project's JWKS, however many tokens name
/// unknown keys: made-up key ids cannot make the server hammer the project.
const JWKS_REFETCH: Duration = Duration::from_secs(1);
/// How long one JWKS fetch may take; a slow project makes only tokens with unknown
/// keys wait, never those whose key is known.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>` ({hint})")]
    Missing { hint: &'static str },
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
    /// The JWKS could not be fetched; retrying later may help.
    #[error(
        "could not verify the token: the signing keys at {url} are unavailable ({message}); try again shortly"
    )]
    KeysUnavailable { url: String, message: String },
}

/// How requests are authenticated; built once at start.
pub enum Auth {
    Local { token: Secret },
    Supabase(Box<Supabase>),
}

pub struct Supabase {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

struct Jwks {
    url: String,
    client: reqwest::Client,
    /// The last good keys. A std lock, never held across an await: a verification
    /// with a known key never waits for a fetch.
    keys: std::sync::RwLock<KeyCache>,
    /// One fetch at a time (single flight); tokens with unknown keys queue here.
    refresh: Mutex<()>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When the last fetch was tried, whether or not it worked.
    tried: Option<Instant>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    iat: Option<u64>,
}

impl Auth {
    /// The authentication `config` describes. In local mode without a configured
    /// token, a fresh random one is generated; the caller prints it once.
    pub fn from_config(config: &ServerConfig) -> (Auth, Option<Secret>) {
        if config.supabase_mode() {
            let secret = config
                .supabase_jwt_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
            // The JWKS client needs a TLS provider; main installs the same one first.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let jwks = config.supabase_url.as_ref().map(|url| Jwks {
                url: format!("{url}/auth/v1/.well-known/jwks.json"),
                client: reqwest::Client::builder()
                    .timeout(JWKS_TIMEOUT)
                    .build()
                    .unwrap_or_default(),
                keys: std::sync::RwLock::new(KeyCache::default()),
                refresh: Mutex::new(()),
            });
            return (Auth::Supabase(Box::new(Supabase { secret, jwks })), None);
        }
        match &config.api_token {
            Some(token) => (
                Auth::Local {
                    token: token.clone(),
                },
                None,
            ),
            None => {
                let token = Secret::new(format!(
                    "bl_{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ));
                (
                    Auth::Local {
                        token: token.clone(),
                    },
                    Some(token),
                )
            }
        }
    }

    /// The user an `Authorization` header value stands for.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<UserId, AuthError> {
        let hint = match self {
            Auth::Local { .. } => {
                "the token printed when the server started, or BILLABLE_API_TOKEN"
            }
            Auth::Supabase(_) => "the signed-in user's Supabase access token",
        };
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing { hint })?;
        match self {
            Auth::Local { token: expected } => {
                if same(token, expected.expose()) {
                    Ok(UserId::local())
                } else {
                    Err(AuthError::Invalid(
                        "it does not match this server's token (BILLABLE_API_TOKEN, or the one printed at start)".into(),
                    ))
                }
            }
            Auth::Supabase(s) => s.verify(token).await,
        }
    }
}

/// Compares without leaking where the first difference is.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Supabase {
    async fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("not a JWT ({e})")))?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.clone().ok_or_else(|| {
                AuthError::Invalid(
                    "HS256 tokens are not accepted: this server has no SUPABASE_JWT_SECRET".into(),
                )
            })?,
            Algorithm::ES256 | Algorithm::RS256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    AuthError::Invalid(format!(
                        "{:?} tokens need the project's JWKS: this server has no SUPABASE_URL",
                        header.alg
                    ))
                })?;
                let kid = header.kid.as_deref().ok_or_else(|| {
                    AuthError::Invalid("the token names no signing key (`kid`)".into())
                })?;
                jwks.key(kid).await?
            }
            other => {
                return Err(AuthError::Invalid(format!(
                    "signing algorithm {other:?} is not accepted (HS256, ES256 or RS256)"
                )));
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            AuthError::Invalid(match e.kind() {
                K::ExpiredSignature => "it has expired; sign in again".to_owned(),
                K::ImmatureSignature => "it is not valid yet (`nbf` is in the future)".to_owned(),
                K::InvalidSignature => "its signature does not verify".to_owned(),
                K::InvalidAudience => format!("its audience is not `{AUDIENCE}`"),
                K::MissingRequiredClaim(c) => format!("it has no `{c}` claim"),
                _ => e.to_string(),
            })
        })?;
        let claims = data.claims;
        if claims.role.as_deref() != Some(AUDIENCE) {
            return Err(AuthError::Invalid(format!(
                "its role is {}, not `{AUDIENCE}`: use a signed-in user's token",
                claims
                    .role
                    .map(|r| format!("`{r}`"))
                    .unwrap_or_else(|| "missing".into())
            )));
        }
        if claims.sub.trim().is_empty() {
            return Err(AuthError::Invalid("its `sub` is empty".into()));
        }
        if claims
            .iat
            .is_some_and(|iat| iat > jsonwebtoken::get_current_timestamp() + LEEWAY_SECS)
        {
            return Err(AuthError::Invalid(
                "it was issued in the future (`iat`); check the clock of whoever signed it".into(),
            ));
        }
        // Supabase user ids are UUIDs; anything else (the CLI's own `local` user among
        // them) is never reachable through a token.
        if uuid::Uuid::parse_str(&claims.sub).is_err() {
            return Err(AuthError::Invalid(format!(
                "its `sub` ({}) is not a Supabase user id (a UUID); sign in as a Supabase user",
                claims.sub.chars().take(40).collect::<String>()
            )));
        }
        Ok(UserId::new(claims.sub).with_token(token))
    }
}

impl Jwks {
    fn known(&self, kid: &str) -> Option<DecodingKey> {
        let cache = self.keys.read().unwrap_or_else(|p| p.into_inner());
        cache.keys.get(kid).cloned()
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(k) = self.known(kid) {
            return Ok(k);
        }
        let unknown = || {
            AuthError::Invalid(format!(
                "it is signed with key `{kid}`, which the project's JWKS does not list"
            ))
        };
        let _flight = self.refresh.lock().await;
        // A fetch that finished while this one waited may have brought the key.
        if let Some(k) = self.known(kid) {
            return Ok(k);
        }
        let tried = self.keys.read().unwrap_or_else(|p| p.into_inner()).tried;
        if tried.is_some_and(|t| t.elapsed() < JWKS_REFETCH) {
            return Err(unknown());
        }
        let fetched = self.fetch().await;
        let mut cache = self.keys.write().unwrap_or_else(|p| p.into_inner());
        cache.tried = Some(Instant::now());
        match fetched {
            Ok(keys) => cache.keys = keys,
            // The last good keys stay; only this token's unknown key is a problem.
            Err(e) if !cache.keys.is_empty() => {
                tracing::warn!(error = %e, "could not refresh the Supabase JWKS; keeping the known keys");
                return Err(unknown());
            }
            Err(e) => return Err(e),
        }
        cache.keys.get(kid).cloned().ok_or_else(unknown)
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, AuthError> {
        let unavailable = |message: String| AuthError::KeysUnavailable {
            url: self.url.clone(),
            message,
        };
        crate::metrics::global().inc(crate::metrics::Counter::UpstreamCalls, "supabase_jwks");
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| unavailable(format!("not a JWK set: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) {
                keys.insert(kid.clone(), key);
            }
        }
        tracing::info!(url = %self.url, keys = keys.len(), "fetched the Supabase JWKS");
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }

    #[tokio::test]
    async fn local_mode_accepts_only_its_bearer_token() {
        let config = ServerConfig {
            api_token: Some(Secret::new("t0k")),
            ..ServerConfig::default()
        };
        let (auth, generated) = Auth::from_config(&config);
        assert!(generated.is_none());
        assert_eq!(
            auth.authenticate(Some("Bearer t0k")).await.unwrap(),
            UserId::local()
        );
        assert!(auth.authenticate(Some("bearer  t0k ")).await.is_ok());
        assert!(matches!(
            auth.authenticate(None).await,
            Err(AuthError::Missing { .. })
        ));
        assert!(matches!(
            auth.authenticate(Some("Basic t0k")).await,
            Err(AuthError::Missing { .. })
        ));
        assert!(matches!(
            auth.authenticate(Some("Bearer t0kk")).await,
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_generated_token_is_long_and_fresh() {
        let (_, a) = Auth::from_config(&ServerConfig::default());
        let (_, b) = Auth::from_config(&ServerConfig::default());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.expose().len() > 60);
        assert_ne!(a, b);
    }
}
