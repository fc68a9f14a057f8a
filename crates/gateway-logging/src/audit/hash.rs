//! The canonical audit hash: SHA-256 over an unambiguous encoding of every stored field.
//!
//! # Encoding (version 1)
//!
//! A record's hash is `hex(SHA-256(E))` (64 lower-case hex digits), where `E` is the
//! concatenation of these fields, in this order, each encoded as
//! `0x01 ‖ len ‖ bytes` (`len` = the byte length as an unsigned 64-bit big-endian integer,
//! `bytes` = UTF-8), or as the single byte `0x00` when an optional field is absent:
//!
//! | # | field | text form |
//! |--:|---|---|
//! | 1 | domain tag | `mcp-gateway/audit/v1` |
//! | 2 | `prev_hash` | as stored |
//! | 3 | `id` | hyphenated lower-case UUID |
//! | 4 | `org_id` | hyphenated lower-case UUID |
//! | 5 | `seq` | decimal, no sign for positive values, no leading zeros |
//! | 6 | `created_at` | UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (exactly 6 fractional digits: the stores keep microseconds) |
//! | 7 | `actor_type` | as stored |
//! | 8 | `actor_id` | optional |
//! | 9 | `action` | as stored |
//! | 10 | `target_type` | optional |
//! | 11 | `target_id` | optional |
//! | 12 | `before_state` | optional, canonical JSON (below) |
//! | 13 | `after_state` | optional, canonical JSON |
//! | 14 | `ip` | optional |
//! | 15 | `request_id` | optional |
//!
//! The record's own `hash` is not part of `E`. Length prefixes make the encoding injective:
//! no two different records encode to the same bytes, whatever their fields contain.
//!
//! **Canonical JSON** is what survives a round trip through either backend (PostgreSQL `jsonb`
//! reorders keys and rewrites numbers; SQLite stores text): no whitespace; object keys sorted
//! by their UTF-8 bytes; strings escaped as `serde_json` writes them (`"`, `\`, and control
//! characters escaped, everything else literal); integers in decimal; a floating-point number
//! with an integral value that fits in 64 bits written as that integer (`1e17` and
//! `100000000000000000` are the same number to `jsonb`), any other float in the shortest form
//! that reads back to the same `f64`, as `serde_json` writes it (`0.1`, `1e+20`).
//!
//! **Genesis.** The `prev_hash` of an organization's first record is
//! `hex(SHA-256(F("mcp-gateway/audit/v1/genesis") ‖ F(org_id)))` with `F` the field encoding
//! above: distinct per organization, so one organization's chain cannot be spliced into
//! another's.

use std::fmt::Write as _;

use gateway_types::ids::OrgId;
use gateway_types::model::AuditLog;
use gateway_types::store::AuditHasher;
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// Domain tag of version 1 of the encoding.
const TAG: &str = "mcp-gateway/audit/v1";
/// Domain tag of the genesis value.
const GENESIS_TAG: &str = "mcp-gateway/audit/v1/genesis";

/// The gateway's [`AuditHasher`]: SHA-256 over the canonical encoding (see the module docs).
///
/// Stateless and deterministic: anyone holding the rows can recompute every hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sha256AuditHasher;

impl Sha256AuditHasher {
    /// The canonical encoding `E` of `record` (its `hash` field is ignored).
    #[must_use]
    pub fn canonical_encoding(record: &AuditLog) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let before = record.before_state.as_ref().map(canonical_json);
        let after = record.after_state.as_ref().map(canonical_json);
        field(&mut out, TAG);
        field(&mut out, &record.prev_hash);
        field(&mut out, &record.id.to_string());
        field(&mut out, &record.org_id.to_string());
        field(&mut out, &record.seq.to_string());
        field(
            &mut out,
            &record.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        );
        field(&mut out, &record.actor_type);
        optional(&mut out, record.actor_id.as_deref());
        field(&mut out, &record.action);
        optional(&mut out, record.target_type.as_deref());
        optional(&mut out, record.target_id.as_deref());
        optional(&mut out, before.as_deref());
        optional(&mut out, after.as_deref());
        optional(&mut out, record.ip.as_deref());
        optional(&mut out, record.request_id.as_deref());
        out
    }
}

