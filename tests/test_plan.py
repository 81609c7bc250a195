"""The planner (csrc/plan.cpp) on made-up devices, on CPU: its choices, its predictions and explain()."""
import math

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda.planning import EPILOGUES, READERS, STRATEGIES, forced_plan, forced_walk, plan_for
from helpers import HAS_CUDA, lay_out, narrow_lse_applies, narrow_lse_splits, rows_lse_applies

# Published properties: 4090 (sm_89: 128 SMs, 72 MB L2, 100 KB shared memory and 48 warps per SM, ~1 TB/s,
# 2.52 GHz boost, bfloat16 tensor cores with float32 accumulation at 512 flops a clock of an SM) and H200 (132 SMs,
# 60 MB L2, 228 KB, 64 warps, 4.8 TB/s, 1.98 GHz, 4096 flops a clock).
RTX_4090 = dict(multiprocessors=128, l2_bytes=72 << 20, shared_bytes_per_sm=100 << 10, warps_per_sm=48,
                read_gbps=1008.0, fp32_gflops=2 * 128 * 128 * 2.52, bf16_gflops=512 * 128 * 2.52)
H200 = dict(multiprocessors=132, l2_bytes=60 << 20, shared_bytes_per_sm=228 << 10, warps_per_sm=64,
            read_gbps=4800.0, fp32_gflops=2 * 128 * 132 * 1.98, bf16_gflops=4096 * 132 * 1.98)
DEVICES = {"rtx4090": RTX_4090, "h200": H200}
# The H100 SXM the device tool lends (what explain() printed there): 50 MB of L2, 3352 GB/s; the rest as the H200's.
H100 = dict(H200, l2_bytes=50 << 20, read_gbps=3352.3)


def problem(batch, c_in, c_out, height, width, element_bytes=4, layout="planes"):
    return dict(batch=batch, in_channels=c_in, out_channels=c_out, height=height, width=width,
                element_bytes=element_bytes, layout=layout)


HEADLINE = problem(16, 64, 128, 512, 512)
MANY_TINY_PLANES = problem(10**6, 2, 16, 2, 3)
GEMM_HEAVY = problem(2048, 2048, 8192, 2, 2)
STRIDED_ROWS = problem(11, 185, 5, 1178, 89, layout="strided_rows")


@pytest.mark.parametrize("device", list(DEVICES))
def test_headline_runs_in_one_launch(device):
    plan = plan_for(HEADLINE, DEVICES[device])
    assert (plan["strategy"], plan["reader"], plan["copies_x"]) == ("fused", "planes", False)


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("case", ["many_tiny_planes", "gemm_heavy"])
def test_big_epilogues_go_to_the_split_strategy(device, case):
    plan = plan_for({"many_tiny_planes": MANY_TINY_PLANES, "gemm_heavy": GEMM_HEAVY}[case], DEVICES[device])
    assert plan["strategy"] == "split" and plan["reader"] == "plane_lanes"
    assert plan["fused_us"] is None  # outside what the fused launch was measured on


@pytest.mark.parametrize("device", list(DEVICES))
def test_strided_rows_are_read_in_place(device):
    plan = plan_for(STRIDED_ROWS, DEVICES[device])
    assert not plan["copies_x"] and plan["reader"] == "plane_lanes"


@pytest.mark.parametrize("layout", ["planes", "strided_rows", "other"])
@pytest.mark.parametrize("device", list(DEVICES))
def test_tiny_planes_get_the_plane_lanes_reader(device, layout):
    plan = plan_for(problem(50000, 12, 7, 2, 3, layout=layout), DEVICES[device])
    assert plan["split_reader"] == "plane_lanes"


# Small channels-last planes: the channel-rows reader's pixel-vector walk where pixels are whole aligned 16-byte
# vectors of 64 bytes or more on planes of 2 to 144 pixels, or of any size on planes of at most 4, with 16K threads'
# work or more (plan.cpp's kPixelVectors*); else, on tiny planes, torch's reduction where the pixels or the planes are
# few bytes (kTinyLanesMinPixelBytes, kTinyLanesMinPlaneBytes), the plane-lanes reader otherwise or where pixels are a
# slice.
TINY_CHANNELS_LAST = {
    "pixels_of_48_bytes": (problem(50000, 12, 7, 2, 3, layout="channels_last"), True, "torch_sum"),
    "pixel_vectors_of_1_KiB_in_2_x_2": (problem(100000, 256, 64, 2, 2, layout="channels_last"), True, "channel_rows"),
    "pixel_vectors_of_16_bytes_in_2_x_2": (problem(2097152, 8, 16, 2, 2, element_bytes=2, layout="channels_last"),
                                           True, "channel_rows"),
    "pixels_of_16_bytes_in_3_x_3": (problem(932067, 8, 16, 3, 3, element_bytes=2, layout="channels_last"), True,
                                    "torch_sum"),
    "pixels_of_32_bytes_in_4_x_4": (problem(262144, 16, 16, 4, 4, element_bytes=2, layout="channels_last"), True,
                                    "torch_sum"),
    "seed_7_r53": (problem(53725, 1650, 11, 5, 1, element_bytes=2, layout="channels_last"), True, "torch_sum"),
    "wide_pixel_vectors_of_3_x_3": (problem(1820, 2048, 16, 3, 3, layout="channels_last"), True, "channel_rows"),
    "pixel_vectors_of_64_bytes_in_4_x_4": (problem(131072, 16, 16, 4, 4, layout="channels_last"), True,
                                           "channel_rows"),
    "pixel_vectors_of_64_bytes_in_6_x_6": (problem(29127, 32, 16, 6, 6, element_bytes=2, layout="channels_last"), True,
                                           "channel_rows"),
    "pixel_vectors_in_12_x_12": (problem(7281, 32, 16, 12, 12, element_bytes=2, layout="channels_last"), True,
                                 "channel_rows"),
    "pixel_vectors_in_12_x_13": (problem(7281, 32, 16, 12, 13, element_bytes=2, layout="channels_last"), True,
                                 "torch_sum"),
    "too_few_pixel_vectors": (problem(1023, 64, 16, 4, 4, layout="channels_last"), True, "plane_lanes"),
    "just_enough_pixel_vectors": (problem(1024, 64, 16, 4, 4, layout="channels_last"), True, "channel_rows"),
    "pixels_of_64_bytes_unaligned": (dict(problem(131072, 16, 16, 4, 4, layout="channels_last"), pixel_vectors=False),
                                     True, "plane_lanes"),
    "float64_pixels_of_2_KiB": (problem(1820, 256, 16, 3, 3, element_bytes=8, layout="channels_last"), True,
                                "plane_lanes"),
    "a_slice_of_wider_pixels": (problem(50000, 12, 7, 2, 3, layout="channels_last"), False, "plane_lanes"),
}


@pytest.mark.parametrize("case", list(TINY_CHANNELS_LAST))
@pytest.mark.parametrize("device", list(DEVICES))
def test_tiny_channels_last_planes_get_the_reader_measured_faster(device, case):
    shape, pixels_follow, reader = TINY_CHANNELS_LAST[case]
    plan = plan_for(dict(shape, pixels_follow=pixels_follow), DEVICES[device])
    assert plan["split_reader"] == reader
    whole_vectors = pixels_follow and shape["in_channels"] * shape["element_bytes"] % 16 == 0
    assert plan["problem"]["pixel_vectors"] is shape.get("pixel_vectors", whole_vectors)


@pytest.mark.parametrize("c_in,c_out,element_bytes", [(1535, 16, 4), (1536, 16, 4), (2048, 16, 2), (40000, 3, 4),
                                                      (3001, 32, 8), (6143, 4, 4), (6144, 4, 4)])
@pytest.mark.parametrize("device", list(DEVICES))
def test_narrow_epilogue_cuts_wide_channels_into_ranges(device, c_in, c_out, element_bytes):
    """The narrow epilogue takes any C_in: where W.sum and the biases pass 96 KiB it runs over the fewest equal
    channel ranges that fit (narrow_k_splits, 1 where one does), their partial logits added by a second launch."""
    dtype = {2: torch.bfloat16, 4: torch.float32, 8: torch.float64}[element_bytes]
    plan = plan_for(problem(8192, c_in, c_out, 2, 2, element_bytes=element_bytes), DEVICES[device])
    assert plan["narrow_us"] is not None
    assert plan["narrow_k_splits"] == narrow_lse_splits(c_in, c_out, dtype)


@pytest.mark.parametrize("layout", ["planes", "channels_last", "strided_rows", "other"])
@pytest.mark.parametrize("plane_runs", [False, True])
@pytest.mark.parametrize("device", list(DEVICES))
def test_planes_of_one_element_get_the_plane_lanes_reader(device, plane_runs, layout):
    """A plane of one element is a copy: the plane-lanes reader's, by the run walk where the planes follow each other
    (16 bytes a load), by its lanes otherwise (strided, or float64); plane_runs is what explain() reports. (C_out 64:
    where the narrow epilogue takes the GEMM, it loads 16-bit x's one-element planes itself, as a test below checks.)"""
    shape = dict(problem(618884, 53, 64, 1, 1, element_bytes=2, layout=layout), plane_runs=plane_runs)
    plan = plan_for(shape, DEVICES[device])
    assert plan["split_reader"] == "plane_lanes"
    assert plan["problem"]["plane_runs"] is plane_runs


def test_forced_walk_rejects_unknown_walks():
    """forced_walk names the walks it takes; the op behind it names the range."""
    names = r"\('lanes', 'runs', 'vector_planes', 'staged'\)"
    with pytest.raises(ValueError, match=rf"walk must be one of {names}, got 'scalar'"):
        with forced_walk("scalar"):
            pass
    with pytest.raises(RuntimeError, match=r"_force_walk: walk must be -1\.\.3, got 4"):
        torch.ops.fusedlse._force_walk(4)


@pytest.mark.parametrize("layout,plane,reader", [
    ("planes", (25, 39), "plane_lanes"), ("strided_rows", (365, 39), "plane_lanes"),
    ("planes", (1, 1), "plane_lanes"),  # a plane of one element
    ("planes", (256, 256), "plane_lanes"),  # long contiguous planes
    ("strided_rows", (256, 256), "plane_lanes"),
    ("channels_last", (165, 45), "channel_rows"), ("channels_last_apart", (165, 45), "torch_sum"),
    ("other", (165, 45), "torch_sum")])
