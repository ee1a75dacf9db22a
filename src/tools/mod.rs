//! The tools: the public contract and the only place the business flow lives.
//!
//! Each tool is one module with its typed `Args` and `Output` (serde + schemars) and
//! an implementation of [`Tool`]. [`TOOLS`] is the one table of them: the registry, the
//! `/v1` endpoints, the MCP handler, the CLI's `tool`/`tools` commands and
//! `/openapi.json` are all derived from it, and so are `tools/*.json` (the OpenAI
//! strict-mode definitions kept in the repository as the public contract; `billable
//! tools --write` regenerates them and a test fails when they differ from the types).
//! Every transport calls [`call`] (or [`run`], typed, from the CLI); none of them knows
//! what a tool does.

pub mod add;
pub mod analyze;
pub mod configure;
pub mod export;
pub mod jobs;
mod lenient;
pub mod list;
pub mod merge;
mod pipeline;
mod review;
mod rollup;
pub mod scan;
pub mod schema;
pub mod summary;
pub mod update;

use std::future::Future;
use std::path::Path;
use std::sync::LazyLock;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::context::Context;
use crate::domain::{UserId, WorkDate};
use crate::error::{Error, Result};

pub use pipeline::{Disposition, NoProgress, Progress, ScanProgress};

/// What a tool does to the world, for MCP's annotations and for callers deciding
/// whether a call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// Changes nothing.
    pub read_only: bool,
    /// May overwrite or remove what the user had (only meaningful when not read-only).
    pub destructive: bool,
    /// Calling it twice with the same arguments has the effect of calling it once.
    pub idempotent: bool,
    /// Reaches beyond billable's own data (the mailbox, a model).
    pub open_world: bool,
}

impl Hints {
    /// Reads billable's own data only.
    pub const READ: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
}

/// One tool: its name, what the model is told, its typed arguments and result, and
/// what it does. Implemented by a unit struct in the tool's module.
pub trait Tool: Send + Sync + 'static {
    const NAME: &'static str;
    /// The description the model sees.
    const DESCRIPTION: &'static str;
    const HINTS: Hints;
    type Args: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize + JsonSchema + Send;

    fn run<'a>(
        ctx: &'a Context,
        user: &'a UserId,
        args: Self::Args,
        progress: &'a dyn Progress,
    ) -> impl Future<Output = Result<Self::Output>> + Send + 'a;
}

type Erased =
    for<'a> fn(&'a Context, &'a UserId, Value, &'a dyn Progress) -> BoxFuture<'a, Result<Value>>;

/// A tool as the transports see it: everything they need, derived from its types.
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub hints: Hints,
    parameters: fn() -> Value,
    output: fn() -> Value,
    call: Erased,
}

impl ToolSpec {
    pub const fn of<T: Tool>() -> Self {
        ToolSpec {
            name: T::NAME,
            description: T::DESCRIPTION,
            hints: T::HINTS,
            parameters: schema::parameters::<T::Args>,
            output: schema::output::<T::Output>,
            call: erased::<T>,
        }
    }

    /// The JSON schema of the arguments (OpenAI strict mode).
    pub fn parameters(&self) -> Value {
        (self.parameters)()
    }

    /// The JSON schema of the result.
    pub fn output_schema(&self) -> Value {
        (self.output)()
    }

    /// The whole OpenAI tool object (`{"type":"function","function":{…}}`), as in
    /// `tools/NAME.json`.
    pub fn definition(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "strict": true,
                "parameters": self.parameters(),
            }
        })
    }
}

/// A free-text filter argument: trimmed, and blank means none.
pub(crate) fn nonblank(v: Option<String>) -> Option<String> {
    v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn erased<'a, T: Tool>(
    ctx: &'a Context,
    user: &'a UserId,
    args: Value,
    progress: &'a dyn Progress,
) -> BoxFuture<'a, Result<Value>> {
    Box::pin(async move {
        let args = parse_args::<T::Args>(args)?;
        Ok(to_json(T::run(ctx, user, args, progress).await?))
    })
}

/// Every tool, in a stable order: the one list the transports are derived from.
pub static TOOLS: &[ToolSpec] = &[
    ToolSpec::of::<scan::ScanBillableTime>(),
    ToolSpec::of::<analyze::AnalyzeTimeEntry>(),
    ToolSpec::of::<summary::GetTimeTrackingSummary>(),
    ToolSpec::of::<configure::ConfigureTimeTracking>(),
    ToolSpec::of::<list::ListTimeEntries>(),
    ToolSpec::of::<update::UpdateTimeEntries>(),
    ToolSpec::of::<add::AddTimeEntry>(),
    ToolSpec::of::<merge::MergeTimeEntries>(),
    ToolSpec::of::<merge::SplitTimeEntry>(),
    ToolSpec::of::<export::ExportTimeEntries>(),
    ToolSpec::of::<jobs::GetScanStatus>(),
    ToolSpec::of::<jobs::CancelScan>(),
    ToolSpec::of::<jobs::ListScans>(),
];

