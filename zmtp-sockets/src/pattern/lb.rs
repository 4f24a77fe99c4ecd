//! Round-robin over the pipes that have room (libzmq's `lb`).

use zmtp_core::Message;

use super::SendError;
use crate::pipe::{Pipe, PipeId, Pipes};

/// Where the next message goes.
#[derive(Debug, Default)]
pub(crate) struct LoadBalancer {
    next: usize,
}

impl LoadBalancer {
    /// Queues the message on the next pipe with room, starting after the
    /// last one used; gives it back when no pipe has room.
    ///
    /// The first pipe tried takes the message as the caller made it: a
    /// loop that took back a refused message kept it in a variable of its
    /// own, and the copy into it read in 16-byte pieces what the caller
    /// had just written a field at a time (no store forwarding, a wait
    /// at every send). Pipes after a refusal are [`Self::send_rest`]'s.
    #[inline(always)]
    pub(crate) fn send(&mut self, pipes: &Pipes, msg: Message) -> Result<PipeId, Message> {
        let n = pipes.len();
        let from = if self.next < n { self.next } else { 0 };
        match turns(pipes, from, n).next() {
            Some((pipe, next, left)) => match pipes.send_msg(pipe, msg) {
                Ok(()) => {
                    self.next = next;
                    Ok(pipe.id)
                }
                Err(back) => self.send_rest(pipes, back, next, left),
            },
            None => Err(msg),
        }
    }

    /// [`LoadBalancer::send`] after a pipe refused: the `count` pipes from
    /// `from` on.
    #[cold]
    #[inline(never)]
    fn send_rest(
        &mut self,
        pipes: &Pipes,
        mut msg: Message,
        from: usize,
        count: usize,
    ) -> Result<PipeId, Message> {
        for (pipe, next, _) in turns(pipes, from, count) {
            match pipes.send_msg(pipe, msg) {
                Ok(()) => {
                    self.next = next;
                    return Ok(pipe.id);
                }
                Err(back) => msg = back,
            }
        }
        Err(msg)
    }

    /// [`LoadBalancer::send`] as a pattern's send: one pipe took it, or it
    /// waits for room.
    #[inline(always)]
    pub(crate) fn route(&mut self, pipes: &Pipes, msg: Message) -> Result<u64, SendError> {
        self.send(pipes, msg).map(|_| 1).map_err(SendError::Blocked)
    }

    /// Whether some pipe has room.
    pub(crate) fn has_room(pipes: &Pipes) -> bool {
        pipes.iter().any(|p| !p.is_full())
    }
}

/// The pipes to try in turn: `count` of them from index `from` on
/// (`from` below the number of pipes, `count` at most that number),
/// wrapping, without those that were full at their last send and took
/// nothing since (skipped without their lock, see `Pipe::refused_full`).
/// Each comes with the index after it and how many of the `count` follow
/// it.
#[inline(always)]
fn turns(pipes: &Pipes, from: usize, count: usize) -> impl Iterator<Item = (&Pipe, usize, usize)> {
    let n = pipes.len();
    (0..count).filter_map(move |k| {
        // Wrapped by comparison, not `%`: a division was a quarter of the
        // send's time at 16-byte messages.
        let i = if from + k >= n {
            from + k - n
        } else {
            from + k
        };
        let pipe = pipes.at(i);
        let next = if i + 1 == n { 0 } else { i + 1 };
        (!pipe.refused_full()).then_some((pipe, next, count - 1 - k))
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{bare_pipes, drain, msg};
    use super::*;

    #[test]
    fn turns_go_round_and_skip_full_pipes() {
        let (pipes, rxs) = bare_pipes(3, 2);
        let mut lb = LoadBalancer::default();
        let order: Vec<PipeId> = (0..6)
            .map(|_| lb.send(&pipes, msg(&["m"])).expect("room"))
            .collect();
        assert_eq!(order, [1, 2, 3, 1, 2, 3]);
        // Every pipe is full now.
        assert!(!LoadBalancer::has_room(&pipes));
        let back = lb.send(&pipes, msg(&["kept"])).expect_err("full");
        assert_eq!(back.frames()[0], "kept");
        // Room on pipe 2 only: it takes the next two turns' worth.
        drain(&rxs[1]);
        assert_eq!(lb.send(&pipes, msg(&["a"])).expect("room"), 2);
        assert_eq!(lb.send(&pipes, msg(&["b"])).expect("room"), 2);
    }

    #[test]
    fn a_pipe_that_refused_for_being_full_is_skipped_until_its_task_takes() {
        use crate::pipe::Taken;
        use std::collections::VecDeque;
        let (pipes, rxs) = bare_pipes(2, 1);
        let mut lb = LoadBalancer::default();
        assert_eq!(lb.send(&pipes, msg(&["a"])).expect("room"), 1);
        assert_eq!(lb.send(&pipes, msg(&["b"])).expect("room"), 2);
        assert!(!pipes.at(0).refused_full() && !pipes.at(1).refused_full());
        // Both full: the send is refused, and both pipes say so.
        assert!(lb.send(&pipes, msg(&["c"])).is_err());
        assert!(pipes.at(0).refused_full() && pipes.at(1).refused_full());
        // Pipe 2's task takes its queue: pipe 2 is tried again, and takes
        // the message although pipe 1's turn came first.
        let mut taken = VecDeque::new();
        assert_eq!(rxs[1].take_chunk(&mut taken, true), Taken::Some(0));
        assert!(!pipes.at(1).refused_full());
        assert!(pipes.at(0).refused_full());
        assert_eq!(lb.send(&pipes, msg(&["d"])).expect("room"), 2);
        assert_eq!(drain(&rxs[1]), vec![vec![bytes::Bytes::from_static(b"d")]]);
        // Pipe 1's queue still holds "a"; once taken, pipe 1 is back.
        assert_eq!(rxs[0].take_chunk(&mut taken, true), Taken::Some(0));
        assert!(!pipes.at(0).refused_full());
        assert_eq!(lb.send(&pipes, msg(&["e"])).expect("room"), 1);
    }

    #[test]
    fn no_pipe_gives_the_message_back() {
        let mut lb = LoadBalancer::default();
        assert!(lb.send(&Pipes::default(), msg(&["x"])).is_err());
    }
}
