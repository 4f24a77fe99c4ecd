//! Multipart messages over [`bytes::Bytes`].

use std::sync::Arc;

use bytes::Bytes;

use crate::wire::{Metadata, PEER_ADDRESS, SOCKET_TYPE, USER_ID};

/// A multipart message. Frames are reference-counted [`Bytes`]: cloning a
/// message or a frame never copies payload, and received frames point into
/// the connection's read buffer.
///
/// A received message also carries the sending peer's properties: the
/// metadata from its READY, plus the local `User-Id` (from the
/// Authenticator) and `Peer-Address`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Message {
    frames: Vec<Bytes>,
    properties: Option<Arc<Metadata>>,
}

impl Message {
    /// An empty message (no frames).
    pub fn new() -> Message {
        Message::default()
    }

    /// A message of the given frames.
    pub fn from_frames<I, B>(frames: I) -> Message
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Message {
            frames: frames.into_iter().map(Into::into).collect(),
            properties: None,
        }
    }

    /// Appends a frame.
    pub fn push(&mut self, frame: impl Into<Bytes>) {
        self.frames.push(frame.into());
    }

    /// Inserts a frame at the front (used for envelopes).
    pub fn push_front(&mut self, frame: impl Into<Bytes>) {
        self.frames.insert(0, frame.into());
    }

    /// Removes and returns the first frame.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        if self.frames.is_empty() {
            None
        } else {
            Some(self.frames.remove(0))
        }
    }

    /// The frames.
    pub fn frames(&self) -> &[Bytes] {
        &self.frames
    }

    /// The frames, mutably.
    pub fn frames_mut(&mut self) -> &mut Vec<Bytes> {
        &mut self.frames
    }

    /// Takes the frames out.
    pub fn into_frames(self) -> Vec<Bytes> {
        self.frames
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the message has no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Total payload bytes over all frames.
    pub fn byte_len(&self) -> usize {
        self.frames.iter().map(Bytes::len).sum()
    }

    /// The frame at `i`.
    pub fn get(&self, i: usize) -> Option<&Bytes> {
        self.frames.get(i)
    }

    /// The sending peer's properties, for a received message.
    pub fn properties(&self) -> Option<&Metadata> {
        self.properties.as_deref()
    }

    /// The sending peer's properties, shared.
    pub fn properties_arc(&self) -> Option<&Arc<Metadata>> {
        self.properties.as_ref()
    }

    /// One property of the sending peer, by name in any case.
    pub fn property(&self, name: &str) -> Option<&Bytes> {
        self.properties.as_ref()?.get(name)
    }

    /// The `User-Id` the Authenticator gave the sending peer.
    pub fn user_id(&self) -> Option<&Bytes> {
        self.property(USER_ID)
    }

    /// The sending peer's `Socket-Type`.
    pub fn socket_type(&self) -> Option<&Bytes> {
        self.property(SOCKET_TYPE)
    }

    /// The sending peer's address.
    pub fn peer_address(&self) -> Option<&Bytes> {
        self.property(PEER_ADDRESS)
    }

    /// Attaches peer properties (done by the connection on receive).
    pub fn set_properties(&mut self, properties: Arc<Metadata>) {
        self.properties = Some(properties);
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.frames.iter()).finish()
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Message {
        Message {
            frames: vec![b],
            properties: None,
        }
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Message {
        Message::from(Bytes::from_static(s.as_bytes()))
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Message {
        Message::from(Bytes::from(v))
    }
}

impl From<&[u8]> for Message {
    fn from(v: &[u8]) -> Message {
        Message::from(Bytes::copy_from_slice(v))
    }
}

impl From<Vec<Bytes>> for Message {
    fn from(frames: Vec<Bytes>) -> Message {
        Message {
            frames,
            properties: None,
        }
    }
}
