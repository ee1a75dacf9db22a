//! Arguments as some MCP clients send them: numbers and booleans written as strings
//! (`"2"`, `"true"`; the MCP Inspector does so). Where the tool's schema says number,
//! integer or boolean, and not string, such a string is read as the value it spells,
//! before the arguments are deserialized; every transport calls tools through
//! [`super::call`], so each benefits. Answers stay strict: only input is read leniently.

use serde_json::{Number, Value};

/// Rewrites, in place, the strings of `args` that spell a number or boolean where
/// `schema` (a tool's parameters) accepts one of those and no string.
pub fn coerce(args: &mut Value, schema: &Value) {
    match args {
        Value::String(s) => {
            if let Some(v) = spelled(s, &types(schema)) {
                *args = v;
            }
        }
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                for sub in branches(schema).filter_map(|b| property(b, key)) {
                    coerce(value, sub);
                }
            }
        }
        Value::Array(items) => {
            for sub in branches(schema).filter_map(|b| b.get("items")) {
                for item in items.iter_mut() {
                    coerce(item, sub);
                }
            }
        }
        _ => {}
    }
}

/// The schema and its `anyOf`/`oneOf` alternatives (one level, as schemars writes them).
fn branches(schema: &Value) -> impl Iterator<Item = &Value> {
    let alternatives = ["anyOf", "oneOf"]
        .into_iter()
        .filter_map(|k| schema.get(k).and_then(Value::as_array))
        .flatten();
    std::iter::once(schema).chain(alternatives)
}

fn property<'s>(schema: &'s Value, key: &str) -> Option<&'s Value> {
    schema.get("properties").and_then(|p| p.get(key))
}

/// Every `type` the schema or its alternatives name.
fn types(schema: &Value) -> Vec<&str> {
    branches(schema)
        .filter_map(|b| b.get("type"))
        .flat_map(|t| match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(all) => all.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The number or boolean `s` spells, when the schema wants one and no string.
fn spelled(s: &str, types: &[&str]) -> Option<Value> {
    if types.contains(&"string") {
        return None;
    }
    let t = s.trim();
    if types.contains(&"boolean") {
        match t {
            "true" => return Some(Value::Bool(true)),
            "false" => return Some(Value::Bool(false)),
            _ => {}
        }
    }
    if types.contains(&"integer") {
        if let Ok(n) = t.parse::<u64>() {
            return Some(Value::Number(n.into()));
        }
        if let Ok(n) = t.parse::<i64>() {
            return Some(Value::Number(n.into()));
        }
    }
    if types.contains(&"number") {
        return t
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_spell_numbers_and_booleans_are_read_where_the_schema_wants_them() {
        let schema = json!({
            "type": "object",
            "properties": {
                "limit": {"type": ["integer", "null"]},
                "rate": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "dry_run": {"type": ["boolean", "null"]},
                "query": {"type": ["string", "null"]},
                "settings": {"type": "object", "properties": {
                    "clients": {"type": "array", "items": {"type": "object", "properties": {
                        "hourly_rate": {"type": ["number", "null"]}
                    }}}
                }}
            }
        });
        let mut args = json!({
            "limit": "2", "rate": " 350.5 ", "dry_run": "true", "query": "42",
            "settings": {"clients": [{"hourly_rate": "400"}]}
        });
        coerce(&mut args, &schema);
        assert_eq!(
            args,
            json!({
                "limit": 2, "rate": 350.5, "dry_run": true, "query": "42",
                "settings": {"clients": [{"hourly_rate": 400.0}]}
            })
        );
        // What spells nothing is left for deserialization to refuse, naming the field.
        let mut bad = json!({"limit": "two", "dry_run": "yes"});
        coerce(&mut bad, &schema);
        assert_eq!(bad, json!({"limit": "two", "dry_run": "yes"}));
    }
}
