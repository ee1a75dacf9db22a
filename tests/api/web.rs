//! The timesheet page over plain HTTP: sessions, CSRF, settings and row-level
//! security. (tests/api/browser.rs drives the same page in Chromium.)

use std::sync::Arc;

use billable::analyze::rules::RulesAnalyzer;
use billable::config::{Secret, ServerConfig};
use billable::context::Context;
use billable::domain::UserId;
use billable::mail::mbox::MboxSource;
use billable::tools::{self, NoProgress};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{self, TestApp, demo_settings, fixture};
use crate::http::{Server, TOKEN, local_config, spawn, spawn_context};
use crate::services::{self, SUPABASE};

/// A client that follows no redirects and keeps no cookies: each test sends exactly
/// the headers it means to.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A form as browsers send it (reqwest here is built without its form feature).
fn form_body<K: serde::Serialize, V: serde::Serialize>(fields: &[(K, V)]) -> String {
    serde_urlencoded::to_string(fields).expect("a form")
}

/// Signs in through the form; the session cookie (`name=value`).
async fn sign_in(server: &Server, token: &str) -> String {
    let r = client()
        .post(server.url("/app/login"))
        .header("origin", &server.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("token", token)]))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    cookie.split(';').next().expect("name=value").to_owned()
}

/// The page, and the CSRF token it carries.
async fn page(server: &Server, cookie: &str, query: &str) -> (String, String) {
    let r = client()
        .get(server.url(&format!("/app{query}")))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    let csrf = html
        .split("data-csrf=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_owned();
    (html, csrf)
}

async fn act(server: &Server, headers: HeaderMap, form: &[(&str, &str)]) -> (StatusCode, String) {
    let r = client()
        .post(server.url("/app/entries"))
        .headers(headers)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(form))
        .send()
        .await
        .expect("post");
    (r.status(), r.text().await.expect("body"))
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("header"));
    }
    h
}

async fn status_of(ctx: &Context, user: &UserId, id: &str) -> Value {
    let found = ctx
        .store
        .entries_by_id(user, &[id.to_owned()])
        .await
        .expect("entries");
    found
        .first()
        .map(|e| json!(e.status))
        .unwrap_or(Value::Null)
}

async fn first_entry(ctx: &Context, user: &UserId) -> String {
    let out = tools::call(ctx, user, "list_time_entries", json!({}), &NoProgress)
        .await
        .expect("list");
    out["entries"][0]["id"]
        .as_str()
        .expect("an entry")
        .to_owned()
}

#[tokio::test]
async fn a_change_without_the_csrf_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let server = spawn(local_config(), &[]).await;
    let user = UserId::local();
    helpers::scan(&server.ctx).await;
    let id = first_entry(&server.ctx, &user).await;
    let before = status_of(&server.ctx, &user, &id).await;
    let cookie = sign_in(&server, TOKEN).await;
    let (html, csrf) = page(&server, &cookie, "").await;
    assert!(
        !html.contains(TOKEN),
        "the access token never appears in the page"
    );
    let form = [
        ("action", "approve"),
        ("ids", id.as_str()),
        ("view", "week"),
    ];
    let origin = server.base.clone();

    let refused = [
        (
            "no token",
            headers(&[("cookie", &cookie), ("origin", &origin)]),
        ),
        (
            "a wrong token",
            headers(&[
                ("cookie", &cookie),
                ("origin", &origin),
                ("x-csrf-token", &"0".repeat(64)),
            ]),
        ),
        (
            "another origin",
            headers(&[
                ("cookie", &cookie),
                ("origin", "https://evil.example"),
                ("x-csrf-token", &csrf),
            ]),
        ),
        (
            "a cross-site fetch",
            headers(&[
                ("cookie", &cookie),
                ("sec-fetch-site", "cross-site"),
                ("x-csrf-token", &csrf),
            ]),
        ),
    ];
    for (what, h) in refused {
        let (status, body) = act(&server, h, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert_eq!(
            status_of(&server.ctx, &user, &id).await,
            before,
            "{what} changed nothing"
        );
    }
    // The token in the form field works as well as in the header.
    let mut with_field = form.to_vec();
    with_field.push(("csrf", &csrf));
    let (status, body) = act(
        &server,
        headers(&[("cookie", &cookie), ("origin", &origin)]),
        &with_field,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Approved 1 entry."), "{body}");
    assert_eq!(status_of(&server.ctx, &user, &id).await, json!("approved"));

    // Signing in and out from another site is refused too.
    let r = client()
        .post(server.url("/app/login"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("token", TOKEN)]))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    let r = client()
        .post(server.url("/app/logout"))
        .header("cookie", &cookie)
        .header("origin", &origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .expect("logout");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "signing out needs the token"
    );
    let r = client()
        .post(server.url("/app/logout"))
        .header("cookie", &cookie)
        .header("origin", &origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cleared = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        cleared.starts_with("billable_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn the_page_needs_a_session_and_a_wrong_token_is_told_why() {
    let server = spawn(local_config(), &[]).await;
    let r = client().get(server.url("/")).send().await.expect("root");
    assert_eq!(r.headers()["location"], "/app");
    let r = client()
        .get(server.url("/app"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/app/login");
    let r = client()
        .post(server.url("/app/entries"))
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("action", "approve")]))
        .send()
        .await
        .expect("htmx");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["hx-redirect"], "/app/login");
    let r = client()
        .post(server.url("/app/login"))
        .header("origin", &server.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("token", "not-the-token")]))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("does not match this server&#39;s token")
            || body.contains("does not match this server's token"),
        "{body}"
    );
    // A forged cookie is no session.
    let r = client()
        .get(server.url("/app"))
        .header("cookie", "billable_session=forged")
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(r.headers()["location"], "/app/login?ended=1");
    let cleared = r.headers()["set-cookie"].to_str().unwrap_or("");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let r = client()
        .get(server.url("/app/login?ended=1"))
        .send()
        .await
        .expect("login page");
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Your session has ended")
    );
    // The page's assets are served by the binary.
    for (file, kind) in [
        ("htmx.min.js", "javascript"),
        ("app.js", "javascript"),
        ("app.css", "css"),
    ] {
        let r = client()
            .get(server.url(&format!("/app/static/{file}")))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), StatusCode::OK, "{file}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .contains(kind)
        );
    }
}

