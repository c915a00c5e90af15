#!/usr/bin/env python3
"""Renders target/overhead-report.md and target/overhead-report.json from the raw runs that
benches/overhead.sh leaves in target/overhead-raw/ (one mcp-load JSON per case and round, the
latency runs, meta.json). Re-render without measuring again:

    python3 benches/overhead_report.py [RAW_DIR] [OUT_DIR]     # defaults: target/overhead-raw target
"""
import datetime
import json
import os
import statistics
import sys

raw = sys.argv[1] if len(sys.argv) > 1 else "target/overhead-raw"
out_dir = sys.argv[2] if len(sys.argv) > 2 else "target"
meta = json.load(open(os.path.join(raw, "meta.json")))
rounds = int(meta["rounds"])
names = meta["cases"]
lat_rate = meta["latency_rate_rps"]
lat_rounds = int(meta.get("latency_rounds", 1))
gen_bound = float(meta.get("generator_bound", 0.85))
shared_cpu = str(meta["server_cpu"]) == str(meta["backend_cpu"])

WHAT = {
    "direct": "generator -> backend",
    "minimal-401": "generator -> minimal monoio responder, fixed 401",
    "noauth": "Portcullis `host` route, no auth, no token",
    "noauth-tok": "Portcullis `host` route, no auth, RS256 token sent",
    "noauth-es256": "Portcullis `host` route, no auth, ES256 token sent",
    "auth-hit": "Portcullis, RS256, cache hit",
    "miss-rs256": "Portcullis, RS256, unique tokens",
    "miss-es256": "Portcullis, ES256, unique tokens",
    "401": "Portcullis, 401 challenge",
    "direct-401": "Portcullis, directResponse 401",
    "metadata": "Portcullis, PRM metadata",
    "relay-noauth-tok": "Portcullis MCP relay, no auth, RS256 token sent",
    "relay-auth-hit": "Portcullis MCP relay, RS256, cache hit",
    "relay-miss-rs256": "Portcullis MCP relay, RS256, unique tokens",
    "haproxy-rs256": "HAProxy 1 thread, jwt_verify RS256",
    "haproxy-unique": "HAProxy, jwt_verify, unique RS256 tokens",
    "haproxy-401": "HAProxy, 401 challenge",
}
NO_BACKEND = {"minimal-401", "401", "direct-401", "metadata", "haproxy-401"}


def load(path):
    return json.load(open(os.path.join(raw, path)))


def cpu_of(run, name, field="us_per_request"):
    # 0.0 while requests were answered is a failed reading (seen once in a while for the
    # generator's own), not a free request: treat it as missing.
    for c in run.get("cpu", []):
        if c["name"] == name:
            return c[field] or None
    return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


