//! Tool schemas from the Rust types (schemars), in the two forms the transports need.
//!
//! - [`parameters`]: OpenAI strict mode, the form of `tools/*.json` and of MCP's input
//!   schemas: references inlined, every property required (optional ones nullable),
//!   `additionalProperties: false`, and none of the keywords strict mode refuses.
//! - [`output`]: plain JSON Schema for what a tool returns (MCP's `outputSchema`, the
//!   OpenAPI 200 responses): references inlined, nothing else changed but formats that
//!   are schemars' own names for Rust number types.
//!
//! Keys come out in one order (type, enum, items, description, then the object's
//! properties), so the generated files read the same from one build to the next.

use schemars::JsonSchema;
use serde_json::{Map, Value};

/// The strict-mode parameter schema of `T`.
pub fn parameters<T: JsonSchema>() -> Value {
    let root = root::<T>();
    strict(&inline(&root, &root))
}

/// The output schema of `T`.
pub fn output<T: JsonSchema>() -> Value {
    let root = root::<T>();
    let mut schema = tidy(&inline(&root, &root));
    if let Value::Object(m) = &mut schema {
        m.remove("$schema");
        m.remove("title");
    }
    schema
}

fn root<T: JsonSchema>() -> Value {
    // A schema is a JSON value by construction.
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

/// Replaces every `$ref` by the definition it names. Our types are not recursive. A
/// field's own description wins over its type's.
fn inline(schema: &Value, root: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let name = target.rsplit('/').next().unwrap_or_default();
                let found = root
                    .get("$defs")
                    .and_then(|d| d.get(name))
                    .cloned()
                    .unwrap_or(Value::Null);
                let mut def = match inline(&found, root) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                def.remove("description");
                def.remove("title");
                for (k, v) in map {
                    if k != "$ref" {
                        def.insert(k.clone(), inline(v, root));
                    }
                }
                return Value::Object(def);
            }
            Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "$defs")
                    .map(|(k, v)| (k.clone(), inline(v, root)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, root)).collect()),
        other => other.clone(),
    }
}

/// Formats schemars writes for Rust number types; not JSON Schema formats.
const RUST_FORMATS: [&str; 12] = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "uint", "int",
    "float", "double",
];

/// The output form: Rust number formats dropped, `anyOf [T, null]` kept as it is.
fn tidy(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if k == "format" && v.as_str().is_some_and(|f| RUST_FORMATS.contains(&f)) {
                    continue;
                }
                out.insert(k.clone(), tidy(v));
            }
            Value::Object(ordered(out))
        }
        Value::Array(items) => Value::Array(items.iter().map(tidy).collect()),
        other => other.clone(),
    }
}

/// Keywords OpenAI's strict mode refuses (or that mean nothing to a model).
const NOT_STRICT: [&str; 10] = [
    "$schema", "title", "format", "minimum", "maximum", "default", "pattern", "minItems",
    "maxItems", "examples",
];

fn strict(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    // `anyOf [T, {"type": "null"}]` (an Option of a named type) becomes T made nullable.
    if let Some(Value::Array(any)) = map.get("anyOf") {
        let non_null: Vec<&Value> = any.iter().filter(|s| s["type"] != "null").collect();
        if non_null.len() == 1 && any.len() == 2 {
            let mut inner = match strict(non_null[0]) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            make_nullable(&mut inner);
            for (k, v) in map {
                if k != "anyOf" && !NOT_STRICT.contains(&k.as_str()) {
                    inner.insert(k.clone(), strict(v));
                }
            }
            return Value::Object(ordered(inner));
        }
    }
    let mut out = Map::new();
    for (k, v) in map {
        if NOT_STRICT.contains(&k.as_str()) {
            continue;
        }
        let v = match k.as_str() {
            "properties" => Value::Object(
                v.as_object()
                    .map(|props| props.iter().map(|(k, v)| (k.clone(), strict(v))).collect())
                    .unwrap_or_default(),
            ),
            _ => strict(v),
        };
        out.insert(k.clone(), v);
    }
    // A nullable enum lists null among its values.
    let nullable =
        matches!(&out.get("type"), Some(Value::Array(t)) if t.iter().any(|t| t == "null"));
    if nullable
        && let Some(Value::Array(values)) = out.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    if is_object(&out) {
        let keys: Vec<Value> = out
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().map(Value::String).collect())
            .unwrap_or_default();
        out.insert("required".into(), Value::Array(keys));
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(ordered(out))
}

fn is_object(map: &Map<String, Value>) -> bool {
    match map.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => false,
    }
}

fn make_nullable(map: &mut Map<String, Value>) {
    let ty = match map.remove("type") {
        Some(Value::String(t)) => Value::Array(vec![Value::String(t), "null".into()]),
        Some(Value::Array(mut ts)) => {
            if !ts.iter().any(|t| t == "null") {
                ts.push("null".into());
            }
            Value::Array(ts)
        }
        _ => Value::Array(vec!["null".into()]),
    };
    map.insert("type".into(), ty);
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
}

/// The keys in the one order the generated files use; any others follow as they came.
fn ordered(mut map: Map<String, Value>) -> Map<String, Value> {
    const ORDER: [&str; 9] = [
        "type",
        "const",
        "enum",
        "items",
        "description",
        "anyOf",
        "properties",
        "required",
        "additionalProperties",
    ];
    let mut out = Map::new();
    for key in ORDER {
        if let Some(v) = map.remove(key) {
            out.insert(key.to_owned(), v);
        }
    }
    out.extend(map);
    out
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    enum Colour {
        Red,
        Blue,
    }

    /// Described here.
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        /// How many.
        n: u32,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Args {
        /// A colour, or null.
        colour: Option<Colour>,
        /// Some inner thing.
        inner: Option<Inner>,
        list: Vec<String>,
    }

    #[test]
    fn strict_mode_requires_everything_inlines_references_and_lists_null() {
        assert_eq!(
            parameters::<Args>(),
            json!({
                "type": "object",
                "properties": {
                    "colour": {"type": ["string", "null"], "enum": ["Red", "Blue", null], "description": "A colour, or null."},
                    "inner": {
                        "type": ["object", "null"],
                        "description": "Some inner thing.",
                        "properties": {"n": {"type": "integer", "description": "How many."}},
                        "required": ["n"],
                        "additionalProperties": false
                    },
                    "list": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["colour", "inner", "list"],
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn output_schemas_inline_references_and_drop_rust_number_formats() {
        let out = output::<Args>();
        assert!(!out.to_string().contains("$ref"), "{out}");
        assert!(!out.to_string().contains("uint32"), "{out}");
        assert_eq!(
            out["properties"]["inner"]["anyOf"][0]["properties"]["n"]["minimum"],
            0
        );
    }
}
