//! The API's contract: what the handlers enforce, stated in the OpenAPI
//! document, so that a client generated from it (and schemathesis) learns
//! the rules from the document rather than from errors. utoipa derives the
//! shapes from the types (required fields, `additionalProperties: false`
//! from `deny_unknown_fields`); this adds what the types cannot say: a name
//! for every operation, the id patterns and bounds the handlers check, the
//! enums and time formats of query parameters, the answers every operation
//! can give, the roles that may call it (`x-roles`), and the links between
//! operations (a registered case to its media, a requested export to its
//! approval and download) that stateful testing follows.

use serde_json::{json, Map, Value};

/// Every operation: (method, path, operationId). One unique name each, as
/// client generators need (`list` and `get` were utoipa's defaults for two
/// and three operations).
pub const OPERATIONS: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/stations", "listStations"),
    ("post", "/api/v1/stations/{station}/retry", "retryStation"),
    ("get", "/api/v1/alerts", "listAlerts"),
    ("post", "/api/v1/alerts/{id}/ack", "ackAlert"),
    ("get", "/api/v1/audit", "listAudit"),
    ("put", "/api/v1/cases/{case_id}", "putCase"),
    ("get", "/api/v1/cases/{case_id}", "getCase"),
    ("get", "/api/v1/cases/{case_id}/media", "listCaseMedia"),
    ("post", "/api/v1/cases/{case_id}/media", "linkCaseMedia"),
    ("delete", "/api/v1/cases/{case_id}/media/{media_id}", "unlinkCaseMedia"),
    ("put", "/api/v1/cases/{case_id}/restriction", "restrictCase"),
    ("post", "/api/v1/cases/{case_id}/archive", "archiveCase"),
    ("get", "/api/v1/media", "listMedia"),
    ("get", "/api/v1/media/{id}", "getMedia"),
    ("get", "/api/v1/media/{id}/original", "getOriginal"),
    ("get", "/api/v1/media/{id}/rendition", "getRendition"),
    ("get", "/api/v1/media/{id}/thumbnail", "getThumbnail"),
    ("get", "/api/v1/media/{id}/renditions", "listRenditions"),
    ("post", "/api/v1/media/{id}/recover", "recoverMedia"),
    ("get", "/api/v1/media/{id}/receipt", "getReceipt"),
    ("put", "/api/v1/media/{id}/retention", "setRetention"),
    ("post", "/api/v1/media/{id}/holds", "placeHold"),
    ("delete", "/api/v1/media/{id}/holds/{hold_id}", "liftHold"),
    ("post", "/api/v1/media/{id}/restore", "restoreMedia"),
    ("put", "/api/v1/media/{id}/restriction", "restrictMedia"),
    ("post", "/api/v1/exports", "requestExport"),
    ("get", "/api/v1/exports/{export_id}", "getExport"),
    ("post", "/api/v1/exports/{export_id}/approve", "approveExport"),
    ("post", "/api/v1/exports/{export_id}/deny", "denyExport"),
    ("get", "/api/v1/exports/{export_id}/download", "downloadExport"),
];

/// An original's id: its BLAKE3 hash in lowercase hexadecimal.
pub const MEDIA_ID: &str = "^[0-9a-f]{64}$";
/// An export's id.
pub const EXPORT_ID: &str = "^[0-9a-f]{32}$";
/// A case system's case number (`rules::cases::valid_case_id`): 1-128
/// characters, no control characters, no `/` or `\`, no surrounding space.
pub const CASE_ID: &str = r"^[^\s\x00-\x1f\x7f-\x9f/\\](?:[^\x00-\x1f\x7f-\x9f/\\]*[^\s\x00-\x1f\x7f-\x9f/\\])?$";
/// A station id (`config`): 1-64 of A-Z a-z 0-9 . _ -.
pub const STATION_ID: &str = "^[A-Za-z0-9._-]{1,64}$";

fn media_id() -> Value {
    json!({"type": "string", "pattern": MEDIA_ID, "minLength": 64, "maxLength": 64})
}

fn case_id() -> Value {
    json!({"type": "string", "pattern": CASE_ID, "minLength": 1, "maxLength": 128})
}

