//! Stats: placeholder.
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use crate::error::{Error, Result};
pub fn collect(_pid: u32) -> Result<Any> {
    Err(Error::Unimplemented("stats".into()))
}
