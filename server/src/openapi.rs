//! The OpenAPI 3.1 description of the HTTP surface meant for programs: the BSS API,
//! `/healthz`, `/metrics`, the audit export and sign-in. Generated from the handlers' own
//! annotations (utoipa), served at `/api/openapi.json` (public, like `/healthz`), and
//! fuzzed against the live server by schemathesis in `make test` (dev/scripts/schemathesis.sh).
//! Leptos server functions (`/api/<fn>`) are the pages' private wire format and not in it.
use axum::{response::IntoResponse, Json};
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, SecurityScheme},
    Modify, OpenApi,
};

use crate::{bss, web};

#[derive(OpenApi)]
#[openapi(
    info(title = "bss-control", description = "The BSS Phase 3 control plane's HTTP API. Writes (POST) need an operator's session and a same-origin `Origin` (or `Sec-Fetch-Site: same-origin`) header; reads need any session."),
    paths(
        bss::customers_list, bss::customers_create, bss::customers_get,
        bss::orders_list, bss::orders_create, bss::orders_get,
        web::healthz, web::metrics, web::audit_export, web::login, web::logout, web::events_schema,
    ),
    components(schemas(bss::Customer, bss::NewCustomer, bss::Order, bss::NewOrder, bss::Item, bss::ErrorBody, web::Health, web::LoginForm)),
    modifiers(&SessionCookie),
    tags((name = "bss", description = "Customers and orders through the read/write router"),
          (name = "operations", description = "Health, metrics, the audit log"),
          (name = "auth", description = "Sign-in sessions")),
)]
pub struct ApiDoc;

/// The session cookie `/auth/login` sets, as the one security scheme.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))));
    }
}

pub async fn serve() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the BSS API and the operations endpoints is described, with the
    /// statuses its handler can answer.
    #[test]
    fn the_description_covers_the_api() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/customers", "get"), ("/api/customers", "post"), ("/api/customers/{id}", "get"),
            ("/api/orders", "get"), ("/api/orders", "post"), ("/api/orders/{id}", "get"),
            ("/healthz", "get"), ("/metrics", "get"), ("/audit.jsonl", "get"), ("/auth/login", "post"),
        ] {
            assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
        }
        let create = &doc["paths"]["/api/orders"]["post"]["responses"];
        for code in ["201", "200", "401", "403", "413", "422", "503"] {
            assert!(create.get(code).is_some(), "POST /api/orders: {code} undocumented");
        }
        // Unknown fields are refused by the handlers, so the description says so.
        assert_eq!(doc["components"]["schemas"]["NewOrder"]["additionalProperties"], false);
        assert_eq!(doc["components"]["securitySchemes"]["session"]["in"], "cookie");
    }
}
