//! Golden files: the exact manifests for the default parameters and for every option set.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p proton-addons --test golden`.

mod common;

use proton_addons::{AddonsParams, FILE_NAMES, render_manifests};

fn golden(case: &str, params: &AddonsParams) {
    let dir = common::dir().join("golden").join(case);
    let files = render_manifests(params).unwrap();
    assert_eq!(
        files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        FILE_NAMES
    );
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for f in files {
        let path = dir.join(&f.name);
        if update {
            std::fs::write(&path, &f.yaml).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(
            f.yaml,
            want,
            "{} differs from the golden file",
            path.display()
        );
    }
}

#[test]
fn default_params() {
    golden("default", &common::defaults());
}

#[test]
fn every_option_set() {
    golden("full", &common::full());
}
