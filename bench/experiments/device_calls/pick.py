import json, sys, statistics, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
t = collections.defaultdict(dict)
for r in rows: t[r["name"]][r["tag"]] = r["us"]
score = {}
for tag in [t for t in dict.fromkeys(r["tag"] for r in rows) if t != "main"]:
    slower, q = 0, []
    for d in t.values():
        if tag in d and "main" in d:
            for p in ("p1", "p2", "p3"):
                if p in d[tag]:
                    x = d[tag][p] / d["main"][p]; q.append(x); slower += x > 1.04
    if q: score[tag] = (slower, statistics.geometric_mean(q))
print(min(score, key=lambda k: score[k]) if score else "s59")
print(score, file=sys.stderr)
