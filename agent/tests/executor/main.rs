//! Integration tests of the native executor: real processes in real cgroups.
//! Each test uses its own cgroup parent and data dir, so they run in
//! parallel; each is bounded in time and cleans up through an RAII guard.

mod harness;

mod env_ports;
mod fork_bomb;
mod kill;
mod limits;
mod oom;
mod recovery;
