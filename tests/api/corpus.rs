//! Every message of the third-party corpus goes through a whole scan: each is either
//! analyzed (or triaged) or reported with a reason, and nothing panics.

use std::sync::Arc;

use billable::mail::eml_dir::EmlDirSource;
use serde_json::json;

use crate::helpers::{TestApp, call, fixture, scan};

fn count_files(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("corpus dir")
        .map(|e| {
            let p = e.expect("entry").path();
            if p.is_dir() {
                count_files(&p)
            } else {
                u64::from(p.extension().is_some_and(|x| x == "eml"))
            }
        })
        .sum()
}

#[tokio::test]
async fn every_corpus_message_is_analyzed_or_reported() {
    let dir = fixture("corpus");
    let files = count_files(&dir);
    assert!(files >= 100, "the corpus has {files} files");
    let app = TestApp::new();
    let ctx = app.context(Some(Arc::new(EmlDirSource::open(&dir).expect("corpus"))));
    // A client on a common corpus domain makes some messages billable too.
    call(&ctx, "configure_time_tracking", json!({"settings": {"clients": [
        {"name": "Example", "domains": ["example.com", "example.org"], "addresses": [], "keywords": ["test"], "matter": null, "hourly_rate": null}
    ]}}))
    .await
    .expect("configure");
    let scan = scan(&ctx).await;
    let n = |k: &str| scan[k].as_u64().unwrap_or(0);
    assert_eq!(scan["status"], "completed", "{scan}");
    // Files sharing a Message-ID are one message; every other file is examined.
    assert!(n("examined") > 0 && n("examined") <= files, "{scan}");
    assert_eq!(
        n("examined"),
        n("skipped_automated") + n("analyzed") + n("errors_total"),
        "every message is accounted for: {scan}"
    );
    for e in scan["errors"].as_array().unwrap() {
        assert!(
            !e["reason"].as_str().unwrap_or_default().is_empty(),
            "an error without a reason: {e}"
        );
    }
    assert!(
        n("analyzed") > files / 2,
        "most of the corpus is readable mail: {scan}"
    );
    // A rescan finds them all processed, including the malformed ones.
    let again = call(&ctx, "scan_billable_time", json!({}))
        .await
        .expect("rescan");
    assert_eq!(again["analyzed"], 0, "{again}");
}
