use super::*;

fn p(exp: i64) -> Rc<Principal> {
    Rc::new(Principal {
        iss: "i".into(),
        sub: Some("s".into()),
        scopes: "a b".into(),
        client_id: None,
        exp,
        kid: None,
        id: 1,
        claims: "{}".into(),
    })
}

#[test]
fn hit_miss_and_full_compare() {
    let mut c = TokenCache::new(10);
    c.insert(b"token-a", p(1000), 0);
    assert!(c.get(b"token-a", 10).is_some());
    assert!(c.get(b"token-b", 10).is_none());
    assert!(c.get(b"token-", 10).is_none());
    assert!(c.get(b"token-aa", 10).is_none());
    assert_eq!(c.len(), 1);
}

#[test]
fn expiry_is_min_of_exp_and_ttl() {
    let mut c = TokenCache::new(10);
    c.insert(b"short", p(100), 0);
    c.insert(b"long", p(i64::MAX), 0);
    assert!(c.get(b"short", 99).is_some());
    assert!(c.get(b"short", 100).is_none());
    assert_eq!(c.len(), 1, "expired entry removed on get");
    assert!(c.get(b"long", MAX_TTL_SECS - 1).is_some());
    assert!(c.get(b"long", MAX_TTL_SECS).is_none());
}

#[test]
fn not_cached_when_expired_oversize_or_zero_capacity() {
    let mut c = TokenCache::new(10);
    c.insert(b"past", p(5), 5);
    let big = vec![b'x'; MAX_CACHED_TOKEN_LEN + 1];
    c.insert(&big, p(1000), 0);
    assert!(c.is_empty());
    let mut z = TokenCache::new(0);
    z.insert(b"t", p(1000), 0);
    assert!(z.is_empty());
}

#[test]
fn bounded_evicts_expired_then_earliest() {
    let mut c = TokenCache::new(16);
    for i in 0..16i64 {
        c.insert(format!("t{i}").as_bytes(), p(100 + i), 0);
    }
    assert_eq!(c.len(), 16);
    // At now=104 entries t0..t4 have expired; they go first.
    c.insert(b"new", p(1000), 104);
    assert_eq!(c.len(), 12);
    assert!(c.get(b"t5", 104).is_some());
    for i in 0..100 {
        c.insert(format!("u{i}").as_bytes(), p(200 + i), 104);
        assert!(c.len() <= 16);
    }
    // The longest-lived entries survive.
    assert!(c.get(b"new", 104).is_some());
    assert!(c.get(b"u99", 104).is_some());
    c.clear();
    assert_eq!(c.len(), 0);
}

#[test]
fn reinsert_same_token_when_full_does_not_evict() {
    let mut c = TokenCache::new(2);
    c.insert(b"a", p(1000), 0);
    c.insert(b"b", p(1000), 0);
    c.insert(b"a", p(1000), 0);
    assert_eq!(c.len(), 2);
}

#[test]
fn debug_never_prints_tokens() {
    let mut c = TokenCache::new(2);
    c.insert(b"secret-token", p(1000), 0);
    assert!(!format!("{c:?}").contains("secret"));
}

#[test]
fn scopes() {
    let pr = p(1);
    assert!(pr.has_scope("a") && pr.has_scope("b") && !pr.has_scope("") && !pr.has_scope("a b"));
}

#[test]
fn tokens_alike_in_length_and_tail_are_told_apart() {
    // The hash reads the length and the last HASHED_TAIL bytes; the compare reads all of it.
    let tail = "s".repeat(HASHED_TAIL);
    let (a, b) = (format!("aaaa.{tail}"), format!("bbbb.{tail}"));
    let mut c = TokenCache::new(10);
    c.insert(a.as_bytes(), p(1000), 0);
    assert!(c.get(b.as_bytes(), 1).is_none());
    assert!(!c.holds(b.as_bytes(), 1));
    let mut other = (*p(1000)).clone();
    other.id = 2;
    c.insert(b.as_bytes(), Rc::new(other), 0);
    assert_eq!(c.len(), 2);
    assert_eq!(c.get(a.as_bytes(), 1).unwrap().id, 1);
    assert_eq!(c.get(b.as_bytes(), 1).unwrap().id, 2);
    // Shorter than the tail: hashed whole.
    c.insert(b"short", p(1000), 0);
    assert!(c.get(b"short", 1).is_some() && c.get(b"shorT", 1).is_none());
}
