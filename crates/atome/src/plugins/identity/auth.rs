//! The `AuthUser` extractor: the user behind a bearer token, for every plugin's routes.
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::{tokens, User};
use crate::core::Core;
use crate::http::ApiError;

/// The user behind a valid `Authorization: Bearer <token>` header.
pub struct AuthUser {
    pub user: User,
    /// SHA-256 of the presented token (hex), to revoke it on logout.
    pub token_hash: String,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Core: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into()))?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into()))?;
        let core = Core::from_ref(state);
        let (user, token_hash) = tokens::authenticate(&core.db, token).await?;
        Ok(AuthUser { user, token_hash })
    }
}
