//! The exec wrapper as a stand-alone binary (tests and tools; the `ocean`
//! binary offers the same as `ocean agent exec-wrapper`).

fn main() {
    ocean_agent::wrapper_main(std::env::args_os().skip(1))
}