cases = {}
per_round = {}  # name -> {"rps": [...], "srv": [...]} with None kept, so that rounds pair up
for n in names:
    sats = [load(f"{n}.sat{r}.json") for r in range(1, rounds + 1)]
    lats = [load(f"{n}.lat{p}.json") for p in range(1, lat_rounds + 1)]
    per_round[n + " latency"] = [x["latency_us"] for x in lats]
    lat = {"offered_rps": lats[0]["offered_rps"], "achieved_rps": med([x["achieved_rps"] for x in lats]),
           "latency_us": {q: med([x["latency_us"][q] for x in lats]) for q in lats[0]["latency_us"]}}
    rps = [s["achieved_rps"] for s in sats]
    srv = [cpu_of(s, "server") for s in sats]
    be = [cpu_of(s, "backend") for s in sats]
    gen = [cpu_of(s, "mcp-load") for s in sats]
    gen_cores = med([cpu_of(s, "mcp-load", "cores") for s in sats])
    srv_cores = med([cpu_of(s, "server", "cores") for s in sats])
    per_round[n] = {"rps": rps, "srv": srv}
    errs = sum(s["requests"]["errors"] for s in sats + lats)
    classes = {}
    for s in sats + lats:
        for k, v in s["errors"].items():
            if v:
                classes[k] = classes.get(k, 0) + v
    uses_backend = n not in NO_BACKEND
    srv_med, gen_med, be_med = med(srv), med(gen), med(be)
    # Generator headroom of this row: CPU per request of the side under test (the server, plus
    # the backend when both share a CPU) over the generator's own.
    side = srv_med
    if side is not None and uses_backend and shared_cpu and n != "direct" and be_med:
        side += be_med
    headroom = round(side / gen_med, 3) if side and gen_med else None
    # Generator-bound: its core was (nearly) full, or it misses the headroom target (it needs more
    # than half the CPU per request of the side under test): the req/s may be its ceiling.
    busy = gen_cores is not None and gen_cores >= gen_bound
    thin = headroom is not None and headroom < 2.0
    bound = busy or thin
    flag = ("generator-bound: " + ", ".join(
        ([f"core {gen_cores:.0%}"] if busy else []) + ([f"headroom {headroom:.2f} < 2"] if thin else []))) if bound else ""
    cases[n] = {
        "what": WHAT.get(n, n),
        "saturation_rps": med(rps), "saturation_rps_rounds": rps,
        "server_cpu_us_per_req": srv_med, "server_cpu_us_rounds": [x for x in srv if x is not None],
        "backend_cpu_us_per_req": med(be) if uses_backend else None,
        "generator_cpu_us_per_req": gen_med,
        "server_cores": srv_cores, "generator_cores": gen_cores,
        "generator_headroom": headroom, "generator_bound": bound, "flag": flag,
        # The latency run: every case at the same offered rate (the keys keep their old names).
        "half_offered_rps": lat["offered_rps"], "half_achieved_rps": lat["achieved_rps"],
        "half_latency_us": lat["latency_us"],
        "latency_offered_rps": lat["offered_rps"], "latency_achieved_rps": lat["achieved_rps"],
        "latency_us": lat["latency_us"], "latency_us_passes": per_round[n + " latency"],
        "errors": errs, "errors_by_class": classes,
    }

out = {"generated": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": int(meta["cpus"]),
       "layout": {"server_cpu": meta["server_cpu"], "backend_cpu": meta["backend_cpu"],
                  "generator_cpus": meta["generator_cpus"]},
       "rounds": rounds, "duration_s": meta["duration_s"], "connections": meta["connections"],
       "token_pool": meta["token_pool"], "latency_rate_rps": lat_rate,
       "latency_rate_rule": meta["latency_rate_rule"], "latency_rounds": lat_rounds,
       "generator_bound_threshold": gen_bound,
       "run_seconds": meta.get("run_seconds"), "answer": {}, "cases": cases, "ratios": {}}
answer = {}  # key -> the added CPU of one auth case over its no-auth twin


def spread_covers(lo, hi, x):
    return rounds >= 2 and lo <= x <= hi


# --- The answer: auth's added server CPU per request, paired within each round. -------------
def added(a, b):
    if a not in cases or b not in cases:
        return None
    ds = [x - y for x, y in zip(per_round[a]["srv"], per_round[b]["srv"]) if x is not None and y is not None]
    if not ds:
        return None
    m, lo, hi = statistics.median(ds), min(ds), max(ds)
    base = cases[b]["server_cpu_us_per_req"]
    lat = {}
    for q in ("p50", "p99"):
        d = [x[q] - y[q] for x, y in zip(per_round[a + " latency"], per_round[b + " latency"])]
        lat[q] = (round(statistics.median(d), 1), round(min(d), 1), round(max(d), 1))
    return {"auth_case": a, "baseline_case": b, "added_us": round(m, 3), "added_us_range": [round(lo, 3), round(hi, 3)],
            "rounds": len(ds), "baseline_us": base, "added_pct": round(100 * m / base, 1) if base else None,
            "measurable": None if rounds < 2 else not spread_covers(lo, hi, 0.0),
            "added_p50_us": lat["p50"][0], "added_p50_us_range": list(lat["p50"][1:]),
            "added_p99_us": lat["p99"][0], "added_p99_us_range": list(lat["p99"][1:]),
            "generator_bound": cases[a]["generator_bound"] or cases[b]["generator_bound"]}


