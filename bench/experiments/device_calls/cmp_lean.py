import json, sys, statistics, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
t = collections.defaultdict(dict); tags = []
for r in rows:
    if r["tag"] not in tags: tags.append(r["tag"])
    old = t[r["name"]].get(r["tag"])
    t[r["name"]][r["tag"]] = r["us"] if old is None else {k: min(v, old.get(k, v)) for k, v in r["us"].items()}
base = tags[0]
for tag in tags:
    for p in ("p1", "p2", "p3"):
        rat = [d[tag][p] / d[tag]["p0"] for d in t.values() if tag in d and p in d[tag]]
        if not rat: continue
        within = sum(1 for x in rat if x <= 1.05)
        print(f"{tag:5s} {p} median padded/p0 {statistics.median(rat):.3f}  within 1.05: {within}/{len(rat)}")
for tag in tags[1:]:
    print(f"--- {tag} / {base}: rows off by more than 4%")
    g = []
    for n, d in t.items():
        if tag not in d or base not in d: continue
        for p in ("p1", "p2", "p3"):
            if p in d[tag]:
                q = d[tag][p] / d[base][p]; g.append(q)
                if abs(q - 1) > 0.04:
                    print(f"  {n} {p} {d[base][p]:8.1f} -> {d[tag][p]:8.1f}  x{q:.3f}")
    print(f"  geomean x{statistics.geometric_mean(g):.3f}")