@pytest.mark.parametrize("device", list(DEVICES))
def test_split_reader_by_layout(device, layout, plane, reader):
    """fusedlse's reader for strided rows, tiny planes and contiguous planes of any size, and for channels-last pixels
    that follow each other (166 channels: the vector walk); torch's where a larger plane's elements are apart in
    memory (channels-last pixels apart, other layouts)."""
    shape = problem(1378, 166, 4, *plane, layout=layout.replace("_apart", ""))
    if layout.endswith("_apart"):
        shape["pixels_follow"] = False
    assert plan_for(shape, DEVICES[device])["split_reader"] == reader


@pytest.mark.parametrize("c_in,plane,reader", [
    (64, (512, 512), "channel_rows"), (128, (64, 64), "channel_rows"),
    (129, (512, 512), "channel_rows"),  # more channels: its vector walk, where pixels follow each other
    (-129, (512, 512), "torch_sum"),  # the same with pixels apart: the scalar walk was not measured good on them
    (64, (31, 33), "channel_rows"), (64, (20, 20), "channel_rows"),  # down to 400 pixels
    (64, (19, 21), "channel_rows"), (64, (16, 16), "channel_rows"),  # down to 256 for pixels of 32 to 800 bytes
    (64, (15, 17), "torch_sum"),  # fewer pixels than that
    (4, (16, 16), "torch_sum"), (600, (19, 19), "torch_sum"),  # pixels of 16 and 2400 bytes: 400 pixels at least
    (4, (20, 20), "channel_rows"), (600, (20, 20), "channel_rows"),
    (64, (5, 6), "plane_lanes")])  # tiny planes of wide pixels, too few for the pixel-vector walk's threads
@pytest.mark.parametrize("device", list(DEVICES))
def test_channels_last_reader_by_channels_and_pixels(device, c_in, plane, reader):
    """A negative c_in: that many channels, of pixels that do not follow each other."""
    shape = dict(problem(8, abs(c_in), 16, *plane, layout="channels_last"), pixels_follow=c_in > 0)
    assert plan_for(shape, DEVICES[device])["split_reader"] == reader


@pytest.mark.parametrize("c_in,plane,reader", [
    (129, (20, 20), "channel_rows"), (256, (613, 1), "channel_rows"), (256, (60, 60), "channel_rows"),
    (-256, (60, 60), "channel_rows"),  # pixels apart: the same scalar loads
    (257, (60, 60), "torch_sum"), (686, (613, 1), "torch_sum"),  # r23's x: pixels that cut 128-byte lines
    (256, (19, 21), "torch_sum"),  # fewer than 400 pixels
    (272, (20, 20), "channel_rows"), (2048, (613, 1), "channel_rows"),  # the pixel-vector walk in chunks
    (-272, (20, 20), "torch_sum"), (272, (19, 21), "torch_sum"), (264, (20, 20), "torch_sum")])
@pytest.mark.parametrize("device", list(DEVICES))
def test_float64_channels_last_takes_the_scalar_walk_up_to_a_channel_a_thread(device, c_in, plane, reader):
    """float64 has no vector walk; its scalar walk reads up to 256 channels (a thread each) faster than torch's
    reduction (plan.cpp, kChannelRowsFloat64MaxChannels), and the pixel-vector walk in chunks more channels where
    pixels follow each other as whole 128-byte lines (kPixelVectorsFloat64LineBytes) on 400 pixels or more. A negative
    c_in: pixels that do not follow each other."""
    shape = dict(problem(8, abs(c_in), 16, *plane, element_bytes=8, layout="channels_last"), pixels_follow=c_in > 0)
    assert plan_for(shape, DEVICES[device])["split_reader"] == reader


@pytest.mark.parametrize("c_in,element_bytes,reader", [
    (2048, 2, "channel_rows"), (2049, 2, "torch_sum"),  # a period of 2049 vectors: 64 KiB of accumulators
    (2049, 4, "channel_rows"),  # 2049 vectors of 4 floats: 32 KiB
    (5888, 2, "channel_rows"), (5889, 2, "torch_sum"), (5889, 4, "torch_sum"),  # 5888 = 8 x 736: 736 vectors
    (2049, 8, "torch_sum"), (2048, 8, "channel_rows")])  # float64: its pixel-vector walk, in chunks
@pytest.mark.parametrize("device", list(DEVICES))
def test_wide_channels_last_reader_by_the_vector_walks_shared_memory(device, c_in, element_bytes, reader):
    """More than 128 channels go to the channel-rows reader only where its vector walk applies: a period of
    C / gcd(C, elements per vector) vectors whose float accumulators fit a block's shared memory; or, in float64, its
    pixel-vector walk in chunks (pixels of whole 128-byte lines)."""
    shape = problem(8, c_in, 16, 64, 64, element_bytes=element_bytes, layout="channels_last")
    assert plan_for(shape, DEVICES[device])["split_reader"] == reader


# (B, C_in, side of a square plane, dtype's bytes, the split strategy's reader): float32 channels-last x of 32 MiB
# whose vector walk would have a period of a vector per slot (C not a multiple of 4) and chunks of 128 pixels: fewer
# than kChannelVectorsMinBlocks blocks go to torch's reduction (the walk took 1.17-1.79x its time, or the fused
# launch's, docs/limits.md section 76); a period of 175 vectors (C 700, chunks of 32 pixels) and r37's 24 batches keep
# the channel-rows reader.
@pytest.mark.parametrize("batch,c_in,side,element_bytes,reader", [
    (1, 1439, 76, 4, "torch_sum"), (2, 1999, 46, 4, "torch_sum"), (8, 1999, 23, 4, "torch_sum"),  # 45, 32, 32 blocks
    (8, 700, 39, 4, "channel_rows"), (1, 700, 109, 4, "channel_rows"),  # 376 and 371 blocks
    (24, 1439, 110, 2, "channel_rows")])  # r37's C and batches (696 blocks at its 165 x 45 pixels)
@pytest.mark.parametrize("device", list(DEVICES))
def test_channels_last_vector_walk_needs_blocks_for_the_device(device, batch, c_in, side, element_bytes, reader):
    shape = problem(batch, c_in, 16, side, side, element_bytes=element_bytes, layout="channels_last")
    assert plan_for(shape, DEVICES[device])["split_reader"] == reader


@pytest.mark.parametrize("device", list(DEVICES))
def test_float64_contiguous_planes_go_to_the_plane_lanes_reader(device):
    for plane in [(25, 39), (2, 3), (1, 1), (512, 512)]:
        plan = plan_for(problem(1378, 166, 4, *plane, element_bytes=8), DEVICES[device])
        assert plan["split_reader"] == "plane_lanes"


@pytest.mark.parametrize("layout", ["planes", "channels_last", "strided_rows", "other"])
@pytest.mark.parametrize("device", list(DEVICES))
def test_tiled_epilogue_reads_one_element_planes_of_its_type(device, layout):
    """Where the tiled epilogue takes the GEMM, x of one-element float32 or float64 planes in any layout is read by
    it, no reader launched ("in_epilogue"); 16-bit x (to widen first) and planes of two elements keep their reader,
    and so do GEMMs cuBLAS's epilogue takes (r43 of the sweep on the H200: 43.3 us against 46.0 read by the tiled
    one; plan.cpp)."""
    for element_bytes in (4, 8):
        plan = plan_for(problem(50000, 16, 1000, 1, 1, element_bytes=element_bytes, layout=layout), DEVICES[device])
        assert (plan["strategy"], plan["reader"], plan["epilogue"]) == ("split", "in_epilogue", "tiled_lse")
        assert plan["predicted_us"] == plan["split_us"]
    for height, element_bytes in ((1, 2), (2, 4)):
        plan = plan_for(problem(50000, 16, 1000, height, 1, element_bytes=element_bytes, layout=layout),
                        DEVICES[device])
        assert plan["reader"] != "in_epilogue" and plan["epilogue"] == "tiled_lse"
    plan = plan_for(problem(2328, 657, 61, 1, 1, element_bytes=8, layout=layout), H200)
    assert (plan["reader"], plan["epilogue"]) == ("plane_lanes", "cublas_lse")


@pytest.mark.parametrize("device", list(DEVICES))
def test_tensor_core_tile_sums_float64_planes_of_a_few_elements(device):
    """float64 planes of 2 to 32 elements in rows of 8 to 32, C_in up to 32 and a GEMM the tensor-core tile takes in
    one column run: the tile sums them itself, no reader launched (r27 of the sweep, [180286, 25, 1, 24] -> 413 in
    rows 52 elements apart: 602 us against 699 after the plane-lanes reader on the H200). Any other dtype, a row
    under 8, a plane over 32, C_in over 32, C_out of 32 (a SIMT tile) or channels-last x keeps a reader."""
    r27 = problem(180286, 25, 413, 1, 24, element_bytes=8, layout="strided_rows")
    for shape in (r27, dict(r27, layout="planes"), dict(r27, height=4, width=8), dict(r27, in_channels=32)):
        plan = plan_for(shape, DEVICES[device])
        assert (plan["strategy"], plan["reader"], plan["epilogue"]) == ("split", "in_epilogue", "tiled_lse")
        assert plan["predicted_us"] == plan["split_us"]
    for change in (dict(element_bytes=4), dict(element_bytes=2), dict(height=6, width=4), dict(height=2),
                   dict(in_channels=33), dict(out_channels=32), dict(layout="channels_last"), dict(layout="other")):
        assert plan_for(dict(r27, **change), DEVICES[device])["reader"] != "in_epilogue", change


