//! What a hostile sender can put in a message never reaches a description as anything
//! but plain text: no markup, links, control or bidi characters, no formula.

use serde_json::json;

use crate::helpers::{TestApp, call, configure_demo};

/// Subjects (and display names) an attacker controls.
const SUBJECTS: [&str; 7] = [
    "![pixel](https://evil.example/track.png) Contract [click here](javascript:alert(1))",
    "<script>alert(document.cookie)</script> MSA redline",
    "Invoice \u{1b}[2J\u{1b}[31mPAY NOW\u{1b}[0m",
    "Redline \u{202E}fdp.exe",
    "=HYPERLINK(\"https://evil.example\",\"Open\") terms",
    "Draft ＜img src=x onerror=alert(1)＞ memo",
    "@SUM(1+1) \u{200B}zero\u{FEFF}width",
];

fn message(subject: &str, n: usize) -> String {
    format!(
        "From: \"=cmd|' /C calc'!A0 <b>Jane</b>\" <jane.cooper@acme.com>\r\n\
         To: Alex Morgan <alex@morganlegal.com>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 -0500\r\n\
         Message-ID: <hostile-{n}@acme.com>\r\n\r\n\
         Please review the attached redline of the master services agreement and send \
         your comments on the indemnity clause and the limitation of liability by Friday.\r\n"
    )
}

fn assert_plain(description: &str) {
    for bad in [
        "<",
        ">",
        "](",
        "://",
        "javascript:",
        "\u{1b}",
        "\u{202E}",
        "\u{200B}",
        "\u{FEFF}",
    ] {
        assert!(
            !description.contains(bad),
            "`{bad}` in the description {description:?}"
        );
    }
    assert!(
        !description.starts_with(['=', '+', '-', '@']),
        "a formula: {description:?}"
    );
    assert!(
        !description.chars().any(char::is_control),
        "a control character: {description:?}"
    );
}

#[tokio::test]
async fn every_injection_subject_yields_a_plain_text_description() {
    let app = TestApp::new();
    let ctx = app.context(None);
    configure_demo(&ctx).await;
    for (n, subject) in SUBJECTS.iter().enumerate() {
        let out = call(
            &ctx,
            "analyze_time_entry",
            json!({"raw_email": message(subject, n), "save": true}),
        )
        .await
        .expect("analyze");
        let entry = &out["entry"];
        assert!(entry.is_object(), "{subject:?} gave no entry: {out}");
        assert_plain(entry["description"].as_str().unwrap_or_default());
    }
    // And as stored.
    let list = call(&ctx, "list_time_entries", json!({"limit": 50}))
        .await
        .expect("list");
    let entries = list["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), SUBJECTS.len());
    for e in entries {
        assert_plain(e["description"].as_str().unwrap_or_default());
    }
}
