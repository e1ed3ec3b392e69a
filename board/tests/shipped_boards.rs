//! Every board file shipped in board/ parses and validates.

use std::path::Path;

use flakeboot_board::{Arch, Board};

#[test]
fn every_shipped_board_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().is_some_and(|n| n != "Cargo.toml")
        {
            let board = Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
            names.push((board.name, board.arch));
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<_> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["generic-x86_64", "qemu-x86_64", "raspberry-pi-4"]);
}

#[test]
fn an_arm64_board_is_described() {
    let pi =
        Board::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("raspberry-pi-4.toml")).unwrap();
    assert_eq!(pi.arch, Arch::Aarch64);
    assert!(!pi.built);
}
