use super::*;

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn extra(m: &HeaderModifier) -> String {
    let mut out = Vec::new();
    m.write_extra(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn add_set_remove() {
    let m = HeaderModifier::compile(
        &pairs(&[("X-Add", "a"), ("x-add", "b")]),
        &pairs(&[("X-Set", "s")]),
        &names(&["X-Remove"]),
    )
    .unwrap();
    assert_eq!(extra(&m), "X-Set: s\r\nX-Add: a\r\nx-add: b\r\n");
    assert!(m.drops("x-remove"));
    assert!(m.drops("X-SET"));
    assert!(!m.drops("x-add"));
    assert!(!m.drops("x-other"));
    assert!(!m.is_empty());
}

#[test]
fn set_shadows_add_and_remove_shadows_both() {
    let m = HeaderModifier::compile(
        &pairs(&[("x-a", "added"), ("x-gone", "1")]),
        &pairs(&[
            ("X-A", "set"),
            ("x-gone", "2"),
            ("x-dup", "1"),
            ("x-dup", "2"),
        ]),
        &names(&["X-Gone"]),
    )
    .unwrap();
    assert_eq!(extra(&m), "X-A: set\r\nx-dup: 2\r\n");
    assert!(m.drops("x-gone"));
    assert!(m.drops("x-a"));
}

#[test]
fn rejects_invalid_names_and_values() {
    let err = HeaderModifier::compile(&pairs(&[("bad name", "v")]), &[], &[]).unwrap_err();
    assert!(err.contains("bad name"), "{err}");
    let err = HeaderModifier::compile(&[], &pairs(&[("x-ok", "a\r\nb")]), &[]).unwrap_err();
    assert!(err.contains("x-ok"), "{err}");
    let err = HeaderModifier::compile(&[], &[], &names(&["x:y"])).unwrap_err();
    assert!(err.contains("x:y"), "{err}");
    assert!(HeaderModifier::compile(&[], &[], &[]).unwrap().is_empty());
}