/// The schema of a parameter, as its handler checks it (`None`: as derived).
fn parameter(path: &str, name: &str, place: &str) -> Option<Value> {
    let alert_kinds: Vec<&str> = crate::rules::alerts::ALL_KINDS.iter().map(|k| k.as_str()).collect();
    Some(match (place, name) {
        ("path", "id") if path.starts_with("/api/v1/media/") => media_id(),
        ("path", "media_id") => media_id(),
        ("path", "case_id") => case_id(),
        ("path", "export_id") => json!({"type": "string", "pattern": EXPORT_ID, "minLength": 32, "maxLength": 32}),
        ("path", "station") => json!({"type": "string", "pattern": STATION_ID, "minLength": 1, "maxLength": 64}),
        ("path", "id" | "hold_id") => json!({"type": "integer", "format": "int64"}),
        ("query", "from" | "to") => json!({"type": "string", "format": "date-time"}),
        ("query", "limit") if path == "/api/v1/alerts" => {
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 10000, "default": 500})
        }
        ("query", "limit") => {
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 1000, "default": 100})
        }
        ("query", "state") if path == "/api/v1/alerts" => {
            json!({"type": "string", "enum": ["open", "acked", "resolved", "all"], "default": "open"})
        }
        ("query", "kind") if path == "/api/v1/alerts" => json!({"type": "string", "enum": alert_kinds}),
        ("query", "kind") => json!({"type": "string", "enum": ["video", "audio", "photo", "other"]}),
        ("query", "media") => media_id(),
        ("query", "case") => case_id(),
        ("query", "cursor") if path == "/api/v1/audit" => json!({"type": "string", "pattern": "^[0-9]{1,18}$"}),
        ("query", "cursor") => json!({"type": "string", "pattern": "^[A-Za-z0-9+/]+={0,2}$", "maxLength": 200}),
        _ => return None,
    })
}

/// Answers any operation can give besides its own: too many requests
/// without a valid token from one address, and an internal error (the
/// index or the audit log cannot be written: the request is not done).
fn common_responses(path: &str, method: &str) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![
        ("401", "No valid bearer token"),
        ("403", "The token's role may not use this operation"),
        ("429", "Too many requests without a valid token from this address"),
        ("500", "Internal error (the index or the audit log could not be written); nothing was done"),
    ];
    let serves_bytes = path.ends_with("/original")
        || path.ends_with("/rendition")
        || path.ends_with("/thumbnail")
        || path.ends_with("/download");
    if serves_bytes {
        out.push(("503", "The archive cannot be read now; try again"));
    }
    if path.ends_with("/original") || path.ends_with("/receipt") || path.ends_with("/rendition") {
        out.push(("410", "The original is in the trash or was deleted by the retention rules"));
    }
    if matches!(method, "post" | "put") {
        out.push(("413", "The request body is too large"));
        out.push(("415", "The request body is not JSON"));
        out.push(("422", "The request body is well-formed but not valid (the details say why)"));
    }
    out
}

/// Links from an operation's answer to the operations that follow it.
fn links(op: &str) -> Vec<(&'static str, &'static str, Value)> {
    let case = json!({"case_id": "$request.path.case_id"});
    let export = json!({"export_id": "$response.body#/id"});
    match op {
        "putCase" => vec![
            ("200", "getCase", case.clone()),
            ("200", "listCaseMedia", case.clone()),
            ("201", "getCase", case.clone()),
            ("201", "listCaseMedia", case.clone()),
            ("201", "linkCaseMedia", case),
        ],
        "linkCaseMedia" => vec![
            (
                "201",
                "unlinkCaseMedia",
                json!({"case_id": "$request.path.case_id", "media_id": "$response.body#/media_id"}),
            ),
            ("201", "getMedia", json!({"id": "$response.body#/media_id"})),
        ],
        "listMedia" => vec![
            ("200", "getMedia", json!({"id": "$response.body#/media/0/id"})),
            ("200", "getOriginal", json!({"id": "$response.body#/media/0/id"})),
            ("200", "getReceipt", json!({"id": "$response.body#/media/0/id"})),
        ],
        "getMedia" => ["getOriginal", "getReceipt", "getRendition", "getThumbnail", "listRenditions"]
            .into_iter()
            .chain(["setRetention", "placeHold", "restoreMedia", "restrictMedia", "recoverMedia"])
            .map(|to| ("200", to, json!({"id": "$response.body#/id"})))
            .collect(),
        "placeHold" => {
            vec![("201", "liftHold", json!({"id": "$request.path.id", "hold_id": "$response.body#/hold_id"}))]
        }
        "requestExport" => vec![
            ("201", "getExport", export.clone()),
            ("201", "approveExport", export.clone()),
            ("201", "denyExport", export.clone()),
            ("201", "downloadExport", export),
        ],
        "approveExport" => vec![("200", "downloadExport", json!({"export_id": "$request.path.export_id"}))],
        _ => Vec::new(),
    }
}

