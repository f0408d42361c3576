//! CPU affinity: which CPUs the SIP thread and every other thread of presenced may run on.
//!
//! Owns: pinning the calling thread (`sched_setaffinity`) to a configured set of CPUs. `app`
//! pins the main thread to `affinity.other_threads` before it starts the store's, the list
//! resolver's and the TCP I/O threads, so each of them inherits that set, and then to
//! `affinity.sip_thread`, the set of the thread every SIP message and presence actor runs on.
//! A SIP thread with a core of its own no longer shares it with a co-located database or the
//! server's own store thread (HAProxy's `cpu-map` and nginx's `worker_cpu_affinity` serve the
//! same end). Must not: choose CPUs itself (an empty set leaves the thread as it is).

/// The largest CPU index a set can name, exclusive (glibc's `CPU_SETSIZE`).
pub const MAX_CPUS: usize = 1024;

/// Why a thread could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
    /// A CPU index past `MAX_CPUS`.
    #[error("CPU {0} is out of range (0 to {max})", max = MAX_CPUS - 1)]
    OutOfRange(usize),
    /// The kernel refused the set (no CPU of it online or allowed to this process).
    #[error("cannot pin to CPUs {cpus:?}: {source}")]
    Refused {
        /// The requested set.
        cpus: Vec<usize>,
        /// The OS error.
        source: std::io::Error,
    },
    /// Pinning is implemented for Linux only.
    #[error("CPU affinity is supported on Linux only")]
    Unsupported,
}

/// Checks a configured set without applying it.
pub fn check(cpus: &[usize]) -> Result<(), AffinityError> {
    match cpus.iter().find(|&&c| c >= MAX_CPUS) {
        Some(&c) => Err(AffinityError::OutOfRange(c)),
        None if !cpus.is_empty() && !cfg!(target_os = "linux") => Err(AffinityError::Unsupported),
        None => Ok(()),
    }
}

/// Restricts the calling thread (and the threads it starts from now on) to `cpus`; an empty
/// set changes nothing.
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), AffinityError> {
    check(cpus)?;
    if cpus.is_empty() {
        return Ok(());
    }
    pin(cpus)
}

#[cfg(target_os = "linux")]
fn pin(cpus: &[usize]) -> Result<(), AffinityError> {
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed; `CPU_SET` is given indices
    // below `CPU_SETSIZE` (checked above) and `sched_setaffinity` reads exactly
    // `size_of::<cpu_set_t>()` bytes of the set it is given. Pid 0 is the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(AffinityError::Refused {
            cpus: cpus.to_vec(),
            source: std::io::Error::last_os_error(),
        })
    }
}

#[cfg(not(target_os = "linux"))]
fn pin(_cpus: &[usize]) -> Result<(), AffinityError> {
    Err(AffinityError::Unsupported)
}

/// The CPUs the calling thread may run on, ascending; empty where that cannot be read.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `pin`; `sched_getaffinity` writes at most the size it is given, and
    // `CPU_ISSET` is given indices below `CPU_SETSIZE`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..MAX_CPUS)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// The CPUs the calling thread may run on: unknown off Linux.
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_set_is_accepted_and_changes_nothing() {
        assert!(check(&[]).is_ok());
        assert!(pin_current_thread(&[]).is_ok());
    }

    #[test]
    fn a_cpu_past_the_set_size_is_refused_before_any_system_call() {
        assert!(matches!(
            check(&[0, MAX_CPUS]),
            Err(AffinityError::OutOfRange(c)) if c == MAX_CPUS
        ));
        assert!(matches!(
            pin_current_thread(&[MAX_CPUS + 5]),
            Err(AffinityError::OutOfRange(_))
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_is_pinned_to_an_allowed_cpu_and_refused_a_set_of_none() {
        let allowed = allowed_cpus();
        let first = allowed[0];
        // Its own thread: the test harness's other threads keep their sets.
        std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            assert_eq!(allowed_cpus(), vec![first]);
            // A thread started now inherits the set.
            let inherited = std::thread::spawn(allowed_cpus).join().unwrap();
            assert_eq!(inherited, vec![first]);
            // No machine here has CPU 1023 online: the kernel refuses the set.
            assert!(matches!(
                pin_current_thread(&[MAX_CPUS - 1]),
                Err(AffinityError::Refused { .. })
            ));
            assert_eq!(allowed_cpus(), vec![first]);
        })
        .join()
        .unwrap();
    }
}
