//! The service tree as the dashboard shows it: the master's one
//! implementation (`ocean_master::service::tree`, also behind
//! `GET /v1/tree`), so the page and the API never disagree.

pub use ocean_master::kernel::state::tree::{pdl_of, QuotaLimits as Quota};
pub use ocean_master::service::tree::{Child, NodeView, Totals};
