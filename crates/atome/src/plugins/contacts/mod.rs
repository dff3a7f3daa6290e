//! Connection requests between users: request, accept, reject, block.
//!
//! A request is addressed to a phone number, registered or not, so that nobody can learn
//! whether a number has an account. A block is never revealed to the blocked sender.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::Core;
use crate::db::{iso, new_id, now_ms, Db};
use crate::http::{ok, ApiError, ApiJson, ApiResult, ClientIp};
use crate::plugins::identity::{find_by_phone, phone, AuthUser, User};
use crate::plugins::Plugin;
use crate::ratelimit::KeyedLimit;

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Contacts(Arc<ContactsInner>);

pub struct ContactsInner {
    core: Core,
    per_user: KeyedLimit<String>,
    per_ip: KeyedLimit<IpAddr>,
}

impl FromRef<Contacts> for Core {
    fn from_ref(state: &Contacts) -> Core {
        state.0.core.clone()
    }
}

impl Contacts {
    pub fn new(core: Core) -> Contacts {
        let limits = &core.config.limits;
        Contacts(Arc::new(ContactsInner {
            per_user: KeyedLimit::new("contact_request_per_user", limits.contact_requests_per_hour, HOUR),
            per_ip: KeyedLimit::new("contact_request_per_ip", limits.contact_requests_per_ip_hour, HOUR),
            core,
        }))
    }

    fn prune_limits(&self) {
        self.0.per_user.prune();
        self.0.per_ip.prune();
    }
}

impl Plugin for Contacts {
    fn name(&self) -> &'static str {
        "contacts"
    }

    fn maintain(&self) {
        self.prune_limits();
    }

    fn router(&self) -> OpenApiRouter {
        OpenApiRouter::new()
            .routes(routes!(request))
            .routes(routes!(list_requests))
            .routes(routes!(respond))
            .routes(routes!(list_contacts))
            .with_state(self.clone())
    }

    fn user_created_sql(&self) -> &'static [&'static str] {
        &["UPDATE connection_requests SET to_user_id = ?1 WHERE to_phone_e164 = ?2 AND to_user_id IS NULL"]
    }
}

/// Whether `a` and `b` have an accepted connection request between them (either direction).
pub async fn are_connected(db: &Db, a: &User, b: &User) -> Result<bool, ApiError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM connection_requests WHERE status = 'accepted' AND \
         ((from_user_id = ?1 AND to_phone_e164 = ?4) OR (from_user_id = ?3 AND to_phone_e164 = ?2)) LIMIT 1",
    )
    .bind(&a.user_id)
    .bind(&a.phone_e164)
    .bind(&b.user_id)
    .bind(&b.phone_e164)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

#[derive(Debug, sqlx::FromRow)]
struct RequestRow {
    request_id: String,
    from_user_id: String,
    to_phone_e164: String,
    status: String,
}

async fn find_between(db: &Db, from_user_id: &str, to_phone: &str) -> Result<Option<RequestRow>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT request_id, from_user_id, to_phone_e164, status FROM connection_requests \
         WHERE from_user_id = ? AND to_phone_e164 = ?",
    )
    .bind(from_user_id)
    .bind(to_phone)
    .fetch_optional(db)
    .await?)
}

async fn set_status(db: &Db, request_id: &str, status: &str, to_user_id: Option<&str>) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE connection_requests SET status = ?, updated_at = ?, to_user_id = COALESCE(?, to_user_id) \
         WHERE request_id = ?",
    )
    .bind(status)
    .bind(now_ms())
    .bind(to_user_id)
    .bind(request_id)
    .execute(db)
    .await?;
    Ok(())
}

fn answer(request_id: &str, status: &str) -> Json<Value> {
    ok(json!({"request_id": request_id, "status": status}))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    to_phone_e164: String,
}

/// Asks the owner of a phone number to connect (registered or not: the answer is the same).
#[utoipa::path(post, path = "/contacts/request", operation_id = "contact_request", tag = "contacts", request_body = RequestBody, responses((status = 200, description = "`{request: {request_id, status, ...}}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token"), (status = 429, description = "Rate limited (`retry_after` in seconds)")), security(("bearer" = [])))]
async fn request(
    State(c): State<Contacts>,
    ClientIp(ip): ClientIp,
    auth: AuthUser,
    ApiJson(body): ApiJson<RequestBody>,
) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let db = &c.0.core.db;
    let to = phone::normalize(&body.to_phone_e164, &c.0.core.config.phone_region)?;
    if to == me.phone_e164 {
        return Err(ApiError::bad_request("self_request", "you cannot send a connection request to yourself"));
    }
    c.0.per_ip.check(&ip)?;
    c.0.per_user.check(&me.user_id)?;
    let target = find_by_phone(db, &to).await?;
    if let Some(target) = &target {
        // The other side already asked: accepting theirs connects both.
        if let Some(theirs) = find_between(db, &target.user_id, &me.phone_e164).await? {
            match theirs.status.as_str() {
                "pending" => {
                    set_status(db, &theirs.request_id, "accepted", Some(&me.user_id)).await?;
                    tracing::info!(request_id = %theirs.request_id, "mutual connection requests: accepted");
                    return Ok(answer(&theirs.request_id, "accepted"));
                }
                "accepted" => return Ok(answer(&theirs.request_id, "accepted")),
                _ => {} // I rejected or blocked them before: asking them now is a new request.
            }
        }
    }
    if let Some(mine) = find_between(db, &me.user_id, &to).await? {
        return Ok(match mine.status.as_str() {
            "accepted" => answer(&mine.request_id, "accepted"),
            // A block is never revealed to the sender.
            "blocked" | "pending" => answer(&mine.request_id, "pending"),
            _ => {
                set_status(db, &mine.request_id, "pending", None).await?;
                answer(&mine.request_id, "pending")
            }
        });
    }
    let request_id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO connection_requests (request_id, from_user_id, to_user_id, to_phone_e164, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (from_user_id, to_phone_e164) DO NOTHING",
    )
    .bind(&request_id)
    .bind(&me.user_id)
    .bind(target.as_ref().map(|t| t.user_id.as_str()))
    .bind(&to)
    .bind(now)
    .bind(now)
    .execute(db)
    .await?;
    // A concurrent identical request may have won the insert: answer with the stored one.
    let stored = find_between(db, &me.user_id, &to).await?.ok_or_else(|| ApiError::Internal("connection request vanished".into()))?;
    Ok(answer(&stored.request_id, "pending"))
}

