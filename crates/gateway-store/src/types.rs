//! Column wrapper types whose Rust side is the same on both backends while the SQL side
//! differs: UUIDs are `UUID` on PostgreSQL and `TEXT` on SQLite; JSON is `JSONB` on
//! PostgreSQL and `TEXT` on SQLite. Row structs use these, so one row definition serves both
//! backends. Timestamps are `TIMESTAMPTZ` on PostgreSQL and `TIMESTAMP` on SQLite (the type
//! `diesel print-schema` understands there), always UTC; SQLite stores them as fixed-width text
//! `YYYY-MM-DD HH:MM:SS.ffffff`, which sorts lexicographically in time order.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Jsonb, Text, Timestamp, Timestamptz};
use diesel::sqlite::{Sqlite, SqliteValue};
use uuid::Uuid;

/// A UUID column: native `UUID` on PostgreSQL, hyphenated lower-case text on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Uuid)]
#[diesel(sql_type = Text)]
pub(crate) struct DbUuid(pub(crate) Uuid);

impl ToSql<diesel::sql_types::Uuid, Pg> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<diesel::sql_types::Uuid, Pg> for DbUuid {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<Text, Sqlite> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Sqlite> for DbUuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(Self(Uuid::parse_str(&text)?))
    }
}

/// A JSON column: `JSONB` on PostgreSQL, serialized text on SQLite.
#[derive(Clone, Debug, PartialEq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Jsonb)]
#[diesel(sql_type = Text)]
pub(crate) struct DbJson(pub(crate) serde_json::Value);

impl ToSql<Jsonb, Pg> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <serde_json::Value as ToSql<Jsonb, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Jsonb, Pg> for DbJson {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<Jsonb, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<Text, Sqlite> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Sqlite> for DbJson {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(Self(serde_json::from_str(&text)?))
    }
}

/// A UTC timestamp column: `TIMESTAMPTZ` on PostgreSQL, `TIMESTAMP` text on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = Timestamptz)]
#[diesel(sql_type = Timestamp)]
pub(crate) struct DbTime(pub(crate) DateTime<Utc>);

/// The SQLite text form: fixed width, so text order is time order.
const SQLITE_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

impl ToSql<Timestamptz, Pg> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Timestamptz, Pg> for DbTime {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<Timestamptz, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<Timestamp, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.naive_utc().format(SQLITE_TIME_FORMAT).to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<Timestamp, Sqlite> for DbTime {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(|t| Self(t.and_utc()))
    }
}

/// A timestamp as stored: PostgreSQL keeps microseconds, so both backends truncate to
/// microseconds and a value reads back exactly as it was written.
pub(crate) fn ts(at: DateTime<Utc>) -> DbTime {
    DbTime(at.trunc_subsecs(6))
}

/// An optional timestamp as stored.
pub(crate) fn ts_opt(at: Option<DateTime<Utc>>) -> Option<DbTime> {
    at.map(ts)
}

/// The current time as stored.
pub(crate) fn now() -> DbTime {
    ts(Utc::now())
}

/// Wraps an id newtype for a UUID column.
pub(crate) fn uid(id: impl Into<Uuid>) -> DbUuid {
    DbUuid(id.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_truncated_to_microseconds() {
        let at = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(ts(at).0.timestamp_subsec_nanos(), 123_456_000);
    }
}
