//! The timesheet page, `GET /app`: a day's or week's suggested time, reviewed, fixed
//! and released in a browser. Server-rendered HTML (maud) with htmx for partial
//! updates and one small script for the keyboard and scan progress; every asset is
//! vendored and served by the binary.
//!
//! Every action calls the same tools as `/v1` and MCP, as the signed-in user, so in
//! Supabase mode row-level security applies exactly as for the API.

mod chart;
mod session;
mod undo;
mod view;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use crate::context::Context;
use crate::domain::{EntryStatus, Settings, TimeEntry, UserId, WorkDate};
use crate::error::Error;
use crate::export::Format;
use crate::tools::{self, NoProgress};
use view::{Flash, Range, Sheet, Span};

pub use session::csrf_token;

/// Entries one sheet shows at most (a week of a very busy practice).
const MAX_ENTRIES: u32 = 5000;
const FORMATS: [Format; 4] = [
    Format::Ledes1998b,
    Format::Csv,
    Format::HarvestCsv,
    Format::TogglCsv,
];

/// The page's routes; they authenticate with the session cookie, not a bearer header.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/app") }))
        .route("/app", get(page))
        .route("/app/", get(|| async { Redirect::to("/app") }))
        .route("/app/static/{file}", get(asset))
        .route("/app/login", get(login_page).post(login))
        .route("/app/logout", post(logout))
        .route("/app/entries", post(act))
        .route("/app/entries/{id}/source", get(source))
        .route("/app/entries/{id}/edit", get(edit))
        .route("/app/scan", post(scan))
        .route("/app/export", post(export))
        .route("/app/settings", get(settings_page).post(save_settings))
}

/// A signed-in person: who they are, and their session's CSRF token.
struct Session {
    user: UserId,
    csrf: String,
    credentials: String,
}

/// The signed-in person, or the answer that sends them to sign in.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(credentials) = session::credentials(headers) else {
        return Err(to_login(headers, false));
    };
    match state
        .auth
        .authenticate(Some(&format!("Bearer {credentials}")))
        .await
    {
        Ok(user) => {
            if let Some(limiter) = &state.limiter
                && let Err(wait) = limiter.check(user.as_str()).await
            {
                crate::metrics::global().inc(crate::metrics::Counter::RateLimited, "/app");
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many requests; wait {wait} s and try again."),
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return Err(r);
            }
            Ok(Session {
                user,
                csrf: csrf_token(credentials),
                credentials: credentials.to_owned(),
            })
        }
        Err(e) => {
            tracing::info!(error = %e, "page session refused");
            Err(to_login(headers, true))
        }
    }
}

/// Sends a person who is not signed in to the sign-in page (htmx follows `HX-Redirect`).
/// When their session `ended` (an expired or revoked token), the cookie goes and the
/// sign-in page says so.
fn to_login(headers: &HeaderMap, ended: bool) -> Response {
    let login = if ended {
        "/app/login?ended=1"
    } else {
        "/app/login"
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let mut r = if headers.contains_key("hx-request") {
        let mut r = (StatusCode::UNAUTHORIZED, "Sign in first.").into_response();
        r.headers_mut()
            .insert("hx-redirect", HeaderValue::from_static(login));
        r
    } else if wants_html {
        Redirect::to(login).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "Not signed in: sign in at /app/login with the server's access token.",
        )
            .into_response()
    };
    if ended {
        r.headers_mut()
            .insert(header::SET_COOKIE, session::sign_out_cookie(headers));
    }
    r
}

/// A handler that takes a `Session` runs only for a signed-in person.
impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        signed_in(state, &parts.headers).await
    }
}

impl Session {
    /// Refuses a change that does not come from the page with this session's CSRF
    /// token (header, or the `csrf` form field).
    fn check_change(
        &self,
        headers: &HeaderMap,
        form_token: Option<&str>,
    ) -> Result<(), session::Refused> {
        session::check_change(headers, Some(&self.credentials), form_token)
    }
}

