//! The layout a node last took from the control plane's map (`layout_follow`), kept in its
//! data directory: `DATA/map-layout.toml` (the layout file as committed) and
//! `DATA/map-layout.table` (its PG tables, `placement::State`). A node restarted after a layout
//! change routes by it rather than by the older layout file its config names, and its
//! placement guard (`placement_guard`) keeps that layout's placement, so the restart is not
//! refused as a layout that would move data.

use std::path::Path;

use anyhow::Context;
use control::map::LayoutVersion;
use placement::{Layout, State};

const TEXT: &str = "map-layout.toml";
const TABLE: &str = "map-layout.table";

/// Keeps `version` as the layout this node routes by (the tables first: a crash between the
/// two writes leaves a text whose version the tables do not match, which `newer_than` refuses).
pub fn keep(data: &Path, version: &LayoutVersion) -> anyhow::Result<()> {
    crate::layout_cmd::write_atomically(&data.join(TABLE), &version.state)?;
    crate::layout_cmd::write_atomically(&data.join(TEXT), version.layout_toml.as_bytes())
}

/// The kept layout when it is newer than `configured` (the config's layout file), or of the
/// same version with other tables (the map's tables of a version are planned from the
/// version before; a layout file alone has its own).
pub fn newer_than(data: &Path, configured: &Layout) -> anyhow::Result<Option<Layout>> {
    let text = match std::fs::read_to_string(data.join(TEXT)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| data.join(TEXT).display().to_string()),
    };
    let table =
        std::fs::read(data.join(TABLE)).with_context(|| data.join(TABLE).display().to_string())?;
    let state = State::decode(&table)
        .with_context(|| format!("{} is not a valid state file", data.join(TABLE).display()))?;
    let layout = Layout::from_toml_str_and_state(&text, Some(&state))
        .with_context(|| format!("{} with its tables", data.join(TEXT).display()))?;
    let other_tables = layout.version() == configured.version()
        && layout.placement_digest() != configured.placement_digest();
    Ok((layout.version() > configured.version() || other_tables).then_some(layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(version: u64, nodes: u64) -> (String, Layout) {
        use std::fmt::Write as _;
        let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 16\n");
        for n in 1..=nodes {
            let _ = write!(
                text,
                "[[node]]\nid = {n}\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = 2\n\
                 zone = \"z{n}\"\n",
                20_000 + 10 * n
            );
        }
        let l = Layout::from_toml_str(&text).unwrap();
        (text, l)
    }

    #[test]
    fn a_kept_layout_is_used_only_when_newer() {
        let dir = std::env::temp_dir().join(format!("percore-map-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, v1) = layout(1, 3);
        assert!(newer_than(&dir, &v1).unwrap().is_none());
        let (text, v2) = layout(2, 4);
        keep(&dir, &LayoutVersion::of(&text, &v2)).unwrap();
        let kept = newer_than(&dir, &v1).unwrap().expect("newer");
        assert_eq!(kept.version(), 2);
        assert_eq!(kept.placement_digest(), v2.placement_digest());
        assert!(newer_than(&dir, &v2).unwrap().is_none());
        // The same version with the file's own (stateless) tables: the kept ones win.
        let planned = Layout::from_toml_str_and_state(&text, Some(&v1.state())).unwrap();
        assert_ne!(planned.placement_digest(), v2.placement_digest());
        keep(&dir, &LayoutVersion::of(&text, &planned)).unwrap();
        let kept = newer_than(&dir, &v2).unwrap().expect("the map's tables");
        assert_eq!(kept.placement_digest(), planned.placement_digest());
        // Tables of another version than the text: refused, not routed by.
        let (_, v3) = layout(3, 4);
        std::fs::write(dir.join(TABLE), State::of(&v3).encode()).unwrap();
        assert!(newer_than(&dir, &v1).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
