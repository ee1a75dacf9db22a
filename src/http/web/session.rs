//! Who is using the page. Signing in checks the same credentials as the API (the local
//! bearer token or a Supabase user JWT) and keeps them in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` unless the server is on loopback), so no script and no other site
//! can read or send them. Every state-changing request must carry the session's CSRF
//! token and come from the page's own origin.
//!
//! The CSRF token is a hash of the credentials: stateless, the same on every instance,
//! and worthless without the cookie it is derived from.

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "billable_session";
/// The header htmx and the page's script send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Why a state-changing request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "this request came from another site ({0}); billable's page only accepts changes made on the page itself"
    )]
    CrossOrigin(String),
    #[error("the page's security token is missing or out of date; reload the page and try again")]
    Csrf,
}

/// The credentials in the request's session cookie, if any.
pub fn credentials(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Whether `token` can be stored in a cookie as it is (bearer tokens and JWTs can).
pub fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 3800
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
}

/// The `Set-Cookie` value that signs in with `token`.
pub fn sign_in_cookie(token: &str, headers: &HeaderMap) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        secure_attribute(headers)
    ))
    .ok()
}

/// The `Set-Cookie` value that signs out.
pub fn sign_out_cookie(headers: &HeaderMap) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attribute(headers)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("billable_session=; Path=/; Max-Age=0"))
}

/// Browsers send `Secure` cookies over HTTPS only; on loopback the page is plain HTTP.
fn secure_attribute(headers: &HeaderMap) -> &'static str {
    if host(headers).is_some_and(is_loopback) {
        ""
    } else {
        "; Secure"
    }
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The CSRF token of a session signed in with `credentials`.
pub fn csrf_token(credentials: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"billable page csrf v1\0")
        .chain_update(credentials.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that a state-changing request comes from the page's own origin and, when
/// signed in, carries the session's CSRF token (header, or the `csrf` form field).
pub fn check_change(
    headers: &HeaderMap,
    credentials: Option<&str>,
    form_token: Option<&str>,
) -> Result<(), Refused> {
    same_origin(headers)?;
    let Some(credentials) = credentials else {
        return Ok(());
    };
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_token)
        .ok_or(Refused::Csrf)?;
    if super::super::auth::same(sent, &csrf_token(credentials)) {
        Ok(())
    } else {
        Err(Refused::Csrf)
    }
}

/// A browser names the page that sent a request in `Origin` (and `Sec-Fetch-Site`);
/// it must be this server.
fn same_origin(headers: &HeaderMap) -> Result<(), Refused> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        return match (authority, host(headers)) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
            _ => Err(Refused::CrossOrigin(origin.chars().take(100).collect())),
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site @ ("cross-site" | "same-site")) => Err(Refused::CrossOrigin(site.to_owned())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; billable_session=tok.en_1; b=2")]);
        assert_eq!(credentials(&h), Some("tok.en_1"));
        assert_eq!(
            credentials(&headers(&[("cookie", "billable_session=")])),
            None
        );
        assert_eq!(credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn cookies_are_secure_except_on_loopback() {
        for host in ["127.0.0.1:8787", "localhost:3000", "[::1]:80", "localhost"] {
            let c = sign_in_cookie("t", &headers(&[("host", host)])).unwrap();
            let c = c.to_str().unwrap();
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
            assert!(!c.contains("Secure"), "{host}: {c}");
        }
        let c = sign_in_cookie("t", &headers(&[("host", "billable.example.com")])).unwrap();
        assert!(c.to_str().unwrap().ends_with("; Secure"));
        assert!(
            sign_out_cookie(&headers(&[("host", "x.example")]))
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn a_change_needs_the_token_and_the_same_origin() {
        let token = csrf_token("secret");
        let good = headers(&[
            ("host", "127.0.0.1:8787"),
            ("origin", "http://127.0.0.1:8787"),
            ("x-csrf-token", &token),
        ]);
        assert_eq!(check_change(&good, Some("secret"), None), Ok(()));
        let no_token = headers(&[
            ("host", "127.0.0.1:8787"),
            ("origin", "http://127.0.0.1:8787"),
        ]);
        assert_eq!(
            check_change(&no_token, Some("secret"), None),
            Err(Refused::Csrf)
        );
        assert_eq!(
            check_change(&no_token, Some("secret"), Some(&token)),
            Ok(())
        );
        assert_eq!(
            check_change(&no_token, Some("other"), Some(&token)),
            Err(Refused::Csrf)
        );
        let elsewhere = headers(&[
            ("host", "127.0.0.1:8787"),
            ("origin", "https://evil.example"),
            ("x-csrf-token", &token),
        ]);
        assert!(matches!(
            check_change(&elsewhere, Some("secret"), None),
            Err(Refused::CrossOrigin(_))
        ));
        let fetched = headers(&[("host", "h"), ("sec-fetch-site", "cross-site")]);
        assert!(check_change(&fetched, None, None).is_err());
        assert!(!cookie_safe("a b") && !cookie_safe("a;b") && cookie_safe("eyJ.a-b_c"));
    }
}
