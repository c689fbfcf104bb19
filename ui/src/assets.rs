//! The stylesheet and the scripts (`live.js`, `log-tail.js`,
//! `hosts-map.js`), compiled into the binary: the dashboard
//! loads nothing from anywhere else.

use axum::http::header;
use axum::response::IntoResponse;

/// The whole stylesheet.
pub const STYLE_CSS: &str = include_str!("../assets/style.css");
/// The job page's live updates (one SSE stream per tab).
pub const LIVE_JS: &str = include_str!("../assets/live.js");
/// The task page's log tail (follows stdout and stderr).
pub const LOG_TAIL_JS: &str = include_str!("../assets/log-tail.js");
/// The hosts page's canvas map.
pub const HOSTS_MAP_JS: &str = include_str!("../assets/hosts-map.js");

// Short caching: the assets change only with the binary, and a master
// upgraded in place should not serve a tab yesterday's script for long.
const CACHE: &str = "public, max-age=300";

pub(crate) async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLE_CSS,
    )
}

fn script(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        body,
    )
}

pub(crate) async fn live_js() -> impl IntoResponse {
    script(LIVE_JS)
}

pub(crate) async fn log_tail_js() -> impl IntoResponse {
    script(LOG_TAIL_JS)
}

pub(crate) async fn hosts_map_js() -> impl IntoResponse {
    script(HOSTS_MAP_JS)
}
