//! Bearer tokens: random, returned once, stored as SHA-256.
use super::User;
use crate::db::{now_ms, Db};
use crate::http::ApiError;
use crate::secret::{random_hex, sha256_hex};

/// Issues a new token for `user_id`; only its hash is stored.
pub async fn issue(db: &Db, user_id: &str, lifetime: std::time::Duration) -> Result<String, ApiError> {
    let token = format!("atk_{}", random_hex(32));
    let now = now_ms();
    sqlx::query("INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .bind(sha256_hex(&token))
        .bind(user_id)
        .bind(now)
        .bind(now + lifetime.as_millis() as i64)
        .execute(db)
        .await?;
    Ok(token)
}

/// The user owning a valid (unexpired, unrevoked) token, and the token's hash.
pub async fn authenticate(db: &Db, token: &str) -> Result<(User, String), ApiError> {
    if token.len() > 128 {
        return Err(ApiError::Unauthorized("invalid or expired token".into()));
    }
    let hash = sha256_hex(token);
    let user: Option<User> = sqlx::query_as(
        "SELECT u.user_id, u.phone_e164, u.display_name, u.created_at FROM tokens t \
         JOIN users u ON u.user_id = t.user_id \
         WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > ?",
    )
    .bind(&hash)
    .bind(now_ms())
    .fetch_optional(db)
    .await?;
    user.map(|u| (u, hash)).ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))
}

pub async fn revoke(db: &Db, token_hash: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}