/// Connection requests sent and received.
#[utoipa::path(get, path = "/contacts/requests", operation_id = "contact_requests", tag = "contacts", responses((status = 200, description = "`{incoming: [...], outgoing: [...]}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token")), security(("bearer" = [])))]
async fn list_requests(State(c): State<Contacts>, auth: AuthUser) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let db = &c.0.core.db;
    let incoming: Vec<(String, i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT r.request_id, r.created_at, u.user_id, u.phone_e164, u.display_name, u.created_at \
         FROM connection_requests r JOIN users u ON u.user_id = r.from_user_id \
         WHERE r.to_phone_e164 = ? AND r.status = 'pending' ORDER BY r.created_at",
    )
    .bind(&me.phone_e164)
    .fetch_all(db)
    .await?;
    let incoming: Vec<Value> = incoming
        .into_iter()
        .map(|(request_id, created_at, user_id, phone_e164, display_name, user_created)| {
            let from = User { user_id, phone_e164, display_name, created_at: user_created };
            json!({"request_id": request_id, "from": from.view(), "status": "pending", "created_at": iso(created_at)})
        })
        .collect();
    // Outgoing requests show the number only: whether it has an account is not revealed.
    let outgoing: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT request_id, to_phone_e164, created_at FROM connection_requests \
         WHERE from_user_id = ? AND status IN ('pending', 'blocked') ORDER BY created_at",
    )
    .bind(&me.user_id)
    .fetch_all(db)
    .await?;
    let outgoing: Vec<Value> = outgoing
        .into_iter()
        .map(|(request_id, to_phone, created_at)| {
            json!({"request_id": request_id, "to": {"phone_e164": to_phone}, "status": "pending", "created_at": iso(created_at)})
        })
        .collect();
    Ok(ok(json!({"incoming": incoming, "outgoing": outgoing})))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum Decision {
    Accepted,
    Rejected,
    Blocked,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
            Decision::Blocked => "blocked",
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RespondBody {
    request_id: String,
    decision: Decision,
}

/// Accepts, rejects or blocks a request addressed to the user.
#[utoipa::path(post, path = "/contacts/respond", operation_id = "contact_respond", tag = "contacts", request_body = RespondBody, responses((status = 200, description = "`{request: {...}}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token"), (status = 404, description = "No such request for this user")), security(("bearer" = [])))]
async fn respond(State(c): State<Contacts>, auth: AuthUser, ApiJson(body): ApiJson<RespondBody>) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let db = &c.0.core.db;
    let row: Option<RequestRow> =
        sqlx::query_as("SELECT request_id, from_user_id, to_phone_e164, status FROM connection_requests WHERE request_id = ?")
            .bind(&body.request_id)
            .fetch_optional(db)
            .await?;
    let row = row.ok_or_else(|| ApiError::not_found("no such connection request"))?;
    if row.to_phone_e164 != me.phone_e164 {
        return Err(ApiError::forbidden("not_recipient", "only the recipient may respond to a connection request"));
    }
    debug_assert_ne!(row.from_user_id, me.user_id);
    if row.status != "pending" && body.decision != Decision::Blocked && row.status != body.decision.as_str() {
        return Err(ApiError::conflict(
            "already_responded",
            format!("this request was already {}; only blocking is still possible", row.status),
        ));
    }
    set_status(db, &row.request_id, body.decision.as_str(), Some(&me.user_id)).await?;
    Ok(answer(&row.request_id, body.decision.as_str()))
}

/// The user's connections.
#[utoipa::path(get, path = "/contacts", operation_id = "contacts", tag = "contacts", responses((status = 200, description = "`{contacts: [...]}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token")), security(("bearer" = [])))]
async fn list_contacts(State(c): State<Contacts>, auth: AuthUser) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT u.user_id, u.phone_e164, u.display_name, MIN(r.updated_at) FROM connection_requests r \
         JOIN users u ON (r.from_user_id = ?1 AND u.phone_e164 = r.to_phone_e164) \
                      OR (r.to_phone_e164 = ?2 AND u.user_id = r.from_user_id) \
         WHERE r.status = 'accepted' GROUP BY u.user_id ORDER BY u.display_name",
    )
    .bind(&me.user_id)
    .bind(&me.phone_e164)
    .fetch_all(&c.0.core.db)
    .await?;
    let contacts: Vec<Value> = rows
        .into_iter()
        .map(|(user_id, phone_e164, display_name, since)| {
            json!({"user_id": user_id, "phone_e164": phone_e164, "display_name": display_name, "since": iso(since)})
        })
        .collect();
    Ok(ok(json!({"contacts": contacts})))
}
