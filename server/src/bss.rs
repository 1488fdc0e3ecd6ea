//! The BSS workload: customers and orders as JSON endpoints (`/api/customers`,
//! `/api/orders`), every statement through the read/write router — writes in a transaction
//! on the primary, reads on replicas, read-your-writes with the `X-BSS-Read-After` header
//! (the LSN a write returned in `X-BSS-LSN`). Each write's CloudEvent (the one the stream
//! processors consume) goes into the transactional outbox in the same transaction
//! ([`crate::outbox`]): row and event commit together or not at all, and the relay delivers
//! the event once the bus takes it, so a bus outage neither loses events nor refuses
//! writes. A create with an `Idempotency-Key` header returns the first request's row on a
//! retry instead of writing a second one.
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Extension, Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{types::Json as SqlJson, FromRow};
use tokio::sync::OnceCell;

use crate::{
    db::{boxed, routing::Lsn, DbRouter},
    state::{require, AppState, Services},
    streams::events::{self, CloudEvent},
};
use app::api::{Principal, Role};

#[derive(Debug, Serialize, Deserialize, FromRow, PartialEq, utoipa::ToSchema)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub plan: String,
    /// RFC 3339 UTC, formatted by PostgreSQL.
    pub created_at: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, example = "Ada Lovelace")]
    pub name: String,
    #[schema(max_length = 320, example = "ada@example.com")]
    pub email: String,
    /// 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64, example = "mobile-m")]
    pub plan: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    #[schema(min_length = 1, example = "SIM-5G")]
    pub sku: String,
    #[schema(minimum = 1, maximum = 10000)]
    pub qty: u32,
    #[schema(minimum = 0)]
    pub unit_price: f64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub customer_id: i64,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<Item>,
    /// ISO 4217 code; EUR when absent.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, FromRow, PartialEq, utoipa::ToSchema)]
pub struct Order {
    pub id: i64,
    pub customer_id: i64,
    #[schema(value_type = Vec<Item>)]
    pub items: SqlJson<Vec<Item>>,
    pub total: f64,
    pub currency: String,
    pub state: String,
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("database: {0}")]
    Db(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match &self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (code, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

fn db_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::Db(e.to_string())
}

static SCHEMA: OnceCell<()> = OnceCell::const_new();

/// Creates the tables on the primary once per process (idempotent migrations).
pub async fn ensure_schema(db: &DbRouter) -> Result<(), ApiError> {
    SCHEMA
        .get_or_try_init(|| async { sqlx::migrate!("./pg-migrations").run(db.write()).await.map_err(db_err) })
        .await
        .map(|_| ())
}

impl NewCustomer {
    fn validate(&self) -> Result<(), ApiError> {
        // Counted in characters, as the OpenAPI description states them (maxLength).
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(ApiError::Invalid("name: 1 to 200 characters".into()));
        }
        if !self.email.contains('@') || self.email.starts_with('@') || self.email.chars().count() > 320 {
            return Err(ApiError::Invalid(format!("email {:?} is not an address", self.email)));
        }
        if self.plan.trim().is_empty() || self.plan.chars().count() > 64 {
            return Err(ApiError::Invalid("plan: 1 to 64 characters".into()));
        }
        no_nul(&[("name", &self.name), ("email", &self.email), ("plan", &self.plan)])
    }
}

/// PostgreSQL text and JSONB cannot hold U+0000: refused as input, not left to fail as a
/// database error (found by schemathesis).
fn no_nul(fields: &[(&str, &str)]) -> Result<(), ApiError> {
    match fields.iter().find(|(_, v)| v.contains('\0')) {
        Some((name, _)) => Err(ApiError::Invalid(format!("{name}: contains a NUL character"))),
        None => Ok(()),
    }
}

