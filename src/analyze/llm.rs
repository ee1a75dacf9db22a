//! The `llm` analyzer: an OpenAI-compatible chat model (async-openai) reads what the
//! rules cannot — whether a message is substantive work, which of its clients it is
//! about, a description a client would accept — while the rules stay the floor.
//!
//! How a call to [`Analyzer::analyze_each`] goes (`analyze` collects it):
//! 1. The rules analyze every message first. Calendar messages and messages the rules
//!    find no client or date for keep the rules result, handed over at once (and
//!    given by `analyze_now`, so a scan saves them before asking anything): the model
//!    could only name a client the message is from or to, and the rules looked.
//! 2. The rest are grouped into requests of up to `max_batch` messages, spread so that
//!    every concurrency slot is used, each message with an index the model echoes;
//!    each request's results are handed over as its answer arrives. A request that
//!    would not fit the model's context (`LLM_CONTEXT_TOKENS`, llama.cpp's `/props`,
//!    or the size a context error named) is split first; one that times out or
//!    overflows is split in halves down to one message, which then falls back.
//! 3. Requests run concurrently under a semaphore (`LLM_CONCURRENCY`), after the
//!    requests/minute and tokens/minute limiters (governor) let them through, and are
//!    retried with jittered exponential backoff (backon) that waits at least what the
//!    server asked for (`retry-after`, `retry-after-ms`, `x-ratelimit-reset-*`). A
//!    refused response format moves to the next [`Format`] without a retry. 400,
//!    401, 403 and insufficient_quota are not retried: they, or retries running out,
//!    make every message of the request `AnalyzeError::Unavailable`, so the scan stops
//!    with what was done saved and resumes later.
//! 4. Each answer is checked ([`answer::check`]); messages with a missing or invalid
//!    answer are asked once more, then fall back to the rules result flagged
//!    needs_review.
//!
//! Injection defences: mail is wrapped in per-request random delimiters and described
//! as untrusted data; the request carries no tools; the answer is data that is
//! validated and clamped (minutes never above the rules estimate, the client one the
//! message is from or to), and nothing in it can trigger an action.

pub mod answer;
pub mod http;
pub mod prompt;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{CreateChatCompletionResponse, FinishReason};
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;

use self::answer::Verdict;
use self::http::{Failure, Transport};
use self::prompt::Item;
use super::{
    Analysis, AnalyzeError, Analyzer, Count, DoneTx, Meter, Outcome, duration, matter, rules,
};
use crate::config::{LlmConfig, ResponseFormatChoice};
use crate::domain::{Address, Email, EntryStatus, Settings, TimeEntry, WorkDate};
use crate::limits::{Limit, Rate, SharedRates};

/// Token counts of the requests made so far (from the server's `usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Messages the model was asked about (a message asked twice counts twice).
    pub messages: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    messages: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// The response formats, in the order they are tried when a server refuses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named as the wire spells them
enum Format {
    /// Structured outputs: `json_schema`, strict.
    JsonSchema,
    /// llama.cpp's and llama-cpp-python's JSON mode with a schema: `json_object` +
    /// `schema`, which their grammars enforce.
    JsonObjectSchema,
    /// Plain JSON mode; the schema is in the system prompt.
    JsonObject,
}

impl Format {
    fn from_u8(v: u8) -> Format {
        match v {
            0 => Format::JsonSchema,
            1 => Format::JsonObjectSchema,
            _ => Format::JsonObject,
        }
    }

    fn next(self) -> Option<Format> {
        match self {
            Format::JsonSchema => Some(Format::JsonObjectSchema),
            Format::JsonObjectSchema => Some(Format::JsonObject),
            Format::JsonObject => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::JsonSchema => "json_schema",
            Format::JsonObjectSchema => "json_object with a schema",
            Format::JsonObject => "json_object",
        }
    }
}

/// Optional request parameters a server may refuse by name (OpenAI's reasoning
/// models refuse `max_tokens` and a `temperature` of 0); one refused is left out from
/// then on.
const OPTIONAL_PARAMS: [&str; 2] = ["max_tokens", "temperature"];