/// Request bodies: the same ids as in paths, and the lengths the handlers
/// check (in characters).
fn tighten_bodies(schemas: &mut Map<String, Value>) {
    for (name, schema) in schemas.iter_mut() {
        // Request bodies only: a response may echo what a caller sent (the
        // audit log records the ids it was asked for, valid or not).
        if !(name.ends_with("Body") || name == "ExportRequest") {
            continue;
        }
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        for (prop, s) in props.iter_mut() {
            let nullable = s["type"].as_array().is_some_and(|t| t.contains(&json!("null")));
            let description = s.get("description").cloned();
            let string = |extra: Value| {
                let mut v = extra;
                v["type"] = if nullable { json!(["string", "null"]) } else { json!("string") };
                if let Some(d) = &description {
                    v["description"] = d.clone();
                }
                v
            };
            match prop.as_str() {
                "media_id" | "reference" => *s = string(json!({"pattern": MEDIA_ID, "minLength": 64, "maxLength": 64})),
                "case_id" => *s = string(json!({"pattern": CASE_ID, "minLength": 1, "maxLength": 128})),
                "reason" => *s = string(json!({"pattern": r"\S", "minLength": 1, "maxLength": 1000})),
                "note" if name == "LinkBody" => *s = string(json!({"maxLength": 2000})),
                "media" if name == "ExportRequest" => {
                    s["items"] = json!({"type": "string", "pattern": MEDIA_ID});
                    s["minItems"] = json!(1);
                    s["maxItems"] = json!(10000);
                }
                _ => {}
            }
        }
        if name == "ExportRequest" {
            // Either a case's recordings or a list of originals, not both
            // (as `anyOf` and `not`: a `oneOf` here made openapi-python-client
            // drop the operation from the clients it generates).
            schema["properties"]["case_id"]["type"] = json!("string");
            schema["properties"]["media"]["type"] = json!("array");
            schema["anyOf"] =
                json!([{"type": "object", "required": ["case_id"]}, {"type": "object", "required": ["media"]}]);
            schema["not"] = json!({"type": "object", "required": ["case_id", "media"]});
            schema["description"] = json!(
                "Either `case_id` (a case's recordings) or `media` (a list of originals), not both; only a \
                 case's export can be its case file (`case_file`)."
            );
        }
    }
}

