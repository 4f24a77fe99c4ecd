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
///
/// ```
/// use zmtp_core::Message;
/// let mut m = Message::from("body");
/// m.push_front(""); // an envelope delimiter
/// assert_eq!(m.len(), 2);
/// assert_eq!(m.frames()[1], "body");
/// let multipart = Message::from_frames([b"topic".as_slice(), b"data"]);
/// assert_eq!(multipart.byte_len(), 9);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Message {
    frames: Frames,
    properties: Option<Arc<Metadata>>,
}

/// The frames; a single frame (the common case) needs no allocation.
#[derive(Clone, PartialEq, Eq)]
enum Frames {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Default for Frames {
    fn default() -> Frames {
        Frames::Many(Vec::new())
    }
}

impl Frames {
    #[inline]
    fn as_slice(&self) -> &[Bytes] {
        match self {
            Frames::One(b) => std::slice::from_ref(b),
            Frames::Many(v) => v,
        }
    }

    fn as_vec(&mut self) -> &mut Vec<Bytes> {
        if let Frames::One(b) = self {
            let b = std::mem::take(b);
            *self = Frames::Many(vec![b]);
        }
        match self {
            Frames::Many(v) => v,
            Frames::One(_) => unreachable!("converted above"),
        }
    }

    fn into_vec(self) -> Vec<Bytes> {
        match self {
            Frames::One(b) => vec![b],
            Frames::Many(v) => v,
        }
    }
}

impl Message {
    /// An empty message (no frames).
    #[inline]
    pub fn new() -> Message {
        Message::default()
    }

    /// A message of the given frames: `Bytes`, `Vec<u8>` and `String` are
    /// taken without a copy, borrowed bytes and strings are copied.
    ///
    /// ```
    /// use zmtp_core::Message;
    /// let topic = String::from("weather");
    /// let m = Message::from_frames([topic.as_bytes(), format!("{}", 21).as_bytes()]);
    /// assert_eq!(m.len(), 2);
    /// ```
    pub fn from_frames<I, B>(frames: I) -> Message
    where
        I: IntoIterator<Item = B>,
        B: IntoFrame,
    {
        Message::from(
            frames
                .into_iter()
                .map(IntoFrame::into_frame)
                .collect::<Vec<Bytes>>(),
        )
    }

    /// Appends a frame.
    pub fn push(&mut self, frame: impl Into<Bytes>) {
        let frame = frame.into();
        match &mut self.frames {
            Frames::Many(v) if v.is_empty() => self.frames = Frames::One(frame),
            f => f.as_vec().push(frame),
        }
    }

    /// Inserts a frame at the front (used for envelopes).
    pub fn push_front(&mut self, frame: impl Into<Bytes>) {
        let frame = frame.into();
        match &mut self.frames {
            // One allocation of the right size, not a vector of one that
            // then grows (a ROUTER does this for every message it gets).
            Frames::One(b) => {
                self.frames = Frames::Many(vec![frame, std::mem::take(b)]);
            }
            Frames::Many(v) => v.insert(0, frame),
        }
    }

    /// Removes and returns the first frame.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        match &mut self.frames {
            Frames::One(b) => {
                let b = std::mem::take(b);
                self.frames = Frames::Many(Vec::new());
                Some(b)
            }
            Frames::Many(v) if v.is_empty() => None,
            Frames::Many(v) => Some(v.remove(0)),
        }
    }

    /// The frames.
    #[inline]
    pub fn frames(&self) -> &[Bytes] {
        self.frames.as_slice()
    }

    /// The frames, mutably.
    pub fn frames_mut(&mut self) -> &mut Vec<Bytes> {
        self.frames.as_vec()
    }

    /// Takes the frames out.
    pub fn into_frames(self) -> Vec<Bytes> {
        self.frames.into_vec()
    }

    /// Number of frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.frames().len()
    }

    /// Whether the message has no frames.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.frames().is_empty()
    }

    /// Total payload bytes over all frames.
    pub fn byte_len(&self) -> usize {
        self.frames().iter().map(Bytes::len).sum()
    }

    /// The frame at `i`.
    pub fn get(&self, i: usize) -> Option<&Bytes> {
        self.frames().get(i)
    }

    /// The sending peer's properties, for a received message.
    #[inline]
    pub fn properties(&self) -> Option<&Metadata> {
        self.properties.as_deref()
    }

    /// The sending peer's properties, shared.
    #[inline]
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
    #[inline]
    pub fn set_properties(&mut self, properties: Arc<Metadata>) {
        self.properties = Some(properties);
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.frames().iter()).finish()
    }
}

impl From<Bytes> for Message {
    #[inline]
    fn from(b: Bytes) -> Message {
        Message {
            frames: Frames::One(b),
            properties: None,
        }
    }
}

impl From<&str> for Message {
    /// Copies the string (a `String` is taken without a copy).
    fn from(s: &str) -> Message {
        Message::from(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Message {
    fn from(s: String) -> Message {
        Message::from(Bytes::from(s))
    }
}

/// What can be a frame of a message: owned bytes are taken as they are,
/// borrowed ones copied.
pub trait IntoFrame {
    /// The frame.
    fn into_frame(self) -> Bytes;
}

impl IntoFrame for Bytes {
    fn into_frame(self) -> Bytes {
        self
    }
}

impl IntoFrame for Vec<u8> {
    fn into_frame(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoFrame for String {
    fn into_frame(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoFrame for &[u8] {
    fn into_frame(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoFrame for &[u8; N] {
    fn into_frame(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoFrame for &str {
    fn into_frame(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
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
    fn from(mut frames: Vec<Bytes>) -> Message {
        let frames = match frames.pop() {
            Some(only) if frames.is_empty() => Frames::One(only),
            Some(last) => {
                frames.push(last);
                Frames::Many(frames)
            }
            None => Frames::Many(frames),
        };
        Message {
            frames,
            properties: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_frame_forms_behave_alike() {
        let mut m = Message::from("a");
        assert_eq!(m.len(), 1);
        m.push_front(Bytes::new());
        assert_eq!(m.frames(), &[Bytes::new(), Bytes::from_static(b"a")]);
        assert_eq!(m.pop_front(), Some(Bytes::new()));
        assert_eq!(m.pop_front(), Some(Bytes::from_static(b"a")));
        assert_eq!(m.pop_front(), None);
        assert!(m.is_empty());
        m.push("x");
        m.push("y");
        assert_eq!(m.byte_len(), 2);
        assert_eq!(
            Message::from(vec![Bytes::from_static(b"z")]),
            Message::from("z")
        );
        assert_eq!(
            Message::from("q").into_frames(),
            vec![Bytes::from_static(b"q")]
        );
    }
}
