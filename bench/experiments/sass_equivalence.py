"""Whether two source trees compile csrc/cuda/*.cu to the same machine code, without a GPU (docs/limits.md §84).

    python3 bench/experiments/sass_equivalence.py OLD_TREE NEW_TREE [taps.cu split.cu ...]

Each file is compiled in both trees for sm_89 and sm_90 (nvcc -cubin -O3 --expt-relaxed-constexpr, both trees alike;
not every flag of the build: torch's defines and -lineinfo are left out), its
SASS dumped by cuobjdump (from PATH, else the one Triton's package carries), and each kernel compared: byte for byte
(instructions and their encodings, which hold the scheduling bits), and its instructions after a normalization that
reads `x >= n` as `x > n - 1`, drops predicate register numbers and reads `FSEL d, a, b, !P` as `FSEL d, b, a, P`
(ptxas's equivalent choices when the same code reaches it by another path). A kernel's anonymous-namespace prefix (a
hash of the file) is dropped. Exit status 1 where any kernel differs after the normalization, or is in one tree
alone.
"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile

ARCHES = ("89", "90")
ANON = re.compile(r"_GLOBAL__N__[0-9a-f]+_\d+_\w+?_cu_[0-9a-f]{8}")


def cuobjdump():
    found = shutil.which("cuobjdump")
    if found:
        return found
    import triton

    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def sass(tree, label, name, arch, out_dir):
    """cuobjdump's SASS of csrc/cuda/`name` in `tree`, its cubin in out_dir under `label` (not the tree's folder name:
    two trees may share one, and then each would read the other's cubin)."""
    nvcc = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")
    cubin = os.path.join(out_dir, f"{label}_{name}_{arch}.cubin")
    subprocess.run([nvcc, "-std=c++20", f"-arch=sm_{arch}", "-O3", "--expt-relaxed-constexpr", "-Icsrc",
                    "-Icsrc/cuda", "-cubin", os.path.join("csrc", "cuda", name), "-o", cubin],
                   cwd=tree, check=True, capture_output=True)
    return subprocess.run([cuobjdump(), "-sass", cubin], check=True, capture_output=True, text=True).stdout


def kernels(text):
    """{kernel name: its lines, encodings (and with them the scheduling bits) included}"""
    found, name = {}, None
    for line in text.splitlines():
        match = re.match(r"\s*Function : (\S+)", line)
        if match:
            name = ANON.sub("ANON", match.group(1))
            found[name] = []
        elif name is not None and line.strip():
            found[name].append(ANON.sub("ANON", line.strip()))
    return found


def normalized(lines):
    """The instructions alone (no encodings), with ptxas's equivalent choices read alike."""
    out = []
    for line in lines:
        if not re.match(r"/\*[0-9a-f]{4}\*/", line):
            continue
        text = re.sub(r"^/\*[0-9a-f]{4}\*/\s*", "", line.split(";")[0]).strip()
        text = re.sub(r"ISETP\.GE\.AND (\S+), (\S+), (\S+), 0x([0-9a-f]+)",
                      lambda m: f"ISETP.GT.AND {m[1]}, {m[2]}, {m[3]}, {int(m[4], 16) - 1:#x}", text)
        text = re.sub(r"\bU?P[0-6]\b", "P", text)
        text = re.sub(r"FSEL (\S+), (\S+), (\S+), !P$", r"FSEL \1, \3, \2, P", text)
        out.append(text)
    return out


def main():
    old, new = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or sorted(f for f in os.listdir(os.path.join(new, "csrc", "cuda")) if f.endswith(".cu"))
    failed = False
    with tempfile.TemporaryDirectory() as out_dir, concurrent.futures.ThreadPoolExecutor(2) as pool:
        for name in names:
            for arch in ARCHES:
                a, b = pool.map(lambda tree, label: kernels(sass(tree, label, name, arch, out_dir)), (old, new),
                                ("old", "new"))
                alone = sorted(set(a) ^ set(b))
                exact = sum(a[k] != b[k] for k in set(a) & set(b))
                differ = sorted(k for k in set(a) & set(b) if normalized(a[k]) != normalized(b[k]))
                print(f"{name} sm_{arch}: {len(a)} / {len(b)} kernels; bytes differ in {exact}; "
                      f"different after normalizing {len(differ)}; in one tree alone {len(alone)}")
                for k in (differ + alone)[:20]:
                    print("   ", k[:150])
                failed |= bool(differ or alone)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
