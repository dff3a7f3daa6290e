//! Atome core server: identity by phone, contacts, rooms, and video calls as a plugin.
pub mod app;
pub mod config;
pub mod core;
pub mod db;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod openapi;
pub mod peer_metrics;
pub mod plugins;
pub mod ratelimit;
pub mod secret;
pub mod startup;
pub mod telemetry;
pub mod turn;

pub use app::{App, AppError};
pub use config::Config;
