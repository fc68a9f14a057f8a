//! # gateway-http (being built)
