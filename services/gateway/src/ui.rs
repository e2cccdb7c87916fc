//! The live UI, embedded in the binary: one page, its script and its
//! stylesheet. The page loads nothing from elsewhere, so a strict content
//! security policy holds.

use axum::{
    http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName},
    response::IntoResponse,
};

pub(crate) const SCRIPT_PATH: &str = "/ui/app.js";
pub(crate) const STYLE_PATH: &str = "/ui/style.css";

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

const CONTENT_SECURITY_POLICY: HeaderName = HeaderName::from_static("content-security-policy");
const NOSNIFF: HeaderName = HeaderName::from_static("x-content-type-options");
/// Scripts, styles and the WebSocket only from this origin; no inline code.
const POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            // Served from memory: revalidating is cheap, stale UIs are not.
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, POLICY),
            (NOSNIFF, "nosniff"),
        ],
        body,
    )
}

pub(crate) async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_own_assets_and_has_stable_ids() {
        assert!(INDEX_HTML.contains(&format!("src=\"{SCRIPT_PATH}\"")));
        assert!(INDEX_HTML.contains(&format!("href=\"{STYLE_PATH}\"")));
        for id in ["events", "state", "reset", "refresh", "status"] {
            assert!(INDEX_HTML.contains(&format!("id=\"{id}\"")), "#{id}");
        }
        // The policy forbids inline scripts; the page must not need one.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("onclick"));
    }
}