pub struct LlmAnalyzer {
    client: Client<OpenAIConfig>,
    /// llama.cpp's `/props`, where the context size is read, for a server other
    /// than OpenAI's.
    props_url: Option<String>,
    model: String,
    concurrency: usize,
    max_batch: usize,
    max_retries: usize,
    timeout: Duration,
    permits: Arc<Semaphore>,
    /// Requests and tokens per minute: the account's, per model, shared by every
    /// process when the deployment shares its limits.
    rpm: Option<Limit>,
    tpm: Option<Limit>,
    /// The [`Format`] in use; it moves on when a server refuses one.
    format: AtomicU8,
    /// The model's context in tokens (configured, read from the server, or learnt from
    /// a context-size error); 0 while unknown.
    context: AtomicU32,
    probed: tokio::sync::OnceCell<()>,
    /// Bit n set: [`OPTIONAL_PARAMS`]`[n]` was refused and is no longer sent.
    refused_params: AtomicU8,
    counters: Counters,
}

/// What one request produced for its messages (by position in the request).
type Replies = Vec<Option<answer::Answer>>;

/// One message's outcome: Ok(verdict) | Err(Ok(why the rules result is used)) |
/// Err(Err(why the analyzer is unavailable)).
type Settled = Result<Verdict, Result<String, String>>;

impl LlmAnalyzer {
    pub fn new(config: &LlmConfig) -> Result<Self, AnalyzeError> {
        if !config.is_configured() {
            return Err(AnalyzeError::Unavailable(
                "the llm analyzer needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (another OpenAI-compatible server); or use --analyzer rules".to_owned(),
            ));
        }
        let mut openai = OpenAIConfig::new().with_api_key(
            config
                .api_key
                .as_ref()
                .map(|k| k.expose().to_owned())
                .unwrap_or_default(),
        );
        if let Some(base) = &config.base_url {
            openai = openai.with_api_base(base.trim_end_matches('/'));
        }
        let transport =
            Transport::new(config.request_timeout).map_err(AnalyzeError::Unavailable)?;
        let client = Client::with_config(openai).with_http_service(transport);
        // Bursts of one second's requests and ten seconds' tokens: servers enforce their
        // per-minute limits over shorter windows too, so a whole minute at once would
        // bounce off 429s.
        let limit = |what: &str, per_minute: Option<u32>, burst_divisor: u32| {
            let per_minute = per_minute?;
            let rate = Rate::per_minute(per_minute, per_minute / burst_divisor)?;
            Some(Limit::new(
                format!("llm:{what}:{}", config.model),
                rate,
                None,
            ))
        };
        let props_url = config.base_url.as_ref().map(|b| {
            let root = b.trim_end_matches('/');
            format!("{}/props", root.strip_suffix("/v1").unwrap_or(root))
        });
        Ok(LlmAnalyzer {
            client,
            props_url: props_url.filter(|_| config.context_tokens.is_none()),
            model: config.model.clone(),
            concurrency: config.concurrency.max(1),
            max_batch: config.max_batch.max(1),
            max_retries: config.max_retries,
            timeout: config.request_timeout,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            rpm: limit("requests", config.rpm, 60),
            tpm: limit("tokens", config.tpm, 6),
            format: AtomicU8::new(match config.response_format {
                ResponseFormatChoice::JsonSchema => Format::JsonSchema as u8,
                ResponseFormatChoice::JsonObject => Format::JsonObject as u8,
            }),
            context: AtomicU32::new(config.context_tokens.unwrap_or(0)),
            probed: tokio::sync::OnceCell::new(),
            refused_params: AtomicU8::new(0),
            counters: Counters::default(),
        })
    }

    /// Charges the requests and tokens per minute to the deployment's shared buckets.
    pub fn with_shared_rates(mut self, shared: Option<Arc<dyn SharedRates>>) -> Self {
        self.rpm = self.rpm.map(|l| l.with_shared(shared.clone()));
        self.tpm = self.tpm.map(|l| l.with_shared(shared));
        self
    }

    /// Requests and tokens so far.
    pub fn usage(&self) -> Usage {
        let c = &self.counters;
        Usage {
            requests: c.requests.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: c.completion_tokens.load(Ordering::Relaxed),
        }
    }

