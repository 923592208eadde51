//! The layout file: README.md's examples parse and mean what the README says, the default rule
//! agrees with the gateway, every validation error names what is wrong, and lookups answer.

mod common;

use common::{ec, grid, node};
use placement::layout::{CoreSpec, PolicySpec};
use placement::{
    CoreId, Domain, Layout, LayoutError, LayoutFile, PlacementError, Policy, Scheme, Tier, Warning,
};

/// The ```toml blocks of README.md that are whole layouts (they start with `format`).
fn readme_layouts() -> Vec<String> {
    let readme = include_str!("../README.md");
    let mut out = Vec::new();
    let mut rest = readme;
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed block");
        if body.starts_with("format") {
            out.push(body[..end].to_owned());
        }
        rest = &body[end + 3..];
    }
    out
}

#[test]
fn readme_one_node_example() {
    let blocks = readme_layouts();
    assert_eq!(
        blocks.len(),
        2,
        "README has the one-node and the three-zone examples"
    );
    let layout = Layout::from_toml_str(&blocks[0]).unwrap();
    assert_eq!(layout.cores().len(), 12);
    assert_eq!(
        layout.policy_for("STANDARD", 1 << 20).unwrap().scheme,
        Scheme::Ec { k: 4, m: 2 }
    );
    assert_eq!(
        layout.policy_for("STANDARD", 1000).unwrap().scheme,
        Scheme::Replicas(3)
    );
    for class in ["STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"] {
        assert_eq!(
            layout.policy_for(class, 1 << 20).unwrap().scheme,
            Scheme::Ec { k: 8, m: 4 }
        );
    }
    // It is the embedded layout of `percore serve --cores 12`.
    let embedded = Layout::single_node(12).unwrap();
    assert_eq!(embedded.policies(), layout.policies());
    assert_eq!(embedded.tables()[0].row(7), layout.tables()[0].row(7));
    assert!(layout.warnings().is_empty(), "{:?}", layout.warnings());
}

#[test]
fn readme_three_zone_example() {
    let layout = Layout::from_toml_str(&readme_layouts()[1]).unwrap();
    assert_eq!(layout.zones(), ["eu-1a", "eu-1b", "eu-1c"]);
    assert_eq!(layout.version(), 7);
    let standard = layout.policy_for("STANDARD", 1 << 20).unwrap();
    assert_eq!(
        standard,
        Policy {
            scheme: Scheme::Ec { k: 4, m: 2 },
            tier: Tier::Nvme
        }
    );
    let glacier = layout.policy_for("GLACIER", 1 << 20).unwrap();
    assert_eq!(
        glacier,
        Policy {
            scheme: Scheme::Ec { k: 8, m: 4 },
            tier: Tier::Hdd
        }
    );
    let deep = layout.policy_for("DEEP_ARCHIVE", 1 << 20).unwrap();
    assert_eq!(
        deep,
        Policy {
            scheme: Scheme::Ec { k: 8, m: 4 },
            tier: Tier::Hdd
        }
    );
    let ia = layout.policy_for("STANDARD_IA", 1 << 20).unwrap();
    assert_eq!(
        ia,
        Policy {
            scheme: Scheme::Ec { k: 8, m: 4 },
            tier: Tier::Nvme
        }
    );
    for r in layout.reports() {
        assert!(
            r.worst.zone_failures >= 1,
            "{} {} survives a zone",
            r.class,
            r.scheme
        );
    }
    let s = layout
        .reports()
        .iter()
        .find(|r| r.class == "STANDARD" && r.scheme.width() == 6)
        .unwrap();
    assert_eq!((s.worst.distinct, s.worst.node_failures), (Domain::Node, 2));
    assert!(layout.warnings().is_empty(), "{:?}", layout.warnings());
}

/// `percore serve` on any core count gets the gateway's one-node rule.
#[test]
fn single_node_matches_the_gateway_rule() {
    for cores in 1..=16u16 {
        let layout = Layout::single_node(cores).unwrap();
        let n = usize::from(cores);
        let want = match n {
            6.. => Scheme::Ec { k: 4, m: 2 },
            4 | 5 => Scheme::Ec { k: 2, m: 2 },
            _ => Scheme::Replicas(n.min(3) as u8),
        };
        assert_eq!(
            layout.policy_for("STANDARD", 128 * 1024).unwrap().scheme,
            want
        );
        let small = layout
            .policy_for("STANDARD", 128 * 1024 - 1)
            .unwrap()
            .scheme;
        assert_eq!(small, Scheme::Replicas(n.min(3) as u8));
        let single = layout
            .warnings()
            .iter()
            .any(|w| matches!(w, Warning::SingleCopy { .. }));
        assert_eq!(single, cores == 1, "{cores} cores");
    }
}

