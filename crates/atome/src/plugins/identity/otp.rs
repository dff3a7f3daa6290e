//! One-time codes: `POST /auth/otp/request` sends one, `POST /auth/otp/verify` spends it.
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::tokens::random_hex;
use super::Identity;
use crate::db::{now_ms, Db};
use crate::http::{ok, ApiError, ApiJson, ApiResult, ClientIp};
use crate::secret::ServerSecret;

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
    .bind(code_hash(&id.0.secret, &phone, &code))
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
    let now = now_ms();
    // One statement takes a judgment of the live code, or none: concurrent guesses cannot read
    // the same count, so a code is judged at most OTP_MAX_WRONG times whatever the burst.
    let taken: Option<(String, i64)> = sqlx::query_as(
        "UPDATE otp_codes SET attempts = attempts + 1 \
         WHERE phone_e164 = ?1 AND code_hash IS NOT NULL AND expires_at > ?2 AND attempts < ?3 \
         RETURNING code_hash, attempts",
    )
    .bind(&phone)
    .bind(now)
    .bind(OTP_MAX_WRONG)
    .fetch_optional(db)
    .await?;
    let Some((hash, attempts)) = taken else {
        return Err(not_judged(db, &phone, now).await?);
    };
    if !same_hash(&hash, &code_hash(&id.0.secret, &phone, body.code.trim())) {
        return Err(match OTP_MAX_WRONG - attempts {
            0 => ApiError::bad_request("invalid_code", "wrong code, and no tries left for it: request a new code"),
            left => ApiError::bad_request("invalid_code", format!("wrong code ({left} tries left)")),
        });
    }
    // Single use: only the request that clears the code may log in.
    let spent = sqlx::query("UPDATE otp_codes SET code_hash = NULL WHERE phone_e164 = ? AND code_hash = ?")
        .bind(&phone)
        .bind(&hash)
        .execute(db)
        .await?;
    if spent.rows_affected() == 0 {
        return Err(ApiError::bad_request("invalid_code", "wrong or already used code"));
    }
    let user = id.find_or_create(&phone, body.display_name.as_deref()).await?;
    id.login_response(user).await
}

/// Why a guess was not judged: no live code, an expired one, or one whose tries are spent.
async fn not_judged(db: &Db, phone: &str, now: i64) -> Result<ApiError, ApiError> {
    let row: Option<(bool, i64, i64)> =
        sqlx::query_as("SELECT code_hash IS NOT NULL, expires_at, attempts FROM otp_codes WHERE phone_e164 = ?")
            .bind(phone)
            .fetch_optional(db)
            .await?;
    Ok(match row {
        Some((true, expires_at, _)) if expires_at <= now => {
            // Said once; then the number has no code.
            sqlx::query("UPDATE otp_codes SET code_hash = NULL WHERE phone_e164 = ? AND expires_at <= ?")
                .bind(phone)
                .bind(now)
                .execute(db)
                .await?;
            ApiError::bad_request("code_expired", "the code has expired; request a new one")
        }
        Some((true, _, attempts)) if attempts >= OTP_MAX_WRONG => {
            ApiError::bad_request("too_many_attempts", "too many wrong codes; request a new one")
        }
        // No code, or one spent or replaced between the two statements.
        _ => ApiError::bad_request("invalid_code", "wrong or already used code"),
    })
}

/// Compares two hashes in time independent of where they differ.
fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A uniformly random 6-digit code.
fn otp_code() -> String {
    let hex = random_hex(8);
    let n = u64::from_str_radix(&hex, 16).unwrap_or(0); // 16 hex digits always fit a u64
    format!("{:06}", n % 1_000_000)
}

/// The stored form of a code: HMAC-SHA256 keyed with the server secret, so that a copy of the
/// database cannot be searched for the code (6 digits: a plain hash falls in a second).
fn code_hash(secret: &ServerSecret, phone_e164: &str, code: &str) -> String {
    secret.hmac_hex(format!("{phone_e164}:{code}").as_bytes())
}