    /// How many requests `n` messages become: at most `max_batch` each, and when more
    /// than one wave is needed, a whole number of waves so no slot idles.
    fn request_count(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let needed = n.div_ceil(self.max_batch);
        let waves = needed.div_ceil(self.concurrency);
        if waves <= 1 {
            needed
        } else {
            (waves * self.concurrency).min(n)
        }
    }

    fn format(&self) -> Format {
        Format::from_u8(self.format.load(Ordering::Relaxed))
    }

    /// The model's context in tokens, when known: configured, learnt, or read once
    /// from llama.cpp's `/props` (`default_generation_settings.n_ctx`, the context of
    /// one slot).
    async fn context(&self) -> Option<u32> {
        if let Some(url) = &self.props_url {
            self.probed
                .get_or_init(|| async {
                    if let Some(n) = read_props(url).await {
                        tracing::info!(context = n, "the LLM server's context size");
                        let _ = self.context.compare_exchange(
                            0,
                            n,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                })
                .await;
        }
        Some(self.context.load(Ordering::Relaxed)).filter(|n| *n > 0)
    }

    /// Asks about `items` (one request when they fit the context, else halves), and
    /// the unanswered once more. A batch that times out or overflows the context is
    /// split down to single messages; a single one that still does falls back.
    fn ask<'a>(
        &'a self,
        items: &'a [&'a Item<'a>],
        settings: &'a Settings,
        meter: &'a Meter,
    ) -> futures::future::BoxFuture<'a, Vec<Settled>> {
        Box::pin(async move {
            let mut max_chars = prompt::MAX_TEXT_CHARS;
            if let Some(context) = self.context().await {
                let needed = self.tokens_for(items, settings, max_chars);
                if needed > context {
                    if items.len() > 1 {
                        return self.halves(items, settings, meter).await;
                    }
                    match self.chars_that_fit(items[0], settings, context) {
                        Some(fit) => max_chars = fit,
                        None => {
                            return vec![Err(Ok(format!(
                                "the message does not fit the model's context of {context} tokens"
                            )))];
                        }
                    }
                }
            }
            let mut out: Vec<Option<Settled>> = vec![None; items.len()];
            let mut pending: Vec<usize> = (0..items.len()).collect();
            let mut last_problem = String::new();
            for round in 0..2 {
                let asked: Vec<&Item<'_>> = pending.iter().map(|&p| items[p]).collect();
                let replies = match self.request(&asked, settings, meter, max_chars).await {
                    Ok(r) => r,
                    Err(Failure::BadAnswer(why)) => {
                        last_problem = why;
                        vec![None; asked.len()]
                    }
                    Err(Failure::Timeout | Failure::ContextExceeded { .. }) if asked.len() > 1 => {
                        let settled = self.halves(&asked, settings, meter).await;
                        for (&p, r) in pending.iter().zip(settled) {
                            out[p] = Some(r);
                        }
                        pending.clear();
                        break;
                    }
                    Err(f) => {
                        let settled = match f {
                            Failure::Timeout => Err(Ok(format!(
                                "the model took longer than LLM_TIMEOUT_SECS ({} s) for this message alone",
                                self.timeout.as_secs()
                            ))),
                            Failure::ContextExceeded { why, .. } => Err(Ok(format!(
                                "the message does not fit the model's context ({why})"
                            ))),
                            Failure::Retry { why, .. } => Err(Err(format!(
                                "the LLM kept failing ({why}) after {} retries",
                                self.max_retries
                            ))),
                            Failure::Fatal(why) | Failure::BadAnswer(why) => Err(Err(why)),
                            Failure::NoStructuredOutputs(why) => Err(Err(format!(
                                "the LLM server refused every response format ({why}); use a server with JSON mode or --analyzer rules"
                            ))),
                        };
                        for &p in &pending {
                            out[p] = Some(settled.clone());
                        }
                        pending.clear();
                        break;
                    }
                };
                let mut still = Vec::new();
                for (k, &p) in pending.iter().enumerate() {
                    let checked = match replies.get(k).cloned().flatten() {
                        Some(a) => answer::check(&a, items[p], settings),
                        None => Err(if last_problem.is_empty() {
                            "no answer for this message".to_owned()
                        } else {
                            last_problem.clone()
                        }),
                    };
                    match checked {
                        Ok(v) => out[p] = Some(Ok(v)),
                        Err(why) if round == 0 => {
                            tracing::debug!(message = %items[p].email.id, %why, "asking the model again");
                            still.push(p);
                        }
                        Err(why) => out[p] = Some(Err(Ok(why))),
                    }
                }
                pending = still;
                if pending.is_empty() {
                    break;
                }
            }
            out.into_iter()
                .map(|o| o.unwrap_or_else(|| Err(Ok("no answer for this message".to_owned()))))
                .collect()
        })
    }