impl NewOrder {
    /// The order total, or why the order is invalid.
    fn total(&self) -> Result<f64, ApiError> {
        if self.items.is_empty() || self.items.len() > 100 {
            return Err(ApiError::Invalid("items: 1 to 100 lines".into()));
        }
        let mut sum = 0.0;
        for (i, it) in self.items.iter().enumerate() {
            if it.sku.trim().is_empty() || it.qty == 0 || it.qty > 10_000 || !it.unit_price.is_finite() || it.unit_price < 0.0 {
                return Err(ApiError::Invalid(format!("items[{i}]: sku, qty 1..10000 and unit_price ≥ 0 required")));
            }
            no_nul(&[("sku", &it.sku)]).map_err(|e| ApiError::Invalid(format!("items[{i}]: {e}")))?;
            sum += it.qty as f64 * it.unit_price;
        }
        // The column is NUMERIC(12, 2): a larger total is bad input, not a database error.
        if !(sum < 1e10) {
            return Err(ApiError::Invalid("total: at most 9 999 999 999.99".into()));
        }
        Ok((sum * 100.0).round() / 100.0)
    }
}

macro_rules! customer_cols {
    () => {
        "id, name, email, plan, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at"
    };
}
macro_rules! order_cols {
    () => {
        "id, customer_id, items, total::float8 AS total, currency, state, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at"
    };
}
const CUSTOMER_COLS: &str = customer_cols!();
const ORDER_COLS: &str = order_cols!();

/// What a create returns: the row, the LSN to read it back after (`None` when it could not
/// be read after the commit: the write stands, only read-your-writes is lost), and whether
/// it was created by an earlier request with the same Idempotency-Key.
pub struct Created<T> {
    pub row: T,
    pub lsn: Option<Lsn>,
    pub replayed: bool,
}

/// An Idempotency-Key as clients send it: 1 to 200 visible ASCII characters.
pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 200 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::Invalid("Idempotency-Key: 1 to 200 visible ASCII characters".into()));
    }
    Ok(())
}

/// The resource an Idempotency-Key already created, if any; refused when the key was used
/// for another kind of resource.
async fn remembered(db: &DbRouter, kind: &str, key: &str) -> Result<Option<i64>, ApiError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT kind, resource_id FROM idempotency_keys WHERE key = $1").bind(key).fetch_optional(db.write()).await.map_err(db_err)?;
    match row {
        Some((k, _)) if k != kind => Err(ApiError::Invalid(format!("Idempotency-Key {key:?} was used for a {k}, not a {kind}"))),
        r => Ok(r.map(|r| r.1)),
    }
}

