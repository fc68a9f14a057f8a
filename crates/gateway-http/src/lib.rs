//! # gateway-http (being built)

pub mod settings;
pub mod telemetry;
