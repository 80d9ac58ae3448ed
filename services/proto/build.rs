//! Compiles the .proto files with tonic-prost-build, using the `protoc`
//! shipped in the `protoc-bin-vendored` crate, so no system protoc (apt) or
//! download is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/darktower/v1/registry.proto",
        "proto/darktower/v1/meeting_controller.proto",
        "proto/darktower/v1/media_handler.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