/// The shared tail of every create inside its transaction: the CloudEvent into the outbox,
/// the Idempotency-Key remembered, commit, the relay woken. `Ok(Some(id))` when a concurrent
/// request with the same key won the race: this transaction is rolled back and `id` is
/// what the winner created.
async fn commit_with_event(
    svc: &Services,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    (topic, id, ev): (&str, i64, CloudEvent),
    kind: &str,
    key: Option<&str>,
) -> Result<Option<i64>, ApiError> {
    crate::outbox::enqueue(&mut tx, topic, &id.to_string(), &ev.to_bytes()).await.map_err(db_err)?;
    if let Some(k) = key {
        let stored = sqlx::query("INSERT INTO idempotency_keys (key, kind, resource_id) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
            .bind(k)
            .bind(kind)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if stored.rows_affected() == 0 {
            tx.rollback().await.map_err(db_err)?;
            return remembered(&svc.db, kind, k).await?.map(Some).ok_or_else(|| ApiError::Db(format!("Idempotency-Key {k:?} vanished")));
        }
    }
    tx.commit().await.map_err(db_err)?;
    svc.outbox.wake();
    Ok(None)
}

/// After a commit: the LSN for read-your-writes, or `None` if it cannot be read (the write
/// stands; a 503 here would make a client retry and create the row twice).
async fn lsn_after_commit(db: &DbRouter) -> Option<Lsn> {
    db.write_lsn().await.map_err(|e| tracing::warn!(error = %e, "LSN after a committed write")).ok()
}

async fn customer_on_primary(db: &DbRouter, id: i64) -> Result<Customer, ApiError> {
    sqlx::query_as(concat!("SELECT ", customer_cols!(), " FROM customers WHERE id = $1")).bind(id).fetch_one(db.write()).await.map_err(db_err)
}

async fn order_on_primary(db: &DbRouter, id: i64) -> Result<Order, ApiError> {
    sqlx::query_as(concat!("SELECT ", order_cols!(), " FROM orders WHERE id = $1")).bind(id).fetch_one(db.write()).await.map_err(db_err)
}

pub async fn create_customer(svc: &Services, c: NewCustomer, key: Option<&str>) -> Result<Created<Customer>, ApiError> {
    c.validate()?;
    ensure_schema(&svc.db).await?;
    if let Some(k) = key {
        check_key(k)?;
        if let Some(id) = remembered(&svc.db, "customer", k).await? {
            return Ok(Created { row: customer_on_primary(&svc.db, id).await?, lsn: lsn_after_commit(&svc.db).await, replayed: true });
        }
    }
    let mut tx = svc.db.writer().map_err(db_err)?.begin().await.map_err(db_err)?;
    let row: Customer = sqlx::query_as(&format!("INSERT INTO customers (name, email, plan) VALUES ($1, $2, $3) RETURNING {CUSTOMER_COLS}"))
        .bind(c.name.trim())
        .bind(&c.email)
        .bind(&c.plan)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    let ev = CloudEvent::new(
        "/bss/api/customers",
        "bss.customer.created",
        format!("api-customer-{}", row.id),
        events::now_ms(),
        Some(row.id.to_string()),
        json!({"customer_id": row.id.to_string(), "name": row.name, "email": row.email, "plan": row.plan}),
    );
    if let Some(id) = commit_with_event(svc, tx, (events::CUSTOMER_TOPIC, row.id, ev), "customer", key).await? {
        return Ok(Created { row: customer_on_primary(&svc.db, id).await?, lsn: lsn_after_commit(&svc.db).await, replayed: true });
    }
    Ok(Created { row, lsn: lsn_after_commit(&svc.db).await, replayed: false })
}

pub async fn create_order(svc: &Services, o: NewOrder, key: Option<&str>) -> Result<Created<Order>, ApiError> {
    let total = o.total()?;
    ensure_schema(&svc.db).await?;
    let currency = o.currency.clone().unwrap_or_else(|| "EUR".into());
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::Invalid(format!("currency {currency:?}: three capital letters, e.g. EUR")));
    }
    if let Some(k) = key {
        check_key(k)?;
        if let Some(id) = remembered(&svc.db, "order", k).await? {
            return Ok(Created { row: order_on_primary(&svc.db, id).await?, lsn: lsn_after_commit(&svc.db).await, replayed: true });
        }
    }
    let mut tx = svc.db.writer().map_err(db_err)?.begin().await.map_err(db_err)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)").bind(o.customer_id).fetch_one(&mut *tx).await.map_err(db_err)?;
    if !exists {
        return Err(ApiError::Invalid(format!("customer {} does not exist", o.customer_id)));
    }
    let row: Order = sqlx::query_as(&format!("INSERT INTO orders (customer_id, items, total, currency) VALUES ($1, $2, $3, $4) RETURNING {ORDER_COLS}"))
        .bind(o.customer_id)
        .bind(SqlJson(&o.items))
        .bind(total)
        .bind(&currency)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    let ev = CloudEvent::new(
        "/bss/api/orders",
        "bss.order.placed",
        format!("api-order-{}", row.id),
        events::now_ms(),
        Some(row.id.to_string()),
        json!({"order_id": row.id.to_string(), "customer_id": o.customer_id.to_string(), "currency": currency, "items": o.items}),
    );
    if let Some(id) = commit_with_event(svc, tx, (events::ORDER_TOPIC, row.id, ev), "order", key).await? {
        return Ok(Created { row: order_on_primary(&svc.db, id).await?, lsn: lsn_after_commit(&svc.db).await, replayed: true });
    }
    Ok(Created { row, lsn: lsn_after_commit(&svc.db).await, replayed: false })
}

/// A read through the router, after `lsn` when given (read-your-writes). Returns the
/// backend that served it.
async fn read<T: Send + 'static>(
    db: &DbRouter,
    after: Option<Lsn>,
    f: impl for<'p> Fn(&'p sqlx::PgPool) -> crate::db::BoxFut<'p, T> + Send + Sync,
) -> Result<(String, T), ApiError> {
    ensure_schema(db).await?;
    match after {
        Some(lsn) => db.read_after(lsn, f).await,
        None => db.read(f).await,
    }
    .map_err(|e| match e {
        crate::db::DbError::AheadOfPrimary { .. } => ApiError::Invalid(format!("X-BSS-Read-After: {e}")),
        e => db_err(e),
    })
}