ANSWER = [  # key, auth case, no-auth case with the same token bytes, label, what the baseline is
    ("cache hit", "auth-hit", "noauth-tok", "cache hit (one RS256 token, verified-token cache)", "without auth"),
    ("fresh RS256", "miss-rs256", "noauth-tok", "fresh RS256 (every token new: signature verified)", "without auth"),
    ("fresh ES256", "miss-es256", "noauth-es256", "fresh ES256 (every token new: signature verified)", "without auth"),
    ("401 challenge", "401", "direct-401", "401 challenge (no token) vs the same 401 from a directResponse route",
     "for the directResponse 401"),
    ("relay cache hit", "relay-auth-hit", "relay-noauth-tok", "MCP relay, cache hit (tools/call through an `mcp` backend)",
     "through the relay without auth"),
    ("relay fresh RS256", "relay-miss-rs256", "relay-noauth-tok", "MCP relay, fresh RS256", "through the relay without auth"),
]
for key, a, b, label, base_what in ANSWER:
    r = added(a, b)
    if r:
        r["label"], r["baseline_what"] = label, base_what
        # Auth does strictly more work than the same route without it: a cost below 0 in every
        # round is the machine drifting between the paired runs, not a saving.
        r["below_drift"] = key != "401 challenge" and r["added_us_range"][1] < 0
        if r["below_drift"]:
            r["measurable"] = False
        answer[key] = r


def us(x):
    return f"{x:.1f}" if abs(x) < 10 else f"{x:.0f}"


def short(key, what):
    r = answer.get(key)
    if not r:
        return None
    lo, hi = r["added_us_range"]
    if r.get("below_drift"):
        return f"no measurable CPU ({what}; {us(lo)} to {us(hi)} µs: the machine drifted more than auth costs)"
    if r["measurable"] is False:
        return f"no measurable CPU ({what}; {us(lo)} to +{us(hi)} µs over the rounds)"
    return f"{us(r['added_us'])} µs ({what})"


host = [s for s in (short("cache hit", "cache hit"), short("fresh RS256", "fresh RS256"),
                    short("fresh ES256", "fresh ES256")) if s]
relay = [s for s in (short("relay cache hit", "cache hit"), short("relay fresh RS256", "fresh RS256")) if s]
summary = "auth adds " + " / ".join(host) + " of proxy CPU per request"
if relay:
    summary += "; through the MCP relay: " + " / ".join(relay)
if "401 challenge" in answer:
    r = answer["401 challenge"]
    summary += ("; a request without a token is answered at no measurable extra CPU over a directResponse 401"
                if r["measurable"] is False else
                f"; a request without a token costs {us(abs(r['added_us']))} µs {'more' if r['added_us'] >= 0 else 'less'} "
                "than a directResponse 401")
summary += "." if rounds >= 2 else " (one round: no noise ranges; run ROUNDS ≥ 3 before quoting these)."
# Latency noise: the spread between the no-auth `host` rows, which differ only in a header the
# proxy does not read. Added latencies within it are marked "(noise)".
quiet = [cases[n]["latency_us"] for n in ("noauth", "noauth-tok", "noauth-es256") if n in cases]
noise = {q: (max(x[q] for x in quiet) - min(x[q] for x in quiet)) if len(quiet) >= 2 else None for q in ("p50", "p99")}
out["answer"] = {"summary": summary, "cases": answer, "latency_noise_us": noise}


def answer_line(r):
    lo, hi = r["added_us_range"]
    rng = f"[{lo:+.2f} … {hi:+.2f} over {r['rounds']} rounds]" if r["rounds"] >= 2 else "(1 round: no noise range)"
    if r.get("below_drift"):
        head = (f"no measurable difference: {r['added_us']:+.2f} µs {rng} (below 0 in every round: auth cannot save "
                "CPU, so this is the machine's drift between paired runs, larger than auth's cost)")
    elif r["measurable"] is False:
        head = f"no measurable difference: {r['added_us']:+.2f} µs {rng}"
    else:
        head = f"**{r['added_us']:+.2f} µs** per request {rng}"
    base = (f", on top of {r['baseline_us']:.2f} µs {r['baseline_what']} ({r['added_pct']:+.1f}%)"
            if r["baseline_us"] else "")
    def added_lat(q):
        v, (lo, hi) = r[f"added_{q}_us"], r[f"added_{q}_us_range"]
        if lat_rounds >= 2:
            rng = f" [{lo:+,.0f} … {hi:+,.0f}]"
            return f"{q} no measurable difference{rng}" if lo <= 0 <= hi else f"{q} {v:+,.0f} µs{rng}"
        spread = noise[q]  # one pass: compare with the spread between the no-auth rows
        return f"{q} {v:+,.0f} µs" + (" (noise)" if spread is not None and abs(v) <= spread else "")
    lat = f"; added latency at {lat_rate:,.0f} req/s: {added_lat('p50')}, {added_lat('p99')}"
    return f"- {r['label']}: {head}{base} (`{r['auth_case']}` − `{r['baseline_case']}`){lat}"


