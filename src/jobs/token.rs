//! The short-lived user JWTs a worker acts with: signed with the project's JWT secret
//! (`SUPABASE_JWT_SECRET`), as Supabase Auth signs its own, for exactly the job's
//! user. PostgREST takes them like the user's own sign-in, so row-level security
//! decides every read and write of the scan; the worker never holds a key that
//! reaches past that one user.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use crate::domain::UserId;
use crate::error::{Error, Result};

/// How long a minted token lives. A job runs in slices shorter than this, each with
/// a fresh token (see `worker.rs`).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Signs user tokens with the project's secret.
pub struct UserTokens {
    key: EncodingKey,
    lifetime: Duration,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    role: &'static str,
    aud: &'static str,
    iat: i64,
    exp: i64,
    /// Marks the token as a worker's, for the project's logs.
    billable_worker: bool,
}

impl UserTokens {
    pub fn new(secret: &str) -> Self {
        UserTokens {
            key: EncodingKey::from_secret(secret.as_bytes()),
            lifetime: TOKEN_LIFETIME,
        }
    }

    /// A shorter lifetime (tests watch a job outlive its tokens).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// `user` carrying a fresh token of their own.
    pub fn user(&self, id: &str) -> Result<UserId> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::invalid(
                "user",
                "a Supabase user id is a UUID; this job's is not, so it is not run",
            ));
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: id,
            role: "authenticated",
            aud: "authenticated",
            iat: now,
            exp: now + i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2),
            billable_worker: true,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &self.key).map_err(|e| {
            Error::invalid("SUPABASE_JWT_SECRET", format!("cannot sign a token: {e}"))
        })?;
        Ok(UserId::new(id).with_token(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn a_minted_token_is_the_users_own_for_a_short_while() {
        let tokens = UserTokens::new("secret");
        let id = "7d4c3f0e-8f43-4b8e-9a51-0d5f7d0e6c11";
        let user = tokens.user(id).expect("mint");
        let mut validation = Validation::default();
        validation.set_audience(&["authenticated"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            user.token().unwrap_or_default(),
            &DecodingKey::from_secret(b"secret"),
            &validation,
        )
        .expect("verifies with the project's secret");
        assert_eq!(data.claims["sub"], id);
        assert_eq!(data.claims["role"], "authenticated");
        let life =
            data.claims["exp"].as_i64().unwrap_or(0) - data.claims["iat"].as_i64().unwrap_or(0);
        assert_eq!(life, 15 * 60);
        assert!(tokens.user("local").is_err(), "only Supabase user ids");
    }
}