@pytest.mark.parametrize("device", list(DEVICES))
def test_narrow_epilogue_sums_tiny_planes_itself(device):
    """Where the narrow epilogue takes the GEMM over one channel range, x's strided planes of 2 to 8 elements in any
    dtype are summed by it, no reader launched ("in_epilogue"; r59 of the sweep, [9346, 1570, 3, 1] float64 -> 4 in
    rows 3 apart, wrote and read back 117 MB of sums). Planes of 9 elements or of one, contiguous or channels-last
    planes, a GEMM cuBLAS's epilogue takes (C_out 33) and one split over channel ranges keep a reader."""
    r59 = problem(9346, 1570, 4, 3, 1, element_bytes=8, layout="strided_rows")
    for change in (dict(), dict(layout="other"), dict(element_bytes=2), dict(element_bytes=4),
                   dict(height=2, width=4), dict(height=2, width=1, element_bytes=2)):
        plan = plan_for(dict(r59, **change), DEVICES[device])
        assert (plan["strategy"], plan["reader"], plan["epilogue"], plan["narrow_k_splits"]) == (
            "split", "in_epilogue", "narrow_lse", 1), change
        assert plan["predicted_us"] == plan["split_us"]
    for change in (dict(height=3, width=3), dict(height=1), dict(layout="planes"), dict(layout="channels_last"),
                   dict(out_channels=33), dict(in_channels=40000)):
        plan = plan_for(dict(r59, **change), DEVICES[device])
        assert plan["reader"] != "in_epilogue", change
    assert plan_for(dict(r59, in_channels=40000), H200)["narrow_k_splits"] > 1


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("layout", ["planes", "channels_last", "strided_rows", "other"])
def test_narrow_epilogue_loads_16_bit_one_element_planes_itself(device, layout):
    """16-bit x's planes of one element, in any layout, where the narrow epilogue takes the GEMM over one channel
    range: loaded by it as its sums ("in_epilogue"), where the plane-lanes reader would write 4 bytes of sums for each
    2 of x for it to read back (r22 of the sweep, [618884, 53, 1, 1] float16 -> 2; docs/limits.md §109). float32 and
    float64 planes of one element are sums already (the tiled epilogue reads them, where it is the epilogue), and
    planes of two contiguous elements keep their reader."""
    r22 = problem(618884, 53, 2, 1, 1, element_bytes=2, layout=layout)
    plan = plan_for(r22, DEVICES[device])
    assert (plan["strategy"], plan["reader"], plan["epilogue"], plan["narrow_k_splits"]) == (
        "split", "in_epilogue", "narrow_lse", 1)
    assert plan["predicted_us"] == plan["split_us"]
    for change in (dict(element_bytes=4), dict(element_bytes=8), dict(height=2, layout="planes"),
                   dict(out_channels=33)):
        plan = plan_for(dict(r22, **change), DEVICES[device])
        assert (plan["reader"], plan["epilogue"]) != ("in_epilogue", "narrow_lse"), change
    # Over channel ranges too, where the narrow epilogue is the one chosen: a one-element plane's load holds no
    # registers beside it (elements_in_x).
    plan = plan_for(dict(r22, in_channels=40000), DEVICES[device])
    assert plan["narrow_k_splits"] > 1 and (plan["epilogue"] != "narrow_lse" or plan["reader"] == "in_epilogue")
    if device == "h200":
        assert (plan["reader"], plan["epilogue"]) == ("in_epilogue", "narrow_lse")


@pytest.mark.parametrize("device", list(DEVICES))
def test_narrow_epilogue_loading_x_is_weighed_against_the_rows_epilogue(device):
    """The rows epilogue, kept wherever it applies on reading sums, cannot read x: the narrow epilogue loading 16-bit
    x's one-element planes itself is weighed against it with its reader, and taken where predicted faster (here
    [10^6, 8] x [8, 7] bfloat16: no sums written and read back). Tiny strided planes keep the narrow epilogue's own
    rule (their reader where the rows epilogue is chosen)."""
    elements = problem(10**6, 8, 7, 1, 1, element_bytes=2)
    assert rows_lse_applies(8, 7, torch.bfloat16)
    plan = plan_for(elements, DEVICES[device])
    with forced_plan("split", reader="plane_lanes", epilogue="rows_lse"):
        rows = plan_for(elements, DEVICES[device])
    assert (rows["reader"], rows["epilogue"]) == ("plane_lanes", "rows_lse")
    assert (plan["reader"], plan["epilogue"]) == ("in_epilogue", "narrow_lse")
    assert plan["predicted_us"] < rows["predicted_us"]
    planes = plan_for(problem(50000, 12, 7, 2, 3, layout="strided_rows"), DEVICES[device])
    assert planes["split_reader"] == "plane_lanes"
    # Not against the tiled epilogue: [300000, 40] bfloat16 -> 32 ran faster with its reader (H100: 105.2 us against
    # 109.9 reading x; docs/limits.md §110). On the H100's and the H200's properties the tiled epilogue is the one the
    # sums' weighing picks, and it keeps its reader.
    for props in (H200, H100):
        wide = plan_for(problem(300000, 40, 32, 1, 1, element_bytes=2), props)
        assert (wide["reader"], wide["epilogue"]) == ("plane_lanes", "tiled_lse"), wide


@pytest.mark.parametrize("device", list(DEVICES))
def test_the_choice_is_the_cheaper_prediction(device):
    """Over a grid of shapes, the plan is the cheaper of the two predictions, both finite and positive, and the epilogue
    the cheapest that applies (the narrow one only where the rows one does not; the gemv one always applies)."""
    for batch in (1, 16, 1000, 10**6):
        for c_in in (1, 64, 2048):
            for c_out in (1, 20, 128, 8192):
                for side in (1, 8, 512):
                    for layout in ("planes", "channels_last", "strided_rows", "other"):
                        plan = plan_for(problem(batch, c_in, c_out, side, side, layout=layout), DEVICES[device])
                        assert plan["strategy"] in STRATEGIES and plan["reader"] in READERS
                        fused_us = math.inf if plan["fused_us"] is None else plan["fused_us"]
                        assert 0 < fused_us and 0 < plan["split_us"] < math.inf
                        assert plan["predicted_us"] == min(fused_us, plan["split_us"])
                        assert plan["copies_x"] == (plan["reader"] == "copy_then_planes")
                        epilogue_us = {"tiled_lse": plan["tiled_us"], "cublas_lse": plan["cublas_us"],
                                       "gemv_lse": plan["gemv_us"]}
                        assert (plan["rows_us"] is not None) == rows_lse_applies(c_in, c_out, torch.float32)
                        if plan["rows_us"] is not None:
                            epilogue_us["rows_lse"] = plan["rows_us"]
                        assert (plan["narrow_us"] is not None) == narrow_lse_applies(c_in, c_out, torch.float32)
                        if plan["narrow_us"] is not None and plan["rows_us"] is None:  # rows first
                            epilogue_us["narrow_lse"] = plan["narrow_us"]
                        assert plan["epilogue"] in EPILOGUES and 0 < min(epilogue_us.values())
                        assert epilogue_us[plan["epilogue"]] == min(epilogue_us.values())


# (problem, epilogue): skinny GEMMs, whose logits would cost far more than their FMAs, never write them: the rows
# epilogue where C_in is a few channels (its cost is the row's own columns and channels, no tile), the tiled one
# where C_out is too wide for it; GEMMs whose FMAs dominate go to cuBLAS.
EPILOGUE_CASES = {
    "million_rows_4_channels": (problem(10**6, 4, 64, 1, 1), "rows_lse"),
    "wide_c_out_one_channel": (problem(64, 1, 4096, 256, 256, element_bytes=2), "tiled_lse"),
    "million_tiny_planes": (MANY_TINY_PLANES, "rows_lse"),
    "gemm_heavy": (GEMM_HEAVY, "cublas_lse"),
    # cuBLAS's tiles of 32 and more, paid for in full by a GEMM over few channels (r27 of the sweep: the tiled
    # epilogue 1.21x faster, f9c2612)
    "skinny_k_float64": (problem(180286, 25, 413, 1, 24, element_bytes=8), "tiled_lse"),
    # C_out of at most 32 on many channels: the narrow epilogue pays for no tile (r50, r22 and r24 of the sweep:
    # 1.2-1.5x faster than the tiled or cuBLAS's); few rows of many channels take the gemv epilogue's two trips a
    # row ([8, 1024] -> 16: 20.5 us, cuBLAS's 24.7, the tiled 26.5, the narrow 26.7; H200, docs/limits.md §51).
    "few_columns_many_channels": (problem(9319, 1244, 10, 2, 2, element_bytes=2), "narrow_lse"),
    "few_columns_single_element_planes": (problem(618884, 53, 2, 1, 1, element_bytes=2), "narrow_lse"),
    "few_columns_few_rows": (problem(8, 1024, 16, 1, 1024), "gemv_lse"),
    # A row a multiprocessor, one trip of the gemv epilogue's loads: the headline's GEMM (bfloat16, H200: 138.5 us
    # against the tiled epilogue's 142.1).
    "few_rows_one_trip": (problem(16, 64, 128, 512, 512, element_bytes=2), "gemv_lse"),
    "gemm_heavy_float64": (problem(2048, 2048, 8192, 1, 1, element_bytes=8), "cublas_lse"),
}


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("case", list(EPILOGUE_CASES))
def test_epilogue_follows_the_gemm(device, case):
    shape, epilogue = EPILOGUE_CASES[case]
    assert plan_for(shape, DEVICES[device])["epilogue"] == epilogue


@pytest.mark.parametrize("batch,c_in,c_out,epilogue", [
    (100000, 767, 32, "cublas_lse"), (100000, 300, 32, "cublas_lse"), (100000, 64, 32, "tiled_lse"),
    (200000, 100, 20, "cublas_lse"), (125565, 69, 35, "cublas_lse"), (200000, 200, 16, "narrow_lse"),
    (100000, 200, 8, "narrow_lse")])
def test_epilogue_by_columns_on_the_h200(batch, c_in, c_out, epilogue):
    """Many rows (10^5 and more) on the H200: at 32 columns the narrow epilogue loads a W.sum word from shared memory
    per FMA and is the slowest of the three; cuBLAS's was 1.18-1.30x faster than the tiled one at 24 and 32 columns
    on 300 and 767 channels (f9c2612, each forced, bench/results/h200/strategies_columns.json: [111848, 300] -> 32
    159.8 us against 192.4, [43747, 767] -> 24 161.3 against 189.9) and on r58 ([125565, 69] -> 35, 139.7 against
    154.8); on 64 channels the tiled one keeps them (the model leaves [524288, 64] -> 32 there, 1.22x slower than
    cuBLAS's); at 16 columns and fewer the narrow one was the fastest ([200000, 200] -> 16: 170 against 230 tiled,
    180 cuBLAS's)."""
    assert plan_for(problem(batch, c_in, c_out, 1, 1), H200)["epilogue"] == epilogue


@pytest.mark.parametrize("shape,epilogue", [
    ((73, 276, 3295, 12, 123, 4), "cublas_lse"), ((90, 39, 1310, 5779, 1, 4), "tiled_lse"),
    ((3, 60, 334, 62, 6276, 4), "tiled_lse"), ((64, 1, 4096, 256, 256, 2), "tiled_lse")], ids=str)
