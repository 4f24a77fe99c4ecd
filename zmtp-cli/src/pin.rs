//! Where a PUSH/PULL benchmark's four busy threads run: the two
//! application threads and each side's I/O thread, pinned to two CPUs.
//! Shared by `zmtp bench --pin together|apart` and by libzmq's driver,
//! `zmtp-compare --libzmq push-pull … 1 together|apart` (which includes
//! this file), so that both stacks are placed the same way.
//!
//! On a 2-core machine the scheduler puts those four threads in one of
//! two ways, and each stack's throughput differs by a factor of three to
//! four between them: with each side's application thread on the CPU of
//! its own I/O thread, only the kernel's socket buffer crosses between
//! CPUs; with them apart, every hand-off between an application thread
//! and its I/O thread does. Unpinned, a run gets whichever the scheduler
//! chose, so a figure says more about the placement than the stack.

use std::collections::BTreeSet;

use rustix::thread::{CpuSet, Pid};

/// How the threads share the two CPUs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Placement {
    /// Each application thread with its own side's I/O threads.
    Together,
    /// Each application thread with the other side's I/O threads.
    Apart,
}

impl Placement {
    pub(crate) fn parse(s: &str) -> Result<Placement, String> {
        match s {
            "together" => Ok(Placement::Together),
            "apart" => Ok(Placement::Apart),
            other => Err(format!("--pin takes together or apart, not {other}")),
        }
    }

    /// The CPU of each side's I/O threads, given the receiving side's
    /// application CPU and the sending side's.
    pub(crate) fn io_cpus(self, cpus: Cpus) -> (usize, usize) {
        match self {
            Placement::Together => (cpus.receiver, cpus.sender),
            Placement::Apart => (cpus.sender, cpus.receiver),
        }
    }
}

/// The two CPUs: the receiving application thread's and the sending one's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cpus {
    pub(crate) receiver: usize,
    pub(crate) sender: usize,
}

/// The first two CPUs this process may run on.
pub(crate) fn two_cpus() -> Result<Cpus, String> {
    let allowed = rustix::thread::sched_getaffinity(None)
        .map_err(|e| format!("--pin: reading this process's CPUs: {e}"))?;
    let mut it = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c));
    match (it.next(), it.next()) {
        (Some(receiver), Some(sender)) => Ok(Cpus { receiver, sender }),
        _ => Err("--pin needs two CPUs to run on".to_owned()),
    }
}

/// Pins a thread (`None`: the calling one) to `cpu`.
pub(crate) fn pin(tid: Option<Pid>, cpu: usize) -> Result<(), String> {
    let mut set = CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(tid, &set)
        .map_err(|e| format!("--pin: pinning a thread to CPU {cpu}: {e}"))
}

/// The ids of this process's threads whose name starts with `prefix`.
pub(crate) fn threads_named(prefix: &str) -> BTreeSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: i32 = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        name.starts_with(prefix).then_some(tid)
    })
    .collect()
}

/// Pins the threads named `prefix` that are not in `before` (those a
/// context started since, `expected` of them) to `cpu`; an error when they
/// do not all appear within 5 s. A new thread names itself once it runs,
/// so its name may come a moment after the call that started it returned.
pub(crate) fn pin_new(
    prefix: &str,
    before: &BTreeSet<i32>,
    expected: usize,
    cpu: usize,
) -> Result<Vec<i32>, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let new = loop {
        let new: Vec<i32> = threads_named(prefix).difference(before).copied().collect();
        if new.len() >= expected.max(1) {
            break new;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "--pin: {} of {expected} new threads named {prefix}*",
                new.len()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    for &tid in &new {
        pin(Pid::from_raw(tid), cpu)?;
    }
    Ok(new)
}

/// The CPU a thread of this process last ran on (`/proc`'s `processor`).
#[allow(dead_code)] // `zmtp bench` reports it; `zmtp-compare` does not.
pub(crate) fn last_cpu(tid: i32) -> Option<usize> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // After the name (in parentheses, which may hold spaces) come the
    // fields from the third, state; `processor` is the 39th.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(39 - 3)?.parse().ok()
}
