//! Identity by phone number: one-time codes, bearer tokens, users.
mod auth;
pub mod limits;
mod otp;
pub mod phone;
pub mod sms;
pub mod tokens;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::core::Core;
use crate::db::{iso, new_id, now_ms, Db};
use crate::http::{ok, ApiError, ApiJson, ApiResult};
use crate::plugins::Plugin;
use crate::secret::ServerSecret;
use limits::OtpLimits;
use sms::SmsSender;

pub use auth::AuthUser;
pub use otp::{OTP_MAX_WRONG, OTP_TTL};
const DISPLAY_NAME_MAX: usize = 64;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub user_id: String,
    pub phone_e164: String,
    pub display_name: String,
    pub created_at: i64,
}

/// `user` as clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub user_id: String,
    pub phone_e164: String,
    pub display_name: String,
    pub created_at: String,
}

impl User {
    pub fn view(&self) -> UserView {
        UserView {
            user_id: self.user_id.clone(),
            phone_e164: self.phone_e164.clone(),
            display_name: self.display_name.clone(),
            created_at: iso(self.created_at),
        }
    }
}

pub async fn find_by_phone(db: &Db, phone_e164: &str) -> Result<Option<User>, ApiError> {
    Ok(sqlx::query_as("SELECT user_id, phone_e164, display_name, created_at FROM users WHERE phone_e164 = ?")
        .bind(phone_e164)
        .fetch_optional(db)
        .await?)
}

pub async fn find_by_id(db: &Db, user_id: &str) -> Result<Option<User>, ApiError> {
    Ok(sqlx::query_as("SELECT user_id, phone_e164, display_name, created_at FROM users WHERE user_id = ?")
        .bind(user_id)
        .fetch_optional(db)
        .await?)
}

#[derive(Clone)]
pub struct Identity(Arc<IdentityInner>);

pub struct IdentityInner {
    core: Core,
    sms: SmsSender,
    /// Keys the hashes of one-time codes.
    secret: ServerSecret,
    limits: OtpLimits,
    user_created_sql: Vec<&'static str>,
}

impl FromRef<Identity> for Core {
    fn from_ref(state: &Identity) -> Core {
        state.0.core.clone()
    }
}

impl Identity {
    /// Checks this plugin's settings before anything starts.
    pub fn check_config(config: &Config) -> Result<(), String> {
        match phone::parse_region(&config.phone_region) {
            Some(_) => Ok(()),
            None => Err(format!("unknown --phone-region {:?} (use a two-letter code such as FR)", config.phone_region)),
        }
    }

    /// `user_created_sql`: the statements other plugins run when a user signs up.
    pub fn new(core: Core, secret: ServerSecret, user_created_sql: Vec<&'static str>) -> Identity {
        Identity(Arc::new(IdentityInner {
            sms: SmsSender::from_config(&core.config),
            secret,
            limits: OtpLimits::new(&core.config.limits),
            user_created_sql,
            core,
        }))
    }

    fn normalize(&self, phone: &str) -> Result<String, ApiError> {
        phone::normalize(phone, &self.0.core.config.phone_region)
    }

    /// Finds the user of `phone_e164`, creating it (and attaching what waited for that number).
    async fn find_or_create(&self, phone_e164: &str, display_name: Option<&str>) -> Result<User, ApiError> {
        if let Some(user) = find_by_phone(&self.0.core.db, phone_e164).await? {
            return Ok(user);
        }
        let display_name = match display_name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n.chars().take(DISPLAY_NAME_MAX).collect(),
            None => format!("User {}", &phone_e164[phone_e164.len().saturating_sub(4)..]),
        };
        let user = User { user_id: new_id(), phone_e164: phone_e164.into(), display_name, created_at: now_ms() };
        let mut tx = self.0.core.db.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, phone_e164, display_name, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (phone_e164) DO NOTHING",
        )
        .bind(&user.user_id)
        .bind(&user.phone_e164)
        .bind(&user.display_name)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // Two first logins raced: the other one created the user.
            tx.rollback().await?;
            return find_by_phone(&self.0.core.db, phone_e164)
                .await?
                .ok_or_else(|| ApiError::Internal("user vanished after conflict".into()));
        }
        for sql in &self.0.user_created_sql {
            sqlx::query(sql).bind(&user.user_id).bind(&user.phone_e164).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        tracing::info!(user_id = %user.user_id, phone = %phone::mask(phone_e164), "new user");
        Ok(user)
    }

    async fn login_response(&self, user: User) -> ApiResult<Json<Value>> {
        let token = tokens::issue(&self.0.core.db, &user.user_id, self.0.core.config.token_lifetime()).await?;
        Ok(ok(json!({"token": token, "user": user.view()})))
    }
}

impl Plugin for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn maintain(&self) {
        self.0.limits.prune();
        otp::forget_stale(&self.0.core.db);
    }

    fn router(&self) -> OpenApiRouter {
        let mut router =
            OpenApiRouter::new().routes(routes!(otp::request)).routes(routes!(otp::verify)).routes(routes!(me)).routes(routes!(logout));
        if self.0.core.config.dev_auth {
            router = router.routes(routes!(dev_login));
        }
        router.with_state(self.clone())
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DevLogin {
    phone_e164: String,
    display_name: Option<String>,
}

/// Logs in by phone number alone (only with `--dev-auth`).
#[utoipa::path(post, path = "/auth/dev-login", tag = "identity", request_body = DevLogin, responses((status = 200, description = "`{token, user}`"), (status = 400, description = "Invalid input (`code` says which)")))]
async fn dev_login(State(id): State<Identity>, ApiJson(body): ApiJson<DevLogin>) -> ApiResult<Json<Value>> {
    let phone = id.normalize(&body.phone_e164)?;
    let user = id.find_or_create(&phone, body.display_name.as_deref()).await?;
    id.login_response(user).await
}

/// The authenticated user.
#[utoipa::path(get, path = "/auth/me", tag = "identity", responses((status = 200, description = "`{user: {user_id, phone_e164, display_name, created_at}}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token")), security(("bearer" = [])))]
async fn me(auth: AuthUser) -> Json<Value> {
    ok(json!({"user": auth.user.view()}))
}

/// Revokes the bearer token used.
#[utoipa::path(post, path = "/auth/logout", tag = "identity", responses((status = 200, description = "`{}`: the token no longer works"), (status = 400, description = "Invalid input (`code` says which)"), (status = 401, description = "Missing, invalid or expired token")), security(("bearer" = [])))]
async fn logout(State(id): State<Identity>, auth: AuthUser) -> ApiResult<Json<Value>> {
    tokens::revoke(&id.0.core.db, &auth.token_hash).await?;
    Ok(ok(json!({})))
}
