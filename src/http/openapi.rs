//! `GET /openapi.json`: the HTTP API as OpenAPI 3.1, with one path per tool whose
//! request body schema is the tool's own parameter schema.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::tools;

pub async fn document() -> Json<Value> {
    Json(build())
}

fn build() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let err = |what: &str| json!({"description": what, "content": {"application/json": {"schema": error}}});
    let mut paths = Map::new();
    paths.insert("/healthz".into(), json!({"get": {"summary": "Liveness (no I/O)", "security": [], "responses": {"200": {"description": "ok"}}}}));
    paths.insert("/readyz".into(), json!({"get": {"summary": "Readiness: the store is reachable", "security": [], "responses": {"200": {"description": "ready"}, "503": err("the store is unreachable")}}}));
    paths.insert("/metrics".into(), json!({"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}}));
    paths.insert("/v1/tools".into(), json!({"get": {"summary": "The OpenAI `tools` array", "responses": {"200": {"description": "tool definitions", "content": {"application/json": {"schema": {"type": "array"}}}}, "401": err("missing or invalid bearer token")}}}));
    paths.insert("/v1/tools/call".into(), json!({"post": {
        "summary": "Execute OpenAI tool calls",
        "description": "One tool call, a list of them (run concurrently) or an assistant message with `tool_calls`. Answers with the `role: \"tool\"` messages to append to the conversation. A failed call's content is `{\"error\": {\"code\", \"message\"}}`. With `Accept: text/event-stream`: `progress` events, then a `result` event carrying the messages.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/ToolCall"},
            {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}},
            {"type": "object", "required": ["tool_calls"], "properties": {"role": {"const": "assistant"}, "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}}}}
        ]}}}},
        "responses": {
            "200": {"description": "tool messages", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object", "properties": {"role": {"const": "tool"}, "tool_call_id": {"type": "string"}, "content": {"type": "string"}}}}}, "text/event-stream": {}}},
            "400": err("the body is not JSON"), "401": err("missing or invalid bearer token"),
            "408": err("the request ran longer than BILLABLE_REQUEST_TIMEOUT_SECS"),
            "413": err("the body is too large"), "422": err("not a tool call"), "429": err("rate limited; see Retry-After")
        }
    }}));
    for tool in tools::TOOLS {
        paths.insert(format!("/v1/tools/{}", tool.name), json!({"post": {
            "operationId": tool.name,
            "summary": tool.description,
            "requestBody": {"required": false, "content": {"application/json": {"schema": tool.parameters()}}},
            "responses": {
                "200": {"description": "the tool's result (or, with Accept: text/event-stream, progress events then `result`)", "content": {"application/json": {"schema": tool.output_schema()}, "text/event-stream": {}}},
                "400": err("the body is not JSON"), "401": err("missing, invalid or expired bearer token (also when the store refuses it); sign in again"),
                "403": err("the store refused access to this data"),
                "404": err("not found"), "408": err("the request ran longer than BILLABLE_REQUEST_TIMEOUT_SECS"),
                "409": err("the write collided with another; retry"), "413": err("the body is too large"),
                "422": err("invalid arguments; the message names the field"), "429": err("rate limited; see Retry-After"),
                "503": err("a dependency is unavailable; retry later")
            }
        }}));
    }
    if let Some(op) = paths
        .get_mut("/v1/tools/scan_billable_time")
        .and_then(|p| p["post"]["responses"].as_object_mut())
    {
        let queued = op["200"]["content"]["application/json"]["schema"].clone();
        op.insert("202".into(), json!({"description": "a background scan was queued: its status is at `Location` (and `status_url`)", "headers": {"Location": {"schema": {"type": "string"}}}, "content": {"application/json": {"schema": queued}}}));
    }
    if let Some(status) = tools::find("get_scan_status") {
        paths.insert("/v1/scans/{id}".into(), json!({"get": {
            "summary": "A background scan's status (get_scan_status); `wait` waits up to that many seconds for it to end, with Accept: text/event-stream reporting progress meanwhile",
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 60}}
            ],
            "responses": {
                "200": {"description": "the job's status", "content": {"application/json": {"schema": status.output_schema()}, "text/event-stream": {}}},
                "401": err("missing or invalid bearer token"),
                "404": err("no such job of yours")
            }
        }}));
    }
    let grant = json!({"type": "object", "required": ["connected", "updated_at"], "properties": {
        "connected": {"type": "boolean"},
        "mailbox": {"type": "string", "description": "the mailbox the grant reads (after PUT)"},
        "updated_at": {"type": ["string", "null"], "format": "date-time"}
    }});
    let grant_ok = json!({"description": "whether a grant is stored (never the grant)", "content": {"application/json": {"schema": grant}}});
    paths.insert("/v1/gmail/grant".into(), json!({
        "get": {"summary": "Whether your Gmail authorisation is stored for unattended scans", "responses": {"200": grant_ok, "401": err("missing or invalid bearer token")}},
        "put": {
            "summary": "Store your Gmail OAuth refresh token for unattended (background, scheduled) scans: checked with Google once, sealed with the server's key, never returned",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["refresh_token"], "additionalProperties": false, "properties": {"refresh_token": {"type": "string", "maxLength": 2048}}}}}},
            "responses": {"200": grant_ok, "401": err("missing or invalid bearer token"), "422": err("not a refresh token"), "503": err("Google refused the token, or this server keeps no grants")}
        },
        "delete": {"summary": "Forget your stored Gmail authorisation (revoke)", "responses": {"200": grant_ok, "401": err("missing or invalid bearer token")}}
    }));
    paths.insert("/mcp".into(), json!({"post": {"summary": "MCP streamable HTTP (JSON-RPC)", "responses": {"200": {"description": "JSON-RPC response or event stream"}}}, "get": {"summary": "MCP server-to-client stream", "responses": {"200": {"description": "event stream"}}}}));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "billable", "version": env!("CARGO_PKG_VERSION"), "description": "Finds the billable work hidden in a mailbox. Tools for chat assistants over OpenAI function calling and MCP."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Local mode: BILLABLE_API_TOKEN (or the token printed at start). Supabase mode: the user's Supabase access token (JWT)."}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "ToolCall": {"type": "object", "required": ["id", "function"], "properties": {
                    "id": {"type": "string"}, "type": {"const": "function"},
                    "function": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "arguments": {"type": "string", "description": "the arguments as a JSON string"}}}
                }}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_tool_has_a_path_with_its_parameter_and_result_schemas() {
        let doc = super::build();
        for tool in crate::tools::TOOLS {
            let op = &doc["paths"][format!("/v1/tools/{}", tool.name)]["post"];
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(schema, &tool.parameters());
            let output = &op["responses"]["200"]["content"]["application/json"]["schema"];
            assert_eq!(output, &tool.output_schema());
        }
    }
}
