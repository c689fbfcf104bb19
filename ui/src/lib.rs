//! Ocean's web dashboard: HTML pages rendered on the master from the same
//! typed service layer the REST and gRPC APIs use, mounted at `/ui/` on
//! every master (the `ocean` binary mounts [`router`] beside the REST API
//! through `ocean_master::run_mounted`).
//!
//! ```text
//!  browser ── GET /ui/... ──► pages::* ── Service<Master> reads (at a version) ──► askama template
//!     │                                                                              │ HTML, readable without JS
//!     │◄───────────────────────────────────────────────────────────────────────────────┘
//!     ├── POST /ui/... (plain forms) ──► Service writes ──► 303 to the page ?v=VERSION (read-your-write)
//!     │                                   └─ bad input: the same page, 422, error next to the field
//!     └── live.js ── GET /v1/events?from=VERSION&node=..&kinds=.. (one SSE per tab, job page)
//! ```
//!
//! - [`pages`]: one module per page (overview, jobs, job, hosts, task);
//! - [`summary`]: what several pages count (job states, capacity);
//! - [`forms`]: field errors shown next to their fields;
//! - [`assets`]: the stylesheet and `live.js`, compiled into the binary;
//! - [`error`]: service errors as HTML pages with the API's status codes.

pub mod assets;
pub mod error;
pub mod forms;
pub mod pages;
pub mod summary;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use ocean_master::Master;

/// The dashboard's routes, to merge beside the REST API.
pub fn router(master: Master) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(pages::overview::page))
        .route("/ui/jobs", get(pages::jobs::page))
        .route("/ui/jobs/{id}", get(pages::job::page))
        .route("/ui/jobs/{id}/scale", post(pages::job::scale))
        .route("/ui/jobs/{id}/stop", post(pages::job::stop))
        .route("/ui/hosts", get(pages::hosts::page))
        .route("/ui/hosts/{id}/status", post(pages::hosts::set_status))
        .route("/ui/tasks/{id}", get(pages::task::page))
        .route("/ui/assets/style.css", get(assets::style))
        .route("/ui/assets/live.js", get(assets::live_js))
        .with_state(master)
}
