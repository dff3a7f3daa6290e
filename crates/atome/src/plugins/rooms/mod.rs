//! Rooms: creation, invites gated by accepted connections, and who may join.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::Json;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sfu::rtp_parameters::RtpCapabilities;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::Core;
use crate::db::{iso, new_id, now_ms, Db};
use crate::http::{ok, ApiError, ApiJson, ApiPath, ApiResult, ClientIp};
use crate::plugins::contacts::are_connected;
use crate::plugins::identity::{find_by_id, find_by_phone, phone, AuthUser, User};
use crate::plugins::Plugin;
use crate::ratelimit::KeyedLimit;

const NAME_MAX: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Connections,
    Public,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Connections => "connections",
            Visibility::Public => "public",
        }
    }
    fn parse(s: &str) -> Visibility {
        match s {
            "public" => Visibility::Public,
            "connections" => Visibility::Connections,
            _ => Visibility::Private,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Room {
    pub room_id: String,
    pub owner_user_id: String,
    pub name: String,
    pub visibility: Visibility,
    pub created_at: i64,
}

impl Room {
    fn view(&self) -> Value {
        json!({
            "room_id": self.room_id,
            "owner_user_id": self.owner_user_id,
            "name": self.name,
            "visibility": self.visibility.as_str(),
            "created_at": iso(self.created_at),
        })
    }
}

type RoomRow = (String, String, String, String, i64);

fn room_from_row((room_id, owner_user_id, name, visibility, created_at): RoomRow) -> Room {
    Room { room_id, owner_user_id, name, visibility: Visibility::parse(&visibility), created_at }
}

pub async fn find_room(db: &Db, room_id: &str) -> Result<Option<Room>, ApiError> {
    let row: Option<RoomRow> = sqlx::query_as("SELECT room_id, owner_user_id, name, visibility, created_at FROM rooms WHERE room_id = ?")
        .bind(room_id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(room_from_row))
}

async fn is_invited(db: &Db, room_id: &str, user: &User) -> Result<bool, ApiError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM room_invites WHERE room_id = ? AND invitee_phone = ?")
        .bind(room_id)
        .bind(&user.phone_e164)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

async fn is_member(db: &Db, room_id: &str, user_id: &str) -> Result<bool, ApiError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM room_members WHERE room_id = ? AND user_id = ?")
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// The join rule: the owner, an invitee, anyone for `public`, the owner's connections for
/// `connections`.
pub async fn may_join(db: &Db, room: &Room, user: &User) -> Result<bool, ApiError> {
    if room.owner_user_id == user.user_id || room.visibility == Visibility::Public {
        return Ok(true);
    }
    if is_invited(db, &room.room_id, user).await? {
        return Ok(true);
    }
    if room.visibility == Visibility::Connections {
        if let Some(owner) = find_by_id(db, &room.owner_user_id).await? {
            return are_connected(db, &owner, user).await;
        }
    }
    Ok(false)
}

/// The room if `user` may join it; 404 otherwise, so a private room's existence is not revealed.
pub async fn visible_room(db: &Db, room_id: &str, user: &User) -> Result<Room, ApiError> {
    let not_found = || ApiError::not_found("no such room");
    let room = find_room(db, room_id).await?.ok_or_else(not_found)?;
    if may_join(db, &room, user).await? {
        Ok(room)
    } else {
        Err(not_found())
    }
}

/// What this plugin asks of the call plugin (media), which owns all media state.
pub trait Calls: Send + Sync {
    /// The routers' rtpCapabilities, as a joining device needs them.
    fn rtp_capabilities(&self) -> &RtpCapabilities;
    /// Who is in the room's call right now (once per user, in joining order).
    fn participants(&self, room_id: &str) -> BoxFuture<'static, Vec<Participant>>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    pub user_id: String,
    pub display_name: String,
}

#[derive(Clone)]
pub struct Rooms(Arc<RoomsInner>);

pub struct RoomsInner {
    core: Core,
    calls: Arc<dyn Calls>,
    joins_per_user: KeyedLimit<String>,
    joins_per_ip: KeyedLimit<IpAddr>,
}

impl FromRef<Rooms> for Core {
    fn from_ref(state: &Rooms) -> Core {
        state.0.core.clone()
    }
}

impl Rooms {
    pub fn new(core: Core, calls: Arc<dyn Calls>) -> Rooms {
        let limits = &core.config.limits;
        Rooms(Arc::new(RoomsInner {
            calls,
            joins_per_user: KeyedLimit::new("room_join_per_user", limits.joins_per_minute, Duration::from_secs(60)),
            joins_per_ip: KeyedLimit::new("room_join_per_ip", limits.joins_per_ip_minute, Duration::from_secs(60)),
            core,
        }))
    }

    fn prune_limits(&self) {
        self.0.joins_per_user.prune();
        self.0.joins_per_ip.prune();
    }
}

impl Plugin for Rooms {
    fn name(&self) -> &'static str {
        "rooms"
    }

    fn maintain(&self) {
        self.prune_limits();
    }

    fn router(&self) -> OpenApiRouter {
        OpenApiRouter::new()
            .routes(routes!(create, list))
            .routes(routes!(show))
            .routes(routes!(invite))
            .routes(routes!(join))
            .with_state(self.clone())
    }

    fn user_created_sql(&self) -> &'static [&'static str] {
        &["UPDATE room_invites SET invitee_user_id = ?1 WHERE invitee_phone = ?2 AND invitee_user_id IS NULL"]
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: Option<String>,
    visibility: Option<Visibility>,
}

/// Creates a room owned by the user.
#[utoipa::path(post, path = "/rooms", operation_id = "create_room", tag = "rooms", request_body = CreateBody, responses((status = 200, description = "`{room: {room_id, name, visibility, owner_user_id, created_at}}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token")), security(("bearer" = [])))]
async fn create(State(r): State<Rooms>, auth: AuthUser, ApiJson(body): ApiJson<CreateBody>) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let name = match body.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) if n.chars().count() > NAME_MAX => {
            return Err(ApiError::bad_request("invalid_name", format!("a room name has at most {NAME_MAX} characters")))
        }
        Some(n) => n.to_string(),
        None => format!("{}'s room", me.display_name),
    };
    let room = Room {
        room_id: new_id(),
        owner_user_id: me.user_id.clone(),
        name,
        visibility: body.visibility.unwrap_or(Visibility::Private),
        created_at: now_ms(),
    };
    sqlx::query("INSERT INTO rooms (room_id, owner_user_id, name, visibility, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(&room.room_id)
        .bind(&room.owner_user_id)
        .bind(&room.name)
        .bind(room.visibility.as_str())
        .bind(room.created_at)
        .execute(&r.0.core.db)
        .await?;
    let mut body = room.view();
    body["success"] = json!(true);
    Ok(Json(body))
}

