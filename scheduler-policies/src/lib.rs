//! Pure placement (being written).
