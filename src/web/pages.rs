//! The dashboard: pages rendered on the server from the same views the JSON API answers
//! (`api::referendum_view`), so that what a person reads and what a tool reads cannot drift.
//!
//! Why it is built so:
//! - **Proposal text, titles, rationales and error texts are untrusted.** The templates are
//!   minijinja with HTML auto-escaping (every `.html` template), nothing is marked safe, and
//!   every page is sent with a Content-Security-Policy that allows no script at all, so that
//!   even a missed escape could not run one.
//! - **No JavaScript, nothing fetched from elsewhere.** The one stylesheet is compiled into the
//!   binary; the score bars are inline SVG drawn here. A page reads on a phone (viewport, wrapping
//!   stage chips, tables that scroll inside their own box).
//! - **Artefacts are served by the binary too** (`/store/{key}`), read-only and as inert types
//!   (`text/plain`, `application/json`, `nosniff`, a sandboxing CSP), so a `--web-only` mirror
//!   is a complete public copy and a link on the page opens the very bytes the manifest hashes.

pub mod overview;
pub mod referendum;

use super::WebState;
use super::api::ApiError;
use crate::store::ObjectKey;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;
use std::sync::{Arc, LazyLock};

/// No script, no frame, no form posted elsewhere; styles and images from the server only.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                           form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Stored artefacts are data: a sandbox with nothing allowed, whatever their bytes say.
const ARTEFACT_POLICY: &str = "sandbox; default-src 'none'";

/// The templates, compiled into the binary and parsed once.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("runs.html", include_str!("templates/runs.html")),
        ("referendum.html", include_str!("templates/referendum.html")),
        ("error.html", include_str!("templates/error.html")),
        ("arena.html", include_str!("templates/arena.html")),
        ("review.html", include_str!("templates/review.html")),
    ] {
        // The templates are part of the binary: one that does not parse is a build defect,
        // caught by every test that renders a page.
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env.add_filter("duration", |ms: i64| human_duration(ms));
    env
});

/// The dashboard's routes.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/referenda/{network}/{id}", get(referendum::page))
        .route("/assets/style.css", get(style))
        .route("/store/{*key}", get(artefact))
}

/// An error shown as a page: the status and a message for people (escaped like everything).
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    /// A page answering `status` with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A 404 page.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status(),
            message: e.message().to_owned(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct ErrorPage {
            status: u16,
            message: String,
        }
        let page = ErrorPage {
            status: self.status.as_u16(),
            message: self.message,
        };
        let mut response = render("error.html", &page);
        *response.status_mut() = self.status;
        response
    }
}

/// Renders `template` with `page` as its context, sent with the page policy.
pub fn render(template: &str, page: &impl Serialize) -> Response {
    let rendered = TEMPLATES
        .get_template(template)
        .and_then(|t| t.render(Value::from(Serde(page))));
    match rendered {
        Ok(html) => {
            let mut response = Html(html).into_response();
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            );
            response
        }
        Err(e) => {
            tracing::error!("page {template}: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered\n",
            )
                .into_response()
        }
    }
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/style.css"),
    )
        .into_response()
}

/// `GET /store/{key}`: one stored object, byte for byte, as an inert type.
async fn artefact(State(s): State<Arc<WebState>>, Path(key): Path<String>) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such artefact\n",
        )
            .into_response()
    };
    let Ok(key) = ObjectKey::new(key) else {
        return not_found();
    };
    match s.store.get_optional(&key).await {
        Ok(Some(bytes)) => {
            let kind = match key.as_str().rsplit_once('.').map(|(_, ext)| ext) {
                Some("json") => "application/json",
                _ => "text/plain; charset=utf-8",
            };
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    (header::CONTENT_SECURITY_POLICY, ARTEFACT_POLICY),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!("store: reading {key}: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the store failed\n").into_response()
        }
    }
}

/// A duration for people: `850 ms`, `12.3 s`, `4 min 5 s`.
pub fn human_duration(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(12_345), "12.3 s");
        assert_eq!(human_duration(245_000), "4 min 5 s");
    }
}