def test_thin_tile_chain_on_the_h200(shape, epilogue):
    """The 32 x 64 tile's steps after a block's first wait about 2 us each (plan.cpp kThinTileLaterStepUs): r60's
    nine steps a block make cuBLAS's epilogue the faster (H200, both forced: 78.0 us tiled against 73.1); rows of one
    or two steps keep the tiled one (r36 39.6 against 41.4, r12 87.4 against 88.0, r02 18.7 against 20.7;
    docs/limits.md §54)."""
    batch, c_in, c_out, height, width, element_bytes = shape
    plan = plan_for(problem(batch, c_in, c_out, height, width, element_bytes=element_bytes), H200)
    assert plan["epilogue"] == epilogue


@pytest.mark.parametrize("batch,c_in,c_out,gemv", [
    (16, 64, 128, True), (8, 1024, 16, True), (1, 16, 256, True), (16, 197, 88, True), (8, 1024, 64, False),
    (128, 128, 1024, False), (1035, 50, 7, False), (10253, 127, 17, False)])
def test_gemv_epilogue_where_rows_take_few_trips_on_the_h200(batch, c_in, c_out, gemv):
    """The gemv epilogue (a block per row, W.sum read from L2) where each multiprocessor's rows take a trip or two of
    loads, not where they take many: H200, every split epilogue forced (bench/results/h200/strategies_gemv.json and
    strategies_few_rows.json,
    docs/limits.md §51). Faster than every other at one trip: the headline's GEMM (by 3.4-3.6 us in every dtype),
    [1, 16] -> 256 (1.6 us), r20's [16, 197] -> 88 (4 trips, 5.9 us faster than the tiled one); at 8 trips a row
    ([8, 1024] -> 64) 7.0 us slower than the tiled one, at 16 ([128, 128] -> 1024) 24.5 us slower than cuBLAS's,
    on rows that are many (r08's 1035: 4.2 us slower than the narrow one; r25's 10253: 77.5 us), and level on mid's
    four trips ([32, 128] -> 256: 82.3 us against 81.8-82.2; not pinned: either is right there)."""
    assert (plan_for(problem(batch, c_in, c_out, 8, 8), H200)["epilogue"] == "gemv_lse") == gemv


@pytest.mark.parametrize("c_in,c_out,element_bytes,threads,trips", [
    (128, 256, 4, 512, 2), (197, 88, 4, 512, 2), (128, 256, 8, 512, 4), (70, 5000, 2, 512, 30),
    (64, 128, 4, 256, 1), (64, 128, 2, 256, 1), (4, 128, 4, 256, 1), (127, 17, 2, 256, 1), (1473, 2, 8, 256, 1)])
def test_gemv_block_takes_the_fewest_trips(c_in, c_out, element_bytes, threads, trips):
    """The gemv epilogue's block per row (explain's gemv_threads and gemv_trips): 512 threads where they walk a row's
    [C_in] x [C_in, C_out] in fewer trips of loads than 256 (mid's GEMM, [128] x [128, 256]: 4 trips of 32 channels
    at 256 threads, 2 at 512; r20's [197] x [197, 88] 4 and 2; float64's 16 a trip; 20 passes of columns in 10), 256
    where they take as many (the headline's GEMM: one trip either way; many slices of few columns)."""
    plan = plan_for(problem(16, c_in, c_out, 8, 8, element_bytes=element_bytes), H200)
    assert (plan["gemv_threads"], plan["gemv_trips"]) == (threads, trips)


@pytest.mark.parametrize("batch,c_in,c_out,splits", [
    (2328, 657, 61, 3), (15, 1125, 135, 15), (256, 512, 256, 8), (15, 686, 3860, 1), (1, 1473, 2, 3),
    (65358, 220, 113, 1), (2048, 2048, 8192, 1), (73, 276, 3295, 1), (24, 1439, 40, 1), (15, 100, 135, 1)])
def test_cublas_k_splits_on_the_h200(batch, c_in, c_out, splits):
    """cuBLAS's epilogue slices the channels of GEMMs of fewer 32 x 64 output tiles than multiprocessors (H200, the
    GEMM alone, whole against sliced, docs/limits.md §56: r43's [2328, 657] -> 61 float64 21.5 -> 15.4 us at 3
    slices, r32's [15, 1125] -> 135 11.7 -> 8.0 at 15, short_rows' [256, 512] -> 256 14.1 -> 8.9 at 8), by the largest
    divisor of C_in within two blocks a multiprocessor and slices of 64 channels: none for r23's (rows of 3860
    logits: its forward 44.5 -> 49.1 us at 2 slices), r14's and r03's GEMMs (many tiles: 1.3x and 1.03x slower at 2
    slices), r60's (156 tiles), C_in 1439 (a prime), C_in 100 (one slice of 64)."""
    assert plan_for(problem(batch, c_in, c_out, 1, 1), H200)["cublas_k_splits"] == splits


# (B, C_in, C_out) of 16-bit x, and the epilogue the H100 takes, where cuBLAS's GEMM runs over bfloat16 pieces and the
# tiled one on the bfloat16 tensor-core tile wherever two blocks' pieces fit (both forced on an H100,
# bench/experiments/device_calls/bf16_tile_epilogues.py, docs/limits.md §107; µs, tiled against cuBLAS's): r62 162.6
# against 221.7, [41375, 150] -> 1239 327.8 against 371.6, r09's [50146, 50] -> 869 180.9 against 339.2, [53013, 45]
# -> 2367 237.5 against 728.3. [1685, 226] -> 3576, whose 240 channels' pieces two blocks cannot hold (the SIMT tile,
# 158.6 against 82.8), and [652, 135] -> 3844, few rows of long ones (61.6 against 55.3), keep cuBLAS's.
PIECES_EPILOGUES = [((43075, 133, 669), "tiled_lse"), ((1685, 226, 3576), "cublas_lse"),
                    ((41375, 150, 1239), "tiled_lse"), ((50146, 50, 869), "tiled_lse"),
                    ((53013, 45, 2367), "tiled_lse"), ((652, 135, 3844), "cublas_lse")]


@pytest.mark.parametrize("shape,epilogue", PIECES_EPILOGUES, ids=str)
def test_cublas_epilogue_counts_the_bf16_pieces_on_the_h100(shape, epilogue):
    """16-bit x whose cuBLAS GEMM runs over bfloat16 pieces (plan::bf16_pieces_apply) takes the epilogue the pieces'
    count says: a device without the tensor cores' rate (bf16_gflops 0) counts SGEMM and keeps the tiled epilogue on
    each of these, float32 x counts SGEMM on the H100 too."""
    batch, c_in, c_out = shape
    shape_16 = problem(batch, c_in, c_out, 2, 2, element_bytes=2)
    assert plan_for(shape_16, H100)["epilogue"] == epilogue
    without = plan_for(shape_16, dict(H100, bf16_gflops=0))
    assert without["epilogue"] == "tiled_lse"
    assert plan_for(problem(batch, c_in, c_out, 2, 2), H100)["cublas_us"] == pytest.approx(without["cublas_us"])


@pytest.mark.parametrize("device", ["h100", "h200", "rtx4090"])
@pytest.mark.parametrize("shape", [shape for shape, _ in PIECES_EPILOGUES], ids=str)
def test_bf16_tile_where_the_tensor_cores_pay_and_its_pieces_fit(shape, device):
    """The tiled epilogue of 16-bit x takes the bfloat16 tensor-core tile (tiled_tile 6) on the H100 and H200 where two
    blocks' pieces of all C_in fit a multiprocessor's 228 KiB (C_in up to 208; not 226), on the RTX 4090 never (its
    tensor cores run bfloat16 at twice its FMA rate: three products cost more), and for float32 x nowhere."""
    batch, c_in, c_out = shape
    props = {"h100": H100, "h200": H200, "rtx4090": RTX_4090}[device]
    expected = 6 if device != "rtx4090" and c_in <= 208 else 3
    assert plan_for(problem(batch, c_in, c_out, 2, 2, element_bytes=2), props)["tiled_tile"] == expected
    assert plan_for(problem(batch, c_in, c_out, 2, 2), props)["tiled_tile"] == 3


@pytest.mark.parametrize("shape", [shape for shape, _ in PIECES_EPILOGUES], ids=str)
def test_bf16_pieces_only_where_the_tensor_cores_pay(shape):
    """The RTX 4090's tensor cores accumulate bfloat16 in float32 at twice its FMA rate, where three products cost
    more than one SGEMM: its cuBLAS count is SGEMM's, as on a device with none known."""
    batch, c_in, c_out = shape
    shape_16 = problem(batch, c_in, c_out, 2, 2, element_bytes=2)
    counted = plan_for(shape_16, RTX_4090)["cublas_us"]
    assert counted == pytest.approx(plan_for(shape_16, dict(RTX_4090, bf16_gflops=0))["cublas_us"])
    assert plan_for(shape_16, H200)["cublas_us"] < plan_for(shape_16, dict(H200, bf16_gflops=0))["cublas_us"]


