//! The core's plugins. Each owns its routes, its SQL and its state; the core initialises them
//! in order and merges their routers.
pub mod contacts;
pub mod identity;
pub mod media;
pub mod rooms;

use utoipa_axum::router::OpenApiRouter;

pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// The plugin's routes, with its state already applied, each registered with
    /// `utoipa_axum::routes!` so that it is in `/openapi.json`.
    fn router(&self) -> OpenApiRouter;
    /// SQL run in the transaction that creates a user (bind `?1` = user_id, `?2` = phone_e164),
    /// e.g. to attach requests or invites addressed to that number before it signed up.
    fn user_created_sql(&self) -> &'static [&'static str] {
        &[]
    }
    /// Called every minute: forget stale rate-limit state and the like.
    fn maintain(&self) {}
}
