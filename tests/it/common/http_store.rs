//! Serves a store folder (an `FsStore` root) over local HTTP, as a public bucket would:
//! `GET /{key}` → the object's bytes, or 404.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::Arc;

async fn object(State(root): State<Arc<PathBuf>>, uri: Uri) -> Response {
    let key = uri.path().trim_start_matches('/');
    // Same key rules as the store: no empty, dot-led or traversing segments.
    if key.is_empty() || key.split('/').any(|s| s.is_empty() || s.starts_with('.')) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(root.join(key)).await {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `root` on an ephemeral loopback port; returns the base URL.
pub async fn spawn_http_store(root: impl Into<PathBuf>) -> String {
    let app = Router::new()
        .fallback(object)
        .with_state(Arc::new(root.into()));
    super::serve_on_loopback(app).await
}