#[test]
fn lookups() {
    let layout = Layout::from_file(&grid(3, 2, 4)).unwrap();
    let pg = layout.pg_of(b"photos", b"2024/cat.jpg");
    assert!(pg < layout.placement_groups());
    let policy = layout.policy_for("STANDARD", 10 << 20).unwrap();
    let placed = layout.cores_for(pg, &policy).unwrap();
    assert_eq!(placed.cores.len(), 6);
    assert_eq!(placed.spread.zone_failures, 1);
    let small = layout
        .cores_for(pg, &layout.policy_for("STANDARD", 10).unwrap())
        .unwrap();
    assert_eq!(
        small.cores,
        &placed.cores[..3],
        "small replicas use the prefix"
    );
    assert_eq!(small.spread.distinct, Domain::Zone);
    let (address, port) = layout.endpoint(placed.cores[0]).unwrap();
    assert!(address.starts_with("10.0.") && (7100..7104).contains(&port));
    assert_eq!(
        layout.policy_for("NOPE", 1),
        Err(PlacementError::UnknownStorageClass {
            class: "NOPE".into(),
            version: 1
        })
    );
    assert_eq!(
        layout.cores_for(layout.placement_groups(), &policy),
        Err(PlacementError::PgOutOfRange {
            pg: 4096,
            count: 4096
        })
    );
    let hdd = Policy {
        scheme: Scheme::Replicas(1),
        tier: Tier::Hdd,
    };
    assert!(matches!(
        layout.cores_for(0, &hdd),
        Err(PlacementError::NoTable { .. })
    ));
    let wide = Policy {
        scheme: Scheme::Ec { k: 12, m: 4 },
        tier: Tier::Nvme,
    };
    assert!(matches!(
        layout.cores_for(0, &wide),
        Err(PlacementError::WidthTooLarge { .. })
    ));
}

fn err(text: &str) -> LayoutError {
    Layout::from_toml_str(text).unwrap_err()
}

fn err_file(f: &LayoutFile) -> LayoutError {
    Layout::from_file(f).unwrap_err()
}

const HEAD: &str = "format = 1\nversion = 1\n";

#[test]
fn parse_errors_are_precise() {
    let e = err(&format!(
        "{HEAD}[[node]]\nid = 1\naddress = \"a\"\nbase_port = 1\ncores = 1\nzone_typo = \"x\"\n"
    ));
    assert!(
        matches!(&e, LayoutError::Parse { message } if message.contains("zone_typo")),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}[[node]]\nid = 1\naddress = \"a\"\nbase_port = 1\ncores = 1\ntier = \"tape\"\n"
    ));
    assert!(
        matches!(&e, LayoutError::Parse { message } if message.contains("tape")),
        "{e}"
    );
    assert_eq!(
        err("format = 2\nversion = 1\n"),
        LayoutError::UnsupportedFormat {
            found: 2,
            supported: 1
        }
    );
    assert_eq!(err("format = 1\nversion = 0\n"), LayoutError::ZeroVersion);
    assert_eq!(err(HEAD), LayoutError::NoNodes);
    assert_eq!(
        err(&format!("{HEAD}placement_groups = 1000\n")),
        LayoutError::PlacementGroups {
            count: 1000,
            max: 65536
        }
    );
}

