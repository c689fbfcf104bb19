//! Ocean's web dashboard: HTML pages rendered on the master from the same
//! typed service layer the REST and gRPC APIs use, mounted at `/ui/` on
//! every master (the `ocean` binary mounts [`router_with`] beside the REST
//! API through `ocean_master::run_mounted`).
//!
//! ```text
//!  browser ── GET /ui/... ──► pages::* ── Service<Master> reads (at a version) ──► askama template
//!     │                                                                              │ HTML, readable without JS
//!     │◄───────────────────────────────────────────────────────────────────────────────┘
//!     ├── POST /ui/... (plain forms + CSRF token) ──► Service writes ──► 303 to the page ?v=VERSION
//!     │                                   └─ bad input: the same page, 422, error next to the field
//!     ├── live.js ── GET /v1/events?from=VERSION&node=..&kinds=.. (one SSE per tab, job page)
//!     ├── log-tail.js ── GET /v1/tasks/{id}/logs?follow=true (task page)
//!     └── hosts-map.js ── GET /ui/hosts/map.json (one canvas for every agent)
//!  sampler (history) ── every 15 s: live tasks' resources per product line ──► ring ──► /ui/pdl/{pdl}
//! ```
//!
//! - [`pages`]: one module per page (overview, jobs, job, hosts, hosts
//!   map, task, service tree, product line, new job, caches, databases,
//!   load balancers, tickets) and the job page's deployments part;
//! - [`summary`]: what several pages count (job states, capacity);
//! - [`tree`]: service-tree nodes' sums, quotas and weights;
//! - [`history`] and [`chart`]: product lines' usage over time, as SVG;
//! - [`job_templates`]: the built-in and stored job templates;
//! - [`diff`]: line diffs between spec versions;
//! - [`waiting`]: the scheduler's waiting text as structured counts;
//! - [`forms`] and [`csrf`]: field errors next to their fields, and the
//!   token every form carries;
//! - [`assets`]: the stylesheet and scripts, compiled into the binary;
//! - [`error`]: service errors as HTML pages with the API's status codes.

pub mod assets;
pub mod chart;
pub mod csrf;
pub mod diff;
pub mod error;
pub mod forms;
pub mod history;
pub mod job_templates;
pub mod pages;
pub mod state;
pub mod summary;
pub mod tree;
pub mod waiting;

use std::sync::Arc;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use ocean_master::{Master, SchedulerSettings};

pub use state::UiState;

/// The dashboard's routes with no quotas or weights configured.
pub fn router(master: Master) -> Router {
    router_with(master, SchedulerSettings::default())
}

/// The dashboard's routes, to merge beside the REST API; `scheduler` is
/// the cluster's scheduler settings (quotas and weights the service tree
/// and product-line pages show). Starts the product-line sampler.
pub fn router_with(master: Master, scheduler: SchedulerSettings) -> Router {
    router_full(master, scheduler, ocean_redis::api::default_backups())
}

/// [`router_with`], the caches pages backing up into `cache_backups` (the
/// directory the redis framework's REST API is given).
pub fn router_full(
    master: Master,
    scheduler: SchedulerSettings,
    cache_backups: std::path::PathBuf,
) -> Router {
    let history = Arc::new(history::History::new(
        history::DEFAULT_INTERVAL,
        history::DEFAULT_SAMPLES,
    ));
    history::spawn_sampler(master.clone(), history.clone());
    routes(UiState {
        master,
        scheduler: Arc::new(scheduler),
        history,
        cache_backups: state::CacheBackups(Arc::new(cache_backups)),
    })
}

/// The routes over a given state (tests hand in their own history).
pub fn routes(state: UiState) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(pages::overview::page))
        .route("/ui/jobs", get(pages::jobs::page))
        .route("/ui/jobs/{id}", get(pages::job::page))
        .route("/ui/jobs/{id}/scale", post(pages::job::scale))
        .route("/ui/jobs/{id}/stop", post(pages::job::stop))
        .route("/ui/jobs/{id}/reset", post(pages::job::reset))
        .route("/ui/jobs/{id}/waiting", get(pages::job_waiting::fragment))
        .route(
            "/ui/jobs/{id}/deployments",
            get(pages::deployments::fragment),
        )
        .route(
            "/ui/jobs/{id}/deployments/action",
            post(pages::deployments::action),
        )
        .route("/ui/jobs/{id}/rollback", post(pages::deployments::rollback))
        .route(
            "/ui/new",
            get(pages::new_job::page).post(pages::new_job::submit),
        )
        .route("/ui/tree", get(pages::tree::page))
        .route("/ui/pdl/{pdl}", get(pages::pdl::page))
        .route("/ui/hosts", get(pages::hosts::page))
        .route("/ui/hosts/map.json", get(pages::hosts_map::json))
        .route("/ui/hosts/{id}/status", post(pages::hosts::set_status))
        .route("/ui/tasks/{id}", get(pages::task::page))
        .route(
            "/ui/caches",
            get(pages::caches::page).post(pages::caches::create),
        )
        .route("/ui/caches/{id}", get(pages::caches::detail))
        .route(
            "/ui/databases",
            get(pages::databases::page).post(pages::databases::create),
        )
        .route("/ui/databases/{id}", get(pages::database::detail))
        .route("/ui/databases/{id}/{action}", post(pages::database::action))
        .route("/ui/elbs", get(pages::elbs::page).post(pages::elbs::create))
        .route("/ui/elbs/{name}/delete", post(pages::elbs::delete))
        .route("/ui/caches/{id}/{action}", post(pages::caches::action))
        .route("/ui/tickets", get(pages::tickets::page))
        .route("/ui/assets/style.css", get(assets::style))
        .route("/ui/assets/live.js", get(assets::live_js))
        .route("/ui/assets/log-tail.js", get(assets::log_tail_js))
        .route("/ui/assets/hosts-map.js", get(assets::hosts_map_js))
        .layer(axum::middleware::from_fn(csrf::ensure_cookie))
        .with_state(state)
}