# --- Ratios (kept for their targets), each with its per-round range and a plain reading. ------
def paired(a, b, key, invert):
    xs, ys = per_round[a][key], per_round[b][key]
    rs = [(y / x if invert else x / y) for x, y in zip(xs, ys) if x and y]
    return (round(statistics.median(rs), 3), round(min(rs), 3), round(max(rs), 3)) if rs else (None, None, None)


def of_medians(a, b, key, invert):
    x, y = cases[a][key], cases[b][key]
    return (round(y / x, 3) if invert else round(x / y, 3)) if x and y else None


def both(key, a, b, target, note=""):
    if a not in cases or b not in cases:
        return
    t, tlo, thi = paired(a, b, "rps", False)
    c, clo, chi = paired(a, b, "srv", True)
    if c is None:
        reading = "no CPU figures"
    elif spread_covers(clo, chi, 1.0):
        reading = f"no measurable difference in CPU per request between {a} and {b}"
    else:
        more = 1 / c - 1
        reading = f"{a} uses {abs(more):.0%} {'more' if more > 0 else 'less'} CPU per request than {b}"
        if rounds < 2:
            reading += " (1 round: no noise range)"
    # Targets apply to the per-core ratio (the median); "within range" when the rounds straddle it.
    met = None if target is None or c is None else c >= target
    straddles = target is not None and c is not None and spread_covers(clo, chi, target)
    out["ratios"][key] = {"throughput": t, "throughput_range": [tlo, thi], "per_core": c, "per_core_range": [clo, chi],
                          "throughput_of_medians": of_medians(a, b, "saturation_rps", False),
                          "per_core_of_medians": of_medians(a, b, "server_cpu_us_per_req", True),
                          "throughput_measurable": None if rounds < 2 or t is None else not spread_covers(tlo, thi, 1.0),
                          "per_core_measurable": None if rounds < 2 or c is None else not spread_covers(clo, chi, 1.0),
                          "target": target, "target_met": met, "target_within_range": straddles,
                          "reading": reading, "note": note}


both("auth-hit / noauth", "auth-hit", "noauth", 0.95, "auth sends a token, noauth does not")
both("auth-hit / noauth-tok", "auth-hit", "noauth-tok", 0.95, "same request bytes on both sides")
both("miss-rs256 / noauth", "miss-rs256", "noauth", None)
both("miss-es256 / noauth", "miss-es256", "noauth", None)
both("401 / direct-401", "401", "direct-401", 0.95)
both("401 / minimal-401", "401", "minimal-401", 0.85, "same request, same 401 challenge")
both("relay-auth-hit / relay-noauth-tok", "relay-auth-hit", "relay-noauth-tok", 0.95, "MCP relay, same request bytes")
both("auth-hit / haproxy-rs256", "auth-hit", "haproxy-rs256", 4.0)
both("miss-rs256 / haproxy-unique", "miss-rs256", "haproxy-unique", 1.5)
both("401 / haproxy-401", "401", "haproxy-401", None)
if "401" in cases and cases["401"]["generator_cpu_us_per_req"] and cases["401"]["server_cpu_us_per_req"]:
    g, s = cases["401"]["generator_cpu_us_per_req"], cases["401"]["server_cpu_us_per_req"]
    h = round(s / g, 3)
    out["ratios"]["generator headroom on the 401 path"] = {
        "throughput": None, "per_core": h, "target": 2.0, "target_met": h >= 2.0,
        "reading": ("the generator has the headroom it needs" if h >= 2.0 else
                    "MISSED: the generator costs nearly as much per request as the server, so the 401-path req/s "
                    "(and every row flagged below) measure the generator; compare CPU µs/req instead"),
        "note": f"Portcullis worker {s:.2f} µs/req vs mcp-load {g:.2f} µs/req: one generator core sustains this many "
                "times what one worker serves"}


