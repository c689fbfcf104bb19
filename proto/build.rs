//! Generates the prost messages and tonic services from `proto/*.proto`.
//! protoc comes from Debian's `protobuf-compiler` (installed by `.ci/run`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/ocean.proto",
        "proto/internal.proto",
        "proto/raft_transport.proto",
        "proto/agent.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    tonic_prost_build::configure().compile_protos(&files, &["proto"])?;
    Ok(())
}