    /// [`LlmAnalyzer::ask`] about each half of `items`, side by side.
    async fn halves(
        &self,
        items: &[&Item<'_>],
        settings: &Settings,
        meter: &Meter,
    ) -> Vec<Settled> {
        let (a, b) = items.split_at(items.len() / 2);
        let (a, b) = futures::join!(self.ask(a, settings, meter), self.ask(b, settings, meter));
        a.into_iter().chain(b).collect()
    }

    /// The tokens a request about `items` may take, prompt and answer, with a tenth
    /// more for the estimate's error.
    fn tokens_for(&self, items: &[&Item<'_>], settings: &Settings, max_chars: usize) -> u32 {
        let schema = self.schema_in_prompt(items);
        let system = prompt::system(settings, schema.as_ref());
        let user = prompt::user(items, "00000000000000000000000000000000", max_chars);
        let prompt = prompt::estimate_tokens(&system) + prompt::estimate_tokens(&user);
        prompt + prompt / 10 + answer_tokens(items.len())
    }

    /// How much of a lone message's text fits `context`, or None when too little would.
    fn chars_that_fit(&self, item: &Item<'_>, settings: &Settings, context: u32) -> Option<usize> {
        let bare = self.tokens_for(&[item], settings, 0);
        let text_tokens = prompt::estimate_tokens(&item.email.new_text).max(1);
        let room = context.checked_sub(bare)?;
        let chars = item.email.new_text.chars().count() as u64 * u64::from(room)
            / u64::from(text_tokens + text_tokens / 10);
        let chars = usize::try_from(chars)
            .unwrap_or(usize::MAX)
            .min(prompt::MAX_TEXT_CHARS);
        (chars >= 200).then_some(chars)
    }

    fn schema_in_prompt(&self, items: &[&Item<'_>]) -> Option<serde_json::Value> {
        (self.format() != Format::JsonSchema).then(|| schema_for(items, false))
    }

    /// Sends one request (with rate limits, the concurrency bound and retries) and
    /// returns the answers by position. A server that refuses the response format
    /// gets the next one, and one that refuses an optional parameter gets none, at no
    /// cost in retries.
    async fn request(
        &self,
        items: &[&Item<'_>],
        settings: &Settings,
        meter: &Meter,
        max_chars: usize,
    ) -> Result<Replies, Failure> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let user = prompt::user(items, &nonce, max_chars);
        let max_out = answer_tokens(items.len());
        let single = items.len() == 1;
        let user = &user;
        let attempt = || async move {
            loop {
                let format = self.format();
                let schema = schema_for(items, format == Format::JsonObjectSchema);
                let system =
                    prompt::system(settings, (format != Format::JsonSchema).then_some(&schema));
                let tokens =
                    prompt::estimate_tokens(&system) + prompt::estimate_tokens(user) + max_out;
                self.wait_for_limits(tokens).await;
                let body = self.chat_body(&system, user, max_out, format, schema);
                let response: Result<CreateChatCompletionResponse, _> = {
                    let _permit =
                        self.permits.acquire().await.map_err(|_| {
                            Failure::Fatal("the analyzer is shutting down".to_owned())
                        })?;
                    self.counters.requests.fetch_add(1, Ordering::Relaxed);
                    meter.add(Count::Requests, 1);
                    self.client.chat().create_byot(body).await
                };
                let response = match response {
                    Ok(r) => r,
                    Err(e) => match Failure::from_openai(e) {
                        Failure::NoStructuredOutputs(why) => match format.next() {
                            Some(next) => {
                                tracing::warn!(
                                    "the LLM server refused {} ({why}); using {}",
                                    format.label(),
                                    next.label()
                                );
                                let _ = self.format.compare_exchange(
                                    format as u8,
                                    next as u8,
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                );
                                continue;
                            }
                            None => return Err(Failure::NoStructuredOutputs(why)),
                        },
                        Failure::Fatal(why) if self.drop_refused_param(&why) => continue,
                        Failure::Timeout => {
                            meter.add(Count::TimedOut, 1);
                            return Err(Failure::Timeout);
                        }
                        Failure::ContextExceeded { context, why } => {
                            if let Some(n) = context {
                                self.context.store(n, Ordering::Relaxed);
                            }
                            return Err(Failure::ContextExceeded { context, why });
                        }
                        other => return Err(other),
                    },
                };
                return self.read_reply(response, items.len(), meter);
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.max_retries)
            .with_jitter();
        attempt
            .retry(backoff)
            // A lone message that timed out is sent again; a batch is split instead.
            .when(|f| f.is_retryable() || (single && matches!(f, Failure::Timeout)))
            .adjust(|f, next| match f {
                // Never sooner than the server asked.
                Failure::Retry {
                    after: Some(after), ..
                } => next.map(|d| d.max(*after)),
                _ => next,
            })
            .notify(|f, d| tracing::info!("LLM request failed ({f:?}); retrying in {d:?}"))
            .await
    }

    /// The answers of a reply by position; a reply cut off at the token cap keeps its
    /// complete items.
    fn read_reply(
        &self,
        response: CreateChatCompletionResponse,
        n: usize,
        meter: &Meter,
    ) -> Result<Replies, Failure> {
        self.counters
            .messages
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(u) = &response.usage {
            let (p, c) = (u64::from(u.prompt_tokens), u64::from(u.completion_tokens));
            self.counters.prompt_tokens.fetch_add(p, Ordering::Relaxed);
            self.counters
                .completion_tokens
                .fetch_add(c, Ordering::Relaxed);
            meter.add(Count::PromptTokens, p);
            meter.add(Count::CompletionTokens, c);
        }
        let Some(choice) = response.choices.into_iter().next() else {
            return Err(Failure::BadAnswer("the reply has no choices".to_owned()));
        };
        let Some(content) = choice.message.content else {
            return Err(Failure::BadAnswer(match choice.message.refusal {
                Some(r) => format!(
                    "the model refused: {}",
                    r.chars().take(100).collect::<String>()
                ),
                None => "the reply has no content".to_owned(),
            }));
        };
        let mut by_index = if choice.finish_reason == Some(FinishReason::Length) {
            let kept = answer::salvage(&content);
            if kept.is_empty() {
                return Err(Failure::BadAnswer(
                    "the answer was cut off at the token cap (finish_reason length)".to_owned(),
                ));
            }
            kept
        } else {
            answer::parse(&content).map_err(Failure::BadAnswer)?
        };
        Ok((0..n).map(|i| by_index.remove(&i)).collect())
    }

    /// Whether `why` (a 400) names an optional parameter still sent; if so it is left
    /// out from now on.
    fn drop_refused_param(&self, why: &str) -> bool {
        let refused = self.refused_params.load(Ordering::Relaxed);
        for (bit, name) in OPTIONAL_PARAMS.iter().enumerate() {
            if refused & (1 << bit) == 0 && why.contains(name) {
                tracing::warn!("the LLM server refused `{name}`; no longer sending it");
                self.refused_params.fetch_or(1 << bit, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    async fn wait_for_limits(&self, tokens: u32) {
        if let Some(rpm) = &self.rpm {
            rpm.until_ready(1).await;
        }
        if let Some(tpm) = &self.tpm {
            // A request larger than a burst waits for a whole burst.
            tpm.until_ready(tokens).await;
        }
    }

    /// The request body, keys in the order written (serde_json keeps it): no tools,
    /// so nothing in an answer can call anything; `temperature` 0, and the answer cap
    /// as both `max_completion_tokens` and `max_tokens`, since servers read one or
    /// the other.
    fn chat_body(
        &self,
        system: &str,
        user: &str,
        max_out: u32,
        format: Format,
        schema: serde_json::Value,
    ) -> serde_json::Value {
        let response_format = match format {
            Format::JsonSchema => json!({
                "type": "json_schema",
                "json_schema": {
                    "name": "time_entries",
                    "description": "time entry analysis",
                    "schema": schema,
                    "strict": true,
                },
            }),
            Format::JsonObjectSchema => json!({"type": "json_object", "schema": schema}),
            Format::JsonObject => json!({"type": "json_object"}),
        };
        let mut body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "max_completion_tokens": max_out,
            "max_tokens": max_out,
            "temperature": 0,
            "response_format": response_format,
            "stream": false,
        });
        let refused = self.refused_params.load(Ordering::Relaxed);
        if let Some(map) = body.as_object_mut() {
            for (bit, name) in OPTIONAL_PARAMS.iter().enumerate() {
                if refused & (1 << bit) != 0 {
                    map.remove(*name);
                }
            }
        }
        body
    }

    fn build_item<'e>(&self, email: &'e Email, entry: &TimeEntry, settings: &Settings) -> Item<'e> {
        let owner_sent = rules::is_from_owner(email, settings);
        let mut candidates: Vec<String> = entry.client.iter().cloned().collect();
        // For received mail the counterpart is the sender (SPEC §4): a client in To or
        // Cc is no answer the model may give.
        let people: Vec<&Address> = if owner_sent {
            email
                .from
                .iter()
                .chain(&email.to)
                .chain(&email.cc)
                .collect()
        } else {
            email.from.iter().collect()
        };
        for a in people.into_iter().filter(|a| !settings.is_mine(&a.email)) {
            if let Some(m) = rules::client_for_address(a, settings)
                && !candidates.contains(&m.client.name)
            {
                candidates.push(m.client.name.clone());
            }
        }
        Item {
            email,
            owner_sent,
            candidates,
            estimate: entry.duration_minutes,
            date: entry.work_date.0,
        }
    }

    fn finish(
        &self,
        email: &Email,
        rules_analysis: &Analysis,
        verdict: Verdict,
        settings: &Settings,
    ) -> Analysis {
        let mut reasons = rules_analysis.reasons.clone();
        let Outcome::Entry(base) = &rules_analysis.outcome else {
            return rules_analysis.clone();
        };
        match verdict {
            Verdict::NotWork { confidence, why } if confidence < settings.min_confidence => {
                // Not sure enough to drop what the rules found: flag it instead.
                let mut e = base.clone();
                e.status = EntryStatus::NeedsReview;
                reasons.insert(
                    0,
                    format!(
                        "the model doubts this is billable work ({why}), with confidence {confidence} below your minimum {}, so it needs review",
                        settings.min_confidence
                    ),
                );
                Analysis {
                    message_id: rules_analysis.message_id.clone(),
                    outcome: Outcome::Entry(e),
                    reasons,
                    features: rules_analysis.features.clone(),
                }
            }
            Verdict::NotWork { why, .. } => {
                reasons.insert(
                    0,
                    format!(
                        "the model judged this not substantive professional work for the client ({why})"
                    ),
                );
                Analysis {
                    message_id: rules_analysis.message_id.clone(),
                    outcome: Outcome::NotBillable,
                    reasons,
                    features: rules_analysis.features.clone(),
                }
            }
            Verdict::Work {
                client,
                minutes,
                held_from,
                date,
                description,
                confidence,
                why,
            } => {
                let mut e = base.clone();
                let mut switched = false;
                if e.client.as_deref() != Some(client.as_str())
                    && let Some(rule) = settings.clients.iter().find(|c| c.name == client)
                {
                    // What the rules said of the matter and codes was about their
                    // client: said again for the old one, it is found and dropped.
                    if let Some(old) = e.client.as_deref().and_then(|c| settings.client(c)) {
                        let mut said = Vec::new();
                        rules::file(&mut e.clone(), email, settings, old, &mut said);
                        reasons.retain(|r| !said.contains(r));
                    }
                    reasons.push(format!(
                        "the model chose client {client} instead of {}, so it needs review",
                        e.client.as_deref().unwrap_or("none")
                    ));
                    e.client = Some(rule.name.clone());
                    e.hourly_rate = rule.rate(settings);
                    // The matter and the codes are the rules' for the new client: the
                    // model chooses neither.
                    rules::file(&mut e, email, settings, rule, &mut reasons);
                    switched = true;
                }
                let two_matters = settings
                    .clients
                    .iter()
                    .find(|c| e.client.as_deref() == Some(c.name.as_str()))
                    .is_some_and(|rule| {
                        matches!(
                            matter::choose(rule, &email.subject, None),
                            matter::Choice::Ambiguous(_)
                        )
                    });
                if let Some(asked) = held_from {
                    reasons.push(format!(
                        "the model's {asked} min was held to the rules estimate of {} min",
                        (minutes * 10.0).round() / 10.0
                    ));
                }
                e.duration_minutes = (minutes * 10.0).round() / 10.0;
                e.billed_minutes = duration::billed_minutes(minutes, settings);
                e.amount = duration::amount(e.billed_minutes, e.hourly_rate);
                e.work_date = WorkDate(date);
                e.description = description;
                e.confidence = confidence;
                e.status = if confidence < settings.min_confidence {
                    reasons.push(format!(
                        "confidence {confidence} is below your minimum {}, so it needs review",
                        settings.min_confidence
                    ));
                    EntryStatus::NeedsReview
                } else if two_matters || switched {
                    EntryStatus::NeedsReview
                } else if base.status == EntryStatus::NeedsReview {
                    // What the rules held for review (a client only in the quoted
                    // history, an accepted meeting a calendar invitation may bill too)
                    // stays there: the model's agreement is no reason to bill unseen.
                    reasons.push(
                        "the rules held it for review, and the model's agreement does not release it".into(),
                    );
                    EntryStatus::NeedsReview
                } else {
                    EntryStatus::Suggested
                };
                e.analyzer = self.name();
                reasons.insert(
                    0,
                    format!(
                        "the model judged this substantive professional work for {client}: {why}"
                    ),
                );
                Analysis {
                    message_id: rules_analysis.message_id.clone(),
                    outcome: Outcome::Entry(e),
                    reasons,
                    features: rules_analysis.features.clone(),
                }
            }
        }
    }
}

/// Whether the model has anything to add to the rules' analysis `a` of `email`: not
/// for calendar messages, nor for messages the rules find no entry in (the model could
/// only name a client the message is from or to, and the rules already looked).
fn asks_the_model(email: &Email, a: &Analysis) -> bool {
    matches!(a.outcome, Outcome::Entry(_)) && email.calendar.is_none()
}

/// Output tokens allowed for a request about `n` messages.
fn answer_tokens(n: usize) -> u32 {
    prompt::OUTPUT_TOKENS_PER_MESSAGE * u32::try_from(n).unwrap_or(u32::MAX) + 40
}

fn schema_for(items: &[&Item<'_>], lengths: bool) -> serde_json::Value {
    let most = items.iter().map(|i| i.estimate).fold(0.0, f64::max);
    prompt::answer_schema(items.len(), most, lengths)
}

/// llama.cpp's `GET /props`: the context of one slot. Any other answer is None.
async fn read_props(url: &str) -> Option<u32> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let v: serde_json::Value = response.json().await.ok()?;
    v.pointer("/default_generation_settings/n_ctx")
        .or_else(|| v.get("n_ctx"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
}

/// The rules result for a message the model's answer could not be used for.
fn fallback(mut a: Analysis, why: &str) -> Analysis {
    if let Outcome::Entry(e) = &mut a.outcome {
        e.status = EntryStatus::NeedsReview;
    }
    a.reasons.insert(
        0,
        format!(
            "the model's answer was unusable ({why}); the rules result is used and needs review"
        ),
    );
    a
}

#[async_trait]
impl Analyzer for LlmAnalyzer {
    fn name(&self) -> String {
        format!("llm:{}", self.model)
    }

    fn cache_key(&self) -> Option<String> {
        Some(format!("{}:{}", self.name(), prompt::PROMPT_VERSION))
    }

    fn asks_a_model(&self) -> bool {
        true
    }

    async fn analyze(
        &self,
        emails: &[Email],
        settings: &Settings,
        meter: &Meter,
    ) -> Vec<Result<Analysis, AnalyzeError>> {
        super::gathered(emails.len(), |done| {
            self.analyze_each(emails, settings, meter, done)
        })
        .await
    }

    /// The rules results the model has nothing to add to at once, then each request's
    /// messages as its answer arrives.
    async fn analyze_each(
        &self,
        emails: &[Email],
        settings: &Settings,
        meter: &Meter,
        done: DoneTx,
    ) {
        let mut now = Vec::new();
        let mut items = Vec::new();
        let mut positions = Vec::new();
        let mut base = Vec::new();
        for (p, email) in emails.iter().enumerate() {
            let a = rules::analyze(email, settings);
            match &a.outcome {
                Outcome::Entry(entry) if asks_the_model(email, &a) => {
                    items.push(self.build_item(email, entry, settings));
                    positions.push(p);
                    base.push(a);
                }
                _ => now.push((p, Ok(a))),
            }
        }
        if !now.is_empty() && done.send(now).is_err() {
            return;
        }
        let groups = self.request_count(items.len());
        if groups == 0 {
            return;
        }
        // Contiguous groups of nearly equal size.
        let refs: Vec<&Item<'_>> = items.iter().collect();
        let (q, r) = (refs.len() / groups, refs.len() % groups);
        let mut runs = futures::stream::FuturesUnordered::new();
        let mut at = 0;
        for g in 0..groups {
            let len = q + usize::from(g < r);
            let from = at;
            let group = &refs[from..from + len];
            runs.push(async move { (from, self.ask(group, settings, meter).await) });
            at += len;
        }
        while let Some((from, group)) = runs.next().await {
            let mut batch = Vec::with_capacity(group.len());
            for (k, verdict) in group.into_iter().enumerate() {
                let (p, b) = (positions[from + k], &base[from + k]);
                batch.push((
                    p,
                    match verdict {
                        Ok(v) => {
                            meter.add(Count::Answered, 1);
                            Ok(self.finish(&emails[p], b, v, settings))
                        }
                        Err(Ok(why)) => {
                            meter.add(Count::FellBack, 1);
                            Ok(fallback(b.clone(), &why))
                        }
                        Err(Err(why)) => Err(AnalyzeError::Unavailable(why)),
                    },
                ));
            }
            if done.send(batch).is_err() {
                return;
            }
        }
    }

    fn analyze_now(&self, email: &Email, settings: &Settings) -> Option<Analysis> {
        let a = rules::analyze(email, settings);
        (!asks_the_model(email, &a)).then_some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer(concurrency: usize, max_batch: usize) -> LlmAnalyzer {
        LlmAnalyzer::new(&LlmConfig {
            base_url: Some("http://127.0.0.1:9/v1".to_owned()),
            concurrency,
            max_batch,
            ..LlmConfig::default()
        })
        .expect("analyzer")
    }

    #[test]
    fn requests_fill_whole_waves_of_the_concurrency_bound() {
        let a = analyzer(8, 8);
        assert_eq!(a.request_count(0), 0);
        assert_eq!(a.request_count(1), 1);
        // One wave: as few requests as the batch size allows.
        assert_eq!(a.request_count(8), 1);
        assert_eq!(a.request_count(64), 8);
        // More than a wave: a whole number of waves, batches a little smaller.
        assert_eq!(a.request_count(200), 32);
        assert_eq!(a.request_count(256), 32);
        assert_eq!(a.request_count(65), 16);
        let b = analyzer(4, 2);
        assert_eq!(b.request_count(30), 16);
        assert_eq!(b.request_count(9), 8);
    }

    #[test]
    fn the_name_and_cache_key_carry_model_and_prompt_version() {
        let a = analyzer(1, 1);
        assert_eq!(a.name(), "llm:gpt-4.1-mini");
        assert_eq!(
            a.cache_key().as_deref(),
            Some("llm:gpt-4.1-mini:analysis-v2")
        );
    }
}
