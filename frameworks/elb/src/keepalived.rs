//! keepalived configuration (filled below).
