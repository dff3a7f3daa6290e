//! One-time codes: `POST /auth/otp/request` sends one, `POST /auth/otp/verify` spends it. Each
//! number has one row: its live code (replaced by every request, with fresh tries) and its guess
//! window, which outlives codes. The limits around them are in limits.rs.
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::limits::source_of;
use super::Identity;
use crate::db::{now_ms, Db};
use crate::http::{ok, ApiError, ApiJson, ApiResult, ClientIp};
use crate::secret::{random_hex, ServerSecret};

pub const OTP_TTL: Duration = Duration::from_secs(5 * 60);
/// Judgments per code: five wrong guesses spend it.
pub const OTP_MAX_WRONG: i64 = 5;
/// The window of a number's guess budget.
const GUESS_WINDOW_MS: i64 = 60 * 60 * 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OtpRequest {
    phone_e164: String,
}

/// Sends a one-time code to the number (`--sms-sender`).
#[utoipa::path(post, path = "/auth/otp/request", operation_id = "otp_request", tag = "identity", request_body = OtpRequest, responses((status = 200, description = "`{expires_in}` (seconds)"), (status = 400, description = "Invalid input (`code` says which)"), (status = 429, description = "Rate limited (`retry_after` in seconds)"), (status = 503, description = "`otp_unavailable`: no SMS sender")))]
pub(super) async fn request(
    State(id): State<Identity>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<OtpRequest>,
) -> ApiResult<Json<Value>> {
    if id.0.sms.is_off() {
        return Err(super::sms::codes_off());
    }
    let phone = id.normalize(&body.phone_e164)?;
    id.0.limits.request(&phone, source_of(ip))?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OtpVerify {
    phone_e164: String,
    code: String,
    display_name: Option<String>,
}

/// Checks a one-time code; the user is created at first login.
#[utoipa::path(post, path = "/auth/otp/verify", operation_id = "otp_verify", tag = "identity", request_body = OtpVerify, responses((status = 200, description = "`{token, user}`"), (status = 400, description = "Invalid input (`code` says which)"), (status = 429, description = "Rate limited (`retry_after` in seconds)")))]
pub(super) async fn verify(
    State(id): State<Identity>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<OtpVerify>,
) -> ApiResult<Json<Value>> {
    let phone = id.normalize(&body.phone_e164)?;
    let source = source_of(ip);
    id.0.limits.guess(&phone, source)?;
    let db = &id.0.core.db;
    let now = now_ms();
    // One statement takes a judgment, or none: one of the live code's tries and one of the
    // number's guesses this hour. Concurrent guesses cannot read the same counts, so a code is
    // judged at most OTP_MAX_WRONG times and a number at most its budget, whatever the burst.
    let taken: Option<(String, i64)> = sqlx::query_as(
        "UPDATE otp_codes SET attempts = attempts + 1, \
         guesses = CASE WHEN guess_window_start <= ?4 THEN 1 ELSE guesses + 1 END, \
         guess_window_start = CASE WHEN guess_window_start <= ?4 THEN ?2 ELSE guess_window_start END \
         WHERE phone_e164 = ?1 AND code_hash IS NOT NULL AND expires_at > ?2 AND attempts < ?3 \
         AND (guess_window_start <= ?4 OR guesses < ?5) \
         RETURNING code_hash, attempts",
    )
    .bind(&phone)
    .bind(now)
    .bind(OTP_MAX_WRONG)
    .bind(now - GUESS_WINDOW_MS)
    .bind(id.0.limits.guesses_per_number_hour)
    .fetch_optional(db)
    .await?;
    let Some((hash, attempts)) = taken else {
        return Err(not_judged(db, &phone, now, id.0.limits.guesses_per_number_hour).await?);
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
    id.0.limits.logged_in(&phone, source);
    let user = id.find_or_create(&phone, body.display_name.as_deref()).await?;
    id.login_response(user).await
}

/// Why a guess was not judged: no live code, an expired one, a number whose guesses this hour
/// are spent, or a code whose tries are spent.
async fn not_judged(db: &Db, phone: &str, now: i64, budget: u32) -> Result<ApiError, ApiError> {
    let row: Option<(bool, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT code_hash IS NOT NULL, expires_at, attempts, guess_window_start, guesses FROM otp_codes WHERE phone_e164 = ?",
    )
    .bind(phone)
    .fetch_optional(db)
    .await?;
    let Some((true, expires_at, attempts, window_start, guesses)) = row else {
        return Ok(ApiError::bad_request("invalid_code", "wrong or already used code"));
    };
    Ok(if expires_at <= now {
        // Said once; then the number has no code.
        sqlx::query("UPDATE otp_codes SET code_hash = NULL WHERE phone_e164 = ? AND expires_at <= ?")
            .bind(phone)
            .bind(now)
            .execute(db)
            .await?;
        ApiError::bad_request("code_expired", "the code has expired; request a new one")
    } else if window_start + GUESS_WINDOW_MS > now && guesses >= i64::from(budget) {
        // Before the code's tries: a new code would not help until the window ends.
        crate::telemetry::rate_limited("otp_guesses_per_number");
        ApiError::RateLimited { retry_after: Duration::from_millis((window_start + GUESS_WINDOW_MS - now) as u64) }
    } else if attempts >= OTP_MAX_WRONG {
        ApiError::bad_request("too_many_attempts", "too many wrong codes; request a new one")
    } else {
        // The code was replaced or spent between the two statements.
        ApiError::bad_request("invalid_code", "wrong or already used code")
    })
}

/// Deletes the rows of numbers with no live code and no guess window open (runs in the background).
pub(super) fn forget_stale(db: &Db) {
    let db = db.clone();
    tokio::spawn(async move {
        let now = now_ms();
        let deleted = sqlx::query("DELETE FROM otp_codes WHERE (code_hash IS NULL OR expires_at <= ?1) AND guess_window_start <= ?1 - ?2")
            .bind(now)
            .bind(GUESS_WINDOW_MS)
            .execute(&db)
            .await;
        if let Err(e) = deleted {
            tracing::warn!("cannot forget stale one-time codes: {e}");
        }
    });
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
