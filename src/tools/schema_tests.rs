//! `tools/*.json` is the public contract kept in the repository; it is generated from
//! the Rust types (`billable tools --write`). These tests keep the files equal to the
//! types, naming the tool and the field that differ, and keep the generated schemas
//! strict-mode valid.

use std::path::Path;

use serde_json::Value;

use super::{TOOLS, files};

/// Where two JSON values first differ, as a path (`parameters.properties.limit.type`).
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let here = format!("{path}.{k}");
                match y.get(k) {
                    None => return Some(format!("{here} (only in the types)")),
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &here) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k} (only in the file)"))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(v, w, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path} (lengths {} and {})", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{path}: the types say {a}, the file says {b}")),
    }
}

fn tools_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools"))
}

/// Compares each generated definition with the file; `None` when all are equal.
fn differences(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (name, text) in files() {
        let path = dir.join(&name);
        let Ok(on_disk) = std::fs::read_to_string(&path) else {
            out.push(format!("tools/{name} is missing"));
            continue;
        };
        if on_disk == text {
            continue;
        }
        let generated: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let file: Value = serde_json::from_str(&on_disk).unwrap_or(Value::Null);
        let tool = name.trim_end_matches(".json");
        match first_difference(&generated["function"], &file["function"], "") {
            Some(d) => out.push(format!("{tool}: {}", d.trim_start_matches('.'))),
            None => out.push(format!("{tool}: same schema, different layout")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !TOOLS.iter().any(|t| format!("{}.json", t.name) == name)
            {
                out.push(format!("tools/{name} is not a tool in the table"));
            }
        }
    }
    out
}

#[test]
fn the_tool_files_are_what_the_types_generate() {
    let diffs = differences(tools_dir());
    assert!(
        diffs.is_empty(),
        "tools/*.json differ from the Rust types; run `cargo run -- tools --write` \
         and review the change:\n  {}",
        diffs.join("\n  ")
    );
}

#[test]
fn a_changed_type_is_named_with_its_field() {
    // Guard for the test above: a changed file must be reported with tool and field.
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files() {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    assert!(differences(dir.path()).is_empty());
    let path = dir.path().join("list_time_entries.json");
    let text = std::fs::read_to_string(&path).expect("read");
    let broken = text.replacen("\"integer\"", "\"string\"", 1);
    std::fs::write(&path, broken).expect("write");
    let diffs = differences(dir.path());
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(
        diffs[0].starts_with("list_time_entries: parameters.properties.limit.type"),
        "{diffs:?}"
    );
}

/// Walks a schema and checks OpenAI strict-mode rules on every object in it.
fn assert_strict(schema: &Value, path: &str) {
    match schema {
        Value::Object(map) => {
            let is_object = match &map.get("type") {
                Some(Value::String(t)) => t == "object",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
                _ => false,
            };
            if is_object {
                assert_eq!(
                    map.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{path}: additionalProperties must be false"
                );
                let props = map
                    .get("properties")
                    .and_then(Value::as_object)
                    .unwrap_or_else(|| panic!("{path}: object without properties"));
                let mut required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .unwrap_or_else(|| panic!("{path}: object without required"))
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                required.sort();
                let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
                keys.sort();
                assert_eq!(required, keys, "{path}: every property must be required");
            }
            for banned in [
                "default", "format", "minimum", "maximum", "pattern", "oneOf", "allOf", "$ref",
                "$defs",
            ] {
                assert!(
                    !map.contains_key(banned),
                    "{path}: `{banned}` is not allowed in strict mode"
                );
            }
            if let Some(Value::Array(values)) = map.get("enum")
                && let Some(Value::Array(types)) = map.get("type")
                && types.iter().any(|t| t == "null")
            {
                assert!(
                    values.contains(&Value::Null),
                    "{path}: a nullable enum must list null"
                );
            }
            for (k, v) in map {
                match (k.as_str(), v) {
                    // Property names are not keywords: a property may be called `format`.
                    ("properties", Value::Object(props)) => {
                        for (name, schema) in props {
                            assert_strict(schema, &format!("{path}.properties.{name}"));
                        }
                    }
                    _ => assert_strict(v, &format!("{path}.{k}")),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                assert_strict(v, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn every_tool_is_strict_mode_valid_and_described() {
    for t in TOOLS {
        let def = t.definition();
        assert_eq!(def["type"], "function");
        assert_eq!(def["function"]["strict"], true, "{}", t.name);
        assert!(
            t.description.len() > 40,
            "{} needs a real description",
            t.name
        );
        let params = t.parameters();
        assert_eq!(params["type"], "object", "{}", t.name);
        assert_strict(&params, t.name);
        // No tool may take the user from its arguments.
        assert!(
            !def.to_string().contains("user_id"),
            "{} mentions user_id",
            t.name
        );
        // Every argument tells the model what it is.
        for (field, schema) in params["properties"].as_object().into_iter().flatten() {
            assert!(
                schema["description"].as_str().is_some_and(|d| d.len() > 10),
                "{}.{field} has no description",
                t.name
            );
        }
    }
}

#[test]
fn tool_names_are_unique_and_output_schemas_are_objects() {
    let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), TOOLS.len());
    for t in TOOLS {
        let out = t.output_schema();
        assert_eq!(out["type"], "object", "{}", t.name);
        assert!(!out.to_string().contains("$ref"), "{}: {out}", t.name);
    }
}
