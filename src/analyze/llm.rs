//! The `llm` analyzer: an OpenAI-compatible chat model (async-openai) reads what the
//! rules cannot — whether a message is substantive work, which of its clients it is
//! about, a description a client would accept — while the rules stay the floor.
//!
//! How a call to [`LlmAnalyzer::analyze`] goes:
//! 1. The rules analyze every message first. Calendar messages and messages the rules
//!    find no client or date for keep the rules result: the model could only name a
//!    client the message is from or to, and the rules already looked for those.
//! 2. The rest are grouped into requests of up to `max_batch` messages, spread so that
//!    every concurrency slot is used, each message with an index the model echoes.
//! 3. Requests run concurrently under a semaphore (`LLM_CONCURRENCY`), after the
//!    requests/minute and tokens/minute limiters (governor) let them through, and are
//!    retried with jittered exponential backoff (backon) that waits at least what the
//!    server asked for (`retry-after`, `retry-after-ms`, `x-ratelimit-reset-*`). 400,
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

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, FinishReason, ResponseFormat,
    ResponseFormatJsonSchema,
};
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use self::answer::Verdict;
use self::http::{Failure, Transport};
use self::prompt::Item;
use super::{Analysis, AnalyzeError, Analyzer, Outcome, duration, matter, rules};
use crate::config::LlmConfig;
use crate::domain::{Email, EntryStatus, Settings, TimeEntry, WorkDate};

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

pub struct LlmAnalyzer {
    client: Client<OpenAIConfig>,
    model: String,
    concurrency: usize,
    max_batch: usize,
    max_retries: usize,
    permits: Arc<Semaphore>,
    rpm: Option<DefaultDirectRateLimiter>,
    tpm: Option<(DefaultDirectRateLimiter, NonZeroU32)>,
    /// Set once a server rejects `json_schema`; JSON mode from then on.
    json_mode: AtomicBool,
    counters: Counters,
}

