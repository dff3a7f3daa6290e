//! Where one-time codes go: the log, a JSON-lines outbox file, a webhook, or nowhere (codes off).
use std::path::PathBuf;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::phone::mask;
use crate::config::{Config, SmsSenderKind};
use crate::db::{iso, now_ms};
use crate::http::ApiError;

pub enum SmsSender {
    Off,
    Log,
    File { path: PathBuf, lock: tokio::sync::Mutex<()> },
    Webhook { url: String, client: reqwest::Client },
}

impl SmsSender {
    /// The configured sender; says at start how codes go (the server builds it once).
    pub fn from_config(config: &Config) -> SmsSender {
        match config.sms_sender {
            SmsSenderKind::Off => {
                tracing::info!("one-time codes are off (--sms-sender none): POST /auth/otp/request answers 503 otp_unavailable");
                SmsSender::Off
            }
            SmsSenderKind::Log => {
                tracing::warn!(
                    "SMS sender `log`: one-time codes are written to this log, so whoever reads it can sign in as anyone; \
                     development only, never in production (use --sms-sender webhook, or none)"
                );
                SmsSender::Log
            }
            SmsSenderKind::File => SmsSender::File { path: config.data_dir.join("sms_outbox.jsonl"), lock: tokio::sync::Mutex::new(()) },
            SmsSenderKind::Webhook => SmsSender::Webhook {
                url: config.sms_webhook_url.clone().unwrap_or_default(),
                client: reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap_or_default(),
            },
        }
    }

    pub fn is_off(&self) -> bool {
        matches!(self, SmsSender::Off)
    }

    pub async fn send_code(&self, phone_e164: &str, code: &str) -> Result<(), ApiError> {
        match self {
            SmsSender::Off => Err(codes_off()),
            SmsSender::Log => {
                tracing::info!(phone = %mask(phone_e164), %code, "one-time code (log SMS sender)");
                Ok(())
            }
            SmsSender::File { path, lock } => {
                let line = json!({"phone_e164": phone_e164, "code": code, "at": iso(now_ms())}).to_string() + "\n";
                let _guard = lock.lock().await;
                // It holds codes: readable by the server's user only.
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)
                    .await
                    .map_err(|e| ApiError::Internal(format!("sms outbox {}: {e}", path.display())))?;
                // tokio's File writes in the background: flush so the line is on disk when we answer.
                let written = async {
                    file.write_all(line.as_bytes()).await?;
                    file.flush().await
                };
                written.await.map_err(|e| ApiError::Internal(format!("sms outbox write: {e}")))?;
                Ok(())
            }
            SmsSender::Webhook { url, client } => {
                let text = format!("Your Atome code: {code}");
                let response = client
                    .post(url)
                    .json(&json!({"to": phone_e164, "text": text}))
                    .send()
                    .await
                    .map_err(|e| ApiError::BadGateway(format!("SMS webhook unreachable: {e}")))?;
                if !response.status().is_success() {
                    return Err(ApiError::BadGateway(format!("SMS webhook answered {}", response.status())));
                }
                tracing::info!(phone = %mask(phone_e164), "one-time code sent via webhook");
                Ok(())
            }
        }
    }
}

/// The answer to a code request when codes are off.
pub fn codes_off() -> ApiError {
    ApiError::Unavailable {
        code: "otp_unavailable",
        message: "sign-in by one-time code is turned off on this server (no SMS sender is configured); ask its operator".into(),
    }
}
