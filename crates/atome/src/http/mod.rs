//! HTTP plumbing shared by every plugin: the error type and the extractors.
pub mod client_ip;
pub mod error;
pub mod extract;
pub mod server;

pub use error::{ApiError, ApiResult};
pub use extract::{ApiJson, ApiPath, ClientIp};

use axum::Json;
use serde_json::{Map, Value};

/// A success body: the given object with `"success": true` added.
pub fn ok(body: Value) -> Json<Value> {
    let mut map = match body {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            let mut m = Map::new();
            m.insert("data".into(), other);
            m
        }
    };
    map.insert("success".into(), Value::Bool(true));
    Json(Value::Object(map))
}
