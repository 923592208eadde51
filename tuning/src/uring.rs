//! io_uring probe: can this process create a ring (plain and polled), which of the opcodes
//! percore's cores (glommio) issue does the kernel support, and which ring features it offers.
//!
//! Uses only the io-uring crate's safe calls (ring setup and IORING_REGISTER_PROBE); it submits
//! no I/O. Whether a *device* supports polled I/O is only known by reading from it on a polled
//! ring: that is the engine's own start-up probe (engine/src/io.rs, its pitfalls).

use io_uring::{opcode, IoUring};
use serde::Serialize;

use crate::limits;

/// An opcode percore depends on, and whether the cores cannot work without it.
struct Needed {
    name: &'static str,
    code: u8,
    required: bool,
}

const NEEDED: &[Needed] = &[
    Needed {
        name: "READ",
        code: opcode::Read::CODE,
        required: true,
    },
    Needed {
        name: "WRITE",
        code: opcode::Write::CODE,
        required: true,
    },
    Needed {
        name: "READ_FIXED",
        code: opcode::ReadFixed::CODE,
        required: false,
    },
    Needed {
        name: "WRITE_FIXED",
        code: opcode::WriteFixed::CODE,
        required: false,
    },
    Needed {
        name: "FSYNC",
        code: opcode::Fsync::CODE,
        required: true,
    },
    Needed {
        name: "FALLOCATE",
        code: opcode::Fallocate::CODE,
        required: true,
    },
    Needed {
        name: "OPENAT",
        code: opcode::OpenAt::CODE,
        required: true,
    },
    Needed {
        name: "CLOSE",
        code: opcode::Close::CODE,
        required: true,
    },
    Needed {
        name: "STATX",
        code: opcode::Statx::CODE,
        required: true,
    },
    Needed {
        name: "ACCEPT",
        code: opcode::Accept::CODE,
        required: true,
    },
    Needed {
        name: "CONNECT",
        code: opcode::Connect::CODE,
        required: true,
    },
    Needed {
        name: "SEND",
        code: opcode::Send::CODE,
        required: true,
    },
    Needed {
        name: "RECV",
        code: opcode::Recv::CODE,
        required: true,
    },
    Needed {
        name: "POLL_ADD",
        code: opcode::PollAdd::CODE,
        required: true,
    },
    Needed {
        name: "TIMEOUT",
        code: opcode::Timeout::CODE,
        required: true,
    },
    Needed {
        name: "LINK_TIMEOUT",
        code: opcode::LinkTimeout::CODE,
        required: true,
    },
    Needed {
        name: "ASYNC_CANCEL",
        code: opcode::AsyncCancel::CODE,
        required: true,
    },
    Needed {
        name: "FADVISE",
        code: opcode::Fadvise::CODE,
        required: false,
    },
];

#[derive(Debug, Clone, Serialize)]
pub struct OpcodeSupport {
    pub name: &'static str,
    pub supported: bool,
    pub required: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UringFacts {
    /// Why a plain ring could not be created (`None`: it could).
    pub setup_error: Option<String>,
    /// Why a polled (IORING_SETUP_IOPOLL) ring could not be created.
    pub iopoll_setup_error: Option<String>,
    /// Why the opcode probe failed (kernels before 5.6 lack it).
    pub probe_error: Option<String>,
    pub opcodes: Vec<OpcodeSupport>,
    /// Ring features the kernel reported at setup.
    pub features: Vec<&'static str>,
}

impl UringFacts {
    pub fn missing_required(&self) -> Vec<&'static str> {
        self.opcodes
            .iter()
            .filter(|o| o.required && !o.supported)
            .map(|o| o.name)
            .collect()
    }
}

fn features(ring: &IoUring) -> Vec<&'static str> {
    let p = ring.params();
    let flags = [
        ("NODROP", p.is_feature_nodrop()),
        ("SUBMIT_STABLE", p.is_feature_submit_stable()),
        ("RW_CUR_POS", p.is_feature_rw_cur_pos()),
        ("FAST_POLL", p.is_feature_fast_poll()),
        ("EXT_ARG", p.is_feature_ext_arg()),
        ("NATIVE_WORKERS", p.is_feature_native_workers()),
        ("RESOURCE_TAGGING", p.is_feature_resource_tagging()),
        ("LINKED_FILE", p.is_feature_linked_file()),
    ];
    flags
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect()
}

/// Creates a small ring, probes the opcodes, and tries a polled ring.
pub fn probe() -> UringFacts {
    let mut facts = UringFacts {
        setup_error: None,
        iopoll_setup_error: None,
        probe_error: None,
        opcodes: Vec::new(),
        features: Vec::new(),
    };
    match IoUring::new(limits::PROBE_RING_ENTRIES) {
        Ok(ring) => {
            facts.features = features(&ring);
            let mut probe = io_uring::Probe::new();
            match ring.submitter().register_probe(&mut probe) {
                Ok(()) => {
                    facts.opcodes = NEEDED
                        .iter()
                        .map(|n| OpcodeSupport {
                            name: n.name,
                            supported: probe.is_supported(n.code),
                            required: n.required,
                        })
                        .collect();
                }
                Err(e) => facts.probe_error = Some(e.to_string()),
            }
        }
        Err(e) => facts.setup_error = Some(e.to_string()),
    }
    if let Err(e) = IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder()
        .setup_iopoll()
        .build(limits::PROBE_RING_ENTRIES)
    {
        facts.iopoll_setup_error = Some(e.to_string());
    }
    facts
}