# --- The report. -------------------------------------------------------------------------------
def f(x, d=1):
    return "-" if x is None else f"{x:,.{d}f}"


def pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def cell(v, lo, hi, measurable):
    if v is None:
        return "-"
    if rounds < 2:
        return f"{v:.3f} (1 round)"
    if not measurable:
        return f"no measurable difference [{lo:.2f}–{hi:.2f}]"
    return f"**{v:.3f}** [{lo:.2f}–{hi:.2f}]"


layout = (f"{meta['cpus']} CPUs; server under test on CPU {meta['server_cpu']}, backend on CPU {meta['backend_cpu']}, "
          f"generator (one thread) on CPU {meta['generator_cpus']}; one Portcullis worker; {meta['connections']} connections")
md = [
    f"# Portcullis: what MCP auth costs ({out['generated']})", "",
    "Which script: **`benches/overhead.sh`** (this report) measures auth's cost in isolation on a plain `host` route, "
    "and the same through the MCP relay (an `mcp` backend, the kind of route the quickstart's `/mcp` is): the relay "
    "figures are what MCP/quickstart users see. `benches/relay.sh` measures the relay itself against the MCP server "
    "directly (CPU placements, added latency); it is not needed for the auth answer.", "",
    "## Answer", "",
    f"**{summary}**", "",
]
for key, *_ in ANSWER:
    if key in answer:
        md.append(answer_line(answer[key]))
md += [
    "",
    "How to read it: the cache-hit figure is the per-request cost while a client reuses its token (the usual case; "
    "10000 verified tokens are cached per worker); the fresh figure is paid once per new token. \"Proxy CPU\" is the "
    "Portcullis worker's CPU time (user + kernel) per answered request: one core serves 10⁶ / µs requests per second. " +
    (f"Added latency: every case open-loop at the same {lat_rate:,.0f} req/s in {lat_rounds} interleaved passes; "
     "median and [range] of the per-pass differences, \"no measurable difference\" when the range includes 0."
     if lat_rounds >= 2 else
     f"Added latency: one open-loop run of each case at the same {lat_rate:,.0f} req/s; \"(noise)\" marks a "
     "difference within the spread between the three no-auth rows (which differ only in a header the proxy does not "
     f"read: p50 {f(noise['p50'], 0)} µs, p99 {f(noise['p99'], 0)} µs in this run).") +
    " Tail latency on a shared or virtual machine mostly measures the machine: trust the CPU figures first.", "",
    "## Method", "",
    f"- {layout}.",
    f"- Added CPU = server CPU per request of the auth case minus that of the no-auth case sending the same token bytes, "
    f"paired within each of {rounds} interleaved rounds (closed loop, {meta['duration_s']:g} s each after "
    f"{meta['warmup_s']:g} s warm-up); median and [min … max] of the per-round differences. A range that includes 0 "
    "reads \"no measurable difference\".",
    f"- Saturation req/s = median of the rounds. Latency = open-loop runs of every case at one common offered rate, "
    f"{lat_rate:,.0f} req/s ({meta['latency_rate_rule']}), in {lat_rounds} interleaved pass(es), corrected for "
    "coordinated omission; the table shows the median of the passes.",
    f"- Unique-token pools of {meta['token_pool']} per algorithm (cache: 10000 per worker), used in order.",
    f"- generator-bound (flag): the generator's core was ≥ {gen_bound:.0%} busy in that row, or its headroom (CPU per "
    "request of the side under test — the server, plus the backend when they share a CPU — over the generator's) "
    "misses the ≥ 2 target; the row's req/s may then be the generator's ceiling, not the server's. Its CPU µs/req "
    "still hold, and the answer above uses only those.",
]
if meta.get("run_seconds") is not None:
    md.append(f"- This run took {int(meta['run_seconds']) // 60} min {int(meta['run_seconds']) % 60} s.")