#[test]
fn node_errors_name_the_node_or_core() {
    let mut f = grid(1, 2, 2);
    f.nodes[1].id = 1;
    assert_eq!(err_file(&f), LayoutError::DuplicateNode { node: 1 });

    let mut f = grid(1, 1, 2);
    f.nodes[0].cores = None;
    f.nodes[0].core_list = vec![
        CoreSpec {
            index: 3,
            weight: None,
            tier: None,
        },
        CoreSpec {
            index: 3,
            weight: None,
            tier: None,
        },
    ];
    assert_eq!(
        err_file(&f),
        LayoutError::DuplicateCore {
            core: CoreId { node: 1, index: 3 }
        }
    );

    f.nodes[0].core_list = vec![CoreSpec {
        index: 4,
        weight: Some(0),
        tier: None,
    }];
    assert_eq!(err_file(&f), LayoutError::NoLiveCores);
    f.nodes[0].cores = Some(2);
    assert_eq!(err_file(&f), LayoutError::CoresTwice { node: 1 });

    let mut f = grid(1, 1, 2);
    f.nodes[0].cores = Some(0);
    assert_eq!(err_file(&f), LayoutError::NodeWithoutCores { node: 1 });

    let mut f = grid(1, 2, 4);
    f.nodes[1].address = f.nodes[0].address.clone();
    f.nodes[1].base_port = 7102;
    let e = err_file(&f);
    assert!(
        matches!(
            e,
            LayoutError::PortsOverlap {
                node: 1,
                other: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("7102..=7103"), "{e}");

    let mut f = grid(1, 1, 4);
    f.nodes[0].base_port = 65_534;
    assert!(matches!(
        err_file(&f),
        LayoutError::PortOverflow {
            node: 1,
            index: 2,
            ..
        }
    ));

    let mut f = grid(1, 1, 4);
    f.nodes[0].zone = "eu 1".into();
    assert!(matches!(err_file(&f), LayoutError::BadZone { node: 1, .. }));
}

#[test]
fn policy_errors_name_the_policy() {
    let mut f = grid(1, 1, 4);
    f.policies.insert("STANDARD".into(), ec(4, 2, Tier::Nvme));
    assert_eq!(
        err_file(&f),
        LayoutError::PolicyWiderThanTier {
            class: "STANDARD".into(),
            width: 6,
            tier: Tier::Nvme,
            eligible: 4
        }
    );
    f.policies.insert("STANDARD".into(), ec(2, 1, Tier::Hdd));
    assert_eq!(
        err_file(&f),
        LayoutError::UnknownTier {
            class: "STANDARD".into(),
            tier: Tier::Hdd
        }
    );
    f.policies.insert(
        "STANDARD".into(),
        PolicySpec {
            replicas: Some(2),
            ec: Some("2+1".into()),
            ..PolicySpec::default()
        },
    );
    assert!(matches!(err_file(&f), LayoutError::BadPolicy { class, .. } if class == "STANDARD"));
    f.policies.insert(
        "STANDARD".into(),
        PolicySpec {
            ec: Some("2+0".into()),
            ..PolicySpec::default()
        },
    );
    assert!(err_file(&f).to_string().contains("\"2+0\""));
    f.policies.clear();
    f.policies.insert("standard".into(), ec(2, 1, Tier::Nvme));
    assert!(matches!(err_file(&f), LayoutError::BadStorageClass { .. }));
    f.policies.clear();
    f.policies.insert("WIDE".into(), ec(30, 3, Tier::Nvme));
    assert!(matches!(
        err_file(&f),
        LayoutError::PolicyTooWide { width: 33, .. }
    ));
    f.policies.clear();
    f.policies.insert(
        "STANDARD".into(),
        PolicySpec {
            ec: Some("2+1".into()),
            small_replicas: Some(5),
            ..PolicySpec::default()
        },
    );
    assert!(matches!(
        err_file(&f),
        LayoutError::PolicyWiderThanTier { width: 5, .. }
    ));
}

/// Two nodes of six cores: EC 4+2 would not survive a node; the rule picks EC 2+2.
#[test]
fn default_rule_adapts_to_domains() {
    let layout = Layout::from_file(&grid(1, 2, 6)).unwrap();
    assert_eq!(
        layout.policy_for("STANDARD", 1 << 20).unwrap().scheme,
        Scheme::Ec { k: 2, m: 2 }
    );
    for r in layout.reports() {
        assert!(r.worst.node_failures >= 1, "{} {}", r.class, r.scheme);
    }
    // An explicit EC 4+2 there is allowed, with a warning.
    let mut f = grid(1, 2, 6);
    f.policies.insert("STANDARD".into(), ec(4, 2, Tier::Nvme));
    let layout = Layout::from_file(&f).unwrap();
    assert!(layout
        .warnings()
        .iter()
        .any(|w| matches!(w, Warning::NoNodeTolerance { class, .. } if class == "STANDARD")));
}

/// An unused tier and a lopsided zone are reported.
#[test]
fn warnings() {
    let mut f = grid(2, 1, 6);
    f.nodes.push(node(9, "z2", 1));
    f.nodes.push(common::node_with(10, "z0", &[(1, Tier::Ssd)]));
    f.policies.insert("STANDARD".into(), ec(4, 2, Tier::Nvme));
    for class in ["STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"] {
        f.policies.insert(class.into(), ec(4, 2, Tier::Nvme));
    }
    let layout = Layout::from_file(&f).unwrap();
    let w = layout.warnings();
    assert!(
        w.iter().any(|w| matches!(
            w,
            Warning::UnusedTier {
                tier: Tier::Ssd,
                cores: 1
            }
        )),
        "{w:?}"
    );
    // Zone z2 has one core but gets a third of every row's first three positions.
    assert!(
        w.iter().any(|w| matches!(w, Warning::Unbalanced { .. })),
        "{w:?}"
    );
    for w in w {
        assert!(!w.to_string().is_empty());
    }
}

#[test]
fn the_file_round_trips() {
    let text = readme_layouts()[1].clone();
    let file: LayoutFile = toml::from_str(&text).unwrap();
    let again: LayoutFile = toml::from_str(&file.to_toml_string()).unwrap();
    assert_eq!(file, again);
}

/// The orphan grace is a cluster setting of the layout: read, bounded, kept through a round
/// trip, and absent from a file that does not set it (older files read as before).
#[test]
fn the_orphan_grace_is_a_layout_setting() {
    let one = "[[node]]\nid = 1\naddress = \"a\"\nbase_port = 1\ncores = 1\n";
    let layout = Layout::from_toml_str(&format!("{HEAD}orphan_grace_secs = 600\n{one}")).unwrap();
    assert_eq!(layout.orphan_grace_secs(), Some(600));
    assert_eq!(
        Layout::from_toml_str(&format!("{HEAD}{one}"))
            .unwrap()
            .orphan_grace_secs(),
        None
    );
    for secs in [0, 1, 10 * 365 * 86_400 + 1] {
        assert_eq!(
            err(&format!("{HEAD}orphan_grace_secs = {secs}\n{one}")),
            LayoutError::OrphanGrace {
                secs,
                min: 2,
                max: 10 * 365 * 86_400
            }
        );
    }
    let file: LayoutFile =
        toml::from_str(&format!("{HEAD}orphan_grace_secs = 600\n{one}")).unwrap();
    let text = file.to_toml_string();
    assert!(text.contains("orphan_grace_secs = 600"), "{text}");
    assert_eq!(toml::from_str::<LayoutFile>(&text).unwrap(), file);
    let plain: LayoutFile = toml::from_str(&format!("{HEAD}{one}")).unwrap();
    assert!(!plain.to_toml_string().contains("orphan_grace"));
}

/// Weight 0 drains a core and `removed` takes a node out: both keep their cores' numbers, take
/// no placement group, and leave the policies to the cores that hold data.
#[test]
fn drained_and_removed_cores_keep_their_numbers_and_hold_nothing() {
    let four = grid(1, 4, 2);
    let all = Layout::from_file(&four).unwrap();
    let mut drained = four.clone();
    drained.version = 2;
    drained.nodes[1].weight = Some(0);
    let state = all.state();
    let after = Layout::from_file_and_state(&drained, Some(&state)).unwrap();
    let mut removed = drained.clone();
    removed.version = 3;
    removed.nodes[1].weight = None;
    removed.nodes[1].removed = true;
    // A new node may reuse a removed node's address and ports.
    let mut reused = node(9, "z0", 2);
    reused.address = removed.nodes[1].address.clone();
    reused.base_port = removed.nodes[1].base_port;
    removed.nodes.push(reused);
    let gone = Layout::from_file_and_state(&removed, Some(&after.state())).unwrap();
    let node2 = removed.nodes[1].id;
    for l in [&after, &gone] {
        let ids: Vec<CoreId> = l.cores().iter().map(|c| c.id).collect();
        assert_eq!(
            &ids[..8],
            &all.cores().iter().map(|c| c.id).collect::<Vec<_>>()[..]
        );
        let policy = l.policy_for("STANDARD", 1 << 20).unwrap();
        for pg in 0..l.placement_groups() {
            let placed = l.cores_for(pg, &policy).unwrap();
            assert!(placed.cores.iter().all(|c| c.node != node2), "pg {pg}");
        }
        assert!(l
            .cores()
            .iter()
            .filter(|c| c.id.node == node2)
            .all(|c| c.weight == 0));
    }
    assert!(gone.nodes().iter().any(|n| n.id == node2 && n.removed));
    // The policies are those of the three nodes that hold data.
    let three = Layout::from_file(&grid(1, 3, 2)).unwrap();
    assert_eq!(after.policies(), three.policies());
    // The ports of a node that is not removed are still checked.
    let mut clash = removed.clone();
    clash.nodes[1].removed = false;
    assert!(matches!(
        Layout::from_file(&clash).unwrap_err(),
        LayoutError::PortsOverlap { .. }
    ));
}
