//! One-time codes: `POST /auth/otp/request` sends one, `POST /auth/otp/verify` spends it.
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::tokens::{random_hex, sha256_hex};
use super::Identity;
use crate::db::now_ms;
use crate::http::{ok, ApiError, ApiJson, ApiResult, ClientIp};

pub const OTP_TTL: Duration = Duration::from_secs(5 * 60);
pub const OTP_MAX_WRONG: i64 = 5;
pub(super) const OTP_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OtpRequest {
    phone_e164: String,
}

pub(super) async fn request(
    State(id): State<Identity>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<OtpRequest>,
) -> ApiResult<Json<Value>> {
    let phone = id.normalize(&body.phone_e164)?;
    id.0.otp_per_ip.check(&ip)?;
    id.0.otp_per_number.check(&phone)?;
    let code = otp_code();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO otp_codes (phone_e164, code_hash, expires_at, attempts, created_at) VALUES (?, ?, ?, 0, ?) \
         ON CONFLICT (phone_e164) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at, \
         attempts = 0, created_at = excluded.created_at",
    )
    .bind(&phone)
    .bind(code_hash(&phone, &code))
    .bind(now + OTP_TTL.as_millis() as i64)
    .bind(now)
    .execute(&id.0.core.db)
    .await?;
    id.0.sms.send_code(&phone, &code).await?;
    Ok(ok(json!({"expires_in": OTP_TTL.as_secs()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OtpVerify {
    phone_e164: String,
    code: String,
    display_name: Option<String>,
}

pub(super) async fn verify(State(id): State<Identity>, ApiJson(body): ApiJson<OtpVerify>) -> ApiResult<Json<Value>> {
    let phone = id.normalize(&body.phone_e164)?;
    let db = &id.0.core.db;
    let row: Option<(String, i64, i64)> = sqlx::query_as("SELECT code_hash, expires_at, attempts FROM otp_codes WHERE phone_e164 = ?")
        .bind(&phone)
        .fetch_optional(db)
        .await?;
    let invalid = || ApiError::bad_request("invalid_code", "wrong or already used code");
    let Some((hash, expires_at, attempts)) = row else {
        return Err(invalid());
    };
    if expires_at <= now_ms() {
        sqlx::query("DELETE FROM otp_codes WHERE phone_e164 = ?").bind(&phone).execute(db).await?;
        return Err(ApiError::bad_request("code_expired", "the code has expired; request a new one"));
    }
    if hash != code_hash(&phone, body.code.trim()) {
        let attempts = attempts + 1;
        if attempts >= OTP_MAX_WRONG {
            sqlx::query("DELETE FROM otp_codes WHERE phone_e164 = ?").bind(&phone).execute(db).await?;
            return Err(ApiError::bad_request("too_many_attempts", "too many wrong codes; request a new one"));
        }
        sqlx::query("UPDATE otp_codes SET attempts = ? WHERE phone_e164 = ?").bind(attempts).bind(&phone).execute(db).await?;
        return Err(invalid());
    }
    // Single use: only the request that deletes the row may log in.
    let deleted = sqlx::query("DELETE FROM otp_codes WHERE phone_e164 = ? AND code_hash = ?").bind(&phone).bind(&hash).execute(db).await?;
    if deleted.rows_affected() == 0 {
        return Err(invalid());
    }
    let user = id.find_or_create(&phone, body.display_name.as_deref()).await?;
    id.login_response(user).await
}

/// A uniformly random 6-digit code.
fn otp_code() -> String {
    let hex = random_hex(8);
    let n = u64::from_str_radix(&hex, 16).unwrap_or(0); // 16 hex digits always fit a u64
    format!("{:06}", n % 1_000_000)
}

fn code_hash(phone_e164: &str, code: &str) -> String {
    sha256_hex(&format!("{phone_e164}:{code}"))
}