pub async fn get_customer(db: &DbRouter, id: i64, after: Option<Lsn>) -> Result<(String, Customer), ApiError> {
    const SQL: &str = concat!("SELECT ", customer_cols!(), " FROM customers WHERE id = $1");
    let (b, row) = read(db, after, |p| boxed(sqlx::query_as::<_, Customer>(SQL).bind(id).fetch_optional(p))).await?;
    Ok((b, row.ok_or_else(|| ApiError::NotFound(format!("customer {id}")))?))
}

pub async fn list_customers(db: &DbRouter, limit: i64, after: Option<Lsn>) -> Result<(String, Vec<Customer>), ApiError> {
    const SQL: &str = concat!("SELECT ", customer_cols!(), " FROM customers ORDER BY id DESC LIMIT $1");
    read(db, after, |p| boxed(sqlx::query_as::<_, Customer>(SQL).bind(limit).fetch_all(p))).await
}

pub async fn get_order(db: &DbRouter, id: i64, after: Option<Lsn>) -> Result<(String, Order), ApiError> {
    const SQL: &str = concat!("SELECT ", order_cols!(), " FROM orders WHERE id = $1");
    let (b, row) = read(db, after, |p| boxed(sqlx::query_as::<_, Order>(SQL).bind(id).fetch_optional(p))).await?;
    Ok((b, row.ok_or_else(|| ApiError::NotFound(format!("order {id}")))?))
}

pub async fn list_orders(db: &DbRouter, customer: Option<i64>, limit: i64, after: Option<Lsn>) -> Result<(String, Vec<Order>), ApiError> {
    const SQL: &str = concat!("SELECT ", order_cols!(), " FROM orders WHERE ($1::bigint IS NULL OR customer_id = $1) ORDER BY id DESC LIMIT $2");
    read(db, after, |p| boxed(sqlx::query_as::<_, Order>(SQL).bind(customer).bind(limit).fetch_all(p))).await
}

// ---- HTTP ----
// Each handler carries its OpenAPI description (`crate::openapi` gathers them and serves
// `/api/openapi.json`); every error of this API is `{"error": "..."}` JSON, including
// malformed paths, queries and bodies.

/// The JSON body of every error this API answers itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong, for a person to read.
    pub error: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows to return, newest first (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Only this customer's orders (orders only).
    customer_id: Option<i64>,
}

/// The header parameters a read accepts.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ReadHeaders {
    /// Read your own write: serve from a replica only once it has replayed this LSN (the
    /// `X-BSS-LSN` a write answered), else from the primary.
    #[param(rename = "X-BSS-Read-After", pattern = "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$", example = "0/3000060")]
    read_after: Option<String>,
}

/// The header parameters a create accepts.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct WriteHeaders {
    /// A retry with the same key and body returns the first result and creates nothing.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    idempotency_key: Option<String>,
}

fn after(h: &HeaderMap) -> Result<Option<Lsn>, ApiError> {
    match h.get("x-bss-read-after").map(|v| v.to_str().unwrap_or_default()) {
        None => Ok(None),
        Some(s) => Lsn::parse(s).map(Some).ok_or_else(|| ApiError::Invalid(format!("X-BSS-Read-After {s:?} is not an LSN like 0/3000060"))),
    }
}

fn served<T: Serialize>(backend: &str, body: T) -> Response {
    let mut r = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(backend) {
        r.headers_mut().insert("x-bss-backend", v);
    }
    r
}