/// Rooms the user owns, was invited to or is a member of.
#[utoipa::path(get, path = "/rooms", operation_id = "list_rooms", tag = "rooms", responses((status = 200, description = "`{rooms: [...]}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token")), security(("bearer" = [])))]
async fn list(State(r): State<Rooms>, auth: AuthUser) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let rows: Vec<RoomRow> = sqlx::query_as(
        "SELECT room_id, owner_user_id, name, visibility, created_at FROM rooms WHERE owner_user_id = ?1 \
         UNION SELECT r.room_id, r.owner_user_id, r.name, r.visibility, r.created_at FROM rooms r \
         JOIN room_invites i ON i.room_id = r.room_id WHERE i.invitee_phone = ?2 \
         ORDER BY created_at DESC",
    )
    .bind(&me.user_id)
    .bind(&me.phone_e164)
    .fetch_all(&r.0.core.db)
    .await?;
    let rooms: Vec<Value> = rows
        .into_iter()
        .map(room_from_row)
        .map(|room| {
            let role = if room.owner_user_id == me.user_id { "owner" } else { "invited" };
            let mut v = room.view();
            v["role"] = json!(role);
            v
        })
        .collect();
    Ok(ok(json!({"rooms": rooms})))
}

/// One room the user may see, with the participants of its call.
#[utoipa::path(get, path = "/rooms/{room_id}", operation_id = "show_room", tag = "rooms", params(("room_id" = String, Path, description = "The room's id")), responses((status = 200, description = "`{room: {...}, participants: [...]}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token"), (status = 404, description = "No such room, or not visible to the user")), security(("bearer" = [])))]
async fn show(State(r): State<Rooms>, auth: AuthUser, ApiPath(room_id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let room = visible_room(&r.0.core.db, &room_id, &auth.user).await?;
    let mut body = room.view();
    body["participants"] = json!(r.0.calls.participants(&room.room_id).await);
    body["success"] = json!(true);
    Ok(Json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    to_phone_e164: String,
}

/// Invites a phone number to a private room (owner only).
#[utoipa::path(post, path = "/rooms/{room_id}/invite", operation_id = "invite_to_room", tag = "rooms", request_body = InviteBody, params(("room_id" = String, Path, description = "The room's id")), responses((status = 200, description = "`{invite: {...}}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token"), (status = 403, description = "Not the owner"), (status = 404, description = "No such room")), security(("bearer" = [])))]
async fn invite(
    State(r): State<Rooms>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let db = &r.0.core.db;
    let room = visible_room(db, &room_id, &me).await?;
    let to = phone::normalize(&body.to_phone_e164, &r.0.core.config.phone_region)?;
    if to == me.phone_e164 {
        return Err(ApiError::bad_request("self_invite", "you cannot invite yourself"));
    }
    let participant =
        room.owner_user_id == me.user_id || is_invited(db, &room.room_id, &me).await? || is_member(db, &room.room_id, &me.user_id).await?;
    if !participant {
        return Err(ApiError::forbidden("not_participant", "only the owner or a participant may invite"));
    }
    let invitee = find_by_phone(db, &to).await?;
    if room.visibility != Visibility::Public {
        let connected = match &invitee {
            Some(invitee) => are_connected(db, &me, invitee).await?,
            None => false,
        };
        if !connected {
            return Err(ApiError::forbidden("not_connected", "you can only invite your connections to this room"));
        }
    }
    sqlx::query(
        "INSERT INTO room_invites (room_id, invitee_phone, invitee_user_id, invited_by, created_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (room_id, invitee_phone) DO NOTHING",
    )
    .bind(&room.room_id)
    .bind(&to)
    .bind(invitee.as_ref().map(|u| u.user_id.as_str()))
    .bind(&me.user_id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(ok(json!({"room_id": room.room_id})))
}

/// A join token for the WebSocket `joinRoom` (valid 2 minutes) and the router's capabilities.
#[utoipa::path(post, path = "/rooms/{room_id}/join", operation_id = "join_room", tag = "rooms", params(("room_id" = String, Path, description = "The room's id")), responses((status = 200, description = "`{join_token, rtp_capabilities, ...}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token"), (status = 429, description = "Rate limited (`retry_after` in seconds)"), (status = 403, description = "Not allowed in this room"), (status = 404, description = "No such room")), security(("bearer" = [])))]
async fn join(State(r): State<Rooms>, ClientIp(ip): ClientIp, auth: AuthUser, ApiPath(room_id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let me = auth.user;
    let db = &r.0.core.db;
    let room = find_room(db, &room_id).await?.ok_or_else(|| ApiError::not_found("no such room"))?;
    if !may_join(db, &room, &me).await? {
        return Err(ApiError::forbidden("not_allowed", "you are not invited to this room"));
    }
    r.0.joins_per_ip.check(&ip)?;
    r.0.joins_per_user.check(&me.user_id)?;
    sqlx::query("INSERT INTO room_members (room_id, user_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        .bind(&room.room_id)
        .bind(&me.user_id)
        .bind(now_ms())
        .execute(db)
        .await?;
    let join_token = r.0.core.join_tokens.issue(&me.user_id, &room.room_id);
    Ok(ok(json!({
        "room_id": room.room_id,
        "rtpCapabilities": r.0.calls.rtp_capabilities(),
        "join_token": join_token,
    })))
}
