//! Errors of the dashboard's handlers, shown as an HTML page. The status
//! code is the REST API's for the same error (`ocean_master::api::error`
//! maps them, once), so a missing job is a 404 here as there.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ocean_master::api::error::ApiError;

/// What can go wrong while building a page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The service refused or failed.
    #[error(transparent)]
    Service(#[from] ocean_master::Error),
    /// A form without the browser's CSRF token (see `csrf`).
    #[error(
        "this form is out of date or came from another site: reload the page and submit it again"
    )]
    Csrf,
    /// A framework's store could not be read or written (the masters
    /// answered with an error or not at all).
    #[error("{0}")]
    Unavailable(String),
    /// A template failed to render (a bug: templates are checked at build time).
    #[error("rendering {page}: {source}")]
    Render {
        page: &'static str,
        #[source]
        source: askama::Error,
    },
}

/// The dashboard's result.
pub type Result<T> = std::result::Result<T, UiError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    status: u16,
    message: String,
    frame: NoFrame,
}

/// The error page marks no nav entry as current.
struct NoFrame {
    nav: &'static str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let status = match self {
            UiError::Service(e) => ApiError::from(e).status(),
            UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Render { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %message, status = status.as_u16(), "dashboard page failed");
        }
        let page = ErrorPage {
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            message: message.clone(),
            frame: NoFrame { nav: "" },
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {message}", status.as_u16()));
        (status, Html(body)).into_response()
    }
}

/// Renders `t`, naming `page` if it fails.
pub(crate) fn render(page: &'static str, t: &impl Template) -> Result<Html<String>> {
    t.render()
        .map(Html)
        .map_err(|source| UiError::Render { page, source })
}
