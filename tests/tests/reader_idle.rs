//! The first record after a quiet spell wakes the agent's ring reader at once.
//!
//! With batched wakeups the kernel wakes the reader once per 64 KiB of records, and an idle
//! reader otherwise looks every 200 ms: a lone request waited up to that long in the ring. The
//! reader now sets the capture programs' `reader_idle` flag as it goes to sleep idle; the next
//! record wakes it and clears the flag.
//!
//! - On the programs themselves (BPF_PROG_TEST_RUN on exact packets): a record under the batch
//!   size wakes no one; after the flag is set, the next record does, once, and clears it.
//! - On the agent, with nginx and curl over a veth: a lone request after a quiet spell is one
//!   idle wakeup, and a burst of requests on one connection is not one per record.

use std::{
    os::fd::{AsRawFd, RawFd},
    time::Duration,
};

use flowscope_e2e::*;

/// An edge-triggered epoll on `fd`: reports only the ring's wakeups, not its contents (a
/// ring's poll says "readable" whenever records wait, batched or not).
struct Wakeups(RawFd);

impl Wakeups {
    fn on(fd: RawFd) -> Self {
        // SAFETY: plain syscalls on descriptors this test owns; `ev` outlives the call.
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            assert!(
                ep >= 0,
                "epoll_create1: {}",
                std::io::Error::last_os_error()
            );
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: 0,
            };
            let r = libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev);
            assert_eq!(r, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
            Self(ep)
        }
    }

    /// Whether the ring woke its waiters within `ms`.
    fn woken(&self, ms: i32) -> bool {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: one event's room for one event.
        let n = unsafe { libc::epoll_wait(self.0, &mut ev, 1, ms) };
        assert!(n >= 0, "epoll_wait: {}", std::io::Error::last_os_error());
        n > 0
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        // SAFETY: the epoll descriptor is this value's own.
        unsafe { libc::close(self.0) };
    }
}

#[test]
fn the_first_record_after_the_reader_went_idle_wakes_it_once() {
    use flows::{packet::TcpFlags, synth::TcpConversation};
    require_root();
    let mut cap = ebpf_tc::KernelCapture::load(&ebpf_tc::LoadOptions {
        wakeup_bytes: 64 << 10,
        ..ebpf_tc::LoadOptions::default()
    })
    .expect("loading the capture programs");
    let ring = cap.take_ring().expect("the capture ring");
    let mut idle = cap.take_reader_idle().expect("the reader_idle flag");
    let wakeups = Wakeups::on(ring.as_raw_fd());
    let conn = TcpConversation::new(
        "198.18.0.2:40000".parse().unwrap(),
        "198.18.0.1:80".parse().unwrap(),
        0,
        0,
        0,
    );
    let frame = conn.frame(true, 1, 1, TcpFlags::ACK, b"GET / HTTP/1.1\r\n\r\n");
    let idle_wakeups = |cap: &ebpf_tc::KernelCapture| {
        cap.counters()
            .into_iter()
            .find(|(n, _)| *n == "kernel_reader_idle_wakeups")
            .map(|(_, v)| v)
            .expect("kernel_reader_idle_wakeups counter")
    };

    cap.run_tc_once(true, &frame).unwrap();
    assert!(
        !wakeups.woken(200),
        "a record under the batch size wakes no one"
    );
    assert!(!idle.is_set().unwrap());

    idle.set().unwrap();
    assert!(idle.is_set().unwrap());
    cap.run_tc_once(true, &frame).unwrap();
    assert!(
        wakeups.woken(2_000),
        "the first record after the reader went idle wakes it"
    );
    assert!(!idle.is_set().unwrap(), "and clears the flag");
    assert_eq!(idle_wakeups(&cap), 1);

    cap.run_tc_once(false, &frame).unwrap();
    assert!(!wakeups.woken(200), "the next record does not");
    assert_eq!(idle_wakeups(&cap), 1);
    // Both programs honour the flag.
    idle.set().unwrap();
    cap.run_tc_once(false, &frame).unwrap();
    assert!(wakeups.woken(2_000), "egress too");
    assert_eq!(idle_wakeups(&cap), 2);
}

#[test]
fn an_idle_agent_is_woken_once_per_quiet_spell_not_per_record() {
    require_root();
    require_tool("curl");
    let link = Link::new();
    let tmp = TempDir::new();
    std::fs::write(tmp.0.join("a.txt"), "a small page\n").unwrap();
    let _nginx = start_nginx(&link.server, &tmp.0);
    let sock = tmp.0.join("observer.sock").display().to_string();
    let mut agent = start_agent(
        &link.server,
        &format!(
            "-i {} -o none --print-spans --listen unix://{sock}",
            link.server_if
        ),
    );
    let quiet = || std::thread::sleep(Duration::from_millis(1_500));
    let exchanges = |want: u64| {
        status_counter(
            &status_when(&sock, "engine_http1_responses", want),
            "engine_http1_responses",
        )
    };

    // A quiet spell, then one request: the reader was idle, its first record woke it.
    quiet();
    let before = status_counter(&agent_status(&sock), "kernel_reader_idle_wakeups");
    link.client.exec(&format!(
        "curl -sS --max-time 10 -o /dev/null http://{SERVER_V4}/a.txt"
    ));
    assert_eq!(exchanges(1), 1);
    let lone = status_counter(&agent_status(&sock), "kernel_reader_idle_wakeups") - before;
    assert!(
        (1..=2).contains(&lone),
        "a lone request after a quiet spell: {lone} idle wakeups (its SYN wakes the reader; \
         at most one more if the reader went idle again before the FIN)"
    );

    // Another quiet spell, then 100 requests on one connection: still about one wakeup, not
    // one per record (~300 records).
    quiet();
    let before = status_counter(&agent_status(&sock), "kernel_reader_idle_wakeups");
    let urls = vec![format!("http://{SERVER_V4}/a.txt"); 100].join(" ");
    let outs = "-o /dev/null ".repeat(100);
    link.client
        .exec(&format!("curl -sS --max-time 20 {outs}{urls}"));
    assert_eq!(exchanges(101), 101);
    let burst = status_counter(&agent_status(&sock), "kernel_reader_idle_wakeups") - before;
    assert!(
        (1..=3).contains(&burst),
        "a burst of 100 requests after a quiet spell: {burst} idle wakeups"
    );
    assert_eq!(
        status_counter(&agent_status(&sock), "kernel_ring_full_lost"),
        0
    );
    assert_eq!(
        agent.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)),
        Some(0),
        "agent exit status"
    );
}