/// What one request produced for its messages (by position in the request).
type Replies = Vec<Option<answer::Answer>>;

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
        let quota = |per_minute: u32, burst_divisor: u32| {
            let rate = NonZeroU32::new(per_minute)?;
            let burst = NonZeroU32::new(per_minute / burst_divisor).unwrap_or(NonZeroU32::MIN);
            Some((Quota::per_minute(rate).allow_burst(burst), burst))
        };
        Ok(LlmAnalyzer {
            client,
            model: config.model.clone(),
            concurrency: config.concurrency.max(1),
            max_batch: config.max_batch.max(1),
            max_retries: config.max_retries,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            rpm: config
                .rpm
                .and_then(|n| quota(n, 60))
                .map(|(q, _)| RateLimiter::direct(q)),
            tpm: config
                .tpm
                .and_then(|n| quota(n, 6))
                .map(|(q, burst)| (RateLimiter::direct(q), burst)),
            json_mode: AtomicBool::new(false),
            counters: Counters::default(),
        })
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

    /// One request's messages, asked once and the unanswered once more.
    async fn run_group(
        &self,
        items: &[&Item<'_>],
        settings: &Settings,
    ) -> Vec<Result<Verdict, Result<String, String>>> {
        // Ok(verdict) | Err(Ok(reason to fall back)) | Err(Err(unavailable))
        let mut out: Vec<Option<Result<Verdict, Result<String, String>>>> = vec![None; items.len()];
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut last_problem = String::new();
        for round in 0..2 {
            let asked: Vec<&Item<'_>> = pending.iter().map(|&p| items[p]).collect();
            let replies = match self.request(&asked, settings).await {
                Ok(r) => r,
                Err(Failure::BadAnswer(why)) => {
                    last_problem = why;
                    vec![None; asked.len()]
                }
                Err(f) => {
                    let why = match f {
                        Failure::Retry { why, .. } => format!(
                            "the LLM kept failing ({why}) after {} retries",
                            self.max_retries
                        ),
                        Failure::Fatal(why) => why,
                        Failure::NoStructuredOutputs => {
                            "the LLM server rejected the request format".to_owned()
                        }
                        Failure::BadAnswer(why) => why,
                    };
                    for &p in &pending {
                        out[p] = Some(Err(Err(why.clone())));
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
    }

    /// Sends one request (with rate limits, the concurrency bound and retries) and
    /// returns the answers by position.
    async fn request(&self, items: &[&Item<'_>], settings: &Settings) -> Result<Replies, Failure> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let user = prompt::user(items, &nonce);
        let max_out =
            prompt::OUTPUT_TOKENS_PER_MESSAGE * u32::try_from(items.len()).unwrap_or(u32::MAX) + 40;
        let user = &user;
        let attempt = || async move {
            let json_mode = self.json_mode.load(Ordering::Relaxed);
            let system = prompt::system(settings, json_mode);
            let tokens = prompt::estimate_tokens(&system) + prompt::estimate_tokens(user) + max_out;
            self.wait_for_limits(tokens).await;
            let request = self.chat_request(system, user.clone(), max_out, json_mode);
            let response = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| Failure::Fatal("the analyzer is shutting down".to_owned()))?;
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                self.client.chat().create(request).await
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    let failure = Failure::from_openai(e);
                    if matches!(failure, Failure::NoStructuredOutputs) && !json_mode {
                        tracing::warn!(
                            "the LLM server does not support json_schema; using JSON mode"
                        );
                        self.json_mode.store(true, Ordering::Relaxed);
                        return Err(Failure::Retry {
                            after: Some(Duration::ZERO),
                            why: "switching to JSON mode".to_owned(),
                        });
                    }
                    return Err(failure);
                }
            };
            self.counters
                .messages
                .fetch_add(items.len() as u64, Ordering::Relaxed);
            if let Some(u) = &response.usage {
                self.counters
                    .prompt_tokens
                    .fetch_add(u64::from(u.prompt_tokens), Ordering::Relaxed);
                self.counters
                    .completion_tokens
                    .fetch_add(u64::from(u.completion_tokens), Ordering::Relaxed);
            }
            let Some(choice) = response.choices.into_iter().next() else {
                return Err(Failure::BadAnswer("the reply has no choices".to_owned()));
            };
            if choice.finish_reason == Some(FinishReason::Length) {
                return Err(Failure::BadAnswer(
                    "the answer was cut off (finish_reason length)".to_owned(),
                ));
            }
            let Some(content) = choice.message.content else {
                return Err(Failure::BadAnswer(match choice.message.refusal {
                    Some(r) => format!(
                        "the model refused: {}",
                        r.chars().take(100).collect::<String>()
                    ),
                    None => "the reply has no content".to_owned(),
                }));
            };
            let mut by_index = answer::parse(&content).map_err(Failure::BadAnswer)?;
            Ok((0..items.len()).map(|i| by_index.remove(&i)).collect())
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.max_retries)
            .with_jitter();
        attempt
            .retry(backoff)
            .when(Failure::is_retryable)
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

    async fn wait_for_limits(&self, tokens: u32) {
        if let Some(rpm) = &self.rpm {
            rpm.until_ready().await;
        }
        if let Some((tpm, capacity)) = &self.tpm {
            // A request larger than a burst waits for a whole burst.
            let n = NonZeroU32::new(tokens.min(capacity.get())).unwrap_or(NonZeroU32::MIN);
            let _ = tpm.until_n_ready(n).await;
        }
    }

    fn chat_request(
        &self,
        system: String,
        user: String,
        max_out: u32,
        json_mode: bool,
    ) -> CreateChatCompletionRequest {
        let response_format = if json_mode {
            ResponseFormat::JsonObject
        } else {
            ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some("time entry analysis".to_owned()),
                    name: "time_entries".to_owned(),
                    schema: serde_json::from_str(prompt::ANSWER_SCHEMA).unwrap_or_default(),
                    strict: Some(true),
                },
            }
        };
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage::from(
                    system.as_str(),
                )),
                ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(
                    user.as_str(),
                )),
            ],
            max_completion_tokens: Some(max_out),
            response_format: Some(response_format),
            // No tools: nothing in an answer can call anything.
            tools: None,
            ..Default::default()
        }
    }

    fn build_item<'e>(&self, email: &'e Email, entry: &TimeEntry, settings: &Settings) -> Item<'e> {
        let mut candidates: Vec<String> = entry.client.iter().cloned().collect();
        let people = email.from.iter().chain(&email.to).chain(&email.cc);
        for a in people.filter(|a| !settings.is_mine(&a.email)) {
            if let Some(m) = rules::client_for_address(a, settings)
                && !candidates.contains(&m.client.name)
            {
                candidates.push(m.client.name.clone());
            }
        }
        Item {
            email,
            owner_sent: rules::is_from_owner(email, settings),
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
            Verdict::NotWork { why, .. } => {
                reasons.insert(
                    0,
                    format!("the model judged this not billable work ({why})"),
                );
                Analysis {
                    message_id: rules_analysis.message_id.clone(),
                    outcome: Outcome::NotBillable,
                    reasons,
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
                        "the model chose client {client} among the message's clients"
                    ));
                    e.client = Some(rule.name.clone());
                    e.hourly_rate = rule.rate(settings);
                    // The matter and the codes are the rules' for the new client: the
                    // model chooses neither.
                    rules::file(&mut e, email, settings, rule, &mut reasons);
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
                } else if two_matters {
                    EntryStatus::NeedsReview
                } else {
                    EntryStatus::Suggested
                };
                e.analyzer = self.name();
                reasons.insert(0, format!("the model: {why}"));
                Analysis {
                    message_id: rules_analysis.message_id.clone(),
                    outcome: Outcome::Entry(e),
                    reasons,
                }
            }
        }
    }
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

    async fn analyze(
        &self,
        emails: &[Email],
        settings: &Settings,
    ) -> Vec<Result<Analysis, AnalyzeError>> {
        let base: Vec<Analysis> = emails.iter().map(|e| rules::analyze(e, settings)).collect();
        let mut items = Vec::new();
        let mut positions = Vec::new();
        for (p, (email, a)) in emails.iter().zip(&base).enumerate() {
            if let (Outcome::Entry(entry), None) = (&a.outcome, &email.calendar) {
                items.push(self.build_item(email, entry, settings));
                positions.push(p);
            }
        }
        let mut results: Vec<Result<Analysis, AnalyzeError>> =
            base.iter().cloned().map(Ok).collect();
        let groups = self.request_count(items.len());
        if groups == 0 {
            return results;
        }
        // Contiguous groups of nearly equal size.
        let refs: Vec<&Item<'_>> = items.iter().collect();
        let mut bounds = Vec::with_capacity(groups);
        let (q, r) = (refs.len() / groups, refs.len() % groups);
        let mut at = 0;
        for g in 0..groups {
            let len = q + usize::from(g < r);
            bounds.push((at, at + len));
            at += len;
        }
        let runs = bounds
            .iter()
            .map(|&(from, to)| self.run_group(&refs[from..to], settings));
        let outcomes = futures::future::join_all(runs).await;
        for (&(from, _), group) in bounds.iter().zip(outcomes) {
            for (k, verdict) in group.into_iter().enumerate() {
                let p = positions[from + k];
                results[p] = match verdict {
                    Ok(v) => Ok(self.finish(&emails[p], &base[p], v, settings)),
                    Err(Ok(why)) => Ok(fallback(base[p].clone(), &why)),
                    Err(Err(why)) => Err(AnalyzeError::Unavailable(why)),
                };
            }
        }
        results
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
            Some("llm:gpt-4.1-mini:analysis-v1")
        );
    }
}
