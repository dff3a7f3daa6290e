//! `GET /openapi.json` documents exactly the routes the server serves. Three ties, so that no
//! route can be added without this test seeing it:
//! - the source: no route is added with `.route(` (which would skip the document); the handlers
//!   named in `routes!(...)` are as many as the routes listed here;
//! - the document: its operations are exactly those listed here;
//! - the server: each listed route is served (not the "no such route" fallback, not 405).
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::TestServer;
use serde_json::Value;

/// Every route of every plugin, with the test configuration (`--dev-auth` on).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/auth/otp/request"),
    ("POST", "/auth/otp/verify"),
    ("GET", "/auth/me"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/dev-login"),
    ("POST", "/contacts/request"),
    ("GET", "/contacts/requests"),
    ("POST", "/contacts/respond"),
    ("GET", "/contacts"),
    ("POST", "/rooms"),
    ("GET", "/rooms"),
    ("GET", "/rooms/{room_id}"),
    ("POST", "/rooms/{room_id}/invite"),
    ("POST", "/rooms/{room_id}/join"),
    ("POST", "/rooms/{room_id}/record/start"),
    ("POST", "/rooms/{room_id}/record/stop"),
    ("GET", "/rooms/{room_id}/recordings"),
    ("GET", "/ws"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_route_is_registered_through_routes_macro() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut handlers = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        for bypass in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(!text.contains(bypass), "{} adds a route with `{bypass}`: use `routes!` so it is documented", file.display());
        }
        for (_, rest) in text.match_indices("routes!(").map(|(i, _)| ((), &text[i + "routes!(".len()..])) {
            let args = &rest[..rest.find(')').expect("routes!(...) closes")];
            handlers += args.split(',').filter(|a| !a.trim().is_empty()).count();
        }
    }
    assert_eq!(handlers, ROUTES.len(), "handlers in routes!(...) vs. routes listed in this test");
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let s = TestServer::start().await;
    let (status, doc) = s.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item") {
            if !["get", "post", "put", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                continue;
            }
            let text = format!("{}{}", op["summary"].as_str().unwrap_or(""), op["description"].as_str().unwrap_or(""));
            assert!(!text.trim().is_empty(), "{method} {path} has no description");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(operation_ids.insert(id.to_string()), "operationId {id} used twice");
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let listed: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, listed, "documented vs. listed");
    let distinct_paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    assert_eq!(paths.len(), distinct_paths.len());

    for (method, path) in ROUTES {
        let url = format!("{}{}", s.base, path.replace("{room_id}", "r_unknown"));
        let req = match *method {
            "GET" => s.http.get(&url),
            _ => s.http.post(&url).header("content-type", "application/json").body("{}"),
        };
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let body: Value = serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(Value::Null);
        let fallback = status == 404 && body["error"] == "no such route";
        assert!(!fallback && body["code"] != "method_not_allowed", "{method} {path} is not served: {status} {body}");
    }
    let (status, body) = s.get("/no/such/route", None).await;
    assert!(status == 404 && body["error"] == "no such route", "the probe can tell an unserved route: {body}");
    s.stop().await;
}
