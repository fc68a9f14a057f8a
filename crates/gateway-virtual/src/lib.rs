//! # gateway-virtual
//!
//! Will own virtual servers: adapters that present a REST (with OpenAPI import), GraphQL,
//! gRPC or SOAP service as an MCP server whose tools map to the service's operations.
//!
//! Depends only on `gateway-types`.