impl AuditHasher for Sha256AuditHasher {
    fn genesis(&self, org: OrgId) -> String {
        let mut out = Vec::with_capacity(80);
        field(&mut out, GENESIS_TAG);
        field(&mut out, &org.to_string());
        hex::encode(Sha256::digest(&out))
    }

    fn hash(&self, record: &AuditLog) -> String {
        hex::encode(Sha256::digest(Self::canonical_encoding(record)))
    }
}

/// A present field: `0x01 ‖ u64 BE length ‖ bytes`.
fn field(out: &mut Vec<u8>, text: &str) {
    out.push(1);
    out.extend_from_slice(&(text.len() as u64).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// An optional field: absent is the single byte `0x00`.
fn optional(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(t) => field(out, t),
        None => out.push(0),
    }
}

/// The canonical JSON text of `value` (see the module docs).
#[must_use]
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

/// 2^64 and -2^63 as `f64` (both exact).
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
const MINUS_TWO_POW_63: f64 = -9_223_372_036_854_775_808.0;

/// Integers as integers; an integral float in 64-bit range as that integer (the range check
/// makes the `as` casts exact); other floats in serde_json's shortest round-trip form.
fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        if f.fract() == 0.0 && (0.0..TWO_POW_64).contains(&f) {
            let _ = write!(out, "{}", f as u64);
        } else if f.fract() == 0.0 && (MINUS_TWO_POW_63..0.0).contains(&f) {
            let _ = write!(out, "{}", f as i64);
        } else {
            // serde_json writes the shortest form that reads back to the same f64.
            out.push_str(&n.to_string());
        }
    } else {
        out.push_str(&n.to_string());
    }
}

