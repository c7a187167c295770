//! Generates the `echo` service's client and server with tonic, running
//! the protoc that `protoc-bin-vendored` ships (no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::compile_protos("proto/echo.proto")?;
    Ok(())
}