/// 201 with the row and `X-BSS-LSN` (when known); a replay of an Idempotency-Key is 200
/// with `Idempotent-Replayed: true` and the first request's row.
fn written<T: Serialize>(c: Created<T>) -> Response {
    let status = if c.replayed { StatusCode::OK } else { StatusCode::CREATED };
    let mut r = (status, Json(c.row)).into_response();
    if let Some(v) = c.lsn.and_then(|l| HeaderValue::from_str(&l.to_string()).ok()) {
        r.headers_mut().insert("x-bss-lsn", v);
    }
    if c.replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

fn idempotency_key(h: &HeaderMap) -> Result<Option<&str>, ApiError> {
    h.get("idempotency-key").map(|v| v.to_str().map_err(|_| ApiError::Invalid("Idempotency-Key: visible ASCII only".into()))).transpose()
}

fn limit(q: &ListQuery) -> Result<i64, ApiError> {
    match q.limit.unwrap_or(50) {
        l @ 1..=500 => Ok(l),
        l => Err(ApiError::Invalid(format!("limit {l}: 1 to 500"))),
    }
}

/// Audits a create: the new row's id (or the one an Idempotency-Key replayed), or the error.
async fn audit_write(svc: &Services, who: &Principal, action: &str, r: Result<(i64, bool), String>) {
    let target = r.as_ref().map(|(id, _)| id.to_string()).unwrap_or_default();
    svc.audit(&who.user, action, &target, &r.map(|(id, replayed)| if replayed { format!("replayed {id}") } else { format!("created {id}") })).await;
}

type QueryIn = Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>;
type PathIn = Result<Path<i64>, axum::extract::rejection::PathRejection>;
type BodyIn<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn query(q: QueryIn) -> Result<ListQuery, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::Invalid(e.body_text()))
}
fn path_id(p: PathIn) -> Result<i64, ApiError> {
    p.map(|Path(id)| id).map_err(|e| ApiError::Invalid(e.body_text()))
}
fn body<T>(b: BodyIn<T>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| ApiError::Invalid(e.body_text()))
}
fn role(who: &Principal, needed: Role, what: &str) -> Result<(), ApiError> {
    require(who, needed, what).map_err(|e| ApiError::Forbidden(e.to_string()))
}

