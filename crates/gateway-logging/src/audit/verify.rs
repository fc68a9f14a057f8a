//! Verifying an organization's chain: [`verify_chain`].

use gateway_types::ids::{AuditLogId, OrgId};
use gateway_types::store::{AuditHasher, AuditStore};
use serde::Serialize;

use crate::error::LoggingError;

/// Rows read per [`AuditStore::chain`] call.
const PAGE: u32 = 500;

/// The outcome of [`verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The chain is intact: every row hashes to its stored hash, links to its predecessor,
    /// seqs run 1..N without gaps, and the newest row matches the chain head.
    pub ok: bool,
    /// Rows read, the broken one included.
    pub rows_checked: u64,
    /// The first break, in chain order; `None` when `ok`.
    pub first_broken: Option<BrokenRow>,
}

/// Where and why a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenRow {
    /// The chain position. For missing newest rows: the first missing position.
    pub seq: i64,
    /// The row's id; `None` when the row is missing.
    pub id: Option<AuditLogId>,
    /// What is wrong, in words.
    pub reason: String,
}

/// Walks `org`'s chain from its first record, in pages, and reports the first break.
///
/// Checks, per row in `seq` order: the `seq` is the next one (a gap means deleted rows); the
/// row hashes (with `hasher`) to its stored `hash` (any edited field, `prev_hash` included,
/// breaks this); its `prev_hash` is the previous row's `hash` (the genesis value for seq 1),
/// so a row rewritten *with* a recomputed hash breaks the link of the row after it. Finally the
/// newest row is compared with the chain head ([`AuditStore::head`], written in the same
/// transaction as each append), which catches deleted or rewritten newest rows. Records
/// appended while the walk runs are verified too.
///
/// What this proves: nobody changed the rows without also recomputing every later hash and the
/// chain head. Someone with write access to the database who does all of that is not detected;
/// export the head hash elsewhere (e.g. periodically to a log shipper) to close that gap.
///
/// # Errors
/// The store failed while reading.
pub async fn verify_chain(
    store: &dyn AuditStore,
    org: OrgId,
    hasher: &dyn AuditHasher,
) -> Result<VerifyReport, LoggingError> {
    // The head first: every row it counts is committed, so the walk must reach it.
    let head = store.head(org).await?;
    let mut prev_hash = hasher.genesis(org);
    let mut last_seq = 0_i64;
    let mut rows_checked = 0_u64;
    let mut first_id = None;
    let broken = |rows_checked, seq, id, reason: String| VerifyReport {
        ok: false,
        rows_checked,
        first_broken: Some(BrokenRow {
            seq,
            id: Some(id),
            reason,
        }),
    };
    loop {
        let page = store.chain(org, last_seq, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            rows_checked += 1;
            let expected = last_seq + 1;
            if row.seq != expected {
                return Ok(broken(
                    rows_checked,
                    row.seq,
                    row.id,
                    format!("rows are missing before this one: expected seq {expected}"),
                ));
            }
            let mut unhashed = row.clone();
            unhashed.hash = String::new();
            if hasher.hash(&unhashed) != row.hash {
                return Ok(broken(
                    rows_checked,
                    row.seq,
                    row.id,
                    "the row's content does not match its hash: it was changed after it was written"
                        .to_owned(),
                ));
            }
            if row.prev_hash != prev_hash {
                let reason = if row.seq == 1 {
                    "the first row does not start from the organization's genesis value".to_owned()
                } else {
                    format!(
                        "prev_hash does not match the hash of row {}: that row or this link was rewritten",
                        row.seq - 1
                    )
                };
                return Ok(broken(rows_checked, row.seq, row.id, reason));
            }
            match &head {
                Some(h) if h.last_seq == row.seq && h.last_hash != row.hash => {
                    return Ok(broken(
                        rows_checked,
                        row.seq,
                        row.id,
                        "the row does not match the chain head: the newest row was rewritten".to_owned(),
                    ));
                }
                _ => {}
            }
            if row.seq == 1 {
                first_id = Some(row.id);
            }
            prev_hash = row.hash;
            last_seq = row.seq;
        }
    }
    // No head when the walk started but rows now: either they were appended meanwhile (the
    // head exists now), or the head row was deleted.
    if head.is_none()
        && let Some(id) = first_id
        && store.head(org).await?.is_none()
    {
        return Ok(broken(
            rows_checked,
            1,
            id,
            "the organization has rows but no chain head: the head was deleted".to_owned(),
        ));
    }
    if let Some(h) = head
        && last_seq < h.last_seq
    {
        return Ok(VerifyReport {
            ok: false,
            rows_checked,
            first_broken: Some(BrokenRow {
                seq: last_seq + 1,
                id: None,
                reason: format!(
                    "the chain ends at seq {last_seq} but its head records seq {}: the newest rows were deleted",
                    h.last_seq
                ),
            }),
        });
    }
    Ok(VerifyReport {
        ok: true,
        rows_checked,
        first_broken: None,
    })
}
