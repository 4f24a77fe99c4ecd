//! PULL (RFC 30): fair-queued receive; never sends.

use zmtp_core::Message;

use super::{Pattern, SendError};
use crate::error::Error;
use crate::pipe::Pipes;

#[derive(Debug, Default)]
pub(crate) struct Pull;

impl Pattern for Pull {
    fn send(&mut self, _msg: Message, _pipes: &mut Pipes) -> Result<u64, SendError> {
        Err(SendError::NotSupported)
    }

    fn writable(&self, _pipes: &Pipes) -> bool {
        false
    }

    fn check_recv(&self) -> Result<(), Error> {
        Ok(())
    }

    fn passes_received(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{msg, pipes};
    use super::*;

    #[test]
    fn receives_everything_and_never_sends() {
        let mut p = Pull;
        let (mut table, _rxs) = pipes(&mut p, 1, 0);
        assert!(p.passes_received());
        assert!(p.check_recv().is_ok());
        assert!(matches!(
            p.send(msg(&["x"]), &mut table),
            Err(SendError::NotSupported)
        ));
        assert!(!p.writable(&table));
    }
}
