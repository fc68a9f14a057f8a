//! Integration tests of the upstream connectors against real peers started in the test.

#![expect(
    clippy::unwrap_used,
    reason = "helpers shared by the tests fail the test loudly, like the tests themselves"
)]

mod ws;
