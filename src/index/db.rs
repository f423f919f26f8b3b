//! One way to talk to either engine: SQLite (embedded, the default) or
//! PostgreSQL (a district's system of record).
//!
//! The index is written once, in SQL both engines accept, against [`Db`],
//! whose surface follows rusqlite's (`prepare_cached`, `query_row`,
//! `query_map`, `execute`, `params!`, `optional()`). For PostgreSQL the text
//! is translated once per statement (`?N` placeholders to `$N`, the scalar
//! `min`/`max` of SQLite to `LEAST`/`GREATEST`, SQLite-only hints dropped)
//! and prepared once per connection. Statements that differ between the
//! engines are chosen with [`Db::engine`]; there are few.
//!
//! Values cross as [`Value`]: integers, reals, text, bytes. Instants are
//! integer milliseconds and flags are integers (0/1) in both engines, so a
//! row reads the same from either.
//!
//! **Invariant:** no SQL is written outside `crate::index` (and the
//! migrations); everything else asks the index's typed functions.

use std::cell::RefCell;
use std::collections::HashMap;

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("query returned no rows")]
    NoRows,
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Pg(#[from] postgres::Error),
    /// A statement PostgreSQL refused (with the statement, for the log).
    #[error("postgres: {msg} (in: {sql})")]
    PgIn { sql: String, msg: String, err: postgres::Error },
    #[error("column {0}: {1}")]
    Type(usize, String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Wrap any other failure (an I/O error during a transaction, say).
    pub fn other(e: impl std::fmt::Display) -> Error {
        Error::Other(e.to_string())
    }

    /// A PostgreSQL failure that a retry of the whole transaction may not
    /// meet (serialization failure, deadlock).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Pg(e) | Error::PgIn { err: e, .. } => e.code().is_some_and(|c| {
                *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            }),
            _ => false,
        }
    }

    /// The connection itself failed (the server is unreachable, restarted):
    /// not a problem of the statement.
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Pg(e) | Error::PgIn { err: e, .. } => {
                e.is_closed() || e.code().is_none() && e.as_db_error().is_none()
            }
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.optional()`: no row is `None`, as with rusqlite.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A value as both engines store it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Anything that can be a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, u32, u16, u8, usize, u64);

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// Anything that can be read from a column.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> std::result::Result<Self, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|e| e.to_string()),
                    Value::Real(f) if f.fract() == 0.0 => <$t>::try_from(*f as i64).map_err(|e| e.to_string()),
                    other => Err(format!("expected an integer, got {other:?}")),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, u32, u16, u8, usize, u64);

impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, got {other:?}")),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i != 0),
            other => Err(format!("expected a flag, got {other:?}")),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, got {other:?}")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.clone().into_bytes()),
            other => Err(format!("expected bytes, got {other:?}")),
        }
    }
}
impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

/// A column index (a `usize`, so that `r.get(0)` needs no annotation).
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row {
    /// Column `i` as `T` (`r.get::<_, T>(i)`, as in rusqlite).
    pub fn get<I: RowIndex, T: FromValue>(&self, i: I) -> Result<T> {
        let i = i.index();
        let v = self.0.get(i).ok_or_else(|| Error::Type(i, "no such column".into()))?;
        T::from_value(v).map_err(|e| Error::Type(i, e))
    }
}

/// Statement parameters: `params![...]`, `[a, b]`, `()`, or
/// [`params_from_iter`].
pub trait Params {
    fn into_values(self) -> Vec<Value>;
}

impl Params for &[&dyn ToValue] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
// (As in rusqlite: `[]` is its own impl, so that it needs no annotation.)
impl Params for [&dyn ToValue; 0] {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn into_values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
        impl<T: ToValue + ?Sized> Params for &[&T; $n] {
            fn into_values(self) -> Vec<Value> {
                self.iter().map(|v| v.to_value()).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

/// Parameters from a list of values built at run time.
pub struct ParamsFromIter(Vec<Value>);

pub fn params_from_iter(v: impl IntoIterator<Item = Value>) -> ParamsFromIter {
    ParamsFromIter(v.into_iter().collect())
}

impl Params for ParamsFromIter {
    fn into_values(self) -> Vec<Value> {
        self.0
    }
}

/// `params![a, b, c]`: a parameter list of mixed types.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::index::db::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::index::db::ToValue),+] as &[&dyn $crate::index::db::ToValue] };
}
pub use crate::params;

/// A PostgreSQL connection with its prepared statements and the audit
/// entries waiting for the transaction's commit (see `audit::append`).
pub struct PgConn {
    /// (Closed on a blocking thread when dropped: see `Drop`.)
    pub client: std::mem::ManuallyDrop<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// Audit entries of the open transaction, chained at commit.
    pub pending_audit: Vec<crate::index::audit::AuditEntry>,
}

impl PgConn {
    pub fn new(client: postgres::Client) -> PgConn {
        PgConn { client: std::mem::ManuallyDrop::new(client), statements: HashMap::new(), pending_audit: Vec::new() }
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let text = to_postgres(sql);
        let st = self.client.prepare(&text).map_err(|e| pg_error(&text, e))?;
        if self.statements.len() > 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // SAFETY: the client is taken once, here, and never used again.
        let client = unsafe { std::mem::ManuallyDrop::take(&mut self.client) };
        // Closing the connection blocks on the client's own runtime.
        super::pg::blocking(move || drop(client));
    }
}

enum Inner<'a> {
    Sqlite(&'a rusqlite::Connection),
    Pg(&'a RefCell<PgConn>),
}

/// A connection (inside a transaction when it comes from `Index::call`).
pub struct Db<'a> {
    inner: Inner<'a>,
}

/// A statement on a [`Db`] (prepared when it first runs).
pub struct Stmt<'a, 'b> {
    db: &'a Db<'b>,
    sql: String,
    cached: bool,
}

impl<'a> Db<'a> {
    pub fn sqlite(c: &'a rusqlite::Connection) -> Db<'a> {
        Db { inner: Inner::Sqlite(c) }
    }

    pub fn pg(c: &'a RefCell<PgConn>) -> Db<'a> {
        Db { inner: Inner::Pg(c) }
    }

    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Pg(_) => Engine::Postgres,
        }
    }

    /// The SQLite connection (for SQLite-only work: pragmas, checkpoints).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Pg(_) => None,
        }
    }

    /// The PostgreSQL connection (for PostgreSQL-only work).
    pub fn as_pg(&self) -> Option<&RefCell<PgConn>> {
        match self.inner {
            Inner::Pg(c) => Some(c),
            Inner::Sqlite(_) => None,
        }
    }

    /// Pick the statement for this engine.
    pub fn pick<'s>(&self, sqlite: &'s str, postgres: &'s str) -> &'s str {
        match self.engine() {
            Engine::Sqlite => sqlite,
            Engine::Postgres => postgres,
        }
    }

    pub fn prepare_cached<'s>(&'s self, sql: &str) -> Result<Stmt<'s, 'a>> {
        Ok(Stmt { db: self, sql: sql.to_string(), cached: true })
    }

    pub fn prepare<'s>(&'s self, sql: &str) -> Result<Stmt<'s, 'a>> {
        Ok(Stmt { db: self, sql: sql.to_string(), cached: false })
    }

    pub fn execute(&self, sql: &str, p: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }

    pub fn query_row<T>(&self, sql: &str, p: impl Params, f: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }

    /// Several statements, no parameters, no results (DDL, migrations).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Pg(c) => Ok(super::pg::blocking(|| c.borrow_mut().client.batch_execute(sql))?),
        }
    }

    fn run(&self, sql: &str, cached: bool, p: Vec<Value>, mut each: impl FnMut(Row) -> Result<bool>) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = if cached {
                    CachedOrNot::Cached(c.prepare_cached(sql)?)
                } else {
                    CachedOrNot::Fresh(c.prepare(sql)?)
                };
                let n = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(p.iter().map(SqliteValue)))?;
                while let Some(r) = rows.next()? {
                    let mut vals = Vec::with_capacity(n);
                    for i in 0..n {
                        vals.push(from_sqlite(r.get_ref(i)?));
                    }
                    if !each(Row(vals))? {
                        break;
                    }
                }
                Ok(())
            }
            Inner::Pg(c) => super::pg::blocking(|| {
                let mut conn = c.borrow_mut();
                let st = conn.statement(sql)?;
                let n = st.columns().len();
                let mut it = conn.client.query_raw(&st, p.iter().map(PgValue)).map_err(|e| pg_error(sql, e))?;
                use postgres::fallible_iterator::FallibleIterator;
                while let Some(r) = it.next().map_err(|e| pg_error(sql, e))? {
                    let mut vals = Vec::with_capacity(n);
                    for i in 0..n {
                        vals.push(r.try_get::<_, PgValueOut>(i).map(|v| v.0).map_err(|e| pg_error(sql, e))?);
                    }
                    if !each(Row(vals))? {
                        break;
                    }
                }
                Ok(())
            }),
        }
    }

    fn exec(&self, sql: &str, cached: bool, p: Vec<Value>) -> Result<usize> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = if cached {
                    CachedOrNot::Cached(c.prepare_cached(sql)?)
                } else {
                    CachedOrNot::Fresh(c.prepare(sql)?)
                };
                Ok(st.execute(rusqlite::params_from_iter(p.iter().map(SqliteValue)))?)
            }
            Inner::Pg(c) => super::pg::blocking(|| {
                let mut conn = c.borrow_mut();
                let st = conn.statement(sql)?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect();
                Ok(conn.client.execute(&st, &refs).map_err(|e| pg_error(sql, e))? as usize)
            }),
        }
    }
}

enum CachedOrNot<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Fresh(rusqlite::Statement<'c>),
}

impl<'c> std::ops::Deref for CachedOrNot<'c> {
    type Target = rusqlite::Statement<'c>;
    fn deref(&self) -> &rusqlite::Statement<'c> {
        match self {
            CachedOrNot::Cached(s) => s,
            CachedOrNot::Fresh(s) => s,
        }
    }
}

impl std::ops::DerefMut for CachedOrNot<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            CachedOrNot::Cached(s) => s,
            CachedOrNot::Fresh(s) => s,
        }
    }
}

impl Stmt<'_, '_> {
    pub fn execute(&mut self, p: impl Params) -> Result<usize> {
        self.db.exec(&self.sql, self.cached, p.into_values())
    }

    pub fn query_row<T>(&mut self, p: impl Params, f: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        let mut first = None;
        self.db.run(&self.sql, self.cached, p.into_values(), |r| {
            first = Some(r);
            Ok(false)
        })?;
        match first {
            Some(r) => f(&r),
            None => Err(Error::NoRows),
        }
    }

    /// Every row, mapped (read to the end before it returns).
    pub fn query_map<T>(
        &mut self,
        p: impl Params,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut out = Vec::new();
        self.db.run(&self.sql, self.cached, p.into_values(), |r| {
            out.push(f(&r));
            Ok(true)
        })?;
        Ok(out.into_iter())
    }

    /// Every row, one at a time, without holding them all (long scans:
    /// verify, the chain walk). `f` returns false to stop.
    pub fn for_each(&mut self, p: impl Params, f: impl FnMut(Row) -> Result<bool>) -> Result<()> {
        self.db.run(&self.sql, self.cached, p.into_values(), f)
    }

    pub fn exists(&mut self, p: impl Params) -> Result<bool> {
        let mut any = false;
        self.db.run(&self.sql, self.cached, p.into_values(), |_| {
            any = true;
            Ok(false)
        })?;
        Ok(any)
    }
}

struct SqliteValue<'v>(&'v Value);

impl rusqlite::ToSql for SqliteValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// A parameter for PostgreSQL: converted to whatever type the statement
/// wants there (an integer for a BIGINT column, a flag for a boolean
/// expression, text for a JSON one).
#[derive(Debug)]
struct PgValue<'v>(&'v Value);

impl postgres::types::ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        let bad = || -> Box<dyn std::error::Error + Sync + Send> { format!("cannot send {self:?} as {ty}").into() };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => i.to_string().to_sql(&Type::TEXT, out),
                _ => Err(bad()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::INT8 if f.fract() == 0.0 => (*f as i64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => f.to_string().to_sql(ty, out),
                _ => Err(bad()),
            },
            Value::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
                    s.as_str().to_sql(&Type::TEXT, out)
                }
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                Type::INT8 => s.parse::<i64>().map_err(|_| bad())?.to_sql(ty, out),
                _ => Err(bad()),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => String::from_utf8_lossy(b).as_ref().to_sql(ty, out),
                _ => Err(bad()),
            },
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column read from PostgreSQL, whatever its type.
struct PgValueOut(Value);

impl<'r> postgres::types::FromSql<'r> for PgValueOut {
    fn from_sql(
        ty: &postgres::types::Type,
        raw: &'r [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        Ok(PgValueOut(match *ty {
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSONB => Value::Text(String::from_utf8_lossy(raw.get(1..).unwrap_or_default()).into_owned()),
            Type::NUMERIC => numeric(raw)?,
            _ => Value::Text(String::from_utf8_lossy(raw).into_owned()),
        }))
    }

    fn from_sql_null(_: &postgres::types::Type) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgValueOut(Value::Null))
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
}

/// A PostgreSQL failure with its message and the statement it came from.
fn pg_error(sql: &str, e: postgres::Error) -> Error {
    let msg = match e.as_db_error() {
        Some(d) => {
            format!("{}: {}{}", d.code().code(), d.message(), d.detail().map(|x| format!(" ({x})")).unwrap_or_default())
        }
        None => e.to_string(),
    };
    Error::PgIn { sql: sql.chars().take(300).collect(), msg, err: e }
}

/// A NUMERIC (what PostgreSQL's `sum` of integers gives) in its binary
/// form: an integer when it has no fraction, else a real.
fn numeric(raw: &[u8]) -> std::result::Result<Value, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> std::result::Result<i64, Box<dyn std::error::Error + Sync + Send>> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("a truncated NUMERIC")?;
        Ok(i64::from(i16::from_be_bytes([b[0], b[1]])))
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut v = 0f64;
    let mut exact: Option<i128> = Some(0);
    for i in 0..ndigits.max(0) as usize {
        let d = word(4 + i)? as u16 as i64;
        let p = weight - i as i64;
        v += d as f64 * 10000f64.powi(p as i32);
        exact = match (exact, p >= 0) {
            (Some(e), true) => 10000i128.checked_pow(p as u32).and_then(|m| e.checked_add(i128::from(d) * m)),
            (e, false) if d == 0 => e,
            _ => None,
        };
    }
    let neg = sign == 0x4000;
    Ok(match exact.and_then(|e| i64::try_from(e).ok()) {
        Some(i) if dscale == 0 || v.fract() == 0.0 => Value::Int(if neg { -i } else { i }),
        _ => Value::Real(if neg { -v } else { v }),
    })
}

/// SQLite's statement text as PostgreSQL takes it: `?N` (and bare `?`)
/// placeholders become `$N`; the scalar `min(a, b, …)` and `max(a, b, …)`
/// become `LEAST` and `GREATEST`; SQLite's `NOT INDEXED` hint goes. String
/// literals and quoted names are left alone.
pub fn to_postgres(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut i = 0;
    let mut next_bare = 1;
    // For each open parenthesis: whether it is a min/max call to rename,
    // and where its name starts in `out`.
    let mut stack: Vec<Option<(usize, &'static str, usize)>> = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            // A comment may hold an apostrophe or a question mark: it is
            // not SQL, and PostgreSQL need not see it.
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' | b'"' => {
                let q = c;
                let start = i;
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push_str(&sql[start..i]);
                continue;
            }
            b'?' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j > start {
                    out.push('$');
                    out.push_str(&sql[start..j]);
                } else {
                    out.push('$');
                    out.push_str(&next_bare.to_string());
                    next_bare += 1;
                }
                i = j;
                continue;
            }
            b'(' => {
                // Is this `min(` or `max(` (a whole word)?
                let word_end = out.len();
                let word_start = out
                    .char_indices()
                    .rev()
                    .take_while(|(_, ch)| ch.is_ascii_alphanumeric() || *ch == '_')
                    .last()
                    .map(|(k, _)| k)
                    .unwrap_or(word_end);
                let word = out[word_start..word_end].to_ascii_lowercase();
                let f = match word.as_str() {
                    "min" => Some((word_start, "LEAST", 0)),
                    "max" => Some((word_start, "GREATEST", 0)),
                    _ => None,
                };
                stack.push(f);
                out.push('(');
                i += 1;
                continue;
            }
            b',' => {
                if let Some(Some((_, _, commas))) = stack.last_mut() {
                    *commas += 1;
                }
            }
            b')' => {
                if let Some(Some((start, name, commas))) = stack.pop() {
                    if commas > 0 {
                        let len = out[start..].find('(').unwrap_or(0);
                        out.replace_range(start..start + len, name);
                    }
                }
                out.push(')');
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(c as char);
        i += 1;
    }
    out.replace(" NOT INDEXED", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_translate_for_postgres() {
        assert_eq!(to_postgres("SELECT a FROM t WHERE x = ?1 AND y = ?2"), "SELECT a FROM t WHERE x = $1 AND y = $2");
        assert_eq!(to_postgres("SELECT ? , ?"), "SELECT $1 , $2");
        assert_eq!(
            to_postgres(
                "UPDATE o SET f = min(f, ?2), g = max(count(*), 0) WHERE h = (SELECT max(id) FROM a NOT INDEXED)"
            ),
            "UPDATE o SET f = LEAST(f, $2), g = GREATEST(count(*), 0) WHERE h = (SELECT max(id) FROM a)"
        );
        assert_eq!(
            to_postgres("SELECT 'a ? b', \"end\" FROM w WHERE z = 'it''s ?'"),
            "SELECT 'a ? b', \"end\" FROM w WHERE z = 'it''s ?'"
        );
        assert_eq!(to_postgres("SELECT xmin(a, b), min(next_try)"), "SELECT xmin(a, b), min(next_try)");
        assert_eq!(to_postgres("max(coalesce(a, b), c)"), "GREATEST(coalesce(a, b), c)");
        // Comments may hold quotes and question marks.
        assert_eq!(to_postgres("SET a = ?2, -- the trash's view?\n b = ?1 -- end"), "SET a = $2, \n b = $1 ");
    }

    #[test]
    fn numerics_decode() {
        // 0; 12345678 = [1234, 5678] weight 1; -1.5 = [1, 5000] weight 0, dscale 1.
        let enc = |w: &[i16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(numeric(&enc(&[0, 0, 0, 0])).unwrap(), Value::Int(0));
        assert_eq!(numeric(&enc(&[2, 1, 0, 0, 1234, 5678])).unwrap(), Value::Int(12_345_678));
        assert_eq!(numeric(&enc(&[2, 0, 0x4000, 1, 1, 5000])).unwrap(), Value::Real(-1.5));
    }

    #[test]
    fn sqlite_round_trips_values() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let db = Db::sqlite(&c);
        db.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB, d REAL)").unwrap();
        db.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4)", params![7i64, "x", vec![1u8, 2], 1.5f64]).unwrap();
        let (a, b, c2, d): (i64, String, Vec<u8>, f64) =
            db.query_row("SELECT a, b, c, d FROM t", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap();
        assert_eq!((a, b.as_str(), c2, d), (7, "x", vec![1, 2], 1.5));
        let none: Option<i64> = db.query_row("SELECT a FROM t WHERE a = 8", [], |r| r.get(0)).optional().unwrap();
        assert_eq!(none, None);
        let flag: bool = db.query_row("SELECT a = 7 FROM t", [], |r| r.get(0)).unwrap();
        assert!(flag);
    }
}
