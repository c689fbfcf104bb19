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
    // A job's spec is shared, not copied, between the versions of its
    // record: a waiting reason or a back-off change makes a new record, and
    // the change feed keeps the old one for watchers to resume from. At
    // 100,000 jobs the copies cost tens of MB on every master.
    tonic_prost_build::configure()
        .bytes(".ocean.internal.v1.Job.spec_json")
        .bytes(".ocean.internal.v1.JobSpecVersion.spec_json")
        .compile_protos(&files, &["proto"])?;
    Ok(())
}
