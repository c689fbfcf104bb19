//! Alert rules on service-tree nodes and the alerts they raise.
//!
//! Rules and alerts are replicated state: JSON records in the reserved KV
//! namespace [`record::NAMESPACE`] (`ocean.alerts`), written with the
//! ordinary `PutKv`/`DeleteKv` commands, so they travel through the log,
//! snapshots and the change feed, and no raft command of their own was
//! needed. Frameworks cannot write the namespace (theirs are DNS labels).
//!
//! | key                | value                                           |
//! |--------------------|-------------------------------------------------|
//! | `rule/<id>`        | [`record::Rule`]: node, kind, duration, webhook |
//! | `firing/<alert>`   | [`record::AlertRecord`]: firing or resolved, delivered transitions |
//!
//! - [`record`]: the records and the checks a rule passes;
//! - [`eval`]: the pure evaluation (facts, rules, records → transitions);
//! - [`deliver`]: webhooks, back-off and idempotency keys;
//! - `leader::alerts`: the leader's controller (one per term), which
//!   gathers the facts, writes the transitions and sends the webhooks.

pub mod deliver;
pub mod eval;
pub mod record;
