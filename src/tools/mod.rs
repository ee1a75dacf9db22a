//! The tools: the public contract and the only place the business flow lives.
//!
//! Each tool is defined once in `tools/NAME.json` (an OpenAI strict-mode function
//! definition, embedded at build time) and implemented in one file here with its
//! `Args`, its output and `run`. Every transport calls [`call`]; none of them knows
//! what a tool does.

pub mod analyze;
pub mod configure;
pub mod list;
mod pipeline;
pub mod scan;
pub mod summary;

use std::sync::LazyLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::Context;
use crate::domain::{UserId, WorkDate};
use crate::error::{Error, Result};

pub use pipeline::{NoProgress, Progress, ScanProgress};

/// A tool as the model sees it: the parsed contents of `tools/NAME.json`.
#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// The whole OpenAI tool object (`{"type":"function","function":{…}}`).
    pub definition: Value,
}

impl ToolDef {
    /// The JSON schema of the arguments.
    pub fn parameters(&self) -> &Value {
        &self.definition["function"]["parameters"]
    }
}

const DEFINITIONS: [(&str, &str); 5] = [
    (
        "scan_billable_time",
        include_str!("../../tools/scan_billable_time.json"),
    ),
    (
        "analyze_time_entry",
        include_str!("../../tools/analyze_time_entry.json"),
    ),
    (
        "get_time_tracking_summary",
        include_str!("../../tools/get_time_tracking_summary.json"),
    ),
    (
        "configure_time_tracking",
        include_str!("../../tools/configure_time_tracking.json"),
    ),
    (
        "list_time_entries",
        include_str!("../../tools/list_time_entries.json"),
    ),
];

static TOOLS: LazyLock<Vec<ToolDef>> = LazyLock::new(|| {
    DEFINITIONS
        .iter()
        .map(|(file, text)| {
            // The files are part of the build; a broken one is a bug the tests catch.
            let definition: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("tools/{file}.json is not valid JSON: {e}"));
            let function = &definition["function"];
            ToolDef {
                name: function["name"].as_str().unwrap_or(file).to_owned(),
                description: function["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                definition,
            }
        })
        .collect()
});

/// Every tool, in a stable order.
pub fn definitions() -> &'static [ToolDef] {
    &TOOLS
}

/// The OpenAI `tools` array.
pub fn openai_tools() -> Value {
    Value::Array(TOOLS.iter().map(|t| t.definition.clone()).collect())
}

/// Runs one tool by name with JSON arguments. `null` arguments mean `{}`.
pub async fn call(
    ctx: &Context,
    user: &UserId,
    name: &str,
    args: Value,
    progress: &dyn Progress,
) -> Result<Value> {
    let out = match name {
        "scan_billable_time" => to_json(scan::run(ctx, user, parse_args(args)?, progress).await?),
        "analyze_time_entry" => to_json(analyze::run(ctx, user, parse_args(args)?).await?),
        "get_time_tracking_summary" => to_json(&*summary::run(ctx, user, parse_args(args)?).await?),
        "configure_time_tracking" => to_json(configure::run(ctx, user, parse_args(args)?).await?),
        "list_time_entries" => to_json(list::run(ctx, user, parse_args(args)?).await?),
        _ => {
            return Err(Error::UnknownTool {
                name: name.to_owned(),
                available: TOOLS
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    Ok(out)
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
        // serde names an unknown or missing field only in its message.
        let field = match (named_field(&inner), path.as_str()) {
            (Some(f), ".") => f,
            (Some(f), p) => format!("{p}.{f}"),
            (None, ".") => "arguments".to_owned(),
            (None, p) => p.to_owned(),
        };
        Error::invalid(field, inner)
    })
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