fn write_string(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        // Serializing a `str` cannot fail; keep the encoding total anyway.
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use gateway_types::ids::AuditLogId;
    use serde_json::json;

    use super::*;

    fn record() -> AuditLog {
        AuditLog {
            id: AuditLogId::from_uuid(uuid::Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001)),
            org_id: OrgId::from_uuid(uuid::Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_00aa)),
            seq: 1,
            actor_type: "user".into(),
            actor_id: Some("u1".into()),
            action: "policy.update".into(),
            target_type: Some("policy".into()),
            target_id: Some("p1".into()),
            before_state: Some(json!({"name": "a", "enabled": true})),
            after_state: Some(json!({"name": "b", "enabled": false})),
            ip: Some("10.0.0.1".into()),
            request_id: Some("req-1".into()),
            prev_hash: "0".repeat(64),
            hash: String::new(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).single().unwrap()
                + chrono::Duration::microseconds(123_456),
        }
    }

    #[test]
    fn hashes_are_hex_sha256_and_deterministic() {
        let h = Sha256AuditHasher.hash(&record());
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(h, Sha256AuditHasher.hash(&record()));
    }

    #[test]
    fn the_encoding_is_documented_exactly() {
        let r = AuditLog {
            actor_id: None,
            target_type: None,
            target_id: None,
            before_state: None,
            after_state: Some(json!({"b": 1, "a": [true, null]})),
            ip: None,
            request_id: None,
            ..record()
        };
        let mut expected = Vec::new();
        for (present, text) in [
            (true, "mcp-gateway/audit/v1"),
            (true, r.prev_hash.as_str()),
            (true, "01920000-0000-7000-8000-000000000001"),
            (true, "01920000-0000-7000-8000-0000000000aa"),
            (true, "1"),
            (true, "2026-11-24T12:00:00.123456Z"),
            (true, "user"),
            (false, ""),
            (true, "policy.update"),
            (false, ""),
            (false, ""),
            (false, ""),
            (true, r#"{"a":[true,null],"b":1}"#),
            (false, ""),
            (false, ""),
        ] {
            if present {
                expected.push(1);
                expected.extend_from_slice(&(text.len() as u64).to_be_bytes());
                expected.extend_from_slice(text.as_bytes());
            } else {
                expected.push(0);
            }
        }
        assert_eq!(Sha256AuditHasher::canonical_encoding(&r), expected);
        assert_eq!(Sha256AuditHasher.hash(&r), hex::encode(Sha256::digest(&expected)));
    }

    #[test]
    fn every_stored_field_changes_the_hash() {
        let base = record();
        let h = Sha256AuditHasher.hash(&base);
        let variants: Vec<(&str, AuditLog)> = vec![
            (
                "id",
                AuditLog {
                    id: AuditLogId::new(),
                    ..base.clone()
                },
            ),
            (
                "org_id",
                AuditLog {
                    org_id: OrgId::new(),
                    ..base.clone()
                },
            ),
            (
                "seq",
                AuditLog {
                    seq: 2,
                    ..base.clone()
                },
            ),
            (
                "actor_type",
                AuditLog {
                    actor_type: "api_key".into(),
                    ..base.clone()
                },
            ),
            (
                "actor_id",
                AuditLog {
                    actor_id: None,
                    ..base.clone()
                },
            ),
            (
                "action",
                AuditLog {
                    action: "policy.delete".into(),
                    ..base.clone()
                },
            ),
            (
                "target_type",
                AuditLog {
                    target_type: None,
                    ..base.clone()
                },
            ),
            (
                "target_id",
                AuditLog {
                    target_id: Some("p2".into()),
                    ..base.clone()
                },
            ),
            (
                "before_state",
                AuditLog {
                    before_state: None,
                    ..base.clone()
                },
            ),
            (
                "after_state",
                AuditLog {
                    after_state: Some(json!({"name": "c"})),
                    ..base.clone()
                },
            ),
            (
                "ip",
                AuditLog {
                    ip: Some("10.0.0.2".into()),
                    ..base.clone()
                },
            ),
            (
                "request_id",
                AuditLog {
                    request_id: None,
                    ..base.clone()
                },
            ),
            (
                "prev_hash",
                AuditLog {
                    prev_hash: "1".repeat(64),
                    ..base.clone()
                },
            ),
            (
                "created_at",
                AuditLog {
                    created_at: base.created_at + chrono::Duration::microseconds(1),
                    ..base.clone()
                },
            ),
        ];
        for (name, v) in variants {
            assert_ne!(Sha256AuditHasher.hash(&v), h, "{name} is not covered by the hash");
        }
        // The stored hash itself is not an input.
        let with_hash = AuditLog {
            hash: h.clone(),
            ..base
        };
        assert_eq!(Sha256AuditHasher.hash(&with_hash), h);
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = AuditLog {
            actor_type: "ab".into(),
            action: "c".into(),
            ..record()
        };
        let b = AuditLog {
            actor_type: "a".into(),
            action: "bc".into(),
            ..record()
        };
        assert_ne!(Sha256AuditHasher.hash(&a), Sha256AuditHasher.hash(&b));
        let empty = AuditLog {
            actor_id: Some(String::new()),
            ..record()
        };
        let absent = AuditLog {
            actor_id: None,
            ..record()
        };
        assert_ne!(Sha256AuditHasher.hash(&empty), Sha256AuditHasher.hash(&absent));
    }

    #[test]
    fn canonical_json_survives_what_the_backends_do_to_json() {
        // jsonb reorders keys and prints integral numbers without exponent.
        let written: Value =
            serde_json::from_str(r#"{"z": 1e17, "a": {"y": -2.0, "b": 0.1}, "m": 1e20}"#).unwrap();
        let read_back: Value = serde_json::from_str(
            r#"{"a": {"b": 0.1, "y": -2}, "m": 100000000000000000000, "z": 100000000000000000}"#,
        )
        .unwrap();
        assert_eq!(canonical_json(&written), canonical_json(&read_back));
        assert_eq!(
            canonical_json(&written),
            r#"{"a":{"b":0.1,"y":-2},"m":1e+20,"z":100000000000000000}"#
        );
        assert_eq!(canonical_json(&json!("a\"b\\c\nü")), r#""a\"b\\c\nü""#);
        assert_eq!(canonical_json(&json!(-0.0)), "0");
        assert_eq!(canonical_json(&json!(u64::MAX)), u64::MAX.to_string());
        assert_eq!(canonical_json(&json!(i64::MIN)), i64::MIN.to_string());
    }

    #[test]
    fn genesis_is_per_organization() {
        let (a, b) = (OrgId::new(), OrgId::new());
        assert_ne!(Sha256AuditHasher.genesis(a), Sha256AuditHasher.genesis(b));
        assert_eq!(Sha256AuditHasher.genesis(a), Sha256AuditHasher.genesis(a));
        assert_eq!(Sha256AuditHasher.genesis(a).len(), 64);
    }
}
