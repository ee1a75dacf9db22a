//! The timesheet page in a real browser: Debian's Chromium driven through chromedriver
//! (WebDriver, the fantoccini crate), against the real server on a free port. Each
//! test asserts what the page shows and what the store holds afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use billable::domain::{TimeEntry, UserId};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::{self, path_str};
use crate::http::{Server, TOKEN, local_config, spawn};
use crate::services::{self, BROWSER, CHROMEDRIVER, CHROMIUM};

/// How long the page may take to show what an action did.
const PATIENCE: Duration = Duration::from_secs(20);

/// A headless Chromium session; the browser and its driver stop when dropped.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A browser at 1280×800, or None when the browser tests are skipped.
async fn browser() -> Option<Browser> {
    if BROWSER.skipped() {
        return None;
    }
    let profile = tempfile::tempdir().expect("profile dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // A cleared environment: nothing of the developer's reaches the browser.
    let driver = Command::new(services::required(CHROMEDRIVER))
        .arg(format!("--port={port}"))
        .env_clear()
        .env("HOME", profile.path())
        .env("PATH", "/usr/bin:/bin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": services::required(CHROMIUM),
            // This machine's network is closed: Chromium must not try to reach Google.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--lang=en-US",
                format!("--user-data-dir={}", profile.path().join("chromium").display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session in Chromium");
    client
        .set_window_size(1280, 800)
        .await
        .expect("window size");
    Some(Browser {
        client,
        driver,
        _profile: profile,
    })
}

impl Browser {
    /// Presses one key, as a person would (to whatever has focus).
    async fn press(&self, key: char) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.expect("key press");
    }

    /// Clicks the element `css` finds.
    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("could not click {css}: {e}"));
    }

    /// Replaces the text of the field `css` finds, typing `text` as a person would.
    async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type");
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` (an expression) is truthy; returns its value.
    async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.js(&format!("return ({script});")).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            if Instant::now() > deadline {
                let flash = self
                    .js("return document.querySelector('#sheet .flash')?.textContent")
                    .await;
                panic!("timed out waiting for {what} ({script}); the page says: {flash}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Marks the sheet on screen, so [`Browser::flash`] waits for the next one.
    async fn mark(&self) {
        self.js("document.getElementById('sheet').dataset.old = '1'; return true")
            .await;
    }

    /// Presses `key` and waits for the new sheet to say `text`.
    async fn act(&self, key: char, text: &str) {
        self.mark().await;
        self.press(key).await;
        self.flash(text).await;
    }

    /// Waits for a sheet newer than the last [`Browser::mark`] to say `text`.
    async fn flash(&self, text: &str) {
        let script = format!(
            "!document.getElementById('sheet').dataset.old && \
             document.querySelector('#sheet .flash')?.textContent.includes({})",
            json!(text)
        );
        self.until(&format!("the page to say {text:?}"), &script)
            .await;
    }

    /// The ids of the entries in the order the sheet lists them.
    async fn row_ids(&self) -> Vec<String> {
        let v = self
            .js("return [...document.querySelectorAll('#sheet tr.entry')].map(r => r.dataset.id)")
            .await;
        serde_json::from_value(v).expect("row ids")
    }

    async fn current_id(&self) -> String {
        self.until(
            "a current entry",
            "document.querySelector('#sheet tr.entry.current')?.dataset.id",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Moves the current entry to `id` with j and k.
    async fn move_to(&self, id: &str) {
        let ids = self.row_ids().await;
        let target = ids.iter().position(|i| i == id).expect("row on the page");
        let current = self.current_id().await;
        let now = ids.iter().position(|i| *i == current).unwrap_or(0);
        let key = if target >= now { 'j' } else { 'k' };
        for _ in 0..target.abs_diff(now) {
            self.press(key).await;
        }
        assert_eq!(self.current_id().await, id);
    }

    /// Runs axe-core in the page: the serious and critical violations.
    async fn axe(&self) -> Vec<Value> {
        let axe = std::fs::read_to_string(crate::helpers::fixture("axe/axe.min.js")).expect("axe");
        self.client
            .execute(&axe, vec![])
            .await
            .expect("inject axe-core");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document).then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)}))))
                   .catch(e => done([{id: 'axe-failed', help: String(e)}]));",
                vec![],
            )
            .await
            .expect("axe.run");
        serde_json::from_value(result).expect("violations")
    }

    /// A PNG of the window, checked to be `width` pixels wide.
    async fn screenshot(&self, width: u32, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert_eq!(w, width, "the screenshot is {w} px wide");
        // BILLABLE_UPDATE_SCREENSHOTS=1 refreshes the ones the README shows.
        let dir = if std::env::var("BILLABLE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

async fn entries(server: &Server) -> Vec<Value> {
    let out = helpers::call(&server.ctx, "list_time_entries", json!({"limit": 500}))
        .await
        .expect("list");
    serde_json::from_value(out["entries"].clone()).expect("entries")
}

/// Entries by id, merged parts too (lists hide them).
async fn by_id(server: &Server, ids: &[String]) -> Vec<TimeEntry> {
    server
        .ctx
        .store
        .entries_by_id(&UserId::local(), ids)
        .await
        .expect("entries by id")
}

async fn entry(server: &Server, id: &str) -> Value {
    entries(server)
        .await
        .into_iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("entry {id} is in the store"))
}

async fn sign_in(b: &Browser, server: &Server) {
    b.client
        .goto(&server.url("/app"))
        .await
        .expect("open the page");
    let url = b.client.current_url().await.expect("url");
    assert_eq!(
        url.path(),
        "/app/login",
        "a signed-out person is sent to sign in"
    );
    b.type_into("#token", TOKEN).await;
    b.click("main.login button[type=submit]").await;
    b.until("the timesheet", "document.querySelector('#sheet')")
        .await;
}

#[tokio::test]
async fn a_lawyer_clears_a_week_of_time_in_the_browser() {
    let Some(b) = browser().await else { return };
    let server = spawn(local_config(), &[]).await;
    sign_in(&b, &server).await;
    let page = b.js("return document.documentElement.outerHTML").await;
    assert!(
        !page.as_str().unwrap_or("").contains(TOKEN),
        "the token never appears in the page"
    );

    // Settings: what LEDES needs, on the settings page (clients are JSON there).
    b.click("a[href='/app/settings']").await;
    b.until(
        "the settings page",
        "document.querySelector('#set-timekeeper_id')",
    )
    .await;
    for (field, value) in [
        ("timekeeper_id", "AM01"),
        ("timekeeper_name", "Morgan, Alex"),
        ("timekeeper_classification", "PT"),
        ("law_firm_id", "12-3456789"),
    ] {
        b.type_into(&format!("#set-{field}"), value).await;
    }
    b.js("const t = document.getElementById('set-clients');
          const clients = JSON.parse(t.value);
          for (const c of clients) c.ledes_client_id = c.name.toUpperCase().replace(/[^A-Z]/g, '');
          t.value = JSON.stringify(clients, null, 2); return true;")
        .await;
    let violations = b.axe().await;
    assert!(
        violations.is_empty(),
        "axe-core on the settings page: {violations:#?}"
    );
    b.click("main.settings button[type=submit]").await;
    b.until(
        "the settings to be saved",
        "document.querySelector('.flash.done')?.textContent.startsWith('Saved')",
    )
    .await;
    let settings = helpers::stored_settings(&server.ctx).await;
    assert_eq!(settings["timekeeper_name"], "Morgan, Alex");
    assert_eq!(settings["clients"][0]["ledes_client_id"], "ACMECORP");
    b.click("a[href='/app']").await;
    b.until("the timesheet", "document.querySelector('#sheet')")
        .await;

    // Scan now: progress, then the sheet fills in.
    b.click("#scan").await;
    b.until(
        "the scan to finish",
        "document.querySelector('#scan-status')?.dataset.state === 'done'",
    )
    .await;
    let said = b
        .js("return document.querySelector('#scan-text').textContent")
        .await;
    assert!(
        said.as_str()
            .unwrap_or("")
            .contains("Scan finished: 16 messages examined"),
        "{said}"
    );
    b.until(
        "entries on the sheet",
        "document.querySelectorAll('#sheet tr.entry').length",
    )
    .await;
    let stored = entries(&server).await;
    assert_eq!(stored.len(), 9, "the demo mailbox's entries are stored");

    // The week before holds most of the demo's time.
    b.click("a[rel=prev]").await;
    b.until(
        "the week of 16 November",
        "document.querySelector('#sheet h1').textContent.includes('16 Nov')",
    )
    .await;
    let ids = b.row_ids().await;
    assert_eq!(ids.len(), 8, "the week's entries are listed");
    let first_status = b
        .js("return document.querySelector('#sheet tr.entry').className")
        .await;
    assert!(
        first_status.as_str().unwrap_or("").contains("needs_review"),
        "needs-review comes first: {first_status}"
    );

    // Which entries to work on: a pair of one client and matter to merge, and others.
    let pair: Vec<String> = serde_json::from_value(
        b.js(
            "for (const g of document.querySelectorAll('#sheet section.day:not(.review) .group')) {
                const rows = [...g.querySelectorAll('tr.entry.suggested')];
                if (rows.length >= 2) return rows.slice(0, 2).map(r => r.dataset.id);
              } return [];",
        )
        .await,
    )
    .expect("ids");
    assert_eq!(pair.len(), 2, "the demo week has two entries of one matter");
    let others: Vec<String> = ids
        .iter()
        .skip(1)
        .filter(|id| !pair.contains(id))
        .cloned()
        .collect();
    assert!(others.len() >= 3, "{others:?}");

    // Approve two with the keyboard: the first (one needing review), then another.
    let in_review = "return document.querySelectorAll('#sheet section.review tr.entry').length";
    let waiting = b.js(in_review).await.as_u64().unwrap_or_default();
    assert!(waiting >= 1, "the demo week has entries to review");
    b.press('j').await;
    let first = b.current_id().await;
    assert_eq!(first, ids[0]);
    b.act('a', "Approved 1 entry.").await;
    let second = others[0].clone();
    b.move_to(&second).await;
    b.act('a', "Approved 1 entry.").await;
    for id in [&first, &second] {
        assert_eq!(entry(&server, id).await["status"], "approved");
        let class = b
            .js(&format!(
                "return document.getElementById('e-{id}').className"
            ))
            .await;
        assert!(class.as_str().unwrap_or("").contains("approved"), "{class}");
    }
    let left = b.js(in_review).await.as_u64().unwrap_or_default();
    assert!(
        left < waiting,
        "the approved entry left the review: {left} of {waiting}"
    );

    // Edit one's minutes and description.
    let edited = others[1].clone();
    b.move_to(&edited).await;
    b.press('e').await;
    b.until(
        "the edit form",
        "document.activeElement?.id === 'edit-minutes'",
    )
    .await;
    b.type_into("#edit-minutes", "54").await;
    b.type_into(
        "#edit-description",
        "Reviewed the redline and called the client",
    )
    .await;
    b.mark().await;
    b.click("#edit button[type=submit]").await;
    b.flash("Saved 1 entry.").await;
    let e = entry(&server, &edited).await;
    assert_eq!(e["billed_minutes"], 54);
    assert_eq!(
        e["description"],
        "Reviewed the redline and called the client"
    );
    let shown = b
        .js(&format!(
            "return document.getElementById('e-{edited}').textContent"
        ))
        .await;
    assert!(shown.as_str().unwrap_or("").contains("0:54"), "{shown}");
    b.until(
        "the panel to close",
        "document.getElementById('panel').childElementCount === 0",
    )
    .await;

    // Reject one.
    let rejected = others[2].clone();
    b.move_to(&rejected).await;
    b.act('r', "Rejected 1 entry.").await;
    assert_eq!(entry(&server, &rejected).await["status"], "rejected");

    // Merge the pair: tick each with x, then m.
    for id in &pair {
        b.move_to(id).await;
        b.press('x').await;
    }
    b.act('m', "Merged 2 entries").await;
    // Merged parts are hidden from lists; the store still has them by id.
    let parts = by_id(&server, &pair).await;
    assert_eq!(parts.len(), 2);
    assert!(
        parts.iter().all(|p| p.merged_into.is_some()),
        "both parts are merged: {parts:?}"
    );
    for id in &pair {
        assert!(
            !b.row_ids().await.contains(id),
            "{id} is shown only inside the merged entry"
        );
    }

    // Undo once: the merge is split again.
    b.act('u', "Undone.").await;
    let parts = by_id(&server, &pair).await;
    assert!(
        parts.iter().all(|p| p.merged_into.is_none()),
        "undo split the merge: {parts:?}"
    );
    for id in &pair {
        assert!(b.row_ids().await.contains(id), "{id} is listed again");
    }

    // The source panel shows the message's text, escaped.
    b.move_to(&first).await;
    b.press('o').await;
    b.until(
        "the message panel",
        "document.querySelector('#panel .message-text')",
    )
    .await;

    // Accessibility, at both widths, with the panel open.
    let violations = b.axe().await;
    assert!(
        violations.is_empty(),
        "axe-core at 1280 px: {violations:#?}"
    );
    b.press('\u{e00c}').await; // Escape closes the panel
    b.until(
        "the panel to close",
        "document.getElementById('panel').childElementCount === 0",
    )
    .await;

    // The day view, at both widths: the screenshots the README shows.
    let week = b.client.current_url().await.expect("url");
    b.client
        .goto(&server.url("/app?view=day&date=2026-11-20"))
        .await
        .expect("day view");
    b.until(
        "the day view",
        "document.querySelector('#sheet h1').textContent.includes('Friday 20 November')",
    )
    .await;
    assert_eq!(b.row_ids().await.len(), 3, "the day's entries only");
    let violations = b.axe().await;
    assert!(
        violations.is_empty(),
        "axe-core on the day view: {violations:#?}"
    );
    b.screenshot(1280, "timesheet-desktop.png").await;
    b.client
        .set_window_size(375, 812)
        .await
        .expect("phone width");
    b.until("the phone layout", "window.innerWidth <= 375")
        .await;
    let violations = b.axe().await;
    assert!(violations.is_empty(), "axe-core at 375 px: {violations:#?}");
    let overflow = b
        .js("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(99) <= 0,
        "nothing is wider than the phone: {overflow}"
    );
    b.js("window.scrollTo(0, 0); return true").await;
    b.screenshot(375, "timesheet-phone.png").await;
    b.client
        .set_window_size(1280, 800)
        .await
        .expect("desktop width");
    b.client
        .goto(week.as_str())
        .await
        .expect("back to the week");
    b.until(
        "the week",
        "document.querySelector('#sheet h1').textContent.includes('16 Nov')",
    )
    .await;

    // Export LEDES from the page and compare it with what the CLI exports.
    // A LEDES invoice is for one client: the second approved entry's (it has a matter).
    let client = entry(&server, &second).await["client"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let exported = b
        .client
        .execute_async(
            "const [client, done] = arguments;
             const form = document.getElementById('export');
             form.querySelector('[name=format]').value = 'ledes1998b';
             form.querySelector('[name=client]').value = client;
             form.querySelector('[name=invoice_number]').value = 'INV-2026-11';
             form.querySelector('[name=invoice_date]').value = '2026-11-30';
             fetch(form.action, {method: 'POST', body: new URLSearchParams(new FormData(form))})
               .then(r => r.text().then(text => done({status: r.status, text,
                   disposition: r.headers.get('content-disposition')})));",
            vec![json!(client)],
        )
        .await
        .expect("export");
    assert_eq!(exported["status"], 200, "{exported}");
    assert!(
        exported["disposition"]
            .as_str()
            .unwrap_or("")
            .starts_with("attachment"),
        "{exported}"
    );
    let page_file = exported["text"].as_str().unwrap_or_default().to_owned();
    assert!(page_file.starts_with("LEDES1998B[]"), "{page_file}");
    let out = server._app.dir.path().join("cli.ledes");
    let run = server._app.run(&[
        "export",
        "--format",
        "ledes1998b",
        "--client",
        &client,
        "--from",
        "2026-11-16",
        "--to",
        "2026-11-22",
        "--invoice",
        "INV-2026-11",
        "--invoice-date",
        "2026-11-30",
        "--include-exported",
        "--dry-run",
        "--out",
        path_str(&out),
    ]);
    run.assert_ok();
    assert_eq!(
        page_file,
        std::fs::read_to_string(&out).expect("cli file"),
        "the page's file is the CLI's"
    );
    assert!(
        entry(&server, &second).await["exported_at"].is_string(),
        "the page's export marks entries exported"
    );
    assert!(
        entry(&server, &first).await["exported_at"].is_null(),
        "another client's entry is not exported"
    );

    // Sign out; the page is refused afterwards and nothing changes.
    let before = entries(&server).await;
    b.click("form[action='/app/logout'] button").await;
    b.until("the sign-in page", "location.pathname === '/app/login'")
        .await;
    let refused = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/app/entries', {method: 'POST', headers: {'HX-Request': 'true'},
                body: new URLSearchParams({action: 'reject', ids: arguments[0]})})
               .then(r => done(r.status));",
            vec![json!(first)],
        )
        .await
        .expect("fetch");
    assert_eq!(refused, 401, "a signed-out browser is refused");
    b.client.goto(&server.url("/app")).await.expect("open");
    assert_eq!(
        b.client.current_url().await.expect("url").path(),
        "/app/login"
    );
    assert_eq!(
        entries(&server).await,
        before,
        "nothing changed after signing out"
    );
    let violations = b.axe().await;
    assert!(
        violations.is_empty(),
        "axe-core on the sign-in page: {violations:#?}"
    );
}
