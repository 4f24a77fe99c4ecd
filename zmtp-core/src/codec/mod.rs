//! The streaming decoder (limits checked before any allocation, zero-copy
//! splits) and the batching encoder (coalesced small frames, vectored large
//! ones).

mod decoder;
mod encoder;

pub use decoder::{Frame, FrameDecoder, READ_CHUNK};
pub use encoder::{Encoder, ZERO_COPY_THRESHOLD};
