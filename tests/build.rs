//! Generates the etcd KV client the write benchmark uses to drive etcd
//! side by side with Ocean.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/etcd_kv.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/etcd_kv.proto"], &["proto"])?;
    Ok(())
}
