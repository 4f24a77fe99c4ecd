//! Distribution to every pipe that wants a message (libzmq's `dist`).

use zmtp_core::Message;

use crate::pipe::{Pipe, Pipes, Small};

/// Queues a copy of `msg` on every pipe `wanted` picks (a small one-frame
/// message is copied into each pipe's item, see [`Small`]). A pipe at its
/// high-water mark loses the message; the others are not held up by it.
/// Returns how many pipes took it.
pub(crate) fn distribute(pipes: &Pipes, msg: &Message, wanted: impl Fn(&Pipe) -> bool) -> u64 {
    let small = Small::of(msg);
    pipes.quietly(|| {
        let mut queued = 0;
        for p in pipes.iter() {
            if wanted(p) && pipes.send_copy(p, msg, small.as_ref()) {
                queued += 1;
            }
        }
        queued
    })
}

/// Publishes: a copy to every pipe whose peer subscribed to a prefix of
/// the message's first frame (PUB, XPUB).
#[inline]
pub(crate) fn publish(pipes: &Pipes, msg: &Message) -> u64 {
    let t = topic(msg);
    distribute(pipes, msg, |p| p.subs.matches(t))
}

/// The first frame of a message, the topic that subscriptions match.
pub(crate) fn topic(msg: &Message) -> &[u8] {
    msg.get(0).map_or(&[][..], |f| &f[..])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{bare_pipes, drain, msg};
    use super::*;

    #[test]
    fn a_full_pipe_loses_its_copy_and_the_others_get_theirs() {
        let (pipes, rxs) = bare_pipes(3, 1);
        assert_eq!(distribute(&pipes, &msg(&["a"]), |p| p.id != 3), 2);
        assert_eq!(distribute(&pipes, &msg(&["b"]), |_| true), 1);
        assert_eq!(drain(&rxs[0]).len(), 1);
        assert_eq!(drain(&rxs[1]).len(), 1);
        assert_eq!(drain(&rxs[2]), vec![vec![bytes::Bytes::from("b")]]);
    }
}