fn error_response(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// State the contract in the document (see the module's comment). The
/// result is JSON: utoipa's own model would write a link's `operationId`
/// as `operation_id`.
pub fn state(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(&api).expect("the OpenAPI document is JSON");
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        tighten_bodies(schemas);
    }
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else { continue };
            if let Some((_, _, id)) = OPERATIONS.iter().find(|(m, p, _)| m == method && p == path) {
                op.insert("operationId".into(), json!(id));
            }
            for p in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                let (name, place) = (p["name"].as_str().unwrap_or("").to_string(), p["in"].as_str().unwrap_or(""));
                if let Some(schema) = parameter(path, &name, place) {
                    p["schema"] = schema;
                }
            }
            let responses = op.entry("responses").or_insert_with(|| json!({}));
            for (code, description) in common_responses(path, method) {
                if responses.get(code).is_none() {
                    responses[code] = error_response(description);
                }
            }
            let id = op.get("operationId").and_then(Value::as_str).unwrap_or("").to_string();
            if id == "getRendition" {
                // A video's rendition is MP4, a recording's M4A, a photo's JPEG.
                for code in ["200", "206"] {
                    if let Some(r) = op.get_mut("responses").and_then(|r| r.get_mut(code)) {
                        r["content"] = json!({"video/mp4": {}, "audio/mp4": {}, "image/jpeg": {}});
                    }
                }
            }
            for (code, target, parameters) in links(&id) {
                if let Some(r) = op.get_mut("responses").and_then(|r| r.get_mut(code)) {
                    let links = r.as_object_mut().unwrap().entry("links").or_insert_with(|| Value::Object(Map::new()));
                    links[target] = json!({"operationId": target, "parameters": parameters});
                }
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        crate::fuzzing::api_document()
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn every_operation_has_one_unique_name_and_its_roles() {
        let doc = doc();
        let ops = operations(&doc);
        assert_eq!(ops.len(), OPERATIONS.len(), "every operation is in OPERATIONS, and only those");
        let mut names = std::collections::HashSet::new();
        for (m, p, op) in &ops {
            let id = op["operationId"].as_str().unwrap();
            assert!(OPERATIONS.contains(&(m.as_str(), p.as_str(), id)), "{m} {p} is named {id}");
            assert!(names.insert(id.to_string()), "{id} twice");
            let roles = op["x-roles"].as_array().unwrap_or_else(|| panic!("{id} has no x-roles"));
            assert!(!roles.is_empty(), "{id}");
        }
    }

    #[test]
    fn every_parameter_states_what_its_handler_checks() {
        let doc = doc();
        for (m, p, op) in operations(&doc) {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let s = &param["schema"];
                let name = param["name"].as_str().unwrap();
                let stated = s.get("pattern").is_some()
                    || s.get("enum").is_some()
                    || s.get("format").is_some()
                    || s["type"] == "boolean"
                    || name == "Range"
                    || ["officer", "device", "station", "actor", "action"].contains(&name);
                assert!(stated, "{m} {p}: parameter {name} says nothing of what is accepted: {s}");
                if s["type"] == "integer" && name == "limit" {
                    assert!(s.get("maximum").is_some() && s["minimum"] == 1, "{m} {p}: {s}");
                }
            }
        }
    }

    #[test]
    fn every_operation_lists_the_common_answers_and_bodies_refuse_unknown_fields() {
        let doc = doc();
        for (m, p, op) in operations(&doc) {
            for code in ["401", "403", "429", "500"] {
                assert!(op["responses"].get(code).is_some(), "{m} {p} does not list {code}");
            }
            if let Some(r) = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() {
                let name = r.rsplit('/').next().unwrap();
                assert_eq!(
                    doc["components"]["schemas"][name]["additionalProperties"], false,
                    "{m} {p}: {name} must refuse unknown fields, as its handler does"
                );
            }
        }
    }

    #[test]
    fn links_name_real_operations() {
        let doc = doc();
        let ids: Vec<String> =
            operations(&doc).iter().map(|(_, _, op)| op["operationId"].as_str().unwrap().to_string()).collect();
        let mut n = 0;
        for (_, _, op) in operations(&doc) {
            for r in op["responses"].as_object().unwrap().values() {
                for l in r["links"].as_object().into_iter().flat_map(|l| l.values()) {
                    assert!(ids.contains(&l["operationId"].as_str().unwrap().to_string()), "{l}");
                    n += 1;
                }
            }
        }
        assert!(n >= 15, "the case, media, hold and export flows are linked ({n} links)");
    }

    #[test]
    fn the_patterns_accept_what_the_handlers_accept_and_refuse_the_rest() {
        let case = regex::Regex::new(CASE_ID).unwrap();
        for id in ["2026-0457", "K-77", "a", "Fall 12 (Nord)", "é", "x y"] {
            assert!(crate::rules::cases::valid_case_id(id) && case.is_match(id), "{id:?}");
        }
        for id in ["", " a", "a ", "a/b", "a\\b", "a\nb", "\u{7f}", "\u{85}x"] {
            assert!(!crate::rules::cases::valid_case_id(id) && !case.is_match(id), "{id:?}");
        }
        let media = regex::Regex::new(MEDIA_ID).unwrap();
        assert!(media.is_match(&"ab".repeat(32)));
        assert!(!media.is_match(&"AB".repeat(32)) && !media.is_match(&"ab".repeat(31)));
    }
}