fn refused(e: session::Refused) -> Response {
    tracing::warn!(error = %e, "page change refused");
    (StatusCode::FORBIDDEN, e.to_string()).into_response()
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    r.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// The form's fields; `ids` may repeat.
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[derive(Deserialize, Default)]
struct View {
    view: Option<String>,
    date: Option<String>,
}

async fn page(
    State(state): State<Arc<AppState>>,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<View>,
) -> Response {
    let ctx = &state.ctx;
    let result = async {
        let settings = ctx.store.settings(&session.user).await?;
        let range = range(
            ctx,
            &session.user,
            q.view.as_deref(),
            q.date.as_deref(),
            &settings,
        )
        .await?;
        let entries = week(ctx, &session.user, range).await?;
        Ok::<_, Error>((settings, range, entries))
    }
    .await;
    match result {
        Ok((settings, range, entries)) => {
            let sheet = Sheet {
                range,
                entries: &entries,
                settings: &settings,
                flash: None,
                undo: None,
                close_panel: false,
            };
            let markup = if headers.contains_key("hx-request") {
                view::sheet(&sheet, &session.csrf, &FORMATS)
            } else {
                view::page(&sheet, &session.csrf, &FORMATS)
            };
            no_store(markup.into_response())
        }
        Err(e) => failure(e),
    }
}

/// An error the page cannot show in place: its message, as the API would give it.
fn failure(e: Error) -> Response {
    let api = super::ApiError::from(e);
    (api.status, api.message).into_response()
}

/// The range a request asks for; without a date, the latest day with time on it.
async fn range(
    ctx: &Context,
    user: &UserId,
    span: Option<&str>,
    date: Option<&str>,
    settings: &Settings,
) -> Result<Range, Error> {
    let span = Span::parse(span);
    let date = match date.map(WorkDate::parse) {
        Some(Ok(d)) => d,
        Some(Err(e)) => return Err(Error::invalid("date", e)),
        None => {
            let latest = tools::run::<tools::list::ListTimeEntries>(
                ctx,
                user,
                tools::list::Args {
                    limit: Some(1),
                    ..Default::default()
                },
                &NoProgress,
            )
            .await?;
            match latest.entries.first() {
                Some(e) => e.work_date,
                None => WorkDate(
                    chrono::Utc::now()
                        .with_timezone(&settings.timezone)
                        .date_naive(),
                ),
            }
        }
    };
    Ok(Range { span, date })
}

/// The entries of the range's week, every status, through `list_time_entries`.
async fn week(ctx: &Context, user: &UserId, range: Range) -> Result<Vec<TimeEntry>, Error> {
    let (from, to) = range.week();
    let mut entries = Vec::new();
    loop {
        let page = tools::run::<tools::list::ListTimeEntries>(
            ctx,
            user,
            tools::list::Args {
                from: Some(from),
                to: Some(to),
                limit: Some(500),
                offset: Some(entries.len() as u32),
                ..Default::default()
            },
            &NoProgress,
        )
        .await?;
        let done = page.entries.is_empty();
        entries.extend(page.entries);
        if done || entries.len() as u64 >= page.total || entries.len() as u32 >= MAX_ENTRIES {
            return Ok(entries);
        }
    }
}

/// `POST /app/entries`: approve, reject, edit, merge, split or undo, then the sheet.
async fn act(
    State(state): State<Arc<AppState>>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(e) = session.check_change(&headers, field(&fields, "csrf")) {
        return refused(e);
    }
    let ctx = &state.ctx;
    let user = &session.user;
    let settings = match ctx.store.settings(user).await {
        Ok(s) => s,
        Err(e) => return failure(e.into()),
    };
    let range = match range(
        ctx,
        user,
        field(&fields, "view"),
        field(&fields, "date"),
        &settings,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let action = field(&fields, "action").unwrap_or("");
    let outcome = perform(ctx, user, action, &fields).await;
    let edited = action == "edit" && outcome.is_ok();
    let (flash, undo) = match outcome {
        Ok((message, steps)) => (Flash::Done(message), undo::encode(&steps)),
        // A failed action changed nothing: the last one can still be undone.
        Err(message) => (
            Flash::Failed(message),
            field(&fields, "undo").map(str::to_owned),
        ),
    };
    let entries = match week(ctx, user, range).await {
        Ok(e) => e,
        Err(e) => return failure(e),
    };
    let sheet = Sheet {
        range,
        entries: &entries,
        settings: &settings,
        flash: Some(flash),
        undo,
        close_panel: edited,
    };
    no_store(view::sheet(&sheet, &session.csrf, &FORMATS).into_response())
}

/// Runs one action through the tools; the message for the person and the undo steps.
async fn perform(
    ctx: &Context,
    user: &UserId,
    action: &str,
    fields: &Fields,
) -> Result<(String, Vec<undo::Step>), String> {
    let ids: Vec<String> = fields
        .iter()
        .filter(|(k, v)| k == "ids" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    let say = |e: Error| e.to_string();
    let nothing_selected =
        || "Select an entry first: move to it with j/k, or tick it with x.".to_owned();
    match action {
        "approve" | "reject" | "edit" => {
            if ids.is_empty() {
                return Err(nothing_selected());
            }
            let before = ctx
                .store
                .entries_by_id(user, &ids)
                .await
                .map_err(|e| say(e.into()))?;
            let changes = match action {
                "approve" => tools::update::Changes {
                    status: Some(EntryStatus::Approved),
                    ..Default::default()
                },
                "reject" => tools::update::Changes {
                    status: Some(EntryStatus::Rejected),
                    ..Default::default()
                },
                _ => edits(fields, before.first())?,
            };
            if action == "edit" && is_unchanged(&changes) {
                return Ok(("Nothing changed.".to_owned(), Vec::new()));
            }
            let steps = undo::of_update(&before, &changes);
            let out = tools::run::<tools::update::UpdateTimeEntries>(
                ctx,
                user,
                tools::update::Args { ids, changes },
                &NoProgress,
            )
            .await
            .map_err(say)?;
            let n = out.updated;
            let what = match action {
                "approve" => "Approved",
                "reject" => "Rejected",
                _ => "Saved",
            };
            Ok((
                format!("{what} {n} {}.", plural(n, "entry", "entries")),
                steps,
            ))
        }
        "merge" => {
            if ids.len() < 2 {
                return Err("Select two or more entries of one client and matter to merge (x ticks an entry).".to_owned());
            }
            let out = tools::run::<tools::merge::MergeTimeEntries>(
                ctx,
                user,
                tools::merge::MergeArgs {
                    ids,
                    description: None,
                    work_date: None,
                },
                &NoProgress,
            )
            .await
            .map_err(say)?;
            let n = out.merged.len() as u64;
            Ok((
                format!(
                    "Merged {n} entries into one of {} min.",
                    out.entry.billed_minutes
                ),
                undo::of_merge(&out),
            ))
        }
        "split" => {
            let [id] = ids.as_slice() else {
                return Err("Select one merged entry to split.".to_owned());
            };
            let before = ctx
                .store
                .entries_by_id(user, std::slice::from_ref(id))
                .await
                .map_err(|e| say(e.into()))?;
            let out = tools::run::<tools::merge::SplitTimeEntry>(
                ctx,
                user,
                tools::merge::SplitArgs { id: id.clone() },
                &NoProgress,
            )
            .await
            .map_err(say)?;
            let steps = before
                .first()
                .map(|merged| undo::of_split(merged, &out.entries))
                .unwrap_or_default();
            Ok((format!("Split into {} entries.", out.entries.len()), steps))
        }
        "undo" => {
            let steps = undo::decode(field(fields, "undo").unwrap_or(""))?;
            for step in steps {
                tools::call(ctx, user, &step.tool, step.args, &NoProgress)
                    .await
                    .map_err(|e| format!("Could not undo: {e}"))?;
            }
            Ok(("Undone.".to_owned(), Vec::new()))
        }
        "" => Err("Choose an action.".to_owned()),
        other => Err(format!(
            "Unknown action `{}`.",
            other.chars().take(40).collect::<String>()
        )),
    }
}

/// Whether an edit changes nothing (the form was saved as it was).
fn is_unchanged(c: &tools::update::Changes) -> bool {
    c.status.is_none()
        && c.client.is_none()
        && c.matter.is_none()
        && c.description.is_none()
        && c.billed_minutes.is_none()
        && c.work_date.is_none()
        && c.billable.is_none()
        && c.task_code.is_none()
        && c.activity_code.is_none()
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// The edit form's fields that differ from the entry as it is.
fn edits(fields: &Fields, entry: Option<&TimeEntry>) -> Result<tools::update::Changes, String> {
    let entry = entry.ok_or("That entry no longer exists; reload the page.")?;
    let text = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let changed = |new: Option<String>, old: Option<&str>| {
        new.filter(|n| Some(n.as_str()) != old.or(Some("")))
    };
    let billed_minutes = match text("minutes").filter(|m| !m.is_empty()) {
        Some(m) => {
            let minutes: u32 = m.parse().map_err(|_| {
                format!(
                    "Minutes must be a whole number, 0 or more; got `{}`.",
                    m.chars().take(20).collect::<String>()
                )
            })?;
            (minutes != entry.billed_minutes).then_some(minutes)
        }
        None => None,
    };
    Ok(tools::update::Changes {
        billed_minutes,
        description: changed(text("description"), Some(&entry.description)),
        client: changed(text("client"), entry.client.as_deref()).filter(|c| !c.is_empty()),
        matter: changed(text("matter"), entry.matter.as_deref()),
        task_code: changed(text("task_code"), entry.task_code.as_deref()),
        activity_code: changed(text("activity_code"), entry.activity_code.as_deref()),
        ..Default::default()
    })
}

/// `GET /app/entries/{id}/source`: the message an entry came from, in the side panel.
async fn source(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let ctx = &state.ctx;
    let user = &session.user;
    let entry = match one_entry(ctx, user, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let parts = if entry.analyzer == tools::merge::MERGED {
        ctx.store
            .merged_parts(user, &entry.id)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let message = if parts.is_empty() {
        message(ctx, user, &entry.message_id).await
    } else {
        Err("A merged entry has no single message: its parts are listed above.".to_owned())
    };
    no_store(
        view::source_panel(&entry, message.as_ref().map_err(Clone::clone), &parts).into_response(),
    )
}

async fn one_entry(ctx: &Context, user: &UserId, id: &str) -> Result<TimeEntry, Response> {
    match ctx.store.entries_by_id(user, &[id.to_owned()]).await {
        Ok(found) => found.into_iter().next().ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                "No such entry; it may have been merged or removed. Reload the page.",
            )
                .into_response()
        }),
        Err(e) => Err(failure(e.into())),
    }
}

/// The message as text, with the analyzer's reasons (analyzed again, not saved).
async fn message(ctx: &Context, user: &UserId, message_id: &str) -> Result<view::Message, String> {
    let unavailable = |e: String| format!("The message could not be read from the mailbox: {e}");
    let raw = ctx
        .source(user)
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .get(message_id)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let email = crate::mail::parse::parse_email(&raw).map_err(|e| unavailable(e.to_string()))?;
    // The analyze tool's own analysis of the message read above, not saved.
    let reasons = tools::analyze::of_email(ctx, user, &email, false)
        .await
        .map(|a| a.reasons)
        .unwrap_or_default();
    Ok(view::Message {
        from: email
            .from
            .map(|a| match a.name {
                Some(name) => format!("{name} <{}>", a.email),
                None => a.email,
            })
            .unwrap_or_default(),
        subject: email.subject,
        date: email.date.map(|d| d.to_rfc2822()).unwrap_or_default(),
        text: email.new_text,
        reasons,
    })
}

/// `GET /app/entries/{id}/edit`: the edit form, in the side panel.
async fn edit(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<View>,
) -> Response {
    let ctx = &state.ctx;
    let entry = match one_entry(ctx, &session.user, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let settings = match ctx.store.settings(&session.user).await {
        Ok(s) => s,
        Err(e) => return failure(e.into()),
    };
    let range = Range {
        span: Span::parse(q.view.as_deref()),
        date: q
            .date
            .as_deref()
            .and_then(|d| WorkDate::parse(d).ok())
            .unwrap_or(entry.work_date),
    };
    no_store(view::edit_panel(&entry, range, &settings).into_response())
}

/// `POST /app/scan`: scans the mailbox, streaming progress as server-sent events
/// (`progress`, then `result` or `error`), as `/v1` does.
async fn scan(
    State(state): State<Arc<AppState>>,
    session: Session,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = session.check_change(&headers, None) {
        return refused(e);
    }
    let ctx = state.ctx.clone();
    super::tools::events(move |sink| async move {
        let progress = sink.progress(None);
        tools::call(
            &ctx,
            &session.user,
            "scan_billable_time",
            // The page shows this scan's progress live, so it runs in this request.
            json!({ "background": false }),
            &progress,
        )
        .await
        .map_err(super::ApiError::from)
    })
}

#[derive(Deserialize)]
struct ExportForm {
    csrf: Option<String>,
    format: String,
    client: Option<String>,
    from: Option<String>,
    to: Option<String>,
    invoice_number: Option<String>,
    invoice_date: Option<String>,
    dry_run: Option<String>,
}

/// `POST /app/export`: the export tool's file, as a download.
async fn export(
    State(state): State<Arc<AppState>>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<ExportForm>,
) -> Response {
    if let Err(e) = session.check_change(&headers, form.csrf.as_deref()) {
        return refused(e);
    }
    let blank = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut args = Map::new();
    args.insert("format".into(), json!(form.format));
    if let Some(client) = blank(form.client) {
        args.insert("client".into(), json!(client));
    }
    if let Some(from) = blank(form.from) {
        args.insert("from".into(), json!(from));
    }
    if let Some(to) = blank(form.to) {
        args.insert("to".into(), json!(to));
    }
    let mut invoice = Map::new();
    if let Some(n) = blank(form.invoice_number) {
        invoice.insert("number".into(), json!(n));
    }
    if let Some(d) = blank(form.invoice_date) {
        invoice.insert("date".into(), json!(d));
    }
    if !invoice.is_empty() {
        args.insert("invoice".into(), Value::Object(invoice));
    }
    if blank(form.dry_run).is_some() {
        args.insert("dry_run".into(), json!(true));
    }
    let out = match tools::call(
        &state.ctx,
        &session.user,
        "export_time_entries",
        Value::Object(args),
        &NoProgress,
    )
    .await
    {
        Ok(out) => out,
        Err(e) => return failure(e),
    };
    let text = |key: &str| out[key].as_str().unwrap_or("").to_owned();
    let disposition = format!(
        "attachment; filename=\"{}\"",
        text("filename").replace(['"', '\\', '\r', '\n'], "_")
    );
    let content_type = if text("format") == Format::Ledes1998b.as_str() {
        "text/plain; charset=utf-8"
    } else {
        "text/csv; charset=utf-8"
    };
    let mut r = text("content").into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    no_store(r)
}

/// `GET /app/settings`.
async fn settings_page(State(state): State<Arc<AppState>>, session: Session) -> Response {
    match settings_fields(&state.ctx, &session.user).await {
        Ok((fields, _)) => no_store(view::settings(&fields, &session.csrf, None).into_response()),
        Err(e) => failure(e),
    }
}

/// The current settings as form fields, and as JSON.
async fn settings_fields(
    ctx: &Context,
    user: &UserId,
) -> Result<(Vec<view::Field>, Map<String, Value>), Error> {
    let current = tools::call(
        ctx,
        user,
        "configure_time_tracking",
        Value::Null,
        &NoProgress,
    )
    .await?;
    let current = match current {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let help = settings_help();
    let fields = current
        .iter()
        .map(|(key, value)| {
            let (text, multiline) = view::field_text(value);
            view::Field {
                key: key.clone(),
                help: help
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                text,
                multiline,
            }
        })
        .collect();
    Ok((fields, current))
}

/// Each setting's description, from the configure tool's own schema (computed once).
fn settings_help() -> &'static Map<String, Value> {
    static HELP: LazyLock<Map<String, Value>> = LazyLock::new(help_of_schema);
    &HELP
}

fn help_of_schema() -> Map<String, Value> {
    let schema = tools::find("configure_time_tracking")
        .map(|t| t.parameters())
        .unwrap_or_default();
    schema["properties"]["settings"]["anyOf"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s.get("properties").is_some()))
        .or(Some(&schema["properties"]["settings"]))
        .and_then(|s| s["properties"].as_object())
        .map(|props| {
            props
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.get("description").cloned().unwrap_or(Value::Null),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /app/settings`: the changed fields, through `configure_time_tracking`.
async fn save_settings(
    State(state): State<Arc<AppState>>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(e) = session.check_change(&headers, field(&fields, "csrf")) {
        return refused(e);
    }
    let ctx = &state.ctx;
    let (mut shown, current) = match settings_fields(ctx, &session.user).await {
        Ok(f) => f,
        Err(e) => return failure(e),
    };
    let flash = match patch(&current, &fields) {
        Err(message) => Flash::Failed(message),
        Ok(patch) if patch.is_empty() => Flash::Done("Nothing changed.".to_owned()),
        Ok(patch) => {
            let keys: Vec<String> = patch.keys().cloned().collect();
            let saved = tools::call(
                ctx,
                &session.user,
                "configure_time_tracking",
                json!({ "settings": patch }),
                &NoProgress,
            )
            .await;
            match saved {
                Ok(_) => match settings_fields(ctx, &session.user).await {
                    Ok((now, _)) => {
                        shown = now;
                        Flash::Done(format!("Saved: {}.", keys.join(", ").replace('_', " ")))
                    }
                    Err(e) => return failure(e),
                },
                Err(e) => Flash::Failed(e.to_string()),
            }
        }
    };
    let failed = matches!(flash, Flash::Failed(_));
    if failed {
        // Keep what the person typed, so they can fix it.
        for f in &mut shown {
            if let Some(typed) = fields.iter().find(|(k, _)| *k == f.key) {
                f.text = typed.1.replace("\r\n", "\n");
            }
        }
    }
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    no_store((status, view::settings(&shown, &session.csrf, Some(flash))).into_response())
}

/// The settings patch of the fields that differ from `current`, each read back as the
/// kind of value it was shown as.
fn patch(current: &Map<String, Value>, fields: &Fields) -> Result<Map<String, Value>, String> {
    let mut patch = Map::new();
    for (key, old) in current {
        let Some((_, typed)) = fields.iter().find(|(k, _)| k == key) else {
            continue;
        };
        let typed = typed.replace("\r\n", "\n");
        let (shown, _) = view::field_text(old);
        if typed.trim() == shown.trim() {
            continue;
        }
        let value = match old {
            Value::Array(items) if items.iter().all(Value::is_string) => Value::Array(
                typed
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| json!(l))
                    .collect(),
            ),
            Value::Array(_) | Value::Object(_) => serde_json::from_str(&typed).map_err(|e| {
                format!("invalid setting `{key}`: not valid JSON ({e}); write it as `billable configure` takes it")
            })?,
            Value::Number(_) | Value::Bool(_) => serde_json::from_str(typed.trim()).unwrap_or_else(|_| json!(typed.trim())),
            Value::Null | Value::String(_) => json!(typed.trim()),
        };
        patch.insert(key.clone(), value);
    }
    Ok(patch)
}

#[derive(Deserialize)]
struct LoginQuery {
    ended: Option<String>,
}

async fn login_page(State(state): State<Arc<AppState>>, Query(q): Query<LoginQuery>) -> Response {
    let ended = q
        .ended
        .is_some()
        .then_some("Your session has ended; sign in again.");
    no_store(view::login(ended, matches!(state.auth, super::Auth::Supabase(_))).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /app/login`: checks the token as the API would, then keeps it in the cookie.
async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(e) = session::check_change(&headers, None, None) {
        return refused(e);
    }
    let supabase = matches!(state.auth, super::Auth::Supabase(_));
    let token = form.token.trim();
    let refuse = |message: &str| {
        no_store(
            (
                StatusCode::UNAUTHORIZED,
                view::login(Some(message), supabase),
            )
                .into_response(),
        )
    };
    if !session::cookie_safe(token) {
        return refuse("That is not an access token: paste the whole token, without spaces.");
    }
    match state
        .auth
        .authenticate(Some(&format!("Bearer {token}")))
        .await
    {
        Ok(_) => {
            let mut r = Redirect::to("/app").into_response();
            match session::sign_in_cookie(token, &headers) {
                Some(cookie) => {
                    r.headers_mut().insert(header::SET_COOKIE, cookie);
                    no_store(r)
                }
                None => refuse("That token cannot be kept in a session cookie."),
            }
        }
        Err(e) => refuse(&format!("Sign-in failed: {e}")),
    }
}

/// `POST /app/logout`: forgets the session.
async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    // Signed out already, or a forged request: a forgery is refused, else the cookie goes.
    if let Ok(session) = signed_in(&state, &headers).await
        && let Err(e) = session.check_change(&headers, field(&fields, "csrf"))
    {
        return refused(e);
    }
    let mut r = Redirect::to("/app/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::sign_out_cookie(&headers));
    no_store(r)
}

/// The vendored and own assets, compiled into the binary.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &'static str) = match file.as_str() {
        "htmx.min.js" => (
            include_bytes!("../../../assets/vendor/htmx/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.js" => (
            include_bytes!("../../../assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.css" => (
            include_bytes!("../../../assets/app.css"),
            "text/css; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
