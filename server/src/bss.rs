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

#[derive(Debug, Serialize, Deserialize, FromRow, PartialEq)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub plan: String,
    /// RFC 3339 UTC, formatted by PostgreSQL.
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub name: String,
    pub email: String,
    pub plan: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub qty: u32,
    pub unit_price: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub customer_id: i64,
    pub items: Vec<Item>,
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, FromRow, PartialEq)]
pub struct Order {
    pub id: i64,
    pub customer_id: i64,
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
        let n = self.name.trim();
        if n.is_empty() || n.len() > 200 {
            return Err(ApiError::Invalid("name: 1 to 200 characters".into()));
        }
        if !self.email.contains('@') || self.email.starts_with('@') || self.email.len() > 320 {
            return Err(ApiError::Invalid(format!("email {:?} is not an address", self.email)));
        }
        if self.plan.trim().is_empty() || self.plan.len() > 64 {
            return Err(ApiError::Invalid("plan: 1 to 64 characters".into()));
        }
        Ok(())
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
            sum += it.qty as f64 * it.unit_price;
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

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    customer_id: Option<i64>,
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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/customers",
            get(|State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, Query(q): Query<ListQuery>| async move {
                require(&who, Role::Viewer, "reading customers").map_err(|e| ApiError::Forbidden(e.to_string()))?;
                let (b, rows) = list_customers(&s.services.db, limit(&q)?, after(&h)?).await?;
                Ok::<_, ApiError>(served(&b, rows))
            })
            .post(|State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, body: Result<Json<NewCustomer>, axum::extract::rejection::JsonRejection>| async move {
                require(&who, Role::Operator, "creating customers").map_err(|e| ApiError::Forbidden(e.to_string()))?;
                let Json(c) = body.map_err(|e| ApiError::Invalid(e.body_text()))?;
                let r = create_customer(&s.services, c, idempotency_key(&h)?).await;
                audit_write(&s.services, &who, "bss.customer.create", r.as_ref().map(|x| (x.row.id, x.replayed)).map_err(|e| e.to_string())).await;
                Ok::<_, ApiError>(written(r?))
            }),
        )
        .route(
            "/api/customers/{id}",
            get(|State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, Path(id): Path<i64>| async move {
                require(&who, Role::Viewer, "reading customers").map_err(|e| ApiError::Forbidden(e.to_string()))?;
                let (b, row) = get_customer(&s.services.db, id, after(&h)?).await?;
                Ok::<_, ApiError>(served(&b, row))
            }),
        )
        .route(
            "/api/orders",
            get(|State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, Query(q): Query<ListQuery>| async move {
                require(&who, Role::Viewer, "reading orders").map_err(|e| ApiError::Forbidden(e.to_string()))?;
                let (b, rows) = list_orders(&s.services.db, q.customer_id, limit(&q)?, after(&h)?).await?;
                Ok::<_, ApiError>(served(&b, rows))
            })
            .post(|State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, body: Result<Json<NewOrder>, axum::extract::rejection::JsonRejection>| async move {
                require(&who, Role::Operator, "creating orders").map_err(|e| ApiError::Forbidden(e.to_string()))?;
                let Json(o) = body.map_err(|e| ApiError::Invalid(e.body_text()))?;
                let r = create_order(&s.services, o, idempotency_key(&h)?).await;
                audit_write(&s.services, &who, "bss.order.create", r.as_ref().map(|x| (x.row.id, x.replayed)).map_err(|e| e.to_string())).await;
                Ok::<_, ApiError>(written(r?))
            }),
        )
        .route(
            "/api/orders/{id}",
            get(|State(s): State<AppState>, Extension(who): Extension<Principal>, h: HeaderMap, Path(id): Path<i64>| async move {
                require(&who, Role::Viewer, "reading orders").map_err(|e| ApiError::Forbidden(e.to_string()))?;
                let (b, row) = get_order(&s.services.db, id, after(&h)?).await?;
                Ok::<_, ApiError>(served(&b, row))
            }),
        )
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