@pytest.mark.parametrize("device", list(DEVICES))
def test_cublas_k_splits_are_equal_slices_for_idle_multiprocessors(device):
    """Over a grid of GEMMs: the slices divide C_in, each of 64 channels or more, at most two blocks a multiprocessor,
    and only where cuBLAS's 32 x 64 output tiles are fewer than the multiprocessors and C_out is under 512."""
    sms = DEVICES[device]["multiprocessors"]
    for batch in (1, 15, 300, 5000):
        for c_in in (1, 63, 64, 640, 1024, 1439, 4096):
            for c_out in (1, 100, 2000, 9000):
                splits = plan_for(problem(batch, c_in, c_out, 1, 1), DEVICES[device])["cublas_k_splits"]
                tiles = -(-batch // 32) * -(-c_out // 64)
                assert splits >= 1 and c_in % splits == 0
                if splits > 1:
                    assert tiles < sms and c_out < 512 and c_in // splits >= 64 and tiles * splits <= 2 * sms


# (problem, tiled epilogue splits its channels): split-K only where a GEMM's tiles leave block slots empty and
# each is a long chain of steps.
SPLIT_K_CASES = {
    "thin_deep_float32": (problem(15, 1125, 135, 1, 1), True),  # r32's GEMM: 3 tiles of 36 steps
    "thin_deep_float64": (problem(15, 686, 3860, 1, 1, element_bytes=8), True),  # r23's
    "tall_deep_float64": (problem(2328, 657, 61, 1, 1, element_bytes=8), True),  # r43's
    "shallow": (problem(46, 39, 4956, 14, 46, element_bytes=8), False),  # r51's: 2 steps
    "many_tiles": (problem(50146, 50, 869, 8, 3, element_bytes=2), False),  # r09's: tiles fill the device
    "one_channel": (problem(64, 1, 4096, 256, 256, element_bytes=2), False),
}


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("case", list(SPLIT_K_CASES))
def test_tiled_epilogue_splits_channels_of_thin_deep_gemms(device, case):
    shape, splits = SPLIT_K_CASES[case]
    assert (plan_for(shape, DEVICES[device])["tiled_k_splits"] > 1) == splits


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("case", ["thin_deep_float64", "tall_deep_float64"])
def test_float64_split_gemms_fill_the_blocks_a_multiprocessor_holds(device, case):
    """float64's tensor-core tile (32 x 64) runs four blocks a multiprocessor where its shared memory holds them
    (the H200's 228 KiB) and three elsewhere (the RTX 4090's 100 KiB; cuda/tuning.h mma_blocks_per_sm), so its
    channel ranges are cut for one wave of those: more blocks than one fewer a multiprocessor would hold, no more
    than they would (r43's GEMM had taken 7 ranges, 1.3 waves of the three that fit; docs/limits.md section 66)."""
    shape, _ = SPLIT_K_CASES[case]
    device_props = DEVICES[device]
    per_sm = 4 if device_props["shared_bytes_per_sm"] >= 4 * (29696 + 1024) else 3
    plan = plan_for(shape, device_props)
    tiles = math.ceil(shape["batch"] / 32) * math.ceil(shape["out_channels"] / 64)
    blocks = plan["tiled_k_splits"] * tiles
    assert (per_sm - 1) * device_props["multiprocessors"] < blocks <= per_sm * device_props["multiprocessors"]


# (problem, strategy, reader) where the measurements behind csrc/plan.cpp's tuning table draw a line.
ENVELOPE = {
    "kernelbench_2024": (problem(128, 3, 16, 32, 32), "fused", "planes"),  # small x: one launch
    "headline": (HEADLINE, "fused", "planes"),  # many aligned float32 planes
    "headline_16_bit": (dict(HEADLINE, element_bytes=2), "split", "plane_lanes"),
    "few_16_bit_planes": (problem(2, 14, 1, 15990, 262, element_bytes=2), "split", "plane_lanes"),  # r29
    "unaligned_planes": (problem(16, 64, 128, 509, 509), "split", "plane_lanes"),  # odd509
    "unaligned_planes_said_aligned": (dict(problem(16, 64, 128, 509, 509), planes_aligned=True), "fused", "planes"),
    "aligned_planes_sliced": (dict(HEADLINE, planes_aligned=False), "split", "plane_lanes"),  # a slice of C, say
    "kernelbench_2024_16_bit": (problem(128, 3, 16, 32, 32, element_bytes=2), "fused", "planes"),  # still small
    "few_planes": (problem(1, 4, 128, 2048, 2048), "split", "plane_lanes"),  # cut into pieces for every SM
    # aligned float32 planes: one launch only for planes of 256 KiB and more in x of 100 us of reading (480 MB)
    "planes_of_64_kib": (problem(32, 128, 256, 128, 128), "split", "plane_lanes"),  # mid
    "planes_of_16_kib_in_1_gib": (problem(128, 512, 16, 64, 64), "split", "plane_lanes"),
    "large_planes_in_256_mib": (problem(32, 32, 16, 256, 256), "split", "plane_lanes"),
    "large_planes_in_512_mib": (problem(32, 64, 16, 256, 256), "fused", "planes"),
    "wide_c_out": (problem(64, 1, 4096, 256, 256, element_bytes=2), "split", "plane_lanes"),  # and few planes
    "few_large_planes": (problem(6, 19, 2069, 830, 177, element_bytes=2), "split", "plane_lanes"),
    "many_large_planes": (problem(79, 5, 2739, 15703, 30), "split", "plane_lanes"),
    "many_batches": (problem(1378, 166, 4, 25, 39), "split", "plane_lanes"),
    "short_planes": (problem(551, 36, 137, 514, 8, element_bytes=2), "split", "plane_lanes"),
    "float64_many_rows": (problem(750, 52, 8, 1, 2406, element_bytes=8), "split", "plane_lanes"),
    "float64_few_rows": (problem(41, 1, 62, 574, 185, element_bytes=8), "split", "plane_lanes"),
    "channels_last_one_huge_plane": (problem(1, 64, 100, 2048, 2048, layout="channels_last"), "split",
                                     "channel_rows"),
    "channels_last_few_channels": (problem(3, 5, 700, 1048576, 1, element_bytes=2, layout="channels_last"), "split",
                                   "channel_rows"),
    # channels-last pixels that follow each other: the channel-rows reader from 400 pixels (r20, and the grids of
    # docs/limits.md §48-49, where the fused launch had been chosen on C 197)
    "channels_last_many_channels": (problem(16, 197, 88, 186, 20, layout="channels_last"), "split", "channel_rows"),
    "channels_last_1024_pixels": (problem(32, 96, 16, 32, 32, layout="channels_last"), "split", "channel_rows"),
    "channels_last_400_pixels": (problem(32, 96, 16, 20, 20, layout="channels_last"), "split", "channel_rows"),
    "channels_last_399_pixels": (problem(32, 96, 16, 19, 21, layout="channels_last"), "split", "channel_rows"),
    # pixels of 32 to 800 bytes down to 256 pixels (planner audit of e8d0c9d: 13 of 15 faster)
    "channels_last_256_pixels": (problem(32, 96, 16, 16, 16, layout="channels_last"), "split", "channel_rows"),
    "channels_last_255_pixels": (problem(32, 96, 16, 15, 17, layout="channels_last"), "split", "torch_sum"),
    "channels_last_16_byte_pixels": (problem(32, 8, 16, 19, 21, element_bytes=2, layout="channels_last"), "split",
                                     "torch_sum"),
    # the fused launch on channels-last x the channel-rows reader does not take: up to 32 batches of 1024 pixels and
    # more that are not whole 16-byte vectors
    "channels_last_apart": (dict(problem(16, 197, 88, 186, 20, layout="channels_last"), pixels_follow=False),
                            "fused", "planes"),
    "channels_last_apart_many_batches": (dict(problem(64, 197, 16, 60, 60, layout="channels_last"),
                                              pixels_follow=False), "split", "torch_sum"),
    "channels_last_apart_small_planes": (dict(problem(32, 197, 16, 31, 31, layout="channels_last"),
                                              pixels_follow=False), "split", "torch_sum"),
    "channels_last_apart_1024_pixels": (dict(problem(32, 197, 16, 32, 32, layout="channels_last"),
                                             pixels_follow=False), "fused", "planes"),
    # r37: the channel-rows reader's vector walk reads 1439 channels of 16 bits faster than the fused launch
    "channels_last_wide_vectors": (problem(24, 1439, 40, 165, 45, element_bytes=2, layout="channels_last"), "split",
                                   "channel_rows"),
    "channels_last_234k_partials": (dict(problem(24, 1439, 40, 165, 45, element_bytes=2, layout="channels_last"),
                                         pixels_follow=False), "fused", "planes"),  # a slice of wider pixels
    "channels_last_float64_wide": (problem(24, 1439, 40, 165, 45, element_bytes=8, layout="channels_last"), "split",
                                   "torch_sum"),  # float64 keeps scalar loads: no vector walk
    "channels_last_2m_partials": (dict(problem(1, 256, 100, 1024, 1024, layout="channels_last"), pixels_follow=False),
                                  "split", "torch_sum"),
    "channels_last_256_by_vectors": (problem(1, 256, 100, 1024, 1024, layout="channels_last"), "split",
                                     "channel_rows"),
    # r52: 399 pixels of 568 bytes (the audit: 131.3 us against torch's reduction's 134.8)
    "channels_last_short_planes": (problem(2079, 142, 11, 21, 19, layout="channels_last"), "split", "channel_rows"),
    # 16-bit planes of one element: the plane-lanes reader's copy, but where the narrow epilogue takes the GEMM (r22)
    # it loads them itself (a standalone GEMM reading r22's x in place: 85.7 us against the planned 133.6 by the
    # reader's sums; H100, docs/limits.md §109)
    "single_element_planes": (problem(618884, 53, 64, 1, 1, element_bytes=2), "split", "plane_lanes"),
    "single_element_planes_narrow": (problem(618884, 53, 2, 1, 1, element_bytes=2), "split", "in_epilogue"),
    "strided_rows_small": (problem(100, 4, 7, 30, 40, layout="strided_rows"), "split", "plane_lanes"),
    # x small enough for one launch only with few channels and batches (kSmallInputMaxChannels, kFusedMaxBatch)
    "small_x_16_channels": (problem(16, 16, 16, 32, 32), "split", "plane_lanes"),
    "small_x_of_16k_planes": (problem(16, 32, 512, 64, 64), "split", "plane_lanes"),
    "small_x_channels_last": (problem(16, 64, 128, 16, 16, layout="channels_last"), "split", "channel_rows"),
    "small_x_many_batches": (problem(4096, 2, 16, 8, 8), "split", "plane_lanes"),
    "small_x_4_channels": (problem(64, 4, 16, 32, 32), "fused", "planes"),
}


@pytest.mark.parametrize("case", list(ENVELOPE))
def test_measured_boundaries_on_the_h200(case):
    shape, strategy, reader = ENVELOPE[case]
    plan = plan_for(shape, H200)
    assert (plan["strategy"], plan["reader"]) == (strategy, reader), plan["why"]
    assert plan["why"]


@pytest.mark.parametrize("device", list(DEVICES))
def test_x_is_loaded_evict_first_up_to_four_and_a_half_l2s(device):
    l2 = DEVICES[device]["l2_bytes"]
    for planes, loads in [(1, "evict_first"), (int(4.5 * l2) // (64 * 4096 * 4), "evict_first"),
                          (int(4.5 * l2) // (64 * 4096 * 4) + 1, "cached"), (4096, "cached")]:
        plan = plan_for(problem(planes, 64, 128, 64, 64), DEVICES[device])
        assert plan["x_loads"] == loads, (planes, plan)


@pytest.mark.parametrize("element_bytes, kernel_area, expected", [
    (4, 1, "weight"), (8, 1, "weight"), (2, 1, "summed"), (4, 9, "summed"), (8, 2, "summed")])
def test_a_one_by_one_kernel_of_the_accumulation_type_is_its_own_weight_sum(element_bytes, kernel_area, expected):
    shape = dict(problem(2048, 2048, 8192, 1, 1, element_bytes=element_bytes), kernel_area=kernel_area)
    plan = plan_for(shape, H200)
    assert plan["weight_sum"] == expected, plan
    # Without its pass over the weight, the split strategy is predicted faster than the same problem summing it.
    summed = plan_for(dict(shape, kernel_area=kernel_area + 1), H200)
    if expected == "weight":
        assert plan["split_us"] < summed["split_us"], (plan, summed)


def test_predictions_follow_the_memory_speed():
    """Read-bound problems are predicted slower on the 4090 by about the ratio of bandwidths."""
    ratio = plan_for(HEADLINE, RTX_4090)["predicted_us"] / plan_for(HEADLINE, H200)["predicted_us"]
    assert 3.5 < ratio < 5.5


def test_plan_op_rejects_malformed_input():
    with pytest.raises(RuntimeError, match="problem must have 12 values"):
        torch.ops.fusedlse.plan([1, 2, 3], [1.0] * 7)
    with pytest.raises(RuntimeError, match="device must have 7 values, got 6"):
        torch.ops.fusedlse.plan([1, 2, 3, 4, 5, 4, 0, 1, 0, 1, 1, 0], [1.0] * 6)
    with pytest.raises(RuntimeError, match="layout must be 0..3, got 9"):
        torch.ops.fusedlse.plan([1, 2, 3, 4, 5, 4, 9, 1, 0, 1, 1, 0], [1.0] * 7)
    with pytest.raises(RuntimeError, match="plane runs must be 0 or 1, got 2"):
        torch.ops.fusedlse.plan([1, 2, 3, 4, 5, 4, 0, 1, 2, 1, 1, 0], [1.0] * 7)
    with pytest.raises(RuntimeError, match="planes aligned must be 0 or 1, got 3"):
        torch.ops.fusedlse.plan([1, 2, 3, 4, 5, 4, 0, 1, 0, 3, 1, 0], [1.0] * 7)
    with pytest.raises(RuntimeError, match="pixels follow must be 0 or 1, got 4"):
        torch.ops.fusedlse.plan([1, 2, 3, 4, 5, 4, 1, 1, 0, 0, 4, 0], [1.0] * 7)
    with pytest.raises(RuntimeError, match="pixel vectors must be 0 or 1, got 5"):
        torch.ops.fusedlse.plan([1, 2, 3, 4, 5, 4, 1, 1, 0, 0, 1, 5], [1.0] * 7)


def test_explain_on_cpu_names_the_cpu_path():
    assert fusedlse_cuda.explain(torch.randn(2, 3, 4, 5), torch.randn(3, 6, 3, 3))["strategy"] == "cpu"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")])])
def test_explain_checks_x_and_weight_as_forward_does(device):
    """No plan for a call forward would refuse: the same errors, naming the argument."""
    x, weight = torch.randn(2, 3, 4, 5, device=device), torch.randn(3, 6, 3, 3, device=device)
    with pytest.raises(RuntimeError, match="x must be float16, bfloat16, float32 or float64, got Int"):
        fusedlse_cuda.explain(x.int(), weight)
    with pytest.raises(RuntimeError, match="weight has dtype Double but x has dtype Float"):
        fusedlse_cuda.explain(x, weight.double())
    with pytest.raises(RuntimeError, match=r"weight.shape\[0\] must equal x's C_in = 3, got weight of shape \[4, 6"):
        fusedlse_cuda.explain(x, torch.randn(4, 6, 3, 3, device=device))
    with pytest.raises(RuntimeError, match="weight must be 4-D"):
        fusedlse_cuda.explain(x, weight[0])


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("shape,layout,aligned", [
    ((4, 8, 16, 16), "contiguous", True), ((4, 8, 16, 16), "offset", False), ((4, 8, 16, 16), "channels_last", False),
    ((4, 8, 15, 15), "contiguous", False), ((1, 1, 15, 15), "contiguous", True),
    ((4, 8, 16, 16), "channel_slice", True), ((1, 8, 15, 15), "channel_slice", False),
    ((4, 8, 16, 16), "sliced", False)], ids=str)
def test_explain_says_whether_every_plane_starts_on_16_bytes(shape, layout, aligned):
    """planes_aligned: x's first element and its batch and channel strides on 16 bytes, contiguous planes only: one
    plane of 15 x 15 float32 is aligned, several are not; a slice of channels 1 to 8 of planes of 1 KiB is."""
    if layout == "channel_slice":
        b, c, h, w = shape
        x = torch.empty(b, c + 2, h, w, device="cuda")[:, 1:c + 1]
    else:
        x = lay_out(torch.empty(shape, device="cuda"), layout)
    plan = fusedlse_cuda.explain(x, torch.empty(shape[1], 6, 3, 3, device="cuda"))
    assert plan["problem"]["planes_aligned"] is aligned, plan["problem"]
    assert plan_for(plan["problem"], plan["device"])["strategy"] == plan["strategy"]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("layout,follow", [("channels_last", True), ("offset_channels_last", True),
                                           ("pixel_slice", False), ("contiguous", False)])
def test_explain_says_whether_pixels_follow_each_other(layout, follow):
    """pixels_follow: channels-last pixels C elements apart, wherever x starts; a slice of the channels of wider
    pixels has them C + 2 apart; other layouts say False."""
    b, c, h, w = 2, 40, 9, 7
    if layout == "pixel_slice":
        x = torch.empty(b, h, w, c + 2, device="cuda").permute(0, 3, 1, 2)[:, 1:c + 1]
    elif layout == "offset_channels_last":
        x = torch.empty(b * h * w * c + 1, device="cuda")[1:].view(b, h, w, c).permute(0, 3, 1, 2)
    else:
        x = lay_out(torch.empty(b, c, h, w, device="cuda"), layout)
    plan = fusedlse_cuda.explain(x, torch.empty(c, 6, 3, 3, device="cuda"))
    assert plan["problem"]["pixels_follow"] is follow, plan["problem"]
    assert plan_for(plan["problem"], plan["device"])["strategy"] == plan["strategy"]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_explain_on_cuda_is_the_planner_on_this_device():
    x = torch.randn(4, 8, 16, 16, device="cuda").contiguous(memory_format=torch.channels_last)
    plan = fusedlse_cuda.explain(x, torch.randn(8, 6, 3, 3, device="cuda"))
    assert plan["problem"]["layout"] == "channels_last"
    props = torch.cuda.get_device_properties(x.device)
    assert plan["device"]["multiprocessors"] == props.multi_processor_count
    again = plan_for(plan["problem"], plan["device"])
    assert (plan["strategy"], plan["reader"]) == (again["strategy"], again["reader"])


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("shape,layout,plane_runs", [
    ((500, 53, 1, 1), "contiguous", True), ((500, 53, 1, 2), "channel_slice", True),
    ((500, 8, 4, 8), "batch_slice", True), ((500, 3, 2, 2), "channels_last", False),
    ((500, 3, 2, 2), "sliced", False), ((500, 53, 6, 6), "contiguous", False),
    ((7, 2, 1, 4), "channel_slice", False), ((7, 2, 1, 4), "contiguous", True),
    ((500, 8, 3, 4), "contiguous", True), ((500, 8, 1, 6), "contiguous", False),
    ((500, 8, 5, 6), "batch_slice", False)], ids=str)
def test_explain_says_where_planes_are_read_as_runs(shape, layout, plane_runs):
    """plane_runs: tiny contiguous planes (up to 32 elements) that follow each other in runs of 64 bytes or more,
    each batch's channels (a slice of C or B keeps them) or every plane; not channels-last or strided planes,
    larger planes, or runs too short (a slice of 2 channels of 4 float16: 16 bytes per run; contiguous, the same
    planes are one run of 112 bytes). Nor planes of a size the plane-lanes reader's lanes read faster (6 and 30
    float16; 12 go to the run walk: plan::tiny_plane_walk)."""
    b, c, h, w = shape
    if layout == "channel_slice":
        x = torch.empty(b, c + 2, h, w, dtype=torch.float16, device="cuda")[:, 1:c + 1]
    elif layout == "batch_slice":
        x = torch.empty(2 * b, c, h, w, dtype=torch.float16, device="cuda")[::2]
    else:
        x = lay_out(torch.empty(shape, dtype=torch.float16, device="cuda"), layout)
    plan = fusedlse_cuda.explain(x, torch.empty(c, 3, 1, 1, dtype=torch.float16, device="cuda"))
    assert plan["problem"]["plane_runs"] is plane_runs


# padding's tap reader on the H200 (132 SMs x 4 blocks of 8 warps resident): (H, a row's bytes, units) -> runs a unit.
H200_TAP_WARPS = 132 * 4 * 8
TAP_RUNS = {
    # many long planes: runs of 64 KiB and more, whole waves of warps (sweep r35 float64, r40 sliced float32)
    # (r35: 11 runs would leave a third wave of 308 runs; 10 fill two)
    "r35_planes_of_711k": ((88887, 8, 796), 10),
    "r40_planes_of_419k": ((1178, 356, 2035), 6),
    "r55_slices_of_652k": ((466, 1400, 885), 9),
    "headline": ((512, 2048, 1024), 16),
    # too few units for 64 KiB runs: one wave of the most runs, none under 8 KiB (r30; r20's slices)
    "r30_planes_of_52k": ((25977, 2, 792), 5),
    "r20_slices_of_238k": ((186, 1280, 208), 20),
    # a unit shorter than 8 KiB: one run
    "short_planes": ((31, 88, 9688), 1),
}


@pytest.mark.parametrize("case", list(TAP_RUNS))
def test_tap_runs_are_long_while_warps_stay_busy(case):
    (height, row_bytes, units), runs = TAP_RUNS[case]
    assert torch.ops.fusedlse._tap_run_chunks(height, row_bytes, units, H200_TAP_WARPS) == runs


def test_forced_tap_runs_take_the_least_run_given():
    from fusedlse_cuda.planning import forced_tap_min_run_bytes

    r35 = (88887, 8, 796, H200_TAP_WARPS)
    with forced_tap_min_run_bytes(16384):
        assert torch.ops.fusedlse._tap_run_chunks(*r35) == 43  # 711 KiB / 16 KiB, under the 8 a resident warp ask
    with forced_tap_min_run_bytes(0):
        assert torch.ops.fusedlse._tap_run_chunks(*r35) == 43  # ceil(8 * 4224 / 796)
    with forced_tap_min_run_bytes(2**40):
        assert torch.ops.fusedlse._tap_run_chunks(*r35) == 1
    assert torch.ops.fusedlse._tap_run_chunks(*r35) == 10
    with pytest.raises(RuntimeError, match="units and resident_warps must each be 1 or more, got 31, 88, 0, 4224"):
        torch.ops.fusedlse._tap_run_chunks(31, 88, 0, H200_TAP_WARPS)


# padding's shares by the tap kernels' combining warps (plan::tap_shares_short): (planes, C_out, taps, accumulator
# bytes) -> taken on an H200 (132 SMs: 3168 combining warps at once) and an RTX 4090 (128: 3072).
TAP_SHARES = {
    "headline": ((1024, 128, 9, 4), True, True),         # 1 column trip x 2 tap trips
    "r48_few_planes": ((15, 368, 4, 4), True, True),     # 3 column trips
    "r44_wide_c_out": ((395, 2739, 15, 4), False, False),  # 22 x 2 trips
    "r12": ((180, 334, 15, 4), False, False),             # 3 x 2
    "float64_128_columns": ((64, 128, 9, 8), True, True),  # 2 columns a lane: 2 x 2
    "float64_129_columns": ((64, 129, 9, 8), False, False),  # 3 x 2
    "r41_many_planes": ((6756, 10, 4, 4), False, False),  # past one round of the combining warps
    "between_the_rounds": ((3100, 10, 4, 4), True, False),
}


@pytest.mark.parametrize("case", list(TAP_SHARES))
def test_tap_shares_only_as_a_short_loop_over_one_round_of_planes(case):
    args, on_h200, on_4090 = TAP_SHARES[case]
    assert torch.ops.fusedlse._tap_shares_short(*args, H200["multiprocessors"]) is on_h200
    assert torch.ops.fusedlse._tap_shares_short(*args, RTX_4090["multiprocessors"]) is on_4090


# padding's lanes a plane in the combine without shares (plan::tap_combine_lanes): (planes, device) -> lanes; a warp a
# plane under 32 planes a multiprocessor (H200: 4224; RTX 4090: 4096), else a group of planes for every resident warp
# (H200: 132 x 64 = 8448 warps, 270336 lanes; RTX 4090: 128 x 48 = 6144, 196608), 8 lanes a plane at most.
TAP_COMBINE_LANES = {
    "r16_h200": ((228748, "h200"), 2),        # a lane a plane would leave warps idle: 2 lanes, 14297 warps
    "r16_rtx4090": ((228748, "rtx4090"), 1),  # 7149 warps of 32 planes cover the 6144
    "r37_h200": ((34536, "h200"), 8),
    "r60_h200": ((20148, "h200"), 8),         # 16 would give every warp planes; 8 at most
    "r10_h200": ((9688, "h200"), 8),
    "r20_h200": ((3152, "h200"), 32),         # a warp a plane (tap_combine_kernel): under 32 an SM
    "fewest_groups_h200": ((4224, "h200"), 8),
    "one_short_h200": ((4223, "h200"), 32),
    "fewest_groups_rtx4090": ((4096, "rtx4090"), 8),
    "one_short_rtx4090": ((4095, "rtx4090"), 32),
    "one_plane": ((1, "h200"), 32),
    "every_lane_a_plane": ((270336, "h200"), 1),
    "one_short": ((270335, "h200"), 2),
}


@pytest.mark.parametrize("case", list(TAP_COMBINE_LANES))
def test_tap_combine_lanes_give_every_resident_warp_planes_where_planes_are_many(case):
    (planes, device), lanes = TAP_COMBINE_LANES[case]
    props = DEVICES[device]
    assert torch.ops.fusedlse._tap_combine_lanes(planes, props["multiprocessors"], props["warps_per_sm"]) == lanes
    with pytest.raises(RuntimeError, match="warps_per_sm must each be 1 or more, got 0, 132, 64"):
        torch.ops.fusedlse._tap_combine_lanes(0, 132, 64)


def test_forced_tap_combine_lanes_answer_for_the_rule():
    """forced_tap_combine_lanes: inside the block the rule answers the forced lanes (a warp a plane for one plane
    of the H200's, which gives 32, forced down to 2; every lane a plane's 1 forced up to 32); outside, the rule's own;
    anything but a power of two from 1 to 32 refused by name."""
    from fusedlse_cuda.planning import forced_tap_combine_lanes

    rule = torch.ops.fusedlse._tap_combine_lanes
    with forced_tap_combine_lanes(2):
        assert rule(1, 132, 64) == 2
    with forced_tap_combine_lanes(32):
        assert rule(270336, 132, 64) == 32
    assert (rule(1, 132, 64), rule(270336, 132, 64)) == (32, 1)
    for bad in (0, 3, 64, True, 4.0):
        with pytest.raises(ValueError, match=f"lanes must be 1, 2, 4, 8, 16 or 32, got {bad!r}"):
            forced_tap_combine_lanes(bad)
    with pytest.raises(RuntimeError, match="lanes must be -1 or a power of two from 1 to 32, got 6"):
        torch.ops.fusedlse._force_tap_combine_lanes(6)


# padding's channels walk row by row (plan::channel_walk_by_rows): (C, W, element bytes) -> row by row.
CHANNEL_WALKS = {
    "r04_float32": ((64, 2048, 4), True),      # 2 slices of 32 lanes, a lane a channel
    "rows_of_64": ((64, 64, 4), True),
    "rows_of_63": ((64, 63, 4), False),        # under kChannelRowsMinColumns
    "r04_bfloat16": ((64, 2048, 2), False),    # 2-byte x walks flat (2.0-2.5x slower row by row)
    "r04_float64": ((64, 2048, 8), False),     # not measured: flat
    "r38_float32": ((73, 229, 4), False),      # 5 slices of 15 lanes: 2 positions at once
    "one_slice_of_16": ((16, 512, 4), False),  # 2 positions at once
    "one_slice_of_32": ((32, 70, 4), True),
}


@pytest.mark.parametrize("case", list(CHANNEL_WALKS))
def test_channel_walk_by_rows_for_float32_lanes_of_one_channel_and_long_rows(case):
    args, by_rows = CHANNEL_WALKS[case]
    assert torch.ops.fusedlse._channel_walk_by_rows(*args) is by_rows


def test_channel_walk_by_rows_follows_the_forced_slices():
    from fusedlse_cuda.planning import forced_channel_slices

    with forced_channel_slices(4):  # 16 lanes: 2 positions at once
        assert not torch.ops.fusedlse._channel_walk_by_rows(64, 2048, 4)
    with forced_channel_slices(3):  # 22 lanes: one position
        assert torch.ops.fusedlse._channel_walk_by_rows(64, 2048, 4)
    with pytest.raises(RuntimeError, match="element_bytes 2, 4 or 8, got 64, 2048, 3"):
        torch.ops.fusedlse._channel_walk_by_rows(64, 2048, 3)


def test_forced_tap_shares_bypass_the_rule():
    from fusedlse_cuda.planning import forced_tap_shares

    r44, headline = (395, 2739, 15, 4, 132), (1024, 128, 9, 4, 132)
    with forced_tap_shares(True):
        assert torch.ops.fusedlse._tap_shares_short(*r44)
    with forced_tap_shares(False):
        assert not torch.ops.fusedlse._tap_shares_short(*headline)
    assert torch.ops.fusedlse._tap_shares_short(*headline) and not torch.ops.fusedlse._tap_shares_short(*r44)
    with pytest.raises(ValueError, match="shares must be a bool, got 1"):
        with forced_tap_shares(1):
            pass
    with pytest.raises(RuntimeError, match="acc_bytes 4 or 8, got 395, 2739, 15, 2, 132"):
        torch.ops.fusedlse._tap_shares_short(395, 2739, 15, 2, 132)


MIB = 1 << 20
# (reader beside, x's bytes, the weight over taps' bytes) -> way: ahead with the tap kernels' reader beside it for x
# of at most 128 MiB, ahead alone before readers that cannot run beside it for a weight of at most 4 MiB, else ATen's
# copy after the tap sums. Sizes of the H100 sweep pairs (docs/limits.md §117).
TAP_WEIGHT_WAYS_BY_RULE = {
    "r02": ((True, 8 * MIB, MIB // 10), "ahead_beside"),
    "r60": ((True, 113 * MIB, 52 * MIB), "ahead_beside"),  # a large weight beside a reader of x it hides under
    "beside_bound": ((True, 128 * MIB, 0), "ahead_beside"),
    "beside_past": ((True, 128 * MIB + 1, 0), "copy"),
    "r37": ((True, 489 * MIB, MIB // 4), "copy"),
    "r13": ((False, 8 * MIB, MIB // 40), "ahead_waits"),
    "alone_bound": ((False, 1, 4 * MIB), "ahead_waits"),
    "alone_past": ((False, 1, 4 * MIB + 1), "copy"),
    "r18": ((False, 205 * MIB, 39 * MIB), "copy"),
}


@pytest.mark.parametrize("case", list(TAP_WEIGHT_WAYS_BY_RULE))
def test_tap_weight_way_ahead_only_where_x_or_the_weight_is_small(case):
    from fusedlse_cuda.planning import TAP_WEIGHT_WAYS

    args, way = TAP_WEIGHT_WAYS_BY_RULE[case]
    assert TAP_WEIGHT_WAYS[torch.ops.fusedlse._tap_weight_way(*args)] == way
    with pytest.raises(RuntimeError, match="must each be 0 or more, got -1, 0"):
        torch.ops.fusedlse._tap_weight_way(True, -1, 0)


def test_forced_tap_weight_way_refuses_what_is_no_way():
    """forced_tap_weight_way (where the padded CUDA forward makes its weight over taps) takes the names of
    TAP_WEIGHT_WAYS, the op their places or -1 (the forward it changes needs a GPU: test_padding_groups.py)."""
    from fusedlse_cuda.planning import TAP_WEIGHT_WAYS, forced_tap_weight_way

    for way in TAP_WEIGHT_WAYS:
        with forced_tap_weight_way(way):
            assert TAP_WEIGHT_WAYS[torch.ops.fusedlse._tap_weight_way(True, 1, 1)] == way
    assert TAP_WEIGHT_WAYS[torch.ops.fusedlse._tap_weight_way(True, 1, 1)] == "ahead_beside"
    for bad in (0, None, "ahead"):
        with pytest.raises(ValueError, match=f"way must be one of .*, got {bad!r}"):
            forced_tap_weight_way(bad)
    for bad in (-2, len(TAP_WEIGHT_WAYS)):
        with pytest.raises(RuntimeError, match=f"way must be -1..{len(TAP_WEIGHT_WAYS) - 1}, got {bad}"):
            torch.ops.fusedlse._force_tap_weight_way(bad)


def test_plane_lanes_grid_is_a_block_a_turn_unless_forced_persistent():
    from fusedlse_cuda.planning import forced_plane_lanes_persistent

    tiling = torch.ops.fusedlse._plane_lanes_tiling  # [lanes, pieces, piece_units, blocks, in_block, persistent]
    resident = 132 * 2048  # an H100's or H200's resident threads: 1056 blocks of 256
    # r59's planes (14673220 of 3 elements, a lane each): a block for every 256 planes; r25's (1302131 of 333, 32
    # lanes each) a block for every 8
    assert tiling(14673220, 3, resident, 8) == [1, 1, 3, 57318, 0, 0]
    assert tiling(1302131, 333, resident, 8) == [32, 1, 333, 162767, 0, 0]
    with forced_plane_lanes_persistent(True):
        assert tiling(14673220, 3, resident, 8) == [1, 1, 3, 1056, 0, 1]
        assert tiling(1302131, 333, resident, 8) == [32, 1, 333, 1056, 0, 1]
        # fewer items than the device holds at once: the same grid either way (64 planes of 64 pieces, 4 planes)
        assert tiling(64, 65536, resident, 8) == [32, 64, 1024, 512, 0, 1]
        assert tiling(4, 3, resident, 8) == [1, 1, 3, 1, 0, 1]
    with forced_plane_lanes_persistent(False):
        assert tiling(14673220, 3, resident, 8) == [1, 1, 3, 57318, 0, 0]
    assert tiling(64, 65536, resident, 8) == [32, 64, 1024, 512, 0, 0]  # the rule again after the block
    with pytest.raises(ValueError, match="persistent must be a bool, got 1"):
        with forced_plane_lanes_persistent(1):
            pass
    with pytest.raises(RuntimeError, match="must each be 1 or more, got 0, 3, 270336, 8"):
        tiling(0, 3, resident, 8)


def test_plane_lanes_pieces_sharing_a_block_fit_one_wave_of_the_kernels_blocks():
    from fusedlse_cuda.planning import forced_plane_lanes_persistent, forced_plane_lanes_pieces

    tiling = torch.ops.fusedlse._plane_lanes_tiling  # [lanes, pieces, piece_units, blocks, in_block, persistent]
    resident = 132 * 2048  # 1056 blocks of 256
    # r35's planes (796 of 44444 float64 vectors) take a block each, its 8 groups the plane's pieces: past the 528
    # blocks the vector walk's kernel holds on an H200, 4 pieces a plane in 398 blocks; within them, as the rule cut it
    assert tiling(796, 44444, resident, 8) == [32, 8, 5556, 796, 1, 0]
    assert tiling(796, 44444, resident, 8, 528) == [32, 4, 11111, 398, 1, 0]
    assert tiling(796, 44444, resident, 8, 1056) == [32, 8, 5556, 796, 1, 0]
    # down to a plane a group (no pieces) where even 2 pieces pass the kernel's blocks: 100 blocks of 8 planes
    assert tiling(796, 44444, resident, 8, 150) == [32, 1, 44444, 100, 0, 0]
    # pieces not sharing a block (64 planes of 64 pieces, added by a second launch) and one-piece planes: as they were
    assert tiling(64, 65536, resident, 8, 8) == [32, 64, 1024, 512, 0, 0]
    assert tiling(1302131, 333, resident, 8, 528) == [32, 1, 333, 162767, 0, 0]
    with forced_plane_lanes_pieces(8):
        assert tiling(796, 44444, resident, 8, 528) == [32, 8, 5556, 796, 1, 0]
    with forced_plane_lanes_persistent(True):
        assert tiling(796, 44444, resident, 8, 528) == [32, 8, 5556, 796, 1, 1]
    with pytest.raises(RuntimeError, match="kernel_blocks must be 0 \\(not given\\) or more, got -1"):
        tiling(796, 44444, resident, 8, -1)


def test_plane_lanes_pieces_as_forced():
    from fusedlse_cuda.planning import forced_plane_lanes_pieces

    tiling = torch.ops.fusedlse._plane_lanes_tiling  # [lanes, pieces, piece_units, blocks, in_block, persistent]
    resident = 132 * 2048
    assert tiling(1302131, 333, resident, 8) == [32, 1, 333, 162767, 0, 0]  # r25's columns: whole, by the rule
    with forced_plane_lanes_pieces(4):  # four warps a plane, two planes a block
        assert tiling(1302131, 333, resident, 8) == [32, 4, 84, 651066, 1, 0]
    with forced_plane_lanes_pieces(3):  # in a block: rounded down to a power of two
        assert tiling(1302131, 333, resident, 8) == [32, 2, 167, 325533, 1, 0]
    with forced_plane_lanes_pieces(16):  # more than a block's 8 groups, and than a lane's 10 loads: 10, added after
        assert tiling(1302131, 333, resident, 8) == [32, 10, 34, 1627664, 0, 0]
    with forced_plane_lanes_pieces(1):  # few planes, which the rule cuts (64 planes of 65536: 64 pieces), whole
        assert tiling(64, 65536, resident, 8) == [32, 1, 65536, 8, 0, 0]
    assert tiling(64, 65536, resident, 8) == [32, 64, 1024, 512, 0, 0]  # the rule again after the block
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="pieces must be a positive int"):
            with forced_plane_lanes_pieces(bad):
                pass


def test_tap_rows_staged_for_rows_that_are_not_whole_vectors_and_as_forced():
    from fusedlse_cuda.planning import forced_tap_stage

    staged = torch.ops.fusedlse._tap_rows_staged
    # (whole_vector_rows, W, element bytes): rows of whole vectors and rows past 1.5 KiB take the span walk, a column
    # of one element is never staged (r48's rows of 559 float32 elements: the span walk; r29's of 262 bfloat16 and
    # r19's of 185 float64: staged)
    assert staged(False, 45, 4) and staged(False, 2, 2) and not staged(True, 48, 4) and not staged(False, 1, 4)
    assert not staged(False, 559, 4) and staged(False, 262, 2) and staged(False, 384, 4) and not staged(False, 385, 4)
    assert staged(False, 185, 8) and staged(False, 191, 8) and not staged(False, 193, 8)
    with forced_tap_stage(True):
        assert staged(True, 48, 4) and staged(False, 45, 4) and staged(False, 559, 4) and not staged(True, 1, 4)
    with forced_tap_stage(False):
        assert not staged(False, 45, 4) and not staged(True, 48, 4)
    assert staged(False, 45, 4) and not staged(True, 48, 4)  # the rule again after the block
    with pytest.raises(ValueError, match="stage must be a bool, got 1"):
        with forced_tap_stage(1):
            pass
    with pytest.raises(RuntimeError, match="width and element_bytes must each be 1 or more, got 0, 4"):
        staged(False, 0, 4)


def test_tap_staged_span_sums_for_rows_of_8_elements_a_border_column_and_as_forced():
    from fusedlse_cuda.planning import forced_tap_middle_by_span

    span_sums = torch.ops.fusedlse._tap_staged_span_sums
    # (W, head, tail): 8 elements or more a border column (r61's rows of 177 at padding 3, 6 border columns; r16's of
    # 39 at padding 1 and 2), not fewer (r51's 46 and r44's 30 at padding 3, r46's 6 at padding 1: slower by the span
    # sums, H100), nor where no middle column is left; no border columns at all, the span less the border rows
    assert span_sums(177, 3, 3) and span_sums(39, 1, 1) and span_sums(39, 2, 2) and span_sums(48, 3, 3)
    assert not span_sums(46, 3, 3) and not span_sums(30, 3, 3) and not span_sums(6, 1, 1) and not span_sums(47, 3, 3)
    assert span_sums(2, 0, 0) and not span_sums(2, 1, 1) and not span_sums(1, 1, 0)
    with forced_tap_middle_by_span(True):  # wherever a middle column is left
        assert span_sums(6, 1, 1) and span_sums(7, 3, 3) and not span_sums(6, 3, 3) and span_sums(1, 0, 0)
    with forced_tap_middle_by_span(False):
        assert not span_sums(177, 3, 3) and not span_sums(2, 0, 0)
    assert span_sums(177, 3, 3) and not span_sums(46, 3, 3)  # the rule again after the block
    with pytest.raises(RuntimeError, match="head and tail 0 or more, got 5, -1, 1"):
        span_sums(5, -1, 1)


def test_tap_middle_by_span_for_rows_with_room_beside_their_borders_and_as_forced():
    from fusedlse_cuda.planning import forced_tap_middle_by_span

    by_span = torch.ops.fusedlse._tap_middle_by_span
    # (whole_vector_rows, W, element bytes, head, tail): rows that are not whole vectors, of 256 bytes or more, borders
    # of at most 2 columns a side and 4 elements or more per border column (r61's rows of 177 bfloat16, r49's of 244,
    # r29's of 262); not r16's of 39 float32 (156 bytes: the stage), nor whole-vector rows (their own path), nor
    # borders of 3 (shared memory: r16 at padding 3 took 1.17x the stage's time, H100)
    assert by_span(False, 177, 2, 1, 1) and by_span(False, 262, 2, 2, 2) and by_span(False, 64, 4, 2, 2)
    assert not by_span(False, 39, 4, 1, 1) and not by_span(False, 63, 4, 1, 1) and not by_span(True, 168, 2, 1, 1)
    assert not by_span(False, 189, 2, 3, 3) and not by_span(False, 15, 32, 2, 2) and by_span(False, 128, 2, 0, 0)
    with forced_tap_middle_by_span(True):  # wherever a middle column is left and the borders are in registers
        assert by_span(True, 168, 2, 1, 1) and by_span(False, 5, 2, 2, 2) and not by_span(False, 4, 2, 2, 2)
        assert by_span(False, 39, 4, 1, 2) and by_span(False, 1, 4, 0, 0)
        assert not by_span(False, 189, 2, 3, 3) and not by_span(False, 39, 4, 0, 3)  # the walk has no wider borders
    with forced_tap_middle_by_span(False):
        assert not by_span(False, 177, 2, 1, 1) and not by_span(False, 128, 2, 0, 0)
    assert by_span(False, 177, 2, 1, 1) and not by_span(True, 168, 2, 1, 1)  # the rule again after the block
    with pytest.raises(ValueError, match="by_span must be a bool, got 1"):
        with forced_tap_middle_by_span(1):
            pass
    with pytest.raises(RuntimeError, match="head and tail 0 or more, got 0, 2, 1, 1"):
        by_span(False, 0, 2, 1, 1)