/// The newest customers, from a replica (or the primary when none is fit).
#[utoipa::path(get, path = "/api/customers", tag = "bss", params(ListQuery, ReadHeaders),
    responses(
        (status = 200, description = "Newest first; `X-BSS-Backend` names the server that answered", body = Vec<Customer>,
            headers(("X-BSS-Backend" = String, description = "primary, replica-1 or replica-2"))),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 422, description = "A bad limit or LSN", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn customers_list(State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, q: QueryIn) -> Result<Response, ApiError> {
    role(&who, Role::Viewer, "reading customers")?;
    let (b, rows) = list_customers(&s.services.db, limit(&query(q)?)?, after(&h)?).await?;
    Ok(served(&b, rows))
}

/// Creates a customer; its `customer.created` CloudEvent goes out through the outbox.
#[utoipa::path(post, path = "/api/customers", tag = "bss", params(WriteHeaders), request_body = NewCustomer,
    responses(
        (status = 201, description = "Created; `X-BSS-LSN` to read it back with", body = Customer,
            headers(("X-BSS-LSN" = String, description = "The commit's LSN (absent when it could not be read)"))),
        (status = 200, description = "An Idempotency-Key replay: the first request's row", body = Customer,
            headers(("Idempotent-Replayed" = String, description = "true"))),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not allowed (viewer), or a cross-site request", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", content_type = "text/plain", body = String),
        (status = 422, description = "Bad input: nothing written", body = ErrorBody),
        (status = 503, description = "The primary did not answer: nothing written", body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn customers_create(State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, b: BodyIn<NewCustomer>) -> Result<Response, ApiError> {
    role(&who, Role::Operator, "creating customers")?;
    let c = body(b)?;
    let r = create_customer(&s.services, c, idempotency_key(&h)?).await;
    audit_write(&s.services, &who, "bss.customer.create", r.as_ref().map(|x| (x.row.id, x.replayed)).map_err(|e| e.to_string())).await;
    Ok(written(r?))
}

/// One customer.
#[utoipa::path(get, path = "/api/customers/{id}", tag = "bss", params(("id" = i64, Path, description = "Customer id"), ReadHeaders),
    responses(
        (status = 200, description = "The customer", body = Customer, headers(("X-BSS-Backend" = String))),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 422, description = "A bad id or LSN", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn customers_get(State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, id: PathIn) -> Result<Response, ApiError> {
    role(&who, Role::Viewer, "reading customers")?;
    let (b, row) = get_customer(&s.services.db, path_id(id)?, after(&h)?).await?;
    Ok(served(&b, row))
}

/// The newest orders, optionally of one customer.
#[utoipa::path(get, path = "/api/orders", tag = "bss", params(ListQuery, ReadHeaders),
    responses(
        (status = 200, description = "Newest first", body = Vec<Order>, headers(("X-BSS-Backend" = String))),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 422, description = "A bad limit, customer id or LSN", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn orders_list(State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, q: QueryIn) -> Result<Response, ApiError> {
    role(&who, Role::Viewer, "reading orders")?;
    let q = query(q)?;
    let (b, rows) = list_orders(&s.services.db, q.customer_id, limit(&q)?, after(&h)?).await?;
    Ok(served(&b, rows))
}

/// Places an order for an existing customer; its `order.placed` CloudEvent goes out
/// through the outbox.
#[utoipa::path(post, path = "/api/orders", tag = "bss", params(WriteHeaders), request_body = NewOrder,
    responses(
        (status = 201, description = "Created", body = Order, headers(("X-BSS-LSN" = String))),
        (status = 200, description = "An Idempotency-Key replay", body = Order, headers(("Idempotent-Replayed" = String))),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not allowed (viewer), or a cross-site request", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", content_type = "text/plain", body = String),
        (status = 422, description = "Bad input, or no such customer: nothing written", body = ErrorBody),
        (status = 503, description = "The primary did not answer: nothing written", body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn orders_create(State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, b: BodyIn<NewOrder>) -> Result<Response, ApiError> {
    role(&who, Role::Operator, "creating orders")?;
    let o = body(b)?;
    let r = create_order(&s.services, o, idempotency_key(&h)?).await;
    audit_write(&s.services, &who, "bss.order.create", r.as_ref().map(|x| (x.row.id, x.replayed)).map_err(|e| e.to_string())).await;
    Ok(written(r?))
}

/// One order.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "bss", params(("id" = i64, Path, description = "Order id"), ReadHeaders),
    responses(
        (status = 200, description = "The order", body = Order, headers(("X-BSS-Backend" = String))),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 422, description = "A bad id or LSN", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn orders_get(State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, id: PathIn) -> Result<Response, ApiError> {
    role(&who, Role::Viewer, "reading orders")?;
    let (b, row) = get_order(&s.services.db, path_id(id)?, after(&h)?).await?;
    Ok(served(&b, row))
}

/// Whether `path` is the BSS API's (the sign-in gate answers these in the API's JSON).
pub fn is_api_path(path: &str) -> bool {
    ["/api/customers", "/api/orders"].iter().any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/customers", get(customers_list).post(customers_create))
        .route("/api/customers/{id}", get(customers_get))
        .route("/api/orders", get(orders_list).post(orders_create))
        .route("/api/orders/{id}", get(orders_get))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_validation_and_total() {
        let o = |items: Vec<Item>| NewOrder { customer_id: 1, items, currency: None };
        let it = |qty, unit_price| Item { sku: "SIM".into(), qty, unit_price };
        assert_eq!(o(vec![it(2, 9.99), it(1, 5.0)]).total().unwrap(), 24.98);
        assert!(o(vec![]).total().is_err());
        assert!(o(vec![it(0, 1.0)]).total().is_err());
        assert!(o(vec![it(1, -1.0)]).total().is_err());
        assert!(o(vec![it(1, f64::NAN)]).total().is_err());
    }

    #[test]
    fn customer_validation() {
        let c = |name: &str, email: &str| NewCustomer { name: name.into(), email: email.into(), plan: "mobile-m".into() };
        assert!(c("Ada", "ada@example.com").validate().is_ok());
        assert!(c("", "ada@example.com").validate().is_err());
        assert!(c("Ada", "nope").validate().unwrap_err().to_string().contains("nope"));
        assert!(c("Ada", "@x").validate().is_err());
    }
}
