//! Backend-independent pieces of the row ↔ domain conversion (the row structs themselves are
//! in `shared/rows.rs`, compiled once per backend against that backend's `schema`).

use std::str::FromStr;

use gateway_types::model::{Sealed, UnknownVariant};

use crate::error::{DbError, DbResult};
use crate::types::DbJson;

/// Parses a stored enumeration text.
pub(crate) fn parse<T: FromStr<Err = UnknownVariant>>(text: &str) -> DbResult<T> {
    Ok(text.parse::<T>()?)
}

/// A stored JSON array of strings.
pub(crate) fn strings(json: DbJson) -> DbResult<Vec<String>> {
    Ok(serde_json::from_value(json.0)?)
}

/// Strings as a JSON array.
pub(crate) fn strings_json(values: &[String]) -> DbJson {
    DbJson(serde_json::Value::Array(
        values.iter().cloned().map(serde_json::Value::String).collect(),
    ))
}

/// Sealed text as stored.
pub(crate) fn unseal(value: Option<Sealed>) -> Option<String> {
    value.map(|s| s.0)
}

/// Stored text as sealed.
pub(crate) fn seal(value: Option<String>) -> Option<Sealed> {
    value.map(Sealed)
}

/// A row count that cannot be negative.
pub(crate) fn count(n: i64) -> DbResult<u64> {
    u64::try_from(n).map_err(|e| DbError::Corrupt(Box::new(e)))
}

/// A number of affected rows.
pub(crate) fn affected(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` escaped (use with
/// `ESCAPE '\'`), lower-cased for a case-insensitive match against `lower(column)`.
pub(crate) fn contains_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for ch in needle.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("A_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn string_arrays_round_trip() {
        let v = vec!["a".to_owned(), "b \"c\"".to_owned()];
        assert_eq!(strings(strings_json(&v)).unwrap(), v);
        assert!(strings(DbJson(serde_json::json!({"not": "an array"}))).is_err());
    }
}