/// The tool called `name`.
pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The OpenAI `tools` array (computed once: the schemas never change in a process).
pub fn openai_tools() -> &'static Value {
    static ALL: LazyLock<Value> =
        LazyLock::new(|| Value::Array(TOOLS.iter().map(ToolSpec::definition).collect()));
    &ALL
}

/// The parameter schema of the tool called `name`, from the cached `tools` array.
fn parameters_of(name: &str) -> Option<&'static Value> {
    openai_tools()
        .as_array()?
        .iter()
        .map(|t| &t["function"])
        .find(|f| f["name"] == name)
        .map(|f| &f["parameters"])
}

/// The error for a name that is not in the table, listing those that are.
pub fn unknown_tool(name: &str) -> Error {
    Error::UnknownTool {
        name: name.chars().take(100).collect(),
        available: TOOLS.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
    }
}

/// Runs one tool by name with JSON arguments (`null` means `{}`), timed in the
/// metrics. HTTP and MCP come through here.
pub async fn call(
    ctx: &Context,
    user: &UserId,
    name: &str,
    args: Value,
    progress: &dyn Progress,
) -> Result<Value> {
    let tool = find(name).ok_or_else(|| unknown_tool(name))?;
    let mut args = args;
    if let Some(schema) = parameters_of(tool.name) {
        lenient::coerce(&mut args, schema);
    }
    crate::metrics::time_tool(tool.name, (tool.call)(ctx, user, args, progress)).await
}

/// Runs one tool with typed arguments and result (the CLI), timed like [`call`].
pub async fn run<T: Tool>(
    ctx: &Context,
    user: &UserId,
    args: T::Args,
    progress: &dyn Progress,
) -> Result<T::Output> {
    crate::metrics::time_tool(T::NAME, T::run(ctx, user, args, progress)).await
}

/// The text of `tools/NAME.json` for each tool, as generated from the types.
pub fn files() -> Vec<(String, String)> {
    TOOLS
        .iter()
        .map(|t| {
            let text = serde_json::to_string_pretty(&t.definition()).unwrap_or_default();
            (format!("{}.json", t.name), text + "\n")
        })
        .collect()
}

/// Writes `tools/*.json` into `dir` (`billable tools --write`); returns the files that
/// changed.
pub fn write_files(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut changed = Vec::new();
    for (name, text) in files() {
        let path = dir.join(&name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text)?;
            changed.push(name);
        }
    }
    Ok(changed)
}

/// Checks an inclusive work-date range: `to` may not come before `from`.
fn check_range(from: Option<WorkDate>, to: Option<WorkDate>) -> Result<()> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(Error::invalid(
            "to",
            format!("must not be before `from` ({from}), got {to}"),
        )),
        _ => Ok(()),
    }
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    // Our outputs are plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Deserializes tool arguments, naming the offending field in the error.
pub fn parse_args<T: DeserializeOwned>(args: Value) -> Result<T> {
    let args = match args {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => args,
        other => {
            return Err(Error::invalid(
                "arguments",
                format!("expected a JSON object, got {}", kind_of(&other)),
            ));
        }
    };
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names an unknown or missing field only in its message, and the path
        // may end with it already.
        let field = match (named_field(&inner), path.as_str()) {
            (Some(f), ".") => f,
            (Some(f), p) if p == f || p.ends_with(&format!(".{f}")) => p.to_owned(),
            (Some(f), p) => format!("{p}.{f}"),
            (None, ".") => "arguments".to_owned(),
            (None, p) => p.to_owned(),
        };
        Error::invalid(field, plain_message(&inner))
    })
}

/// serde's message in the user's words: an unknown key with the nearest known one,
/// and kinds of value instead of Rust types.
fn plain_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let nearest = known
            .iter()
            .map(|k| (strsim::levenshtein(name, k), *k))
            .min()
            .filter(|(d, k)| *d <= 3.max(k.len() / 3));
        return match nearest {
            Some((_, k)) => format!("unknown key `{name}`; did you mean `{k}`?"),
            None => format!("unknown key `{name}`; known keys: {}", known.join(", ")),
        };
    }
    let mut out = message.to_owned();
    for (rust, plain) in [
        ("expected i64", "expected a whole number"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected u8", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number, 0 or more"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected an object"),
        ("invalid type: map", "invalid type: an object"),
        ("invalid type: sequence", "invalid type: a list"),
    ] {
        out = out.replace(rust, plain);
    }
    out
}

fn named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next().map(str::to_owned)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod schema_tests;