#[tokio::test]
async fn settings_saved_on_the_page_go_through_configure_with_its_messages() {
    let server = spawn(local_config(), &[]).await;
    let cookie = sign_in(&server, TOKEN).await;
    let (_, csrf) = page(&server, &cookie, "").await;
    let expected = helpers::call(
        &server.ctx,
        "configure_time_tracking",
        json!({"settings": {"billing_increment_minutes": 0}}),
    )
    .await
    .expect_err("0 is not an increment")
    .to_string();
    let post = |fields: Vec<(&'static str, String)>| {
        let (cookie, base) = (cookie.clone(), server.base.clone());
        let url = server.url("/app/settings");
        async move {
            let r = client()
                .post(url)
                .header("cookie", cookie)
                .header("origin", base)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&fields))
                .send()
                .await
                .expect("settings");
            (r.status(), r.text().await.expect("html"))
        }
    };
    let (status, html) = post(vec![
        ("csrf", csrf.clone()),
        ("billing_increment_minutes", "0".into()),
    ])
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let escaped = expected
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(
        html.contains(&escaped),
        "the page says {expected:?}: {html}"
    );
    let (status, html) = post(vec![
        ("csrf", csrf.clone()),
        ("billing_increment_minutes", "15".into()),
        (
            "personal_contacts",
            "mum@family.example\n  \nfriend@acme.com".into(),
        ),
    ])
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let now = helpers::stored_settings(&server.ctx).await;
    assert_eq!(now["billing_increment_minutes"], 15);
    assert_eq!(
        now["personal_contacts"],
        json!(["mum@family.example", "friend@acme.com"])
    );
    assert_eq!(
        now["clients"].as_array().map(Vec::len),
        Some(3),
        "untouched settings stay"
    );
}

#[tokio::test]
async fn in_supabase_mode_the_page_acts_as_the_signed_in_user_under_rls() {
    if SUPABASE.skipped() {
        return;
    }
    let alice = services::signed_in_user();
    let bob = services::signed_in_user();
    let source = MboxSource::open(fixture("demo.mbox")).expect("mbox");
    let store = services::supabase_store();
    let ctx = Arc::new(Context::new(
        Some(Arc::new(source)),
        Arc::new(RulesAnalyzer),
        Arc::new(store),
    ));
    for user in [&alice, &bob] {
        tools::call(
            &ctx,
            user,
            "configure_time_tracking",
            json!({"settings": demo_settings()}),
            &NoProgress,
        )
        .await
        .expect("settings");
    }
    tools::call(&ctx, &alice, "scan_billable_time", json!({}), &NoProgress)
        .await
        .expect("scan");
    let config = ServerConfig {
        supabase_jwt_secret: Some(Secret::new(services::jwt_secret())),
        ..ServerConfig::default()
    };
    let server = spawn_context(config, TestApp::new(), ctx.clone()).await;
    let id = first_entry(&ctx, &alice).await;

    let bobs = sign_in(&server, bob.token().expect("jwt")).await;
    let (html, csrf) = page(&server, &bobs, "?view=week&date=2026-11-23").await;
    assert!(
        !html.contains(&id),
        "Bob's page shows none of Alice's entries"
    );
    let h = headers(&[
        ("cookie", &bobs),
        ("origin", &server.base),
        ("x-csrf-token", &csrf),
    ]);
    let (status, body) = act(&server, h, &[("action", "approve"), ("ids", &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("flash failed"),
        "Bob cannot approve Alice's entry: {body}"
    );
    assert_ne!(status_of(&ctx, &alice, &id).await, json!("approved"));

    let alices = sign_in(&server, alice.token().expect("jwt")).await;
    let (html, csrf) = page(&server, &alices, "?view=week&date=2026-11-23").await;
    let h = headers(&[
        ("cookie", &alices),
        ("origin", &server.base),
        ("x-csrf-token", &csrf),
    ]);
    let (status, body) = act(&server, h, &[("action", "approve"), ("ids", &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Approved 1 entry."), "{body}");
    assert!(html.contains("tr class=\"entry"), "Alice sees her week");
    assert_eq!(status_of(&ctx, &alice, &id).await, json!("approved"));
}
