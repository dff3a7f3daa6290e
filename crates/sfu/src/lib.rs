//! Atome media engine: a mediasoup-compatible SFU built on str0m (sans-IO WebRTC).
pub mod ortc;
pub mod rtp_parameters;
