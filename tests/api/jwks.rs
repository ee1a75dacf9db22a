//! Supabase JWTs signed with the project's asymmetric keys (ES256), verified against a
//! local JWKS endpoint that can rotate its keys or go away.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use billable::config::ServerConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::http::spawn;

/// Supabase user ids are UUIDs.
const CAROL: &str = "ca401000-0000-4000-8000-000000000005";
const DAVE: &str = "da4e0000-0000-4000-8000-000000000006";
const ERIN: &str = "e4140000-0000-4000-8000-000000000007";
const FRANK: &str = "f4a4c000-0000-4000-8000-000000000008";

/// A P-256 key made for these tests only (never used anywhere else).
const TEST_EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPDclM32CjKWpFf5V
1vz/Fw2U6SJil4yxIpj28K5jxWehRANCAAR5wi/Gf1cCrv34infPsCK1dpkRFPrc
6Sgr37VKUz4b1hFA+KeAGI/of0pJp2IhdIyT5RXAE+eZt47usfLbsbQ3
-----END PRIVATE KEY-----
";
const TEST_EC_X: &str = "ecIvxn9XAq79-Ip3z7AitXaZERT63OkoK9-1SlM-G9Y";
const TEST_EC_Y: &str = "EUD4p4AYj-h_SkmnYiF0jJPlFcAT55m3ju6x8tuxtDc";

fn jwk(kid: &str) -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": TEST_EC_X, "y": TEST_EC_Y, "kid": kid, "alg": "ES256", "use": "sig"})
}

fn es256(sub: &str, kid: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims =
        json!({"sub": sub, "aud": "authenticated", "role": "authenticated", "exp": now + 600});
    let key = EncodingKey::from_ec_pem(TEST_EC_KEY.as_bytes()).expect("test key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// A Supabase project's JWKS endpoint: serves `keys`, counts fetches.
async fn fake_project(keys: Arc<Mutex<Vec<Value>>>, fetches: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/auth/v1/.well-known/jwks.json",
        get(move || {
            let (keys, fetches) = (keys.clone(), fetches.clone());
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({ "keys": *keys.lock().unwrap() }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn es256_tokens_verify_against_the_projects_jwks_which_is_cached_and_refetched_for_new_keys()
{
    let keys = Arc::new(Mutex::new(vec![jwk("k1")]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let project = fake_project(keys.clone(), fetches.clone()).await;
    let config = ServerConfig {
        supabase_url: Some(project),
        ..ServerConfig::default()
    };
    let s = spawn(config, &[CAROL]).await;

    let (status, body) = s
        .post(
            "/v1/tools/list_time_entries",
            &es256(CAROL, "k1"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = s
        .post(
            "/v1/tools/list_time_entries",
            &es256(CAROL, "k1"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the key set is cached");

    // The project rotates to a new key id: a token naming it makes the server look again.
    keys.lock().unwrap().push(jwk("k2"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = s
        .post(
            "/v1/tools/list_time_entries",
            &es256(CAROL, "k2"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // Made-up key ids cannot make the server hammer the project.
    let (status, body) = s
        .post(
            "/v1/tools/list_time_entries",
            &es256(CAROL, "bogus"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`bogus`"),
        "{body}"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_503_that_says_to_retry_not_a_401() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = ServerConfig {
        supabase_url: Some(format!("http://{closed}")),
        ..ServerConfig::default()
    };
    let s = spawn(config, &[]).await;
    let (status, body) = s
        .post(
            "/v1/tools/list_time_entries",
            &es256(DAVE, "k1"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again"),
        "{body}"
    );
}

fn es256_claims(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_ec_pem(TEST_EC_KEY.as_bytes()).expect("test key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// A JWKS endpoint that serves `k1` until `broken` is set, then answers 500 after
/// `delay`, as a struggling project would.
async fn flaky_project(broken: Arc<std::sync::atomic::AtomicBool>, delay: Duration) -> String {
    let app = axum::Router::new().route(
        "/auth/v1/.well-known/jwks.json",
        get(move || {
            let broken = broken.clone();
            async move {
                if broken.load(Ordering::SeqCst) {
                    tokio::time::sleep(delay).await;
                    return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                }
                Ok(axum::Json(json!({ "keys": [jwk("k1")] })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// The 90th percentile: a few slow requests matter to the users who make them.
fn p90(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 9 / 10]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_failing_jwks_does_not_slow_users_whose_key_is_known() {
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let project = flaky_project(broken.clone(), Duration::from_millis(1500)).await;
    let config = ServerConfig {
        supabase_url: Some(project),
        ..ServerConfig::default()
    };
    let s = Arc::new(spawn(config, &[ERIN]).await);
    let good = es256(ERIN, "k1");
    let timed = |s: Arc<crate::http::Server>, token: String| async move {
        let started = std::time::Instant::now();
        let (status, body) = s
            .post("/v1/tools/list_time_entries", &token, &json!({}))
            .await;
        (status, body, started.elapsed())
    };
    let mut before = Vec::new();
    for _ in 0..7 {
        let (status, body, took) = timed(s.clone(), good.clone()).await;
        assert_eq!(status, 200, "{body}");
        before.push(took);
    }

    // The project breaks; made-up key ids arrive four times a second.
    broken.store(true, Ordering::SeqCst);
    let storm = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut bad = Vec::new();
            for i in 0..12 {
                let token = es256(ERIN, &format!("forged-{i}"));
                bad.push(tokio::spawn(timed(s.clone(), token)));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            futures::future::join_all(bad).await
        })
    };
    let mut during = Vec::new();
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (status, body, took) = timed(s.clone(), good.clone()).await;
        assert_eq!(
            status, 200,
            "a valid user was refused during the storm: {body}"
        );
        during.push(took);
    }
    for r in storm.await.unwrap() {
        let (status, _, _) = r.unwrap();
        assert!(
            status == 401 || status == 503,
            "a forged key id got {status}"
        );
    }
    let (b, d) = (p90(before), p90(during.clone()));
    let worst = during.iter().max().copied().unwrap_or_default();
    assert!(
        d < b + Duration::from_millis(50) && worst < Duration::from_secs(1),
        "valid users slowed from {b:?} to {d:?} at p90, worst {worst:?} (all: {during:?})"
    );
}

#[tokio::test]
async fn tokens_not_valid_yet_issued_in_the_future_or_not_naming_a_supabase_user_are_401() {
    let keys = Arc::new(Mutex::new(vec![jwk("k1")]));
    let project = fake_project(keys, Arc::new(AtomicUsize::new(0))).await;
    let config = ServerConfig {
        supabase_url: Some(project),
        ..ServerConfig::default()
    };
    let s = spawn(config, &[FRANK]).await;
    let now = jsonwebtoken::get_current_timestamp();
    let base =
        json!({"sub": FRANK, "aud": "authenticated", "role": "authenticated", "exp": now + 3600});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        es256_claims(&c, "k1")
    };
    for (what, token) in [
        ("nbf in an hour", with("nbf", json!(now + 3600))),
        ("iat in an hour", with("iat", json!(now + 3600))),
        ("the local user", with("sub", json!("local"))),
        ("a sub that is not a UUID", with("sub", json!("frank"))),
    ] {
        let (status, body) = s
            .post("/v1/tools/list_time_entries", &token, &json!({}))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    // Within the leeway, and in the past, they pass.
    for token in [with("nbf", json!(now + 5)), with("iat", json!(now - 60))] {
        let (status, body) = s
            .post("/v1/tools/list_time_entries", &token, &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}
