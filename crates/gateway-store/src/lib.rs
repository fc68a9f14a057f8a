//! # gateway-store (being built)
