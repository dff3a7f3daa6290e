//! Why a signaling message is refused: a stable code (docs/signaling-errors.md) and a sentence.
use super::messages::ServerMessage;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SignalError {
    pub code: &'static str,
    pub message: String,
    /// Close the socket after answering (abuse, failed authentication).
    pub fatal: bool,
}

impl SignalError {
    pub fn refuse(code: &'static str, message: impl Into<String>) -> SignalError {
        SignalError { code, message: message.into(), fatal: false }
    }

    pub fn fatal(code: &'static str, message: impl Into<String>) -> SignalError {
        SignalError { code, message: message.into(), fatal: true }
    }

    /// The call this peer was in has closed under it (its media worker failed).
    pub fn room_closed() -> SignalError {
        SignalError::refuse("not_in_room", "the room has closed")
    }

    /// `resumeSession` names no session this user may take back (it left, was replaced, or its
    /// grace ran out): join again.
    pub fn session_expired() -> SignalError {
        SignalError::refuse("session_expired", "no such session to resume (it ended); join the room again")
    }

    /// The reply: `authError` for authentication codes, `error` otherwise.
    pub fn to_message(&self) -> ServerMessage {
        let (code, error) = (self.code, self.message.clone());
        if code.starts_with("auth") {
            ServerMessage::AuthError { code, error }
        } else {
            ServerMessage::Error { code, error }
        }
    }
}

/// The one place where the engine's errors (one type per operation) become signaling errors.
impl<E: sfu::ErrorCode + std::fmt::Display> From<E> for SignalError {
    fn from(e: E) -> SignalError {
        SignalError::refuse(e.code(), e.to_string())
    }
}
