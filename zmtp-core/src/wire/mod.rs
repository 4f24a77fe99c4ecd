//! Wire units, one file each: the greeting, frame headers, commands and
//! metadata. Each type parses (with `nom`, over borrowed slices) and emits its
//! own bytes, and tests round-trip them.

mod command;
mod frame;
mod greeting;
mod metadata;

pub use command::{Command, MAX_PING_CONTEXT, RawCommand};
pub use frame::{FLAG_COMMAND, FLAG_LONG, FLAG_MORE, FrameHeader, MAX_HEADER_LEN};
pub use greeting::{GREETING_LEN, Greeting, MechanismName, SIGNATURE_LEN};
pub use metadata::{IDENTITY, Metadata, PEER_ADDRESS, SOCKET_TYPE, USER_ID, valid_name};