md += [
    "",
    "## All cases", "",
    f"| case | what | saturation req/s | server CPU µs/req | per-core capacity req/s | backend µs/req | generator µs/req "
    f"| server core | generator core | achieved @ {lat_rate:,.0f} | p50 µs | p99 µs | p99.9 µs | errors | flag |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]
for n, c in cases.items():
    lt = c["latency_us"]
    cap = 1e6 / c["server_cpu_us_per_req"] if c["server_cpu_us_per_req"] else None
    md.append(f"| {n} | {c['what']} | {f(c['saturation_rps'], 0)} | {f(c['server_cpu_us_per_req'], 2)} | {f(cap, 0)} | "
              f"{f(c['backend_cpu_us_per_req'], 2)} | {f(c['generator_cpu_us_per_req'], 2)} | {pct(c['server_cores'])} | "
              f"{pct(c['generator_cores'])} | {f(c['latency_achieved_rps'], 0)} | {lt['p50']:,.0f} | {lt['p99']:,.0f} | "
              f"{lt['p999']:,.0f} | {c['errors']} | {c['flag']} |")
md += [
    "",
    "Ratios: median over the rounds of each round's ratio, [range]; \"no measurable difference\" when the range "
    "includes 1.0. Throughput = req/s of the first case over the second (whole-system on 2 CPUs); per core = the "
    "second case's CPU per request over the first's (> 1: the first is cheaper). Targets apply to the per-core median.", "",
    "| ratio | throughput | per core (CPU) | target | reading | note |", "|---|---:|---:|---:|---|---|",
]
for k, r in out["ratios"].items():
    if r["throughput"] is None and r["per_core"] is None:
        continue
    tgt = "-" if r["target"] is None else f"≥ {r['target']}: {'met' if r['target_met'] else '**missed**'}"
    if r.get("target_within_range"):
        tgt += " (the range reaches across it)"
    if r["throughput"] is None:  # the headroom row: a plain number
        pc = f"**{r['per_core']:.3f}**"
        tp = "-"
    else:
        tp = cell(r["throughput"], *r["throughput_range"], r["throughput_measurable"])
        pc = cell(r["per_core"], *r["per_core_range"], r["per_core_measurable"])
    md.append(f"| {k} | {tp} | {pc} | {tgt} | {r['reading']} | {r['note']} |")
md.append("")
if int(meta["token_pool"]) < 20000:
    md.append(f"- **Caution:** the unique-token pool ({meta['token_pool']}) is under twice the per-worker cache (10000): "
              "the fresh-token cases may hit the cache.")
if not meta["haproxy"]:
    md.append("- HAProxy not measured: `haproxy` (and `openssl`) not on PATH (`apt-get install -y haproxy`), or HAPROXY=0.")
if not meta["relay"]:
    md.append("- MCP relay cases skipped (RELAY=0).")
bound = [n for n, c in cases.items() if c["generator_bound"]]
md.append("- generator-bound rows: " + (", ".join(bound) + " — their req/s and throughput ratios measure the generator; "
                                       "compare their CPU µs/req instead." if bound else "none."))
if rounds < 2:
    md.append("- One round only: no noise ranges, so no difference can be called measurable (run ROUNDS ≥ 3).")
if "direct" in cases:
    d = cases["direct"]["latency_us"]
    md.append(f"- added latency vs direct at the common {lat_rate:,.0f} req/s (p50 / p99): " + ", ".join(
        f"{n} {c['latency_us']['p50'] - d['p50']:+,.0f} / {c['latency_us']['p99'] - d['p99']:+,.0f} µs"
        for n, c in cases.items() if n != "direct" and c["backend_cpu_us_per_req"] is not None))
errs = {n: c["errors_by_class"] for n, c in cases.items() if c["errors"]}
if errs:
    md.append(f"- **errors:** {errs}")
os.makedirs(out_dir, exist_ok=True)
open(os.path.join(out_dir, "overhead-report.md"), "w").write("\n".join(md) + "\n")
json.dump(out, open(os.path.join(out_dir, "overhead-report.json"), "w"), indent=2)
print("\n".join(md))
