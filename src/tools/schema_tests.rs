//! The tool files are the single source of truth for what the model sees; these tests
//! keep them strict-mode valid and in step with the Rust argument types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::Value;

use super::definitions;

/// A schema reduced to what both sides must agree on.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    String(Option<Vec<String>>),
    Integer,
    Number,
    Boolean,
    Array(Box<Shape>),
    Object(BTreeMap<String, Shape>),
    Nullable(Box<Shape>),
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &root["$defs"][name]
        }
        None => schema,
    }
}

fn shape(schema: &Value, root: &Value) -> Shape {
    let schema = resolve(schema, root);
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let non_null: Vec<&Value> = any.iter().filter(|s| s["type"] != "null").collect();
        assert_eq!(non_null.len(), 1, "unsupported anyOf: {schema}");
        return Shape::Nullable(Box::new(shape(non_null[0], root)));
    }
    let (ty, nullable) = match &schema["type"] {
        Value::String(t) => (t.clone(), false),
        Value::Array(ts) => {
            let ts: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            let non_null: Vec<&str> = ts.iter().copied().filter(|t| *t != "null").collect();
            assert_eq!(non_null.len(), 1, "unsupported type list: {schema}");
            (non_null[0].to_owned(), ts.contains(&"null"))
        }
        other => panic!("schema without a type: {other} in {schema}"),
    };
    let base = match ty.as_str() {
        "string" => Shape::String(schema.get("enum").and_then(Value::as_array).map(|values| {
            let mut v: Vec<String> = values
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            v.sort();
            v
        })),
        "integer" => Shape::Integer,
        "number" => Shape::Number,
        "boolean" => Shape::Boolean,
        "array" => Shape::Array(Box::new(shape(&schema["items"], root))),
        "object" => Shape::Object(
            schema["properties"]
                .as_object()
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), shape(v, root)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        other => panic!("unsupported type {other}"),
    };
    if nullable {
        Shape::Nullable(Box::new(base))
    } else {
        base
    }
}

/// Rust side: `Option<Vec<T>>` with `#[serde(default)]` and a required JSON field are the
/// same thing to a caller, and a non-null `Vec` field that serde defaults is what strict
/// mode calls a required array.
fn rust_shape<T: JsonSchema>() -> Shape {
    let schema = serde_json::to_value(schemars::schema_for!(T)).expect("schema");
    shape(&schema, &schema)
}

fn file_shape(tool: &str) -> Shape {
    let def = definitions()
        .iter()
        .find(|d| d.name == tool)
        .expect("tool file");
    shape(def.parameters(), def.parameters())
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
                assert_strict(v, &format!("{path}.{k}"));
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
fn there_are_five_tools_named_as_their_files() {
    let names: Vec<&str> = definitions().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "scan_billable_time",
            "analyze_time_entry",
            "get_time_tracking_summary",
            "configure_time_tracking",
            "list_time_entries"
        ]
    );
    for d in definitions() {
        assert_eq!(d.definition["type"], "function");
        assert_eq!(d.definition["function"]["strict"], true, "{}", d.name);
        assert!(
            d.description.len() > 40,
            "{} needs a real description",
            d.name
        );
    }
}

#[test]
fn every_tool_file_is_strict_mode_valid() {
    for d in definitions() {
        assert_eq!(d.parameters()["type"], "object", "{}", d.name);
        assert_strict(d.parameters(), &d.name);
        // No tool may take the user from its arguments.
        assert!(
            !d.definition.to_string().contains("user_id"),
            "{} mentions user_id",
            d.name
        );
    }
}

fn assert_same_shape(tool: &str, rust: Shape) {
    let file = file_shape(tool);
    assert_eq!(file, rust, "tools/{tool}.json does not match its Rust Args");
}

#[test]
fn tool_files_match_the_rust_argument_types() {
    assert_same_shape("scan_billable_time", rust_shape::<super::scan::Args>());
    assert_same_shape("analyze_time_entry", rust_shape::<super::analyze::Args>());
    assert_same_shape(
        "get_time_tracking_summary",
        rust_shape::<super::summary::Args>(),
    );
    assert_same_shape(
        "configure_time_tracking",
        rust_shape::<super::configure::Args>(),
    );
    assert_same_shape("list_time_entries", rust_shape::<super::list::Args>());
}

#[test]
fn the_shape_check_notices_a_difference() {
    // Guard for the test above: a changed type must not compare equal.
    let mut def = definitions()[0].parameters().clone();
    def["properties"]["max_messages"]["type"] = serde_json::json!(["string", "null"]);
    assert_ne!(shape(&def, &def), rust_shape::<super::scan::Args>());
}
