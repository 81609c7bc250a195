"""python cmp_lean.py LEAN.jsonl [PICK_FILE]: lean.py's rows (the least of repeated ones) by tree, the first tree
(main) the base: medians of padded over padding 0, every row more than 4% off the base; with PICK_FILE, the name of
the tree with the fewest rows over 1.04x the base's (then the least geometric mean) written there."""
import json, sys, statistics, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
t = collections.defaultdict(dict); tags = []
for r in rows:
    if r["tag"] not in tags: tags.append(r["tag"])
    old = t[r["name"]].get(r["tag"])
    t[r["name"]][r["tag"]] = r["us"] if old is None else {k: min(v, old.get(k, v)) for k, v in r["us"].items()}
base = tags[0]
score = {}
for tag in tags:
    for p in ("p1", "p2", "p3"):
        rat = [d[tag][p] / d[tag]["p0"] for d in t.values() if tag in d and p in d[tag]]
        if not rat: continue
        within = sum(1 for x in rat if x <= 1.05)
        print(f"{tag:5s} {p} median padded/p0 {statistics.median(rat):.3f}  within 1.05: {within}/{len(rat)}")
for tag in tags[1:]:
    print(f"--- {tag} / {base}: rows off by more than 4%")
    g, slower = [], 0
    for n, d in t.items():
        if tag not in d or base not in d: continue
        for p in ("p1", "p2", "p3"):
            if p in d[tag]:
                q = d[tag][p] / d[base][p]; g.append(q); slower += q > 1.04
                if abs(q - 1) > 0.04:
                    print(f"  {n} {p} {d[base][p]:8.1f} -> {d[tag][p]:8.1f}  x{q:.3f}")
    print(f"  geomean x{statistics.geometric_mean(g):.3f}, {slower} rows over 1.04x")
    score[tag] = (slower, statistics.geometric_mean(g))
if len(sys.argv) > 2 and score:
    with open(sys.argv[2], "w") as f:
        f.write(min(score, key=lambda k: score[k]) + "\n")
