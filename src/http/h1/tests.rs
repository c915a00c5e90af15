//! Deterministic mutation smoke test of the fuzz entry points, so `cargo test` exercises them
//! even where cargo-fuzz is unavailable.

use super::{fuzz_chunked, fuzz_request};

const SEEDS: &[&[u8]] = &[
    b"POST /mcp?x=1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"GET http://h:80/p HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
    b"\x005\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, input: &mut Vec<u8>) {
    const INTERESTING: &[u8] = b"\r\n \t:;,0fF\x00\x7f\x80?#/*";
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(4) {
            0 if at < input.len() => input[at] = INTERESTING[rng.below(INTERESTING.len())],
            1 if at < input.len() => {
                input.remove(at);
            }
            2 => input.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            _ => input.insert(at, rng.next() as u8),
        }
    }
}

#[test]
fn mutated_seeds_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let mut input = SEEDS[i % SEEDS.len()].to_vec();
        mutate(&mut rng, &mut input);
        fuzz_request(&input);
        fuzz_chunked(&input);
    }
}
