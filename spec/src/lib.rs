//! Ocean job spec (being written).
